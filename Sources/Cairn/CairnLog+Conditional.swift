import CairnCore
import CairnStore

/// What a conditional write (compare-and-set) requires of a key when it commits.
public enum WriteCondition: Sendable, Equatable {
    /// The key has no live value: never written, or its winner is a delete.
    case absent
    /// The key's winning entry (a put, or a delete's tombstone) is this one.
    case current(Hash32)
}

/// A conditional write found the key elsewhere than its condition said; nothing was written.
public struct ConditionFailed: Error, Sendable, Equatable, CustomStringConvertible {
    public let bucket: String
    public let key: String
    /// The key's winning entry when the write was tried (`nil`: never written).
    public let current: Hash32?
    /// Whether the key had a live value then.
    public let live: Bool

    public var description: String {
        let now = current.map { "\(live ? "is at" : "was deleted by") entry \($0.hex)" } ?? "was never written"
        return "\(bucket)/\(key) \(now): it changed since you read it; read it again and retry"
    }
}

extension CairnLog {
    /// Sets `bucket/key` to `value` only if the key is as `condition` says when the write
    /// commits: the check runs inside the write transaction, which holds the log's write lock
    /// (other writers of this process and of other processes wait), so no write can slip between
    /// them. How an engine updates a manifest optimistically: read, compute, put if still current.
    ///
    /// - Throws: ``CairnError`` with code ``CairnError/Code/conditionFailed`` (its underlying
    ///   error a ``ConditionFailed`` naming the current winner) when the key moved on; else
    ///   as ``put(_:_:_:)-([UInt8])``.
    @discardableResult
    public func put(_ bucket: String, _ key: String, _ value: [UInt8], if condition: WriteCondition) throws(CairnError) -> SignedEntry {
        try conditionalWrite(.put(bucket: bucket, key: key, value: value), bucket, key, condition)
    }

    /// Deletes `bucket/key` only if the key is as `condition` says when the write commits (see
    /// ``put(_:_:_:if:)``). The key must have a live value, as for ``delete(_:_:)``.
    ///
    /// - Throws: ``CairnError`` with code ``CairnError/Code/conditionFailed`` when the key moved
    ///   on; ``StoreError/notFound(_:)`` when it has no live value; else as ``delete(_:_:)``.
    @discardableResult
    public func delete(_ bucket: String, _ key: String, if condition: WriteCondition) throws(CairnError) -> SignedEntry {
        try conditionalWrite(.delete(bucket: bucket, key: key), bucket, key, condition)
    }

    private func conditionalWrite(_ write: LocalWrite, _ bucket: String, _ key: String, _ condition: WriteCondition) throws(CairnError) -> SignedEntry {
        try CairnError.translating {
            try writing {
                let state = try store.state(bucket: bucket, key: key)
                let live = state.map { !$0.isDeleted } ?? false
                let holds =
                    switch condition {
                    case .absent: !live
                    case .current(let id): state?.entryID == id
                    }
                guard holds else { throw ConditionFailed(bucket: bucket, key: key, current: state?.entryID, live: live) }
                if case .delete = write.payload, !live { throw StoreError.notFound("\(bucket)/\(key) (no live value to delete)") }
                // `append` returns a merge first when the DAG had diverged; the write is last.
                guard let entry = try store.append([write], signer: signer).last else { throw StoreError.notFound("\(bucket)/\(key)") }
                return entry
            }
        }
    }
}
