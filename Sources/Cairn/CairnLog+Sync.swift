import CairnCore
import CairnStore
import CairnReconcile

// What the sync service (CairnSync) needs from a log, beyond the public API: raw entries to
// send, delta plans, and Negentropy sessions over the log's `(hlc, id)` index. These run on
// the actor, so they see the same connection and index as every write.

/// Negentropy sessions in progress, by a key the sync layer chooses (connection and session).
struct ReconcileSessions {
    var initiators: [String: ReconcileInitiator<SQLiteStorage>] = [:]
    var responders: [String: ReconcileResponder<SQLiteStorage>] = [:]
}

extension CairnLog {
    /// This node's signing key (the Noise static key derives from it).
    package nonisolated var signingKey: SigningKey { signer }

    /// The highest ingest sequence number: anything above a remembered value is new.
    package func lastSeq() throws -> Int64 { try store.lastSeq() }

    /// The entries a peer was last known to hold, as the sync service recorded them.
    package func peerHeld(by identity: PublicKey) throws -> [(id: Hash32, hlc: HLC)] { try store.peerHeld(by: identity) }

    /// Records the entries a peer is known to hold (at most 8, newest first).
    package func savePeerHeld(_ tips: [(id: Hash32, hlc: HLC)], by identity: PublicKey) throws { try store.savePeerHeld(tips, by: identity) }

    /// Ids that orphans here are waiting for.
    package func missingParents(limit: Int = 1000) throws -> [Hash32] { try store.missingParents(limit: limit) }

    /// What a peer lacks; see ``LogStore/delta(wants:haves:limit:)``.
    package func delta(wants: [Hash32], haves: [Hash32], limit: Int) throws -> DeltaPlan {
        try store.delta(wants: wants, haves: haves, limit: limit)
    }

    package func haveSample(limit: Int = 32) throws -> [Hash32] { try store.haveSample(limit: limit) }

    package func appliedIDs(among ids: [Hash32]) throws -> Set<Hash32> { try store.appliedIDs(among: ids) }

    /// Which of `ids` wait here unapplied (quarantined, or orphans); see ``LogStore/pendingIDs(among:)``.
    package func pendingIDs(among ids: [Hash32]) throws -> (quarantined: Set<Hash32>, orphaned: Set<Hash32>) {
        try store.pendingIDs(among: ids)
    }

    package func rawEntries(_ ids: [Hash32]) throws -> [RawEntry] { try store.rawEntries(ids) }

    package func entryIDs(afterSeq seq: Int64, limit: Int) throws -> (ids: [Hash32], lastSeq: Int64) {
        try store.entryIDs(afterSeq: seq, limit: limit)
    }

    package func rawEntries(afterSeq seq: Int64, limit: Int) throws -> (entries: [RawEntry], lastSeq: Int64) {
        try store.rawEntries(afterSeq: seq, limit: limit)
    }

    /// The applied entries among `ids` to send: values up to `inlineValueLimit` inline, larger
    /// held ones as references to stream with ``valueBytes(_:offset:count:)``.
    package func outgoingEntries(_ ids: [Hash32], inlineValueLimit: Int) throws -> [OutgoingEntry] {
        try store.outgoingEntries(ids, inlineValueLimit: inlineValueLimit)
    }

    package func outgoingEntries(afterSeq seq: Int64, limit: Int, inlineValueLimit: Int) throws -> (entries: [OutgoingEntry], lastSeq: Int64) {
        try store.outgoingEntries(afterSeq: seq, limit: limit, inlineValueLimit: inlineValueLimit)
    }

    /// A piece of a held value (incremental blob I/O), or `nil` if its bytes are not held.
    package func valueBytes(_ digest: Hash32, offset: Int, count: Int) throws -> [UInt8]? {
        try store.valueBytes(digest, offset: offset, count: count)
    }

    // MARK: - Negentropy sessions

    /// Starts a session as initiator and returns its first message.
    package func reconcileInitiate(_ key: String, frameSizeLimit: Int, budget: ReconcileBudget) throws -> [UInt8] {
        let initiator = try ReconcileInitiator(storage: reconcileIndex, frameSizeLimit: frameSizeLimit, budget: budget)
        let message = try initiator.initiate()
        reconcileSessions.initiators[key] = initiator
        return message
    }

    /// Feeds the responder's reply to a session this node initiated; `next` is `nil` when done.
    /// The session is forgotten when it ends, fails or exhausts its budget.
    package func reconcileContinue(_ key: String, reply: [UInt8]) throws -> (next: [UInt8]?, have: [Hash32], need: [Hash32]) {
        guard let initiator = reconcileSessions.initiators[key] else { throw ReconcileError.notInitiated }
        do {
            let result = try initiator.reconcile(reply)
            if result.next == nil { reconcileSessions.initiators[key] = nil }
            return (result.next, result.have.map(\.hash), result.need.map(\.hash))
        } catch {
            reconcileSessions.initiators[key] = nil
            throw error
        }
    }

    /// Answers a peer's Negentropy message, creating the responder on its first message. A
    /// responder that fails (malformed message, budget exhausted) is forgotten.
    package func reconcileRespond(_ key: String, message: [UInt8], frameSizeLimit: Int, budget: ReconcileBudget) throws -> [UInt8] {
        let responder = try reconcileSessions.responders[key]
            ?? ReconcileResponder(storage: reconcileIndex, frameSizeLimit: frameSizeLimit, budget: budget)
        reconcileSessions.responders[key] = responder
        do {
            return try responder.reconcile(message)
        } catch {
            reconcileSessions.responders[key] = nil
            throw error
        }
    }

    /// Forgets one session (either role), e.g. when its round ended or was abandoned.
    package func reconcileForget(_ key: String) {
        reconcileSessions.initiators[key] = nil
        reconcileSessions.responders[key] = nil
    }

    /// Forgets every session whose key starts with `prefix` (a closed connection's).
    package func reconcileEnd(prefix: String) {
        reconcileSessions.initiators = reconcileSessions.initiators.filter { !$0.key.hasPrefix(prefix) }
        reconcileSessions.responders = reconcileSessions.responders.filter { !$0.key.hasPrefix(prefix) }
    }

    /// How many Negentropy sessions this log holds state for, by role (for tests: rounds that
    /// ended must leave none behind).
    package var reconcileSessionCounts: (initiators: Int, responders: Int) {
        (reconcileSessions.initiators.count, reconcileSessions.responders.count)
    }

    /// Whether `key` is in the writer set now: granted a role and not revoked.
    package func isCurrentWriter(_ key: PublicKey) throws -> Bool {
        let status = try store.writerStatus(key)
        return status.role != nil && status.revokedFrom == nil
    }
}

extension ItemID {
    var hash: Hash32 { Hash32(bytes: bytes)! }
}
