import CairnCore
import CairnStore
import Testing

/// A writer whose wall clock runs ahead: its entries within the skew bound are applied, but no
/// local write or merge takes one as a parent (nor adopts its HLC) until this node's wall clock
/// is within the tolerance of it; entries beyond the bound wait in quarantine with their
/// children, counted apart from true orphans.
@Suite struct ClockSkewTests {
    static let fast = key(2)

    static func log() -> TestLog { TestLog(writers: [WriterGrant(key: fast.publicKey, role: .writer)]) }

    /// A put by the fast writer stamped `ahead` ms after the wall clock.
    static func fastPut(_ log: TestLog, _ key: String, ahead: UInt64, counter: UInt16 = 0, parents: [Hash32]) -> RawEntry {
        let value = Array(key.utf8)
        let hlc = HLC(wallMilliseconds: log.clock.nowMilliseconds() + ahead, counter: counter)
        return RawEntry(LogStore.sign(.put(bucket: "b", key: key, value: ValueRef(of: value)), by: fast, hlc: hlc, parents: parents), value: value)
    }

    @Test func aHeadAheadOfTheClockIsLeftAsideAndLocalWritesStayWithinTheTolerance() throws {
        let log = Self.log()
        defer { log.cleanup() }
        let path = log.directory.appendingPathComponent("node.db").path
        var node = try LogStore.create(path: path, genesis: log.genesis, options: log.options)
        let tolerance = node.options.clockToleranceMilliseconds
        let start = log.clock.nowMilliseconds()
        let honest = try node.put("b", "k", "honest", by: log.admin)
        // 200 s ahead: inside the 5-minute skew bound, so applied, and the only head.
        let ahead = Self.fastPut(log, "k", ahead: 200_000, parents: [honest.id])
        #expect(try node.insert([ahead]).applied == [ahead.claimedID!])
        #expect(try node.heads().map(\.id) == [ahead.claimedID!])
        var hold = try node.skewHold()
        #expect(hold.headsAhead == 1 && hold.quarantined == 0 && hold.holdsMerges)

        // A local write takes the newest entry within the tolerance as its parent and signs
        // at the wall clock, not 200 s ahead. The fast write still wins its key (LWW).
        let first = try node.put("b", "own", "1", by: log.admin)
        #expect(first.parents == [honest.id])
        #expect(first.hlc.wallMilliseconds <= start + tolerance)
        #expect(try node.state(bucket: "b", key: "k")?.entryID == ahead.claimedID!)
        // A restart does not adopt the stored entry ahead of the clock either; no merge is
        // written over it.
        node = try LogStore.open(path: path, options: log.options)
        let second = try node.append([.put(bucket: "b", key: "own", value: Array("2".utf8))], signer: log.admin)
        #expect(second.count == 1 && second[0].parents == [first.id] && second[0].hlc > first.hlc)
        #expect(second[0].hlc.wallMilliseconds <= start + tolerance)
        #expect(Set(try node.heads().map(\.id)) == [second[0].id, ahead.claimedID!])

        // Once the wall clock is within the tolerance of it, the next write merges it.
        log.clock.advance(200_000 - tolerance + 1)
        hold = try node.skewHold()
        #expect(hold.headsAhead == 0 && !hold.holdsMerges)
        let merged = try node.append([.put(bucket: "b", key: "own", value: Array("3".utf8))], signer: log.admin)
        #expect(merged.count == 2)
        #expect(Set(merged[0].parents) == [second[0].id, ahead.claimedID!])
        #expect(merged[0].hlc > HLC(wallMilliseconds: start + 200_000, counter: 0))  // invariant 3
        #expect(try node.heads().map(\.id) == [merged[1].id])
    }

    /// A merge of local heads (a write on a diverged DAG) joins the heads within the tolerance
    /// and leaves the one ahead of the clock aside.
    @Test func aLocalMergeJoinsOnlyTheHeadsWithinTheTolerance() throws {
        let log = Self.log()
        defer { log.cleanup() }
        let node = try log.node("n"), other = try log.node("other")
        let mine = try node.put("b", "x", "mine", by: log.admin)
        let theirs = try other.put("b", "y", "theirs", by: log.admin)
        let ahead = Self.fastPut(log, "z", ahead: 60_000, parents: [log.genesis.id])
        #expect(try node.insert([RawEntry(theirs, value: Array("theirs".utf8)), ahead]).applied.count == 2)
        #expect(try node.heads().count == 3)
        let written = try node.append([.put(bucket: "b", key: "w", value: [1])], signer: log.admin)
        #expect(written.count == 2)
        #expect(Set(written[0].parents) == [mine.id, theirs.id])
        #expect(written.allSatisfy { $0.hlc.wallMilliseconds <= log.clock.nowMilliseconds() + node.options.clockToleranceMilliseconds })
        #expect(Set(try node.heads().map(\.id)) == [written[1].id, ahead.claimedID!])
    }

