import CairnCore
import CairnStore
import Cairn
import CairnReconcile

/// The protocol of one session with one peer, without I/O: what it may send, which of the
/// peer's messages break the rules, and the state of its streams and reconciliation rounds.
///
/// Synchronous, so tests drive it message by message without sockets. Its inputs are decoded
/// messages (``receive(_:)``), timer events (``timerFired(_:)``) and what the store answered
/// (``applied(_:report:stream:batch:)``, ``parentsMissing(_:)``, ``responderFailed(round:error:)``);
/// its output is a list of ``Action``s that the driver (``PeerSession``) carries out in order —
/// sending, storing, starting a job — and the ids it hands out for the driver's own requests,
/// streams and rounds. A rule broken ends in ``Action/close(_:)`` and the closed phase: the
/// machine then ignores whatever else arrives.
///
/// Per-stream state is keyed by ``StreamID``, so a number the peer picks can never land on a
/// stream of this node's own. The reconciliation rounds it owns: the one this node runs
/// (``beginRound()`` … ``endRound()``, one at a time, replies only to the message in flight)
/// and the peer's round it answers, which a new number or an empty message ends and frees.
struct PeerSessionStateMachine {
    /// Where the session stands.
    enum Phase: Equatable {
        /// Our hello is out; the peer's must come first.
        case awaitingHello
        /// The peer's hello checked out (admission is the driver's: it needs the node).
        case open
        /// A rule was broken, the peer left, or the session ended; `reason` is the peer's fault.
        case closed(reason: SessionError?)
    }

    /// A timer the driver runs for the machine (on the configured monotonic clock).
    enum Timer: Equatable {
        /// Every third of the idle timeout: keeps the peer from dropping a quiet session, and
        /// drops a peer that was silent for a whole idle timeout (``quietTicksAllowed`` ticks).
        case keepAlive
        /// Every reconcile interval (±20%): the dialer's anti-entropy round.
        case reconcile
    }

    /// What the driver does, in order.
    enum Action: Equatable {
        case send(SyncMessage)
        /// The peer's hello checked out: admit and register it (the driver's policy check).
        case admit(PublicKey)
        /// Insert the batch in one transaction, then report with ``applied(_:report:stream:batch:)``.
        case apply([RawEntry], stream: UInt32, batch: UInt32)
        /// Answer the peer's heads (fetch what is lacking, check a restore) in a job.
        case answerHeads([SyncMessage.Tip], first: Bool)
        /// Stream the answer to the peer's request in a job; report ``finishedServing(_:)``.
        case serveFetch(request: UInt32, wants: [Hash32], haves: [Hash32])
        case serveNeed(request: UInt32, ids: [Hash32])
        /// Run an anti-entropy round in a job (asked for by the peer or due).
        case startRound
        /// Answer a message of the peer's round from the store's responder for that round.
        case respond(round: UInt32, query: [UInt8])
        /// Free the store's responder state of the peer's round.
        case forgetResponder(round: UInt32)
        /// The answer to this node's request `request` is complete (or refused as too large).
        case completeRequest(UInt32, SyncMessage.FetchOutcome)
        /// The peer's reply to this node's round.
        case deliverReply(round: UInt32, [UInt8])
        /// The peer acknowledged `stream` up to `batch`: wake a sender waiting for the window.
        case acknowledged(StreamID, batch: UInt32)
        /// Look up the parents orphans wait for; report ``parentsMissing(_:)``.
        case findMissingParents
        /// Count an entry refused for `reason` (before any was stored).
        case countRejected(RejectReason)
        /// The peer said `bye` (for the log).
        case peerLeft(String)
        /// End the session; `reason` is set when the peer is at fault.
        case close(SessionError?)
    }

