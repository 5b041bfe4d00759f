import CairnCore
import CairnSQLite
import CairnStore
import Foundation
import Testing

/// Value bytes are stored so that looking one up never reads another: a 50 MiB value in the
/// log does not make a `get` of an unrelated small key read it. Measured in pages read from
/// the file (SQLite cache misses on a fresh connection), not in time.
@Suite struct ValueStoreTests {
    static let smallKeys = (0..<32).map { "small\($0)" }

    /// A node with the small keys and, if `big`, a 50 MiB value under another key.
    func node(_ log: TestLog, name: String, big: Bool) throws -> String {
        let node = try log.node(name)
        try node.append(Self.smallKeys.map { .put(bucket: "b", key: $0, value: Array($0.utf8)) }, signer: log.admin)
        if big { _ = try node.append([.put(bucket: "big", key: "blob", value: [UInt8](repeating: 0x5a, count: 50 << 20))], signer: log.admin) }
        return log.directory.appendingPathComponent("\(name).db").path
    }

    /// Pages read from the file by `get`s of every small key on a fresh connection, after one
    /// warm-up read that loads the schema.
    func pagesReadBySmallGets(_ path: String, options: StoreOptions) throws -> Int {
        let store = try LogStore.open(path: path, options: options)
        _ = try store.state(bucket: "warm", key: "up")
        _ = store.database.cacheMisses(reset: true)
        for key in Self.smallKeys {
            let state = try #require(try store.state(bucket: "b", key: key))
            #expect(try store.value(state.value!.digest) == .present(Array(key.utf8)))
        }
        return store.database.cacheMisses()
    }

    @Test func aLargeValueDoesNotSlowLookupsOfOthers() throws {
        let log = TestLog()
        defer { log.cleanup() }
        let plain = try node(log, name: "plain", big: false)
        let withBig = try node(log, name: "big", big: true)
        let (without, with) = (try pagesReadBySmallGets(plain, options: log.options), try pagesReadBySmallGets(withBig, options: log.options))
        print("aLargeValueDoesNotSlowLookupsOfOthers: \(without) pages read without the 50 MiB value, \(with) with it")
        #expect(with <= without + 8, "a 50 MiB value is 12,800 pages; none of them should be read")
        #expect(with < 200)
        let store = try LogStore.open(path: withBig, options: log.options)
        let state = try #require(try store.state(bucket: "big", key: "blob"))
        guard case .present(let bytes) = try store.value(state.value!.digest) else { Issue.record("big value missing"); return }
        #expect(bytes.count == 50 << 20 && bytes.allSatisfy { $0 == 0x5a })
        #expect(try store.verify().isClean)
    }

