import CairnCore
import CairnStore
import Cairn
import CairnNoise
import Foundation
import NIOCore
import NIOPosix
import Testing

@testable import CairnSync

/// Peers that lie, forge, stall or speak garbage are refused with the right reason, nothing
/// they sent is stored, and the node keeps syncing with its honest peers.
@Suite(.serialized, .stopsNodes) struct HostilePeerTests {
    /// A scripted peer: completes the Noise handshake (with the right network secret unless
    /// told otherwise), says hello, sends what it is given, and reads until the node hangs up.
    struct ScriptedPeer {
        let port: Int
        let networkSecret: [UInt8]
        let logID: Hash32
        var key = SigningKey.generate()

        /// Returns the messages the node sent until `until` matched one or the node hung up.
        func run(
            hello: Bool = true, send messages: [SyncMessage] = [], rawFrames: [[UInt8]] = [], stall: Bool = false,
            until: @escaping @Sendable (SyncMessage) -> Bool = { _ in false }
        ) async throws -> [SyncMessage] {
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: "127.0.0.1", port: port) { configureSyncChannel($0, readTimeout: .seconds(30)) }
            return try await channel.executeThenClose { inbound, outbound in
                var iterator = inbound.makeAsyncIterator()
                if stall {  // say nothing: the node must give up on us
                    while (try? await iterator.next()) ?? nil != nil {}
                    return []
                }
                let (transport, _) = try await noiseHandshake(
                    initiator: true, staticKey: key.noiseStaticKey, psk: networkSecret, inbound: &iterator, outbound: outbound)
                var receiver = FrameReceiver(cipher: transport.receiver, inbound: iterator, maxMessageBytes: 64 << 20)
                let sender = FrameSender(cipher: transport.sender, outbound: outbound)
                if hello {
                    try await sender.send(.hello(.init(
                        minVersion: 1, maxVersion: 1, logID: logID, nodeKey: key.publicKey, capabilities: PeerSession.capabilities)))
                }
                for message in messages { try await sender.send(message) }
                for frame in rawFrames { try await outbound.write(ByteBuffer(bytes: frame)) }
                var received: [SyncMessage] = []
                while let message = try? await receiver.next() {
                    received.append(message)
                    if until(message) { break }
                }
                return received
            }
        }
    }

    /// A put by `key` whose parent is the genesis.
    func entry(by key: SigningKey, genesis: Hash32, hlc: HLC = HLC(wallMilliseconds: SystemWallClock().nowMilliseconds(), counter: 0), _ name: String) throws -> RawEntry {
        let value = Array(name.utf8)
        let body = EntryBody(hlc: hlc, author: key.publicKey, parents: [genesis], payload: .put(bucket: "evil", key: name, value: ValueRef(of: value)))
        return RawEntry(try SignedEntry(signing: body, with: key), value: value)
    }

    @Test func hostilePeersAreDroppedWithTheRightReasonAndHonestSyncGoesOn() async throws {
        var configuration = testConfiguration()
        configuration.maxMessageBytes = 1 << 20
        configuration.inboundPolicy = .anyHolderOfTheSecret  // scripted peers use fresh keys
        configuration.handshakeTimeout = .seconds(20)  // the staller below; honest handshakes stay far inside it
        configuration.idleTimeout = .seconds(60)       // and well past it
        let nodes = try await makeCluster("hostile", count: 2, configuration: configuration)
        try await connectFullMesh(nodes)
        _ = try await awaitConvergence(nodes)
        let target = nodes[0]
        let genesis = target.log.logID
        let peer = ScriptedPeer(port: try await target.port, networkSecret: try target.log.networkSecret(), logID: genesis)
        let insider = SigningKey(seed: try await target.log.invite(address: nil, role: .writer).nodeSeed!)!
        let dropped = { (reason: String) in metric(target.node, "cairn_sessions_dropped_total{reason=\"\(reason)\"}") }
        let rejected = { (reason: String) in metric(target.node, "cairn_entries_rejected_total{reason=\"\(reason)\"}") }

        // A forged signature: the body names an honest writer, the signature is not its.
        var forged = try entry(by: nodes[1].log.signingKey, genesis: genesis, "forged")
        forged.signature[10] ^= 0x01
        _ = try await peer.run(send: [.entries(stream: 0, batch: 0, [forged])])
        try await eventually(10, "forged signature refused") { rejected("bad_signature") == 1 && dropped("hostile_entries") == 1 }

        // A wrong id: a valid entry whose claimed id is not its hash.
        var wrongID = try entry(by: insider, genesis: genesis, "wrong-id")
        wrongID.claimedID = Hash32(bytes: [UInt8](repeating: 1, count: 32))
        _ = try await peer.run(send: [.entries(stream: 0, batch: 0, [wrongID])])
        try await eventually(10, "wrong id refused") { rejected("id_mismatch") == 1 && dropped("hostile_entries") == 2 }

        // An unknown author: well signed, but never granted. Refused, not a reason to hang up.
        let stranger = try entry(by: peer.key, genesis: genesis, "stranger")
        let strangerReplies = try await peer.run(send: [.entries(stream: 5, batch: 1, [stranger])]) { $0 == .ack(stream: 5, batch: 1) }
        #expect(strangerReplies.contains(.ack(stream: 5, batch: 1)))
        try await eventually(10, "unknown author refused") { rejected("unknown_author") == 1 }

        // Far in the future, by a granted insider: quarantined, never applied.
        let future = try entry(by: insider, genesis: genesis, hlc: HLC(wallMilliseconds: SystemWallClock().nowMilliseconds() + 86_400_000, counter: 0), "future")
        _ = try await peer.run(send: [.entries(stream: 6, batch: 1, [future])]) { $0 == .ack(stream: 6, batch: 1) }
        try await eventually(10, "future entry quarantined") { metric(target.node, "cairn_entries_quarantined_total") == 1 }

        // Garbage where an encrypted frame belongs.
        _ = try await peer.run(rawFrames: [[0, 40] + [UInt8](repeating: 0xAB, count: 40)])
        try await eventually(10, "garbage frame dropped") { dropped("undecryptable") == 1 }

        // A message over the size limit (1 MiB here).
        let huge = RawEntry(body: [0], signature: [UInt8](repeating: 0, count: 64), claimedID: genesis, value: [UInt8](repeating: 0, count: 1_100_000))
        _ = try await peer.run(send: [.entries(stream: 0, batch: 0, [huge])])
        try await eventually(10, "oversized message dropped") { dropped("malformed") == 1 }

        // The wrong network secret: the handshake itself fails.
        let outsider = ScriptedPeer(port: peer.port, networkSecret: [UInt8](repeating: 3, count: 32), logID: genesis)
        _ = try? await outsider.run()
        try await eventually(10, "wrong PSK refused") { dropped("handshake") == 1 }

        // Another log's hello.
        let foreign = ScriptedPeer(port: peer.port, networkSecret: peer.networkSecret, logID: Hash32(bytes: [UInt8](repeating: 2, count: 32))!)
        _ = try await foreign.run()
        try await eventually(10, "foreign log refused") { dropped("wrong_log") == 1 }

        // A peer that stalls before the handshake is dropped at the handshake deadline (20 s here),
        // well before the idle timeout.
        _ = try await peer.run(stall: true)
        try await eventually(60, "staller dropped") { dropped("handshake_timeout") >= 1 }

        // None of it was stored, and the honest peer still syncs both ways.
        for hostile in [forged, wrongID, stranger, future] {
            #expect(try await target.log.get("evil", String(decoding: hostile.value!, as: UTF8.self)) == nil)
        }
        #expect(try await target.log.counts().quarantined == 1)
        _ = try await nodes[1].log.put("t", "still-honest", [1])
        _ = try await target.log.put("t", "still-here", [2])
        _ = try await awaitConvergence(nodes)
        #expect(try await target.log.get("t", "still-honest") == [1])
        #expect(await target.node.connectedPeers == [nodes[1].log.nodeKey])
    }

    @Test func newerPeerFallsBackToWhatBothSpeak() async throws {
        var configuration = testConfiguration()
        configuration.inboundPolicy = .anyHolderOfTheSecret  // the scripted peer uses a fresh key
        let nodes = try await makeCluster("newer", count: 1, configuration: configuration)
        nodes[0].start()
        let genesis = nodes[0].log.logID
        let written = try await nodes[0].log.put("t", "k", [1])
        let peer = ScriptedPeer(port: try await nodes[0].port, networkSecret: try nodes[0].log.networkSecret(), logID: genesis)
        // Version 1…7 and a capability this node has never heard of: the session runs at
        // version 1 with the capabilities both know, and serves a fetch.
        let replies = try await peer.run(hello: false, send: [
            .hello(.init(minVersion: 1, maxVersion: 7, logID: genesis, nodeKey: peer.key.publicKey, capabilities: ["quantum-sync/3", PeerSession.deltaCapability])),
            .fetch(request: 1, wants: [written.id], haves: [genesis]),
        ]) { $0 == .done(request: 1, outcome: .complete) }
        #expect(replies.contains { if case .entries(1, _, let entries, _) = $0 { entries.contains { $0.claimedID == written.id } } else { false } })
        #expect(replies.contains(.done(request: 1, outcome: .complete)))

        // A peer that only speaks versions the node does not is refused.
        _ = try await peer.run(hello: false, send: [
            .hello(.init(minVersion: 2, maxVersion: 9, logID: genesis, nodeKey: peer.key.publicKey, capabilities: [])),
        ])
        try await eventually(10, "version refused") { metric(nodes[0].node, "cairn_sessions_dropped_total{reason=\"version\"}") == 1 }
    }
}
