import CairnCore
import CairnStore

#if canImport(Glibc)
import Glibc
#endif

/// One entry in the change stream (CDC), with the state of its key around it.
public struct Change: Sendable {
    /// The resume position: pass it as `after:` to continue exactly after this change.
    public let cursor: Int64
    public let entry: SignedEntry
    /// Whether the entry is inert (its author was revoked at its HLC).
    public let inert: Bool
    /// When this node applied it (wall-clock milliseconds).
    public let ingestedMilliseconds: UInt64
    /// For a put or delete: the key's winning write among entries applied before this one.
    public let before: StoredEntry?
    /// For a put or delete: the key's winning write once this one was applied. It is this
    /// entry unless a write with a greater `(hlc, author, id)` had already landed.
    public let after: StoredEntry?

    /// The Debezium-style operation code: `c` create, `u` update, `d` delete, `m` merge,
    /// `g` genesis, `wa` writer added, `wr` writer revoked.
    public var operation: String {
        switch entry.payload {
        case .put: isLive(before) ? "u" : "c"
        case .delete: "d"
        case .merge: "m"
        case .genesis: "g"
        case .addWriter: "wa"
        case .revokeWriter: "wr"
        }
    }

    private func isLive(_ stored: StoredEntry?) -> Bool {
        guard let stored else { return false }
        if case .put = stored.entry.payload { return true }
        return false
    }
}

/// The change stream: every entry in local ingest order (parents before children), from a
/// cursor, optionally following new entries as they land — from this process or any other.
///
/// Delivery is at-least-once across restarts: a consumer that stores the cursor of the last
/// change it processed and resumes with `after:` that cursor sees no gap; if it crashed before
/// storing, it sees some changes again, and drops those with `cursor ≤` its stored one.
public struct ChangeStream: AsyncSequence, Sendable {
    public typealias Element = Change
    let databasePath: String
    let cursor: Int64
    let follow: Bool
    let pollMilliseconds: UInt64
    let batchSize: Int

    public func makeAsyncIterator() -> Iterator {
        Iterator(stream: self, cursor: cursor)
    }

    /// Reads with its own read-only connection, so it never blocks the writer; notices other
    /// connections' commits through `PRAGMA data_version` between short sleeps.
    public struct Iterator: AsyncIteratorProtocol {
        let stream: ChangeStream
        var cursor: Int64
        var store: LogStore?
        var buffered: [Change] = []
        var lastVersion: Int64 = -1

        init(stream: ChangeStream, cursor: Int64) {
            self.stream = stream
            self.cursor = cursor
        }

        public mutating func next() async throws -> Change? {
            while buffered.isEmpty {
                let store = try openStore()
                buffered = try fetch(store)
                if !buffered.isEmpty { break }
                guard stream.follow else { return nil }
                try await waitForCommit(store)
            }
            let change = buffered.removeFirst()
            cursor = change.cursor
            return change
        }

        private mutating func openStore() throws -> LogStore {
            if let store { return store }
            let opened = try LogStore.open(path: stream.databasePath, readOnly: true)
            // Read before the first fetch: a commit racing with that fetch still changes it.
            lastVersion = try opened.dataVersion()
            store = opened
            return opened
        }

        private func fetch(_ store: LogStore) throws -> [Change] {
            try store.database.readTransaction {
                try store.entries(afterSeq: cursor, limit: stream.batchSize).map { stored in
                    var before: StoredEntry?
                    var after: StoredEntry?
                    if let target = stored.entry.payload.target {
                        before = try store.winner(bucket: target.bucket, key: target.key, beforeSeq: stored.seq)
                        after = try store.winner(bucket: target.bucket, key: target.key, beforeSeq: stored.seq + 1)
                    }
                    return Change(
                        cursor: stored.seq, entry: stored.entry, inert: stored.inert,
                        ingestedMilliseconds: stored.ingestedMilliseconds, before: before, after: after)
                }
            }
        }

        private mutating func waitForCommit(_ store: LogStore) async throws {
            while true {
                try await Task.sleep(nanoseconds: stream.pollMilliseconds * 1_000_000)
                // Single-row reads leave statements on a row, holding the old snapshot open.
                store.database.resetStatements()
                let version = try store.dataVersion()
                if version != lastVersion {
                    lastVersion = version
                    return
                }
            }
        }
    }
}

extension CairnLog {
    /// The change stream after `cursor` (0: from the beginning). With `follow`, it waits for
    /// new entries instead of ending, until the task is cancelled.
    public nonisolated func changes(after cursor: Int64 = 0, follow: Bool = false, pollMilliseconds: UInt64 = 20) -> ChangeStream {
        ChangeStream(databasePath: directory.databasePath, cursor: cursor, follow: follow, pollMilliseconds: pollMilliseconds, batchSize: 500)
    }
}
