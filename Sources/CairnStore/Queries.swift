import CairnCore
import CairnSQLite

/// An applied entry with its local bookkeeping.
public struct StoredEntry: Sendable {
    /// Local ingest sequence number: the CDC cursor. Parents always have a smaller one.
    public let seq: Int64
    public let entry: SignedEntry
    /// Whether the author's revocation made this entry inert (kept in the DAG, not in the state).
    public let inert: Bool
    /// When this node applied it (wall-clock milliseconds).
    public let ingestedMilliseconds: UInt64
}

/// The materialized state of one key: its LWW winner.
public struct KeyState: Sendable {
    public let bucket: String
    public let key: String
    /// The winning entry (a put, or a delete's tombstone).
    public let entryID: Hash32
    public let hlc: HLC
    public let author: PublicKey
    /// The value reference, or `nil` if the winner is a delete.
    public let value: ValueRef?
    public var isDeleted: Bool { value == nil }
}

/// What the store holds for a value digest.
public enum ValueLookup: Sendable, Equatable {
    case present([UInt8])
    /// The value was purged by an operator; the entry still verifies.
    case purged
    /// The value never arrived (a peer had purged it, or sent the entry alone).
    case missing
}

/// A head of the DAG: an entry with no children.
public struct Head: Sendable, Hashable {
    public let id: Hash32
    public let hlc: HLC
}

/// Filters for ``LogStore/log(_:)``; every field is optional.
public struct LogFilter: Sendable {
    public var author: PublicKey?
    public var bucket: String?
    public var key: String?
    public var since: HLC?
    public var until: HLC?
    public var limit: Int?
    /// Newest first (like `git log`) when true; oldest first otherwise.
    public var newestFirst = true
    /// Keyset pagination: only entries strictly after this `(hlc, id)` position in the
    /// chosen order (the last entry of the previous page). `nil`: from the start.
    public var after: LogPosition?
    public init() {}
}

/// A position in the log's `(hlc, id)` order, for reading it page by page.
public struct LogPosition: Sendable, Hashable {
    public let hlc: HLC
    public let id: Hash32
    public init(hlc: HLC, id: Hash32) {
        self.hlc = hlc
        self.id = id
    }
}

/// The few columns of an entry needed to order its parents (`log --graph`).
public struct EntrySummary: Sendable, Hashable {
    public let id: Hash32
    public let hlc: HLC
    public let author: PublicKey
    public init(id: Hash32, hlc: HLC, author: PublicKey) {
        self.id = id
        self.hlc = hlc
        self.author = author
    }
}

extension LogStore {
    // MARK: - Entries

    /// The entry with this id, or `nil`.
    public func entry(id: Hash32) throws -> StoredEntry? {
        try database.readTransaction {
            let statement = try database.prepare(Schema.entryByID).bind(.blob(id.bytes))
            return try statement.step() ? try storedEntry(statement) : nil
        }
    }

    /// The entry whose hex id starts with `prefix` (at least 4 digits), like git's short ids.
    public func entry(prefix: String) throws -> StoredEntry {
        try database.readTransaction {
            let hex = prefix.lowercased()
            guard hex.count >= 4, hex.count <= 64, Hex.decode(hex + (hex.count % 2 == 1 ? "0" : "")) != nil else {
                throw StoreError.notFound("entry \(prefix) (give 4 to 64 hex digits)")
            }
            let pad = 64 - hex.count
            let low = Hex.decode(hex + String(repeating: "0", count: pad))!
            let high = Hex.decode(hex + String(repeating: "f", count: pad))!
            let statement = try database.prepare(Schema.entriesByIDPrefix).bind(.blob(low), .blob(high + [0]))
            guard try statement.step() else { throw StoreError.notFound("entry \(prefix)") }
            let found = try storedEntry(statement)
            if try statement.step() { throw StoreError.ambiguousPrefix(prefix) }
            return found
        }
    }

    /// Up to `limit` entries with ingest sequence above `seq`, in sequence order (the CDC read).
    public func entries(afterSeq seq: Int64, limit: Int) throws -> [StoredEntry] {
        try database.readTransaction {
            let statement = try database.prepare(Schema.entriesAfterSeq).bind(.int(seq), .integer(limit))
            var out: [StoredEntry] = []
            while try statement.step() { out.append(try storedEntry(statement)) }
            return out
        }
    }

