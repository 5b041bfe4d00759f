import CairnCore
import CairnStore
import CairnReconcile
import Testing

@testable import CairnSync

/// The session's protocol rules, driven message by message without sockets or a store: the
/// machine's actions are what the driver would do. The socket tests (SessionRulesTests,
/// HostilePeerTests, LargeValueTests) check the same rules end to end.
@Suite struct PeerSessionStateMachineTests {
    typealias Machine = PeerSessionStateMachine

    let logID = Hash32(bytes: [UInt8](repeating: 1, count: 32))!
    let local = SigningKey.generate()
    let peer = SigningKey.generate()

    func machine(dialer: Bool = true, pinned: PublicKey? = nil, window: Int = 4) -> Machine {
        Machine(
            isDialer: dialer, logID: logID, nodeKey: local.publicKey, remoteStatic: peer.publicKey.noiseStaticKey ?? [], pinned: pinned,
            offered: PeerSession.capabilities, window: window)
    }

    func hello(logID: Hash32? = nil, key: PublicKey? = nil, versions: ClosedRange<UInt16> = 1...1, capabilities: [String] = PeerSession.capabilities) -> SyncMessage {
        .hello(.init(
            minVersion: versions.lowerBound, maxVersion: versions.upperBound, logID: logID ?? self.logID, nodeKey: key ?? peer.publicKey,
            capabilities: capabilities))
    }

    /// A machine whose peer's hello checked out.
    func open(dialer: Bool = true, window: Int = 4, capabilities: [String] = PeerSession.capabilities) -> Machine {
        var machine = machine(dialer: dialer, window: window)
        #expect(machine.receive(hello(capabilities: capabilities)) == [.admit(peer.publicKey)])
        return machine
    }

    /// A signed put of `value` by the peer, as it travels.
    func entry(_ value: [UInt8], key name: String = "k") throws -> RawEntry {
        let body = EntryBody(
            hlc: HLC(wallMilliseconds: 1_000, counter: 0), author: peer.publicKey, parents: [logID],
            payload: .put(bucket: "b", key: name, value: ValueRef(of: value)))
        return RawEntry(try SignedEntry(signing: body, with: peer))
    }

    // MARK: - Hello

    @Test func theHelloComesFirstAndOnlyOnce() {
        var early = machine()
        #expect(early.hello == .hello(.init(minVersion: 1, maxVersion: 1, logID: logID, nodeKey: local.publicKey, capabilities: PeerSession.capabilities)))
        #expect(early.receive(.heads([])) == [.close(.unexpectedMessage("expected a hello first"))])
        #expect(early.phase == .closed(reason: .unexpectedMessage("expected a hello first")))
        // Closed: whatever else arrives is ignored, the hello included.
        #expect(early.receive(hello()).isEmpty)
        #expect(early.identity == nil)

        var twice = open()
        #expect(twice.receive(hello()) == [.close(.unexpectedMessage("a second hello"))])
    }

    @Test func aHelloThatDoesNotCheckOutEndsTheSession() {
        let other = SigningKey.generate()
        let otherLog = Hash32(bytes: [UInt8](repeating: 2, count: 32))!
        let cases: [(Machine, SyncMessage, SessionError)] = [
            (machine(), hello(logID: otherLog), .wrongLog(otherLog)),
            (machine(), hello(versions: 2...7), .noCommonVersion(2, 7)),
            // A node key that the handshake's static key does not come from.
            (machine(), hello(key: other.publicKey), .identityNotBound),
            (machine(pinned: other.publicKey), hello(), .identityMismatch(expected: other.publicKey, got: peer.publicKey)),
        ]
        for (machine, message, reason) in cases {
            var machine = machine
            #expect(machine.receive(message) == [.close(reason)])
            #expect(machine.phase == .closed(reason: reason))
            #expect(machine.identity == nil)
        }
        var loopback = Machine(
            isDialer: true, logID: logID, nodeKey: local.publicKey, remoteStatic: local.publicKey.noiseStaticKey ?? [], pinned: nil,
            offered: PeerSession.capabilities, window: 4)
        #expect(loopback.receive(hello(key: local.publicKey)) == [.close(.connectedToSelf)])
    }

