import CairnCore
import CairnSQLite

// The change log: the CDC stream as recorded when the state changed, never recomputed
// (ARCHITECTURE.md, "Change stream"). Writers append rows in the transaction that changes the
// state; readers page through them joined with the entries they name.

/// A position in the change stream: the `seq` of a row of this node's change log. Monotone and
/// stable across restarts; local to this node (another node numbers its changes its own way).
public struct Cursor: RawRepresentable, Hashable, Comparable, Codable, Sendable, CustomStringConvertible,
    ExpressibleByIntegerLiteral
{
    /// The change log's `seq`; 0 is before the first change.
    public var rawValue: Int64

    /// Before the first change: `changes(after: .start)` yields everything.
    public static let start = Cursor(0)

    public init(rawValue: Int64) { self.rawValue = rawValue }
    public init(_ rawValue: Int64) { self.rawValue = rawValue }
    public init(integerLiteral value: Int64) { self.rawValue = value }

    public static func < (a: Cursor, b: Cursor) -> Bool { a.rawValue < b.rawValue }
    public var description: String { String(rawValue) }

    /// Decodes a bare JSON number, so a stored cursor reads like the `cursor` of `cairn tail`.
    /// - Throws: `DecodingError` when the value is not a 64-bit integer.
    public init(from decoder: any Decoder) throws {
        rawValue = try decoder.singleValueContainer().decode(Int64.self)
    }

    /// Encodes as a bare number.
    /// - Throws: the encoder's error.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

/// Why a change happened.
public enum ChangeCause: String, Sendable, Codable, CaseIterable {
    /// An entry was applied: its own change (every applied entry has exactly one).
    case entry
    /// A writer-set entry (a grant or revocation) made other entries inert or live again, and
    /// the key's winner changed: ``Change/entry`` is that writer-set entry.
    case writerSet = "writer_set"
    /// The derived tables were rebuilt (`verify --repair`, or the writer set derived when an
    /// older file was migrated) and the key's winner differed: ``Change/entry`` is the newest
    /// entry at that time.
    case rebuild
    /// Not a change: a key's current value, read by a snapshot (``Change/operation`` is `r`).
    case snapshot

    var code: Int64 {
        switch self {
        case .entry: 0
        case .writerSet: 1
        case .rebuild: 2
        case .snapshot: 3
        }
    }

    init?(code: Int64) {
        guard let cause = ChangeCause.allCases.first(where: { $0.code == code }) else { return nil }
        self = cause
    }
}

/// A change's operation, with Debezium's codes for row changes and Cairn's own for the rest.
public enum ChangeOperation: String, Sendable, Codable, CaseIterable {
    /// The key had no live value and now has one.
    case create = "c"
    /// The key had a live value and has one (possibly the same, when a write lost).
    case update = "u"
    /// The key has no live value now (`before` may be `nil` too: nothing was there).
    case delete = "d"
    /// A snapshot read of a live key.
    case read = "r"
    /// A merge entry.
    case merge = "m"
    /// The genesis entry.
    case genesis = "g"
    /// A writer grant.
    case writerAdded = "wa"
    /// A writer revocation.
    case writerRevoked = "wr"
}

/// A key's winning write, as a change's before or after image.
public struct ChangeImage: Sendable, Equatable {
    /// The winning entry: a put, or a delete's tombstone.
    public let entryID: Hash32
    public let hlc: HLC
    public let author: PublicKey
    /// The value the put references; `nil` for a tombstone.
    public let value: ValueRef?
    /// Whether the winner is a tombstone (the key has no live value).
    public var isDeleted: Bool { value == nil }
}

/// Where a change sits in the local append transaction that made it (``LogStore/append(_:signer:)``,
/// the library's `write([...])`): Debezium's `transaction` block.
public struct ChangeTransaction: Sendable, Equatable {
    /// The transaction id: the cursor of its first change.
    public let id: Int64
    /// 1-based position among the transaction's changes.
    public let totalOrder: Int
    /// 1-based position among the transaction's changes of the same bucket (Debezium's data
    /// collection; changes without a key form their own collection).
    public let dataCollectionOrder: Int
    /// How many changes the transaction made.
    public let eventCount: Int
}

/// One change of the stream: an applied entry, or another change of a key's winner, or a
/// snapshot read. What a cursor shows never changes once recorded.
public struct Change: Sendable {
    /// The resume position: pass it as `after:` to continue exactly after this change.
    public let cursor: Cursor
    /// Why the change happened.
    public let cause: ChangeCause
    /// The key whose winner this is about (`nil` for an entry without a key: merge, genesis,
    /// writer-set changes).
    public let bucket: String?
    public let key: String?
    /// The entry applied (cause `entry`), the writer-set entry that caused the change, the newest
    /// entry at a rebuild, or the key's winner (a snapshot). Its `inert` flag is the one recorded
    /// with the change.
    public let stored: StoredEntry
    /// When this node recorded the change (wall-clock milliseconds).
    public let recordedMilliseconds: UInt64
    /// The key's winning write just before the change (`nil`: never written, or all its writes
    /// inert).
    public let before: ChangeImage?
    /// The key's winning write just after it. For a write that lost to a newer one it is the
    /// newer one.
    public let after: ChangeImage?
    /// The local append transaction that made the change, if any.
    public let transaction: ChangeTransaction?
    /// The before image's bytes, when the stream was asked for values.
    public let beforeValue: ValueLookup?
    /// The after image's bytes, when the stream was asked for values.
    public let afterValue: ValueLookup?
    /// For a snapshot read: whether it is the snapshot's last row.
    public let isLastSnapshotRow: Bool

    /// The entry (see ``stored``).
    public var entry: SignedEntry { stored.entry }
    /// Whether the entry was inert (its author revoked at its HLC) when the change was recorded.
    public var inert: Bool { stored.inert }
    /// When this node applied the entry (wall-clock milliseconds).
    public var ingestedMilliseconds: UInt64 { stored.ingestedMilliseconds }
    /// The after image's bytes, when present (values asked for, a live value, not purged).
    public var value: [UInt8]? {
        if case .present(let bytes)? = afterValue { return bytes }
        return nil
    }

    /// The operation: `c`/`u`/`d` for a change about a key (from the images: Debezium's
    /// meaning), `r` for a snapshot read, else the entry's kind (`m`, `g`, `wa`, `wr`).
    public var operation: ChangeOperation {
        if cause == .snapshot { return .read }
        if bucket != nil {
            guard after?.value != nil else { return .delete }
            return before?.value != nil ? .update : .create
        }
        switch entry.payload {
        case .genesis: return .genesis
        case .addWriter: return .writerAdded
        case .revokeWriter: return .writerRevoked
        case .merge: return .merge
        case .put: return before?.value != nil ? .update : .create  // not reached: puts have a key
        case .delete: return .delete
        }
    }
}

/// The change-log bookkeeping of the write in progress.
struct ChangeRecorder {
    /// Winner changes found by `recomputeState`, written once the cause is known.
    var pending: [(bucket: String, key: String, before: Hash32?, after: Hash32?)] = []
    /// While set (`repair`), `recomputeState` records nothing; the rebuild diffs the state.
    var suspended = false
    /// The id of the local append transaction in progress.
    var transaction: Int64?
}

extension LogStore {
    // MARK: - Recording

    /// The id of the entry winning `bucket/key` in the state table.
    func stateWinnerID(bucket: String, key: String) throws -> Hash32? {
        let statement = try database.prepare(Schema.stateWinnerID).bind(.text(bucket), .text(key))
        return try statement.step() ? try statement.hash(0, "state") : nil
    }

    /// Appends one change row.
    func recordChange(
        entrySeq: Int64, cause: ChangeCause, bucket: String?, key: String?, before: Hash32?, after: Hash32?, inert: Bool
    ) throws {
        try database.prepare(Schema.insertChange).bind(
            .int(entrySeq), .int(cause.code), bucket.map { .text($0) } ?? .null, key.map { .text($0) } ?? .null,
            before.map { .blob($0.bytes) } ?? .null, after.map { .blob($0.bytes) } ?? .null, .int(inert ? 1 : 0),
            changeRecorder.transaction.map { .int($0) } ?? .null, .integer(nowMilliseconds)
        ).run()
    }

    /// Notes a winner change found while recomputing a key's state.
    func noteWinnerChange(bucket: String, key: String, before: Hash32?, after: Hash32?) {
        guard !changeRecorder.suspended, before != after else { return }
        changeRecorder.pending.append((bucket, key, before, after))
    }

    /// Writes the noted winner changes with their cause.
    func flushWinnerChanges(entrySeq: Int64, cause: ChangeCause, inert: Bool) throws {
        let pending = changeRecorder.pending
        changeRecorder.pending = []
        for change in pending {
            try recordChange(
                entrySeq: entrySeq, cause: cause, bucket: change.bucket, key: change.key, before: change.before,
                after: change.after, inert: inert)
        }
    }

    /// Writes the noted winner changes of a rebuild (no entry applied): cause `rebuild`, named
    /// after the newest entry.
    func flushRebuildChanges() throws {
        guard !changeRecorder.pending.isEmpty else { return }
        try flushWinnerChanges(entrySeq: try lastSeq(), cause: .rebuild, inert: false)
    }

    /// Whether the entry at `seq` is inert now.
    func isInert(seq: Int64) throws -> Bool {
        let statement = try database.prepare(Schema.entryInert).bind(.int(seq))
        return try statement.step() && statement.int64(0) != 0
    }

    /// The cursor the next change row will get (rows are never deleted).
    func nextChangeSeq() throws -> Int64 {
        let statement = try database.prepare(Schema.nextChangeSeq)
        return try statement.step() ? statement.int64(0) : 1
    }

    /// Adds and fills the change log of a schema-3 file made before it existed.
    func addMissingChangeLog() throws {
        let exists = try database.prepare(Schema.hasChangeLog).step()
        database.resetStatements()
        guard !exists else { return }
        try database.writeTransaction {
            guard try !database.prepare(Schema.hasChangeLog).step() else { return }
            database.resetStatements()
            try database.execute(Schema.createChangeLog + Schema.backfillChangeLog)
        }
    }

    // MARK: - Reading

    /// Throws unless the file has a change log: an older file opened read-only has none until
    /// a read-write open migrates it.
    ///
    /// - Throws: ``StoreError/notFound(_:)`` naming the fix; SQLite errors.
    public func requireChangeLog() throws {
        let exists = try database.prepare(Schema.hasChangeLog).step()
        database.resetStatements()
        if !exists {
            throw StoreError.notFound("the change log: this file has an older schema and was opened read-only; open it read-write once to migrate it")
        }
    }

    /// The newest cursor (0 before any change).
    ///
    /// - Throws: SQLite errors (a schema-2 file read as it is has no change log).
    public func lastCursor() throws -> Cursor {
        try database.readTransaction {
            let statement = try database.prepare(Schema.maxChangeSeq)
            return try statement.step() ? Cursor(statement.int64(0)) : .start
        }
    }

    /// The cursor of the change that applied entry `id` on this node, or `nil` if it is not
    /// applied here.
    ///
    /// - Throws: SQLite errors.
    public func cursor(ofEntry id: Hash32) throws -> Cursor? {
        try database.readTransaction {
            let statement = try database.prepare(Schema.changeSeqOfEntry).bind(.blob(id.bytes))
            return try statement.step() ? Cursor(statement.int64(0)) : nil
        }
    }

    /// Up to `limit` changes after `cursor`, in cursor order, with the value bytes of their
    /// images when `values` is set.
    ///
    /// - Throws: ``StoreError/corrupt(_:)`` for an entry body that does not decode; SQLite errors.
    public func changes(after cursor: Cursor, limit: Int, values: Bool) throws -> [Change] {
        try database.readTransaction {
            let statement = try database.prepare(Schema.changesAfter).bind(.int(cursor.rawValue), .integer(limit))
            var out: [Change] = []
            out.reserveCapacity(limit)
            var rows: [(Change, Int64?)] = []
            while try statement.step() {
                let seq = statement.int64(0)
                guard let cause = ChangeCause(code: statement.int64(1)) else { throw StoreError.corrupt("changes: unknown cause at seq \(seq)") }
                let stored = try changeEntry(statement, entryColumn: 7, inert: statement.int64(4) != 0)
                let before = try image(statement, idColumn: 12, seq: seq)
                let after = try image(statement, idColumn: 14, seq: seq)
                let txn: Int64? = statement.isNull(5) ? nil : statement.int64(5)
                let change = Change(
                    cursor: Cursor(seq), cause: cause, bucket: statement.text(2), key: statement.text(3), stored: stored,
                    recordedMilliseconds: UInt64(statement.int64(6)), before: before, after: after, transaction: nil,
                    beforeValue: nil, afterValue: nil, isLastSnapshotRow: false)
                rows.append((change, txn))
            }
            // Transaction positions: the size from the transaction's last row; the per-bucket
            // order counted along (the rows of a transaction are consecutive), started from the
            // rows before this page when the page begins inside a transaction.
            var current: (id: Int64, end: Int64, perBucket: [String?: Int])?
            for (change, txn) in rows {
                var transaction: ChangeTransaction?
                if let txn {
                    if current?.id != txn {
                        let end = try database.prepare(Schema.transactionEnd).bind(.int(txn))
                        let last = try end.step() ? end.int64(0) : change.cursor.rawValue
                        var perBucket: [String?: Int] = [:]
                        if change.cursor.rawValue > txn {
                            let counts = try database.prepare(Schema.transactionBucketCounts).bind(.int(txn), .int(change.cursor.rawValue))
                            while try counts.step() { perBucket[counts.text(0)] = counts.int(1) }
                        }
                        current = (txn, last, perBucket)
                    }
                    let order = (current?.perBucket[change.bucket] ?? 0) + 1
                    current?.perBucket[change.bucket] = order
                    transaction = ChangeTransaction(
                        id: txn, totalOrder: Int(change.cursor.rawValue - txn + 1), dataCollectionOrder: order,
                        eventCount: Int((current?.end ?? txn) - txn + 1))
                }
                out.append(
                    Change(
                        cursor: change.cursor, cause: change.cause, bucket: change.bucket, key: change.key, stored: change.stored,
                        recordedMilliseconds: change.recordedMilliseconds, before: change.before, after: change.after,
                        transaction: transaction, beforeValue: values ? try lookup(change.before) : nil,
                        afterValue: values ? try lookup(change.after) : nil, isLastSnapshotRow: false))
            }
            return out
        }
    }

    /// Starts a snapshot: opens a read transaction that stays open until ``endSnapshot()`` and
    /// returns the cursor the stream continues from once the snapshot is read.
    ///
    /// - Throws: SQLite errors.
    public func beginSnapshot() throws -> Cursor {
        database.resetStatements()
        try database.execute("BEGIN DEFERRED")
        do {
            let statement = try database.prepare(Schema.maxChangeSeq)
            return try statement.step() ? Cursor(statement.int64(0)) : .start
        } catch {
            try? database.execute("ROLLBACK")
            throw error
        }
    }

    /// Ends the read transaction ``beginSnapshot()`` opened.
    ///
    /// - Throws: SQLite errors.
    public func endSnapshot() throws {
        database.resetStatements()
        try database.execute("COMMIT")
    }

    /// Up to `limit` live keys after `(bucket, key)` (`nil`: from the first) in byte order, as
    /// snapshot reads at `cursor`. Call between ``beginSnapshot()`` and ``endSnapshot()``.
    ///
    /// - Throws: ``StoreError/corrupt(_:)``; SQLite errors.
    public func snapshotPage(after position: (bucket: String, key: String)?, limit: Int, cursor: Cursor, values: Bool) throws -> [Change] {
        let statement = try database.prepare(Schema.snapshotState).bind(
            .text(position?.bucket ?? ""), .text(position?.key ?? ""), .integer(limit + 1))
        var rows: [(String, String, StoredEntry)] = []
        var isLastPage = true
        while try statement.step() {
            // The row past the limit only tells there is another page.
            guard rows.count < limit else { isLastPage = false; break }
            let stored = try changeEntry(statement, entryColumn: 2, inert: statement.int64(7) != 0)
            rows.append((try statement.string(0, "state"), try statement.string(1, "state"), stored))
        }
        statement.reset()
        let now = nowMilliseconds
        return try rows.enumerated().map { index, row in
            let (bucket, key, stored) = row
            var ref: ValueRef?
            if case .put(_, _, let r) = stored.entry.payload { ref = r }
            let image = ChangeImage(entryID: stored.entry.id, hlc: stored.entry.hlc, author: stored.entry.author, value: ref)
            return Change(
                cursor: cursor, cause: .snapshot, bucket: bucket, key: key, stored: stored, recordedMilliseconds: now,
                before: nil, after: image, transaction: nil, beforeValue: nil, afterValue: values ? try lookup(image) : nil,
                isLastSnapshotRow: isLastPage && index == rows.count - 1)
        }
    }

    /// The entry at `entryColumn` (seq, body, sig, ingested_ms, id).
    private func changeEntry(_ s: Statement, entryColumn c: Int32, inert: Bool) throws -> StoredEntry {
        let entry: SignedEntry
        do {
            entry = try SignedEntry(bodyBytes: try s.bytes(c + 1, "entries"), signature: try s.bytes(c + 2, "entries"))
        } catch let error as EntryFormatError {
            throw StoreError.corrupt("entries: the body at seq \(s.int64(c)) does not decode (\(error))")
        }
        return StoredEntry(seq: s.int64(c), entry: entry, inert: inert, ingestedMilliseconds: UInt64(s.int64(c + 3)))
    }

    /// A before/after image from its id column and the body in the column after it.
    private func image(_ s: Statement, idColumn c: Int32, seq: Int64) throws -> ChangeImage? {
        guard !s.isNull(c) else { return nil }
        let id = try s.hash(c, "changes")
        let body: EntryBody
        do {
            body = try EntryBody.decode(try s.bytes(c + 1, "changes: the image entry"))
        } catch let error as EntryFormatError {
            throw StoreError.corrupt("changes: the image at seq \(seq) does not decode (\(error))")
        }
        var ref: ValueRef?
        if case .put(_, _, let r) = body.payload { ref = r }
        return ChangeImage(entryID: id, hlc: body.hlc, author: body.author, value: ref)
    }

    private func lookup(_ image: ChangeImage?) throws -> ValueLookup? {
        guard let ref = image?.value else { return nil }
        return try value(ref.digest)
    }
}
