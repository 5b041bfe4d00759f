import CairnCore
import CairnStore
import Cairn
import CairnTestSupport
import Foundation
import Testing

@testable import CairnSync

/// Issue #9, item 7: every value the entry format allows (up to 64 MiB) syncs, though a message
/// is capped at 32 MiB: values above 1 MiB travel as `value-chunk` messages after their batch.
@Suite(.serialized, .stopsNodes) struct LargeValueTests {
    /// `count` pseudo-random bytes, eight per draw (a byte-per-draw map is slow in debug builds).
    static func randomValue(_ count: Int, _ random: inout SplitMix64) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        bytes.withUnsafeMutableBytes { raw in
            var offset = 0
            while offset < count {
                var word = random.next()
                let n = min(8, count - offset)
                withUnsafeBytes(of: &word) { raw.baseAddress!.advanced(by: offset).copyMemory(from: $0.baseAddress!, byteCount: n) }
                offset += n
            }
        }
        return bytes
    }

    static let sizes = [1 << 20, 33 << 20, 63 << 20]

    // MARK: - Wire

    @Test func chunkedEntriesAndValueChunksRoundTripAndBadOnesAreRefused() throws {
        let key = SigningKey.generate()
        let value = [UInt8](repeating: 7, count: 3 << 20)
        let body = EntryBody(hlc: HLC(wallMilliseconds: 1_000, counter: 0), author: key.publicKey, parents: [Hash32(bytes: [UInt8](repeating: 5, count: 32))!], payload: .put(bucket: "b", key: "k", value: ValueRef(of: value)))
        let signed = try SignedEntry(signing: body, with: key)
        let small = RawEntry(signed, value: [1, 2, 3])
        let large = RawEntry(signed)
        let messages: [SyncMessage] = [
            .entries(stream: 4, batch: 2, [small, large], chunked: .init(index: 1, length: UInt32(value.count))),
            .valueChunk(stream: 4, digest: ValueRef(of: value).digest, offset: 1 << 20, Array(value[0..<(1 << 20)])),
        ]
        for message in messages { #expect(try SyncMessage(decoding: message.encoded()) == message) }

        // A chunked value before the batch's last entry, or a chunk that is empty or over 1 MiB.
        let notLast = SyncMessage.entries(stream: 4, batch: 2, [large, small], chunked: .init(index: 0, length: UInt32(value.count)))
        #expect(throws: WireError.self) { try SyncMessage(decoding: notLast.encoded()) }
        for bytes in [[UInt8](), [UInt8](repeating: 0, count: (1 << 20) + 1)] {
            let chunk = SyncMessage.valueChunk(stream: 4, digest: signed.id, offset: 0, bytes)
            #expect(throws: WireError.self) { try SyncMessage(decoding: chunk.encoded()) }
        }
    }

    // MARK: - Reading values in pieces

    /// The sender reads large values by reference and in pieces: `outgoingEntries` never
    /// loads a value above the inline limit, `valueBytes` reads any range, and a purged value
    /// is neither inline nor a reference.
    @Test func largeValuesAreReadByReferenceAndInPieces() async throws {
        let seed = randomizedTestSeed("largeValuesAreReadByReferenceAndInPieces")
        var random = SplitMix64(seed: seed)
        let path = temporaryDirectory("pieces")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try CairnLog.create(at: path, name: "pieces")
        let smallValue = Self.randomValue(1 << 20, &random)
        let largeValue = Self.randomValue((5 << 20) + 123, &random)
        let small = try await log.put("v", "small", smallValue)
        let large = try await log.put("v", "large", largeValue)
        let gone = try await log.put("v", "gone", Self.randomValue(2 << 20, &random))
        let goneDigest = try await log.purge("v", "gone")

        let outgoing = try await log.outgoingEntries([small.id, large.id, gone.id], inlineValueLimit: PeerSession.chunkThreshold)
        #expect(outgoing.map(\.raw.claimedID) == [small.id, large.id, gone.id])
        #expect(outgoing[0].raw.value == smallValue && outgoing[0].largeValue == nil)
        #expect(outgoing[1].raw.value == nil && outgoing[1].largeValue == ValueRef(of: largeValue))
        #expect(outgoing[2].raw.value == nil && outgoing[2].largeValue == nil)
        let bySeq = try await log.outgoingEntries(afterSeq: 0, limit: 100, inlineValueLimit: PeerSession.chunkThreshold).entries
        #expect(bySeq.filter { $0.largeValue != nil }.map(\.raw.claimedID) == [large.id])

        let digest = ValueRef(of: largeValue).digest
        for _ in 0..<20 {
            let offset = Int(random.next() % UInt64(largeValue.count))
            let count = Int(random.next() % UInt64(min(4 << 20, largeValue.count - offset) + 1))
            #expect(try await log.valueBytes(digest, offset: offset, count: count) == Array(largeValue[offset..<(offset + count)]))
        }
        #expect(try await log.valueBytes(digest, offset: largeValue.count - 1, count: 2) == nil)
        #expect(try await log.valueBytes(goneDigest, offset: 0, count: 1) == nil)
    }

    // MARK: - Between nodes

    /// 1, 33 and 63 MiB values reach a connected peer by live push, a restarted peer by its
    /// catch-up fetch, and a node that joins later by its first catch-up.
    @Test func largeValuesSyncByPushCatchUpAndToALateJoiner() async throws {
        let seed = randomizedTestSeed("largeValuesSyncByPushCatchUpAndToALateJoiner")
        var random = SplitMix64(seed: seed)
        let nodes = try await makeCluster("large", count: 3)
        let (origin, peer, joiner) = (nodes[0], nodes[1], nodes[2])
        try await connectFullMesh([origin, peer])
        _ = try await awaitConvergence([origin, peer])

        // Live push.
        var written: [(key: String, value: [UInt8])] = []
        for size in Self.sizes {
            let value = Self.randomValue(size, &random)
            _ = try await origin.log.put("big", "push-\(size)", value)
            written.append(("push-\(size)", value))
        }
        try await eventually(120, "pushed values arrive") {
            for (key, _) in written where try await peer.log.get("big", key) == nil { return false }
            return true
        }
        for (key, value) in written { #expect(try await peer.log.get("big", key) == value, "\(key)") }

        // Catch-up fetch: written while the peer is down.
        await peer.stop()
        for size in Self.sizes {
            let value = Self.randomValue(size, &random)
            _ = try await origin.log.put("big", "fetch-\(size)", value)
            written.append(("fetch-\(size)", value))
        }
        try await peer.restart()
        try await peer.dial(origin)
        _ = try await awaitConvergence([origin, peer], seconds: 180)
        for (key, value) in written { #expect(try await peer.log.get("big", key) == value, "\(key)") }

        // A node that joins later gets all of them in its first catch-up.
        joiner.start()
        try await joiner.dial(origin)
        _ = try await awaitConvergence(nodes, seconds: 180)
        for (key, value) in written { #expect(try await joiner.log.get("big", key) == value, "\(key)") }
        // A 33 or 63 MiB value inline would have been a message over the 32 MiB limit.
        for node in nodes {
            for reason in ["malformed", "protocol", "hostile_entries"] {
                #expect(metric(node.node, "cairn_sessions_dropped_total{reason=\"\(reason)\"}") == 0, "\(reason)")
            }
        }
    }

    /// Anti-entropy alone (no fast path): the `need` and `have` streams of a round carry
    /// chunked values both ways.
    @Test func reconciliationRepairsLargeValues() async throws {
        let seed = randomizedTestSeed("reconciliationRepairsLargeValues")
        var random = SplitMix64(seed: seed)
        var configuration = testConfiguration()
        configuration.fastPath = false
        let nodes = try await makeCluster("large-rbsr", count: 2, configuration: configuration)
        try await connectFullMesh(nodes)
        _ = try await awaitConvergence(nodes)  // node 1 learns its grant
        // Both sides write: with no push, the dialer's next round needs some values and has others.
        var written: [(key: String, value: [UInt8])] = []
        for (index, size) in [(0, 33 << 20), (1, 63 << 20), (0, (1 << 20) + 1)] {
            let value = Self.randomValue(size, &random)
            _ = try await nodes[index].log.put("big", "rbsr-\(index)-\(size)", value)
            written.append(("rbsr-\(index)-\(size)", value))
        }
        _ = try await awaitConvergence(nodes, seconds: 180)
        for node in nodes {
            for (key, value) in written { #expect(try await node.log.get("big", key) == value, "\(key)") }
        }
        #expect(metric(nodes[0].node, "cairn_rbsr_rounds_total") + metric(nodes[1].node, "cairn_rbsr_rounds_total") > 0)
    }

    // MARK: - Older and hostile peers

    /// A peer without `value-chunks/1` is never sent a message it cannot parse: a value that
    /// fits a message goes inline, a larger one not at all (the entry goes without it).
    @Test func olderPeersGetFittingValuesInlineAndNoChunks() async throws {
        let seed = randomizedTestSeed("olderPeersGetFittingValuesInlineAndNoChunks")
        var random = SplitMix64(seed: seed)
        var configuration = testConfiguration()
        configuration.inboundPolicy = .anyHolderOfTheSecret  // the scripted peer uses a fresh key
        let nodes = try await makeCluster("large-old", count: 1, configuration: configuration)
        nodes[0].start()
        let fitting = Self.randomValue(2 << 20, &random)
        let tooLarge = Self.randomValue(33 << 20, &random)
        let a = try await nodes[0].log.put("big", "fits", fitting)
        let b = try await nodes[0].log.put("big", "too-large", tooLarge)
        let genesis = nodes[0].log.logID
        let peer = HostilePeerTests.ScriptedPeer(port: try await nodes[0].port, networkSecret: try nodes[0].log.networkSecret(), logID: genesis)
        let older = PeerSession.capabilities.filter { $0 != PeerSession.valueChunkCapability }
        let replies = try await peer.run(hello: false, send: [
            .hello(.init(minVersion: 1, maxVersion: 1, logID: genesis, nodeKey: peer.key.publicKey, capabilities: older)),
            .fetch(request: 1, wants: [b.id], haves: [genesis]),
        ]) { $0 == .done(request: 1, outcome: .complete) }
        var sent: [Hash32: RawEntry] = [:]
        for case .entries(1, _, let entries, let chunked) in replies {
            #expect(chunked == nil)
            for entry in entries { sent[entry.claimedID!] = entry }
        }
        #expect(sent[a.id]?.value == fitting)
        #expect(sent[b.id] != nil && sent[b.id]?.value == nil)
        #expect(!replies.contains { if case .valueChunk = $0 { true } else { false } })
    }

    /// A put by `key` on the genesis with `value`, announced as chunked.
    func chunkedEntry(by key: SigningKey, genesis: Hash32, _ name: String, value: [UInt8]) throws -> RawEntry {
        let body = EntryBody(
            hlc: HLC(wallMilliseconds: SystemWallClock().nowMilliseconds(), counter: 0), author: key.publicKey, parents: [genesis],
            payload: .put(bucket: "evil", key: name, value: ValueRef(of: value)))
        return RawEntry(try SignedEntry(signing: body, with: key))
    }

    /// Chunks beyond the declared length, a value that does not match its digest, chunks for
    /// a stream with no chunked value, and a declared length the entry does not sign: each
    /// drops the peer with its reason, and nothing of it is stored.
    @Test func hostileChunksAreDroppedAndNothingIsStored() async throws {
        var configuration = testConfiguration()
        configuration.inboundPolicy = .anyHolderOfTheSecret
        let nodes = try await makeCluster("large-hostile", count: 1, configuration: configuration)
        let target = nodes[0]
        target.start()
        let genesis = target.log.logID
        let insider = SigningKey(seed: try await target.log.invite(address: nil, role: .writer).nodeSeed!)!
        let peer = HostilePeerTests.ScriptedPeer(port: try await target.port, networkSecret: try target.log.networkSecret(), logID: genesis, key: insider)
        let dropped = { (reason: String) in metric(target.node, "cairn_sessions_dropped_total{reason=\"\(reason)\"}") }
        let mib = 1 << 20

        // Beyond the declared length: 1.5 MiB declared, 2 MiB sent.
        let shortValue = [UInt8](repeating: 1, count: mib + mib / 2)
        let beyond = try chunkedEntry(by: insider, genesis: genesis, "beyond", value: shortValue)
        let beyondDigest = ValueRef(of: shortValue).digest
        _ = try await peer.run(send: [
            .entries(stream: 0, batch: 0, [beyond], chunked: .init(index: 0, length: UInt32(shortValue.count))),
            .valueChunk(stream: 0, digest: beyondDigest, offset: 0, [UInt8](repeating: 1, count: mib)),
            .valueChunk(stream: 0, digest: beyondDigest, offset: UInt32(mib), [UInt8](repeating: 1, count: mib)),
        ])
        try await eventually(10, "chunks beyond the declared length refused") { dropped("protocol") == 1 }

        // The right length, the wrong bytes.
        let signedValue = [UInt8](repeating: 2, count: 2 * mib)
        let wrong = try chunkedEntry(by: insider, genesis: genesis, "wrong-digest", value: signedValue)
        let wrongDigest = ValueRef(of: signedValue).digest
        _ = try await peer.run(send: [
            .entries(stream: 3, batch: 1, [wrong], chunked: .init(index: 0, length: UInt32(signedValue.count))),
            .valueChunk(stream: 3, digest: wrongDigest, offset: 0, [UInt8](repeating: 2, count: mib)),
            .valueChunk(stream: 3, digest: wrongDigest, offset: UInt32(mib), [UInt8](repeating: 3, count: mib)),
        ])
        try await eventually(10, "a value that does not match its digest refused") {
            dropped("hostile_entries") == 1 && metric(target.node, "cairn_entries_rejected_total{reason=\"value_mismatch\"}") == 1
        }

        // Chunks for a stream that has no chunked value in flight.
        _ = try await peer.run(send: [.valueChunk(stream: 9, digest: wrongDigest, offset: 0, [1, 2, 3])])
        try await eventually(10, "chunks for an unknown stream refused") { dropped("protocol") == 2 }

        // A declared length the entry does not sign (a lie to make the node buffer more).
        let lying = try chunkedEntry(by: insider, genesis: genesis, "lying", value: signedValue)
        _ = try await peer.run(send: [.entries(stream: 0, batch: 0, [lying], chunked: .init(index: 0, length: 64 << 20))])
        try await eventually(10, "a declared length the entry does not sign refused") { dropped("hostile_entries") == 2 }

        for entry in [beyond, wrong, lying] { #expect(try await target.log.entry(entry.claimedID!) == nil) }
        #expect(try await target.log.get("evil", "wrong-digest") == nil)
    }
}
