import CairnCore
import CairnStore

/// One write to a key as its history shows it: the entry, and every merge that recorded it
/// losing to a concurrent write (with the winner each named).
public struct KeyVersion: Sendable {
    public let stored: StoredEntry
    public let defeats: [Defeat]
}

extension CairnLog {
    /// How many writes `bucket/key` has had, inert ones included.
    ///
    /// - Throws: `CairnError` (code `.other`) on SQLite errors.
    public func historyCount(_ bucket: String, _ key: String) throws(CairnError) -> Int {
        try CairnError.translating { try store.historyCount(bucket: bucket, key: key) }
    }

    /// A page of `bucket/key`'s history in last-writer-wins order (oldest first): up to
    /// `limit` versions after `last` (the final version of the previous page), or from the
    /// first. Paging through a key's history this way reads it in constant memory, whatever its
    /// length; each version's defeats are found by index (`merge_defeats`), not by reading
    /// the merges written since.
    ///
    /// - Throws: `CairnError` (code `.other` for SQLite errors, `.corrupt` for a
    ///   malformed row).
    public func history(_ bucket: String, _ key: String, after last: KeyVersion?, limit: Int) throws(CairnError) -> [KeyVersion] {
        try CairnError.translating {
            try store.withDefeats { try store.historyPage(bucket: bucket, key: key, after: last?.stored.entry, limit: max(1, limit)) }
                .map { KeyVersion(stored: $0, defeats: $1) }
        }
    }

    /// The newest `count` versions of `bucket/key`, oldest first (`history -n`).
    ///
    /// - Throws: `CairnError` (code `.other` for SQLite errors, `.corrupt` for a
    ///   malformed row).
    public func history(_ bucket: String, _ key: String, newest count: Int) throws(CairnError) -> [KeyVersion] {
        try CairnError.translating {
            try store.withDefeats { try store.newestHistory(bucket: bucket, key: key, count: max(1, count)) }
                .map { KeyVersion(stored: $0, defeats: $1) }
        }
    }
}
