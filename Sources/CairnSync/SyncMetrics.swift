import Prometheus

/// The node's counters and gauges, in the Prometheus text format (served by the optional
/// metrics endpoint, `cairn serve --metrics HOST:PORT`, at `/metrics`).
public final class SyncMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    let peersConnected: Gauge
    let heads: Gauge
    let entriesSent: Counter
    let entriesReceived: Counter
    let entriesQuarantined: Counter
    let reconcileRounds: Counter
    let reconcileBytesSent: Counter
    let reconcileBytesReceived: Counter
    let mergesWritten: Counter
    let pushLatency: DurationHistogram

    init() {
        peersConnected = registry.makeGauge(name: "cairn_peers_connected", help: "Peers with an open session.")
        heads = registry.makeGauge(name: "cairn_heads", help: "Heads of the local DAG (1 when converged).")
        entriesSent = registry.makeCounter(name: "cairn_entries_sent_total", help: "Entries sent to peers.")
        entriesReceived = registry.makeCounter(name: "cairn_entries_received_total", help: "Entries received from peers and newly applied.")
        entriesQuarantined = registry.makeCounter(name: "cairn_entries_quarantined_total", help: "Received entries quarantined for a future HLC.")
        reconcileRounds = registry.makeCounter(name: "cairn_rbsr_rounds_total", help: "Negentropy messages exchanged (round trips).")
        reconcileBytesSent = registry.makeCounter(name: "cairn_rbsr_bytes_total", labels: [("direction", "sent")], help: "Negentropy message bytes.")
        reconcileBytesReceived = registry.makeCounter(name: "cairn_rbsr_bytes_total", labels: [("direction", "received")], help: "Negentropy message bytes.")
        mergesWritten = registry.makeCounter(name: "cairn_merges_written_total", help: "Merge entries this node wrote after syncing.")
        pushLatency = registry.makeDurationHistogram(
            name: "cairn_push_latency_seconds",
            buckets: [.milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(500), .seconds(5)],
            help: "From a pushed entry's HLC to its commit here (same-clock peers only).")
    }

    func rejected(_ reason: String) {
        registry.makeCounter(name: "cairn_entries_rejected_total", labels: [("reason", reason)], help: "Received entries refused, by reason.").increment()
    }

    func dropped(_ reason: String) {
        registry.makeCounter(name: "cairn_sessions_dropped_total", labels: [("reason", reason)], help: "Sessions closed on a peer's fault, by reason.").increment()
    }

    func reconcileFallback(_ reason: String) {
        registry.makeCounter(name: "cairn_reconcile_fallbacks_total", labels: [("reason", reason)], help: "Times the fast path handed over to RBSR, by reason.").increment()
    }

    func fetch(_ outcome: String) {
        registry.makeCounter(name: "cairn_fetches_total", labels: [("outcome", outcome)], help: "Delta fetches, by outcome.").increment()
    }

    /// The metrics in the Prometheus text exposition format (version 0.0.4).
    public func text() -> String { registry.emitToString() }

    /// The value of one series as the text shows it, e.g.
    /// `value(of: "cairn_entries_rejected_total{reason=\"bad_signature\"}")`; 0 when absent.
    public func value(of series: String) -> Double {
        for line in text().split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.dropFirst(series.count + 1)) ?? 0
        }
        return 0
    }
}
