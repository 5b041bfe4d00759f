@testable import CairnSQLite
import Foundation
import Testing

/// Waiting for locks, and read-only files.
@Suite struct LockingTests {
    private func temporaryDirectory(_ name: String) throws -> String {
        let path = NSTemporaryDirectory() + "cairn-sqlite-\(UUID().uuidString)/\(name)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    private func walDatabase(at path: String) throws -> Database {
        let db = try Database(path: path)
        try db.execute("PRAGMA journal_mode = WAL; CREATE TABLE IF NOT EXISTS t(k INTEGER PRIMARY KEY, v)")
        return db
    }

    /// A single-row read leaves its statement on the row, holding a read snapshot; once another
    /// connection commits, SQLite refuses to turn that stale snapshot into a write at once
    /// (SQLITE_BUSY_SNAPSHOT). A write transaction must release it first.
    @Test func aWriteTransactionAfterAReadSeesOtherCommits() throws {
        let directory = try temporaryDirectory("stale")
        defer { try? FileManager.default.removeItem(atPath: (directory as NSString).deletingLastPathComponent) }
        let a = try walDatabase(at: directory + "/db")
        let b = try walDatabase(at: directory + "/db")
        try a.writeTransaction { try a.prepare("INSERT INTO t(k, v) VALUES(1, 'a')").run() }
        let read = try b.prepare("SELECT v FROM t WHERE k = 1")
        #expect(try read.step() && read.text(0) == "a")  // left on its row, as single-row lookups are
        try a.writeTransaction { try a.prepare("INSERT INTO t(k, v) VALUES(2, 'a')").run() }
        try b.writeTransaction { try b.prepare("INSERT INTO t(k, v) VALUES(3, 'b')").run() }
        let count = try a.prepare("SELECT count(*) FROM t")
        #expect(try count.step() && count.int(0) == 3)
    }

    /// While another connection holds the write lock, a writer waits out its busy timeout and
    /// then fails with SQLITE_BUSY; once the lock is free it writes.
    @Test func aWriterWaitsForTheLockUntilItsTimeout() throws {
        let directory = try temporaryDirectory("busy")
        defer { try? FileManager.default.removeItem(atPath: (directory as NSString).deletingLastPathComponent) }
        let holder = try walDatabase(at: directory + "/db")
        let waiter = try Database(path: directory + "/db", busyTimeoutMilliseconds: 50)
        try holder.execute("BEGIN IMMEDIATE")
        let started = ContinuousClock.now
        #expect {
            try waiter.writeTransaction { try waiter.prepare("INSERT INTO t(k) VALUES(1)").run() }
        } throws: { error in
            (error as? SQLiteError).map { $0.code & 0xff == Database.ResultCode.busy } ?? false
        }
        #expect(ContinuousClock.now - started >= .milliseconds(50))
        try holder.execute("COMMIT")
        try waiter.writeTransaction { try waiter.prepare("INSERT INTO t(k) VALUES(1)").run() }
    }

    /// The immutable mode opens through a `file:` URI; paths with URI syntax in them survive.
    @Test func anImmutableOpenReadsAFileWhosePathNeedsEscaping() throws {
        let directory = try temporaryDirectory("odd ?#%& name")
        defer { try? FileManager.default.removeItem(atPath: (directory as NSString).deletingLastPathComponent) }
        let path = directory + "/db"
        do {
            let db = try walDatabase(at: path)
            try db.writeTransaction { try db.prepare("INSERT INTO t(k, v) VALUES(7, 'seven')").run() }
        }
        #expect(!FileManager.default.fileExists(atPath: path + "-wal"), "closing the last connection checkpoints")
        let immutable = try Database(path: path, mode: .readOnlyImmutable)
        let row = try immutable.prepare("SELECT v FROM t WHERE k = 7")
        #expect(try row.step() && row.text(0) == "seven")
        #expect(immutable.isReadOnly)
        #expect(!FileManager.default.fileExists(atPath: path + "-shm"), "an immutable open creates nothing")
        #expect(Database.uriEscaped("/a b/c?d#e%f") == "/a%20b/c%3Fd%23e%25f")
    }
}
