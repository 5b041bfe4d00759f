import CairnCore
import CairnStore

#if canImport(Glibc)
import Glibc
#endif

/// Cairn's version, as `cairn tail` reports it in `source.version`.
public enum CairnVersion {
    /// The version string (also the change stream's `source.version` and `cairn --version`).
    public static let string = "0.9.0"
}

/// The change stream: this node's change log from a cursor — one change per applied entry, and
/// one per other change of a key's winning value (a revocation making writes inert, a rebuild)
/// — optionally after a snapshot of the current state, optionally following new changes as they
/// land, from this process or any other.
///
/// Changes are recorded when the state changes and never recomputed: what a cursor shows never
/// changes. Delivery is at-least-once across restarts: a consumer that stores the cursor of the
/// last change it processed and resumes with `after:` that cursor sees no gap; if it crashed
/// before storing, it sees some changes again, and drops those with `cursor ≤` its stored one.
public struct ChangeStream: AsyncSequence, Sendable {
    public typealias Element = Change
    let databasePath: String
    let cursor: Cursor
    let follow: Bool
    let snapshot: Bool
    let values: Bool
    let pollMilliseconds: UInt64
    let batchSize: Int

    public func makeAsyncIterator() -> Iterator {
        Iterator(stream: self, cursor: cursor)
    }

    /// Reads with its own read-only connection, so it never blocks the writer; notices other
    /// connections' commits through `PRAGMA data_version` between short sleeps. A snapshot
    /// holds one read transaction open while its rows are consumed.
    public struct Iterator: AsyncIteratorProtocol {
        let stream: ChangeStream
        var cursor: Cursor
        var store: LogStore?
        var buffered: [Change] = []
        var next = 0
        var lastVersion: Int64 = -1
        var phase: Phase

        enum Phase {
            case snapshotNotStarted
            /// Reading the snapshot taken at `cursor`, after the key `position` (`nil`: first page).
            case snapshot(position: (bucket: String, key: String)?, cursor: Cursor)
            case streaming
        }

        /// Whether ``next()`` will return a change already read, without touching the database
        /// (a consumer flushes its output when this turns false).
        public var hasBufferedChanges: Bool { next < buffered.count }

        init(stream: ChangeStream, cursor: Cursor) {
            self.stream = stream
            self.cursor = cursor
            self.phase = stream.snapshot ? .snapshotNotStarted : .streaming
        }

        /// The next change, waiting for one when following.
        ///
        /// - Throws: `SQLiteError` or ``StoreError`` reading the log (a schema-2 file opened only
        ///   read-only has no change log: open it read-write once to migrate it);
        ///   `CancellationError` when the task is cancelled while following.
        public mutating func next() async throws -> Change? {
            while next >= buffered.count {
                let store = try openStore()
                buffered = try fetch(store)
                next = 0
                if !buffered.isEmpty { break }
                guard stream.follow else { return nil }
                try await waitForCommit(store)
            }
            let change = buffered[next]
            next += 1
            if change.cause != .snapshot { cursor = change.cursor }
            return change
        }

        /// The newest cursor of the log now, read on this iterator's own connection (never
        /// waiting on the log's writer): how far a consumer is behind is this minus the cursor
        /// it has been given.
        ///
        /// - Throws: `SQLiteError` reading the log.
        package mutating func newestCursor() throws -> Cursor {
            try openStore().lastCursor()
        }

        private mutating func openStore() throws -> LogStore {
            if let store { return store }
            let opened = try LogStore.open(path: stream.databasePath, readOnly: true)
            try opened.requireChangeLog()
            // Read before the first fetch: a commit racing with that fetch still changes it.
            lastVersion = try opened.dataVersion()
            store = opened
            return opened
        }

        private mutating func fetch(_ store: LogStore) throws -> [Change] {
            if case .snapshotNotStarted = phase {
                phase = .snapshot(position: nil, cursor: try store.beginSnapshot())
            }
            if case .snapshot(let position, let at) = phase {
                let page = try store.snapshotPage(after: position, limit: stream.batchSize, cursor: at, values: stream.values)
                if let last = page.last, !last.isLastSnapshotRow {
                    phase = .snapshot(position: (last.bucket ?? "", last.key ?? ""), cursor: at)
                    return page
                }
                try store.endSnapshot()
                phase = .streaming
                cursor = at
                if !page.isEmpty { return page }
            }
            return try store.changes(after: cursor, limit: stream.batchSize, values: stream.values)
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
    /// The change stream after `cursor` (``Cursor/start``: from the beginning).
    ///
    /// - Parameters:
    ///   - cursor: resume right after this change.
    ///   - follow: wait for new changes instead of ending, until the task is cancelled.
    ///   - snapshot: first yield every live key as a snapshot read (operation `r`, cause
    ///     `snapshot`), taken in one read transaction with the cursor it was taken at, then
    ///     continue after that cursor (`cursor` is then ignored).
    ///   - values: read the images' value bytes (``Change/beforeValue``, ``Change/afterValue``).
    public nonisolated func changes(
        after cursor: Cursor = .start, follow: Bool = false, snapshot: Bool = false, values: Bool = false,
        pollMilliseconds: UInt64 = 20
    ) -> ChangeStream {
        ChangeStream(
            databasePath: directory.databasePath, cursor: cursor, follow: follow, snapshot: snapshot, values: values,
            pollMilliseconds: pollMilliseconds, batchSize: 1000)
    }

    /// This node's cursor for the change that applied entry `id`: resuming after it continues
    /// with what this node applied next (how a consumer fails over to this node; see README).
    ///
    /// - Throws: ``StoreError/notFound(_:)`` if the entry is not applied on this node; SQLite errors.
    public func cursor(afterEntry id: Hash32) throws(CairnError) -> Cursor {
        try CairnError.translating {
            guard let cursor = try store.cursor(ofEntry: id) else { throw StoreError.notFound("entry \(id.hex) on this node") }
            return cursor
        }
    }
}