    static let protocolVersion: UInt16 = 1
    /// Streams whose newest unacknowledged batch tips are remembered (bounded: a peer that never
    /// acknowledges cannot grow the table).
    static let maxUnackedStreams = 64
    /// Chunked values a receiver assembles at once per session (each at most 64 MiB).
    static let maxAssemblies = 2
    /// Keep-alive ticks (a third of the idle timeout each) a peer may let pass without a word:
    /// one more, and it was silent for more than the idle timeout.
    static let quietTicksAllowed = 3

    let isDialer: Bool
    let logID: Hash32
    let nodeKey: PublicKey
    /// The static key the Noise handshake authenticated: the hello's node key must convert to it.
    let remoteStatic: [UInt8]
    let pinned: PublicKey?
    /// What this node offers; the session runs on what both offer.
    let offered: [String]
    /// Batches a sender may have unacknowledged.
    let window: UInt32

    private(set) var phase = Phase.awaitingHello
    /// The peer's node key, once its hello checked out.
    private(set) var identity: PublicKey?
    private(set) var capabilities: Set<String> = []
    /// Ids the peer is known to hold (sent by it or to it): not pushed to it again.
    private var known = RecentIDs(capacity: 200_000)
    /// Entries the peer is known to hold (advertised, sent, or in acknowledged batches), newest
    /// first: what a later session checks it still holds.
    private(set) var held = HeldEntries()
    private var nextRequestID: UInt32 = 1
    /// This node's requests whose answer is not complete.
    private var awaiting = Set<UInt32>()
    private var nextStreamNumber: UInt32 = 0
    private var nextRound: UInt32 = 1
    private var pingNonce: UInt64 = 0
    /// Keep-alive ticks since the peer last sent anything.
    private var quietTicks = 0
    private var firstHeads = true
    /// The peer's requests (fetch, need) whose answer stream is in flight.
    private(set) var serving = Set<UInt32>()
    /// Streams this node is sending, with the highest batch the peer acknowledged.
    private var outgoing: [StreamID: UInt32] = [:]
    /// The newest entry of each batch sent and not yet acknowledged, by stream.
    private var unackedTips: [StreamID: [(batch: UInt32, tip: SyncMessage.Tip)]] = [:]
    /// Parents asked for by `need`, by request: not asked for again while it is in flight.
    private var needsInFlight: [UInt32: [Hash32]] = [:]
    private var requestedParents = Set<Hash32>()
    /// Batches whose chunked value is arriving, by stream (at most ``maxAssemblies``).
    private var assemblies: [StreamID: ValueAssembly] = [:]
    /// This node's round in progress, and whether its message awaits the peer's reply.
    private(set) var ourRound: UInt32?
    private var awaitingReply = false
    /// The peer's round this node is answering, and the last one it started: round numbers only
    /// grow, and a round's responder is freed when the round ends.
    private(set) var theirRound: UInt32?
    private var lastTheirRound: UInt32 = 0

    init(isDialer: Bool, logID: Hash32, nodeKey: PublicKey, remoteStatic: [UInt8], pinned: PublicKey?, offered: [String], window: Int) {
        self.isDialer = isDialer
        self.logID = logID
        self.nodeKey = nodeKey
        self.remoteStatic = remoteStatic
        self.pinned = pinned
        self.offered = offered
        self.window = UInt32(clamping: max(window, 1))
    }

    /// The hello that opens the session (both sides send one first).
    var hello: SyncMessage {
        .hello(.init(minVersion: Self.protocolVersion, maxVersion: Self.protocolVersion, logID: logID, nodeKey: nodeKey, capabilities: offered))
    }

    var isOpen: Bool { phase == .open }

    /// Chunked values being assembled (tests check that the session holds at most two).
    var assemblyCount: Int { assemblies.count }

    // MARK: - Inputs

    /// Handles one message from the peer.
    mutating func receive(_ message: SyncMessage) -> [Action] {
        quietTicks = 0
        do {
            switch phase {
            case .closed: return []
            case .awaitingHello: return try receiveHello(message)
            case .open: return try receiveOpen(message)
            }
        } catch {
            return close(error)
        }
    }

