import CairnCore
import CairnStore
import Testing

@Suite struct IngestTests {
    @Test func appendThenReadBack() throws {
        let log = TestLog()
        defer { log.cleanup() }
        let node = try log.node()
        let entry = try node.put("tables", "orders", "v1", by: log.admin)
        let state = try #require(try node.state(bucket: "tables", key: "orders"))
        #expect(state.entryID == entry.id)
        #expect(try node.value(state.value!.digest) == .present(Array("v1".utf8)))
        #expect(try node.heads().map(\.id) == [entry.id])
        #expect(entry.parents == [log.genesis.id])
        #expect(entry.hlc > log.genesis.hlc)
    }

    @Test func insertingKnownEntriesIsANoOp() throws {
        let log = TestLog()
        defer { log.cleanup() }
        let a = try log.node("a"), b = try log.node("b")
        for i in 0..<5 { _ = try a.put("b", "k\(i)", "v\(i)", by: log.admin) }
        let raw = try a.exportRaw()
        let first = try b.insert(raw)
        #expect(first.applied.count == 5 && first.rejected.isEmpty)
        let before = try b.stateSnapshot()
        let second = try b.insert(raw + [RawEntry(log.genesis)])
        #expect(second.applied.isEmpty && second.duplicates == 6)
        #expect(try b.stateSnapshot() == before)
        #expect(try b.entryCount() == 6)
    }

    @Test func batchReportsEachRejectedIndexAndAppliesTheRest() throws {
        let stranger = key(9)
        let log = TestLog()
        defer { log.cleanup() }
        let a = try log.node("a"), b = try log.node("b")
        let good = try a.put("b", "good", "1", by: log.admin)
        let next = HLC(wallMilliseconds: log.clock.nowMilliseconds(), counter: 50)
        var forged = RawEntry(LogStore.sign(.put(bucket: "b", key: "x", value: ValueRef(of: [1])), by: log.admin, hlc: next, parents: [good.id]))
        forged.signature[0] ^= 1
        let unknown = RawEntry(LogStore.sign(.delete(bucket: "b", key: "good"), by: stranger, hlc: next, parents: [good.id]))
        var wrongID = RawEntry(LogStore.sign(.delete(bucket: "b", key: "y"), by: log.admin, hlc: next, parents: [good.id]))
        wrongID.claimedID = Hash32(bytes: [UInt8](repeating: 7, count: 32))
        let garbage = RawEntry(body: [1, 2, 3], signature: [UInt8](repeating: 0, count: 64))
        let badValue = RawEntry(
            LogStore.sign(.put(bucket: "b", key: "v", value: ValueRef(of: [1, 2])), by: log.admin, hlc: next, parents: [good.id]),
            value: [9, 9])
        let report = try b.insert([RawEntry(good, value: Array("1".utf8)), forged, unknown, wrongID, garbage, badValue])
        #expect(report.applied == [good.id])
        let reasons = Dictionary(uniqueKeysWithValues: report.rejected.map { ($0.index, $0.reason.label) })
        #expect(reasons == [1: "bad_signature", 2: "unknown_author", 3: "id_mismatch", 4: "malformed", 5: "value_mismatch"])
        #expect(try b.stateSnapshot() == ["b/good=\(good.id.hex)"])
        #expect(try b.entryCount() == 2)
    }

    @Test func orphansWaitForTheirParentsAndAreAppliedParentsFirst() throws {
        let log = TestLog()
        defer { log.cleanup() }
        let a = try log.node("a"), b = try log.node("b")
        for i in 0..<4 { _ = try a.put("b", "k", "v\(i)", by: log.admin) }
        let raw = try a.exportRaw()
        let report1 = try b.insert(Array(raw.reversed().prefix(3)))
        #expect(report1.orphaned.count == 3 && report1.applied.isEmpty)
        #expect(try b.orphanCount() == 3)
        #expect(try b.missingParents() == [raw[0].claimedID!])
        let report2 = try b.insert([raw[0]])
        #expect(report2.applied == raw.map { $0.claimedID! })
        #expect(try b.orphanCount() == 0)
        #expect(try b.stateSnapshot() == a.stateSnapshot())
        #expect(try b.entries(afterSeq: 0, limit: 10).map(\.entry.id) == [log.genesis.id] + raw.map { $0.claimedID! })
    }

    @Test func futureEntriesAreQuarantinedThenAppliedWhenTheirTimeComes() throws {
        let log = TestLog()
        defer { log.cleanup() }
        let b = try log.node("b")
        let future = HLC(wallMilliseconds: log.clock.nowMilliseconds() + 3_600_000, counter: 0)
        let entry = LogStore.sign(.delete(bucket: "b", key: "k"), by: log.admin, hlc: future, parents: [log.genesis.id])
        let report = try b.insert([RawEntry(entry)])
        #expect(report.quarantined == [entry.id] && report.applied.isEmpty && report.rejected.isEmpty)
        #expect(try b.quarantineCount() == 1 && b.entry(id: entry.id) == nil)
        #expect(try b.insert([RawEntry(entry)]).duplicates == 1)
        #expect(try b.recheckQuarantine().applied.isEmpty)
        log.clock.advance(3_600_000 - b.options.maxFutureSkewMilliseconds + 1)
        #expect(try b.recheckQuarantine().applied == [entry.id])
        #expect(try b.quarantineCount() == 0 && b.entry(id: entry.id) != nil)
    }

    @Test func anHLCNotAboveItsParentIsRejected() throws {
        let log = TestLog()
        defer { log.cleanup() }
        let b = try log.node("b")
        let entry = LogStore.sign(.delete(bucket: "b", key: "k"), by: log.admin, hlc: log.genesis.hlc, parents: [log.genesis.id])
        #expect(try b.insert([RawEntry(entry)]).rejected.first?.reason == .hlcNotAboveParent(parent: log.genesis.id))
    }

    @Test func aForeignGenesisIsRejected() throws {
        let log = TestLog(), other = TestLog(admin: key(2))
        defer { log.cleanup(); other.cleanup() }
        #expect(try log.node().insert([RawEntry(other.genesis)]).rejected.first?.reason == .foreignGenesis)
    }

    @Test func theClockNeverGoesBackwardsAcrossRestarts() throws {
        let log = TestLog()
        defer { log.cleanup() }
        let path = log.directory.appendingPathComponent("n.db").path
        var last = try LogStore.create(path: path, genesis: log.genesis, options: log.options).put("b", "k", "1", by: log.admin).hlc
        for _ in 0..<3 {
            log.clock.set(log.clock.nowMilliseconds() - 60_000)  // the wall clock jumps back a minute
            let reopened = try LogStore.open(path: path, options: log.options)
            let hlc = try reopened.put("b", "k", "x", by: log.admin).hlc
            #expect(hlc > last)
            last = hlc
        }
    }

    @Test func openingSomethingElseFailsClearly() throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("not-a-log").path
        _ = FileManager.default.createFile(atPath: path, contents: Data("hello, this is not sqlite at all......".utf8))
        #expect(throws: StoreError.notACairnLog(path: path)) { try LogStore.open(path: path) }
        let missing = dir.appendingPathComponent("missing.db").path
        #expect(throws: StoreError.notACairnLog(path: missing)) { try LogStore.open(path: missing) }
    }
}

import Foundation
