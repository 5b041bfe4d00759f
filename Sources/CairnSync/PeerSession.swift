import Cairn
import Logging
import NIOCore

/// One encrypted session with one peer, after the Noise handshake: hello, heads and delta
/// fetch, live push, anti-entropy rounds, and serving the peer's requests.
///
/// The reader loop (``run(receiver:)``) handles messages in order; entry batches are inserted
/// inline (one transaction each, acknowledged after commit), so a sender can never run more
/// than `window` batches ahead. Anything long (serving a fetch, a reconciliation round) runs as
/// a job beside the reader so acks and replies keep flowing.
actor PeerSession {
    typealias Job = @Sendable () async throws -> Void

    static let protocolVersion: UInt16 = 1
    static let deltaCapability = "delta-fetch/1"
    static let pushCapability = "push/1"
    static let reconcileCapability = "rbsr-negentropy-v1"
    static let capabilities = [deltaCapability, pushCapability, reconcileCapability]

    let connection: Int
    let isDialer: Bool
    let address: String
    private let remoteStatic: [UInt8]
    private let pinned: PublicKey?
    private let node: SyncNode
    private let log: CairnLog
    private let config: SyncConfiguration
    private let metrics: SyncMetrics
    private var logger: Logger
    private let sender: FrameSender
    private let close: @Sendable () -> Void

    /// The peer's node key, once its hello checked out.
    private(set) var identity: PublicKey?
    private var capabilities: Set<String> = []
    /// Ids the peer is known to hold (sent by it or to it): not pushed to it again.
    private var known = RecentIDs(capacity: 200_000)
    private var nextRequestID: UInt32 = 1
    private var nextStreamID: UInt32 = 0x8000_0000
    private var nextReconcileID: UInt32 = 1
    private let requests = PendingReplies<SyncMessage.FetchOutcome>()
    private let reconcileReplies = PendingReplies<[UInt8]>()
    private var acked: [UInt32: UInt32] = [:]
    private var ackWaiters: [UInt32: (batch: UInt32, continuation: CheckedContinuation<Void, any Error>)] = [:]
    private var needsInFlight: [UInt32: [Hash32]] = [:]
    private var requestedParents = Set<Hash32>()
    private var reconciling = false
    private var firstHeads = true
    /// Fetches, streams and reconciliation rounds in progress (the node waits for zero before merging).
    private(set) var activeWork = 0
    private var status: PeerStatus?
    /// When ``noteLag(entries:exact:oldest:save:)`` last saved the status (wall ms).
    private var lagSavedAt: UInt64 = 0
    private var failure: (any Error)?
    private var hasEnded = false
    private let jobs: AsyncStream<Job>
    private let jobQueue: AsyncStream<Job>.Continuation

    init(
        connection: Int, isDialer: Bool, address: String, remoteStatic: [UInt8], pinned: PublicKey?,
        node: SyncNode, sender: FrameSender, close: @escaping @Sendable () -> Void
    ) {
        self.connection = connection
        self.isDialer = isDialer
        self.address = address
        self.remoteStatic = remoteStatic
        self.pinned = pinned
        self.node = node
        self.log = node.log
        self.config = node.configuration
        self.metrics = node.metrics
        self.logger = node.logger
        self.logger[metadataKey: "peer"] = "\(address)"
        self.sender = sender
        self.close = close
        (jobs, jobQueue) = AsyncStream.makeStream(of: Job.self)
    }

    var isBusy: Bool { activeWork > 0 }

    // MARK: - Running

    /// Exchanges hellos, then handles the peer's messages until it leaves, fails or the task is
    /// cancelled. Throws the reason the session ended on the peer's fault.
    nonisolated func run(receiver: inout FrameReceiver) async throws {
        try await sender.send(.hello(.init(
            minVersion: Self.protocolVersion, maxVersion: Self.protocolVersion, logID: log.logID,
            nodeKey: log.nodeKey, capabilities: config.fastPath ? Self.capabilities : [Self.reconcileCapability])))
        guard case .hello(let hello)? = try await receiver.next() else {
            throw SessionError.unexpectedMessage("expected a hello first")
        }
        try await accept(hello)
        do {
            try await readLoop(&receiver)
            await finish()
        } catch {
            await finish()
            throw error
        }
    }

    /// Handles messages until the peer leaves; jobs, pings and periodic rounds run beside it.
    private nonisolated func readLoop(_ receiver: inout FrameReceiver) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await self.runJobs() }
            group.addTask { try await self.keepAlive() }
            group.addTask { try await self.periodicReconciliation() }
            await self.start { try await self.sendHeads() }
            var ended: (any Error)?
            do {
                try await withTaskCancellationHandler {
                    while let message = try await receiver.next() {
                        try await self.handle(message)
                    }
                } onCancel: {
                    self.close()
                }
            } catch {
                ended = error
            }
            // Jobs waiting for a reply, an ack or a round would wait forever now: fail them so
            // the task group can finish.
            await self.failPending()
            group.cancelAll()
            if let failure = await self.failure ?? ended { throw failure }
        }
    }

    /// Checks the peer's hello: same log, a common version, a Noise key bound to the node key
    /// it claims, the pinned identity if any; then registers with the node.
    private func accept(_ hello: SyncMessage.Hello) async throws {
        guard hello.logID == log.logID else { throw SessionError.wrongLog(hello.logID) }
        let version = min(hello.maxVersion, Self.protocolVersion)
        guard version >= max(hello.minVersion, Self.protocolVersion) else {
            throw SessionError.noCommonVersion(hello.minVersion, hello.maxVersion)
        }
        guard hello.nodeKey.noiseStaticKey == remoteStatic else { throw SessionError.identityNotBound }
        if let pinned, pinned != hello.nodeKey { throw SessionError.identityMismatch(expected: pinned, got: hello.nodeKey) }
        guard hello.nodeKey != log.nodeKey else { throw SessionError.connectedToSelf }
        // Capabilities this version does not know are ignored; missing ones switch features off.
        capabilities = Set(hello.capabilities).intersection(config.fastPath ? Self.capabilities : [Self.reconcileCapability])
        identity = hello.nodeKey
        logger[metadataKey: "peer"] = "\(hello.nodeKey.hex.prefix(12))@\(address)"
        guard await node.register(self, identity: hello.nodeKey) else {
            try? await sender.send(.bye("duplicate connection"))
            throw SessionError.duplicateConnection
        }
        var status = try await log.peerStatus(identity: hello.nodeKey) ?? PeerStatus(identity: hello.nodeKey, address: address, state: "connected")
        status.address = address
        status.state = "connected"
        status.lastConnectedMilliseconds = SystemWallClock().nowMilliseconds()
        status.lastError = nil
        self.status = status
        await saveStatus()
        logger.info("session open", metadata: ["capabilities": "\(capabilities.sorted())", "dialer": "\(isDialer)"])
    }

    private func failPending() {
        hasEnded = true
        jobQueue.finish()
        requests.failAll(CancellationError())
        reconcileReplies.failAll(CancellationError())
        for (_, waiter) in ackWaiters { waiter.continuation.resume(throwing: CancellationError()) }
        ackWaiters = [:]
    }

    private func finish() async {
        await log.reconcileEnd(prefix: "\(connection)/")
        status?.state = "disconnected"
        if let failure { status?.lastError = "\(failure)" }
        await saveStatus()
        await node.unregister(self)
    }

    /// Ends the session because a job failed: records why and closes the channel, which ends
    /// the reader loop.
    private func abort(_ error: any Error) {
        guard failure == nil, !(error is CancellationError) else { return }
        failure = error
        close()
    }

    private func start(_ job: @escaping Job) { jobQueue.yield(job) }

    private func runJobs() async {
        await withDiscardingTaskGroup { group in
            for await job in jobs {
                group.addTask {
                    do { try await job() } catch { await self.abort(error) }
                }
            }
        }
    }

    private func keepAlive() async throws {
        var nonce: UInt64 = 0
        while true {
            try await Task.sleep(for: config.idleTimeout / 3)
            nonce += 1
            try await sender.enqueue(.ping(nonce))
            await saveStatus()
        }
    }

    /// The dialer runs an anti-entropy round every interval (±20%); the first one follows the
    /// first heads exchange (see ``onHeads(_:)``).
    private func periodicReconciliation() async throws {
        guard isDialer else { return }
        while true {
            try await Task.sleep(for: config.reconcileInterval.jittered(0.2))
            try await reconcileRound()
        }
    }

    // MARK: - Dispatch

    private func handle(_ message: SyncMessage) async throws {
        switch message {
        case .hello:
            throw SessionError.unexpectedMessage("a second hello")
        case .heads(let tips):
            start { try await self.onHeads(tips) }
        case .fetch(let request, let wants, let haves):
            start { try await self.serveFetch(request, wants: wants, haves: haves) }
        case .entries(let stream, let batch, let entries):
            try await receive(entries, stream: stream, batch: batch)
        case .ack(let stream, let batch):
            acknowledge(stream: stream, batch: batch)
        case .done(let request, let outcome):
            if let ids = needsInFlight.removeValue(forKey: request) { requestedParents.subtract(ids) }
            requests.complete(request, with: outcome)
        case .need(let request, let ids):
            start { try await self.serveNeed(request, ids: ids) }
        case .reconcile(let session, true, let query):
            // A round trip counts on both sides: a node that only accepts peers answers rounds.
            metrics.reconcileRounds.increment()
            metrics.reconcileBytesReceived.increment(by: Int64(query.count))
            let reply = try await log.reconcileRespond("\(connection)/r\(session)", message: query, maxRounds: config.reconcileMaxRounds)
            metrics.reconcileBytesSent.increment(by: Int64(reply.count))
            try await sender.enqueue(.reconcile(session: session, fromInitiator: false, reply))
        case .reconcile(let session, false, let reply):
            guard reconcileReplies.isExpected(session) else { throw SessionError.unexpectedMessage("reconcile reply for session \(session)") }
            metrics.reconcileBytesReceived.increment(by: Int64(reply.count))
            reconcileReplies.complete(session, with: reply)
        case .reconcileRequest:
            start { try await self.reconcileRound() }
        case .ping(let nonce):
            try await sender.enqueue(.pong(nonce))
        case .pong:
            break
        case .bye(let reason):
            logger.info("peer closed the session", metadata: ["reason": "\(reason)"])
            close()
        }
    }

    // MARK: - Heads and delta fetch

    private func sendHeads() async throws {
        let heads = try await log.heads()
        try await sender.enqueue(.heads(heads.map { .init(id: $0.id, hlc: $0.hlc) }))
    }

    /// The fast path. Heads older than the newest this peer ever showed mean it was restored
    /// from an old copy: its heads say nothing about what it lacks, so reconcile the sets at
    /// once. Heads unknown here mean the peer has entries this node lacks: fetch them.
    private func onHeads(_ tips: [SyncMessage.Tip]) async throws {
        let first = firstHeads
        firstHeads = false
        defer { if first && isDialer { start { try await self.reconcileRound() } } }
        known.insert(tips.map(\.id))
        let newest = tips.map(\.hlc).max()
        let lastSeen = status?.headsHLC
        status?.headsHLC = newest
        if let newest, let lastSeen, newest < lastSeen {
            logger.notice("peer's heads are older than it showed before (restored from a backup?): reconciling sets")
            metrics.reconcileFallback("restored")
            return try await reconcileRound()
        }
        let applied = try await log.appliedIDs(among: tips.map(\.id))
        let unknown = tips.map(\.id).filter { !applied.contains($0) }
        guard !unknown.isEmpty else { return await markSynced() }
        await noteLag(entries: unknown.count, exact: false, oldest: tips.filter { !applied.contains($0.id) }.map(\.hlc.wallMilliseconds).min())
        guard capabilities.contains(Self.deltaCapability) else {
            metrics.reconcileFallback("no_delta")
            return try await reconcileRound()
        }
        activeWork += 1
        defer { activeWork -= 1 }
        let request = newRequestID()
        requests.expect(request)
        try await sender.enqueue(.fetch(request: request, wants: unknown, haves: try await log.haveSample()))
        switch try await requests.wait(for: request) {
        case .complete:
            metrics.fetch("complete")
            await markSynced()
        case .tooLarge:
            metrics.fetch("too_large")
            metrics.reconcileFallback("too_large")
            try await reconcileRound()
        }
    }

    private func serveFetch(_ request: UInt32, wants: [Hash32], haves: [Hash32]) async throws {
        activeWork += 1
        defer { activeWork -= 1 }
        switch try await log.delta(wants: wants, haves: haves, limit: config.deltaLimit) {
        case .tooLarge:
            try await sender.enqueue(.done(request: request, outcome: .tooLarge))
            return
        case .entries(let ids):
            var batch: UInt32 = 0
            for start in stride(from: 0, to: ids.count, by: config.batchEntries) {
                let chunk = Array(ids[start..<min(start + config.batchEntries, ids.count)])
                try await sendBatches(try await log.rawEntries(chunk), stream: request, batch: &batch)
            }
        case .everything:
            var batch: UInt32 = 0
            var seq: Int64 = 0
            let end = try await log.lastSeq()
            while seq < end {
                let (entries, last) = try await log.rawEntries(afterSeq: seq, limit: config.batchEntries)
                if entries.isEmpty { break }
                try await sendBatches(entries, stream: request, batch: &batch)
                seq = last
            }
        }
        try await endStream(request)
    }

    private func serveNeed(_ request: UInt32, ids: [Hash32]) async throws {
        activeWork += 1
        defer { activeWork -= 1 }
        var batch: UInt32 = 0
        try await sendBatches(parentsFirst(try await log.rawEntries(ids)), stream: request, batch: &batch)
        try await endStream(request)
    }

    // MARK: - Streams with acknowledgements

    /// Sends entries as batches of at most `batchEntries` entries and about `batchBytes` bytes,
    /// waiting whenever more than `window` batches are unacknowledged.
    private func sendBatches(_ entries: [RawEntry], stream: UInt32, batch: inout UInt32) async throws {
        var pending: [RawEntry] = []
        var bytes = 0
        for entry in entries {
            pending.append(entry)
            bytes += entry.body.count + (entry.value?.count ?? 0) + 110
            if pending.count >= config.batchEntries || bytes >= config.batchBytes {
                batch += 1
                try await sendBatch(pending, stream: stream, batch: batch)
                pending = []
                bytes = 0
            }
        }
        if !pending.isEmpty {
            batch += 1
            try await sendBatch(pending, stream: stream, batch: batch)
        }
    }

    private func sendBatch(_ entries: [RawEntry], stream: UInt32, batch: UInt32) async throws {
        try await sender.enqueue(.entries(stream: stream, batch: batch, entries))
        known.insert(entries.compactMap(\.claimedID))
        metrics.entriesSent.increment(by: Int64(entries.count))
        metrics.peerTraffic(peerLabel, sent: entries.count)
        status?.entriesSent += Int64(entries.count)
        if batch > UInt32(config.window) { try await waitForAck(stream: stream, batch: batch - UInt32(config.window)) }
    }

    private func endStream(_ stream: UInt32) async throws {
        acked[stream] = nil
        try await sender.enqueue(.done(request: stream, outcome: .complete))
    }

    private func waitForAck(stream: UInt32, batch: UInt32) async throws {
        if acked[stream, default: 0] >= batch { return }
        if hasEnded || Task.isCancelled { throw CancellationError() }
        try await withCheckedThrowingContinuation { ackWaiters[stream] = (batch, $0) }
    }

    private func acknowledge(stream: UInt32, batch: UInt32) {
        acked[stream] = max(acked[stream, default: 0], batch)
        if let waiter = ackWaiters[stream], batch >= waiter.batch {
            ackWaiters[stream] = nil
            waiter.continuation.resume()
        }
    }

    // MARK: - Receiving entries

    /// Inserts a batch in one transaction, acknowledges it once committed, and asks for the
    /// parents of any entry that arrived before them. Entries no honest node would relay (bad
    /// signature, wrong id, malformed) end the session after the batch is accounted for.
    private func receive(_ entries: [RawEntry], stream: UInt32, batch: UInt32) async throws {
        let report = try await log.insert(entries)
        known.insert(entries.compactMap(\.claimedID))
        metrics.entriesReceived.increment(by: Int64(report.applied.count))
        metrics.peerTraffic(peerLabel, received: report.applied.count)
        metrics.entriesQuarantined.increment(by: Int64(report.quarantined.count))
        status?.entriesReceived += Int64(report.applied.count)
        status?.entriesRejected += Int64(report.rejected.count)
        for (index, reason) in report.rejected {
            metrics.rejected(reason.label)
            logger.warning("entry refused", metadata: ["reason": "\(reason)", "index": "\(index)"])
        }
        if stream != 0 { try await sender.enqueue(.ack(stream: stream, batch: batch)) }
        if let hostile = report.rejected.first(where: { $0.reason.isProofOfMalice }) {
            throw SessionError.hostileEntries(hostile.reason.label)
        }
        if stream == 0, !report.applied.isEmpty, let last = entries.last, let entry = try? SignedEntry(bodyBytes: last.body, signature: last.signature) {
            let latency = Int64(SystemWallClock().nowMilliseconds()) - Int64(entry.hlc.wallMilliseconds)
            if latency >= 0 { metrics.pushLatency.recordMilliseconds(latency) }
        }
        if !report.applied.isEmpty { await node.noteReceived(report.applied.count) }
        await lagAfterReceiving(entries, applied: report.applied.count, stream: stream, orphans: !report.orphaned.isEmpty)
        if !report.orphaned.isEmpty { try await requestMissingParents() }
    }

    /// Asks this peer for the entries orphans are waiting for (it sent their children, so it
    /// holds them), once per id while a request is in flight.
    private func requestMissingParents() async throws {
        let missing = try await log.missingParents(limit: 2000).filter { !requestedParents.contains($0) }
        guard !missing.isEmpty else { return }
        requestedParents.formUnion(missing)
        let request = newRequestID()
        needsInFlight[request] = missing
        try await sender.enqueue(.need(request: request, missing))
    }

    // MARK: - Anti-entropy

    /// One Negentropy V1 session as initiator over the `(hlc, id)` index, then fetches what the
    /// peer has (`need`) and streams what it lacks (`have`). One at a time per peer.
    func reconcileRound() async throws {
        guard capabilities.contains(Self.reconcileCapability), !reconciling else { return }
        reconciling = true
        activeWork += 1
        defer {
            reconciling = false
            activeWork -= 1
        }
        let session = nextReconcileID
        nextReconcileID += 1
        let key = "\(connection)/i\(session)"
        var message = try await log.reconcileInitiate(key, frameSizeLimit: config.reconcileFrameLimit, maxRounds: config.reconcileMaxRounds)
        var have: [Hash32] = [], need: [Hash32] = []
        while true {
            reconcileReplies.expect(session)
            metrics.reconcileRounds.increment()
            metrics.reconcileBytesSent.increment(by: Int64(message.count))
            try await sender.enqueue(.reconcile(session: session, fromInitiator: true, message))
            let reply = try await reconcileReplies.wait(for: session)
            let result = try await log.reconcileContinue(key, reply: reply)
            have += result.have
            need += result.need
            guard let next = result.next else { break }
            message = next
        }
        await noteLag(entries: need.count, exact: true, oldest: status?.lagOldestMilliseconds)
        for start in stride(from: 0, to: need.count, by: 10_000) {
            let request = newRequestID()
            requests.expect(request)
            try await sender.enqueue(.need(request: request, Array(need[start..<min(start + 10_000, need.count)])))
            _ = try await requests.wait(for: request)
        }
        if !have.isEmpty {
            let stream = nextStreamID
            nextStreamID &+= 1
            var batch: UInt32 = 0
            try await sendBatches(parentsFirst(try await log.rawEntries(have)), stream: stream, batch: &batch)
            try await endStream(stream)
        }
        logger.debug("reconciled", metadata: ["have": "\(have.count)", "need": "\(need.count)"])
        await markSynced()
    }

    // MARK: - Live push

    /// Which of `ids` a push to this peer would carry.
    func lacking(_ ids: [Hash32]) -> [Hash32] {
        guard identity != nil, capabilities.contains(Self.pushCapability) else { return [] }
        return ids.filter { !known.contains($0) }
    }

    /// Sends new local entries the peer is not known to hold. A peer too slow to take them
    /// loses the push (its queue is bounded); the next anti-entropy round repairs it.
    func push(_ entries: [RawEntry]) async {
        let lacking = Set(lacking(entries.compactMap(\.claimedID)))
        let fresh = entries.filter { $0.claimedID.map(lacking.contains) ?? false }
        guard !fresh.isEmpty else { return }
        guard await sender.queuedBytes < config.maxQueuedBytes else {
            logger.notice("peer is slow; skipping a push, anti-entropy will repair")
            return
        }
        known.insert(fresh.compactMap(\.claimedID))
        metrics.entriesSent.increment(by: Int64(fresh.count))
        metrics.peerTraffic(peerLabel, sent: fresh.count)
        status?.entriesSent += Int64(fresh.count)
        do { try await sender.enqueue(.entries(stream: 0, batch: 0, fresh)) } catch { abort(error) }
    }

    /// Says `bye` and closes the connection (a duplicate the node does not keep).
    func terminate(_ reason: String) async {
        try? await sender.send(.bye(reason))
        close()
    }

    // MARK: - Helpers

    private func newRequestID() -> UInt32 {
        defer { nextRequestID = nextRequestID % 0x7FFF_FFFF + 1 }
        return nextRequestID
    }

    private func markSynced() async {
        status?.lastSyncMilliseconds = SystemWallClock().nowMilliseconds()
        await noteLag(entries: 0, exact: true, oldest: nil, save: false)
        await saveStatus()
    }

    // MARK: - Lag: how far this node is behind the peer

    /// The peer in metric labels: the first 16 hex digits of its node key.
    private var peerLabel: String { identity.map { String($0.hex.prefix(16)) } ?? "unknown" }

    /// Records what this node now knows it lacks from the peer: in the per-peer gauges, and in
    /// peer_status (saved when the lag clears, else at most once a second from here).
    private func noteLag(entries: Int, exact: Bool, oldest: UInt64?, save: Bool = true) async {
        guard status != nil else { return }
        let cleared = entries == 0 && (status?.lagEntries ?? 0) > 0
        status?.lagEntries = Int64(entries)
        status?.lagIsLowerBound = entries > 0 && !exact
        status?.lagOldestMilliseconds = entries > 0 ? oldest : nil
        let now = SystemWallClock().nowMilliseconds()
        let seconds = Double(status?.lagMilliseconds(now: now) ?? 0) / 1000
        metrics.peerLag(peerLabel, entries: entries, seconds: seconds)
        if save, cleared || now >= lagSavedAt + 1000 {
            lagSavedAt = now
            await saveStatus()
        }
    }

    /// After a batch: entries streamed for this node's own request (fetch, need) come parents
    /// first, so what it still lacks is newer than the batch's last entry, and at least one
    /// entry (the request's `done` clears the lag). A push that left no orphan leaves nothing
    /// lacking when no request is in flight.
    private func lagAfterReceiving(_ entries: [RawEntry], applied: Int, stream: UInt32, orphans: Bool) async {
        let last = entries.last.flatMap { try? SignedEntry(bodyBytes: $0.body, signature: $0.signature) }?.hlc.wallMilliseconds
        let lacking = Int(status?.lagEntries ?? 0)
        let exact = !(status?.lagIsLowerBound ?? false)
        if stream == 0 {
            if !orphans && activeWork == 0 && lacking > 0 { await noteLag(entries: 0, exact: true, oldest: nil) }
        } else if stream < 0x8000_0000 {
            // Still at least one: the request's `done` says when nothing is left.
            await noteLag(entries: max(lacking - applied, 1), exact: exact && lacking - applied >= 1, oldest: last ?? status?.lagOldestMilliseconds)
        } else if applied > 0, lacking > 0 {
            await noteLag(entries: max(lacking - applied, 0), exact: exact, oldest: last ?? status?.lagOldestMilliseconds)
        }
    }

    private func saveStatus() async {
        guard let status else { return }
        do { try await log.savePeerStatus(status) } catch { logger.warning("could not save peer status: \(error)") }
    }
}

