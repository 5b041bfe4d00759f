import CairnSQLite
import Foundation
import Testing

@Suite struct DatabaseTests {
    func memory() throws -> Database {
        let db = try Database(path: ":memory:")
        try db.execute("CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB)")
        return db
    }

    func count(_ db: Database) throws -> Int {
        let s = try db.prepare("SELECT count(*) FROM t")
        _ = try s.step()
        return s.int(0)
    }

    @Test func statementsAreCachedAndRebindable() throws {
        let db = try memory()
        let insert = try db.prepare("INSERT INTO t(k, v) VALUES(?1, ?2)")
        try insert.bind(.int(1), .blob([])).run()
        #expect(try db.prepare("INSERT INTO t(k, v) VALUES(?1, ?2)") === insert)
        try insert.bind(.int(2), .null).run()
        let select = try db.prepare("SELECT v FROM t ORDER BY k")
        #expect(try select.step() && select.blob(0) == [])   // an empty blob stays a blob, not NULL
        #expect(try select.step() && select.blob(0) == nil)
    }

    @Test func aThrowingTransactionRollsBackAndANestedOneOnlyItsOwnPart() throws {
        struct Boom: Error {}
        let db = try memory()
        #expect(throws: Boom.self) {
            try db.writeTransaction {
                try db.prepare("INSERT INTO t(k) VALUES(1)").run()
                throw Boom()
            }
        }
        #expect(try count(db) == 0)
        try db.writeTransaction {
            try db.prepare("INSERT INTO t(k) VALUES(1)").run()
            try? db.writeTransaction {
                try db.prepare("INSERT INTO t(k) VALUES(2)").run()
                throw Boom()
            }
        }
        #expect(try count(db) == 1)
        #expect(!db.isInTransaction)
    }

    @Test func errorsCarryTheCodeMessageAndSQL() throws {
        let db = try memory()
        do {
            _ = try db.prepare("SELECT nope FROM t")
            Issue.record("expected an error")
        } catch let error as SQLiteError {
            #expect(error.code == 1 && error.message.contains("nope") && error.sql == "SELECT nope FROM t")
        }
    }

    @Test func dataVersionMovesWhenAnotherConnectionCommits() throws {
        let path = NSTemporaryDirectory() + "cairn-sqlite-\(UUID().uuidString).db"
        defer { for s in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + s) } }
        let a = try Database(path: path), b = try Database(path: path)
        try a.execute("PRAGMA journal_mode=WAL; CREATE TABLE t(k)")
        let before = try b.dataVersion()
        try a.execute("INSERT INTO t VALUES(1)")
        #expect(try b.dataVersion() != before)
    }
    /// Text is bound and read by its UTF-8 bytes: an embedded U+0000 does not cut it short, and
    /// canonically equivalent strings (precomposed vs decomposed é) stay different values.
    @Test func textRoundTripsByteExactly() throws {
        let db = try Database(path: ":memory:")
        try db.execute("CREATE TABLE s(k TEXT PRIMARY KEY, n INTEGER) WITHOUT ROWID")
        let texts = ["a\0x", "a\0y", "a", "\0", "\u{e9}", "e\u{301}", "", "x\0\0"]
        #expect(Set(texts.map { Array($0.utf8) }).count == texts.count)
        let insert = try db.prepare("INSERT INTO s(k, n) VALUES(?1, ?2)")
        for (n, text) in texts.enumerated() { try insert.bind(.text(text), .int(Int64(n))).run() }
        let select = try db.prepare("SELECT n, k, length(CAST(k AS BLOB)), typeof(k) FROM s WHERE k = ?1")
        for (n, text) in texts.enumerated() {
            try select.bind(.text(text))
            #expect(try select.step(), "row for \(Array(text.utf8))")
            #expect(select.int(0) == n)
            #expect(Array(try #require(select.text(1)).utf8) == Array(text.utf8))
            #expect(select.int(2) == text.utf8.count)
            #expect(select.text(3) == "text")
            #expect(try !select.step())
        }
        let all = try db.prepare("SELECT k FROM s ORDER BY k")
        var read: [[UInt8]] = []
        while try all.step() { read.append(Array(try #require(all.text(0)).utf8)) }
        #expect(read == texts.map { Array($0.utf8) }.sorted { $0.lexicographicallyPrecedes($1) })
        let null = try db.prepare("SELECT NULL")
        #expect(try null.step() && null.text(0) == nil)
    }
}

@Suite struct FreshStatementTests {
    @Test func aFreshStatementIsNotCachedAndWorksLikeACachedOne() throws {
        let db = try Database(path: ":memory:")
        try db.execute("CREATE TABLE t(x INTEGER); INSERT INTO t VALUES (1), (2), (3)")
        let fresh = try db.freshStatement("SELECT count(*) FROM t WHERE x >= ?1")
        try fresh.bind(.int(2))
        #expect(try fresh.step() && fresh.int(0) == 2)
        let again = try db.freshStatement("SELECT count(*) FROM t WHERE x >= ?1")
        #expect(again !== fresh, "each call prepares a new statement")
        #expect(try db.prepare("SELECT 1") === db.prepare("SELECT 1"), "prepare still caches")
    }
}
