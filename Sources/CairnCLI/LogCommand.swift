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
            ISO-8601 UTC and counter) and parents. --graph draws the DAG as 'git log --graph' \
            does; when filters hide entries, each shown entry is linked to its nearest shown \
            ancestors. --json prints one JSON object per line with the keys id, cursor, kind, \
            hlc, hlc_wall_ms, hlc_counter, time, author, parents, inert, ingested_ms and the \
            kind's own fields.
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

    @Option(help: "Show at most this many entries.")
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
        let entries = try await log.log(filter)

        if json {
            for stored in entries { try Terminal.out.json(EntryRendering.json(stored)) }
            return
        }
        guard graph else {
            for (index, stored) in entries.enumerated() {
                if oneline {
                    try Terminal.out.line(EntryRendering.oneline(stored))
                } else {
                    if index > 0 { try Terminal.out.line("") }
                    for line in EntryRendering.block(stored) { try Terminal.out.line(line) }
                }
            }
            return
        }
        let parents = isFiltered ? try await nearestShownAncestors(of: entries, in: log) : nil
        let position = Dictionary(entries.enumerated().map { ($1.entry.id, $0) }, uniquingKeysWith: { a, _ in a })
        let nodes = entries.map { stored in
            GraphLayout.Node(
                id: stored.entry.id,
                parents: laneOrder(stored, parents: parents?[stored.entry.id] ?? stored.entry.parents, shown: entries, position: position))
        }
        for row in GraphLayout.layout(nodes) {
            switch row {
            case .connector(let cells):
                try Terminal.out.line(cells)
            case .node(let index, let cells, let continuation):
                if oneline {
                    try Terminal.out.line("\(cells) \(EntryRendering.oneline(entries[index]))")
                } else {
                    let lines = EntryRendering.block(entries[index])
                    try Terminal.out.line("\(cells) \(lines[0])")
                    for line in lines.dropFirst() { try Terminal.out.line("\(continuation) \(line)") }
                    if index < entries.count - 1 { try Terminal.out.line(trimmed(continuation)) }
                }
            }
        }
    }

    private func trimmed(_ text: String) -> String {
        var text = text
        while text.last == " " { text.removeLast() }
        return text
    }

    /// Parents in lane order: a parent by the same author first (so each node's own line stays
    /// straight), then by display order (newest first); parents not shown come last.
    private func laneOrder(_ stored: StoredEntry, parents: [Hash32], shown: [StoredEntry], position: [Hash32: Int]) -> [Hash32] {
        func sameAuthor(_ id: Hash32) -> Bool { position[id].map { shown[$0].entry.author == stored.entry.author } ?? false }
        return parents.sorted { a, b in
            let sameA = sameAuthor(a), sameB = sameAuthor(b)
            if sameA != sameB { return sameA }
            return (position[a] ?? .max, a) < (position[b] ?? .max, b)
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
        var nearest: [Hash32: Set<Hash32>] = [:]
        var result: [Hash32: [Hash32]] = [:]
        for stored in try await log.log(range) {
            var found = Set<Hash32>()
            for parent in stored.entry.parents {
                if shownIDs.contains(parent) { found.insert(parent) } else { found.formUnion(nearest[parent] ?? []) }
            }
            if shownIDs.contains(stored.entry.id) { result[stored.entry.id] = found.sorted() } else { nearest[stored.entry.id] = found }
        }
        return result
    }
}

/// Finds a writer's key from a full key or a unique prefix of the keys in the writer set.
enum WriterLookup {
    static func resolve(_ text: String, in log: CairnLog) async throws -> PublicKey {
        if let key = PublicKey(hex: text) { return key }
        let prefix = text.lowercased()
        guard prefix.count >= 4, prefix.count < 64, Hex.decode(prefix + (prefix.count % 2 == 1 ? "0" : "")) != nil else {
            throw ValidationError("expected a public key or a prefix of 4 to 63 hex digits, got '\(text)'")
        }
        let matches = try await log.writers().map(\.key).filter { $0.hex.hasPrefix(prefix) }
        switch matches.count {
        case 0: throw CLIError.notFound("writer with key prefix \(prefix)")
        case 1: return matches[0]
        default: throw CLIError.ambiguous("key prefix \(prefix) matches \(matches.count) writers: \(matches.map(\.short).joined(separator: ", "))")
        }
    }
}
