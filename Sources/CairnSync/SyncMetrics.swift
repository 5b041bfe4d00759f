import CoreMetrics
import Prometheus

/// The node's counters, gauges and timers, recorded through the swift-metrics API into the
/// factory of ``SyncConfiguration/metricsFactory`` (default: the process-wide
/// `MetricsSystem.factory`). An embedder chooses the backend by bootstrapping `MetricsSystem`
/// or by passing a factory; `cairn serve` bootstraps swift-prometheus's
/// `PrometheusMetricsFactory` and serves its registry at `/metrics`.
public final class SyncMetrics: Sendable {
    let factory: any MetricsFactory
    let peersConnected: CoreMetrics.Gauge
    let heads: CoreMetrics.Gauge
    let entriesSent: CoreMetrics.Counter
    let entriesReceived: CoreMetrics.Counter
    let entriesQuarantined: CoreMetrics.Counter
    let reconcileRounds: CoreMetrics.Counter
    let reconcileBytesSent: CoreMetrics.Counter
    let reconcileBytesReceived: CoreMetrics.Counter
    /// Every byte a session socket wrote or read: handshake, length prefixes, Noise tags and all.
    let wireBytesSent: CoreMetrics.Counter
    let wireBytesReceived: CoreMetrics.Counter
    let mergesWritten: CoreMetrics.Counter
    let pushLatency: CoreMetrics.Timer
    let inboundRefused: CoreMetrics.Counter
    let acceptErrors: CoreMetrics.Counter
    let inboundConnections: CoreMetrics.Gauge

    /// The histogram buckets `cairn serve` gives `cairn_push_latency_seconds`.
    public static let pushLatencyBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
        .milliseconds(500), .seconds(5),
    ]

    init(factory: any MetricsFactory) {
        self.factory = factory
        peersConnected = CoreMetrics.Gauge(label: "cairn_peers_connected", factory: factory)
        heads = CoreMetrics.Gauge(label: "cairn_heads", factory: factory)
        entriesSent = CoreMetrics.Counter(label: "cairn_entries_sent_total", factory: factory)
        entriesReceived = CoreMetrics.Counter(label: "cairn_entries_received_total", factory: factory)
        entriesQuarantined = CoreMetrics.Counter(label: "cairn_entries_quarantined_total", factory: factory)
        reconcileRounds = CoreMetrics.Counter(label: "cairn_rbsr_rounds_total", factory: factory)
        reconcileBytesSent = CoreMetrics.Counter(label: "cairn_rbsr_bytes_total", dimensions: [("direction", "sent")], factory: factory)
        reconcileBytesReceived = CoreMetrics.Counter(label: "cairn_rbsr_bytes_total", dimensions: [("direction", "received")], factory: factory)
        wireBytesSent = CoreMetrics.Counter(label: "cairn_wire_bytes_total", dimensions: [("direction", "sent")], factory: factory)
        wireBytesReceived = CoreMetrics.Counter(label: "cairn_wire_bytes_total", dimensions: [("direction", "received")], factory: factory)
        mergesWritten = CoreMetrics.Counter(label: "cairn_merges_written_total", factory: factory)
        pushLatency = CoreMetrics.Timer(label: "cairn_push_latency_seconds", factory: factory)
        inboundRefused = CoreMetrics.Counter(label: "cairn_inbound_refused_total", factory: factory)
        acceptErrors = CoreMetrics.Counter(label: "cairn_accept_errors_total", factory: factory)
        inboundConnections = CoreMetrics.Gauge(label: "cairn_inbound_connections", factory: factory)
        // Series that should read 0 rather than be absent until something happens.
        for counter in [entriesSent, entriesReceived, entriesQuarantined, reconcileRounds, mergesWritten, wireBytesSent, wireBytesReceived] { counter.increment(by: 0) }
    }

    func rejected(_ reason: String) {
        CoreMetrics.Counter(label: "cairn_entries_rejected_total", dimensions: [("reason", reason)], factory: factory).increment()
    }

    func dropped(_ reason: String) {
        CoreMetrics.Counter(label: "cairn_sessions_dropped_total", dimensions: [("reason", reason)], factory: factory).increment()
    }

    func reconcileFallback(_ reason: String) {
        CoreMetrics.Counter(label: "cairn_reconcile_fallbacks_total", dimensions: [("reason", reason)], factory: factory).increment()
    }

    func fetch(_ outcome: String) {
        CoreMetrics.Counter(label: "cairn_fetches_total", dimensions: [("outcome", outcome)], factory: factory).increment()
    }

    /// Entries exchanged with one peer (`peer` is the first 16 hex digits of its node key).
    func peerTraffic(_ peer: String, sent: Int = 0, received: Int = 0) {
        if sent > 0 { CoreMetrics.Counter(label: "cairn_peer_entries_sent_total", dimensions: [("peer", peer)], factory: factory).increment(by: sent) }
        if received > 0 {
            CoreMetrics.Counter(label: "cairn_peer_entries_received_total", dimensions: [("peer", peer)], factory: factory).increment(by: received)
        }
    }

    /// How far this node is behind one peer: entries it lacks, and the age of the oldest.
    func peerLag(_ peer: String, entries: Int, seconds: Double) {
        CoreMetrics.Gauge(label: "cairn_peer_lag_entries", dimensions: [("peer", peer)], factory: factory).record(entries)
        CoreMetrics.Gauge(label: "cairn_peer_lag_seconds", dimensions: [("peer", peer)], factory: factory).record(seconds)
    }

    /// The metrics in the Prometheus text exposition format (version 0.0.4), when the factory is
    /// a swift-prometheus `PrometheusMetricsFactory`; empty otherwise (another backend exports
    /// them its own way).
    public func text() -> String {
        (factory as? PrometheusMetricsFactory)?.registry.emitToString() ?? ""
    }

    /// The value of one series as the text shows it, e.g.
    /// `value(of: "cairn_entries_rejected_total{reason=\"bad_signature\"}")`; 0 when absent.
    public func value(of series: String) -> Double {
        for line in text().split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.dropFirst(series.count + 1)) ?? 0
        }
        return 0
    }
}
