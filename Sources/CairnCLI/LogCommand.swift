import CairnCore
import CairnStore
import ArgumentParser
import Cairn

/// `cairn log`: the entries, newest first, like `git log`.
struct LogCommand: CairnCommand {
    static let configuration = CommandConfiguration(
        commandName: "log",
        abstract: "Show entries, newest first.",
        discussion: """
            Each entry shows its id, kind, bucket/key, author (short hex), HLC (wall time in \
            ISO-8601 UTC and counter) and parents. --graph draws the DAG exactly as 'git log \
            --graph --date-order' draws the same commits, taking as an entry's first parent its \
            author's own previous entry (the parent by the same author with the greatest HLC), \
            else its newest parent, and the other parents newest first; when filters hide \
            entries, each shown entry is linked to its nearest shown ancestors. The log is read \
            and printed page by page, so '| head' returns at once on a log of any size. --json prints one JSON object per line with the keys id, cursor, kind, \
            hlc, hlc_wall_ms, hlc_counter, time, author, parents, inert, ingested_ms and the \
            kind's own fields.

            EXAMPLES:
              cairn log -n 5
              cairn log --graph --oneline
              cairn log --author 9a63 --since 2026-11-21T10:00:00Z
              cairn log --key tables/orders --json
            """)

    @OptionGroup var global: GlobalOptions

    @Flag(help: "One line per entry: short id, time, author, kind and key.")
    var oneline = false

    @Flag(help: "Draw the DAG beside the entries.")
    var graph = false

    @Option(help: ArgumentHelp("Only entries by this author: a full public key or a unique hex prefix (4+ digits) of a writer's key.",
                               valueName: "hexkey"))
    var author: String?

    @Option(help: ArgumentHelp("Only writes to this key.", valueName: "bucket/key"), transform: KeyPathArgument.parse)
    var key: KeyPathArgument?

    @Option(help: ArgumentHelp("Only entries at or after this time: \(TimeSpec.help).", valueName: "time"), transform: TimeSpec.parse)
    var since: TimeSpec?

    @Option(help: ArgumentHelp("Only entries at or before this time (an ISO time includes its whole millisecond).", valueName: "time"),
            transform: TimeSpec.parse)
    var until: TimeSpec?

    @Option(name: [.customShort("n"), .customLong("limit")], help: ArgumentHelp("Show at most this many entries.", valueName: "n"))
    var limit: Int?

    @Flag(help: "One JSON object per line.")
    var json = false

    func validate() throws {
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
        if json && (graph || oneline) { throw ValidationError("--json cannot be combined with --graph or --oneline") }
    }

    private var isFiltered: Bool { author != nil || key != nil || since != nil || until != nil }

    func run() async throws {
        let log = try global.openForReading()
        var filter = LogFilter()
        if let author { filter.author = try await WriterLookup.resolve(author, in: log) }
        if let key { (filter.bucket, filter.key) = (key.bucket, key.key) }
        filter.since = since?.lower
        filter.until = until?.upper
        filter.limit = limit

        if graph && isFiltered {
            // A filtered view links each shown entry to its nearest shown ancestors, found
            // from the whole range of shown entries: drawn from memory.
            let entries = try await log.log(filter)
            let parents = try await nearestShownAncestors(of: entries, in: log)
            let summaries = Dictionary(
                entries.map { ($0.entry.id, EntrySummary(id: $0.entry.id, hlc: $0.entry.hlc, author: $0.entry.author)) },
                uniquingKeysWith: { a, _ in a })
            var drawing = GraphPrinter(oneline: oneline)
            for stored in entries {
                let shown = ParentOrder.ordered(author: stored.entry.author, parents: parents[stored.entry.id] ?? [], summaries: summaries)
                try drawing.print(stored, parents: shown)
            }
            return
        }

        // Everything else streams: pages of entries by (hlc, id), printed as they come, so
        // `cairn log | head` takes the same few milliseconds and megabytes on any log.
        let json = json, oneline = oneline, graph = graph
        try await log.withStore { store in
            var drawing = GraphPrinter(oneline: oneline)
            var first = true
            try store.forEachLogPage(filter) { page in
                if graph {
                    let merging = page.filter { $0.entry.parents.count > 1 }
                    let summaries = try store.summaries(of: merging.flatMap(\.entry.parents))
                    for stored in page {
                        let parents = ParentOrder.ordered(author: stored.entry.author, parents: stored.entry.parents, summaries: summaries)
                        try drawing.print(stored, parents: parents)
                    }
                    return true
                }
                for stored in page {
                    if json {
                        try Terminal.out.json(EntryRendering.json(stored))
                    } else if oneline {
                        try Terminal.out.line(EntryRendering.oneline(stored))
                    } else {
                        if !first { try Terminal.out.line("") }
                        for line in EntryRendering.block(stored) { try Terminal.out.line(line) }
                    }
                    first = false
                }
                return true
            }
        }
    }

