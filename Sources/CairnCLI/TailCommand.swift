import CairnCore
import CairnStore
import ArgumentParser
import Cairn

/// `cairn tail`: the change stream (CDC) as JSON lines in Debezium's envelope.
struct TailCommand: CairnCommand {
    static let configuration = CommandConfiguration(
        commandName: "tail",
        abstract: "Stream changes as JSON lines, in this node's change-log order (CDC).",
        discussion: """
            One JSON object per change, in Debezium's envelope (docs/cairn-change-event.schema.json \
            is the JSON Schema of every line), keys in this order:
              op       c (create), u (update), d (delete), r (snapshot read); Cairn's own:
                       m (merge), g (genesis), wa (writer added), wr (writer revoked)
              before   the key's live value before the change, or null (none; always null for c)
              after    the key's live value after the change, or null (none; always null for d)
              source   {"version","connector":"cairn","name","ts_ms","snapshot","log","entry",
                        "author","hlc","hlc_wall_ms","parents","kind","cursor","entry_seq",
                        "inert","cause"}
              transaction   {"id","total_order","data_collection_order"} for a change of a
                       local write transaction, else null
              bucket, key   the key changed, or null
              ts_ms    when this node recorded the change (ms since the epoch)
              cursor   the resume position: 'tail --since CURSOR' continues right after it
            then, for a merge, "decisions": [{"bucket","key","winner","losers"}]; for writer \
            changes, "writer": {"key","role"} or {"key","from","from_time"}; for the genesis, \
            "name" and "writers".
            A row image is {"entry","digest","length"}; with --value-encoding other than none it \
            also has "value" (the bytes in that encoding, or null) and "value_state" (present, \
            purged, missing, or not_utf8 under utf8).
            cause is entry (the change an applied entry made: one per entry), writer_set (a \
            grant or revocation, source.entry, changed which write wins), rebuild (verify \
            --repair) or snapshot.
            Lines at a cursor never change. Delivery is at-least-once across restarts: store \
            the cursor of the last line processed and resume with --since; on another node, \
            resume with --after-entry ENTRY (see README). A closed stdout (e.g. '| head -1') \
            ends the stream with exit status 0.
            """)

    typealias ValueEncoding = ChangeValueEncoding

    @OptionGroup var global: GlobalOptions

    @Option(help: ArgumentHelp("Start right after this cursor (0: from the beginning).", valueName: "cursor"))
    var since: Int64 = 0

    @Option(help: ArgumentHelp("Start right after the change that applied this entry on this node (failover from another node).", valueName: "entry"))
    var afterEntry: String?

    @Flag(name: .shortAndLong, help: "Keep waiting for new changes (from any process) instead of ending.")
    var follow = false

    @Flag(help: "First emit every live key as op r (source.snapshot true, \"last\" on the last), then continue from the cursor the snapshot was taken at.")
    var snapshot = false

    @Option(help: ArgumentHelp("How images carry the value bytes in \"value\": base64, utf8, hex or none.", valueName: "encoding"))
    var valueEncoding: ValueEncoding = .none

    @Flag(help: "Shorthand for --value-encoding base64.")
    var values = false

    @Flag(help: "After each delete, a tombstone line {\"bucket\",\"key\",\"value\":null,\"cursor\"} (for Kafka compaction).")
    var tombstones = false

    @Flag(help: "Emit {\"status\":\"BEGIN\"} and {\"status\":\"END\"} lines around the changes of each local write transaction.")
    var transactions = false

    var encoding: ValueEncoding { values && valueEncoding == .none ? .base64 : valueEncoding }

    func validate() throws {
        if since < 0 { throw ValidationError("--since must be a cursor of 0 or more") }
        if afterEntry != nil && (since != 0 || snapshot) { throw ValidationError("--after-entry cannot be combined with --since or --snapshot") }
    }

    func run() async throws {
        let log = try global.openForReading()
        var start = Cursor(since)
        if let afterEntry {
            let stored = try await log.entry(prefix: afterEntry)
            start = try await log.cursor(afterEntry: stored.entry.id)
        }
        global.log.debug("tailing", metadata: ["since": .stringConvertible(start), "follow": .stringConvertible(follow)])
        var renderer = ChangeEventJSON(logID: log.logID.hex, name: try await log.name, encoding: encoding, tombstones: tombstones, transactions: transactions)
        var changes = log.changes(after: start, follow: follow, snapshot: snapshot, values: encoding != .none).makeAsyncIterator()
        while let change = try await changes.next() {
            renderer.render(change)
            // Written once the batch read is consumed (and at 64 KiB): before any wait.
            if renderer.line.bytes.count >= 1 << 16 || !changes.hasBufferedChanges {
                try Terminal.out.bytes(renderer.line.bytes)
                try Terminal.out.flush()
                renderer.line.bytes.removeAll(keepingCapacity: true)
            }
        }
        try Terminal.out.bytes(renderer.line.bytes)
    }
}

extension ChangeValueEncoding: ExpressibleByArgument {}