    /// Handles a timer event.
    mutating func timerFired(_ timer: Timer) -> [Action] {
        guard isOpen else { return [] }
        switch timer {
        case .keepAlive:
            quietTicks += 1
            guard quietTicks <= Self.quietTicksAllowed else { return close(.timedOut) }
            pingNonce += 1
            return [.send(.ping(pingNonce))]
        case .reconcile:
            // While this node's fetch or need is answered, a round would only learn the ids
            // on their way and ask for them twice; the next interval repairs what is left.
            return isDialer && awaiting.isEmpty ? [.startRound] : []
        }
    }

    /// Ends the session for `reason` (the peer's fault, or `nil`): everything in flight is
    /// forgotten and later messages are ignored.
    mutating func close(_ reason: SessionError?) -> [Action] {
        if case .closed = phase { return [] }
        phase = .closed(reason: reason)
        assemblies = [:]
        outgoing = [:]
        return [.close(reason)]
    }

    // MARK: - Hello

    /// Checks the peer's hello: same log, a common version, a Noise key bound to the node key
    /// it claims, the pinned identity if any, not this node.
    private mutating func receiveHello(_ message: SyncMessage) throws(SessionError) -> [Action] {
        guard case .hello(let hello) = message else { throw .unexpectedMessage("expected a hello first") }
        guard hello.logID == logID else { throw .wrongLog(hello.logID) }
        let version = min(hello.maxVersion, Self.protocolVersion)
        guard version >= max(hello.minVersion, Self.protocolVersion) else { throw .noCommonVersion(hello.minVersion, hello.maxVersion) }
        guard hello.nodeKey.noiseStaticKey == remoteStatic else { throw .identityNotBound }
        if let pinned, pinned != hello.nodeKey { throw .identityMismatch(expected: pinned, got: hello.nodeKey) }
        guard hello.nodeKey != nodeKey else { throw .connectedToSelf }
        // Capabilities this version does not know are ignored; missing ones switch features off.
        capabilities = Set(hello.capabilities).intersection(offered)
        identity = hello.nodeKey
        phase = .open
        return [.admit(hello.nodeKey)]
    }

    // MARK: - Dispatch

    private mutating func receiveOpen(_ message: SyncMessage) throws(SessionError) -> [Action] {
        switch message {
        case .hello:
            throw .unexpectedMessage("a second hello")
        case .heads(let tips):
            let first = firstHeads
            firstHeads = false
            known.insert(tips.map(\.id))
            held.insert(tips)
            return [.answerHeads(tips, first: first)]
        case .fetch(let request, let wants, let haves):
            try beginServing(request)
            return [.serveFetch(request: request, wants: wants, haves: haves)]
        case .need(let request, let ids):
            try beginServing(request)
            return [.serveNeed(request: request, ids: ids)]
        case .entries(let stream, let batch, let entries, let chunked):
            let id = StreamID(received: stream)
            if let chunked {
                try beginAssembly(entries, chunked, stream: id, batch: batch)
                return []
            }
            // A stream's batches are in order: the next waits for the chunked value before it.
            // Pushes (stream 0) are not acknowledged, so one may overtake.
            guard stream == 0 || assemblies[id] == nil else {
                throw .protocolViolation("a batch of stream \(stream) before its chunked value was complete")
            }
            return [.apply(entries, stream: stream, batch: batch)]
        case .valueChunk(let stream, let digest, let offset, let bytes):
            return try receiveChunk(bytes, stream: stream, digest: digest, offset: offset)
        case .ack(let stream, let batch):
            return acknowledge(StreamID(sent: stream), batch: batch)
        case .done(let request, let outcome):
            // Ends an answer to our request; the end of a stream the peer opened needs nothing.
            guard StreamID(received: request).owner == .ours else { return [] }
            awaiting.remove(request)
            if let ids = needsInFlight.removeValue(forKey: request) { requestedParents.subtract(ids) }
            return [.completeRequest(request, outcome)]
        case .reconcile(let round, true, let query):
            return try answerRound(round, query: query)
        case .reconcile(let round, false, let reply):
            guard ourRound == round, awaitingReply else { throw .unexpectedMessage("reconcile reply for session \(round)") }
            awaitingReply = false
            return [.deliverReply(round: round, reply)]
        case .reconcileRequest:
            return [.startRound]
        case .ping(let nonce):
            return [.send(.pong(nonce))]
        case .pong:
            return []
        case .bye(let reason):
            // A refusal counts as a failed dial, so the dialer backs off.
            return [.peerLeft(reason)] + close(reason.hasPrefix(PeerSession.refusal) ? .refusedByPeer(reason) : nil)
        }
    }

