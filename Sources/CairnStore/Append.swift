import CairnCore
import CairnSQLite
import Foundation

/// A local write to append: what to write and, for a put, the value bytes.
public struct LocalWrite: Sendable {
    public let payload: Payload
    public let value: [UInt8]?

    /// Sets `bucket/key` to `value`.
    public static func put(bucket: String, key: String, value: [UInt8]) -> LocalWrite {
        LocalWrite(payload: .put(bucket: bucket, key: key, value: ValueRef(of: value)), value: value)
    }

    /// Sets `bucket/key` to `value`.
    public static func put(bucket: String, key: String, value: Data) -> LocalWrite {
        put(bucket: bucket, key: key, value: [UInt8](value))
    }

    /// Deletes `bucket/key`.
    public static func delete(bucket: String, key: String) -> LocalWrite {
        LocalWrite(payload: .delete(bucket: bucket, key: key), value: nil)
    }

    /// Any other kind (writer-set changes).
    public static func other(_ payload: Payload) -> LocalWrite {
        LocalWrite(payload: payload, value: nil)
    }
}

extension LogStore {
    /// Signs and appends local writes in one transaction, each child of the one before.
    ///
    /// If the DAG has diverged (more than one head) a merge entry joining the heads is written
    /// first, so every local write descends from everything this node knows — except entries
    /// stamped beyond this node's wall clock plus its tolerance: those stay separate heads, and
    /// the writes and merges take the newest entries within the tolerance as parents instead
    /// (``parentFrontier()``), so the node never signs far in the future.
    @discardableResult
    public func append(_ writes: [LocalWrite], signer: SigningKey) throws -> [SignedEntry] {
        try database.writeTransaction {
            try refreshClock()
            try adoptNewestOwnHLC(signer.publicKey)
            writerCache.removeAll()
            // Every change this transaction records shares its id (the cursor of the first).
            changeRecorder.transaction = try nextChangeSeq()
            defer { changeRecorder.transaction = nil }
            var written: [SignedEntry] = []
            var heads = try parentFrontier().parents
            while heads.count > 1 {
                let joined = Array(heads.suffix(EntryBody.maxParents))
                let merge = try appendOne(.merge(decisions: try mergeDecisions(joining: joined.map(\.id))), value: nil, parents: joined, signer: signer)
                written.append(merge)
                heads = try parentFrontier().parents
            }
            written += try appendChain(writes, after: heads, signer: signer)
            try saveClock()
            return written
        }
    }

    private func appendOne(_ payload: Payload, value: [UInt8]?, parents: [Head], signer: SigningKey) throws -> SignedEntry {
        // The parents were chosen within the clock's ceiling: adopting them keeps invariant 3.
        if let newest = parents.map(\.hlc).max() { clock.adopt(newest) }
        let body = EntryBody(hlc: clock.now(), author: signer.publicKey, parents: parents.map(\.id), payload: payload)
        let entry: SignedEntry
        do {
            entry = try SignedEntry(signing: body, with: signer)
        } catch {
            throw StoreError.invalidEntry(error)
        }
        try authorizeAndApply(entry, value: value)
        return entry
    }

    /// The writes as a chain, each the child of the one before, the first a child of `heads`.
    /// Bodies are hashed in order (a child names its parent's id); a long chain is then signed
    /// on another core while this queue applies the entries signed so far, in order.
    private func appendChain(_ writes: [LocalWrite], after heads: [Head], signer: SigningKey) throws -> [SignedEntry] {
        if let newest = heads.map(\.hlc).max() { clock.adopt(newest) }
        var parents = heads.map(\.id)
        var unsigned: [UnsignedEntry] = []
        for write in writes {
            let body = EntryBody(hlc: clock.now(), author: signer.publicKey, parents: parents, payload: write.payload)
            do {
                unsigned.append(try UnsignedEntry(body))
            } catch {
                throw StoreError.invalidEntry(error)
            }
            parents = [unsigned[unsigned.count - 1].id]
        }
        let ids = unsigned.map(\.id.bytes)
        let pipeline = ids.count >= PipelinedSignatures.chunk && options.verifierThreads > 1 ? PipelinedSignatures(ids: ids, signer: signer) : nil
        defer { pipeline?.finish() }
        var written: [SignedEntry] = []
        for (index, write) in writes.enumerated() {
            let entry = SignedEntry(unsigned[index], signature: pipeline?.signature(index) ?? signer.sign(ids[index]))
            try authorizeAndApply(entry, value: write.value)
            written.append(entry)
        }
        return written
    }

    private func authorizeAndApply(_ entry: SignedEntry, value: [UInt8]?) throws {
        if let reason = try authorizationProblem(entry) { throw StoreError.notAuthorized(entry.author, reason) }
        if let change = WriterSetEntry(entry) { try checkWriterChange(change) }
        try apply(entry, value: value)
    }

    /// Refuses a local writer-set change that would revoke the last admin able to change the
    /// writer set, or that could never take effect (an admin revoking itself, or the admin that
    /// granted its own role: the revocation would void the authority it is signed with).
    private func checkWriterChange(_ change: WriterSetEntry) throws {
        let before = WriterSet(try storedWriterSetEntries())
        for case .revoke(let key, _) in change.events where before.admins(at: change.hlc) == [key] {
            throw StoreError.refusedWriterChange("\(key.hex.prefix(16))… is the last admin; grant another key admin before revoking it")
        }
        guard WriterSet(try storedWriterSetEntries() + [change]).effective.contains(change.id) else {
            throw StoreError.refusedWriterChange(
                "this revocation could never take effect: it voids the admin role it is signed with (an admin cannot revoke itself or its own granter); have another admin sign it")
        }
    }
}