/// Entries sorted by HLC, which puts parents before children (an entry's HLC is above its
/// parents').
func parentsFirst(_ entries: [RawEntry]) -> [RawEntry] {
    entries.map { (entry: $0, hlc: (try? SignedEntry(bodyBytes: $0.body, signature: $0.signature))?.hlc.rawValue ?? 0) }
        .sorted { $0.hlc < $1.hlc }
        .map(\.entry)
}

extension RejectReason {
    /// Whether only a broken or hostile peer could have sent the entry: honest nodes verify
    /// everything they store, so they never relay these.
    var isProofOfMalice: Bool {
        switch self {
        case .malformed, .idMismatch, .badSignature, .valueMismatch, .unexpectedValue, .foreignGenesis, .hlcNotAboveParent,
             .mergeDecisionsMismatch: true
        default: false
        }
    }
}

/// Replies this side is waiting for, by request number. A reply may arrive before its waiter
/// starts waiting (the session actor is reentrant), so it is kept until then. Confined to the
/// session actor: ``wait(for:isolation:)`` runs on the caller's actor.
final class PendingReplies<Value: Sendable> {
    private var expected = Set<UInt32>()
    private var arrived: [UInt32: Value] = [:]
    private var waiters: [UInt32: CheckedContinuation<Value, any Error>] = [:]
    /// Set once the session ends: later waits fail at once.
    private var closed = false

