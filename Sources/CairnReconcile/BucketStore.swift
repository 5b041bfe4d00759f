import CairnSQLite

/// The SQL side of the SQLite backend: reading entries and persisting bucket aggregates.
///
/// Aggregates live in two tables of their own:
/// - `<prefix>_buckets(start_hlc, start_id, item_count, id_sum, checkpoints)`, one row per
///   bucket, keyed by the bucket's first key; `checkpoints` is NULL while stale (see
///   ``BucketCheckpoints``);
/// - `<prefix>_meta(key, value)` with the `watermark` (highest `seq` folded in) and a random
///   `token` rewritten on every change, so that another connection's (or a rolled-back) update
///   is noticed and the in-memory copy reloaded.
final class BucketStore {
    let database: Database
    private let sql: Statements
    /// The statements of the per-window hot path, held to skip the cache lookup by SQL text.
    private var keyRangeStatement: Statement?
    private var checkpointsStatement: Statement?

    init(database: Database, configuration: SQLiteStorageConfiguration) {
        self.database = database
        self.sql = Statements(configuration)
    }

    /// The layout of the aggregate tables; a different stored value means "drop and rebuild".
    static let format: Int64 = 1
    // A rowid table, not WITHOUT ROWID: a bucket's checkpoints (up to ~2.3 KB) then stay on the
    // row's own page, where WITHOUT ROWID would spill them to overflow pages (~1 KB local max).

    /// Whether the tables exist in the current format (a read; no lock beyond it).
    func schemaIsCurrent() -> Bool {
        // Before the first `prepareSchema()` the meta table does not exist and this fails.
        guard let statement = try? database.prepare(sql.readFormat) else { return false }
        defer { statement.reset() }
        return (try? statement.step()) == true && statement.int64(0) == Self.format
    }

    /// Creates the tables, or recreates them empty if they hold another format.
    func prepareSchema() throws {
        try database.execute(sql.createMeta)
        let statement = try database.prepare(sql.readFormat)
        let stored: Int64? = try statement.step() ? statement.int64(0) : nil
        statement.reset()
        guard stored != Self.format else { return }
        try database.execute(sql.dropAggregates)
        try database.execute(sql.createBuckets)
        try database.prepare(sql.writeState).bind(.text("format"), .int(Self.format)).run()
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

    func deleteAllBuckets() throws {
        try database.execute(sql.deleteBuckets)
    }

    /// Writes one bucket row; `checkpoints` may be `nil` (stale, rebuilt by readers on demand).
    func writeBucket(_ bucket: BucketIndex.Bucket, checkpoints: BucketCheckpoints?) throws {
        try database.prepare(sql.writeBucket).bind(
            .int(Int64(bitPattern: bucket.start.timestamp)), .blob(bucket.start.id.bytes),
            .int(Int64(bucket.count)), .blob(bucket.sum.bytes), checkpoints.map { .blob($0.encoded) } ?? .null
        ).run()
    }

    /// The stored checkpoints of the bucket starting at `start`, or `nil` while they are stale.
    func checkpoints(of start: Item, interval: Int) throws -> BucketCheckpoints? {
        let statement = try cached(&checkpointsStatement, sql.readCheckpoints).bind(
            .int(Int64(bitPattern: start.timestamp)), .blob(start.id.bytes))
        defer { statement.reset() }
        guard try statement.step(), !statement.isNull(0) else { return nil }
        return try statement.withBlob(0) { raw in
            guard let checkpoints = BucketCheckpoints(start: start, encoded: raw, interval: interval) else {
                throw SQLiteStorageError.aggregatesOutOfDate("malformed checkpoints at \(start)")
            }
            return checkpoints
        }
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
        var items: [Item] = []
        items.reserveCapacity(count)
        try forEachItem(from: start, count: count, through: through) { item in
            items.append(item)
            return true
        }
        return items
    }

    /// Streams the `count` items from `start` on (in key order) among entries with
    /// `seq ≤ through`, until `body` returns `false`. `body` must not use this store: the
    /// statement is in use until the call returns.
    ///
    /// - Returns: how many items `body` was given.
    @discardableResult
    func forEachItem(from start: Item, count: Int, through: Int64, _ body: (Item) throws -> Bool) throws -> Int {
        let statement = try cached(&keyRangeStatement, sql.keyRange).bind(
            .int(Int64(bitPattern: start.timestamp)), .blob(start.id.bytes), .int(through), .int(Int64(count)))
        defer { statement.reset() }
        var delivered = 0
        while try statement.step() {
            delivered += 1
            guard try body(Self.readItem(statement, timestampColumn: 0, idColumn: 1, sequence: 0)) else { break }
        }
        return delivered
    }

    private func cached(_ slot: inout Statement?, _ text: String) throws -> Statement {
        if let statement = slot { return statement }
        let statement = try database.prepare(text)
        slot = statement
        return statement
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
    let createMeta, readFormat, dropAggregates, createBuckets: String
    let readState, writeState, maxSequence, loadBuckets, deleteBuckets, writeBucket, readCheckpoints: String
    let entriesBySequence, entriesByKey, keyRange: String

    init(_ c: SQLiteStorageConfiguration) {
        let (entries, seq, id, hlc) = (c.entriesTable, c.sequenceColumn, c.idColumn, c.timestampColumn)
        createMeta = "CREATE TABLE IF NOT EXISTS \(c.metaTable)(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID"
        readFormat = "SELECT value FROM \(c.metaTable) WHERE key = 'format'"
        dropAggregates = "DROP TABLE IF EXISTS \(c.bucketsTable); DELETE FROM \(c.metaTable)"
        createBuckets = """
            CREATE TABLE \(c.bucketsTable)(
                start_hlc INTEGER NOT NULL, start_id BLOB NOT NULL,
                item_count INTEGER NOT NULL, id_sum BLOB NOT NULL, checkpoints BLOB,
                PRIMARY KEY(start_hlc, start_id))
            """
        readState = "SELECT key, value FROM \(c.metaTable)"
        writeState = "INSERT OR REPLACE INTO \(c.metaTable)(key, value) VALUES (?1, ?2)"
        maxSequence = "SELECT max(\(seq)) FROM \(entries)"
        loadBuckets = "SELECT start_hlc, start_id, item_count, id_sum FROM \(c.bucketsTable) ORDER BY start_hlc, start_id"
        deleteBuckets = "DELETE FROM \(c.bucketsTable)"
        writeBucket = """
            INSERT OR REPLACE INTO \(c.bucketsTable)(start_hlc, start_id, item_count, id_sum, checkpoints)
            VALUES (?1, ?2, ?3, ?4, ?5)
            """
        readCheckpoints = "SELECT checkpoints FROM \(c.bucketsTable) WHERE start_hlc = ?1 AND start_id = ?2"
        entriesBySequence = "SELECT \(seq), \(hlc), \(id) FROM \(entries) WHERE \(seq) > ?1 AND \(seq) <= ?2 ORDER BY \(seq)"
        entriesByKey = "SELECT \(hlc), \(id), \(seq) FROM \(entries) WHERE \(seq) <= ?1 ORDER BY \(hlc), \(id)"
        // Rows appended after the last catch-up (seq above the watermark) are invisible, so a
        // session sees one consistent snapshot even while the store keeps appending.
        keyRange = """
            SELECT \(hlc), \(id) FROM \(entries)
            WHERE (\(hlc), \(id)) >= (?1, ?2) AND \(seq) <= ?3
            ORDER BY \(hlc), \(id) LIMIT ?4
            """
    }
}
