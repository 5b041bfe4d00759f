import CairnCore
import CairnStore
import Cairn
import CairnNoise
import CoreMetrics
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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
/// entries the moment this process commits them (and within `pushPollInterval` of a commit by
/// another process on the same database) — and runs periodic Negentropy rounds that repair whatever
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
    /// Counters, gauges and timers, recorded into ``SyncConfiguration/metricsFactory`` (Prometheus
    /// text via ``SyncMetrics/text()`` when that is a `PrometheusMetricsFactory`).
    public nonisolated let metrics: SyncMetrics
    /// The clock every timer runs on (``SyncConfiguration/clock``).
    nonisolated let clock: SyncClock
    /// Inbound connections open now, in all and by IP address.
    private nonisolated let inbound: InboundLimiter
    /// What `GET /healthz` reports.
    private nonisolated let health = Health()
    /// Entries received recently, for the catch-up progress log.
    private var catchUp: CatchUpProgress?
    /// The configured peers and handshake deadline as last (re)loaded (``reload(_:)``).
    private var configuredPeers: [PeerAddress]
    private var handshakeTimeout: Duration
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
    /// When sync traffic was last seen (on ``clock``).
    private var lastActivity = Duration.zero
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
        self.metrics = SyncMetrics(factory: configuration.metricsFactory ?? MetricsSystem.factory)
        self.clock = SyncClock(configuration.clock)
        self.inbound = InboundLimiter(
            total: InboundLimiter.cappedByDescriptors(configuration.maxInboundConnections),
            perAddress: configuration.maxInboundConnectionsPerAddress)
        self.configuredPeers = configuration.peers
        self.handshakeTimeout = configuration.handshakeTimeout
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

    /// Binds every listener first (the sync port, then metrics), and only then reports the
    /// node as listening: a node that cannot bind one of them fails with ``SyncNodeError``.
    private func runTasks() async throws {
        var server: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>?
        if let listenAddress { server = try await bind(listenAddress) }
        var metricsChannel: (any Channel)?
        if let metricsAddress {
            do {
                let node = log.nodeKey.hex
                metricsChannel = try await MetricsServer.bind(at: metricsAddress, metrics: metrics) { [health] in health.json(node: node) }
            } catch {
                try? await server?.channel.close()
                throw SyncNodeError.cannotBind(what: "metrics", address: metricsAddress.description, reason: describe(error))
            }
            metricsBound(metricsChannel?.localAddress?.port ?? metricsAddress.port)
        }
        listening(server?.channel.localAddress?.port ?? listenAddress?.port)
        try await withThrowingDiscardingTaskGroup { group in
            if let server { group.addTask { try await self.acceptPeers(server) } }
            if let metricsChannel { group.addTask { try await MetricsServer.serve(metricsChannel) } }
            group.addTask { try await self.dialPeers() }
            group.addTask { try await self.pushNewEntries() }
            group.addTask { try await self.mergeWhenSettled() }
            group.addTask { try await self.maintain() }
            group.addTask { try await self.reportCatchUp() }
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
        health.state.withLock { $0.serving = false }
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
        let monitor = AcceptErrorMonitor(logger: logger, metrics: metrics)
        do {
            return try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                // Sits before NIO's AcceptBackoffHandler, which pauses accepting for a second
                // after an accept error (EMFILE, ENFILE) but does not report it.
                .serverChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(monitor) }
                }
                .serverChannelOption(.maxMessagesPerRead, value: 4)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                // Accepted connections wait in a short queue: NIO stops accepting while the
                // accept loop is behind, so descriptors are only taken as fast as they are vetted.
                .bind(host: address.host, port: address.port, serverBackPressureStrategy: .init(lowWatermark: 1, highWatermark: 4)) {
                    [metrics] in configureSyncChannel($0, readTimeout: timeout, metrics: metrics)
                }
        } catch {
            throw SyncNodeError.cannotBind(what: "sync", address: address.description, reason: describe(error))
        }
    }

    /// Every listener is bound: wake ``listeningPort()`` callers and report healthy.
    private func listening(_ bound: Int?) {
        health.state.withLock { $0.serving = true }
        guard let bound else { return }
        port = bound
        for waiter in portWaiters { waiter.resume(returning: bound) }
        portWaiters = []
        logger.info("listening", metadata: [
            "address": "\(listenAddress?.host ?? "?"):\(bound)",
            "node": "\(log.nodeKey.hex)",
            "max_inbound": "\(inbound.total)",
        ])
    }

    private func metricsBound(_ port: Int) {
        metricsPort = port
        logger.info("serving metrics", metadata: ["port": "\(port)"])
    }

    /// Accepts peers. Connections over ``SyncConfiguration/maxInboundConnections`` (in all, or
    /// from one IP address) are closed at once; each admitted one must finish its handshake
    /// within ``SyncConfiguration/handshakeTimeout``.
    ///
    /// Stopping must not cancel the accept loop itself: NIO's server sequence drops the
    /// connections it has accepted but not yet handed out when its consumer is cancelled, and a
    /// dropped `NIOAsyncChannel` traps ("Deinited NIOAsyncWriter without calling finish()",
    /// swift-nio#2813). So the loop runs in a task of its own, and cancellation closes the
    /// listening channel instead: the sequence then ends after handing out every connection
    /// already accepted, each of which is closed through `executeThenClose`.
    private nonisolated func acceptPeers(_ server: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>) async throws {
        let loop = Task { try await self.acceptLoop(server) }
        try await withTaskCancellationHandler {
            try await loop.value
        } onCancel: {
            server.channel.close(promise: nil)
        }
    }

    private nonisolated func acceptLoop(_ server: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>) async throws {
        try await server.executeThenClose { accepted in
            try await withThrowingDiscardingTaskGroup { group in
                defer { group.cancelAll() }  // the listener closed: end the sessions it served
                for try await channel in accepted {
                    let remote = channel.channel.remoteAddress
                    let ip = remote?.ipAddress ?? "?"
                    let address = remote.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "?"
                    guard inbound.admit(ip) else {
                        // Closed before the next accept (so refused connections never pile up
                        // descriptors), through executeThenClose: a dropped NIOAsyncChannel traps.
                        try? await channel.executeThenClose { _, _ in }
                        metrics.inboundRefused.increment()
                        if let refused = inbound.refusalToReport() {
                            logger.warning("inbound connection limit reached; closing new connections", metadata: [
                                "refused": "\(refused)", "open": "\(inbound.open)", "limit": "\(inbound.total)",
                                "per_address_limit": "\(inbound.perAddress)",
                            ])
                        }
                        continue
                    }
                    metrics.inboundConnections.record(inbound.open)
                    group.addTask {
                        _ = await self.runConnection(channel, isDialer: false, address: address, pinned: nil)
                        self.inbound.release(ip)
                        self.metrics.inboundConnections.record(self.inbound.open)
                    }
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
                try await clock.sleep(for: .seconds(1))
            }
        }
    }

    private func wantedPeers() async throws -> [PeerAddress] {
        var seen = Set<String>()
        return (configuredPeers + (try await log.peers())).filter { seen.insert($0.address).inserted }
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
                try? await clock.sleep(for: .milliseconds(500))
                continue
            }
            let started = clock.now
            do {
                let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .connectTimeout(timeout)
                    .channelOption(.socketOption(.tcp_nodelay), value: 1)
                    .connect(host: target.host, port: target.port) { [metrics] in configureSyncChannel($0, readTimeout: timeout, metrics: metrics) }
                let outcome = await runConnection(channel, isDialer: true, address: peer.address, pinned: peer.identity)
                if let identity = outcome.identity { identities[peer.address] = identity }
                if outcome.error as? SessionError == .connectedToSelf {
                    logger.warning("peer address is this node; not dialing it", metadata: ["peer": "\(peer.address)"])
                    return
                }
                failures = clock.now - started > .seconds(10) || outcome.error == nil ? 0 : failures + 1
            } catch {
                failures += 1
                // Said once when a peer becomes unreachable; the retries that follow at debug.
                let metadata: Logger.Metadata = ["peer": "\(peer.address)", "error": "\(describe(error))"]
                if failures == 1 { logger.notice("cannot reach peer; retrying with backoff", metadata: metadata) } else { logger.debug("dial failed", metadata: metadata) }
            }
            let (first, max) = configuration.reconnectBackoff
            let pause = min(first * (1 << min(failures, 20)), max).jittered(0.5)
            try? await clock.sleep(for: pause)
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
        let (number, handshakeTimeout) = await nextConnection()
        var outcome = ConnectionOutcome()
        let opened = clock.now
        // Unauthenticated connections must not hold a descriptor for long: close the channel
        // if the handshake is not over by the deadline.
        let deadline = Task { [clock] in
            try await clock.sleep(for: handshakeTimeout)
            try await channel.channel.close()
        }
        do {
            try await channel.executeThenClose { inbound, outbound in
                var iterator = inbound.makeAsyncIterator()
                let (transport, remoteStatic): (NoiseTransport, [UInt8])
                do {
                    (transport, remoteStatic) = try await noiseHandshake(
                        initiator: isDialer, staticKey: staticKey, psk: networkSecret, inbound: &iterator, outbound: outbound)
                } catch where clock.now - opened >= handshakeTimeout {
                    throw SessionError.handshakeTimedOut
                }
                deadline.cancel()
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
        }
        deadline.cancel()
        report(outcome, address: address, isDialer: isDialer, opened: opened)
        return outcome
    }

    /// Logs why a connection ended: one info line per session (`session closed`, with the
    /// reason and how long it lasted), a warning when the peer was at fault. Connections that
    /// never authenticated are logged at debug level only (a flood of them must not flood the
    /// log; `cairn_sessions_dropped_total` counts them).
    private nonisolated func report(_ outcome: ConnectionOutcome, address: String, isDialer: Bool, opened: Duration) {
        let seconds = Double((clock.now - opened).milliseconds) / 1000
        var metadata: Logger.Metadata = [
            "peer": "\(outcome.identity.map { "\($0.hex.prefix(12))@" } ?? "")\(address)", "dialer": "\(isDialer)",
            "duration_s": "\(seconds)",
        ]
        let authenticated = outcome.identity != nil
        switch outcome.error {
        case nil:
            metadata["reason"] = "connection closed"
            logger.info("session closed", metadata: metadata)
        case let error as SessionError where error == .duplicateConnection:
            metadata["reason"] = "\(error)"
            logger.debug("closed a duplicate connection", metadata: metadata)
        case let error as SessionError:
            metrics.dropped(error.label)
            metadata["reason"] = "\(error)"
            if authenticated || isDialer || error.isAuthenticationFailure {
                logger.warning("dropped peer", metadata: metadata)
            } else {
                logger.debug("dropped unauthenticated connection", metadata: metadata)
            }
        case is CancellationError:
            metadata["reason"] = "node stopping"
            if authenticated { logger.info("session closed", metadata: metadata) }
        case let error as ChannelError where error == .eof || error == .ioOnClosedChannel || error == .alreadyClosed:
            metadata["reason"] = "connection closed"
            if authenticated { logger.info("session closed", metadata: metadata) } else { logger.debug("connection closed before the handshake", metadata: metadata) }
        case let error?:
            metadata["reason"] = "\(describe(error))"
            if authenticated { logger.info("session closed", metadata: metadata) } else { logger.debug("connection failed", metadata: metadata) }
        }
    }

    private func nextConnection() -> (number: Int, handshakeTimeout: Duration) {
        connections += 1
        return (connections, handshakeTimeout)
    }

    /// Applies what may change while the node runs (`cairn serve` on SIGHUP): the configured
    /// peers (dialers of removed ones stop, new ones start within a second), the inbound
    /// connection limits and the handshake deadline. Other settings take effect at the next
    /// start; a change to them is logged. Returns the names of the settings that changed.
    @discardableResult
    public func reload(_ new: SyncConfiguration) -> [String] {
        var changed: [String] = []
        if new.peers != configuredPeers {
            configuredPeers = new.peers
            changed.append("peers")
        }
        if new.handshakeTimeout != handshakeTimeout {
            handshakeTimeout = new.handshakeTimeout
            changed.append("handshake timeout")
        }
        let total = InboundLimiter.cappedByDescriptors(new.maxInboundConnections)
        if total != inbound.total || new.maxInboundConnectionsPerAddress != inbound.perAddress {
            inbound.setLimits(total: total, perAddress: new.maxInboundConnectionsPerAddress)
            changed.append("inbound limits")
        }
        let old = configuration
        if new.listen != old.listen || new.metricsListen != old.metricsListen || new.reconcileInterval != old.reconcileInterval
            || new.idleTimeout != old.idleTimeout || new.mergeSettle != old.mergeSettle
        {
            logger.notice("listen, metrics and timing changes take effect when the node restarts")
        }
        return changed
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
        metrics.peersConnected.record(sessions.count)
        health.state.withLock { $0.peers = sessions.count }
        return true
    }

    func unregister(_ session: PeerSession) async {
        guard let identity = await session.identity, sessions[identity] === session else { return }
        sessions[identity] = nil
        metrics.peersConnected.record(sessions.count)
        health.state.withLock { $0.peers = sessions.count }
    }

    /// Called when entries arrive: merges wait until traffic settles.
    func noteActivity() { lastActivity = clock.now }

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

    /// Entries a peer was known to hold when its last session ended or synced: kept in memory,
    /// and in its `peer_status` row so that a restart of this node does not forget them.
    func held(by identity: PublicKey) async -> HeldEntries {
        if let held = heldByPeer[identity] { return held }
        var held = HeldEntries()
        held.insert(((try? await log.peerHeld(by: identity)) ?? []).map { SyncMessage.Tip(id: $0.id, hlc: $0.hlc) })
        heldByPeer[identity] = held
        return held
    }

    func noteHeld(_ held: HeldEntries, by identity: PublicKey) async {
        guard heldByPeer[identity] != held else { return }
        heldByPeer[identity] = held
        do {
            try await log.savePeerHeld(held.tips.map { ($0.id, $0.hlc) }, by: identity)
        } catch {
            logger.warning("could not record the entries a peer holds", metadata: ["error": "\(error)"])
        }
    }

    /// Called when a batch from a peer was applied: merges wait until traffic settles, and a
    /// catch-up's progress is logged.
    func noteReceived(_ count: Int) {
        lastActivity = clock.now
        guard count > 0 else { return }
        let now = clock.now
        var progress = catchUp ?? CatchUpProgress(started: now)
        progress.entries += count
        progress.last = now
        catchUp = progress
    }

    /// A session finished a sync (its fetch or reconciliation round left nothing lacking): a
    /// catch-up in progress is complete.
    func noteSynced() {
        guard let progress = catchUp else { return }
        finishCatchUp(progress, at: clock.now)
    }

    /// Logs a catch-up's progress every 10,000 entries or 5 s, and its completion — when a
    /// session says it is synced, or after 5 s without entries (a burst of pushes) — with the
    /// count and the rate. Small trickles (pushes) are not logged.
    private func reportCatchUp() async throws {
        while true {
            try await clock.sleep(for: .milliseconds(250))
            guard var progress = catchUp else { continue }
            let now = clock.now
            if now - progress.last >= .seconds(5) {
                finishCatchUp(progress, at: now)
            } else if progress.entries >= CatchUpProgress.minimum,
                progress.entries - progress.reported >= 10_000 || now - progress.reportedAt >= .seconds(5)
            {
                logger.info("catching up", metadata: ["entries": "\(progress.entries)", "seconds": "\(progress.seconds(at: now))", "per_second": "\(progress.rate(at: now))"])
                progress.reported = progress.entries
                progress.reportedAt = now
                catchUp = progress
            }
        }
    }

    private func finishCatchUp(_ progress: CatchUpProgress, at now: Duration) {
        if progress.entries >= CatchUpProgress.minimum {
            logger.info("caught up", metadata: ["entries": "\(progress.entries)", "seconds": "\(progress.seconds(at: now))", "per_second": "\(progress.rate(at: now))"])
        }
        catchUp = nil
    }

    // MARK: - Push, merge, upkeep

    /// Pushes every entry committed after the last one pushed, whoever committed it: polling
    /// the ingest sequence sees this process's writes and other processes' alike.
    private func pushNewEntries() async throws {
        var pushed = try await log.lastSeq()
        var seen = log.commits.generation
        while true {
            // Woken by this process's commits at once; other processes' commits (the CLI, an
            // embedding app on the same file) are found by the check every pushPollInterval.
            await log.commits.wait(after: seen, timeout: configuration.pushPollInterval)
            try Task.checkCancellation()
            seen = log.commits.generation
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
    /// `mergeSettle × 1…3` if not, and re-check the heads before writing. Nobody merges while
    /// the time rules hold the head set back (``SkewHold/holdsMerges``).
    private func mergeWhenSettled() async throws {
        var diverged: (heads: [Hash32], since: Duration)?
        let settle = configuration.mergeSettle
        while true {
            try await clock.sleep(for: settle)
            let heads = try await log.heads()
            metrics.heads.record(heads.count)
            guard heads.count > 1 else {
                diverged = nil
                continue
            }
            guard clock.now - lastActivity >= settle, !(await anySessionBusy()) else { continue }
            // No merge over a head set the time rules still move: a head beyond this node's
            // clock tolerance, or an entry quarantined (or waiting for one) that is due soon.
            let horizon = UInt64(max(configuration.mergeQuarantineHorizon.milliseconds, 0))
            guard !(try await log.skewHold(horizonMilliseconds: horizon).holdsMerges) else {
                diverged = nil
                continue
            }
            let ids = heads.map(\.id)
            if diverged?.heads != ids { diverged = (ids, clock.now) }
            let waited = clock.now - (diverged?.since ?? clock.now)
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
            metrics.mergesWritten.increment(by: written.count)
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
            try await clock.sleep(for: configuration.quarantineRecheckInterval)
            let report = try await log.recheckQuarantine()
            if !report.applied.isEmpty {
                lastActivity = clock.now
                logger.info("released quarantined entries", metadata: ["count": "\(report.applied.count)"])
            }
        }
    }
}


/// Why a ``SyncNode`` could not run.
public enum SyncNodeError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A listener (`sync` or `metrics`) could not be bound.
    case cannotBind(what: String, address: String, reason: String)

    public var description: String {
        switch self {
        case .cannotBind(let what, let address, let reason): "cannot listen on \(address) (\(what)): \(reason)"
        }
    }
}

/// An error as one short phrase: the system's text for an errno.
func describe(_ error: any Error) -> String {
    switch error {
    case let error as IOError: return String(cString: strerror(error.errnoCode))
    case let error as SocketAddressError.UnknownHost: return "cannot resolve host '\(error.host)' (check the address or DNS)"
    case let error as NIOConnectionError:
        if error.dnsAError != nil || error.dnsAAAAError != nil { return "cannot resolve host '\(error.host)' (check the address or DNS)" }
        let reasons = Set(error.connectionErrors.map { describe($0.error) }).sorted()
        return "cannot connect to \(error.host):\(error.port)" + (reasons.isEmpty ? "" : ": \(reasons.joined(separator: "; "))")
    default: return "\(error)"
    }
}

/// What `GET /healthz` answers.
final class Health: Sendable {
    struct State {
        var serving = false
        var peers = 0
    }

    let state = Mutex(State())

    func json(node: String) -> String {
        let (serving, peers) = state.withLock { ($0.serving, $0.peers) }
        return #"{"status":"\#(serving ? "serving" : "stopping")","node":"\#(node)","peers":\#(peers)}"#
    }
}

/// Entries received since a catch-up began, for its progress log.
struct CatchUpProgress {
    /// Fewer entries than this in one burst is ordinary push traffic, not a catch-up.
    static let minimum = 1000
    let started: Duration
    var last: Duration
    var entries = 0
    var reported = 0
    var reportedAt: Duration

    init(started: Duration) {
        self.started = started
        self.last = started
        self.reportedAt = started
    }

    func seconds(at now: Duration) -> Double { max(0.001, Double((now - started).milliseconds) / 1000) }
    func rate(at now: Duration) -> Int { Int(Double(entries) / seconds(at: now)) }
}

/// Counts inbound connections, in all and per IP address, against their limits. Synchronous
/// (a mutex), so the accept loop never waits on the node actor.
final class InboundLimiter: Sendable {
    private let state: Mutex<State>

    private struct State {
        var total: Int
        var perAddress: Int
        var open = 0
        var byAddress: [String: Int] = [:]
        var refused = 0
        var reportedAt: ContinuousClock.Instant?
    }

    init(total: Int, perAddress: Int) {
        state = Mutex(State(total: max(1, total), perAddress: max(1, perAddress)))
    }

    var total: Int { state.withLock { $0.total } }
    var perAddress: Int { state.withLock { $0.perAddress } }

    /// New limits; connections already open stay open.
    func setLimits(total: Int, perAddress: Int) {
        state.withLock {
            $0.total = max(1, total)
            $0.perAddress = max(1, perAddress)
        }
    }

    /// Descriptors kept free for the database, dialing peers, the metrics server and NIO.
    static let reservedDescriptors = 48

    /// `limit`, lowered to fit the process's descriptor limit (`RLIMIT_NOFILE`) minus
    /// ``reservedDescriptors``: beyond that, accepting would starve everything else.
    static func cappedByDescriptors(_ limit: Int) -> Int {
        var limits = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limits) == 0, limits.rlim_cur != rlim_t.max else { return limit }
        return max(1, min(limit, Int(clamping: limits.rlim_cur) - reservedDescriptors))
    }

    var open: Int { state.withLock { $0.open } }

    /// Takes a slot for a connection from `address`, or says there is none.
    func admit(_ address: String) -> Bool {
        state.withLock { state in
            guard state.open < state.total, state.byAddress[address, default: 0] < state.perAddress else {
                state.refused += 1
                return false
            }
            state.open += 1
            state.byAddress[address, default: 0] += 1
            return true
        }
    }

    func release(_ address: String) {
        state.withLock { state in
            state.open -= 1
            let left = state.byAddress[address, default: 1] - 1
            state.byAddress[address] = left > 0 ? left : nil
        }
    }

    /// The connections refused since the last report, at most once every 10 s.
    func refusalToReport() -> Int? {
        state.withLock { state in
            let now = ContinuousClock.now
            if let last = state.reportedAt, now - last < .seconds(10) { return nil }
            state.reportedAt = now
            defer { state.refused = 0 }
            return state.refused
        }
    }
}