    @Test func theSessionRunsOnWhatBothOfferAndTheVersionBothSpeak() {
        var machine = machine()
        #expect(machine.receive(hello(versions: 1...7, capabilities: ["quantum-sync/3", PeerSession.deltaCapability])) == [.admit(peer.publicKey)])
        #expect(machine.phase == .open)
        #expect(machine.identity == peer.publicKey)
        #expect(machine.capabilities == [PeerSession.deltaCapability])
        // Without push/1 nothing is pushed, without the RBSR capability no round begins.
        #expect(machine.lacking([logID]).isEmpty)
        #expect(machine.beginRound() == nil)
    }

    @Test func aByeEndsTheSessionAndARefusalIsThePeersFault() {
        var left = open()
        #expect(left.receive(.bye("shutting down")) == [.peerLeft("shutting down"), .close(nil)])
        #expect(left.phase == .closed(reason: nil))
        var refused = open()
        let reason = "\(PeerSession.refusal) node key not allowed"
        #expect(refused.receive(.bye(reason)) == [.peerLeft(reason), .close(.refusedByPeer(reason))])
    }

    // MARK: - Streams and requests

    @Test func aCollidingOrReusedRequestNumberDropsThePeer() {
        var outside = open()
        #expect(outside.receive(.fetch(request: 0x8000_0001, wants: [], haves: [])) == [
            .close(.protocolViolation("request 2147483649 is outside 1…2^31−1 (the space of stream ids)"))
        ])
        var zero = open()
        #expect(zero.receive(.need(request: 0, [])) == [.close(.protocolViolation("request 0 is outside 1…2^31−1 (the space of stream ids)"))])

        var reused = open()
        #expect(reused.receive(.fetch(request: 7, wants: [], haves: [])) == [.serveFetch(request: 7, wants: [], haves: [])])
        #expect(reused.receive(.need(request: 7, [])) == [.close(.protocolViolation("request 7 reused while its stream is in flight"))])

        // Once its stream ended, the number may come again.
        var again = open()
        _ = again.receive(.need(request: 7, []))
        again.finishedServing(7)
        #expect(again.receive(.need(request: 7, [logID])) == [.serveNeed(request: 7, ids: [logID])])
    }

    @Test func aPeersNumbersNeverLandOnThisNodesStreams() {
        var machine = open()
        let ours = machine.newStream()
        #expect(ours == StreamID(.ours, 0x8000_0000))
        #expect(machine.newRequest() == 1)
        #expect(machine.newRequest() == 2)
        machine.willSend(batch: 1, on: ours, tip: nil)
        // The peer's own stream with the same number: its `done` ends nothing of ours.
        #expect(machine.receive(.done(request: 0x8000_0000, outcome: .complete)).isEmpty)
        // An ack names the stream this node sends: ours, by the top bit.
        #expect(machine.receive(.ack(stream: 0x8000_0000, batch: 1)) == [.acknowledged(ours, batch: 1)])
        // Acks for streams not in flight change nothing.
        #expect(machine.receive(.ack(stream: 9, batch: 1)).isEmpty)
        #expect(machine.receive(.done(request: 2, outcome: .tooLarge)) == [.completeRequest(2, .tooLarge)])
    }

    @Test func theWindowHoldsASenderUntilTheAckComes() {
        var machine = open(window: 2)
        let stream = StreamID(.theirs, 5)
        for batch: UInt32 in 1...3 { machine.willSend(batch: batch, on: stream, tip: nil) }
        #expect(machine.mustWait(stream, after: 2) == nil)
        #expect(machine.mustWait(stream, after: 3) == 1)
        #expect(machine.receive(.ack(stream: 5, batch: 1)) == [.acknowledged(stream, batch: 1)])
        #expect(machine.mustWait(stream, after: 3) == nil)
        // The stream's end forgets it: a late ack changes nothing.
        #expect(machine.endStream(stream) == [.send(.done(request: 5, outcome: .complete))])
        #expect(machine.receive(.ack(stream: 5, batch: 3)).isEmpty)
    }

    @Test func acknowledgedBatchesTellWhatThePeerHolds() throws {
        var machine = open()
        let stream = machine.newStream()
        let tips = (1...3).map { SyncMessage.Tip(id: Hash32(bytes: [UInt8](repeating: UInt8($0), count: 32))!, hlc: HLC(wallMilliseconds: UInt64($0), counter: 0)) }
        for (index, tip) in tips.enumerated() { machine.willSend(batch: UInt32(index + 1), on: stream, tip: tip) }
        _ = machine.receive(.ack(stream: stream.number, batch: 2))
        #expect(machine.held.ids == [tips[1].id, tips[0].id])
    }

    // MARK: - Entries

    @Test func aBatchIsAppliedThenAcknowledgedAndHostileEntriesEndTheSession() throws {
        var machine = open()
        let good = try entry([1])
        #expect(machine.receive(.entries(stream: 3, batch: 1, [good])) == [.apply([good], stream: 3, batch: 1)])
        var report = InsertReport()
        report.applied = [good.claimedID!]
        #expect(machine.applied([good], report: report, stream: 3, batch: 1) == [.send(.ack(stream: 3, batch: 1))])
        #expect(machine.held.ids == [good.claimedID!])
        // Pushes (stream 0) are not acknowledged; the peer holds what it sent.
        #expect(machine.applied([good], report: report, stream: 0, batch: 0).isEmpty)
        #expect(machine.lacking([good.claimedID!]).isEmpty)

        var forged = InsertReport()
        forged.rejected = [(0, .badSignature)]
        #expect(machine.applied([good], report: forged, stream: 3, batch: 2) == [
            .send(.ack(stream: 3, batch: 2)), .close(.hostileEntries(RejectReason.badSignature.label)),
        ])
    }

    @Test func orphansAskForTheirParentsOncePerRequest() throws {
        var machine = open()
        let child = try entry([2])
        var report = InsertReport()
        report.orphaned = [child.claimedID!]
        #expect(machine.applied([child], report: report, stream: 0, batch: 0) == [.findMissingParents])
        let parent = logID
        #expect(machine.parentsMissing([parent]) == [.send(.need(request: 1, [parent]))])
        // In flight: not asked for again; once its answer is complete, it may be.
        #expect(machine.parentsMissing([parent]).isEmpty)
        #expect(machine.receive(.done(request: 1, outcome: .complete)) == [.completeRequest(1, .complete)])
        #expect(machine.parentsMissing([parent]) == [.send(.need(request: 2, [parent]))])
    }

    @Test func aChunkedValueIsAssembledCheckedAndThenApplied() throws {
        let value = [UInt8](repeating: 9, count: 3000)
        let large = try entry(value)
        let digest = ValueRef(of: value).digest
        var machine = open()
        #expect(machine.receive(.entries(stream: 4, batch: 1, [large], chunked: .init(index: 0, length: 3000))).isEmpty)
        #expect(machine.assemblyCount == 1)
        // The stream's next batch may not overtake its chunked value.
        var overtaken = machine
        #expect(overtaken.receive(.entries(stream: 4, batch: 2, [])) == [
            .close(.protocolViolation("a batch of stream 4 before its chunked value was complete"))
        ])
        #expect(machine.receive(.valueChunk(stream: 4, digest: digest, offset: 0, Array(value[..<1000]))).isEmpty)
        var withValue = large
        withValue.value = value
        #expect(machine.receive(.valueChunk(stream: 4, digest: digest, offset: 1000, Array(value[1000...]))) == [.apply([withValue], stream: 4, batch: 1)])
        #expect(machine.assemblyCount == 0)
    }

    @Test func badChunksAreRefusedBeforeAnythingIsStored() throws {
        let value = [UInt8](repeating: 9, count: 3000)
        let large = try entry(value)
        let digest = ValueRef(of: value).digest
        let announce = SyncMessage.entries(stream: 4, batch: 1, [large], chunked: .init(index: 0, length: 3000))

        var noAssembly = open()
        #expect(noAssembly.receive(.valueChunk(stream: 4, digest: digest, offset: 0, [1])) == [
            .close(.protocolViolation("a value chunk for stream 4, which has no chunked value in flight"))
        ])
        var wrongLength = open()
        #expect(wrongLength.receive(.entries(stream: 4, batch: 1, [large], chunked: .init(index: 0, length: 2999))) == [
            .close(.hostileEntries("a chunked value announced for an entry that does not sign a value of that length"))
        ])
        var outOfOrder = open()
        _ = outOfOrder.receive(announce)
        #expect(outOfOrder.receive(.valueChunk(stream: 4, digest: digest, offset: 5, [1])) == [
            .close(.protocolViolation("a value chunk at offset 5, expected 0"))
        ])
        var mismatch = open()
        _ = mismatch.receive(announce)
        #expect(mismatch.receive(.valueChunk(stream: 4, digest: digest, offset: 0, [UInt8](repeating: 8, count: 3000))) == [
            .countRejected(.valueMismatch), .close(.hostileEntries("a chunked value that does not match its digest")),
        ])
        var tooMany = open()
        _ = tooMany.receive(announce)
        _ = tooMany.receive(.entries(stream: 5, batch: 1, [large], chunked: .init(index: 0, length: 3000)))
        #expect(tooMany.receive(.entries(stream: 6, batch: 1, [large], chunked: .init(index: 0, length: 3000))) == [
            .close(.protocolViolation("more than 2 chunked values in flight"))
        ])
        #expect(tooMany.assemblyCount == 0)
    }

    // MARK: - Reconciliation rounds

    @Test func aRoundsStateIsFreedAtItsEndAndRoundsOnlyMoveForward() {
        var machine = open(dialer: false)
        #expect(machine.receive(.reconcile(session: 5, fromInitiator: true, [1])) == [.respond(round: 5, query: [1])])
        #expect(machine.receive(.reconcile(session: 5, fromInitiator: true, [2])) == [.respond(round: 5, query: [2])])
        #expect(machine.theirRound == 5)
        // The initiator's empty message ends the round: its responder is freed.
        #expect(machine.receive(.reconcile(session: 5, fromInitiator: true, [])) == [.forgetResponder(round: 5)])
        #expect(machine.theirRound == nil)
        // A new number ends (and frees) the previous round.
        _ = machine.receive(.reconcile(session: 6, fromInitiator: true, [1]))
        #expect(machine.receive(.reconcile(session: 8, fromInitiator: true, [1])) == [.forgetResponder(round: 6), .respond(round: 8, query: [1])])
        #expect(machine.receive(.reconcile(session: 7, fromInitiator: true, [1])) == [
            .close(.protocolViolation("reconciliation round 7 reused (the last began at 8)"))
        ])
    }

    @Test func theReconcileBudgetEndsTheSessionAsStalled() {
        var machine = open(dialer: false)
        _ = machine.receive(.reconcile(session: 1, fromInitiator: true, [1]))
        #expect(machine.responderFailed(round: 1, error: .noProgress(rounds: 16)) == [.close(.reconcileStalled("\(ReconcileError.noProgress(rounds: 16))"))])
        #expect(machine.theirRound == nil)
        #expect(machine.phase == .closed(reason: .reconcileStalled("\(ReconcileError.noProgress(rounds: 16))")))
        #expect(Machine.sessionError(.byteBudgetExceeded(10)) == .reconcileStalled("\(ReconcileError.byteBudgetExceeded(10))"))
        // A malformed message is a protocol violation, not a stall.
        #expect(Machine.sessionError(.varintTooLong) == .protocolViolation("reconciliation: \(ReconcileError.varintTooLong)"))
    }

    @Test func thisNodesRoundsRunOneAtATimeAndTakeOnlyTheirReply() {
        var machine = open()
        let round = machine.beginRound()
        #expect(round == 1)
        #expect(machine.beginRound() == nil)
        #expect(machine.roundMessage([7]) == .reconcile(session: 1, fromInitiator: true, [7]))
        #expect(machine.receive(.reconcile(session: 1, fromInitiator: false, [8])) == [.deliverReply(round: 1, [8])])
        // One reply per message: a second is unexpected.
        var extra = machine
        #expect(extra.receive(.reconcile(session: 1, fromInitiator: false, [8])) == [.close(.unexpectedMessage("reconcile reply for session 1"))])
        #expect(machine.endRound() == [.send(.reconcile(session: 1, fromInitiator: true, []))])
        #expect(machine.beginRound() == nil)
        machine.roundFinished()
        #expect(machine.beginRound() == 2)
    }

    @Test func aPeerWithoutRoundEndsIsNotSentTheEmptyMessage() {
        var machine = open(capabilities: [PeerSession.reconcileCapability])
        _ = machine.beginRound()
        #expect(machine.endRound().isEmpty)
    }

    // MARK: - Timers and closing

    @Test func timersPingAndStartTheDialersRounds() {
        var dialer = open()
        #expect(dialer.timerFired(.keepAlive) == [.send(.ping(1))])
        #expect(dialer.timerFired(.keepAlive) == [.send(.ping(2))])
        #expect(dialer.timerFired(.reconcile) == [.startRound])
        // Not while the answer to a fetch is streaming in: the round would ask for it twice.
        let fetch = dialer.newRequest()
        #expect(dialer.timerFired(.reconcile).isEmpty)
        _ = dialer.receive(.done(request: fetch, outcome: .complete))
        #expect(dialer.timerFired(.reconcile) == [.startRound])
        var acceptor = open(dialer: false)
        #expect(acceptor.timerFired(.reconcile).isEmpty)
        #expect(acceptor.receive(.reconcileRequest) == [.startRound])
        #expect(acceptor.receive(.ping(9)) == [.send(.pong(9))])
        // Before the hello, or after the end, timers do nothing.
        var fresh = machine()
        #expect(fresh.timerFired(.keepAlive).isEmpty)
        _ = acceptor.close(nil)
        #expect(acceptor.timerFired(.keepAlive).isEmpty)
        #expect(acceptor.close(.timedOut).isEmpty)
    }

    @Test func aPeerSilentForTheIdleTimeoutIsDropped() {
        var machine = open()
        for nonce: UInt64 in 1...3 { #expect(machine.timerFired(.keepAlive) == [.send(.ping(nonce))]) }
        // Anything from the peer (a pong, say) starts the count again.
        _ = machine.receive(.pong(3))
        for nonce: UInt64 in 4...6 { #expect(machine.timerFired(.keepAlive) == [.send(.ping(nonce))]) }
        #expect(machine.timerFired(.keepAlive) == [.close(.timedOut)])
        #expect(machine.phase == .closed(reason: .timedOut))
    }

    @Test func headsAreAnsweredAndRememberedAsHeld() {
        var machine = open()
        let tip = SyncMessage.Tip(id: logID, hlc: HLC(wallMilliseconds: 5, counter: 0))
        #expect(machine.receive(.heads([tip])) == [.answerHeads([tip], first: true)])
        #expect(machine.receive(.heads([tip])) == [.answerHeads([tip], first: false)])
        #expect(machine.held.ids == [logID])
        #expect(machine.lacking([logID]).isEmpty)
    }
}
