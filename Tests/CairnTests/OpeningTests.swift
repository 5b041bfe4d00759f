import CairnCore
import CairnStore
import Cairn
import CairnReconcile
import CairnSQLite
import Foundation
import Testing

/// Opening a log is O(1): it reads a few pages, takes no lock, and leaves the reconciliation
/// index alone until a Negentropy session needs it.
@Suite struct OpeningTests {
    /// The index's tables, and its watermark when they exist.
    private func indexState(_ db: Database) throws -> (tables: Int, watermark: Int64?) {
        let tables = try db.prepare("SELECT count(*) FROM sqlite_master WHERE name IN ('rbsr_buckets', 'rbsr_meta')")
        _ = try tables.step()
        let count = tables.int(0)
        tables.reset()
        guard count == 2 else { return (count, nil) }
        let meta = try db.prepare("SELECT value FROM rbsr_meta WHERE key = 'watermark'")
        defer { meta.reset() }
        return (count, try meta.step() ? meta.int64(0) : nil)
    }

    /// A log whose file has no index yet (as one written before the index existed): opening it
    /// while another process holds the write lock, and reading and writing it, never build it;
    /// the first reconciliation session does, and from then on every write keeps it current.
    @Test func openingReadingAndWritingLeaveTheIndexAloneUntilASessionNeedsIt() async throws {
        let path = temporaryPath("lazy")
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            let log = try CairnLog.create(at: path, name: "lazy")
            try await log.write((0..<3000).map { .put(bucket: "t", key: "k\($0)", value: [UInt8($0 % 256)]) })
        }
        let other = try Database(path: path + "/cairn.db", mode: .readWrite, busyTimeoutMilliseconds: 0)
        try other.execute("DROP TABLE IF EXISTS rbsr_buckets; DROP TABLE IF EXISTS rbsr_meta")

        try other.execute("BEGIN IMMEDIATE")  // another process's write transaction, held throughout
        // With no busy timeout, anything that needed the write lock would fail at once with
        // SQLITE_BUSY: open and reads must not need it (no wall-clock deadline to flake on).
        var noWaiting = StoreOptions()
        noWaiting.busyTimeoutMilliseconds = 0
        let log = try CairnLog.open(at: path, options: noWaiting)
        #expect(try await log.get("t", "k42") == [42])
        #expect(try await log.counts().entries == 3001)
        try other.execute("ROLLBACK")
        #expect(await !log.reconcileIndexIsLoaded)

        try await log.put("t", "new", [1])
        #expect(try indexState(other).tables == 0, "a write built the index")
        #expect(await !log.reconcileIndexIsLoaded)

        _ = try await log.reconcileInitiate("session", frameSizeLimit: 0, budget: ReconcileBudget())
        #expect(await log.reconcileIndexIsLoaded)
        #expect(try indexState(other).watermark == (try await log.lastSeq()))
        try await log.put("t", "newer", [2])
        #expect(try indexState(other).watermark == (try await log.lastSeq()), "a write after first use left the index behind")
    }

    /// A read-only open neither builds the index nor lets a session start (it may need writing).
    @Test func aReadOnlyOpenNeedsNoKeyAndRefusesWrites() async throws {
        let path = temporaryPath("ro")
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            let log = try CairnLog.create(at: path, name: "ro")
            try await log.put("t", "k", [7])
        }
        try FileManager.default.removeItem(atPath: path + "/node.key")
        expectFailure(of: DataDirectoryError.self) { try CairnLog.open(at: path) }
        let log = try CairnLog.open(at: path, readOnly: true)
        #expect(log.isReadOnly && !log.hasNodeKey)
        #expect(try await log.get("t", "k") == [7])
        #expect(try await log.verify().isClean)
        await expectFailure(StoreError.readOnly(path: path)) { try await log.put("t", "k", [8]) }
        await expectFailure(StoreError.readOnly(path: path)) { try await log.addPeer(PeerAddress(address: "h:1")) }
        await #expect(throws: StoreError.readOnly(path: path)) {  // package API: the store's own error
            try await log.reconcileInitiate("session", frameSizeLimit: 0, budget: ReconcileBudget())
        }
        #expect(await !log.reconcileIndexIsLoaded)
        #expect(try await log.get("t", "k") == [7])
    }
}

/// Issue #8 item 4: `verify` recomputes the reconciliation index's aggregates too, and
/// `repair` rebuilds them.
@Suite struct ReconcileIndexVerifyTests {
    @Test func aTamperedBucketAggregateIsFoundAndRepaired() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-index-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let log = try CairnLog.create(at: directory, name: "index")
        for i in 0..<50 { try await log.put("b", "k\(i)", [UInt8(i)]) }
        _ = try await log.reconcileInitiate("session", frameSizeLimit: 0, budget: ReconcileBudget())
        #expect(try await log.verify().isClean)
        let other = try Database(path: directory + "/cairn.db")
        try other.execute("UPDATE rbsr_buckets SET item_count = item_count + 1")
        let problems = try await log.verify().problems.map(\.message)
        #expect(problems.contains { $0.hasPrefix("reconciliation index:") }, "\(problems)")
        try await log.repair()
        #expect(try await log.verify().isClean)
    }
}