    /// Calls `body` for every entry in ingest order, reading `batchSize` rows at a time so
    /// memory stays bounded at any log size. Return `false` from `body` to stop.
    public func forEachEntry(batchSize: Int = 1000, _ body: (StoredEntry) throws -> Bool) throws {
        var cursor: Int64 = 0
        while true {
            let batch = try entries(afterSeq: cursor, limit: batchSize)
            for stored in batch {
                guard try body(stored) else { return }
            }
            guard let last = batch.last else { return }
            cursor = last.seq
        }
    }

    /// Entries matching `filter`, newest first by default (`cairn log`).
    public func log(_ filter: LogFilter) throws -> [StoredEntry] {
        try database.readTransaction {
            var conditions: [String] = []
            var values: [SQLiteValue] = []
            if let author = filter.author { conditions.append("author = ?"); values.append(.blob(author.bytes)) }
            if let bucket = filter.bucket { conditions.append("bucket = ?"); values.append(.text(bucket)) }
            if let key = filter.key { conditions.append("key = ?"); values.append(.text(key)) }
            if let since = filter.since { conditions.append("hlc >= ?"); values.append(.integer(since.rawValue)) }
            if let until = filter.until { conditions.append("hlc <= ?"); values.append(.integer(until.rawValue)) }
            if let after = filter.after {
                conditions.append(filter.newestFirst ? "(hlc, id) < (?, ?)" : "(hlc, id) > (?, ?)")
                values += [.integer(after.hlc.rawValue), .blob(after.id.bytes)]
            }
            let statement = try database.freshStatement(Schema.log(conditions: conditions, newestFirst: filter.newestFirst))
            try statement.bind(values + [.integer(filter.limit ?? -1)])
            var out: [StoredEntry] = []
            while try statement.step() { out.append(try storedEntry(statement)) }
            return out
        }
    }

    /// Calls `body` with the entries matching `filter` a page of `pageSize` at a time (keyset
    /// pagination on `(hlc, id)`, so each page costs the same at any log size and memory stays
    /// bounded); `filter.limit` caps the total. Return `false` from `body` to stop.
    public func forEachLogPage(_ filter: LogFilter, pageSize: Int = 256, _ body: ([StoredEntry]) throws -> Bool) throws {
        var remaining = filter.limit ?? .max
        var page = filter
        while remaining > 0 {
            page.limit = min(remaining, pageSize)
            let entries = try log(page)
            guard let last = entries.last else { return }
            guard try body(entries) else { return }
            remaining -= entries.count
            if entries.count < page.limit ?? 0 { return }
            page.after = LogPosition(hlc: last.entry.hlc, id: last.entry.id)
        }
    }

    /// The HLC and author of each of `ids` the log holds (missing ids are left out).
    public func summaries(of ids: [Hash32]) throws -> [Hash32: EntrySummary] {
        try database.readTransaction {
            var out: [Hash32: EntrySummary] = [:]
            for id in ids where out[id] == nil {
                let statement = try database.prepare(Schema.entrySummaryByID).bind(.blob(id.bytes))
                if try statement.step() {
                    out[id] = EntrySummary(id: id, hlc: statement.hlc(0), author: try statement.publicKey(1, "entries"))
                }
                statement.reset()
            }
            return out
        }
    }

    /// Up to `limit` entries whose hex id starts with `prefix` (for listing the candidates of
    /// an ambiguous prefix), in id order.
    public func entries(prefix: String, limit: Int) throws -> [StoredEntry] {
        try database.readTransaction {
            let hex = prefix.lowercased()
            guard hex.count >= 1, hex.count <= 64, Hex.decode(hex + (hex.count % 2 == 1 ? "0" : "")) != nil else { return [] }
            let pad = 64 - hex.count
            let low = Hex.decode(hex + String(repeating: "0", count: pad))!
            let high = Hex.decode(hex + String(repeating: "f", count: pad))!
            let statement = try database.prepare(Schema.entriesByIDPrefixList).bind(.blob(low), .blob(high + [0]), .integer(Int64(limit)))
            var out: [StoredEntry] = []
            while try statement.step() { out.append(try storedEntry(statement)) }
            return out
        }
    }

    /// Every write to `bucket/key` in LWW order (oldest first).
    public func history(bucket: String, key: String) throws -> [StoredEntry] {
        try database.readTransaction {
            let statement = try database.prepare(Schema.entriesByKey).bind(.text(bucket), .text(key))
            var out: [StoredEntry] = []
            while try statement.step() { out.append(try storedEntry(statement)) }
            return out
        }
    }

