import CairnReconcile
import CairnSQLite
import CairnTestSupport
import Testing

/// Checks every storage operation of `storage` against the in-memory reference `expected`.
func expectSameContents(_ storage: some ReconcileStorage, as expected: VectorStorage,
                        random: inout SplitMix64, sourceLocation: SourceLocation = #_sourceLocation) throws {
    #expect(storage.count == expected.count, sourceLocation: sourceLocation)
    guard storage.count == expected.count else { return }
    var all: [Item] = []
    try storage.forEachItem(in: 0..<storage.count) { index, item in
        #expect(index == all.count)
        all.append(item)
        return true
    }
    #expect(all == expected.items, sourceLocation: sourceLocation)
    for _ in 0..<200 where expected.count > 0 {
        let a = Int(random.next(below: UInt64(expected.count + 1)))
        let b = Int(random.next(below: UInt64(expected.count + 1)))
        let range = min(a, b)..<max(a, b)
        #expect(try storage.idSum(of: range) == expected.idSum(of: range), sourceLocation: sourceLocation)
        if a < expected.count { #expect(try storage.item(at: a) == expected.item(at: a), sourceLocation: sourceLocation) }
        // Bounds at items, just below items (id prefixes) and between timestamps.
        let pivot = expected.items[min(a, expected.count - 1)]
        let prefixLength = Int(random.next(below: 33))
        let bounds = [Bound(item: pivot), try Bound(timestamp: pivot.timestamp, idPrefix: pivot.id.bytes.prefix(prefixLength)),
                      Bound(timestamp: pivot.timestamp), Bound(timestamp: pivot.timestamp + 1), .infinity, .zero]
        let start = min(a, b)
        for bound in bounds {
            #expect(try storage.lowerBound(of: bound, from: start) == expected.lowerBound(of: bound, from: start),
                    "bound \(bound) from \(start)", sourceLocation: sourceLocation)
        }
    }
}

@Suite struct SQLiteStorageTests {
    @Test func matchesInMemoryStorageAcrossIncrementalCatchUps() throws {
        let seed = randomizedTestSeed("SQLiteStorageTests.matchesInMemoryStorageAcrossIncrementalCatchUps")
        var random = SplitMix64(seed: seed)
        let scratch = try ScratchDatabase()
        let storage = try SQLiteStorage(database: scratch.database, configuration: smallBuckets())
        var all: [Item] = []
        #expect(storage.count == 0)
        for batch in 0..<8 {
            // Alternate scattered batches, tail batches and batches with equal timestamps.
            let items = switch batch % 3 {
            case 0: randomItems(Int(random.next(below: 300)), spread: 10_000, random: &random)
            case 1: randomItems(Int(random.next(below: 300)), spread: 50, base: 20_000 + UInt64(batch) * 100, random: &random)
            default: randomItems(Int(random.next(below: 100)), spread: 2, base: 5_000, random: &random)
            }
            try scratch.insert(items)
            all += items
            #expect(try storage.catchUp() == items.count, "seed=\(seed)")
            try expectSameContents(storage, as: VectorStorage(items: all), random: &random)
        }
        #expect(storage.bucketCount > 10)
        #expect(try storage.catchUp() == 0)
    }

    @Test func reopeningLoadsAggregatesWithoutRescanning() throws {
        var random = SplitMix64(seed: 11)
        let scratch = try ScratchDatabase()
        let items = randomItems(1500, spread: 100_000, random: &random)
        try scratch.insert(items)
        let first = try SQLiteStorage(database: scratch.database, configuration: smallBuckets())
        let buckets = first.bucketCount
        // Sabotage the entries behind the aggregates' back: a reopen that rescanned would notice
        // nothing, a reopen that trusts the aggregates reports the original count.
        try scratch.database.execute("CREATE TABLE shadow AS SELECT * FROM entries")
        let reopened = try SQLiteStorage(database: scratch.database, configuration: smallBuckets())
        #expect(reopened.bucketCount == buckets)
        #expect(reopened.watermark == first.watermark)
        #expect(try reopened.catchUp() == 0)
        try expectSameContents(reopened, as: VectorStorage(items: items), random: &random)
    }

