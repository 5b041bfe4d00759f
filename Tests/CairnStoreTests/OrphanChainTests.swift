import CairnCore
import CairnSQLite
import CairnStore
import Foundation
import Testing

/// Orphan release is a work list, not a recursion: a chain received children-first, however
/// long, is applied when its root lands. The pool size is a persisted counter.
@Suite struct OrphanChainTests {
    /// `CAIRN_ORPHAN_CHAIN` entries. The default, 20,000, crashed the recursive release of a
    /// debug build (SIGSEGV) and takes ~25 s here; 100,000 takes longer than a unit test should in
    /// debug, so run it in release:
    /// `CAIRN_ORPHAN_CHAIN=100000 swift test -c release --disable-xctest --filter aLongChain`.
    static var chainLength: Int {
        ProcessInfo.processInfo.environment["CAIRN_ORPHAN_CHAIN"].flatMap { Int($0) } ?? 20_000
    }

    /// A chain of `count` puts over 64 keys, each entry the child of the one before, signed by
    /// hand (parents first); the clock is moved past them so none is quarantined.
    static func chain(_ log: TestLog, count: Int) -> [RawEntry] {
        var parent = log.genesis
        var out: [RawEntry] = []
        out.reserveCapacity(count)
        for i in 0..<count {
            let value = Array("v\(i)".utf8)
            let entry = LogStore.sign(
                .put(bucket: "chain", key: "k\(i % 64)", value: ValueRef(of: value)), by: log.admin,
                hlc: HLC(rawValue: parent.hlc.rawValue + 1), parents: [parent.id])
            out.append(RawEntry(entry, value: value))
            parent = entry
        }
        log.clock.set(parent.hlc.wallMilliseconds + 1)
        return out
    }

    func expectSame(_ node: LogStore, as reference: LogStore, verify: Bool) throws {
        #expect(try node.orphanCount() == 0)
        #expect(try node.entryCount() == reference.entryCount())
        #expect(try node.heads() == reference.heads())
        #expect(try node.entrySnapshot() == reference.entrySnapshot())
        #expect(try node.stateSnapshot() == reference.stateSnapshot())
        if verify {
            let report = try node.verify()
            #expect(report.isClean, "\(report.problems.prefix(5))")
        }
    }

    @Test func aLongChainReceivedChildrenFirstIsAppliedWithoutRecursion() throws {
        let n = Self.chainLength
        let log = TestLog()
        defer { log.cleanup() }
        let started = Date()
        let entries = Self.chain(log, count: n)
        let ids = entries.map { $0.claimedID! }

        let reference = try log.node("reference")
        for start in stride(from: 0, to: n, by: 1000) {
            let report = try reference.insert(Array(entries[start..<min(n, start + 1000)]))
            #expect(report.rejected.isEmpty && report.orphaned.isEmpty)
        }

        // One entry per insert call, children first (as a peer pushing the newest first would).
        let single = try log.node("single")
        for (i, entry) in entries.reversed().dropLast().enumerated() {
            let report = try single.insert([entry])
            if report.orphaned.count != 1 { Issue.record("entry \(i): \(report.rejected)"); return }
        }
        #expect(try single.orphanCount() == n - 1)
        let last = try single.insert([entries[0]])
        #expect(last.applied == ids, "released parents first, in chain order")
        #expect(last.rejected.isEmpty && last.rejectedPending.isEmpty)
        try expectSame(single, as: reference, verify: true)

        // The whole chain, reversed, as one batch (one transaction).
        let batch = try log.node("batch")
        let report = try batch.insert(entries.reversed())
        #expect(report.orphaned.count == n - 1 && report.applied == ids && report.rejected.isEmpty)
        try expectSame(batch, as: reference, verify: false)
        print("aLongChainReceivedChildrenFirstIsAppliedWithoutRecursion: \(n) entries, \(Date().timeIntervalSince(started)) s")
    }

    @Test func theOrphanLimitIsEnforcedAndTheCounterPersists() throws {
        let log = TestLog()
        defer { log.cleanup() }
        let entries = Self.chain(log, count: 6)
        var options = log.options
        options.orphanLimit = 3
        let path = log.directory.appendingPathComponent("limited.db").path
        let node = try LogStore.create(path: path, genesis: log.genesis, options: options)
        let first = try node.insert(Array(entries.reversed().prefix(5)))  // entries 5, 4, 3, 2, 1
        #expect(first.orphaned == [5, 4, 3].map { entries[$0].claimedID! })
        #expect(first.rejected.map(\.index) == [3, 4] && first.rejected.allSatisfy { $0.reason == .orphanPoolFull })
        #expect(try node.orphanCount() == 3)
        #expect(try LogStore.open(path: path, options: options).orphanCount() == 3, "the counter is persisted")
        #expect(try LogStore.open(path: path, options: options, readOnly: true).orphanCount() == 3)
        #expect(try node.insert([entries[1]]).rejected.first?.reason == .orphanPoolFull)
        #expect(try node.insert([entries[5]]).duplicates == 1, "a known orphan is a duplicate, not a new one")

        let second = try node.insert(Array(entries.prefix(3)))  // 0, 1, 2: releases 3, 4, 5
        #expect(second.applied == entries.map { $0.claimedID! } && second.rejected.isEmpty)
        #expect(try node.orphanCount() == 0)
        #expect(try Self.rawOrphanRows(path) == 0)
        #expect(try node.verify().isClean)
    }

    /// A pending entry that no longer decodes is reported and dropped, not silently skipped.
    @Test func anUndecodablePendingEntryIsReportedAsMalformed() throws {
        let log = TestLog()
        defer { log.cleanup() }
        let entries = Self.chain(log, count: 3)
        let path = log.directory.appendingPathComponent("n.db").path
        let node = try LogStore.create(path: path, genesis: log.genesis, options: log.options)
        #expect(try node.insert([entries[2], entries[1]]).orphaned.count == 2)
        let db = try Database(path: path)
        try db.prepare("UPDATE orphans SET body = ?1 WHERE id = ?2").bind(.blob([1, 2, 3]), .blob(entries[1].claimedID!.bytes)).run()
        let report = try node.insert([entries[0]])
        #expect(report.applied == [entries[0].claimedID!])
        #expect(report.rejectedPending.map(\.id) == [entries[1].claimedID!])
        #expect(report.rejectedPending.first.map { $0.reason.label } == "malformed")
        #expect(try Self.rawOrphanRows(path) == 1, "the undecodable row is gone, its child still waits")
        #expect(try node.orphanCount() == 1)
        #expect(try node.missingParents() == [entries[1].claimedID!])
    }

    static func rawOrphanRows(_ path: String) throws -> Int {
        let statement = try Database(path: path, mode: .readOnly).prepare("SELECT count(*) FROM orphans")
        _ = try statement.step()
        return statement.int(0)
    }
}