    /// How many writes `bucket/key` has had (inert ones included).
    public func historyCount(bucket: String, key: String) throws -> Int {
        try database.readTransaction {
            let statement = try database.prepare(Schema.historyCount).bind(.text(bucket), .text(key))
            return try statement.step() ? Int(statement.int64(0)) : 0
        }
    }

    /// Up to `limit` writes to `bucket/key` in LWW order (oldest first), after `last` (a
    /// write of the key returned before) or from the first: one page of a history read in
    /// constant memory.
    public func historyPage(bucket: String, key: String, after last: SignedEntry?, limit: Int) throws -> [StoredEntry] {
        try database.readTransaction {
            let statement: Statement
            if let last {
                statement = try database.prepare(Schema.historyPageAfter).bind(
                    .text(bucket), .text(key), .integer(last.hlc.rawValue), .blob(last.author.bytes), .blob(last.id.bytes), .int(Int64(limit)))
            } else {
                statement = try database.prepare(Schema.historyFirstPage).bind(.text(bucket), .text(key), .int(Int64(limit)))
            }
            var out: [StoredEntry] = []
            while try statement.step() { out.append(try storedEntry(statement)) }
            return out
        }
    }

    /// The newest `count` writes to `bucket/key`, oldest first.
    public func newestHistory(bucket: String, key: String, count: Int) throws -> [StoredEntry] {
        try database.readTransaction {
            let statement = try database.prepare(Schema.historyNewest).bind(.text(bucket), .text(key), .int(Int64(count)))
            var out: [StoredEntry] = []
            while try statement.step() { out.append(try storedEntry(statement)) }
            return out.reversed()
        }
    }

    /// The current heads, oldest HLC first.
    public func heads() throws -> [Head] {
        try database.readTransaction {
            let statement = try database.prepare(Schema.heads)
            var out: [Head] = []
            while try statement.step() {
                out.append(Head(id: try statement.hash(0, "heads"), hlc: statement.hlc(1)))
            }
            return out
        }
    }

    /// Number of applied entries.
    public func entryCount() throws -> Int { try database.readTransaction { try count(Schema.entryCount) } }

    /// The highest ingest sequence number (0 when only… never: the genesis is 1).
    public func lastSeq() throws -> Int64 {
        try database.readTransaction {
            let statement = try database.prepare(Schema.maxSeq)
            return try statement.step() ? statement.int64(0) : 0
        }
    }

    /// The parents of an entry, as stored in the edge table.
    public func parentEdges(of id: Hash32) throws -> [Hash32] {
        try database.readTransaction {
            let statement = try database.prepare(Schema.parentsOf).bind(.blob(id.bytes))
            var out: [Hash32] = []
            while try statement.step() { out.append(try statement.hash(0, "parents")) }
            return out
        }
    }

    /// How many children an entry has (edges in the parent table).
    public func childCount(of id: Hash32) throws -> Int {
        try database.readTransaction {
            let statement = try database.prepare(Schema.childCount).bind(.blob(id.bytes))
            return try statement.step() ? statement.int(0) : 0
        }
    }

    /// Up to `limit` ids that orphans are waiting for (what to ask peers for).
    public func missingParents(limit: Int = 1000) throws -> [Hash32] {
        try database.readTransaction {
            let statement = try database.prepare(Schema.missingParents).bind(.integer(limit))
            var out: [Hash32] = []
            while try statement.step() { out.append(try statement.hash(0, "orphan_waits")) }
            return out
        }
    }

    func storedEntry(_ s: Statement) throws -> StoredEntry {
        let entry: SignedEntry
        do {
            entry = try SignedEntry(bodyBytes: try s.bytes(7, "entries"), signature: try s.bytes(8, "entries"))
        } catch let error as EntryFormatError {
            throw StoreError.corrupt("entries: the body at seq \(s.int64(0)) does not decode (\(error))")
        }
        return StoredEntry(seq: s.int64(0), entry: entry, inert: s.int64(9) != 0, ingestedMilliseconds: UInt64(s.int64(10)))
    }