/// Sees accept errors on the listening channel before NIO's `AcceptBackoffHandler` (which pauses
/// accepting for a while and swallows them): logs running out of descriptors (at most every 10 s)
/// and counts every accept error in `cairn_accept_errors_total`.
final class AcceptErrorMonitor: ChannelInboundHandler, Sendable {
    typealias InboundIn = any Channel

    private let logger: Logger
    private let metrics: SyncMetrics
    private let lastReport = Mutex<ContinuousClock.Instant?>(nil)

    init(logger: Logger, metrics: SyncMetrics) {
        self.logger = logger
        self.metrics = metrics
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        metrics.acceptErrors.increment()
        let due = lastReport.withLock { last in
            let now = ContinuousClock.now
            if let last, now - last < .seconds(10) { return false }
            last = now
            return true
        }
        if due {
            if let error = error as? IOError, error.errnoCode == EMFILE || error.errnoCode == ENFILE {
                logger.error("out of file descriptors: cannot accept connections; pausing accepts", metadata: [
                    "error": "\(describe(error))", "limit": "\(descriptorLimit())",
                ])
            } else {
                logger.warning("accept failed", metadata: ["error": "\(describe(error))"])
            }
        }
        context.fireErrorCaught(error)
    }
}

/// The process's soft descriptor limit, for log lines.
func descriptorLimit() -> String {
    var limits = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limits) == 0 else { return "?" }
    return limits.rlim_cur == rlim_t.max ? "unlimited" : "\(limits.rlim_cur)"
}

extension SyncNode {
    /// The sync protocol version this node speaks (negotiated in the hello).
    public static let protocolVersion = PeerSession.protocolVersion
}