    /// The children of a quarantined entry are stamped above it: they wait in quarantine with
    /// it, in whatever order they arrive, and are applied with it — not kept as orphans whose
    /// (quarantined) parents would be asked for again.
    @Test func childrenOfAQuarantinedEntryWaitWithItNotAsOrphans() throws {
        let log = Self.log()
        defer { log.cleanup() }
        let node = try log.node()
        let f1 = Self.fastPut(log, "k1", ahead: 600_000, parents: [log.genesis.id])
        let f2 = Self.fastPut(log, "k2", ahead: 600_000, counter: 1, parents: [f1.claimedID!])
        let f3 = Self.fastPut(log, "k3", ahead: 600_000, counter: 2, parents: [f2.claimedID!])
        let report = try node.insert([f3, f2, f1])  // children first
        #expect(report.quarantined.count == 3 && report.orphaned.isEmpty && report.applied.isEmpty)
        #expect(try node.orphanCount() == 0 && node.missingParents().isEmpty)
        var hold = try node.skewHold()
        #expect(hold.quarantined == 3 && hold.quarantinedDueSoon == 3 && hold.waitingForQuarantine == 0 && hold.holdsMerges)
        // A clock far off (beyond the horizon) does not hold merges back.
        hold = try node.skewHold(horizonMilliseconds: 0)
        #expect(hold.quarantined == 3 && hold.quarantinedDueSoon == 0 && !hold.holdsMerges)
        log.clock.advance(600_000 - node.options.maxFutureSkewMilliseconds)
        #expect(try node.recheckQuarantine().applied == [f1, f2, f3].map { $0.claimedID! })
        #expect(try node.quarantineCount() == 0 && node.orphanCount() == 0)
    }

    /// When the skew bound moves between a parent's quarantine and its child's arrival, the
    /// child is an orphan of a quarantined entry: counted apart from true orphans, its parent not
    /// asked for, released with it by the re-check.
    @Test func orphansOfAQuarantinedEntryAreCountedApartAndNotAskedFor() throws {
        let log = Self.log()
        defer { log.cleanup() }
        let node = try log.node()
        let bound = node.options.maxFutureSkewMilliseconds
        let parent = Self.fastPut(log, "p", ahead: bound + 5, parents: [log.genesis.id])
        #expect(try node.insert([parent]).quarantined == [parent.claimedID!])
        log.clock.advance(10)  // the parent is within the bound now, but not re-checked yet
        let child = Self.fastPut(log, "c", ahead: bound - 4, parents: [parent.claimedID!])
        let grandchild = Self.fastPut(log, "g", ahead: bound - 3, parents: [child.claimedID!])
        let unknownParent = Hash32(bytes: [UInt8](repeating: 0xAB, count: 32))!
        let trueOrphan = Self.fastPut(log, "t", ahead: 1, parents: [unknownParent])
        let report = try node.insert([grandchild, child, trueOrphan])
        #expect(report.orphaned.count == 3 && report.quarantined.isEmpty)
        #expect(try node.orphanCount() == 3)
        #expect(try node.missingParents() == [unknownParent])
        let hold = try node.skewHold()
        #expect(hold.quarantined == 1 && hold.waitingForQuarantine == 2 && hold.holdsMerges)
        let recheck = try node.recheckQuarantine()
        #expect(recheck.applied == [parent, child, grandchild].map { $0.claimedID! })
        #expect(try node.orphanCount() == 1 && node.missingParents() == [unknownParent])
        let after = try node.skewHold()
        #expect(after.quarantined == 0 && after.waitingForQuarantine == 0)
        #expect(after.headsAhead == 1)  // the grandchild: applied, but ahead of the clock's tolerance
    }

    /// A node whose fast wall clock is corrected (stepped back ten minutes) keeps signing above
    /// its own entries — its writes stay ordered — and keeps taking its own head as a parent.
    @Test func aCorrectedFastNodeStillSignsAboveItsOwnEntries() throws {
        let log = Self.log()
        defer { log.cleanup() }
        let path = log.directory.appendingPathComponent("fast.db").path
        log.clock.advance(600_000)
        let fastNode = try LogStore.create(path: path, genesis: log.genesis, options: log.options)
        let before = try fastNode.put("b", "k", "fast", by: Self.fast)
        log.clock.set(log.clock.nowMilliseconds() - 600_000)  // corrected
        let reopened = try LogStore.open(path: path, options: log.options)
        let after = try reopened.put("b", "k", "corrected", by: Self.fast)
        #expect(after.hlc > before.hlc && after.parents == [before.id])
        #expect(try reopened.state(bucket: "b", key: "k")?.entryID == after.id)
    }
}