    /// The newest entry signed by `author` when this data directory did not write it itself, or
    /// `nil`. Non-nil means entries of this node's key arrived from elsewhere that are newer than
    /// its own last write: the directory was restored from an older copy (or the key is used by
    /// another node). Writing before such a node has synced risks signing HLCs at or below ones
    /// it already signed. "Written here" is read from the change log, which marks every local
    /// append with its transaction (and the genesis, which only the creating node has as its
    /// own newest entry before anything else): no extra write per commit.
    ///
    /// - Throws: SQLite errors.
    public func newestEntryNotWrittenHere(by author: PublicKey) throws -> Hash32? {
        try database.readTransaction {
            let statement = try database.prepare(Schema.newestByAuthorWrittenHere).bind(.blob(author.bytes))
            guard try statement.step(), let newest = statement.blob(0).flatMap(Hash32.init(bytes:)) else { return nil }
            let writtenHere = statement.int64(1) == Int64(EntryKind.genesis.rawValue) || !statement.isNull(2)
            return writtenHere ? nil : newest
        }
    }

    // MARK: - State

    /// The state of `bucket/key`, or `nil` if it was never written.
    public func state(bucket: String, key: String) throws -> KeyState? {
        try database.readTransaction {
            let statement = try database.prepare(Schema.stateRow).bind(.text(bucket), .text(key))
            guard try statement.step() else { return nil }
            return try keyState(bucket: bucket, key: key, statement, offset: 0)
        }
    }

    /// Live keys of `bucket` starting with `prefix`, in byte order, after `after`, at most `limit`.
    public func list(bucket: String, prefix: String = "", after: String? = nil, limit: Int = 1000) throws -> [KeyState] {
        try database.readTransaction {
            // One range bound, so SQLite seeks straight to the page (with both `key >= prefix`
            // and `key > after` it may seek by the prefix and scan every earlier page again).
            let statement: Statement
            if let after, after.utf8.lexicographicallyPrecedes(prefix.utf8) == false {
                statement = try database.prepare(Schema.listStateAfter).bind(.text(bucket), .text(after), .integer(limit))
            } else {
                statement = try database.prepare(Schema.listStateFrom).bind(.text(bucket), .text(prefix), .integer(limit))
            }
            var out: [KeyState] = []
            while try statement.step() {
                let key = try statement.string(1, "state")
                // SQLite's range condition finds the start; the prefix test ends the scan.
                guard key.utf8.starts(with: prefix.utf8) else { break }
                out.append(try keyState(bucket: bucket, key: key, statement, offset: 2))
            }
            return out
        }
    }

    /// Buckets with at least one live key, and how many.
    public func buckets() throws -> [(bucket: String, keys: Int)] {
        try database.readTransaction {
            let statement = try database.prepare(Schema.buckets)
            var out: [(String, Int)] = []
            while try statement.step() { out.append((try statement.string(0, "state"), statement.int(1))) }
            return out
        }
    }

    private func keyState(bucket: String, key: String, _ s: Statement, offset o: Int32) throws -> KeyState {
        let deleted = s.int64(o + 3) != 0
        let value = deleted ? nil : ValueRef(digest: try s.hash(o + 4, "state"), length: UInt32(truncatingIfNeeded: s.int64(o + 5)))
        return KeyState(
            bucket: bucket, key: key, entryID: try s.hash(o, "state"), hlc: s.hlc(o + 1),
            author: try s.publicKey(o + 2, "state"), value: value
        )
    }

    /// The winning write of `bucket/key` among the entries applied before `seq`: the key's
    /// state as it was just before that entry landed (the CDC `before` image).
    public func winner(bucket: String, key: String, beforeSeq seq: Int64) throws -> StoredEntry? {
        try database.readTransaction {
            let statement = try database.prepare(Schema.keyWinnerBeforeSeq).bind(.text(bucket), .text(key), .int(seq))
            guard try statement.step() else { return nil }
            let id = try statement.hash(0, "entries")
            return try entry(id: id)
        }
    }

    // MARK: - Values

    /// The value bytes for a digest, or why there are none.
    public func value(_ digest: Hash32) throws -> ValueLookup {
        try database.readTransaction {
            let statement = try database.prepare(Schema.getValue).bind(.blob(digest.bytes))
            guard try statement.step() else { return .missing }
            if let data = statement.blob(0) { return .present(data) }
            return statement.int64(1) != 0 ? .purged : .missing
        }
    }

    /// Erases a value's bytes (a leaked secret, an erasure request). Entries referencing it
    /// still verify: they sign the digest, not the bytes. Returns whether bytes were erased.
    @discardableResult
    public func purge(_ digest: Hash32) throws -> Bool {
        try database.writeTransaction {
            guard case .present = try value(digest) else {
                try database.prepare(Schema.markPurged).bind(.blob(digest.bytes)).run()
                return false
            }
            try database.prepare(Schema.purgeValue).bind(.blob(digest.bytes)).run()
            return true
        }
    }
}
