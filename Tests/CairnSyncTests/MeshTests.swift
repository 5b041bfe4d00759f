import CairnCore
import CairnStore
import Cairn
import CairnTestSupport
import Foundation
import Testing

@testable import CairnSync

/// A sparse mesh, the small sibling of `cairn-bench mesh`: nodes that reach most others only
/// through a relay converge, and every node reports the bytes it put on the wire.
@Suite(.serialized, .stopsNodes) struct MeshTests {
    /// Six nodes on a ring with three chords (each node dials its successor; nodes 0–2 also the
    /// node opposite): every node has three links, none to most of the mesh. Random writes on
    /// every node with colliding keys reach everyone through relays and merges settle them.
    @Test func aSparseRingWithChordsConvergesAndCountsWireBytes() async throws {
        let seed = randomizedTestSeed("aSparseRingWithChordsConvergesAndCountsWireBytes")
        var random = SplitMix64(seed: seed)
        let count = 6
        // Admission is not what this tests: with the default (writer-set) policy a node refuses
        // dialers whose grants have not reached it yet, and the ring forms only as they spread.
        var configuration = testConfiguration()
        configuration.inboundPolicy = .anyHolderOfTheSecret
        let nodes = try await makeCluster("ring", count: count, configuration: configuration)
        defer { Task { await removeAll(nodes) } }
        for node in nodes { node.start() }
        for index in 0..<count {
            try await nodes[index].dial(nodes[(index + 1) % count])
            if index < count / 2 { try await nodes[index].dial(nodes[index + count / 2]) }
        }
        try await eventually(60, "three sessions per node") {
            for node in nodes where await node.node.connectedPeers.count != 3 { return false }
            return true
        }
        let initial = try await awaitConvergence(nodes)  // every node holds its writer grant
        let sentBefore = nodes.map { metric($0.node, Self.sent) }

        for write in 0..<30 {
            _ = try await nodes[write % count].log.put("t", "k\(random.next() % 8)", Array("w\(write)".utf8))
        }
        let converged = try await awaitConvergence(nodes)
        #expect(converged.entries >= initial.entries + 30)

        // Every node sent and read bytes. (Sums over the mesh need not match: a node that refuses
        // a dialer closes without reading what the dialer already wrote.)
        for node in nodes {
            #expect(metric(node.node, Self.sent) > 0 && metric(node.node, Self.received) > 0)
        }
        // Pushes cross each link about once: far below what relaying every entry to every node
        // (or the whole log per push) would cost.
        let newEntries = Double(converged.entries - initial.entries)
        let sent = zip(nodes, sentBefore).map { metric($0.node, Self.sent) - $1 }.reduce(0, +)
        #expect(sent / (newEntries * Double(count)) < 2048, "\(sent) bytes for \(newEntries) entries on \(count) nodes")
    }

    /// The counter sits at the socket: once nothing is in flight, what one node of a pair sent
    /// is exactly what the other read, both ways (no refusal here: the joined node dials the
    /// node that granted it).
    @Test func wireBytesSentByOneNodeAreWhatItsPeerRead() async throws {
        let nodes = try await makeCluster("wire", count: 2)
        defer { Task { await removeAll(nodes) } }
        for node in nodes { node.start() }
        try await nodes[1].dial(nodes[0])
        _ = try await awaitConvergence(nodes)
        _ = try await nodes[0].log.put("t", "k", [1, 2, 3])
        _ = try await awaitConvergence(nodes)
        try await eventually(30, "each side read all the other sent") {
            metric(nodes[0].node, Self.sent) == metric(nodes[1].node, Self.received)
                && metric(nodes[1].node, Self.sent) == metric(nodes[0].node, Self.received)
        }
        // The handshake alone is three Noise messages of 32 bytes and more.
        #expect(metric(nodes[0].node, Self.sent) > 100)
    }

    static let sent = #"cairn_wire_bytes_total{direction="sent"}"#
    static let received = #"cairn_wire_bytes_total{direction="received"}"#
}