    // MARK: - Requests and streams

    /// The next request number for this node's own fetch or need: 1…2^31−1, wrapping.
    mutating func newRequest() -> UInt32 {
        defer { nextRequestID = nextRequestID % 0x7FFF_FFFF + 1 }
        awaiting.insert(nextRequestID)
        return nextRequestID
    }

    /// A stream this node opens on its own: the top bit set, wrapping within it.
    mutating func newStream() -> StreamID {
        defer { nextStreamNumber = (nextStreamNumber + 1) & ~StreamID.ownStreamBit }
        return StreamID(.ours, StreamID.ownStreamBit | nextStreamNumber)
    }

    /// Checks a request number the peer chose (fetch, need): in its space (1…2^31−1, so it
    /// cannot name a stream this node opened) and not already answered by a stream in flight.
    private mutating func beginServing(_ request: UInt32) throws(SessionError) {
        guard StreamID.isRequestNumber(request) else {
            throw .protocolViolation("request \(request) is outside 1…2^31−1 (the space of stream ids)")
        }
        guard serving.insert(request).inserted else {
            throw .protocolViolation("request \(request) reused while its stream is in flight")
        }
    }

    /// The answer to the peer's request ended: the number may be used again.
    mutating func finishedServing(_ request: UInt32) { serving.remove(request) }

    /// Records a batch about to go on `stream`, whose newest entry is `tip` (streams go parents
    /// first). Before it is sent: its ack may come while the rest of it (a chunked value) goes.
    mutating func willSend(batch: UInt32, on stream: StreamID, tip: SyncMessage.Tip?) {
        if outgoing[stream] == nil { outgoing[stream] = 0 }
        guard let tip else { return }
        if unackedTips[stream] == nil, unackedTips.count >= Self.maxUnackedStreams { unackedTips.removeAll() }
        unackedTips[stream, default: []].append((batch, tip))
    }

    /// The batch of `stream` that must be acknowledged before the batch after `batch` goes, or
    /// `nil` when the window allows it (or the stream is over).
    func mustWait(_ stream: StreamID, after batch: UInt32) -> UInt32? {
        guard batch > window, let acked = outgoing[stream] else { return nil }
        return acked >= batch - window ? nil : batch - window
    }

    /// The stream is complete: later acks for it are ignored.
    mutating func endStream(_ stream: StreamID) -> [Action] {
        outgoing[stream] = nil
        return [.send(.done(request: stream.number, outcome: .complete))]
    }

    /// Records an ack for a stream this node is sending; acks for anything else (a stream that
    /// ended, or never was) change nothing.
    private mutating func acknowledge(_ stream: StreamID, batch: UInt32) -> [Action] {
        // The peer committed these batches: it holds their entries (checked on its next session).
        if let tips = unackedTips[stream] {
            held.insert(tips.filter { $0.batch <= batch }.map(\.tip))
            let left = tips.filter { $0.batch > batch }
            unackedTips[stream] = left.isEmpty ? nil : left
        }
        guard let acked = outgoing[stream] else { return [] }
        outgoing[stream] = max(acked, batch)
        return [.acknowledged(stream, batch: batch)]
    }

    // MARK: - Live push

    /// Which of `ids` a push to this peer would carry.
    func lacking(_ ids: [Hash32]) -> [Hash32] {
        guard isOpen, capabilities.contains(PeerSession.pushCapability) else { return [] }
        return ids.filter { !known.contains($0) }
    }