    @Test func catchUpInsideAnOpenTransactionAndAfterRollback() throws {
        var random = SplitMix64(seed: 12)
        let scratch = try ScratchDatabase()
        let storage = try SQLiteStorage(database: scratch.database, configuration: smallBuckets())
        let kept = randomItems(200, spread: 1000, random: &random)
        try scratch.database.writeTransaction {
            try scratch.insert(kept)
            #expect(try storage.catchUp() == 200)
        }
        // Folded inside a transaction that then rolls back: the aggregates roll back too, and
        // the next session notices and reloads them.
        struct Abort: Error {}
        #expect(throws: Abort.self) {
            try scratch.database.writeTransaction {
                try scratch.insert(randomItems(100, spread: 1000, random: &random))
                try storage.catchUp()
                throw Abort()
            }
        }
        try storage.beginSession()
        try expectSameContents(storage, as: VectorStorage(items: kept), random: &random)
        let more = randomItems(150, spread: 1000, random: &random)
        try scratch.insert(more)
        try storage.beginSession()
        try expectSameContents(storage, as: VectorStorage(items: kept + more), random: &random)
    }

    @Test func secondConnectionSeesOtherConnectionsCatchUps() throws {
        var random = SplitMix64(seed: 13)
        let scratch = try ScratchDatabase(inMemory: false)
        let writer = try SQLiteStorage(database: scratch.database, configuration: smallBuckets())
        let reader = try SQLiteStorage(database: scratch.connect(), configuration: smallBuckets())
        var all: [Item] = []
        for _ in 0..<3 {
            let items = randomItems(300, spread: 5000, random: &random)
            try scratch.insert(items)
            all += items
            try writer.catchUp()
            // Entries the reader has not caught up with stay invisible until its next session.
            #expect(reader.count == all.count - items.count)
            try reader.beginSession()
            try expectSameContents(reader, as: VectorStorage(items: all), random: &random)
        }
    }

    @Test func snapshotIgnoresEntriesAppendedMidSession() throws {
        var random = SplitMix64(seed: 14)
        let scratch = try ScratchDatabase()
        let items = randomItems(400, spread: 300, random: &random)
        try scratch.insert(items)
        let storage = try SQLiteStorage(database: scratch.database, configuration: smallBuckets(cached: 2))
        // Appended without a catch-up: same keys region, so the buckets' SQL ranges include them.
        try scratch.insert(randomItems(300, spread: 300, random: &random))
        try expectSameContents(storage, as: VectorStorage(items: items), random: &random)
    }

    @Test func rejectsBadEntries() throws {
        let scratch = try ScratchDatabase()
        try scratch.database.execute("INSERT INTO entries(id, hlc) VALUES (zeroblob(32), -5)")
        #expect(throws: SQLiteStorageError.timestampOutOfRange(sequence: 1, storedValue: -5)) {
            try SQLiteStorage(database: scratch.database)
        }
        let other = try ScratchDatabase()
        let storage = try SQLiteStorage(database: other.database)
        try other.database.execute("INSERT INTO entries(id, hlc) VALUES (zeroblob(31), 5)")
        #expect(throws: SQLiteStorageError.invalidIDLength(sequence: 1, length: 31)) { try storage.catchUp() }
    }

    @Test func detectsEntriesRemovedBehindItsBack() throws {
        var random = SplitMix64(seed: 15)
        let scratch = try ScratchDatabase()
        try scratch.insert(randomItems(300, spread: 1000, random: &random))
        let storage = try SQLiteStorage(database: scratch.database, configuration: smallBuckets())
        try scratch.database.execute("DELETE FROM entries WHERE seq = 150")
        // The aggregates alone still add up; decoding the damaged bucket must notice.
        #expect(throws: SQLiteStorageError.self) { try storage.forEachItem(in: 0..<storage.count) { _, _ in true } }
        try storage.rebuild()
        #expect(storage.count == 299)
    }

    @Test func rebuildsAggregatesOfAnotherFormat() throws {
        var random = SplitMix64(seed: 17)
        let scratch = try ScratchDatabase()
        let items = randomItems(500, spread: 2000, random: &random)
        try scratch.insert(items)
        _ = try SQLiteStorage(database: scratch.database, configuration: smallBuckets())
        try scratch.database.execute("UPDATE rbsr_meta SET value = 999 WHERE key = 'format'")
        let reopened = try SQLiteStorage(database: scratch.database, configuration: smallBuckets())
        try expectSameContents(reopened, as: VectorStorage(items: items), random: &random)
        #expect(try scratch.database.prepare("SELECT value FROM rbsr_meta WHERE key = 'format'").step())
    }

    @Test func validatesConfiguration() throws {
        let scratch = try ScratchDatabase()
        var configuration = SQLiteStorageConfiguration()
        configuration.entriesTable = "entries; DROP TABLE entries"
        #expect(throws: SQLiteStorageError.invalidIdentifier("entries; DROP TABLE entries")) {
            try SQLiteStorage(database: scratch.database, configuration: configuration)
        }
        configuration = SQLiteStorageConfiguration()
        configuration.maxBucketSize = configuration.targetBucketSize
        #expect(throws: SQLiteStorageError.self) { try SQLiteStorage(database: scratch.database, configuration: configuration) }
    }

    @Test func customTableAndColumnNames() throws {
        var random = SplitMix64(seed: 16)
        let database = try Database(path: ":memory:")
        try database.execute("""
            CREATE TABLE log(n INTEGER PRIMARY KEY AUTOINCREMENT, hash BLOB NOT NULL UNIQUE, t INTEGER NOT NULL);
            CREATE INDEX log_t_hash ON log(t, hash);
            """)
        let items = randomItems(100, spread: 50, random: &random)
        for item in items {
            try database.prepare("INSERT INTO log(hash, t) VALUES (?1, ?2)").bind(.blob(item.id.bytes), .int(Int64(item.timestamp))).run()
        }
        var configuration = smallBuckets()
        (configuration.entriesTable, configuration.sequenceColumn, configuration.idColumn, configuration.timestampColumn) = ("log", "n", "hash", "t")
        configuration.aggregateTablePrefix = "log_rbsr"
        let storage = try SQLiteStorage(database: database, configuration: configuration)
        try expectSameContents(storage, as: VectorStorage(items: items), random: &random)
    }
}