    func expect(_ id: UInt32) { expected.insert(id) }

    func isExpected(_ id: UInt32) -> Bool { expected.contains(id) }

    func complete(_ id: UInt32, with value: Value) {
        guard expected.remove(id) != nil else { return }
        if let waiter = waiters.removeValue(forKey: id) { waiter.resume(returning: value) } else { arrived[id] = value }
    }

    func wait(for id: UInt32, isolation: isolated (any Actor)? = #isolation) async throws -> Value {
        if let value = arrived.removeValue(forKey: id) { return value }
        try Task.checkCancellation()
        if closed { throw CancellationError() }
        return try await withCheckedThrowingContinuation { waiters[id] = $0 }
    }

    func failAll(_ error: any Error) {
        closed = true
        for waiter in waiters.values { waiter.resume(throwing: error) }
        waiters = [:]
        expected = []
    }
}

/// A bounded set of recently seen ids; the oldest are forgotten first.
struct RecentIDs {
    private var members = Set<Hash32>()
    private var order: [Hash32] = []
    private var next = 0
    let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    func contains(_ id: Hash32) -> Bool { members.contains(id) }

    mutating func insert(_ ids: some Sequence<Hash32>) {
        for id in ids where members.insert(id).inserted {
            if order.count < capacity {
                order.append(id)
            } else {
                members.remove(order[next])
                order[next] = id
                next = (next + 1) % capacity
            }
        }
    }
}
