import CairnCore
import CairnStore
import Cairn
import CairnReconcile
import CoreMetrics

/// How a ``SyncNode`` listens, whom it dials, and its timings and limits.
///
/// The defaults suit a small cluster on a LAN; tests shorten the timings.
public struct SyncConfiguration: Sendable {
    /// Where to accept peers (`host:port`; port 0 picks a free one), or `nil` to only dial.
    public var listen: String?
    /// Where to serve Prometheus metrics (`host:port`), or `nil` for none.
    public var metricsListen: String?
    /// Peers to dial besides those in the log's peer list (`cairn peers add`).
    public var peers: [PeerAddress] = []
    /// Pause between anti-entropy (RBSR) rounds with each peer; each pause is jittered ±20%.
    public var reconcileInterval: Duration = .seconds(30)
    /// A peer silent this long (no frame, not even a ping) is dropped (the handshake has its own
    /// deadline, ``handshakeTimeout``).
    public var idleTimeout: Duration = .seconds(30)
    /// How often the node checks its database for entries written by other processes (the CLI,
    /// another app on the same file) to push; this process's own commits wake the pusher at once.
    public var pushPollInterval: Duration = .milliseconds(50)
    /// First and largest pause before redialing a peer (doubling, with ±50% jitter).
    public var reconnectBackoff: (first: Duration, max: Duration) = (.milliseconds(200), .seconds(30))
    /// How long the node must see no sync traffic before it writes a merge entry for its heads.
    public var mergeSettle: Duration = .milliseconds(300)
    /// The merger writes nothing while a quarantined entry comes within the skew bound in at most
    /// this long (the head set will move when it is applied); one stamped further ahead — a clock
    /// days off — does not hold merges back. See ARCHITECTURE.md, "Merges after sync".
    public var mergeQuarantineHorizon: Duration = .seconds(3600)
    /// How often quarantined entries are re-checked against the wall clock.
    public var quarantineRecheckInterval: Duration = .seconds(2)
    /// Entries per batch, and the batches a sender may have unacknowledged.
    public var batchEntries = 2048
    public var batchBytes = 1 << 20
    public var window = 4
    /// Largest delta the fast path computes before handing over to RBSR.
    public var deltaLimit = 100_000
    /// Largest message accepted from a peer.
    public var maxMessageBytes = 32 << 20
    /// Negentropy frame size limit (both roles' messages; peers must use the same limit).
    public var reconcileFrameLimit = 500_000
    /// What ends a reconciliation session that does not converge: rounds in a row without
    /// progress, and bytes beyond a bound proportional to the set sizes (``ReconcileBudget``).
    /// There is no round cap: an honest peer with small frames may need hundreds of rounds.
    public var reconcileBudget = ReconcileBudget()
    /// Which nodes may connect to this one (checked after the hello binds the peer's node key
    /// to its Noise key). The default admits the log's writer set.
    public var inboundPolicy: InboundPolicy = .writerSet
    /// Node keys admitted besides those the policy admits — read-only nodes, for one. Keys
    /// pinned in the peer list (``PeerAddress/identity``) are admitted too.
    public var allow: [PublicKey] = []
    /// Whether to offer the fast path (delta fetch and live push). Off, sessions rely on
    /// anti-entropy alone — what a peer that only speaks RBSR gets (used by the benchmark).
    public var fastPath = true
    /// Bytes a slow peer may have queued before its live pushes are dropped (RBSR repairs).
    public var maxQueuedBytes = 16 << 20
    /// Inbound connections open at once, in all and from one IP address; more are closed as
    /// soon as they are accepted. The total is also capped by the descriptor limit
    /// (`RLIMIT_NOFILE`), keeping a reserve for the database, dialing and metrics.
    public var maxInboundConnections = 256
    public var maxInboundConnectionsPerAddress = 8
    /// A connection that has not completed the Noise handshake this long after it opened is
    /// closed (unauthenticated connections must not hold descriptors).
    public var handshakeTimeout: Duration = .seconds(5)
    /// Where the node records its metrics (swift-metrics); `nil`: `MetricsSystem.factory`.
    public var metricsFactory: (any MetricsFactory)?
    /// The monotonic clock every timer of the node runs on: idle and keep-alive, the handshake
    /// deadline, merge settling, reconcile intervals, redial backoff, quarantine re-checks, the
    /// peer-list re-read. Tests pass a clock they advance by hand instead of waiting. (Wall time,
    /// for HLCs and quarantine, is the log's: `StoreOptions.wallClock`.)
    public var clock: any Clock<Duration> = ContinuousClock()

    public init(listen: String? = nil, peers: [PeerAddress] = []) {
        self.listen = listen
        self.peers = peers
    }
}

/// Who may open a session with a node, beyond holding the network secret.
public enum InboundPolicy: Sendable, Equatable {
    /// Anyone who completes the handshake (holds the network secret).
    case anyHolderOfTheSecret
    /// Keys in the log's writer set now (granted, not revoked), plus the peer list's pinned
    /// identities and ``SyncConfiguration/allow``.
    case writerSet
    /// These keys, plus the peer list's pinned identities and ``SyncConfiguration/allow``.
    case keys([PublicKey])
}

/// A `host:port` pair (IPv6 hosts in brackets: `[::1]:7401`).
struct HostPort: Sendable, Hashable, CustomStringConvertible {
    let host: String
    let port: Int

    /// Validates like the peer list (``PeerAddress/components(of:)``), except that port 0 (any
    /// free port) is allowed, for listening.
    init(parsing text: String) throws(SyncConfigurationError) {
        let anyPort = text.hasSuffix(":0")
        do {
            let (host, port) = try PeerAddress.components(of: anyPort ? String(text.dropLast()) + "1" : text)
            self.host = host
            self.port = anyPort ? 0 : port
        } catch {
            throw .badAddress(text)
        }
    }

    var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// A configuration value the node cannot use.
public enum SyncConfigurationError: Error, Equatable, Sendable, CustomStringConvertible {
    case badAddress(String)

    public var description: String {
        switch self {
        case .badAddress(let text): "'\(text)' is not HOST:PORT"
        }
    }
}

/// ``SyncConfiguration/clock`` with its instants as durations since the node was made, so
/// the node stores and compares plain durations whatever the clock's instant type.
struct SyncClock: Sendable {
    private let clock: any Clock<Duration>
    private let elapsed: @Sendable () -> Duration

    init(_ clock: some Clock<Duration>) {
        let origin = clock.now
        self.clock = clock
        elapsed = { origin.duration(to: clock.now) }
    }

    /// The time since the node was made.
    var now: Duration { elapsed() }

    /// Sleeps for `duration` on the clock.
    ///
    /// - Throws: `CancellationError` if the task is cancelled first.
    func sleep(for duration: Duration) async throws { try await Self.sleep(on: clock, for: duration) }

    // Generic over the opened clock rather than an async closure: the release build's coroutine
    // splitting crashed (swiftc 6.3.1, signal 11) on callers of a stored async throwing closure.
    private static func sleep(on clock: some Clock<Duration>, for duration: Duration) async throws {
        try await clock.sleep(for: duration)
    }
}

extension Duration {
    /// This duration scaled by a random factor in `1 ± spread`.
    func jittered(_ spread: Double) -> Duration {
        self * Double.random(in: (1 - spread)...(1 + spread))
    }

    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
