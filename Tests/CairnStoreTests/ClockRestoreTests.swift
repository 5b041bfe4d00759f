import CairnCore
import CairnStore
import Foundation
import Testing

/// Issue #8 item 6: a node never signs, for its own key, an HLC at or below one it knows of,
/// and a node restored from an older copy is told so.
@Suite struct ClockRestoreTests {
    @Test func anOrphanWithinTheBoundMovesTheClock() throws {
        let log = TestLog()
        defer { log.cleanup() }
        let node = try log.node()
        // This node's own entry from before a restore, arriving before its parent: kept as an orphan.
        let ahead = HLC(wallMilliseconds: log.clock.nowMilliseconds() + 60_000, counter: 3)
        let own = LogStore.sign(.delete(bucket: "b", key: "k"), by: log.admin, hlc: ahead, parents: [Hash32(bytes: [UInt8](repeating: 9, count: 32))!])
        #expect(try node.insert([RawEntry(own)]).orphaned == [own.id])
        let next = try node.put("b", "k", "after", by: log.admin)
        #expect(next.hlc > ahead)
        // And across a restart (the clock persisted it).
        let path = log.directory.appendingPathComponent("reopen.db").path
        let reopenedNode = try LogStore.create(path: path, genesis: log.genesis, options: log.options)
        #expect(try reopenedNode.insert([RawEntry(own)]).orphaned == [own.id])
        let reopened = try LogStore.open(path: path, options: log.options)
        #expect(try reopened.put("b", "k", "after restart", by: log.admin).hlc > ahead)
    }

    @Test func aRestoredNodeIsWarnedUntilItWritesAgain() throws {
        let log = TestLog()
        defer { log.cleanup() }
        let path = log.directory.appendingPathComponent("node.db").path
        let backup = log.directory.appendingPathComponent("backup.db").path
        let node = try LogStore.create(path: path, genesis: log.genesis, options: log.options)
        _ = try node.put("b", "k", "one", by: log.admin)
        #expect(try node.newestEntryNotWrittenHere(by: log.admin.publicKey) == nil)
        try node.database.execute("VACUUM INTO '\(backup)'")
        _ = try node.put("b", "k", "two", by: log.admin)  // then the disk dies; a peer had synced this
        let restored = try LogStore.open(path: backup, options: log.options)
        #expect(try restored.newestEntryNotWrittenHere(by: log.admin.publicKey) == nil, "nothing newer known yet")
        let report = try restored.insert(node.exportRaw())
        #expect(report.rejected.isEmpty)
        let newest = try #require(try node.heads().last?.id)
        #expect(try restored.newestEntryNotWrittenHere(by: log.admin.publicKey) == newest)
        let next = try restored.put("b", "k", "three", by: log.admin)
        #expect(next.hlc > (try node.heads().last!.hlc))
        #expect(try restored.newestEntryNotWrittenHere(by: log.admin.publicKey) == nil)
    }
}