    /// A 50 MiB value waiting in the orphan pool (which takes entries from unknown authors, as
    /// their grant may be among the missing parents) or in the quarantine is not read by the
    /// duplicate check of every incoming entry.
    @Test func aLargePendingValueDoesNotSlowInserts() throws {
        let log = TestLog()
        defer { log.cleanup() }
        let source = try log.node("source")
        let incoming = try (0..<32).map { try RawEntry(source.put("b", "k\($0)", "v\($0)", by: log.admin), value: Array("v\($0)".utf8)) }
        let big = [UInt8](repeating: 0x5a, count: 50 << 20)
        let now = log.clock.nowMilliseconds()
        let orphan = LogStore.sign(.put(bucket: "big", key: "orphan", value: ValueRef(of: big)), by: key(7),
                                   hlc: HLC(wallMilliseconds: now, counter: 1), parents: [Hash32(bytes: [UInt8](repeating: 9, count: 32))!])
        let future = LogStore.sign(.put(bucket: "big", key: "future", value: ValueRef(of: big)), by: log.admin,
                                   hlc: HLC(wallMilliseconds: now + 3_600_000, counter: 0), parents: [log.genesis.id])
        func pagesRead(pending: Bool) throws -> Int {
            let name = pending ? "pending" : "plain"
            let node = try log.node(name)
            if pending {
                let report = try node.insert([RawEntry(orphan, value: big), RawEntry(future, value: big)])
                #expect(report.orphaned == [orphan.id] && report.quarantined == [future.id])
            }
            let store = try LogStore.open(path: log.directory.appendingPathComponent("\(name).db").path, options: log.options)
            _ = try store.orphanCount()  // loads the schema
            _ = store.database.cacheMisses(reset: true)
            for entry in incoming { #expect(try store.insert([entry]).applied.count == 1) }
            return store.database.cacheMisses()
        }
        let (without, with) = (try pagesRead(pending: false), try pagesRead(pending: true))
        print("aLargePendingValueDoesNotSlowInserts: \(without) pages read without the pending 50 MiB values, \(with) with them")
        #expect(with <= without + 16)
    }

    /// A schema-2 file (values in a `WITHOUT ROWID` table, no orphan counter) is migrated on
    /// open: every value, missing value and purge mark survives, and the counter starts right.
    @Test func aVersion2FileIsMigrated() throws {
        let log = TestLog()
        defer { log.cleanup() }
        let source = try log.node("source")
        let kept = try source.put("b", "kept", "kept bytes", by: log.admin)
        let purged = try source.put("b", "purged", "secret", by: log.admin)
        let child = try source.put("b", "child", "c", by: log.admin)
        let grandchild = try source.put("b", "grandchild", "g", by: log.admin)
        let path = log.directory.appendingPathComponent("old.db").path
        let future = LogStore.sign(.delete(bucket: "b", key: "later"), by: log.admin,
                                   hlc: HLC(wallMilliseconds: log.clock.nowMilliseconds() + 3_600_000, counter: 0), parents: [log.genesis.id])
        do {
            let node = try LogStore.create(path: path, genesis: log.genesis, options: log.options)
            let raw = try source.exportRaw()
            #expect(try node.insert([raw[0], raw[1]]).applied.count == 2)
            #expect(try node.insert([raw[3]]).orphaned == [grandchild.id])
            #expect(try node.insert([RawEntry(future)]).quarantined == [future.id])
            #expect(try node.purge(try #require(purged.payload.valueRef).digest))
        }
        // Turn the file back into schema version 2.
        let db = try Database(path: path)
        try db.writeTransaction {
            try db.execute("""
                CREATE TABLE value_store_old(digest BLOB PRIMARY KEY, length INTEGER NOT NULL, data BLOB,
                                             purged INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
                INSERT INTO value_store_old(digest, length, data, purged) SELECT digest, length, data, purged FROM value_store;
                INSERT INTO value_store_old(digest, length, data, purged) VALUES(zeroblob(32), 7, NULL, 0);
                DROP TABLE value_store;
                ALTER TABLE value_store_old RENAME TO value_store;
                CREATE TABLE orphans_old(id BLOB PRIMARY KEY, body BLOB NOT NULL, sig BLOB NOT NULL, value BLOB,
                                         received_ms INTEGER NOT NULL) WITHOUT ROWID;
                INSERT INTO orphans_old SELECT id, body, sig, value, received_ms FROM orphans;
                DROP TABLE orphans;
                ALTER TABLE orphans_old RENAME TO orphans;
                CREATE TABLE quarantine_old(id BLOB PRIMARY KEY, body BLOB NOT NULL, sig BLOB NOT NULL, value BLOB,
                                            hlc INTEGER NOT NULL, received_ms INTEGER NOT NULL, checked_ms INTEGER NOT NULL) WITHOUT ROWID;
                INSERT INTO quarantine_old SELECT id, body, sig, value, hlc, received_ms, checked_ms FROM quarantine;
                DROP TABLE quarantine;
                ALTER TABLE quarantine_old RENAME TO quarantine;
                DROP INDEX orphan_waits_orphan;
                DELETE FROM meta WHERE name = 'orphan_count';
                DROP TABLE writers;
                ALTER TABLE peer_status DROP COLUMN lag_entries;
                ALTER TABLE peer_status DROP COLUMN lag_oldest_ms;
                ALTER TABLE peer_status DROP COLUMN lag_lower_bound;
                DROP TABLE changes;
                DROP TABLE merge_defeats;
                ALTER TABLE peer_status DROP COLUMN held;
                UPDATE meta SET value = 2 WHERE name = 'schema_version';
                """)
        }
        #expect(try LogStore.open(path: path, options: log.options, readOnly: true).orphanCount() == 1, "read as it is")
        let migrated = try LogStore.open(path: path, options: log.options)
        let version = try db.prepare("SELECT value FROM meta WHERE name = 'schema_version'")
        #expect(try version.step() && version.int(0) >= 3)
        #expect(try migrated.orphanCount() == 1)
        // The change log is backfilled at the entries' own seqs: stored cursors keep their meaning.
        let backfilled = try migrated.changes(after: .start, limit: 100, values: false)
        #expect(backfilled.map(\.cursor.rawValue) == backfilled.map(\.stored.seq))
        #expect(backfilled.map(\.cursor.rawValue) == Array(1...Int64(try migrated.entryCount())))
        #expect(backfilled.last?.after?.entryID == purged.id && backfilled.last?.before?.entryID == nil)
        #expect(try migrated.value(try #require(kept.payload.valueRef).digest) == .present(Array("kept bytes".utf8)))
        #expect(try migrated.value(try #require(purged.payload.valueRef).digest) == .purged)
        #expect(try migrated.value(Hash32(bytes: [UInt8](repeating: 0, count: 32))!) == .missing)
        let report = try migrated.verify()
        #expect(report.isClean && report.valuesChecked == 1, "\(report.problems)")
        // The migrated table takes new values, and the purge mark still refuses re-sent bytes.
        #expect(try migrated.insert(try source.exportRaw()).applied == [child.id, grandchild.id])
        #expect(try migrated.value(ValueRef(of: Array("g".utf8)).digest) == .present(Array("g".utf8)))
        #expect(try migrated.value(try #require(purged.payload.valueRef).digest) == .purged)
        #expect(try migrated.orphanCount() == 0)
        #expect(try migrated.quarantineCount() == 1)
        log.clock.advance(3_600_000)
        #expect(try migrated.recheckQuarantine().applied == [future.id])
        #expect(try migrated.quarantineCount() == 0 && migrated.verify().isClean)
    }
}

extension Payload {
    var valueRef: ValueRef? {
        if case .put(_, _, let ref) = self { return ref }
        return nil
    }
}