    /// The peer will hold these (sent to it): they are not pushed to it again.
    mutating func willHold(_ ids: [Hash32]) { known.insert(ids) }

    // MARK: - Receiving entries

    /// Holds a batch whose last entry's value arrives in chunks. Checked before anything is
    /// buffered: the entry must be a validly signed put of exactly the declared length (at most
    /// 64 MiB, the format's limit), so a peer can make this node hold at most ``maxAssemblies``
    /// such values, each no longer than its author signed.
    private mutating func beginAssembly(_ entries: [RawEntry], _ chunked: SyncMessage.ChunkedValue, stream: StreamID, batch: UInt32) throws(SessionError) {
        guard assemblies[stream] == nil else {
            throw .protocolViolation("stream \(stream.number) started a chunked value before its last one was complete")
        }
        guard assemblies.count < Self.maxAssemblies else {
            throw .protocolViolation("more than \(Self.maxAssemblies) chunked values in flight")
        }
        let entry = entries[chunked.index]
        guard let signed = try? SignedEntry(bodyBytes: entry.body, signature: entry.signature), signed.id == entry.claimedID,
            case .put(_, _, let ref) = signed.payload, ref.length == chunked.length, signed.hasValidSignature
        else {
            throw .hostileEntries("a chunked value announced for an entry that does not sign a value of that length")
        }
        assemblies[stream] = ValueAssembly(batch: batch, entries: entries, index: chunked.index, digest: ref.digest, length: Int(ref.length))
    }

    /// Appends a chunk to the value its stream is assembling; when the value is complete and
    /// matches its digest, the batch is applied. A chunk for no such stream, for another value,
    /// out of order or beyond the declared length, or a value that does not match its digest,
    /// ends the session: nothing of the batch is stored.
    private mutating func receiveChunk(_ bytes: [UInt8], stream: UInt32, digest: Hash32, offset: UInt32) throws(SessionError) -> [Action] {
        let id = StreamID(received: stream)
        guard let assembly = assemblies[id] else {
            throw .protocolViolation("a value chunk for stream \(stream), which has no chunked value in flight")
        }
        guard digest == assembly.digest else {
            throw .protocolViolation("a value chunk for \(digest.shortHex()) on stream \(stream), which carries \(assembly.digest.shortHex())")
        }
        guard Int(offset) == assembly.received else {
            throw .protocolViolation("a value chunk at offset \(offset), expected \(assembly.received)")
        }
        guard assembly.received + bytes.count <= assembly.length else {
            throw .protocolViolation("value chunks beyond the declared length \(assembly.length)")
        }
        assembly.append(bytes)
        guard assembly.received == assembly.length else { return [] }
        assemblies[id] = nil
        guard assembly.finalize() == assembly.digest else {
            return [.countRejected(.valueMismatch)] + close(.hostileEntries("a chunked value that does not match its digest"))
        }
        var entries = assembly.entries
        entries[assembly.index].value = assembly.takeBytes()
        return [.apply(entries, stream: stream, batch: assembly.batch)]
    }

    /// What follows a batch the store inserted: its ack (once committed), the end of the
    /// session if it held entries no honest node relays, and a look for missing parents.
    mutating func applied(_ entries: [RawEntry], report: InsertReport, stream: UInt32, batch: UInt32) -> [Action] {
        guard isOpen else { return [] }
        known.insert(entries.compactMap(\.claimedID))
        var actions: [Action] = stream == 0 ? [] : [.send(.ack(stream: stream, batch: batch))]
        if let hostile = report.rejected.first(where: { $0.reason.isProofOfMalice }) {
            return actions + close(.hostileEntries(hostile.reason.label))
        }
        noteHeld(entries, report: report)
        if !report.orphaned.isEmpty { actions.append(.findMissingParents) }
        return actions
    }

