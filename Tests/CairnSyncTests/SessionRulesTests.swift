import Cairn
import CairnNoise
import Foundation
import NIOCore
import NIOPosix
import Testing

@testable import CairnSync

/// Session rules of issue #9: stream and request ids a peer cannot collide, per-round state
/// that is freed, reconciliation bounded by progress rather than a round count, the inbound
/// allow-list, and restored peers detected by what they held.
@Suite(.serialized, .stopsNodes) struct SessionRulesTests {
    /// A peer that completes the handshake and hello, sends `opening`, then answers each
    /// message the node sends with `respond`'s messages, until `until` matches or the node
    /// hangs up. Returns what the node sent.
    struct InteractivePeer {
        let port: Int
        let networkSecret: [UInt8]
        let logID: Hash32
        let key: SigningKey

        func run(
            opening: [SyncMessage] = [],
            respond: @escaping @Sendable (SyncMessage) -> [SyncMessage] = { _ in [] },
            until: @escaping @Sendable (SyncMessage) -> Bool = { _ in false }
        ) async throws -> [SyncMessage] {
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: "127.0.0.1", port: port) { configureSyncChannel($0, readTimeout: .seconds(30)) }
            return try await channel.executeThenClose { inbound, outbound in
                var iterator = inbound.makeAsyncIterator()
                let (transport, _) = try await noiseHandshake(
                    initiator: true, staticKey: key.noiseStaticKey, psk: networkSecret, inbound: &iterator, outbound: outbound)
                var receiver = FrameReceiver(cipher: transport.receiver, inbound: iterator, maxMessageBytes: 64 << 20)
                let sender = FrameSender(cipher: transport.sender, outbound: outbound)
                try await sender.send(.hello(.init(
                    minVersion: 1, maxVersion: 1, logID: logID, nodeKey: key.publicKey, capabilities: PeerSession.capabilities)))
                for message in opening { try await sender.send(message) }
                var received: [SyncMessage] = []
                while let message = try? await receiver.next() {
                    received.append(message)
                    if until(message) { break }
                    for reply in respond(message) { try? await sender.send(reply) }
                }
                return received
            }
        }
    }

    /// A writer key granted on `node` (by an invite), so the inbound policy admits it.
    func insider(of node: TestNode) async throws -> SigningKey {
        SigningKey(seed: try await node.log.invite(address: nil, role: .writer).nodeSeed!)!
    }

    func dropped(_ node: TestNode, _ reason: String) -> Double {
        metric(node.node, "cairn_sessions_dropped_total{reason=\"\(reason)\"}")
    }

    // MARK: - Item 3: stream ids and per-round state

    /// A fetch whose number lies in the node's own stream space, and a second fetch reusing a
    /// number whose stream is in flight, end that session with a reason; before, the second
    /// overwrote the first one's ack waiter and both hung. The honest peer keeps syncing.
    @Test func collidingOrReusedRequestIDsDropThePeerAndHonestSyncGoesOn() async throws {
        var configuration = testConfiguration()
        configuration.batchEntries = 1  // a fetch of the log takes more batches than the window
        let nodes = try await makeCluster("streamid", count: 2, configuration: configuration)
        try await connectFullMesh(nodes)
        _ = try await awaitConvergence(nodes)
        let target = nodes[0]
        _ = try await target.log.write((0..<12).map { .put(bucket: "t", key: "k\($0)", value: [UInt8($0)]) })
        let head = try await target.log.heads().map(\.id)
        let genesis = target.log.logID
        let peer = InteractivePeer(port: try await target.port, networkSecret: try target.log.networkSecret(), logID: genesis, key: try await insider(of: target))

        // A request number with the top bit set: the space of the node's own stream ids.
        _ = try await peer.run(opening: [.fetch(request: StreamID.ownStreamBit | 1, wants: head, haves: [genesis])])
        try await eventually(10, "a colliding request id is refused") { dropped(target, "protocol") == 1 }

        // The same request number again once its stream is flowing (never acknowledged, so the
        // first stream waits for acks).
        let fetch = SyncMessage.fetch(request: 7, wants: head, haves: [genesis])
        let replies = try await peer.run(opening: [fetch], respond: { message in
            if case .entries(7, 1, _, _) = message { [fetch] } else { [] }
        })
        try await eventually(10, "a reused request id is refused") { dropped(target, "protocol") == 2 }
        #expect(replies.contains { if case .entries(7, _, _, _) = $0 { true } else { false } })

        _ = try await nodes[1].log.put("t", "still-honest", [1])
        _ = try await awaitConvergence(nodes)
        #expect(await target.node.connectedPeers == [nodes[1].log.nodeKey])
    }

    /// Every reconciliation round frees the responder it created when it ends; before, each
    /// one stayed in memory until the peer disconnected.
    @Test func finishedRoundsLeaveNoResponderBehind() async throws {
        let clock = ManualClock()
        var configuration = testConfiguration()
        configuration.clock = clock
        configuration.reconcileInterval = .seconds(60)
        let nodes = try await makeCluster("rounds", count: 2, configuration: configuration)
        try await connectFullMesh(nodes)
        _ = try await awaitConvergence(nodes, advancing: clock)
        // Node 1 dials, so it initiates the periodic rounds (every 60 s ± 20% of the test's
        // clock) and node 0 answers them.
        try await eventually(60, "twenty rounds", advancing: clock, by: .seconds(72)) {
            metric(nodes[1].node, "cairn_rbsr_rounds_total") >= 20
        }
        try await eventually(10, "no responder or initiator state between rounds") {
            let responder = await nodes[0].log.reconcileSessionCounts
            let initiator = await nodes[1].log.reconcileSessionCounts
            return responder.responders == 0 && responder.initiators == 0 && initiator.initiators == 0
        }
    }

    /// A peer that authenticates and then says nothing — not even a pong — is dropped once it
    /// was silent for the idle timeout, and not before: the keep-alive runs on the node's clock.
    @Test func aSilentPeerIsDroppedAfterTheIdleTimeout() async throws {
        let clock = ManualClock()
        var configuration = testConfiguration()
        configuration.clock = clock
        configuration.idleTimeout = .seconds(60)
        configuration.reconcileInterval = .seconds(3600)
        let nodes = try await makeCluster("idle", count: 1, configuration: configuration)
        nodes[0].start()
        let peer = InteractivePeer(
            port: try await nodes[0].port, networkSecret: try nodes[0].log.networkSecret(), logID: nodes[0].log.logID,
            key: try await insider(of: nodes[0]))
        let session = Task { try await peer.run() }
        try await eventually(30, "session open") { await nodes[0].node.connectedPeers.count == 1 }
        // Three keep-alive ticks (a third of the idle timeout each) without a word: the peer is
        // pinged and still connected.
        try await eventually(10, "the keep-alive is set") { clock.deadlines.contains(.seconds(20)) }
        for tick in 1...3 {
            clock.advance(by: .seconds(20))
            try await eventually(10, "keep-alive \(tick) sent") { clock.deadlines.contains(.seconds(20 * (tick + 1))) }
        }
        #expect(await nodes[0].node.connectedPeers.count == 1)
        #expect(dropped(nodes[0], "timeout") == 0)
        clock.advance(by: .seconds(20))
        let received = try await session.value
        #expect(received.filter { if case .ping = $0 { true } else { false } }.count == 3)
        try await eventually(10, "counted") { dropped(nodes[0], "timeout") == 1 }
    }

    // MARK: - Item 4: bounded by progress, not by a round count

    /// 10,000 entries on each side that the other lacks, 4096-byte frames on both: the
    /// reconciliation takes far more than 64 rounds, and completes.
    @Test func smallFramesReconcileToCompletionBeyondSixtyFourRounds() async throws {
        var configuration = testConfiguration()
        configuration.fastPath = false  // reconciliation alone
        configuration.reconcileFrameLimit = 4096
        configuration.reconcileInterval = .seconds(2)
        let nodes = try await makeCluster("frames", count: 2, configuration: configuration)
        try await connectFullMesh(nodes)
        _ = try await awaitConvergence(nodes)  // node 1 holds its grant
        for node in nodes { await node.stop() }
        for peer in try await nodes[1].log.peers() { _ = try await nodes[1].log.removePeer(address: peer.address) }
        for (index, node) in nodes.enumerated() {
            _ = try await node.log.write((0..<10_000).map { .put(bucket: "n\(index)", key: "k\($0)", value: [UInt8($0 % 251)]) })
        }
        try await nodes[0].restart()
        try await nodes[1].dial(nodes[0])
        try await nodes[1].restart()
        let converged = try await awaitConvergence(nodes, seconds: 180)
        #expect(converged.entries >= 20_000)
        #expect(metric(nodes[1].node, "cairn_rbsr_rounds_total") > 64)
        #expect(dropped(nodes[0], "no_progress") == 0 && dropped(nodes[1], "no_progress") == 0)
    }

    /// A responder that replays the same reply forever is cut off once rounds stop making
    /// progress; what it taught before the cut is kept: the id it disclosed is fetched, and the
    /// entry it lacks is sent.
    @Test func aReplayingResponderIsCutOffAndWhatItDisclosedIsFetched() async throws {
        let nodes = try await makeCluster("replay", count: 1)
        nodes[0].start()
        let target = nodes[0]
        let key = try await insider(of: target)  // its grant is the node's second entry
        let genesis = try await target.log.genesis
        let disclosed = Hash32(bytes: [UInt8](repeating: 0xD1, count: 32))!
        // [0, (genesis HLC + 1, "")) lists `disclosed` only, so the node learns it needs that id
        // and has the genesis; [that bound, ∞) gets a fingerprint that never matches, so the node
        // must answer every time — with the same message.
        let reply: [UInt8] = [0x61] + negentropyVarint(genesis.hlc.rawValue + 2) + [0x00, 0x02, 0x01] + disclosed.bytes
            + [0x00, 0x00, 0x01] + [UInt8](repeating: 0xEE, count: 16)
        let peer = InteractivePeer(port: try await target.port, networkSecret: try target.log.networkSecret(), logID: target.log.logID, key: key)
        let received = try await peer.run(opening: [.reconcileRequest], respond: { message in
            switch message {
            case .reconcile(let session, true, let query) where !query.isEmpty: [.reconcile(session: session, fromInitiator: false, reply)]
            case .need(let request, _): [.done(request: request, outcome: .complete)]
            default: []
            }
        })
        try await eventually(10, "the stalled round is counted") { dropped(target, "no_progress") == 1 }
        let queries = received.filter { if case .reconcile(_, true, let query) = $0 { !query.isEmpty } else { false } }
        #expect(queries.count <= SyncConfiguration().reconcileBudget.stallRounds + 2, "\(queries.count) messages")
        #expect(received.contains { if case .need(_, let ids) = $0 { ids.contains(disclosed) } else { false } })
        #expect(received.contains { message in
            guard case .entries(let stream, _, let entries, _) = message, stream & StreamID.ownStreamBit != 0 else { return false }
            return entries.contains { $0.claimedID == genesis.id }
        })
    }

    /// Negentropy's varint: base 128, most significant group first, high bit on all but the last.
    func negentropyVarint(_ value: UInt64) -> [UInt8] {
        var out = [UInt8(value & 0x7F)]
        var rest = value >> 7
        while rest > 0 {
            out.insert(UInt8(rest & 0x7F) | 0x80, at: 0)
            rest >>= 7
        }
        return out
    }

    // MARK: - Item 5: inbound allow-list

    /// Holding the network secret is not enough: an outsider is refused after the hello;
    /// a key the operator allows (a read-only node, say) and a writer connect.
    @Test func outsidersWithTheSecretAreRefusedAndAllowedKeysConnect() async throws {
        let readOnly = SigningKey.generate()
        var configuration = testConfiguration()
        configuration.allow = [readOnly.publicKey]
        let nodes = try await makeCluster("allow", count: 2, configuration: configuration)
        try await connectFullMesh(nodes)  // node 1 is a writer (its invite granted it)
        try await eventually(30, "the writer connects") { await nodes[0].node.connectedPeers == [nodes[1].log.nodeKey] }
        let target = nodes[0]
        let secret = try target.log.networkSecret()
        let port = try await target.port

        let outsider = InteractivePeer(port: port, networkSecret: secret, logID: target.log.logID, key: SigningKey.generate())
        let refused = try await outsider.run()
        try await eventually(10, "the outsider is refused") { dropped(target, "not_allowed") == 1 }
        #expect(refused.contains { if case .bye(let reason) = $0 { reason.hasPrefix(PeerSession.refusal) } else { false } })
        #expect(!refused.contains { if case .heads = $0 { true } else { false } })

        let allowed = InteractivePeer(port: port, networkSecret: secret, logID: target.log.logID, key: readOnly)
        let served = try await allowed.run(until: { if case .heads = $0 { true } else { false } })
        #expect(served.contains { if case .heads = $0 { true } else { false } })
        #expect(dropped(target, "not_allowed") == 1)

        // A key pinned in the peer list is admitted too.
        let pinned = SigningKey.generate()
        try await target.log.addPeer(PeerAddress(address: "127.0.0.1:9", identity: pinned.publicKey))
        let viaPin = InteractivePeer(port: port, networkSecret: secret, logID: target.log.logID, key: pinned)
        let viaPinServed = try await viaPin.run(until: { if case .heads = $0 { true } else { false } })
        #expect(viaPinServed.contains { if case .heads = $0 { true } else { false } })
        #expect(dropped(target, "not_allowed") == 1)
    }

    // MARK: - Item 8: restored peers

    /// A node put back to an old copy that writes before it reconnects shows newer heads, yet
    /// they do not descend from entries it held before: its peer detects the restore and
    /// reconciles, and both converge.
    @Test func aRestoredNodeThatWroteBeforeReconnectingIsDetected() async throws {
        let (nodes, backup) = try await convergedPairWithBackup("restorew")
        try await nodes[1].restart()
        try await eventually(90, "session open") { await nodes[0].node.connectedPeers.count == 1 }
        _ = try await nodes[1].log.write((0..<20).map { .put(bucket: "t", key: "b\($0)", value: [2]) })
        _ = try await nodes[0].log.write((0..<20).map { .put(bucket: "t", key: "a\($0)", value: [3]) })
        _ = try await awaitConvergence(nodes)

        // Restore the old copy and write on it before it reconnects: newer heads than ever.
        try await restore(nodes[1], from: backup)
        do {
            let restored = try CairnLog.open(at: nodes[1].path)
            _ = try await restored.write((0..<5).map { .put(bucket: "t", key: "r\($0)", value: [5]) })
        }
        try await nodes[1].restart()
        try await eventually(90, "node 0 detects the restore") {
            metric(nodes[0].node, "cairn_reconcile_fallbacks_total{reason=\"restored\"}") >= 1
        }
        let converged = try await awaitConvergence(nodes)
        #expect(try await nodes[1].log.get("t", "b19") == [2])
        #expect(try await nodes[0].log.get("t", "r4") == [5])
        #expect(converged.state.count == 45)
    }

    /// What a peer was known to hold outlives a restart of the node that knew it (kept in
    /// `peer_status`): both nodes restart, one of them from an old copy that then writes, and
    /// the other still detects the restore.
    @Test func aRestoreIsDetectedAfterTheDetectingNodeRestartedToo() async throws {
        let (nodes, backup) = try await convergedPairWithBackup("restorer")
        defer { Task { await removeAll(nodes) } }
        try await nodes[1].restart()
        try await eventually(90, "session open") { await nodes[0].node.connectedPeers.count == 1 }
        _ = try await nodes[1].log.write((0..<20).map { .put(bucket: "t", key: "b\($0)", value: [2]) })
        _ = try await awaitConvergence(nodes)

        await nodes[0].stop()
        try await restore(nodes[1], from: backup)
        do {
            let restored = try CairnLog.open(at: nodes[1].path)
            _ = try await restored.write((0..<5).map { .put(bucket: "t", key: "r\($0)", value: [5]) })
        }
        try await nodes[0].restart()
        try await nodes[1].restart()
        try await nodes[1].dial(nodes[0])  // node 0 listens on a new port since its restart
        try await eventually(90, "node 0 detects the restore") {
            metric(nodes[0].node, "cairn_reconcile_fallbacks_total{reason=\"restored\"}") >= 1
        }
        _ = try await awaitConvergence(nodes)
        #expect(try await nodes[1].log.get("t", "b19") == [2])
    }

    /// A node that only received (a fetch it acknowledged batch by batch) and is then put back
    /// to the copy it started from shows the very heads it showed before; what it acknowledged
    /// gives the restore away.
    @Test func aRestoredNodeIsDetectedByTheBatchesItAcknowledged() async throws {
        let (nodes, backup) = try await convergedPairWithBackup("restorea")
        _ = try await nodes[0].log.write((0..<700).map { .put(bucket: "t", key: "k\($0)", value: [1]) })
        try await nodes[1].restart()  // fetches the 700 entries, acknowledging each batch
        _ = try await awaitConvergence(nodes)
        try await eventually(10, "the fetch completes") { metric(nodes[0].node, "cairn_entries_sent_total") >= 700 }

        try await restore(nodes[1], from: backup)
        try await nodes[1].restart()
        try await eventually(90, "node 0 detects the restore") {
            metric(nodes[0].node, "cairn_reconcile_fallbacks_total{reason=\"restored\"}") >= 1
        }
        let converged = try await awaitConvergence(nodes)
        #expect(converged.state.count == 700)
    }

    /// Two nodes with anti-entropy out of the way, connected and converged, node 1 stopped and
    /// its directory copied (what an operator would later restore from). The caller removes them.
    private func convergedPairWithBackup(_ name: String) async throws -> (nodes: [TestNode], backup: String) {
        var configuration = testConfiguration()
        configuration.reconcileInterval = .seconds(3600)
        let nodes = try await makeCluster(name, count: 2, configuration: configuration)
        try await connectFullMesh(nodes)
        _ = try await awaitConvergence(nodes)
        await nodes[1].stop()
        let backup = nodes[1].path + ".backup"
        try FileManager.default.copyItem(atPath: nodes[1].path, toPath: backup)
        return (nodes, backup)
    }

    /// Stops `node` and puts its directory back to `backup`, as a restore from a backup does.
    private func restore(_ node: TestNode, from backup: String) async throws {
        await node.stop()
        try FileManager.default.removeItem(atPath: node.path)
        try FileManager.default.moveItem(atPath: backup, toPath: node.path)
    }
}
