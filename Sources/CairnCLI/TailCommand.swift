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

    enum ValueEncoding: String, ExpressibleByArgument, CaseIterable {
        case base64, utf8, hex, none
    }

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
        var renderer = EventRenderer(logID: log.logID.hex, name: try await log.name, encoding: encoding, tombstones: tombstones, transactions: transactions)
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

/// Renders changes as JSON lines, straight into bytes (no intermediate JSON values: `tail`
/// writes 100k+ lines a second).
struct EventRenderer {
    let logID: String
    let name: String
    let encoding: TailCommand.ValueEncoding
    let tombstones: Bool
    let transactions: Bool
    var line = JSONLine()

    init(logID: String, name: String, encoding: TailCommand.ValueEncoding, tombstones: Bool, transactions: Bool) {
        (self.logID, self.name, self.encoding, self.tombstones, self.transactions) = (logID, name, encoding, tombstones, transactions)
    }

    mutating func render(_ change: Change) {
        let entry = change.entry
        let operation = change.operation
        if transactions, let transaction = change.transaction, transaction.totalOrder == 1 {
            line.open()
            line.key("status"); line.string("BEGIN")
            line.key("id"); line.string(String(transaction.id))
            line.key("event_count"); line.null()
            line.key("ts_ms"); line.int(Int64(change.recordedMilliseconds))
            line.close(); line.newline()
        }
        line.open()
        line.key("op"); line.string(operation.rawValue)
        line.key("before"); image(change.before, change.beforeValue)
        line.key("after"); image(change.after, change.afterValue)
        line.key("source")
        line.open()
        line.key("version"); line.string(CairnVersion.string)
        line.key("connector"); line.string("cairn")
        line.key("name"); line.string(name)
        line.key("ts_ms"); line.int(Int64(change.recordedMilliseconds))
        line.key("snapshot")
        if change.cause == .snapshot { change.isLastSnapshotRow ? line.string("last") : line.bool(true) } else { line.bool(false) }
        line.key("log"); line.string(logID)
        line.key("entry"); line.hex(entry.id.bytes)
        line.key("author"); line.hex(entry.author.bytes)
        line.key("hlc"); line.int(Int64(clamping: entry.hlc.rawValue))
        line.key("hlc_wall_ms"); line.int(Int64(clamping: entry.hlc.wallMilliseconds))
        line.key("parents"); line.hexArray(entry.parents.map(\.bytes))
        line.key("kind"); line.string(entry.kind.description)
        line.key("cursor"); line.int(change.cursor.rawValue)
        line.key("entry_seq"); line.int(change.stored.seq)
        line.key("inert"); line.bool(change.inert)
        line.key("cause"); line.string(change.cause.rawValue)
        line.close()
        line.key("transaction")
        if let transaction = change.transaction {
            line.open()
            line.key("id"); line.string(String(transaction.id))
            line.key("total_order"); line.int(Int64(transaction.totalOrder))
            line.key("data_collection_order"); line.int(Int64(transaction.dataCollectionOrder))
            line.close()
        } else {
            line.null()
        }
        line.key("bucket"); line.optional(change.bucket)
        line.key("key"); line.optional(change.key)
        line.key("ts_ms"); line.int(Int64(change.recordedMilliseconds))
        line.key("cursor"); line.int(change.cursor.rawValue)
        if change.bucket == nil && change.cause == .entry {
            for (key, value) in EntryRendering.payloadFields(entry.payload) {
                line.key(key); line.raw(value.rendered)
            }
        }
        line.close(); line.newline()
        if tombstones, operation == .delete, let bucket = change.bucket, let key = change.key {
            line.open()
            line.key("bucket"); line.string(bucket)
            line.key("key"); line.string(key)
            line.key("value"); line.null()
            line.key("cursor"); line.int(change.cursor.rawValue)
            line.close(); line.newline()
        }
        if transactions, let transaction = change.transaction, transaction.totalOrder == transaction.eventCount {
            line.open()
            line.key("status"); line.string("END")
            line.key("id"); line.string(String(transaction.id))
            line.key("event_count"); line.int(Int64(transaction.eventCount))
            line.key("ts_ms"); line.int(Int64(change.recordedMilliseconds))
            line.close(); line.newline()
        }
    }

    /// A row image: the key's live value, or null when it has none (a tombstone, or nothing).
    private mutating func image(_ image: ChangeImage?, _ lookup: ValueLookup?) {
        guard let image, let ref = image.value else { return line.null() }
        line.open()
        line.key("entry"); line.hex(image.entryID.bytes)
        line.key("digest"); line.hex(ref.digest.bytes)
        line.key("length"); line.int(Int64(ref.length))
        if encoding != .none {
            line.key("value")
            switch lookup {
            case .present(let bytes)?:
                switch encoding {
                case .base64: line.string(ValueFormat.base64(bytes))
                case .hex: line.hex(bytes)
                case .utf8, .none:
                    if let text = String(validating: bytes, as: UTF8.self) {
                        line.string(text)
                    } else {
                        line.null()
                        line.key("value_state"); line.string("not_utf8")
                        line.close()
                        return
                    }
                }
                line.key("value_state"); line.string("present")
            case .purged?:
                line.null(); line.key("value_state"); line.string("purged")
            case .missing?, nil:
                line.null(); line.key("value_state"); line.string("missing")
            }
        }
        line.close()
    }
}