    /// The peer holds what it sent: remembers the newest entry of a batch that is now in the
    /// DAG here (applied, or held already), as a witness for a later session's restore check.
    private mutating func noteHeld(_ entries: [RawEntry], report: InsertReport) {
        let refused = Set(report.rejected.map(\.index))
        let pending = Set(report.orphaned + report.quarantined)
        for (index, entry) in entries.enumerated().reversed() where !refused.contains(index) {
            guard let id = entry.claimedID, !pending.contains(id),
                let signed = try? SignedEntry(bodyBytes: entry.body, signature: entry.signature)
            else { continue }
            held.insert([SyncMessage.Tip(id: id, hlc: signed.hlc)])
            return
        }
    }

    /// Asks the peer for the parents orphans wait for (it sent their children, so it holds
    /// them), once per id while a request is in flight.
    mutating func parentsMissing(_ ids: [Hash32]) -> [Action] {
        let missing = ids.filter { !requestedParents.contains($0) }
        guard isOpen, !missing.isEmpty else { return [] }
        requestedParents.formUnion(missing)
        let request = newRequest()
        needsInFlight[request] = missing
        return [.send(.need(request: request, missing))]
    }

    // MARK: - Reconciliation rounds

    /// Starts this node's round: its number, or `nil` when the peer does not reconcile or a
    /// round is already running.
    mutating func beginRound() -> UInt32? {
        guard isOpen, capabilities.contains(PeerSession.reconcileCapability), ourRound == nil else { return nil }
        let round = nextRound
        nextRound = nextRound % 0xFFFF_FFFF + 1
        ourRound = round
        return round
    }

    /// The round's next message to the responder; its reply is then the one expected.
    mutating func roundMessage(_ message: [UInt8]) -> SyncMessage? {
        guard let round = ourRound, isOpen else { return nil }
        awaitingReply = true
        return .reconcile(session: round, fromInitiator: true, message)
    }

    /// Ends the exchange of this node's round: a late reply is then unexpected. Returns the
    /// empty message that tells the responder to free its state (to a peer that understands it).
    mutating func endRound() -> [Action] {
        guard let round = ourRound else { return [] }
        awaitingReply = false
        guard isOpen, capabilities.contains(PeerSession.roundEndCapability) else { return [] }
        return [.send(.reconcile(session: round, fromInitiator: true, []))]
    }

    /// The round's fetches and stream are done too: the next round may begin.
    mutating func roundFinished() {
        ourRound = nil
        awaitingReply = false
    }

    /// Answers one message of the peer's round. Rounds only move forward: a new number ends
    /// (and frees) the previous round, an empty message ends the current one, and an old
    /// number is a protocol violation.
    private mutating func answerRound(_ round: UInt32, query: [UInt8]) throws(SessionError) -> [Action] {
        if query.isEmpty {
            return theirRound == round ? endTheirRound() : []
        }
        var actions: [Action] = []
        if theirRound != round {
            guard round > lastTheirRound else {
                throw .protocolViolation("reconciliation round \(round) reused (the last began at \(lastTheirRound))")
            }
            actions = endTheirRound()
            theirRound = round
            lastTheirRound = round
        }
        return actions + [.respond(round: round, query: query)]
    }

    private mutating func endTheirRound() -> [Action] {
        guard let round = theirRound else { return [] }
        theirRound = nil
        return [.forgetResponder(round: round)]
    }

    /// The store's responder failed on the peer's message: the round is over (its state is
    /// freed by the store) and the session ends — on a budget, as stalled.
    mutating func responderFailed(round: UInt32, error: ReconcileError) -> [Action] {
        if theirRound == round { theirRound = nil }
        return close(Self.sessionError(error))
    }

    /// A reconciliation failure as the reason the session ends: the budget (no progress, too
    /// many bytes) stalls it; anything else is a malformed message.
    static func sessionError(_ error: ReconcileError) -> SessionError {
        error.isBudget ? .reconcileStalled("\(error)") : .protocolViolation("reconciliation: \(error)")
    }
}
