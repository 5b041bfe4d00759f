import CairnSQLite

/// The SQL side of the SQLite backend: reading entries and persisting bucket aggregates.
///
/// Aggregates live in two tables of their own:
/// - `<prefix>_buckets(start_hlc, start_id, item_count, id_sum)`, one row per bucket, keyed by
///   the bucket's first key;
/// - `<prefix>_meta(key, value)` with the `watermark` (highest `seq` folded in) and a random
///   `token` rewritten on every change, so that another connection's (or a rolled-back) update
///   is noticed and the in-memory copy reloaded.
final class BucketStore {
    let database: Database
    private let sql: Statements

    init(database: Database, configuration: SQLiteStorageConfiguration) {
        self.database = database
        self.sql = Statements(configuration)
    }

    func createSchema() throws {
        try database.execute(sql.createSchema)
    }

    /// `(watermark, token)`, or `nil` when nothing was ever stored.
    func readState() throws -> (watermark: Int64, token: Int64)? {
        let statement = try database.prepare(sql.readState)
        // A statement left mid-result keeps its read snapshot open (a stale view, and
        // SQLITE_BUSY_SNAPSHOT on the next write): every reader resets its statement on exit.
        defer { statement.reset() }
        var watermark: Int64?
        var token: Int64?
        while try statement.step() {
            switch statement.text(0) {
            case "watermark": watermark = statement.int64(1)
            case "token": token = statement.int64(1)
            default: break
            }
        }
        guard let watermark, let token else { return nil }
        return (watermark, token)
    }

    func writeState(watermark: Int64, token: Int64) throws {
        try database.prepare(sql.writeState).bind(.text("watermark"), .int(watermark)).run()
        try database.prepare(sql.writeState).bind(.text("token"), .int(token)).run()
    }

    func maxSequence() throws -> Int64 {
        let statement = try database.prepare(sql.maxSequence)
        defer { statement.reset() }
        guard try statement.step(), !statement.isNull(0) else { return 0 }
        return statement.int64(0)
    }

    func loadBuckets() throws -> [BucketIndex.Bucket] {
        let statement = try database.prepare(sql.loadBuckets)
        defer { statement.reset() }
        var buckets: [BucketIndex.Bucket] = []
        while try statement.step() {
            guard let start = try? Self.readItem(statement, timestampColumn: 0, idColumn: 1, sequence: 0),
                  let sum = statement.blob(3).flatMap({ IDSum(bytes: $0) }) else {
                throw SQLiteStorageError.aggregatesOutOfDate("malformed bucket row")
            }
            buckets.append(BucketIndex.Bucket(start: start, count: statement.int(2), sum: sum))
        }
        return buckets
    }

    func replaceAllBuckets(_ buckets: [BucketIndex.Bucket]) throws {
        try database.execute(sql.deleteBuckets)
        for bucket in buckets { try writeBucket(bucket) }
    }

    func writeBucket(_ bucket: BucketIndex.Bucket) throws {
        try database.prepare(sql.writeBucket).bind(
            .int(Int64(bitPattern: bucket.start.timestamp)), .blob(bucket.start.id.bytes),
            .int(Int64(bucket.count)), .blob(bucket.sum.bytes)
        ).run()
    }

    /// Calls `body` with every entry whose `seq` lies in `(after, through]`, in `seq` order.
    func forEachEntry(after: Int64, through: Int64, _ body: (Item) throws -> Void) throws {
        let statement = try database.prepare(sql.entriesBySequence).bind(.int(after), .int(through))
        defer { statement.reset() }
        while try statement.step() {
            try body(Self.readItem(statement, timestampColumn: 1, idColumn: 2, sequence: statement.int64(0)))
        }
    }

