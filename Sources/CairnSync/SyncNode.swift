import CairnCore
import CairnStore
import Cairn
import CairnNoise
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// A sync node: keeps a ``CairnLog`` in step with its peers. `cairn serve` runs one; a storage
/// engine can run one in-process.
///
/// ```swift
/// let log = try CairnLog.open(at: "/var/lib/manifests")
/// let node = try SyncNode(log: log, configuration: SyncConfiguration(listen: "0.0.0.0:7401"))
/// try await ServiceGroup(services: [node], gracefulShutdownSignals: [.sigterm], logger: logger).run()
/// ```
///
/// The node listens for peers, dials the configured ones (redialing with backoff and jitter),
/// and for each session: exchanges heads and fetches what it lacks (the fast path), pushes new
/// entries within about `pushPollInterval` of their commit — whoever wrote them, this process
/// or another on the same database — and runs periodic Negentropy rounds that repair whatever
/// the fast path missed. When its heads diverge and traffic settles, the node elected by the
/// rule in ARCHITECTURE.md § "Merges after sync" writes one merge entry.
///
/// Every session is Noise `XXpsk3_25519_ChaChaPoly_BLAKE2b` keyed by the log's network secret;
/// a node's Noise key is its Ed25519 node key converted to X25519, so the peer's identity is
/// authenticated by the handshake itself.
public actor SyncNode: Service {
    /// The log this node syncs.
    public nonisolated let log: CairnLog
    public nonisolated let configuration: SyncConfiguration
    /// Counters and gauges (Prometheus text via ``SyncMetrics/text()``).
    public nonisolated let metrics = SyncMetrics()
    nonisolated let logger: Logger
    private nonisolated let staticKey: NoiseKeyPair
    private nonisolated let networkSecret: [UInt8]
    private nonisolated let listenAddress: HostPort?
    private nonisolated let metricsAddress: HostPort?

    private var sessions: [PublicKey: PeerSession] = [:]
    /// Node keys learned from hellos on dialed addresses: a dialer waits while that node is
    /// connected some other way (it dialed us), instead of opening a duplicate.
    private var identities: [String: PublicKey] = [:]
    private var dialers = Set<String>()
    /// Per peer, entries it was known to hold: a peer that reconnects without them was restored.
    private var heldByPeer: [PublicKey: HeldEntries] = [:]
    private var connections = 0
    private var lastActivity = ContinuousClock.now
    private var port: Int?
    private var portWaiters: [CheckedContinuation<Int, any Error>] = []
    private var stopped = false
    private var metricsPort: Int?

    /// Prepares a node for `log`; nothing happens until ``run()``.
    ///
    /// - Throws: `StoreError.readOnly` if the log was opened read-only; if the log has no network
    ///   secret, or an address in `configuration` is not `HOST:PORT`.
    public init(log: CairnLog, configuration: SyncConfiguration = SyncConfiguration(), logger: Logger = Logger(label: "cairn.sync")) throws {
        guard !log.isReadOnly else { throw StoreError.readOnly(path: log.directory.path) }
        self.log = log
        self.configuration = configuration
        self.logger = logger
        self.networkSecret = try log.networkSecret()
        self.staticKey = log.signingKey.noiseStaticKey
        self.listenAddress = try configuration.listen.map { try HostPort(parsing: $0) }
        self.metricsAddress = try configuration.metricsListen.map { try HostPort(parsing: $0) }
        for peer in configuration.peers { _ = try HostPort(parsing: peer.address) }
    }

    /// Runs until the task is cancelled or a graceful shutdown is requested (SIGTERM/SIGINT
    /// under a `ServiceGroup`). Sessions close; a batch being inserted commits or rolls back as a
    /// whole, and nothing is acknowledged to a peer before it is committed.
    public func run() async throws {
        defer { stop() }
        do {
            try await cancelWhenGracefulShutdown { try await self.runTasks() }
        } catch is CancellationError {
            // Stopped on purpose (graceful shutdown or task cancellation): not a failure.
        }
        logger.info("sync node stopped")
    }

    private func runTasks() async throws {
        try await withThrowingDiscardingTaskGroup { group in
            if let listenAddress {
                let server = try await bind(listenAddress)
                group.addTask { try await self.acceptPeers(server) }
            }
            if let metricsAddress {
                group.addTask {
                    try await MetricsServer.run(at: metricsAddress, metrics: self.metrics) { await self.metricsBound($0) }
                }
            }
            group.addTask { try await self.dialPeers() }
            group.addTask { try await self.pushNewEntries() }
            group.addTask { try await self.mergeWhenSettled() }
            group.addTask { try await self.maintain() }
        }
    }

    /// The port the node listens on, once bound (useful with port 0).
    ///
    /// - Throws: `CancellationError` if ``run()`` ended (or failed to bind) first.
    public func listeningPort() async throws -> Int {
        if let port { return port }
        if stopped { throw CancellationError() }
        return try await withCheckedThrowingContinuation { portWaiters.append($0) }
    }

    private func stop() {
        stopped = true
        for waiter in portWaiters { waiter.resume(throwing: CancellationError()) }
        portWaiters = []
    }

    /// The port the metrics endpoint listens on, once bound.
    public var metricsListeningPort: Int? { metricsPort }

    /// Node keys of the peers with an open session.
    public var connectedPeers: [PublicKey] { Array(sessions.keys).sorted() }

    // MARK: - Accepting and dialing

    private func bind(_ address: HostPort) async throws -> NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never> {
        let timeout = TimeAmount.milliseconds(configuration.idleTimeout.milliseconds)
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .bind(host: address.host, port: address.port) { configureSyncChannel($0, readTimeout: timeout) }
        let bound = server.channel.localAddress?.port ?? address.port
        port = bound
        for waiter in portWaiters { waiter.resume(returning: bound) }
        portWaiters = []
        logger.info("listening", metadata: ["address": "\(address.host):\(bound)", "node": "\(log.nodeKey.hex)"])
        return server
    }

    private func metricsBound(_ port: Int) {
        metricsPort = port
        logger.info("serving metrics", metadata: ["port": "\(port)"])
    }

    private nonisolated func acceptPeers(_ server: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>) async throws {
        try await server.executeThenClose { inbound in
            try await withThrowingDiscardingTaskGroup { group in
                for try await channel in inbound {
                    let address = channel.channel.remoteAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "?"
                    group.addTask { _ = await self.runConnection(channel, isDialer: false, address: address, pinned: nil) }
                }
            }
        }
    }

    /// Keeps one dialer per wanted peer (the configured ones plus the log's peer list, reread
    /// every second so `cairn peers add` takes effect without a restart).
    private func dialPeers() async throws {
        try await withThrowingDiscardingTaskGroup { group in
            while true {
                for peer in try await wantedPeers() where !dialers.contains(peer.address) {
                    dialers.insert(peer.address)
                    group.addTask {
                        await self.dial(peer.address)
                        await self.dialerEnded(peer.address)
                    }
                }
                try await Task.sleep(for: .seconds(1))
            }
        }
    }

    private func wantedPeers() async throws -> [PeerAddress] {
        var seen = Set<String>()
        return (configuration.peers + (try await log.peers())).filter { seen.insert($0.address).inserted }
    }

    private func dialerEnded(_ address: String) { dialers.remove(address) }

    /// The peer-list entry for `address` as it is now (its pin may have changed), or `nil` once
    /// it was removed.
    private func wantedPeer(_ address: String) async -> PeerAddress? {
        (try? await wantedPeers().first { $0.address == address }) ?? nil
    }

    private func isConnected(_ address: String) -> Bool {
        identities[address].map { sessions[$0] != nil } ?? false
    }

    /// Dials `address` until it is removed from the peer list: connect, run the session, and
    /// after a failure wait `first × 2^failures` (capped at `max`, jittered ±50%).
    private func dial(_ address: String) async {
        guard let target = try? HostPort(parsing: address) else { return }
        let timeout = TimeAmount.milliseconds(configuration.idleTimeout.milliseconds)
        var failures = 0
        while !Task.isCancelled, let peer = await wantedPeer(address) {
            if isConnected(peer.address) {
                try? await Task.sleep(for: .milliseconds(500))
                continue
            }
            let started = ContinuousClock.now
            do {
                let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .connectTimeout(timeout)
                    .channelOption(.socketOption(.tcp_nodelay), value: 1)
                    .connect(host: target.host, port: target.port) { configureSyncChannel($0, readTimeout: timeout) }
                let outcome = await runConnection(channel, isDialer: true, address: peer.address, pinned: peer.identity)
                if let identity = outcome.identity { identities[peer.address] = identity }
                if outcome.error as? SessionError == .connectedToSelf {
                    logger.warning("peer address is this node; not dialing it", metadata: ["peer": "\(peer.address)"])
                    return
                }
                failures = ContinuousClock.now - started > .seconds(10) || outcome.error == nil ? 0 : failures + 1
            } catch {
                failures += 1
                logger.debug("dial failed", metadata: ["peer": "\(peer.address)", "error": "\(error)"])
            }
            let (first, max) = configuration.reconnectBackoff
            let pause = min(first * (1 << min(failures, 20)), max).jittered(0.5)
            try? await Task.sleep(for: pause)
        }
    }

    // MARK: - Sessions

    private struct ConnectionOutcome {
        var identity: PublicKey?
        var error: (any Error)?
    }

    /// Handshake, then the session, on one connection; logs and counts why it ended.
    private nonisolated func runConnection(
        _ channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>, isDialer: Bool, address: String, pinned: PublicKey?
    ) async -> ConnectionOutcome {
        let number = await nextConnection()
        var outcome = ConnectionOutcome()
        do {
            try await channel.executeThenClose { inbound, outbound in
                var iterator = inbound.makeAsyncIterator()
                let (transport, remoteStatic) = try await noiseHandshake(
                    initiator: isDialer, staticKey: staticKey, psk: networkSecret, inbound: &iterator, outbound: outbound)
                var receiver = FrameReceiver(cipher: transport.receiver, inbound: iterator, maxMessageBytes: configuration.maxMessageBytes)
                let session = PeerSession(
                    connection: number, isDialer: isDialer, address: address, remoteStatic: remoteStatic, pinned: pinned,
                    node: self, sender: FrameSender(cipher: transport.sender, outbound: outbound),
                    close: { channel.channel.close(promise: nil) })
                do {
                    try await session.run(receiver: &receiver)
                } catch {
                    outcome.identity = await session.identity
                    throw error
                }
                outcome.identity = await session.identity
            }
        } catch {
            outcome.error = error
            report(error, address: address)
        }
        return outcome
    }

    private nonisolated func report(_ error: any Error, address: String) {
        switch error {
        case let error as SessionError where error == .duplicateConnection:
            logger.debug("closed a duplicate connection", metadata: ["peer": "\(address)"])
        case let error as SessionError:
            metrics.dropped(error.label)
            logger.warning("dropped peer", metadata: ["peer": "\(address)", "reason": "\(error)"])
        case is CancellationError:
            break
        case let error as ChannelError where error == .eof || error == .ioOnClosedChannel || error == .alreadyClosed:
            logger.info("peer disconnected", metadata: ["peer": "\(address)"])
        default:
            logger.info("session ended", metadata: ["peer": "\(address)", "error": "\(error)"])
        }
    }

    private func nextConnection() -> Int {
        connections += 1
        return connections
    }

    /// Registers a session whose hello checked out. Of two sessions with one peer, the one
    /// dialed by the node with the smaller key is kept (both ends pick the same one); a newer
    /// connection from the same dialer replaces the older (the peer restarted).
    func register(_ session: PeerSession, identity: PublicKey) async -> Bool {
        if let existing = sessions[identity], existing !== session {
            let dialerOf = { (s: PeerSession) in s.isDialer ? self.log.nodeKey : identity }
            if dialerOf(existing) != dialerOf(session) && dialerOf(existing) < dialerOf(session) { return false }
            sessions[identity] = session
            await existing.terminate("replaced by a newer connection")
        }
        sessions[identity] = session
        metrics.peersConnected.set(Double(sessions.count))
        return true
    }

    func unregister(_ session: PeerSession) async {
        guard let identity = await session.identity, sessions[identity] === session else { return }
        sessions[identity] = nil
        metrics.peersConnected.set(Double(sessions.count))
    }

    /// Called when entries arrive: merges wait until traffic settles.
    func noteActivity() { lastActivity = .now }

    /// Whether the inbound policy admits a peer with this node key (see ``InboundPolicy``).
    func admits(_ key: PublicKey) async -> Bool {
        switch configuration.inboundPolicy {
        case .anyHolderOfTheSecret: return true
        case .writerSet: if (try? await log.isCurrentWriter(key)) == true { return true }
        case .keys(let keys): if keys.contains(key) { return true }
        }
        if configuration.allow.contains(key) { return true }
        return (try? await wantedPeers().contains { $0.identity == key }) ?? false
    }

    /// Entries a peer was known to hold when its last session ended or synced (kept in memory).
    func held(by identity: PublicKey) -> HeldEntries { heldByPeer[identity] ?? HeldEntries() }

    func noteHeld(_ held: HeldEntries, by identity: PublicKey) { heldByPeer[identity] = held }

    // MARK: - Push, merge, upkeep

    /// Pushes every entry committed after the last one pushed, whoever committed it: polling
    /// the ingest sequence sees this process's writes and other processes' alike.
    private func pushNewEntries() async throws {
        var pushed = try await log.lastSeq()
        while true {
            try await Task.sleep(for: configuration.pushPollInterval)
            let last = try await log.lastSeq()
            while pushed < last {
                // Ids first: entries every peer already holds (most of what a catch-up brings
                // in) are never read back.
                let (ids, through) = try await log.entryIDs(afterSeq: pushed, limit: configuration.batchEntries)
                if ids.isEmpty { break }
                var wanted = Set<Hash32>()
                for session in sessions.values { wanted.formUnion(await session.lacking(ids)) }
                if !wanted.isEmpty {
                    let entries = try await log.outgoingEntries(ids.filter(wanted.contains), inlineValueLimit: PeerSession.chunkThreshold)
                    for session in sessions.values { await session.push(entries) }
                }
                pushed = through
            }
        }
    }

    /// Writes a merge entry when the heads have diverged and sync traffic has settled, by the
    /// rule in ARCHITECTURE.md: the author of the greatest head merges at once; others wait
    /// `mergeSettle × 10` if that author is connected (it will merge), or a jittered
    /// `mergeSettle × 1…3` if not, and re-check the heads before writing.
    private func mergeWhenSettled() async throws {
        var diverged: (heads: [Hash32], since: ContinuousClock.Instant)?
        let settle = configuration.mergeSettle
        while true {
            try await Task.sleep(for: settle)
            let heads = try await log.heads()
            metrics.heads.set(Double(heads.count))
            guard heads.count > 1 else {
                diverged = nil
                continue
            }
            guard ContinuousClock.now - lastActivity >= settle, !(await anySessionBusy()) else { continue }
            let ids = heads.map(\.id)
            if diverged?.heads != ids { diverged = (ids, .now) }
            let waited = ContinuousClock.now - diverged!.since
            let elected = try await electedMerger(heads)
            let due: Bool
            if elected == log.nodeKey {
                due = true
            } else if let elected, sessions[elected] != nil {
                due = waited >= settle * 10
            } else {
                due = waited >= settle.jittered(0.5) * 2
            }
            if due { await writeMerge(heads: heads.count) }
        }
    }

    /// The author of the greatest head by `(hlc, author, id)`: the LWW order, so every node
    /// that holds the same heads elects the same author.
    private func electedMerger(_ heads: [Head]) async throws -> PublicKey? {
        var best: (hlc: HLC, author: PublicKey, id: Hash32)?
        for head in heads {
            guard let author = try await log.entry(head.id)?.entry.author else { continue }
            let candidate = (head.hlc, author, head.id)
            if let current = best, (current.hlc, current.author, current.id) >= candidate { continue }
            best = candidate
        }
        return best?.author
    }

    private func writeMerge(heads: Int) async {
        do {
            let written = try await log.write([])
            guard !written.isEmpty else { return }
            metrics.mergesWritten.increment(by: Int64(written.count))
            logger.info("merged diverged heads", metadata: ["heads": "\(heads)", "merge": "\(written.last!.id.shortHex())"])
        } catch {
            logger.debug("could not write a merge entry (read-only node?)", metadata: ["error": "\(error)"])
        }
    }

    private func anySessionBusy() async -> Bool {
        for session in sessions.values where await session.isBusy { return true }
        return false
    }

    /// Re-checks quarantined entries whose time may have come.
    private func maintain() async throws {
        while true {
            try await Task.sleep(for: .seconds(2))
            let report = try await log.recheckQuarantine()
            if !report.applied.isEmpty {
                lastActivity = .now
                logger.info("released quarantined entries", metadata: ["count": "\(report.applied.count)"])
            }
        }
    }
}

