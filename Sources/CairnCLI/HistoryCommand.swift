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
        let history = try await log.history(path.bucket, path.key)
        guard !history.versions.isEmpty else { throw CLIError.notFound("\(path) (never written)") }
        let shown = limit.map { Array(history.versions.suffix($0)) } ?? history.versions
        // For each losing write: the merges that recorded its defeat, and the winner each named.
        var defeats: [Hash32: [(merge: Hash32, winner: Hash32)]] = [:]
        for (merge, decision) in history.merges {
            for loser in decision.losers { defeats[loser, default: []].append((merge.entry.id, decision.winner)) }
        }

        if json {
            let versions: [JSON] = shown.map { stored in
                let entry = stored.entry
                var fields: [(String, JSON)] = [
                    ("entry", .string(entry.id.hex)), ("cursor", .int(stored.seq)), ("op", .string(entry.kind.description)),
                ]
                fields += EntryRendering.hlcFields(entry.hlc)
                fields.append(("author", .string(entry.author.hex)))
                if case .put(_, _, let ref) = entry.payload {
                    fields += [("digest", .string(ref.digest.hex)), ("length", .int(Int64(ref.length)))]
                }
                fields += [
                    ("inert", .bool(stored.inert)),
                    ("winner", .bool(entry.id == history.winner)),
                    ("lost", .array((defeats[entry.id] ?? []).map {
                        .object([("merge", .string($0.merge.hex)), ("winner", .string($0.winner.hex))])
                    })),
                ]
                return .object(fields)
            }
            try Terminal.out.json(.object([
                ("bucket", .string(path.bucket)), ("key", .string(path.key)),
                ("winner", .optional(history.winner?.hex)), ("versions", .array(versions)),
            ]))
            return
        }

        try Terminal.out.line("history of \(path): \(history.versions.count) version\(history.versions.count == 1 ? "" : "s"), oldest first")
        let rows: [[String]] = shown.map { stored in
            let entry = stored.entry
            let id = entry.id
            var marker = " ", note = ""
            if id == history.winner {
                marker = "*"
                note = "winner"
            } else if let lost = defeats[id], !lost.isEmpty {
                marker = "x"
                note = lost.map { "lost to \($0.winner.short) (merge \($0.merge.short))" }.joined(separator: "; ")
            }
            if stored.inert {
                marker = "!"
                note = "inert: author revoked" + (note.isEmpty ? "" : "; " + note)
            }
            let value: String
            switch entry.payload {
            case .put(_, _, let ref): value = "\(ref.digest.short) \(ref.length) B"
            default: value = "tombstone"
            }
            return [marker, TimeFormat.hlc(entry.hlc), entry.kind.description, id.short, entry.author.short, value, note]
        }
        for line in formatTable(rows) { try Terminal.out.line(line) }
    }
}
