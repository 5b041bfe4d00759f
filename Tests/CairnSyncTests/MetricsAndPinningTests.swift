import CairnCore
import CairnStore
import Cairn
import Foundation
import NIOCore
import NIOPosix
import Testing

@testable import CairnSync

@Suite(.serialized, .stopsNodes) struct MetricsAndPinningTests {
    /// `GET /metrics` answers Prometheus text with the node's series; other paths are 404s.
    @Test func metricsEndpointServesPrometheusText() async throws {
        var configuration = testConfiguration()
        configuration.metricsListen = "127.0.0.1:0"
        let nodes = try await makeCluster("metrics", count: 2, configuration: configuration)
        try await connectFullMesh(nodes)
        _ = try await awaitConvergence(nodes)
        var port: Int?
        try await eventually(10, "metrics endpoint bound") {
            port = await nodes[0].node.metricsListeningPort
            return port != nil
        }
        let page = try await httpGet(port: port!, path: "/metrics")
        #expect(page.hasPrefix("HTTP/1.1 200 OK"))
        #expect(page.contains("text/plain; version=0.0.4"))
        for series in ["cairn_peers_connected 1.0", "# TYPE cairn_heads gauge", "# TYPE cairn_entries_received_total counter", "cairn_rbsr_rounds_total"] {
            #expect(page.contains(series), "missing \(series)")
        }
        #expect(try await httpGet(port: port!, path: "/").hasPrefix("HTTP/1.1 404"))
    }

    /// `GET /healthz` answers 200 and a small JSON object while the node serves.
    @Test func healthzAnswersWhileServing() async throws {
        var configuration = testConfiguration()
        configuration.metricsListen = "127.0.0.1:0"
        let nodes = try await makeCluster("healthz", count: 1, configuration: configuration)
        nodes[0].start()
        _ = try await nodes[0].port
        let port = try #require(await nodes[0].node.metricsListeningPort, "bound before the node reports listening")
        let page = try await httpGet(port: port, path: "/healthz")
        #expect(page.hasPrefix("HTTP/1.1 200 OK"), "\(page)")
        #expect(page.contains("application/json"))
        #expect(page.contains(#"{"status":"serving","node":"\#(nodes[0].log.nodeKey.hex)","peers":0}"#), "\(page)")
    }

    /// A peer-list entry that pins a node key refuses whoever else answers at that address.
    @Test func aPinnedIdentityIsEnforced() async throws {
        let nodes = try await makeCluster("pin", count: 2)
        for node in nodes { node.start() }
        let impostorPin = SigningKey.generate().publicKey
        try await nodes[1].log.addPeer(PeerAddress(address: try await nodes[0].address, identity: impostorPin))
        try await eventually(30, "the mismatch is refused") {
            metric(nodes[1].node, "cairn_sessions_dropped_total{reason=\"identity\"}") >= 1
        }
        #expect(await nodes[1].node.connectedPeers.isEmpty)
        // Pinning the right key lets the session through.
        try await nodes[1].log.addPeer(PeerAddress(address: try await nodes[0].address, identity: nodes[0].log.nodeKey))
        try await eventually(30, "the pinned peer connects") { await nodes[1].node.connectedPeers == [nodes[0].log.nodeKey] }
    }

    private func httpGet(port: Int, path: String) async throws -> String {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        return try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: "GET \(path) HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"))
            var text = ""
            for try await buffer in inbound { text += String(buffer: buffer) }
            return text
        }
    }
}
