import CairnCore
import CairnStore
import ArgumentParser
import Cairn

/// `cairn tail`: the change stream (CDC) as JSON lines.
struct TailCommand: CairnCommand {
    static let configuration = CommandConfiguration(
        commandName: "tail",
        abstract: "Stream changes as JSON lines, in local ingest order (CDC).",
        discussion: """
            One JSON object per entry, shaped like a Debezium envelope, keys in this order:
              op       c (create), u (update), d (delete), m (merge), g (genesis),
                       wa (writer added), wr (writer revoked)
              before   for a put or delete: the key's winning write just before this entry
                       landed, or null
              after    the key's winning write once it landed (not this entry if a later write
                       had already landed), or null
              source   {"log","author","entry","parents","hlc","hlc_wall_ms","kind","inert"}
              bucket, key   for a put or delete, else null
              ts_ms    when this node applied the entry (ms since the epoch)
              cursor   the resume position: 'tail --since CURSOR' continues right after it
            then, for a merge, "decisions": [{"bucket","key","winner","losers"}]; for writer \
            changes, "writer": {"key","role"} or {"key","from","from_time"}; for the genesis, \
            "name" and "writers".
            An image is {"entry","digest","length"} for a put, {"entry","deleted":true} for a \
            tombstone. With --values a put's image also carries the bytes: "value_utf8" when \
            they are valid UTF-8, else "value_base64"; or "purged":true / "missing":true.
            Each line is flushed as written. Delivery is at-least-once across restarts: store \
            the cursor of the last line processed and resume with --since. A closed stdout \
            (e.g. '| head -1') ends the stream with exit status 0.
            """)

    @OptionGroup var global: GlobalOptions

    @Option(help: ArgumentHelp("Start right after this cursor (0: from the beginning).", valueName: "cursor"))
    var since: Int64 = 0

    @Flag(name: .shortAndLong, help: "Keep waiting for new entries (from any process) instead of ending.")
    var follow = false

    @Flag(help: "Include the value bytes in the before/after images.")
    var values = false

    func validate() throws {
        if since < 0 { throw ValidationError("--since must be a cursor of 0 or more") }
    }

    func run() async throws {
        let log = try global.openForReading()
        global.log.debug("tailing", metadata: ["since": .stringConvertible(since), "follow": .stringConvertible(follow)])
        for try await change in log.changes(after: since, follow: follow) {
            try Terminal.out.json(try await envelope(change, log: log))
            try Terminal.out.flush()
        }
    }

    private func envelope(_ change: Change, log: CairnLog) async throws -> JSON {
        let entry = change.entry
        let target = entry.payload.target
        var fields: [(String, JSON)] = [
            ("op", .string(change.operation)),
            ("before", try await image(change.before, log: log)),
            ("after", try await image(change.after, log: log)),
            ("source", .object([
                ("log", .string(log.logID.hex)), ("author", .string(entry.author.hex)), ("entry", .string(entry.id.hex)),
                ("parents", .array(entry.parents.map { .string($0.hex) })), ("hlc", .uint(entry.hlc.rawValue)),
                ("hlc_wall_ms", .uint(entry.hlc.wallMilliseconds)), ("kind", .string(entry.kind.description)),
                ("inert", .bool(change.inert)),
            ])),
            ("bucket", .optional(target?.bucket)),
            ("key", .optional(target?.key)),
            ("ts_ms", .uint(change.ingestedMilliseconds)),
            ("cursor", .int(change.cursor)),
        ]
        if target == nil { fields += EntryRendering.payloadFields(entry.payload) }
        return .object(fields)
    }

    /// A before/after image: `{"entry","digest","length"}` or `{"entry","deleted":true}`.
    private func image(_ stored: StoredEntry?, log: CairnLog) async throws -> JSON {
        guard let stored else { return .null }
        var fields: [(String, JSON)] = [("entry", .string(stored.entry.id.hex))]
        switch stored.entry.payload {
        case .put(_, _, let ref):
            fields += [("digest", .string(ref.digest.hex)), ("length", .int(Int64(ref.length)))]
            if values { fields += ValueFormat.jsonFields(try await log.value(ref.digest)) }
        default:
            fields.append(("deleted", .bool(true)))
        }
        return .object(fields)
    }
}
