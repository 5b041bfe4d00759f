import CairnTestSupport
import CairnReconcile
import CairnSQLite
import Foundation

/// A scratch database with Cairn's `entries` table shape.
final class ScratchDatabase {
    let path: String
    let database: Database

    /// `inMemory` databases are fastest; file databases (WAL) allow a second connection.
    init(inMemory: Bool = true) throws {
        path = inMemory
            ? ":memory:"
            : FileManager.default.temporaryDirectory.appendingPathComponent("reconcile-\(UUID().uuidString).sqlite").path
        database = try Database(path: path)
        if !inMemory { try database.execute("PRAGMA journal_mode=WAL") }
        try database.execute("""
            CREATE TABLE entries(seq INTEGER PRIMARY KEY AUTOINCREMENT, id BLOB NOT NULL UNIQUE, hlc INTEGER NOT NULL);
            CREATE INDEX entries_hlc_id ON entries(hlc, id);
            """)
    }

    deinit {
        guard path != ":memory:" else { return }
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
    }

    /// Opens another connection to the same file.
    func connect() throws -> Database { try Database(path: path) }

    /// Appends items in one transaction, in the given order.
    func insert(_ items: some Sequence<Item>, into database: Database? = nil) throws {
        let target = database ?? self.database
        let body = {
            for item in items {
                try target.prepare("INSERT INTO entries(id, hlc) VALUES (?1, ?2)")
                    .bind(.blob(item.id.bytes), .int(Int64(bitPattern: item.timestamp))).run()
            }
        }
        if target.isInTransaction { try body() } else { try target.writeTransaction(body) }
    }
}

/// Small buckets, windows and caches, so that even test-sized sets span many buckets, splits,
/// checkpoints and cache evictions.
func smallBuckets(cached: Int = 4) -> SQLiteStorageConfiguration {
    var configuration = SQLiteStorageConfiguration()
    configuration.targetBucketSize = 16
    configuration.maxBucketSize = 40
    configuration.checkpointInterval = 5
    configuration.cachedBuckets = cached
    configuration.cachedWindows = cached
    return configuration
}

/// Random items with timestamps below 2^63 (Cairn's HLC range).
func randomItems(_ count: Int, spread: UInt64, base: UInt64 = 1_000, random: inout SplitMix64) -> [Item] {
    (0..<count).map { _ in Item(timestamp: base + random.next(below: spread), id: random.nextID()) }
}
