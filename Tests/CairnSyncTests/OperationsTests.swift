import Cairn
import Foundation
import Logging
import NIOCore
import NIOPosix
import Prometheus
import Synchronization
import Testing

@testable import CairnSync

/// What operators rely on (issue #9): connection limits and the handshake deadline, peer lag
/// from this node's point of view, round counting, logs, metrics through swift-metrics.
@Suite(.serialized, .stopsNodes) struct OperationsTests {
    /// A TCP connection to `port` that never says a word; returns when the node closes it.
    private func silentConnection(to port: Int) async throws {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { configureSyncChannel($0, readTimeout: .seconds(120)) }
        try await channel.executeThenClose { inbound, _ in
            for try await _ in inbound {}
        }
    }

    /// A configuration whose timers run on `clock`, with a handshake deadline of 30 s (of it).
    private func deadlineConfiguration(_ clock: ManualClock) -> SyncConfiguration {
        var configuration = testConfiguration()
        configuration.clock = clock
        configuration.idleTimeout = .seconds(60)
        configuration.handshakeTimeout = .seconds(30)
        return configuration
    }

    /// An unauthenticated connection is closed at the handshake deadline, not before, long
    /// before the idle timeout, and counted as `handshake_timeout`.
    @Test func silentConnectionsAreClosedAtTheHandshakeDeadline() async throws {
        let clock = ManualClock()
        let nodes = try await makeCluster("deadline", count: 1, configuration: deadlineConfiguration(clock))
        nodes[0].start()
        let port = try await nodes[0].port
        let silent = Task { try await silentConnection(to: port) }
        try await eventually(10, "the deadline is set when the connection is accepted") { clock.deadlines.contains(.seconds(30)) }
        clock.advance(by: .seconds(29))
        #expect(clock.deadlines.contains(.seconds(30)))
        #expect(metric(nodes[0].node, "cairn_sessions_dropped_total{reason=\"handshake_timeout\"}") == 0)
        clock.advance(by: .seconds(1))
        try await silent.value
        try await eventually(10, "counted") {
            metric(nodes[0].node, "cairn_sessions_dropped_total{reason=\"handshake_timeout\"}") == 1
        }
    }

