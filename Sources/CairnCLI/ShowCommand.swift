import CairnCore
import CairnStore
import ArgumentParser
import Cairn

/// `cairn show`: one entry in full.
struct ShowCommand: CairnCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Show one entry in full.",
        discussion: """
            Prints the entry's id, kind, HLC, author, parents, payload (for a merge: each decided \
            key with its winner and losers), signature, value reference (digest, length, and \
            whether the bytes are present, purged or missing), whether it is inert, and its ingest \
            cursor; then the value itself if it is printable text. --value writes only the raw \
            value bytes instead. --json prints one object: the fields of 'cairn log --json' plus \
            signature and, for a put, value_state and value_utf8 or value_base64 (value_utf8 when \
            the bytes are valid UTF-8).

            EXAMPLES:
              cairn show 6f21
              cairn show 6f21 --value > value.bin
              cairn show 6f21 --json
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("The entry id, or a unique prefix of 4 or more hex digits.", valueName: "id"))
    var id: String

    @Flag(help: "Write only the raw value bytes of a put (no newline added).")
    var value = false

    @Flag(help: "Print the entry as one JSON object.")
    var json = false

    func validate() throws {
        if value && json { throw ValidationError("--value cannot be combined with --json") }
    }

    func run() async throws {
        let log = try global.openForReading()
        let stored = try await EntryLookup.resolve(id, in: log)
        let entry = stored.entry
        var lookup: ValueLookup?
        if case .put(_, _, let ref) = entry.payload { lookup = try await log.value(ref.digest) }

        if value {
            switch lookup {
            case .present(let bytes): try Terminal.out.bytes(bytes)
            case .purged: throw CLIError.message("the value of entry \(entry.id.short) was purged")
            case .missing: throw CLIError.message("the value of entry \(entry.id.short) is not stored on this node")
            case nil: throw CLIError.message("entry \(entry.id.short) is a \(entry.kind), which has no value")
            }
            return
        }
        if json {
            var extra: [(String, JSON)] = [("signature", .string(Hex.encode(entry.signature)))]
            if let lookup { extra += [("value_state", .string(ValueFormat.state(lookup)))] + ValueFormat.jsonFields(lookup) }
            try Terminal.out.json(EntryRendering.json(stored, extra: extra))
            return
        }

        var rows: [[String]] = [
            ["entry", entry.id.hex],
            ["kind", entry.kind.description],
            ["hlc", "\(TimeFormat.hlc(entry.hlc))  (hlc \(entry.hlc.rawValue), \(entry.hlc))"],
            ["author", entry.author.hex],
        ]
        rows += entry.parents.enumerated().map { [$0 == 0 ? "parents" : "", $1.hex] }
        if entry.parents.isEmpty { rows.append(["parents", "(none)"]) }
        switch entry.payload {
        case .genesis(let name, let writers):
            rows.append(["name", name])
            rows += writers.enumerated().map { [$0 == 0 ? "writers" : "", "\($1.key.hex) \($1.role)"] }
        case .put(let bucket, let key, let ref):
            rows += [["bucket", Quote.cStyle(bucket)], ["key", Quote.cStyle(key)],
                     ["value", "digest \(ref.digest.hex), \(ref.length) bytes, \(lookup.map(ValueFormat.state) ?? "missing")"]]
        case .delete(let bucket, let key):
            rows += [["bucket", Quote.cStyle(bucket)], ["key", Quote.cStyle(key)]]
        case .merge(let decisions):
            if decisions.isEmpty { rows.append(["decisions", "(none: no key was written on more than one branch)"]) }
            for (index, decision) in decisions.enumerated() {
                rows.append([index == 0 ? "decisions" : "", Quote.path(decision.bucket, decision.key)])
                rows.append(["", "  winner \(decision.winner.hex)"])
                rows += decision.losers.map { ["", "  loser  \($0.hex)"] }
            }
        case .addWriter(let grant):
            rows += [["writer", grant.key.hex], ["role", grant.role.description]]
        case .revokeWriter(let key, let from):
            rows += [["writer", key.hex], ["from", "\(TimeFormat.hlc(from))  (hlc \(from.rawValue))"]]
        }
        rows += [
            ["signature", Hex.encode(entry.signature)],
            ["inert", stored.inert ? "yes (its author was revoked at its HLC; not in the state)" : "no"],
            ["cursor", "\(stored.seq) (ingested \(TimeFormat.iso(milliseconds: stored.ingestedMilliseconds)))"],
        ]
        for line in formatTable(rows) { try Terminal.out.line(line) }
        if case .present(let bytes) = lookup {
            try Terminal.out.line("")
            if let text = ValueFormat.printableText(bytes) {
                try Terminal.out.line(text.hasSuffix("\n") ? String(text.dropLast()) : text)
            } else {
                try Terminal.out.line("(\(bytes.count) bytes of binary data; use --value to write them raw)")
            }
        }
    }
}
