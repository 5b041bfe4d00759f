import CairnCore
import CairnStore
import Cairn
import CairnTestSupport
import Foundation
import Testing

@testable import CairnSync

/// Three nodes on loopback, one with its wall clock ten minutes ahead (issue #9): the honest
/// nodes are not dragged to sign in the future, they count what the skew rule holds back, the
/// merges stay bounded while the fast node is fast, and everything converges — same entries, one
/// head — once the fast node's entries are in everyone's past. Every clock is injected.
@Suite(.serialized, .stopsNodes) struct ClockSkewSyncTests {
    static let ahead: UInt64 = 600_000

    @Test func aFastNodeNeitherDragsTheClusterForwardNorSplitsItForGood() async throws {
        let seed = randomizedTestSeed("aFastNodeNeitherDragsTheClusterForwardNorSplitsItForGood")
        var random = SplitMix64(seed: seed)
        let start = SystemWallClock().nowMilliseconds()
        let clocks = [ManualWallClock(start), ManualWallClock(start), ManualWallClock(start + Self.ahead)]
        var configuration = testConfiguration()
        configuration.quarantineRecheckInterval = .milliseconds(50)
        let nodes = try await makeCluster("skew", count: 3, configuration: configuration, wallClocks: clocks)
        let honest = Array(nodes[..<2]), fast = nodes[2]
        let fastKey = fast.log.nodeKey
        let honestKeys = Set(honest.map(\.log.nodeKey))
        let tolerance = StoreOptions().clockToleranceMilliseconds
        let bound = StoreOptions().maxFutureSkewMilliseconds

        /// Honest nodes never sign more than the tolerance ahead of their wall clock (which has
        /// only moved forward, so its reading now bounds every entry they signed).
        func expectHonestClocks(_ phase: String) async throws {
            for entry in try await fast.log.log(LogFilter()) where honestKeys.contains(entry.entry.author) {
                #expect(
                    entry.entry.hlc.wallMilliseconds <= clocks[0].nowMilliseconds() + tolerance,
                    "\(phase): an honest entry signed \(Int64(entry.entry.hlc.wallMilliseconds) - Int64(clocks[0].nowMilliseconds())) ms ahead (seed \(seed))")
            }
        }
        func authoredByFast() async throws -> Int {
            var filter = LogFilter()
            filter.author = fastKey
            return try await fast.log.log(filter).count
        }
        func mergersWrote() -> Double { nodes.map { metric($0.node, "cairn_merges_written_total") }.reduce(0, +) }
        func rounds(_ node: TestNode) -> Double { metric(node.node, "cairn_rbsr_rounds_total") }

        // Every node learns the writer grants; then, partitioned, every node writes (some keys
        // on every node).
        try await connectFullMesh(nodes)
        _ = try await awaitConvergence(nodes)
        for node in nodes { await node.stop() }
        for node in nodes { for peer in try await node.log.peers() { _ = try await node.log.removePeer(address: peer.address) } }
        for (index, node) in nodes.enumerated() {
            for w in 0..<(2 + Int(random.next() % 3)) {
                _ = try await node.log.put("shared", "k\(random.next() % 3)", Array("n\(index)w\(w)".utf8))
            }
            _ = try await node.log.put("own", "n\(index)", [UInt8(index)])
        }
        for node in nodes { try await node.restart() }

        // Phase 1, the fast node ten minutes ahead. The honest nodes reach it first, then each
        // other. Its entries are quarantined (children with their parents, none an orphan);
        // it merges what it holds; the honest nodes, their head set held by the quarantine,
        // write no merge.
        for node in honest { try await node.dial(fast) }
        try await eventually(60, "the honest nodes quarantined the fast node's entries") {
            let fastEntries = try await authoredByFast()
            for node in honest where try await node.log.counts().quarantined != fastEntries { return false }
            return true
        }
        try await honest[1].dial(honest[0])
        try await eventually(60, "the fast node holds everything, merged; the honest nodes hold everything else") {
            let all = try await fast.log.counts()
            guard all.heads == 1 else { return false }
            for node in honest {
                let counts = try await node.log.counts()
                if counts.entries + counts.quarantined != all.entries || counts.heads != 2 { return false }
            }
            return true
        }
        // Time passes (two more reconciliation rounds on every honest node): nothing moves.
        let roundsBefore = honest.map(rounds)
        try await eventually(60, "two more reconciliation rounds") {
            zip(honest, roundsBefore).allSatisfy { rounds($0) >= $1 + 2 }
        }
        let fastEntries = try await authoredByFast()
        for node in honest {
            let counts = try await node.log.counts()
            #expect(counts.quarantined == fastEntries, "seed \(seed)")
            #expect(counts.orphans == 0 && counts.waitingForQuarantine == 0 && counts.headsAhead == 0, "seed \(seed)")
            #expect(try await node.log.skewHold().holdsMerges)
            #expect(try await node.log.heads().count == 2)
            #expect(metric(node.node, "cairn_merges_written_total") == 0)
        }
        #expect(try await fast.log.heads().count == 1)
        try await expectHonestClocks("phase 1")
        #expect(mergersWrote() <= 2, "merges written while the fast node is 10 min ahead: \(mergersWrote())")

