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
        do {
            let node = try LogStore.create(path: path, genesis: log.genesis, options: log.options)
            let raw = try source.exportRaw()
            #expect(try node.insert([raw[0], raw[1]]).applied.count == 2)
            #expect(try node.insert([raw[3]]).orphaned == [grandchild.id])
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
                DELETE FROM meta WHERE name = 'orphan_count';
                DROP TABLE writers;
                DROP TABLE changes;
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
    }
}

extension Payload {
    var valueRef: ValueRef? {
        if case .put(_, _, let ref) = self { return ref }
        return nil
    }
}