    /// Connections over the total or per-address limit are closed as soon as they are accepted;
    /// an honest peer still gets in once the silent ones are gone.
    @Test func inboundConnectionsOverTheLimitsAreClosed() async throws {
        let clock = ManualClock()
        var configuration = deadlineConfiguration(clock)
        configuration.maxInboundConnections = 4
        configuration.maxInboundConnectionsPerAddress = 3
        let nodes = try await makeCluster("limits", count: 2, configuration: configuration)
        nodes[0].start()
        let port = try await nodes[0].port
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<10 { group.addTask { try await self.silentConnection(to: port) } }
            // Seven are refused and closed at once; three are admitted (the per-address limit)
            // and wait for their handshake deadline, which has not come.
            for _ in 0..<7 { try await group.next() }
            try await eventually(30, "seven refused, three waiting for their deadline") {
                metric(nodes[0].node, "cairn_inbound_refused_total") == 7 && clock.deadlines.filter { $0 == .seconds(30) }.count == 3
            }
            clock.advance(by: .seconds(30))
            try await group.waitForAll()
        }
        nodes[1].start()
        try await nodes[1].dial(nodes[0])
        _ = try await nodes[0].log.put("t", "k", [1])
        _ = try await awaitConvergence(nodes, advancing: clock)
    }

    /// `cairn_rbsr_rounds_total` counts Negentropy round trips on both sides: the node that only
    /// accepts (answers rounds) used to show 0 forever.
    @Test func reconciliationRoundsAreCountedOnBothSides() async throws {
        let nodes = try await makeCluster("rounds", count: 2)
        try await connectFullMesh(nodes)
        _ = try await awaitConvergence(nodes)
        try await eventually(30, "rounds counted by the dialer and the listener") {
            metric(nodes[1].node, "cairn_rbsr_rounds_total") >= 1 && metric(nodes[0].node, "cairn_rbsr_rounds_total") >= 1
        }
    }

    /// Lag is this node's: 0 while it holds everything its peer holds, however old the peer's
    /// heads are; entries and age while it catches up.
    @Test func peerLagIsHowFarThisNodeIsBehind() async throws {
        var configuration = testConfiguration()
        // A slow sender, so the catch-up can be watched.
        configuration.batchEntries = 20
        configuration.window = 1
        let nodes = try await makeCluster("lag", count: 2, configuration: configuration)
        for batch in 0..<2 {
            _ = try await nodes[0].log.write((0..<500).map { .put(bucket: "bulk", key: "k\(batch)-\($0)", value: [1]) })
        }
        nodes[0].start()
        nodes[1].start()
        try await nodes[1].dial(nodes[0])
        var behind: PeerStatus?
        try await eventually(60, "node 1 records that it lacks node 0's entries") {
            behind = try await nodes[1].log.peerStatus(identity: nodes[0].log.nodeKey)
            return (behind?.lagEntries ?? 0) > 0
        }
        #expect(behind?.lagOldestMilliseconds != nil)
        _ = try await awaitConvergence(nodes)
        // Identical heads, then writes pushed one by one: no lag, for seconds on end.
        for index in 0..<3 {
            _ = try await nodes[0].log.put("t", "k\(index)", [1])
            _ = try await awaitConvergence(nodes)
        }
        try await eventually(30, "node 1 lacks nothing") {
            let status = try await nodes[1].log.peerStatus(identity: nodes[0].log.nodeKey)
            return status?.lagEntries == 0 && status?.lagMilliseconds(now: SystemWallClock().nowMilliseconds()) == 0
        }
        let label = String(nodes[0].log.nodeKey.hex.prefix(16))
        #expect(metric(nodes[1].node, "cairn_peer_lag_entries{peer=\"\(label)\"}") == 0)
        #expect(metric(nodes[1].node, "cairn_peer_entries_received_total{peer=\"\(label)\"}") >= 1000)
    }

    /// Metrics go to the factory the configuration names, not a process-wide registry: an
    /// embedder picks the backend.
    @Test func metricsGoToTheConfiguredFactory() async throws {
        let registry = PrometheusCollectorRegistry()
        var configuration = testConfiguration()
        configuration.metricsFactory = PrometheusMetricsFactory(registry: registry)
        let nodes = try await makeCluster("factory", count: 2)
        let node = try SyncNode(log: nodes[0].log, configuration: configuration, logger: testLogger(nodes[0].path))
        let task = Task { try await node.run() }
        defer { task.cancel() }
        nodes[1].start()
        try await nodes[1].log.addPeer(PeerAddress(address: "127.0.0.1:\(try await node.listeningPort())"))
        try await eventually(30, "the configured registry sees the session") {
            registry.emitToString().contains("cairn_peers_connected 1")
        }
    }

    /// Session open and close are logged at info with a reason; a catch-up logs its completion
    /// with the count and rate.
    @Test func sessionsAndCatchUpsAreLogged() async throws {
        let nodes = try await makeCluster("logs", count: 2)
        for batch in 0..<3 {
            _ = try await nodes[0].log.write((0..<1000).map { .put(bucket: "bulk", key: "k\(batch)-\($0)", value: [1]) })
        }
        nodes[0].start()
        let records = LogRecords()
        let logger = Logger(label: "capture") { _ in CapturingHandler(records: records) }
        let node = try SyncNode(log: nodes[1].log, configuration: withOwnMetrics(testConfiguration()), logger: logger)
        let task = Task { try await node.run() }
        try await nodes[1].log.addPeer(PeerAddress(address: try await nodes[0].address))
        try await eventually(60, "caught up and logged") { records.contains("caught up") }
        let caughtUp = records.all.first { $0.message == "caught up" }
        #expect(Int(caughtUp?.metadata["entries"] ?? "") ?? 0 >= 3000, "\(String(describing: caughtUp))")
        #expect(caughtUp?.metadata["per_second"] != nil)
        #expect(records.contains("session open"))
        await nodes[0].stop()
        try await eventually(30, "session close logged with a reason") {
            records.all.contains { $0.message == "session closed" && $0.level == .info && $0.metadata["reason"] != nil }
        }
        task.cancel()
        _ = await task.result
    }
}

/// Log records captured by ``CapturingHandler``.
final class LogRecords: Sendable {
    struct Record: Sendable {
        let level: Logger.Level
        let message: String
        let metadata: [String: String]
    }

    private let records = Mutex<[Record]>([])

    func append(_ record: Record) { records.withLock { $0.append(record) } }
    var all: [Record] { records.withLock { $0 } }
    func contains(_ message: String) -> Bool { all.contains { $0.message == message } }
}

struct CapturingHandler: LogHandler {
    let records: LogRecords
    var logLevel: Logger.Level = .debug
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        records.append(.init(level: event.level, message: event.message.description, metadata: merged.mapValues { "\($0)" }))
    }
}
