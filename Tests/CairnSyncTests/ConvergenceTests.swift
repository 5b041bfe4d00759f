import CairnCore
import CairnStore
import Cairn
import CairnTestSupport
import Foundation
import Testing

@testable import CairnSync

/// Real nodes on loopback with real SQLite files: writes anywhere reach everyone, and the
/// DAG closes to one shared head with one state.
@Suite(.serialized, .stopsNodes) struct ConvergenceTests {
    @Test func randomWritesOnFourNodesConverge() async throws {
        let seed = randomizedTestSeed("randomWritesOnFourNodesConverge")
        var random = SplitMix64(seed: seed)
        let nodes = try await makeCluster("mesh", count: 4)
        try await connectFullMesh(nodes)
        _ = try await awaitConvergence(nodes)  // every node holds its writer grant
        // Writes land while sessions open, pushes fly and rounds run: overlapping keys force
        // concurrent versions that merges must settle.
        for round in 0..<30 {
            let node = nodes[Int(random.next() % UInt64(nodes.count))]
            let key = "k\(random.next() % 12)"
            _ = try await node.log.put("t", key, Array("r\(round)".utf8))
            if random.next() % 4 == 0 { try await Task.sleep(for: .milliseconds(Int64(random.next() % 40))) }
        }
        let converged = try await awaitConvergence(nodes)
        #expect(converged.entries >= 30 + 4)
        // Duplicate connections (both ends dialed) settle to one session per pair.
        try await eventually(30, "one session per pair, heads gauge at 1") {
            for node in nodes where await node.node.connectedPeers.count != 3 || metric(node.node, "cairn_heads") != 1 { return false }
            return true
        }
    }

    @Test func liveWritesReachConnectedPeersByPush() async throws {
        let nodes = try await makeCluster("push", count: 2)
        try await connectFullMesh(nodes)
        try await eventually(30, "session open") { await nodes[1].node.connectedPeers.count == 1 }
        let written = try await nodes[0].log.put("t", "live", [42])
        try await eventually(10, "pushed entry arrives") { try await nodes[1].log.entry(written.id) != nil }
        #expect(try await nodes[1].log.get("t", "live") == [42])
    }

    /// This process's commits wake the pusher: with the database poll set to a minute (and
    /// anti-entropy to an hour), a local write still reaches the peer at once.
    @Test func aLocalCommitIsPushedWithoutWaitingForThePoll() async throws {
        var configuration = testConfiguration()
        configuration.pushPollInterval = .seconds(60)
        configuration.reconcileInterval = .seconds(3600)
        let nodes = try await makeCluster("wake", count: 2, configuration: configuration)
        try await connectFullMesh(nodes)
        try await eventually(30, "session open") { await nodes[1].node.connectedPeers.count == 1 }
        _ = try await awaitConvergence(nodes)
        let written = try await nodes[0].log.put("t", "woken", [7])
        try await eventually(10, "pushed at commit, not at the next poll") { try await nodes[1].log.entry(written.id) != nil }
    }

