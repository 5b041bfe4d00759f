import CairnCore
import CairnStore

/// How change lines carry value bytes (`cairn tail --value-encoding`).
package enum ChangeValueEncoding: String, CaseIterable, Sendable {
    case base64, utf8, hex, none
}

/// Renders changes as the JSON lines of `cairn tail` (docs/cairn-change-event.schema.json),
/// straight into bytes (no intermediate JSON values: `tail` writes 100k+ lines a second). The
/// CLI and the HTTP API's change feed both render through this, so their lines are the same
/// bytes for the same change.
package struct ChangeEventJSON {
    let logID: String
    let name: String
    let encoding: ChangeValueEncoding
    let tombstones: Bool
    let transactions: Bool
    /// The lines rendered so far (the caller writes and clears them).
    package var line = JSONLine()

    package init(logID: String, name: String, encoding: ChangeValueEncoding, tombstones: Bool, transactions: Bool) {
        (self.logID, self.name, self.encoding, self.tombstones, self.transactions) = (logID, name, encoding, tombstones, transactions)
    }

    /// Appends the line (or lines, with tombstones or transaction markers) of `change`.
    package mutating func render(_ change: Change) {
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
        if change.bucket == nil && change.cause == .entry { payloadFields(entry.payload) }
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

    /// The fields of a change that is not about a key: the genesis's `name` and `writers`, a
    /// merge's `decisions`, a writer change's `writer` (the same fields as `cairn show --json`).
    private mutating func payloadFields(_ payload: Payload) {
        switch payload {
        case .genesis(let name, let writers):
            line.key("name"); line.string(name)
            line.key("writers"); line.array(writers) { $0.grant($1) }
        case .merge(let decisions):
            line.key("decisions")
            line.array(decisions) { line, decision in
                line.open()
                line.key("bucket"); line.string(decision.bucket)
                line.key("key"); line.string(decision.key)
                line.key("winner"); line.hex(decision.winner.bytes)
                line.key("losers"); line.hexArray(decision.losers.map(\.bytes))
                line.close()
            }
        case .addWriter(let grant):
            line.key("writer"); line.grant(grant)
        case .revokeWriter(let key, let from):
            line.key("writer")
            line.open()
            line.key("key"); line.hex(key.bytes)
            line.key("from"); line.int(Int64(clamping: from.rawValue))
            line.key("from_time"); line.string(ISOTime.string(milliseconds: from.wallMilliseconds))
            line.close()
        case .put, .delete:
            break
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
                case .base64: line.string(Base64.encode(bytes))
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

extension JSONLine {
    /// `{"key","role"}` of a writer grant.
    mutating func grant(_ grant: WriterGrant) {
        open()
        key("key"); hex(grant.key.bytes)
        key("role"); string(grant.role.description)
        close()
    }
}
