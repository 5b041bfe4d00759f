import CairnCore
import CairnStore
import ArgumentParser
import Cairn

/// `cairn history`: blame for one key.
struct HistoryCommand: CairnCommand {
    static let configuration = CommandConfiguration(
        commandName: "history",
        abstract: "Show every version of BUCKET/KEY, oldest first, and who won.",
        discussion: """
            One line per write (in last-writer-wins order, oldest first): a marker, the time, \
            the operation, the entry, its author and its value digest and length. Markers: '*' \
            the current winner; 'x' a write that lost to a concurrent one (the line names the \
            winner and the merge that recorded the decision); ' ' an earlier version; '!' an \
            inert write (its author was revoked). --json prints one object: {"bucket","key",\
            "winner","versions":[{"entry","cursor","op","hlc","hlc_wall_ms","hlc_counter","time",\
            "author","digest","length","inert","winner","lost":[{"merge","winner"}]}]}.

            EXAMPLES:
              cairn history tables/orders
              cairn history tables/orders -n 5
              cairn history tables/orders --json
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("The key: BUCKET/KEY.", valueName: "bucket/key"), transform: KeyPathArgument.parse)
    var path: KeyPathArgument

    @Flag(help: "Print the history as one JSON object.")
    var json = false

    @Option(name: [.customShort("n"), .customLong("limit")], help: ArgumentHelp("Show only the newest N versions (still oldest first).", valueName: "n"))
    var limit: Int?

    func validate() throws {
        if let limit, limit < 1 { throw ValidationError("-n must be at least 1") }
    }

    func run() async throws {
        let log = try global.openForReading()
        let count = try await log.historyCount(path.bucket, path.key)
        guard count > 0 else { throw CLIError.notFound("\(path) (never written)") }
        let winner = try await log.state(path.bucket, path.key)?.entryID
        if json {
            try Terminal.out.bytes(Array("{\"bucket\":\(JSON.string(path.bucket).rendered),\"key\":\(JSON.string(path.key).rendered),".utf8))
            try Terminal.out.bytes(Array("\"winner\":\(JSON.optional(winner?.hex).rendered),\"versions\":[".utf8))
            var first = true
            try await forEachPage(of: log) { page in
                for version in page {
                    try Terminal.out.bytes(Array(((first ? "" : ",") + jsonObject(version, winner: winner).rendered).utf8))
                    first = false
                }
            }
            try Terminal.out.line("]}")
            return
        }
        try Terminal.out.line("history of \(path): \(count) version\(count == 1 ? "" : "s"), oldest first")
        try await forEachPage(of: log) { page in
            for line in formatTable(page.map { row($0, winner: winner) }) { try Terminal.out.line(line) }
        }
    }

    /// The versions to show, a page at a time (each page's columns are aligned): every version
    /// from the oldest, or with `-n` the newest N.
    private func forEachPage(of log: CairnLog, _ body: ([KeyVersion]) throws -> Void) async throws {
        if let limit {
            try body(try await log.history(path.bucket, path.key, newest: limit))
            return
        }
        var last: KeyVersion?
        repeat {
            let page = try await log.history(path.bucket, path.key, after: last, limit: 1000)
            try body(page)
            last = page.last
        } while last != nil
    }

    private func jsonObject(_ version: KeyVersion, winner: Hash32?) -> JSON {
        let stored = version.stored, entry = stored.entry
        var fields: [(String, JSON)] = [("entry", .string(entry.id.hex)), ("cursor", .int(stored.seq)), ("op", .string(entry.kind.description))]
        fields += EntryRendering.hlcFields(entry.hlc)
        fields.append(("author", .string(entry.author.hex)))
        if case .put(_, _, let ref) = entry.payload {
            fields += [("digest", .string(ref.digest.hex)), ("length", .int(Int64(ref.length)))]
        }
        fields += [
            ("inert", .bool(stored.inert)),
            ("winner", .bool(entry.id == winner)),
            ("lost", .array(version.defeats.map { .object([("merge", .string($0.merge.hex)), ("winner", .string($0.winner.hex))]) })),
        ]
        return .object(fields)
    }

    private func row(_ version: KeyVersion, winner: Hash32?) -> [String] {
        let entry = version.stored.entry
        var marker = " ", note = ""
        if entry.id == winner {
            marker = "*"
            note = "winner"
        } else if !version.defeats.isEmpty {
            marker = "x"
            note = version.defeats.map { "lost to \($0.winner.short) (merge \($0.merge.short))" }.joined(separator: "; ")
        }
        if version.stored.inert {
            marker = "!"
            note = "inert: author revoked" + (note.isEmpty ? "" : "; " + note)
        }
        let value: String
        switch entry.payload {
        case .put(_, _, let ref): value = "\(ref.digest.short) \(ref.length) B"
        default: value = "tombstone"
        }
        return [marker, TimeFormat.hlc(entry.hlc), entry.kind.description, entry.id.short, entry.author.short, value, note]
    }
}