    /// Calls `body` with every entry whose `seq ≤ through`, in key order (a full index scan).
    func forEachEntryInKeyOrder(through: Int64, _ body: (Item) throws -> Void) throws {
        let statement = try database.prepare(sql.entriesByKey).bind(.int(through))
        defer { statement.reset() }
        while try statement.step() {
            try body(Self.readItem(statement, timestampColumn: 0, idColumn: 1, sequence: statement.int64(2)))
        }
    }

    /// The `count` items from `start` on (in key order) among entries with `seq ≤ through`.
    func items(from start: Item, count: Int, through: Int64) throws -> [Item] {
        let statement = try database.prepare(sql.bucketItems).bind(
            .int(Int64(bitPattern: start.timestamp)), .blob(start.id.bytes), .int(through), .int(Int64(count)))
        defer { statement.reset() }
        var items: [Item] = []
        items.reserveCapacity(count)
        while try statement.step() {
            items.append(try Self.readItem(statement, timestampColumn: 0, idColumn: 1, sequence: 0))
        }
        return items
    }

    /// Reads and validates `(timestamp, id)` from the current row, without copying the id blob.
    private static func readItem(_ statement: Statement, timestampColumn: Int32, idColumn: Int32,
                                 sequence: Int64) throws -> Item {
        let stored = statement.int64(timestampColumn)
        guard stored >= 0 else { throw SQLiteStorageError.timestampOutOfRange(sequence: sequence, storedValue: stored) }
        let id = try statement.withBlob(idColumn) { raw throws(SQLiteStorageError) -> ItemID in
            guard raw.count == ItemID.byteCount else { throw .invalidIDLength(sequence: sequence, length: raw.count) }
            return ItemID(unsafeBytes: raw)
        }
        return Item(timestamp: UInt64(stored), id: id)
    }
}

/// The SQL text, built once from the configured names.
private struct Statements {
    let createSchema, readState, writeState, maxSequence, loadBuckets, deleteBuckets, writeBucket: String
    let entriesBySequence, entriesByKey, bucketItems: String

    init(_ c: SQLiteStorageConfiguration) {
        let (entries, seq, id, hlc) = (c.entriesTable, c.sequenceColumn, c.idColumn, c.timestampColumn)
        createSchema = """
            CREATE TABLE IF NOT EXISTS \(c.bucketsTable)(
                start_hlc INTEGER NOT NULL, start_id BLOB NOT NULL,
                item_count INTEGER NOT NULL, id_sum BLOB NOT NULL,
                PRIMARY KEY(start_hlc, start_id)) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS \(c.metaTable)(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
            """
        readState = "SELECT key, value FROM \(c.metaTable)"
        writeState = "INSERT OR REPLACE INTO \(c.metaTable)(key, value) VALUES (?1, ?2)"
        maxSequence = "SELECT max(\(seq)) FROM \(entries)"
        loadBuckets = "SELECT start_hlc, start_id, item_count, id_sum FROM \(c.bucketsTable) ORDER BY start_hlc, start_id"
        deleteBuckets = "DELETE FROM \(c.bucketsTable)"
        writeBucket = "INSERT OR REPLACE INTO \(c.bucketsTable)(start_hlc, start_id, item_count, id_sum) VALUES (?1, ?2, ?3, ?4)"
        entriesBySequence = "SELECT \(seq), \(hlc), \(id) FROM \(entries) WHERE \(seq) > ?1 AND \(seq) <= ?2 ORDER BY \(seq)"
        entriesByKey = "SELECT \(hlc), \(id), \(seq) FROM \(entries) WHERE \(seq) <= ?1 ORDER BY \(hlc), \(id)"
        // Rows appended after the last catch-up (seq above the watermark) are invisible, so a
        // session sees one consistent snapshot even while the store keeps appending.
        bucketItems = """
            SELECT \(hlc), \(id) FROM \(entries)
            WHERE (\(hlc), \(id)) >= (?1, ?2) AND \(seq) <= ?3
            ORDER BY \(hlc), \(id) LIMIT ?4
            """
    }
}
