import CairnCore
import CairnStore
import Cairn
import CairnReconcile
import Logging
import NIOCore

/// The driver of one encrypted session with one peer, after the Noise handshake: it carries
/// out what the session's ``PeerSessionStateMachine`` decides — sending, storing, serving,
/// reconciling — and feeds it what arrives.
///
/// One reader loop (``run(receiver:)``) hands the peer's messages to the machine in order and
/// performs its actions; entry batches are inserted inline (one transaction each, acknowledged
/// after commit), so a sender can never run more than `window` batches ahead. One writer
/// sends every outgoing message in the order it was queued (an `AsyncStream`: Noise nonces must
/// reach the peer in order). Anything long (serving a fetch, a reconciliation round, answering
/// heads) runs as a job beside the reader so acks and replies keep flowing; jobs ask the
/// machine for their ids and report to it, and wait (for a reply, an ack, a turn) here.
actor PeerSession {
    typealias Job = @Sendable () async throws -> Void

    static let protocolVersion = PeerSessionStateMachine.protocolVersion
    static let deltaCapability = "delta-fetch/1"
    static let pushCapability = "push/1"
    static let reconcileCapability = "rbsr-negentropy-v1"
    /// The initiator ends each reconciliation round with an empty message (a peer without it
    /// would take that message for a malformed one).
    static let roundEndCapability = "rbsr-round-end/1"
    /// Values above ``chunkThreshold`` travel in `value-chunk` messages after their batch (a
    /// peer without it gets them inline if they fit a message, else not at all).
    static let valueChunkCapability = "value-chunks/1"
    static let capabilities = [deltaCapability, pushCapability, reconcileCapability, roundEndCapability, valueChunkCapability]
    /// What a node without the fast path offers (reconciliation only).
    static let reconcileOnlyCapabilities = [reconcileCapability, roundEndCapability, valueChunkCapability]
    /// Values longer than this go in chunks of this size (to peers offering `value-chunks/1`).
    static let chunkThreshold = WireLimits.valueChunk
    /// The largest value sent inline to a peer without `value-chunks/1`: it must fit in a
    /// message of the default `maxMessageBytes` (32 MiB) with the rest of its batch (< 1 MiB).
    static let legacyInlineValueLimit = 30 << 20
    /// How much of a large value the sender reads from SQLite at a time (sent as 1 MiB chunks).
    static let valueReadPiece = 4 << 20
    /// How a `bye` that refuses the peer starts.
    static let refusal = "refused:"

    let connection: Int
    let isDialer: Bool
    let address: String
    private let node: SyncNode
    private let log: CairnLog
    private let config: SyncConfiguration
    private let metrics: SyncMetrics
    private var logger: Logger
    private let sender: FrameSender
    private let close: @Sendable () -> Void

    /// The protocol state: phases, streams, rounds, what the peer holds.
    private var machine: PeerSessionStateMachine
    /// Whether the node registered this session (so it must unregister it at the end).
    private var registered = false
    private let requests = PendingReplies<SyncMessage.FetchOutcome>()
    private let reconcileReplies = PendingReplies<[UInt8]>()
    private var ackWaiters: [StreamID: (batch: UInt32, continuation: CheckedContinuation<Void, any Error>)] = [:]
    /// Turns for sending chunked values (one at a time per session, in the order asked for):
    /// the receiver then holds at most one partial value from this node.
    private var turnsIssued = 0
    private var turnsDone = 0
    private var turnWaiters: [Int: CheckedContinuation<Void, Never>] = [:]
    /// Pushes handed to a job (they carry large values, or follow one that does): later
    /// pushes queue behind them so stream 0 keeps its order.
    private var pushJobs = 0
    /// Fetches, streams and reconciliation rounds in progress (the node waits for zero before merging).
    private(set) var activeWork = 0
    private var status: PeerStatus?
    /// When ``noteLag(entries:exact:oldest:save:)`` last saved the status (wall ms).
    private var lagSavedAt: UInt64 = 0
    private var failure: (any Error)?
    private var hasEnded = false
    /// Messages read and not yet processed; the reader waits in ``roomWaiter`` at ``readAhead``.
    private var unprocessed = 0
    private var roomWaiter: CheckedContinuation<Void, Never>?
    private var processorStopped = false
    private let jobs: AsyncStream<Job>
    private let jobQueue: AsyncStream<Job>.Continuation
    /// What the writer sends, in order; messages are numbered so a job can wait for one to be
    /// written, and their (approximate) bytes count against ``SyncConfiguration/maxQueuedBytes``.
    private let outbox: AsyncStream<Queued>
    private let outboxInput: AsyncStream<Queued>.Continuation
    private var queuedCount = 0
    private var writtenCount = 0
    private var queuedBytes = 0
    private var writeWaiters: [(number: Int, continuation: CheckedContinuation<Void, any Error>)] = []
    /// Set once the writer has stopped (the channel failed or the outbox ended): nothing queued
    /// will be written any more, so nobody may wait for it.
    private var writerStopped = false

    /// A message waiting for the writer.
    private struct Queued: Sendable {
        let message: SyncMessage
        let number: Int
        let bytes: Int
    }

    init(
        connection: Int, isDialer: Bool, address: String, remoteStatic: [UInt8], pinned: PublicKey?,
        node: SyncNode, sender: FrameSender, close: @escaping @Sendable () -> Void
    ) {
        self.connection = connection
        self.isDialer = isDialer
        self.address = address
        self.node = node
        self.log = node.log
        self.config = node.configuration
        self.metrics = node.metrics
        self.logger = node.logger
        self.logger[metadataKey: "peer"] = "\(address)"
        self.sender = sender
        self.close = close
        self.machine = PeerSessionStateMachine(
            isDialer: isDialer, logID: node.log.logID, nodeKey: node.log.nodeKey, remoteStatic: remoteStatic, pinned: pinned,
            offered: node.configuration.fastPath ? Self.capabilities : Self.reconcileOnlyCapabilities, window: node.configuration.window)
        (jobs, jobQueue) = AsyncStream.makeStream(of: Job.self)
        (outbox, outboxInput) = AsyncStream.makeStream(of: Queued.self)
    }

    var isBusy: Bool { activeWork > 0 }

    /// The peer's node key, once its hello checked out.
    var identity: PublicKey? { machine.identity }

    // MARK: - Running

    /// Exchanges hellos, then handles the peer's messages until it leaves, fails or the task is
    /// cancelled. Throws the reason the session ended on the peer's fault.
    nonisolated func run(receiver: inout FrameReceiver) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await self.write() }
            var ended: (any Error)?
            do {
                await self.sendHello()
                guard let hello = try await receiver.next() else { throw SessionError.unexpectedMessage("expected a hello first") }
                try await self.handle(hello)
                try await self.readLoop(&receiver, group: &group)
            } catch {
                ended = error
            }
            // Jobs waiting for a reply, an ack, a turn or a write would wait forever now: fail
            // them so the task group can finish.
            await self.failPending()
            await self.finish()
            group.cancelAll()
            if let failure = await self.failure ?? ended { throw failure }
        }
    }

    /// Handles messages until the peer leaves; jobs, pings and periodic rounds run beside it.
    ///
    /// The reader decrypts and decodes, and starts checking each batch's signatures (off the
    /// log) as soon as it arrives; the processor hands messages to the machine in order. So
    /// batch N+1 is checked while batch N is applied — the reader stays at most
    /// ``readAhead`` messages ahead, which bounds what it holds.
    private nonisolated func readLoop(_ receiver: inout FrameReceiver, group: inout ThrowingTaskGroup<Void, any Error>) async throws {
        group.addTask { await self.runJobs() }
        group.addTask { try await self.keepAlive() }
        group.addTask { try await self.periodicReconciliation() }
        await self.start { try await self.sendHeads() }
        let (incoming, input) = AsyncStream.makeStream(of: Incoming.self)
        try await withTaskCancellationHandler {
            try await withThrowingTaskGroup(of: Void.self) { stages in
                stages.addTask { try await self.process(incoming) }
                while let message = try await receiver.next() {
                    guard await self.readAhead(Incoming(message, log: self.log), into: input) else { break }
                }
                input.finish()
                try await stages.waitForAll()
            }
        } onCancel: {
            input.finish()
            self.close()
        }
    }

    /// Messages the reader may be ahead of the processor.
    static let readAhead = 2

    /// A message read, with its batch's check already started.
    private struct Incoming: Sendable {
        let message: SyncMessage
        let verified: Task<VerifiedBatch, Never>?

        init(_ message: SyncMessage, log: CairnLog) {
            self.message = message
            // A batch waiting for its chunked value is checked when the value is complete.
            guard case .entries(_, _, let entries, nil) = message else {
                verified = nil
                return
            }
            verified = Task { await log.verified(entries) }
        }
    }

    /// Queues a message for the processor; waits while the reader is ``readAhead`` messages
    /// ahead. Returns `false` once the processor has stopped.
    private func readAhead(_ item: Incoming, into input: AsyncStream<Incoming>.Continuation) async -> Bool {
        guard !processorStopped else { return false }
        input.yield(item)
        unprocessed += 1
        if unprocessed >= Self.readAhead { await withCheckedContinuation { roomWaiter = $0 } }
        return !processorStopped
    }

    /// The processor: each message to the machine, in order, and its actions carried out.
    private func process(_ incoming: AsyncStream<Incoming>) async throws {
        defer {
            processorStopped = true
            makeRoom()
        }
        do {
            for await item in incoming {
                try await perform(machine.receive(item.message), verified: item.verified)
                unprocessed -= 1
                makeRoom()
            }
        } catch {
            // The reader may be waiting for a peer that has nothing more to say: hang up.
            abort(error)
            throw error
        }
    }

    private func makeRoom() {
        guard processorStopped || unprocessed < Self.readAhead, let waiter = roomWaiter else { return }
        roomWaiter = nil
        waiter.resume()
    }

    private func sendHello() { enqueue(machine.hello) }

    private func handle(_ message: SyncMessage) async throws {
        try await perform(machine.receive(message))
    }

    /// Carries out the machine's actions in order; `verified` is the check of the message's
    /// batch, if already started. A close for the peer's fault throws it, which ends the
    /// processor (or the job) at once.
    private func perform(_ actions: [PeerSessionStateMachine.Action], verified: Task<VerifiedBatch, Never>? = nil) async throws {
        for action in actions {
            switch action {
            case .send(let message): enqueue(message)
            case .admit(let key): try await admit(key)
            case .apply(let entries, let stream, let batch): try await receive(entries, stream: stream, batch: batch, verified: verified)
            case .answerHeads(let tips, let first): start { try await self.onHeads(tips, first: first) }
            case .serveFetch(let request, let wants, let haves): start { try await self.serveFetch(request, wants: wants, haves: haves) }
            case .serveNeed(let request, let ids): start { try await self.serveNeed(request, ids: ids) }
            case .startRound: start { try await self.reconcileRound() }
            case .respond(let round, let query): try await respond(to: query, round: round)
            case .forgetResponder(let round): await log.reconcileForget("\(connection)/r\(round)")
            case .completeRequest(let request, let outcome): requests.complete(request, with: outcome)
            case .deliverReply(let round, let reply):
                metrics.reconcileBytesReceived.increment(by: Int64(reply.count))
                reconcileReplies.complete(round, with: reply)
            case .acknowledged(let stream, let batch):
                if let waiter = ackWaiters[stream], batch >= waiter.batch {
                    ackWaiters[stream] = nil
                    waiter.continuation.resume()
                }
            case .findMissingParents: try await perform(machine.parentsMissing(try await log.missingParents(limit: 2000)))
            case .countRejected(let reason): metrics.rejected(reason.label)
            case .peerLeft(let reason): logger.info("peer closed the session", metadata: ["reason": "\(reason)"])
            case .close(let reason):
                close()
                guard let reason else { return }
                if failure == nil { failure = reason }
                throw reason
            }
        }
    }

    /// Admits the peer whose hello checked out: the inbound policy (holding the network secret
    /// is not enough to connect), then the node's registry (one session per peer).
    private func admit(_ key: PublicKey) async throws {
        if !isDialer, !(await node.admits(key)) {
            await say(.bye("\(Self.refusal) node key not allowed by the inbound policy"))
            throw SessionError.notAllowed(key)
        }
        logger[metadataKey: "peer"] = "\(key.hex.prefix(12))@\(address)"
        guard await node.register(self, identity: key) else {
            await say(.bye("duplicate connection"))
            throw SessionError.duplicateConnection
        }
        registered = true
        var status = try await log.peerStatus(identity: key) ?? PeerStatus(identity: key, address: address, state: "connected")
        status.address = address
        status.state = "connected"
        status.lastConnectedMilliseconds = SystemWallClock().nowMilliseconds()
        status.lastError = nil
        self.status = status
        await saveStatus()
        logger.info("session open", metadata: ["capabilities": "\(machine.capabilities.sorted())", "dialer": "\(isDialer)"])
    }

    private func failPending() {
        hasEnded = true
        _ = machine.close(nil)
        jobQueue.finish()
        outboxInput.finish()
        requests.failAll(CancellationError())
        reconcileReplies.failAll(CancellationError())
        for (_, waiter) in ackWaiters { waiter.continuation.resume(throwing: CancellationError()) }
        ackWaiters = [:]
        for (_, waiter) in turnWaiters { waiter.resume() }
        turnWaiters = [:]
        for waiter in writeWaiters { waiter.continuation.resume(throwing: CancellationError()) }
        writeWaiters = []
    }

    private func finish() async {
        await log.reconcileEnd(prefix: "\(connection)/")
        guard registered, let identity else { return }
        if !machine.held.isEmpty { await node.noteHeld(machine.held, by: identity) }
        status?.state = "disconnected"
        if let failure { status?.lastError = describe(failure) }
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

    /// Pings the peer every third of the idle timeout; the machine drops a peer it heard
    /// nothing from for a whole idle timeout.
    private func keepAlive() async throws {
        while true {
            try await node.clock.sleep(for: config.idleTimeout / 3)
            try await perform(machine.timerFired(.keepAlive))
            await saveStatus()
        }
    }

    /// The dialer runs an anti-entropy round every interval (±20%); the first one follows the
    /// first heads exchange (see ``onHeads(_:first:)``).
    private func periodicReconciliation() async throws {
        guard isDialer else { return }
        while true {
            try await node.clock.sleep(for: config.reconcileInterval.jittered(0.2))
            try await perform(machine.timerFired(.reconcile))
        }
    }

    // MARK: - Writing

    /// Queues a message for the writer; returns its number (for ``waitWritten(_:)``).
    @discardableResult
    private func enqueue(_ message: SyncMessage) -> Int {
        queuedCount += 1
        let queued = Queued(message: message, number: queuedCount, bytes: message.approximateBytes)
        queuedBytes += queued.bytes
        outboxInput.yield(queued)
        return queued.number
    }

    /// Waits until message `number` was handed to the socket.
    private func waitWritten(_ number: Int) async throws {
        if writtenCount >= number { return }
        if hasEnded || writerStopped { throw CancellationError() }
        try await withCheckedThrowingContinuation { writeWaiters.append((number, $0)) }
    }

    /// Sends a message and waits until it is written (a `bye` before hanging up); a session
    /// that is ending may not get it out.
    private func say(_ message: SyncMessage) async {
        try? await waitWritten(enqueue(message))
    }

    private func wrote(_ queued: Queued) {
        writtenCount = queued.number
        queuedBytes -= queued.bytes
        let due = writeWaiters.filter { $0.number <= writtenCount }
        writeWaiters.removeAll { $0.number <= writtenCount }
        for waiter in due { waiter.continuation.resume() }
    }

    /// The one writer: encrypts and writes each queued message in order. A failed write (the
    /// peer went away) closes the channel, which ends the reader.
    private nonisolated func write() async {
        do {
            for await queued in outbox {
                try await sender.send(queued.message)
                await wrote(queued)
            }
        } catch {
            close()
        }
        await stopWriting()
    }

    /// The writer is gone: a `say` waiting for its message (a `bye` while the peer also hung
    /// up) would otherwise wait forever, holding the session — and a node stopping — with it.
    private func stopWriting() {
        writerStopped = true
        for waiter in writeWaiters { waiter.continuation.resume(throwing: CancellationError()) }
        writeWaiters = []
    }

    // MARK: - Heads and delta fetch

    private func sendHeads() async throws {
        let heads = try await log.heads()
        enqueue(.heads(heads.map { .init(id: $0.id, hlc: $0.hlc) }))
    }

    /// The fast path. A peer restored from an old copy no longer holds entries it held
    /// before: its heads say nothing about what it lacks, so reconcile the sets at once. It shows
    /// as heads older than the newest it ever showed, or — even when it wrote since — as heads
    /// that do not descend from entries it was known to hold (see ``lacksHeldEntries(_:tips:)``).
    /// Heads unknown here mean the peer has entries this node lacks: fetch them.
    private func onHeads(_ tips: [SyncMessage.Tip], first: Bool) async throws {
        defer { if first && isDialer { start { try await self.reconcileRound() } } }
        var previouslyHeld = HeldEntries()
        if first, let identity { previouslyHeld = await node.held(by: identity) }
        let newest = tips.map(\.hlc).max()
        let lastSeen = status?.headsHLC
        status?.headsHLC = newest
        if let newest, let lastSeen, newest < lastSeen {
            return try await reconcileRestored("the peer's heads are older than it showed before")
        }
        let applied = try await log.appliedIDs(among: tips.map(\.id))
        // A head quarantined here (stamped too far ahead) is held, not lacking: fetching it
        // again would only bring duplicates until the quarantine releases it.
        let quarantined = try await log.pendingIDs(among: tips.map(\.id).filter { !applied.contains($0) }).quarantined
        let unknown = tips.map(\.id).filter { !applied.contains($0) && !quarantined.contains($0) }
        if !unknown.isEmpty {
            await noteLag(entries: unknown.count, exact: false, oldest: tips.filter { unknown.contains($0.id) }.map(\.hlc.wallMilliseconds).min())
            guard machine.capabilities.contains(Self.deltaCapability) else {
                metrics.reconcileFallback("no_delta")
                return try await reconcileRound()
            }
            activeWork += 1
            defer { activeWork -= 1 }
            let request = machine.newRequest()
            requests.expect(request)
            enqueue(.fetch(request: request, wants: unknown, haves: try await log.haveSample()))
            switch try await requests.wait(for: request) {
            case .complete:
                metrics.fetch("complete")
            case .tooLarge:
                metrics.fetch("too_large")
                metrics.reconcileFallback("too_large")
                return try await reconcileRound()
            }
        }
        if try await lacksHeldEntries(previouslyHeld, tips: tips) {
            return try await reconcileRestored("the peer's heads do not descend from entries it held before")
        }
        await markSynced()
    }

    private func reconcileRestored(_ why: String) async throws {
        logger.notice("peer was restored from an old copy? reconciling sets", metadata: ["why": "\(why)"])
        metrics.reconcileFallback("restored")
        try await reconcileRound()
    }

    /// Whether the peer lacks an entry it was known to hold in an earlier session: such an
    /// entry is neither one of its heads nor an ancestor of one (a node's writes descend from
    /// everything it holds). Judged once the heads are here (after the fetch); a walk too long
    /// to finish within `deltaLimit` counts as lacking, which costs only a reconciliation.
    private func lacksHeldEntries(_ previous: HeldEntries, tips: [SyncMessage.Tip]) async throws -> Bool {
        let heads = Set(tips.map(\.id))
        let witnesses = previous.ids.filter { !heads.contains($0) }
        guard !witnesses.isEmpty, !heads.isEmpty else { return false }
        guard try await log.appliedIDs(among: Array(heads)).count == heads.count else { return false }
        switch try await log.delta(wants: witnesses, haves: Array(heads), limit: config.deltaLimit) {
        case .entries(let missing): return !missing.isEmpty
        case .everything, .tooLarge: return true
        }
    }

    private func serveFetch(_ request: UInt32, wants: [Hash32], haves: [Hash32]) async throws {
        activeWork += 1
        defer {
            activeWork -= 1
            machine.finishedServing(request)
        }
        let stream = StreamID(.theirs, request)
        switch try await log.delta(wants: wants, haves: haves, limit: config.deltaLimit) {
        case .tooLarge:
            enqueue(.done(request: request, outcome: .tooLarge))
            return
        case .entries(let ids):
            var batch: UInt32 = 0
            for start in stride(from: 0, to: ids.count, by: config.batchEntries) {
                let chunk = Array(ids[start..<min(start + config.batchEntries, ids.count)])
                try await sendBatches(try await log.outgoingEntries(chunk, inlineValueLimit: Self.chunkThreshold), stream: stream, batch: &batch)
            }
        case .everything:
            var batch: UInt32 = 0
            var seq: Int64 = 0
            let end = try await log.lastSeq()
            while seq < end {
                let (entries, last) = try await log.outgoingEntries(afterSeq: seq, limit: config.batchEntries, inlineValueLimit: Self.chunkThreshold)
                if entries.isEmpty { break }
                try await sendBatches(entries, stream: stream, batch: &batch)
                seq = last
            }
        }
        try await perform(machine.endStream(stream))
    }

    private func serveNeed(_ request: UInt32, ids: [Hash32]) async throws {
        activeWork += 1
        defer {
            activeWork -= 1
            machine.finishedServing(request)
        }
        let stream = StreamID(.theirs, request)
        var batch: UInt32 = 0
        try await sendBatches(parentsFirst(try await log.outgoingEntries(ids, inlineValueLimit: Self.chunkThreshold)), stream: stream, batch: &batch)
        try await perform(machine.endStream(stream))
    }

    // MARK: - Streams with acknowledgements

    /// Sends entries as batches of at most `batchEntries` entries and about `batchBytes` bytes,
    /// waiting whenever more than `window` batches are unacknowledged. An entry with a large
    /// value ends its batch (see ``transmit(_:stream:batch:turnHeld:)``).
    private func sendBatches(_ entries: [OutgoingEntry], stream: StreamID, batch: inout UInt32) async throws {
        var pending: [OutgoingEntry] = []
        var bytes = 0
        for entry in entries {
            pending.append(entry)
            bytes += entry.raw.body.count + (entry.raw.value?.count ?? 0) + Int(entry.largeValue?.length ?? 0) + 110
            if pending.count >= config.batchEntries || bytes >= config.batchBytes || entry.largeValue != nil {
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

    private func sendBatch(_ entries: [OutgoingEntry], stream: StreamID, batch: UInt32) async throws {
        let tip = entries.last.flatMap { entry in
            entry.raw.claimedID.flatMap { id in
                (try? SignedEntry(bodyBytes: entry.raw.body, signature: entry.raw.signature)).map { SyncMessage.Tip(id: id, hlc: $0.hlc) }
            }
        }
        machine.willSend(batch: batch, on: stream, tip: tip)
        try await transmit(entries, stream: stream.number, batch: batch, turnHeld: false)
        machine.willHold(entries.compactMap(\.raw.claimedID))
        metrics.entriesSent.increment(by: Int64(entries.count))
        metrics.peerTraffic(peerLabel, sent: entries.count)
        status?.entriesSent += Int64(entries.count)
        try await waitForWindow(stream, after: batch)
    }

    /// Sends one batch. A large value (at the batch's end) goes to a peer offering
    /// `value-chunks/1` as `value-chunk` messages right after the batch, read from SQLite a
    /// piece at a time, one chunked value per session at a time; to another peer inline if it
    /// fits a message, else the entry goes without it (such a peer cannot take it).
    private func transmit(_ entries: [OutgoingEntry], stream: UInt32, batch: UInt32, turnHeld: Bool) async throws {
        var raws = entries.map(\.raw)
        guard let large = entries.last?.largeValue else {
            enqueue(.entries(stream: stream, batch: batch, raws))
            return
        }
        let last = raws.count - 1
        guard machine.capabilities.contains(Self.valueChunkCapability) else {
            if Int(large.length) <= Self.legacyInlineValueLimit {
                raws[last].value = try await log.valueBytes(large.digest, offset: 0, count: Int(large.length))
            } else {
                logger.notice("peer does not take chunked values (no value-chunks/1): sending an entry without its value", metadata: [
                    "entry": "\(raws[last].claimedID?.shortHex() ?? "?")", "length": "\(large.length)",
                ])
            }
            enqueue(.entries(stream: stream, batch: batch, raws))
            return
        }
        var turn: Int?
        defer { if let turn { finishTurn(turn) } }
        if !turnHeld {
            let mine = takeTurn()
            turn = mine
            try await waitForTurn(mine)
        }
        enqueue(.entries(stream: stream, batch: batch, raws, chunked: .init(index: last, length: large.length)))
        try await sendChunks(of: large, stream: stream)
    }

    /// Streams a held value as `value-chunk` messages, reading `valueReadPiece` bytes at a time
    /// (incremental blob I/O) and waiting for each piece to reach the socket before reading
    /// the next, so a sender holds a few MiB of a value, never all of it.
    private func sendChunks(of value: ValueRef, stream: UInt32) async throws {
        let length = Int(value.length)
        var offset = 0
        while offset < length {
            let count = min(Self.valueReadPiece, length - offset)
            guard let piece = try await log.valueBytes(value.digest, offset: offset, count: count) else {
                // Purged mid-transfer: the peer cannot finish this batch; end the session (the
                // next one sends the entry without its value).
                throw ValueUnavailable(digest: value.digest)
            }
            var start = 0
            var last = 0
            while start < piece.count {
                let end = min(start + Self.chunkThreshold, piece.count)
                last = enqueue(.valueChunk(stream: stream, digest: value.digest, offset: UInt32(offset + start), Array(piece[start..<end])))
                start = end
            }
            try await waitWritten(last)
            offset += count
        }
    }

    private func takeTurn() -> Int {
        defer { turnsIssued += 1 }
        return turnsIssued
    }

    private func waitForTurn(_ turn: Int) async throws {
        if turnsDone < turn, !hasEnded { await withCheckedContinuation { turnWaiters[turn] = $0 } }
        if hasEnded || Task.isCancelled { throw CancellationError() }
    }

    /// Turns end in order (each waited for the one before), so the next one may start.
    private func finishTurn(_ turn: Int) {
        turnsDone = max(turnsDone, turn + 1)
        turnWaiters.removeValue(forKey: turnsDone)?.resume()
    }

    /// Waits until the window lets the batch after `batch` go (the machine wakes the waiter
    /// through ``PeerSessionStateMachine/Action/acknowledged(_:batch:)``).
    private func waitForWindow(_ stream: StreamID, after batch: UInt32) async throws {
        guard let needed = machine.mustWait(stream, after: batch) else { return }
        if hasEnded || Task.isCancelled { throw CancellationError() }
        // One sender per stream, and stream ids are unique: never a waiter to replace.
        try await withCheckedThrowingContinuation { ackWaiters[stream] = (needed, $0) }
    }

    // MARK: - Receiving entries

    /// Inserts a batch in one transaction and carries out what follows (the ack once committed,
    /// the end of the session for hostile entries, a `need` for missing parents). `verified`
    /// is its check, if the reader started it.
    private func receive(_ entries: [RawEntry], stream: UInt32, batch: UInt32, verified: Task<VerifiedBatch, Never>?) async throws {
        let checked = if let verified { await verified.value } else { await log.verified(entries) }
        let report = try await log.insert(verified: checked)
        metrics.entriesReceived.increment(by: Int64(report.applied.count))
        metrics.peerTraffic(peerLabel, received: report.applied.count)
        metrics.entriesQuarantined.increment(by: Int64(report.quarantined.count))
        status?.entriesReceived += Int64(report.applied.count)
        status?.entriesRejected += Int64(report.rejected.count)
        for (index, reason) in report.rejected {
            metrics.rejected(reason.label)
            logger.warning("entry refused", metadata: ["reason": "\(reason)", "index": "\(index)"])
        }
        try await perform(machine.applied(entries, report: report, stream: stream, batch: batch))
        if stream == 0, !report.applied.isEmpty, let last = entries.last, let entry = try? SignedEntry(bodyBytes: last.body, signature: last.signature) {
            let latency = Int64(SystemWallClock().nowMilliseconds()) - Int64(entry.hlc.wallMilliseconds)
            if latency >= 0 { metrics.pushLatency.recordMilliseconds(latency) }
        }
        if !report.applied.isEmpty { await node.noteReceived(report.applied.count) }
        await lagAfterReceiving(entries, applied: report.applied.count, stream: stream, orphans: !report.orphaned.isEmpty)
    }

    // MARK: - Anti-entropy

    /// One Negentropy V1 session as initiator over the `(hlc, id)` index, then fetches what the
    /// peer has (`need`) and streams what it lacks (`have`). One at a time per peer (the
    /// machine hands out the round). An empty message tells the responder the round is over,
    /// so it frees its state. A round that exhausts its budget (no progress, too many bytes)
    /// still fetches and sends what it learned, then ends the session.
    func reconcileRound() async throws {
        guard let round = machine.beginRound() else { return }
        activeWork += 1
        defer {
            activeWork -= 1
            machine.roundFinished()
        }
        let key = "\(connection)/i\(round)"
        var have = OrderedIDs(), need = OrderedIDs()
        var cutOff: ReconcileError?
        do {
            var message = try await log.reconcileInitiate(key, frameSizeLimit: config.reconcileFrameLimit, budget: config.reconcileBudget)
            while let outgoing = machine.roundMessage(message) {
                reconcileReplies.expect(round)
                metrics.reconcileRounds.increment()
                metrics.reconcileBytesSent.increment(by: Int64(message.count))
                enqueue(outgoing)
                let reply = try await reconcileReplies.wait(for: round)
                let result: (next: [UInt8]?, have: [Hash32], need: [Hash32])
                do {
                    result = try await log.reconcileContinue(key, reply: reply)
                } catch let error as ReconcileError where error.isBudget {
                    cutOff = error
                    break
                }
                have.append(result.have)
                need.append(result.need)
                guard let next = result.next else { break }
                message = next
            }
        } catch {
            await log.reconcileForget(key)
            reconcileReplies.forget(round)
            if let error = error as? ReconcileError { throw SessionError.protocolViolation("reconciliation: \(error)") }
            throw error
        }
        try await perform(machine.endRound())
        // The index holds applied entries only: ids quarantined or orphaned here are held, not
        // lacking (the orphans' missing parents are among the needed ids if the peer has them).
        let pending = try await log.pendingIDs(among: need.ids)
        let needed = need.ids.filter { !pending.quarantined.contains($0) && !pending.orphaned.contains($0) }
        await noteLag(entries: needed.count, exact: true, oldest: status?.lagOldestMilliseconds)
        for start in stride(from: 0, to: needed.count, by: 10_000) {
            let request = machine.newRequest()
            requests.expect(request)
            enqueue(.need(request: request, Array(needed[start..<min(start + 10_000, needed.count)])))
            _ = try await requests.wait(for: request)
        }
        if !have.ids.isEmpty {
            let stream = machine.newStream()
            var batch: UInt32 = 0
            try await sendBatches(parentsFirst(try await log.outgoingEntries(have.ids, inlineValueLimit: Self.chunkThreshold)), stream: stream, batch: &batch)
            try await perform(machine.endStream(stream))
        }
        logger.debug("reconciled", metadata: ["have": "\(have.ids.count)", "need": "\(need.ids.count)"])
        if let cutOff {
            let error = SessionError.reconcileStalled("\(cutOff) (kept \(have.ids.count) have and \(need.ids.count) need ids)")
            // Waits until everything queued (the have stream) is written before hanging up.
            await say(.bye("\(error)"))
            throw error
        }
        await markSynced()
    }

    /// Answers one message of the peer's round `round` (the machine checked its number) from
    /// the store's responder for that round.
    private func respond(to query: [UInt8], round: UInt32) async throws {
        // A round trip counts on both sides: a node that only accepts peers answers rounds.
        metrics.reconcileRounds.increment()
        metrics.reconcileBytesReceived.increment(by: Int64(query.count))
        let reply: [UInt8]
        do {
            reply = try await log.reconcileRespond(
                "\(connection)/r\(round)", message: query, frameSizeLimit: config.reconcileFrameLimit, budget: config.reconcileBudget)
        } catch let error as ReconcileError {
            return try await perform(machine.responderFailed(round: round, error: error))
        }
        metrics.reconcileBytesSent.increment(by: Int64(reply.count))
        enqueue(.reconcile(session: round, fromInitiator: false, reply))
    }

    // MARK: - Live push

    /// Which of `ids` a push to this peer would carry.
    func lacking(_ ids: [Hash32]) -> [Hash32] { machine.lacking(ids) }

    /// Sends new local entries the peer is not known to hold. A peer too slow to take them
    /// loses the push (its queue is bounded); the next anti-entropy round repairs it.
    /// Entries with large values (and pushes queued behind them) go from a job, one batch per
    /// large value, so the pusher does not wait for a value to reach the peer.
    func push(_ entries: [OutgoingEntry]) async {
        let lacking = Set(lacking(entries.compactMap(\.raw.claimedID)))
        let fresh = entries.filter { $0.raw.claimedID.map(lacking.contains) ?? false }
        guard !fresh.isEmpty else { return }
        guard queuedBytes < config.maxQueuedBytes else {
            logger.notice("peer is slow; skipping a push, anti-entropy will repair")
            return
        }
        machine.willHold(fresh.compactMap(\.raw.claimedID))
        metrics.entriesSent.increment(by: Int64(fresh.count))
        metrics.peerTraffic(peerLabel, sent: fresh.count)
        status?.entriesSent += Int64(fresh.count)
        guard pushJobs > 0 || fresh.contains(where: { $0.largeValue != nil }) else {
            enqueue(.entries(stream: 0, batch: 0, fresh.map(\.raw)))
            return
        }
        pushJobs += 1
        let turn = takeTurn()
        start { try await self.pushInTurn(fresh, turn: turn) }
    }

    private func pushInTurn(_ entries: [OutgoingEntry], turn: Int) async throws {
        defer {
            pushJobs -= 1
            finishTurn(turn)
        }
        try await waitForTurn(turn)
        var run: [OutgoingEntry] = []
        for entry in entries {
            run.append(entry)
            if entry.largeValue != nil {
                try await transmit(run, stream: 0, batch: 0, turnHeld: true)
                run = []
            }
        }
        if !run.isEmpty { try await transmit(run, stream: 0, batch: 0, turnHeld: true) }
    }

    /// Says `bye` and closes the connection (a duplicate the node does not keep).
    func terminate(_ reason: String) async {
        await say(.bye(reason))
        close()
    }

    // MARK: - Helpers

    private func markSynced() async {
        status?.lastSyncMilliseconds = SystemWallClock().nowMilliseconds()
        if let identity { await node.noteHeld(machine.held, by: identity) }
        await noteLag(entries: 0, exact: true, oldest: nil, save: false)
        await saveStatus()
        await node.noteSynced()
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


extension SyncMessage {
    /// About the bytes this message takes on the wire: what a queued message counts against
    /// ``SyncConfiguration/maxQueuedBytes`` (entries and values dominate; the rest is small).
    var approximateBytes: Int {
        switch self {
        case .entries(_, _, let entries, _): entries.reduce(16) { $0 + $1.body.count + $1.signature.count + ($1.value?.count ?? 0) + 41 }
        case .valueChunk(_, _, _, let bytes), .reconcile(_, _, let bytes): 48 + bytes.count
        case .heads(let tips): 8 + tips.count * 40
        case .fetch(_, let wants, let haves): 16 + (wants.count + haves.count) * 32
        case .need(_, let ids): 12 + ids.count * 32
        default: 64
        }
    }
}

/// Entries sorted by HLC, which puts parents before children (an entry's HLC is above its
/// parents').
func parentsFirst(_ entries: [OutgoingEntry]) -> [OutgoingEntry] {
    entries.map { (entry: $0, hlc: (try? SignedEntry(bodyBytes: $0.raw.body, signature: $0.raw.signature))?.hlc.rawValue ?? 0) }
        .sorted { $0.hlc < $1.hlc }
        .map(\.entry)
}

/// A value this node was streaming to a peer is no longer held (purged mid-transfer).
struct ValueUnavailable: Error, CustomStringConvertible {
    let digest: Hash32
    var description: String { "value \(digest.shortHex()) was purged while it was being sent" }
}

/// A batch whose last entry's value is arriving in `value-chunk` messages: the bytes so far
/// (at most the declared length) and their running digest. A class, so appending never copies.
final class ValueAssembly {
    let batch: UInt32
    let entries: [RawEntry]
    let index: Int
    let digest: Hash32
    let length: Int
    private var bytes: [UInt8] = []
    private var hasher = Blake2b.Hasher()

    init(batch: UInt32, entries: [RawEntry], index: Int, digest: Hash32, length: Int) {
        (self.batch, self.entries, self.index, self.digest, self.length) = (batch, entries, index, digest, length)
    }

    var received: Int { bytes.count }

    func append(_ chunk: [UInt8]) {
        if bytes.isEmpty { bytes.reserveCapacity(length) }
        bytes.append(contentsOf: chunk)
        hasher.update(chunk)
    }

    func finalize() -> Hash32 { hasher.finalize() }

    func takeBytes() -> [UInt8] {
        defer { bytes = [] }
        return bytes
    }
}
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

extension ReconcileError {
    /// Whether the session's budget (progress, bytes, rounds) ended it, rather than a bad message.
    var isBudget: Bool {
        switch self {
        case .noProgress, .byteBudgetExceeded, .roundLimitExceeded: true
        default: false
        }
    }
}

/// Ids in first-seen order without repeats (a round with a frame limit may report an id twice).
struct OrderedIDs {
    private(set) var ids: [Hash32] = []
    private var seen = Set<Hash32>()

    mutating func append(_ more: [Hash32]) {
        for id in more where seen.insert(id).inserted { ids.append(id) }
    }
}

/// A few entries a peer is known to hold, newest (by HLC) first. Holding an entry means holding
/// its ancestry, so the newest few say the most; the check runs on these alone.
struct HeldEntries: Sendable, Equatable {
    static let capacity = 8
    private(set) var tips: [SyncMessage.Tip] = []

    var isEmpty: Bool { tips.isEmpty }
    var ids: [Hash32] { tips.map(\.id) }

    mutating func insert(_ more: [SyncMessage.Tip]) {
        for tip in more where !tips.contains(where: { $0.id == tip.id }) { tips.append(tip) }
        tips.sort { ($0.hlc, $0.id) > ($1.hlc, $1.id) }
        if tips.count > Self.capacity { tips.removeLast(tips.count - Self.capacity) }
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

    /// Stops waiting for `id` (its round was abandoned): a late reply is then unexpected.
    func forget(_ id: UInt32) {
        expected.remove(id)
        arrived[id] = nil
    }

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