        // Phase 2, 400 s later: the fast node's entries are inside the 5-minute skew bound and
        // applied, but more than the tolerance ahead — heads no honest write takes as a parent.
        for clock in clocks { clock.advance(400_000) }
        try await eventually(60, "the quarantine released the fast node's entries") {
            for node in honest {
                let counts = try await node.log.counts()
                if counts.quarantined != 0 || counts.headsAhead != 1 { return false }
            }
            return true
        }
        var written: [SignedEntry] = []
        for node in honest {
            // The write (and the merge of the honest heads it may bring) sign at the wall clock;
            // no parent is the fast node's.
            for entry in try await node.log.write([.put(bucket: "shared", key: "k0", value: Array("after".utf8))]) {
                #expect(entry.hlc.wallMilliseconds <= clocks[0].nowMilliseconds() + tolerance, "seed \(seed)")
                for parent in entry.parents { #expect(try await node.log.entry(parent)?.entry.author != fastKey) }
                written.append(entry)
            }
            #expect(try await node.log.skewHold().holdsMerges)
        }
        // The fast node merges the honest writes (its merge, ten minutes ahead again, is
        // quarantined by the honest nodes); the honest nodes still write no merge.
        try await eventually(60, "the fast node merged the honest writes; the honest nodes quarantined its merge") {
            let all = try await fast.log.counts()
            guard all.heads == 1 else { return false }
            for entry in written where try await fast.log.entry(entry.id) == nil { return false }
            for node in honest {
                let counts = try await node.log.counts()
                if counts.entries + counts.quarantined != all.entries || counts.quarantined == 0 { return false }
            }
            return true
        }
        let roundsLater = honest.map(rounds)
        try await eventually(60, "two more reconciliation rounds") {
            zip(honest, roundsLater).allSatisfy { rounds($0) >= $1 + 2 }
        }
        for node in honest {
            let counts = try await node.log.counts()
            #expect(counts.orphans == 0 && counts.waitingForQuarantine == 0, "seed \(seed)")
            #expect(counts.headsAhead == 1 && counts.heads >= 2, "seed \(seed)")
            #expect(metric(node.node, "cairn_merges_written_total") == 0)
        }
        try await expectHonestClocks("phase 2")
        let mergesWhileFast = mergersWrote()
        #expect(mergesWhileFast <= 3, "merges written while the fast node is fast: \(mergesWhileFast) (seed \(seed))")

        // Phase 3: the fast node's clock is corrected, and time passes beyond its entries.
        let later = clocks[0].nowMilliseconds() + Self.ahead + bound
        for clock in clocks { clock.set(later) }
        let converged = try await awaitConvergence(nodes)
        let total = try await fast.log.log(LogFilter()).count
        #expect(converged.entries == total)
        for node in nodes {
            let counts = try await node.log.counts()
            #expect(counts.quarantined == 0 && counts.orphans == 0 && counts.waitingForQuarantine == 0 && counts.headsAhead == 0)
        }
        #expect(mergersWrote() <= mergesWhileFast + 1, "merges after the correction: \(mergersWrote() - mergesWhileFast)")
        try await expectHonestClocks("phase 3")
        // The shared keys have one winner everywhere.
        for k in 0..<3 {
            let value = try await nodes[0].log.get("shared", "k\(k)")
            for node in nodes { #expect(try await node.log.get("shared", "k\(k)") == value) }
        }
    }
}