    /// A partition heals after every side wrote: the nodes end on one shared head and identical
    /// state, and the merges written for the heal stay within the bound (at most N).
    @Test func healedPartitionMergesOnceAndConverges() async throws {
        let count = 4
        let nodes = try await makeCluster("heal", count: count)
        // Every node first learns the writer grants (the invites were written on node 0).
        try await connectFullMesh(nodes)
        _ = try await awaitConvergence(nodes)
        for node in nodes { await node.stop() }
        for node in nodes { for peer in try await node.log.peers() { _ = try await node.log.removePeer(address: peer.address) } }

        // Partitioned: every node writes, some keys on several sides.
        for (index, node) in nodes.enumerated() {
            for k in 0..<5 { _ = try await node.log.put("shared", "k\(k)", Array("node\(index)".utf8)) }
            _ = try await node.log.put("own", "n\(index)", [UInt8(index)])
        }
        var mergesBefore = 0
        for node in nodes { mergesBefore = max(mergesBefore, try await mergeCount(node.log)) }
        var union = Set<Hash32>()
        for node in nodes { union.formUnion(try await node.log.log(LogFilter()).map(\.entry.id)) }

        for node in nodes { try await node.restart() }
        for (i, node) in nodes.enumerated() { for other in nodes[..<i] { try await node.dial(other) } }
        let converged = try await awaitConvergence(nodes)

        let merges = try await mergeCount(nodes[0].log)
        #expect(merges - mergesBefore >= 1 && merges - mergesBefore <= count, "merges written for the heal: \(merges - mergesBefore)")
        #expect(converged.entries == union.count + (merges - mergesBefore))
        // The state is the LWW winner of every key across all sides.
        for k in 0..<5 {
            let value = try await nodes[0].log.get("shared", "k\(k)")
            for node in nodes { #expect(try await node.log.get("shared", "k\(k)") == value) }
        }
        for index in 0..<count { #expect(try await nodes[0].log.get("own", "n\(index)") == [UInt8(index)]) }
    }

    /// A stopped node misses writes; on restart the heads exchange finds what it lacks and
    /// the delta fetch brings it over.
    @Test func restartedNodeCatchesUpByDeltaFetch() async throws {
        var configuration = testConfiguration()
        configuration.reconcileInterval = .seconds(3600)  // only the fast path may do the work
        let nodes = try await makeCluster("restart", count: 2, configuration: configuration)
        try await connectFullMesh(nodes)
        _ = try await awaitConvergence(nodes)
        // Both stop (so node 0's pusher cannot hand the new entries over live); node 0 writes,
        // restarts, and node 1 restarts with node 0's new address.
        await nodes[1].stop()
        await nodes[0].stop()
        _ = try await nodes[0].log.write((0..<700).map { .put(bucket: "t", key: "k\($0)", value: [UInt8($0 % 251)]) })
        try await nodes[0].restart()
        for peer in try await nodes[1].log.peers() { _ = try await nodes[1].log.removePeer(address: peer.address) }
        try await nodes[1].dial(nodes[0])
        try await nodes[1].restart()
        let converged = try await awaitConvergence(nodes)
        #expect(converged.entries >= 700)
        // The fetch's `done` may follow the last batch by a moment.
        try await eventually(10, "the delta fetch completes") { metric(nodes[1].node, "cairn_fetches_total{outcome=\"complete\"}") >= 1 }
        #expect(metric(nodes[1].node, "cairn_entries_received_total") >= 700)
    }

    /// A node whose database is put back to an old copy shows heads older than its peer saw
    /// before: the peer does not trust the fast path and reconciles the sets.
    @Test func nodeRestoredFromOldCopyIsCaughtUpByReconciliation() async throws {
        var configuration = testConfiguration()
        configuration.reconcileInterval = .seconds(3600)
        let nodes = try await makeCluster("restore", count: 2, configuration: configuration)
        try await connectFullMesh(nodes)
        _ = try await awaitConvergence(nodes)
        _ = try await nodes[1].log.put("t", "before-backup", [1])
        _ = try await awaitConvergence(nodes)

        await nodes[1].stop()
        let backup = nodes[1].path + ".backup"
        try FileManager.default.copyItem(atPath: nodes[1].path, toPath: backup)
        try await nodes[1].restart()
        _ = try await nodes[1].log.write((0..<50).map { .put(bucket: "t", key: "b\($0)", value: [2]) })
        _ = try await nodes[0].log.write((0..<50).map { .put(bucket: "t", key: "a\($0)", value: [3]) })
        _ = try await awaitConvergence(nodes)

        // Restore the old copy. Its heads are older than node 0 last saw: node 0 reconciles.
        await nodes[1].stop()
        try FileManager.default.removeItem(atPath: nodes[1].path)
        try FileManager.default.moveItem(atPath: backup, toPath: nodes[1].path)
        try await nodes[1].restart()
        try await eventually(30, "node 0 detects the restore") {
            metric(nodes[0].node, "cairn_reconcile_fallbacks_total{reason=\"restored\"}") >= 1
        }
        _ = try await awaitConvergence(nodes)
        _ = try await nodes[1].log.put("t", "after-restore", [4])
        let converged = try await awaitConvergence(nodes)
        #expect(try await nodes[0].log.get("t", "after-restore") == [4])
        #expect(try await nodes[1].log.get("t", "b49") == [2])
        #expect(converged.state.count == 102)
    }
}
