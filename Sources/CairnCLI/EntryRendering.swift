import CairnCore
import CairnStore
import Cairn

/// How entries look in `log`, `show`, `history` and `tail`: one place, so that a kind, a
/// subject or a JSON field is spelled the same everywhere.
enum EntryRendering {
    /// A one-line description: `put tables/orders (12 B)`, `merge of 2 parents (1 decision)`…
    static func subject(_ stored: StoredEntry) -> String {
        let entry = stored.entry
        var text: String
        switch entry.payload {
        case .genesis(let name, let writers):
            text = "genesis \"\(name)\" (\(writers.count) writer\(writers.count == 1 ? "" : "s"))"
        case .put(let bucket, let key, let value):
            text = "put \(Quote.path(bucket, key)) (\(value.length) B)"
        case .delete(let bucket, let key):
            text = "delete \(Quote.path(bucket, key))"
        case .merge(let decisions):
            text = "merge of \(entry.parents.count) parents (\(decisions.count) decision\(decisions.count == 1 ? "" : "s"))"
        case .addWriter(let grant):
            text = "add-writer \(grant.key.short) as \(grant.role)"
        case .revokeWriter(let key, let from):
            text = "revoke-writer \(key.short) from \(TimeFormat.hlc(from))"
        }
        if stored.inert { text += " [inert]" }
        return text
    }

    /// `id12 time #counter author12 subject`: `log --oneline`.
    static func oneline(_ stored: StoredEntry) -> String {
        "\(stored.entry.id.short) \(TimeFormat.hlc(stored.entry.hlc)) \(stored.entry.author.short) \(subject(stored))"
    }

    /// The multi-line, git-log-like block of `cairn log` (without the trailing blank line).
    static func block(_ stored: StoredEntry) -> [String] {
        let entry = stored.entry
        var lines = [
            "entry \(entry.id.hex)",
            "Kind:    \(subject(stored))",
            "Author:  \(entry.author.short)",
            "Date:    \(TimeFormat.hlc(entry.hlc))  (hlc \(entry.hlc.rawValue))",
        ]
        if !entry.parents.isEmpty { lines.append("Parents: " + entry.parents.map(\.short).joined(separator: " ")) }
        if case .merge(let decisions) = entry.payload {
            for decision in decisions { lines.append("Decided: \(decisionText(decision))") }
        }
        if case .put(_, _, let value) = entry.payload { lines.append("Value:   \(value.digest.short) (\(value.length) bytes)") }
        if stored.inert { lines.append("Inert:   yes (its author was revoked at its HLC; not in the state)") }
        lines.append("Cursor:  \(stored.seq)")
        return lines
    }

    /// `tables/orders: 3f2a9c1b2d4e wins over 1a2b3c4d5e6f, 9f8e7d6c5b4a`.
    static func decisionText(_ decision: MergeDecision) -> String {
        "\(Quote.path(decision.bucket, decision.key)): \(decision.winner.short) wins over "
            + decision.losers.map(\.short).joined(separator: ", ")
    }

    // MARK: - JSON

    /// The JSON object of an entry (`log --json`, `show --json`). Keys, in this order: `id`,
    /// `cursor`, `kind`, `hlc`, `hlc_wall_ms`, `hlc_counter`, `time`, `author`, `parents`,
    /// `inert`, `ingested_ms`, then the kind's fields (see ``payloadFields(_:)``).
    static func json(_ stored: StoredEntry, extra: [(String, JSON)] = []) -> JSON {
        let entry = stored.entry
        var fields: [(String, JSON)] = [
            ("id", .string(entry.id.hex)),
            ("cursor", .int(stored.seq)),
            ("kind", .string(entry.kind.description)),
        ]
        fields += hlcFields(entry.hlc)
        fields += [
            ("author", .string(entry.author.hex)),
            ("parents", .array(entry.parents.map { .string($0.hex) })),
            ("inert", .bool(stored.inert)),
            ("ingested_ms", .uint(stored.ingestedMilliseconds)),
        ]
        return .object(fields + payloadFields(entry.payload) + extra)
    }

    /// `hlc` (raw integer), `hlc_wall_ms`, `hlc_counter`, `time` (ISO-8601 of the wall part).
    static func hlcFields(_ hlc: HLC) -> [(String, JSON)] {
        [
            ("hlc", .uint(hlc.rawValue)),
            ("hlc_wall_ms", .uint(hlc.wallMilliseconds)),
            ("hlc_counter", .int(Int64(hlc.counter))),
            ("time", .string(TimeFormat.iso(milliseconds: hlc.wallMilliseconds))),
        ]
    }

    /// Kind-specific fields: put `bucket`, `key`, `digest`, `length`; delete `bucket`, `key`;
    /// merge `decisions` (`bucket`, `key`, `winner`, `losers`); genesis `name`, `writers`
    /// (`key`, `role`); add-writer `writer` (`key`, `role`); revoke-writer `writer` (`key`,
    /// `from`, `from_time`).
    static func payloadFields(_ payload: Payload) -> [(String, JSON)] {
        switch payload {
        case .genesis(let name, let writers):
            [("name", .string(name)), ("writers", .array(writers.map(grantJSON)))]
        case .put(let bucket, let key, let value):
            [("bucket", .string(bucket)), ("key", .string(key)), ("digest", .string(value.digest.hex)),
             ("length", .int(Int64(value.length)))]
        case .delete(let bucket, let key):
            [("bucket", .string(bucket)), ("key", .string(key))]
        case .merge(let decisions):
            [("decisions", .array(decisions.map(decisionJSON)))]
        case .addWriter(let grant):
            [("writer", grantJSON(grant))]
        case .revokeWriter(let key, let from):
            [("writer", revocationJSON(key: key, from: from))]
        }
    }

    static func grantJSON(_ grant: WriterGrant) -> JSON {
        .object([("key", .string(grant.key.hex)), ("role", .string(grant.role.description))])
    }

    static func revocationJSON(key: PublicKey, from: HLC) -> JSON {
        .object([("key", .string(key.hex)), ("from", .uint(from.rawValue)),
                 ("from_time", .string(TimeFormat.iso(milliseconds: from.wallMilliseconds)))])
    }

    static func decisionJSON(_ decision: MergeDecision) -> JSON {
        .object([
            ("bucket", .string(decision.bucket)), ("key", .string(decision.key)),
            ("winner", .string(decision.winner.hex)), ("losers", .array(decision.losers.map { .string($0.hex) })),
        ])
    }
}