    /// For a filtered view: each shown entry's nearest shown ancestors, found by one pass over
    /// the entries between the oldest and newest shown HLC, oldest first (a parent always has
    /// a lower HLC than its child, so it is visited first).
    private func nearestShownAncestors(of shown: [StoredEntry], in log: CairnLog) async throws -> [Hash32: [Hash32]] {
        guard let oldest = shown.map(\.entry.hlc).min(), let newest = shown.map(\.entry.hlc).max() else { return [:] }
        let shownIDs = Set(shown.map(\.entry.id))
        var range = LogFilter()
        range.since = oldest
        range.until = newest
        range.newestFirst = false
        return try await log.withStore { store in
            // Read page by page; an entry's nearest shown ancestors are kept only until its
            // last child has been read, so memory follows the width of the DAG, not the range.
            var nearest: [Hash32: (ancestors: Set<Hash32>, childrenLeft: Int)] = [:]
            var result: [Hash32: [Hash32]] = [:]
            try store.forEachLogPage(range, pageSize: 1000) { page in
                for stored in page {
                    let id = stored.entry.id
                    var found = Set<Hash32>()
                    for parent in stored.entry.parents {
                        if shownIDs.contains(parent) {
                            found.insert(parent)
                        } else if var waiting = nearest[parent] {
                            found.formUnion(waiting.ancestors)
                            waiting.childrenLeft -= 1
                            nearest[parent] = waiting.childrenLeft > 0 ? waiting : nil
                        }
                    }
                    if shownIDs.contains(id) {
                        result[id] = found.sorted()
                    } else if !found.isEmpty {
                        let children = try store.childCount(of: id)
                        if children > 0 { nearest[id] = (found, children) }
                    }
                }
                return true
            }
            return result
        }
    }
}

/// Prints entries beside a ``GitGraph`` as `git log --graph` prints commits: the rows before
/// an entry's own row alone, the entry's first line on its row and its further lines beside
/// the rows that follow, then the rows left; in the full format a padding row separates
/// entries. Rows are printed without trailing spaces.
struct GraphPrinter {
    let oneline: Bool
    private var graph = GitGraph()
    private var shownOne = false

    init(oneline: Bool) { self.oneline = oneline }

    mutating func print(_ stored: StoredEntry, parents: [Hash32]) throws {
        graph.update(stored.entry.id, parents: parents)
        if !oneline && shownOne { try emit(graph.paddingLine()) }
        shownOne = true
        var row = graph.nextLine()
        while !row.isCommit {
            try emit(row.line)
            row = graph.nextLine()
        }
        let lines = oneline ? [EntryRendering.oneline(stored)] : EntryRendering.block(stored)
        try Terminal.out.line(row.line + lines[0])
        for line in lines.dropFirst() { try Terminal.out.line(graph.nextLine().line + line) }
        for line in graph.remainder() { try emit(line) }
    }

    private func emit(_ row: String) throws {
        var row = Substring(row)
        while row.last == " " { row.removeLast() }
        try Terminal.out.line(String(row))
    }
}

/// Finds a writer's key from a full key or a unique prefix (4 or more hex digits) of the keys
/// in the writer set: `log --author`, `writers revoke`.
enum WriterLookup {
    static func resolve(_ text: String, in log: CairnLog, option: String = "--author") async throws -> PublicKey {
        if let key = PublicKey(hex: text) { return key }
        let prefix = text.lowercased()
        guard prefix.count >= 4, prefix.count < 64, prefix.allSatisfy(\.isHexDigit) else {
            throw CLIError.usage(
                "\(option) '\(text)': expected a writer's public key (64 hex digits) or a unique prefix of it (4 or more hex digits); "
                    + "`cairn writers list` shows the keys")
        }
        let matches = try await log.writers().map(\.key).filter { $0.hex.hasPrefix(prefix) }
        switch matches.count {
        case 0: throw CLIError.notFound("no writer's key starts with \(prefix) (`cairn writers list` shows the keys)")
        case 1: return matches[0]
        default:
            throw CLIError.ambiguous(
                "key prefix \(prefix) is ambiguous; candidates: \(matches.map(\.hex).joined(separator: ", ")) (give more digits)")
        }
    }
}

/// Finds an entry from its id or a unique prefix of it; an ambiguous prefix lists the
/// candidates, like git ("short object ID 6f21 is ambiguous").
enum EntryLookup {
    static func resolve(_ prefix: String, in log: CairnLog) async throws -> StoredEntry {
        do {
            return try await log.entry(prefix: prefix)
        } catch {
            guard error.code == .ambiguous else { throw error }
            let candidates = try await log.withStore { try $0.entries(prefix: prefix, limit: 10) }
            let listed = candidates.map { "\($0.entry.id.short) \($0.entry.kind) \(TimeFormat.hlc($0.entry.hlc))" }
            throw CLIError.ambiguous(
                "short entry id \(prefix) is ambiguous; candidates: \(listed.joined(separator: ", "))\(candidates.count == 10 ? ", …" : "") (give more digits)")
        }
    }
}
