import CairnCore
import CairnStore
import CairnReconcile
import Foundation

/// A Cairn log opened from a data directory: the library's front door.
///
/// ```swift
/// let log = try await CairnLog.create(at: "/var/lib/manifests", name: "manifests")
/// try await log.put("tables", "orders/v42", Array("s3://bucket/orders-42".utf8))
/// let value = try await log.get("tables", "orders/v42")
/// for try await change in log.changes(after: 0, follow: true) { ... }
/// ```
///
/// All calls are serialized on the actor's one SQLite connection; other processes may open the
/// same directory at the same time (SQLite's WAL serializes their writes).
public actor CairnLog {
    /// The log id (the genesis entry's id).
    public nonisolated let logID: Hash32
    /// This node's public key: the author of its entries. A log opened read-only without a
    /// usable `node.key` has no node key: this is then a throwaway key made for that open
    /// (``hasNodeKey`` is `false`), which can sign nothing since the log cannot be written.
    public nonisolated let nodeKey: PublicKey
    /// Whether ``nodeKey`` is this node's key from `node.key` (always, unless opened read-only).
    public nonisolated let hasNodeKey: Bool
    /// Whether the log was opened read-only (``open(at:readOnly:options:)``): every write
    /// throws ``StoreError/readOnly(path:)``.
    public nonisolated let isReadOnly: Bool
    /// Where the log lives.
    public nonisolated let directory: DataDirectory

    let store: LogStore
    let signer: SigningKey
    /// Where every call on the log runs: its own serial queue, off the cooperative pool.
    private nonisolated let executor = StoreExecutor(label: "cairn.log")
    /// How many threads check signatures of a received batch (``StoreOptions/verifierThreads``).
    private nonisolated let verifierThreads: Int

    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }
    /// The `(hlc, id)` set-reconciliation index over the entries table (its range fingerprints
    /// are cached in the same file), loaded on first use: opening a log never touches it.
    private var loadedReconcileIndex: SQLiteStorage?
    /// Set-reconciliation sessions in progress with peers (see CairnLog+Sync.swift).
    var reconcileSessions = ReconcileSessions()

    private init(directory: DataDirectory, store: LogStore, signer: SigningKey, hasNodeKey: Bool = true, readOnly: Bool = false) {
        self.directory = directory
        self.store = store
        self.signer = signer
        self.logID = store.logID
        self.nodeKey = signer.publicKey
        self.hasNodeKey = hasNodeKey
        self.isReadOnly = readOnly
        self.verifierThreads = store.options.verifierThreads
    }

    /// The reconciliation index, loaded (and caught up with the entries) on first use: by a
    /// Negentropy session, never by opening, reading or writing.
    ///
    /// - Throws: ``StoreError/readOnly(path:)`` on a read-only log (the index may need writing);
    ///   `SQLiteError`.
    var reconcileIndex: SQLiteStorage {
        get throws {
            if let loadedReconcileIndex { return loadedReconcileIndex }
            try requireWritable()
            let index = try SQLiteStorage(database: store.database)
            loadedReconcileIndex = index
            return index
        }
    }

    /// Whether the reconciliation index has been loaded (it is only on first use).
    package var reconcileIndexIsLoaded: Bool { loadedReconcileIndex != nil }

    /// Throws ``StoreError/readOnly(path:)`` when the log was opened read-only.
    func requireWritable() throws {
        if isReadOnly { throw StoreError.readOnly(path: directory.path) }
    }

    /// Runs a store write in one transaction and, once the reconciliation index is in use,
    /// folds the new entries into it in the same transaction, so a loaded index never lags a
    /// commit. (An index not loaded yet catches up when it is: entries only grow.)
    func writing<T>(_ body: () throws -> T) throws -> T {
        try requireWritable()
        let result = try store.database.writeTransaction {
            let result = try body()
            if let loadedReconcileIndex { _ = try loadedReconcileIndex.catchUp() }
            return result
        }
        if !store.database.isInTransaction { commits.notify() }
        return result
    }

    /// Signalled after each commit this process makes to the log (the pusher waits on it).
    package nonisolated let commits = CommitSignal()

    // MARK: - Opening

    /// Creates a new log in `path` (created if needed, with its missing parent directories, like
    /// `cairn init`): a node key and a random network secret
    /// (both mode 0600), and a genesis entry naming the log, with this node as its first admin
    /// plus `writers`.
    public static func create(
        at path: String, name: String, writers: [WriterGrant] = [], options: StoreOptions = StoreOptions()
    ) throws(CairnError) -> CairnLog {
        try CairnError.translating {
            let directory = DataDirectory(path: path)
            guard !directory.exists else { throw DataDirectoryError.alreadyInitialized(path: path) }
            try directory.createDirectory()
            let key = try directory.loadOrCreateKey()
            try directory.writeNetworkSecret(secureRandomBytes(DataDirectory.networkSecretByteCount))
            var grants = [key.publicKey: Role.admin]
            for grant in writers where grant.key != key.publicKey { grants[grant.key] = grant.role }
            var clock = HybridClock(wall: options.wallClock)
            let body = EntryBody(
                hlc: clock.now(), author: key.publicKey, parents: [],
                payload: .genesis(name: name, writers: grants.map { WriterGrant(key: $0.key, role: $0.value) }.sorted { $0.key < $1.key })
            )
            let genesis = try SignedEntry(signing: body, with: key)
            let store = try LogStore.create(path: directory.databasePath, genesis: genesis, options: options)
            return CairnLog(directory: directory, store: store, signer: key)
        }
    }

    /// Creates a new node of an existing log in `path`: a fresh node key and the log's
    /// `genesis` entry, and `networkSecret` in `network.key` when given (without it the node
    /// cannot open peer sessions until the file is copied in). The node can read and sync at
    /// once; it can write once an admin grants its ``nodeKey`` (and that grant has reached it).
    public static func join(
        at path: String, genesis: SignedEntry, networkSecret: [UInt8]? = nil, options: StoreOptions = StoreOptions()
    ) throws(CairnError) -> CairnLog {
        try CairnError.translating {
            try join(at: path, genesis: genesis, networkSecret: networkSecret, nodeKey: nil, options: options) { _ in }
        }
    }

    /// Creates a new node of the log a bundle belongs to, and imports the bundle: the usual way
    /// to start a second node by file (`cairn init --from BUNDLE`). If the bundle is refused,
    /// nothing is left behind.
    ///
    /// - Parameter progress: called after each chunk of the bundle is applied.
    public static func join(
        at path: String, bundle: String, networkSecret: [UInt8]? = nil, options: StoreOptions = StoreOptions(),
        progress: (ImportProgress) throws -> Void = { _ in }
    ) throws(CairnError) -> CairnLog {
        try CairnError.translating {
            let genesis = try BundleReader.genesis(of: bundle)
            return try join(at: path, genesis: genesis, networkSecret: networkSecret, nodeKey: nil, options: options) { store in
                // A new node: no other writer yet, so no pause between chunks.
                _ = try store.importBundle(from: bundle, batchSize: 2000, pauseMicroseconds: 0, progress: progress)
            }
        }
    }

    /// Creates a new node from an invite (`cairn join TOKEN`): the invite's genesis and network
    /// secret, its node key if it carries one (already granted by the inviter; the grant arrives
    /// with the first sync) or else a fresh one, and the inviting node's address as the first
    /// peer. If anything fails, nothing is left behind.
    public static func join(at path: String, invite: Invite, options: StoreOptions = StoreOptions()) throws(CairnError) -> CairnLog {
        try CairnError.translating {
            let key = try invite.nodeSeed.map { seed in
                guard let key = SigningKey(seed: seed) else { throw InviteError.badSeed }
                return key
            }
            return try join(at: path, genesis: invite.genesis, networkSecret: invite.networkSecret, nodeKey: key, options: options) { store in
                if let address = invite.address { try store.addPeer(PeerAddress(address: address)) }
            }
        }
    }

    /// The one join path: a new directory with `nodeKey` (or a fresh or already present key),
    /// the secret, the genesis, then `fill`; on any failure the files made are removed.
    private static func join(
        at path: String, genesis: SignedEntry, networkSecret: [UInt8]?, nodeKey: SigningKey?, options: StoreOptions,
        then fill: (LogStore) throws -> Void
    ) throws -> CairnLog {
        let directory = DataDirectory(path: path)
        guard !directory.exists else { throw DataDirectoryError.alreadyInitialized(path: path) }
        try directory.createDirectory()
        do {
            let key = try nodeKey.map { key in try directory.writeKey(key); return key } ?? directory.loadOrCreateKey()
            if let networkSecret { try directory.writeNetworkSecret(networkSecret) }
            let store = try LogStore.create(path: directory.databasePath, genesis: genesis, options: options)
            try fill(store)
            return CairnLog(directory: directory, store: store, signer: key)
        } catch {
            directory.remove()
            throw error
        }
    }

    /// Opens the log in `path`. Opening is O(1): a few pages are read, nothing is written
    /// (except a pending schema migration) and no lock is held afterwards.
    ///
    /// Read-write (the default) needs the node key and a data directory this process can write.
    /// `readOnly` opens the database read-only — on read-only media or a copy without write
    /// permission, as an immutable file when SQLite cannot create `cairn.db-shm` there — and
    /// needs no node key (it uses `node.key` when it is there and private); every write then
    /// throws ``StoreError/readOnly(path:)``.
    ///
    /// - Throws: ``DataDirectoryError/missing(path:)`` without a log; ``StoreError/readOnly(path:)``
    ///   for a read-write open of a directory this process cannot write; ``DataDirectoryError``
    ///   for a missing or unsafe node key (read-write only); ``StoreError`` for a file that is
    ///   not a Cairn log or cannot be read.
    public static func open(at path: String, readOnly: Bool = false, options: StoreOptions = StoreOptions()) throws(CairnError) -> CairnLog {
        try CairnError.translating {
            let directory = DataDirectory(path: path)
            guard directory.exists else { throw DataDirectoryError.missing(path: path) }
            if readOnly {
                let store = try LogStore.open(path: directory.databasePath, options: options, readOnly: true)
                let key = try? directory.loadKey()
                return CairnLog(directory: directory, store: store, signer: key ?? SigningKey.generate(), hasNodeKey: key != nil, readOnly: true)
            }
            guard directory.isWritable else { throw StoreError.readOnly(path: path) }
            let store = try LogStore.open(path: directory.databasePath, options: options)
            guard !store.database.isReadOnly else { throw StoreError.readOnly(path: path) }
            return CairnLog(directory: directory, store: store, signer: try directory.loadKey())
        }
    }

    /// The log's network secret from `network.key` (the pre-shared key of peer sessions).
    /// Throws ``DataDirectoryError/noNetworkSecret(path:)`` when the file is missing.
    public nonisolated func networkSecret() throws(CairnError) -> [UInt8] { try CairnError.translating { try directory.loadNetworkSecret() } }

    /// The genesis entry.
    public var genesis: SignedEntry {
        get throws {
            guard let stored = try store.entry(id: logID) else { throw StoreError.notFound("genesis") }
            return stored.entry
        }
    }

    /// The log's name, from its genesis entry.
    public var name: String {
        get throws {
            guard case .genesis(let name, _) = try genesis.payload else { return "" }
            return name
        }
    }

    // MARK: - Writing

    /// Sets `bucket/key` to `value`; returns the signed entry (preceded by a merge if the DAG had diverged).
    @discardableResult
    public func put(_ bucket: String, _ key: String, _ value: [UInt8]) throws(CairnError) -> SignedEntry {
        try CairnError.translating {
            try writing { try store.append([.put(bucket: bucket, key: key, value: value)], signer: signer).last! }
        }
    }

    /// Sets `bucket/key` to `value`; returns the signed entry (preceded by a merge if the DAG had diverged).
    ///
    /// - Throws: ``StoreError/readOnly(path:)``, ``StoreError/notAuthorized(_:_:)`` (this node
    ///   may not write), SQLite errors.
    @discardableResult
    public func put(_ bucket: String, _ key: String, _ value: Data) throws(CairnError) -> SignedEntry {
        try put(bucket, key, [UInt8](value))
    }

    /// Deletes `bucket/key` (writes a tombstone). Like `cairn delete`, refuses a key without a
    /// live value (never written, or already deleted): use `write([.delete(…)])` to write a
    /// tombstone regardless.
    ///
    /// - Throws: ``StoreError/notFound(_:)`` when the key has no live value;
    ///   ``StoreError/readOnly(path:)``, ``StoreError/notAuthorized(_:_:)``, SQLite errors.
    @discardableResult
    public func delete(_ bucket: String, _ key: String) throws(CairnError) -> SignedEntry {
        try CairnError.translating {
            try writing {
                guard let state = try store.state(bucket: bucket, key: key), !state.isDeleted else {
                    throw StoreError.notFound("\(bucket)/\(key) (no live value to delete)")
                }
                return try store.append([.delete(bucket: bucket, key: key)], signer: signer).last!
            }
        }
    }

    /// Appends several writes in one transaction (much faster than one by one).
    @discardableResult
    public func write(_ writes: [LocalWrite]) throws(CairnError) -> [SignedEntry] {
        try CairnError.translating {
            try writing { try store.append(writes, signer: signer) }
        }
    }

    /// Grants `key` the right to write (this node must be an admin).
    @discardableResult
    public func addWriter(_ key: PublicKey, role: Role = .writer) throws(CairnError) -> SignedEntry {
        try CairnError.translating {
            try writing { try store.append([.other(.addWriter(WriterGrant(key: key, role: role)))], signer: signer).last! }
        }
    }

    /// Revokes `key` for entries with HLC ≥ `from` (default: from now). Entries it signed
    /// before still verify.
    @discardableResult
    public func revokeWriter(_ key: PublicKey, from: HLC? = nil) throws(CairnError) -> SignedEntry {
        try CairnError.translating {
            let since = from ?? HLC(wallMilliseconds: store.nowMilliseconds, counter: 0)
            return try writing { try store.append([.other(.revokeWriter(key: key, from: since))], signer: signer).last! }
        }
    }

    /// Erases the bytes of the current value of `bucket/key` (and of every version sharing
    /// them). Hashes and signatures still verify. Returns the purged digest.
    @discardableResult
    public func purge(_ bucket: String, _ key: String) throws(CairnError) -> Hash32 {
        try CairnError.translating {
            try requireWritable()
            guard let ref = try store.state(bucket: bucket, key: key)?.value else {
                throw StoreError.notFound("\(bucket)/\(key) has no value")
            }
            try store.purge(ref.digest)
            return ref.digest
        }
    }

    /// Erases the bytes of a value by digest.
    @discardableResult
    public func purge(digest: Hash32) throws(CairnError) -> Bool {
        try CairnError.translating {
            try requireWritable()
            return try store.purge(digest)
        }
    }

    /// Inserts entries received from elsewhere (a peer, a bundle): verified, idempotent.
    ///
    /// Decoding, ids and signatures are checked first, in parallel and outside the log; the log
    /// itself only applies what passed.
    ///
    /// - Throws: ``StoreError/readOnly(path:)``; SQLite errors (nothing is applied then).
    public nonisolated func insert(_ entries: [RawEntry]) async throws(CairnError) -> InsertReport {
        try await insert(verified: await verified(entries))
    }

    /// The first half of ``insert(_:)``: decodes a batch and checks its ids and signatures, in
    /// parallel and outside the log (a sync session checks the next batch while the log applies
    /// this one).
    package nonisolated func verified(_ entries: [RawEntry]) async -> VerifiedBatch {
        let threads = verifierThreads
        return await offTheStore { LogStore.verify(entries, threads: threads) }
    }

    /// The second half of ``insert(_:)``: applies a batch checked by ``verified(_:)``.
    ///
    /// - Throws: ``StoreError/readOnly(path:)``; SQLite errors (nothing is applied then).
    package func insert(verified: VerifiedBatch) throws(CairnError) -> InsertReport {
        try CairnError.translating {
            try requireWritable()
            return try writing { try store.insert(verified) }
        }
    }

    /// Re-checks quarantined entries now that time has passed.
    @discardableResult
    public func recheckQuarantine() throws(CairnError) -> InsertReport { try CairnError.translating { try writing { try store.recheckQuarantine() } } }

    // MARK: - Reading

    /// The current value of `bucket/key`, or `nil` if absent or deleted.
    /// Throws ``ValueError/purged`` if the value's bytes were purged.
    public func get(_ bucket: String, _ key: String) throws(CairnError) -> [UInt8]? {
        try CairnError.translating {
            guard let state = try store.state(bucket: bucket, key: key), let ref = state.value else { return nil }
            switch try store.value(ref.digest) {
            case .present(let bytes): return bytes
            case .purged: throw ValueError.purged(ref.digest)
            case .missing: throw ValueError.missing(ref.digest)
            }
        }
    }

    /// The current value of `bucket/key` as `Data`, or `nil` if absent or deleted.
    ///
    /// - Throws: ``ValueError/purged(_:)`` or ``ValueError/missing(_:)`` when the bytes are
    ///   not here; SQLite errors.
    public func get(_ bucket: String, _ key: String, as type: Data.Type) throws(CairnError) -> Data? {
        try get(bucket, key).map { Data($0) }
    }

    /// The state record of `bucket/key` (winner, HLC, author, value reference), deleted or not.
    public func state(_ bucket: String, _ key: String) throws(CairnError) -> KeyState? { try CairnError.translating { try store.state(bucket: bucket, key: key) } }

    /// The value bytes behind a digest.
    public func value(_ digest: Hash32) throws(CairnError) -> ValueLookup { try CairnError.translating { try store.value(digest) } }

    /// A page of the live keys of `bucket` with `prefix`, in byte order, after the key `after`:
    /// at most `limit` keys, and ``KeyPage/next`` to pass as `after` for the next page (`nil`
    /// when this page is the last).
    ///
    /// ```swift
    /// var page = try await log.list("tables")
    /// while true {
    ///     for state in page { print(state.key) }
    ///     guard let next = page.next else { break }
    ///     page = try await log.list("tables", after: next)
    /// }
    /// ```
    ///
    /// - Throws: ``CairnError`` (`.corrupt` for an unreadable row).
    public func list(_ bucket: String, prefix: String = "", after: String? = nil, limit: Int = 1000) throws(CairnError) -> KeyPage {
        try CairnError.translating {
            let limit = max(0, limit)
            var keys = try store.list(bucket: bucket, prefix: prefix, after: after, limit: limit == .max ? limit : limit + 1)
            guard keys.count > limit else { return KeyPage(keys: keys, next: nil) }
            keys.removeLast(keys.count - limit)
            return KeyPage(keys: keys, next: keys.last?.key)
        }
    }

    /// Buckets with live keys and their key counts.
    public func buckets() throws(CairnError) -> [(bucket: String, keys: Int)] { try CairnError.translating { try store.buckets() } }

    /// Every version of `bucket/key`, its winner, and what merges decided about it.
    public func history(_ bucket: String, _ key: String) throws(CairnError) -> KeyHistory {
        try CairnError.translating {
            KeyHistory(
                versions: try store.history(bucket: bucket, key: key),
                winner: try store.state(bucket: bucket, key: key)?.entryID,
                merges: try store.merges(deciding: bucket, key: key)
            )
        }
    }

    /// The entry with this id.
    public func entry(_ id: Hash32) throws(CairnError) -> StoredEntry? { try CairnError.translating { try store.entry(id: id) } }

    /// The entry whose id starts with `hexPrefix` (4+ hex digits).
    public func entry(prefix hexPrefix: String) throws(CairnError) -> StoredEntry { try CairnError.translating { try store.entry(prefix: hexPrefix) } }

    /// Entries matching `filter` (`cairn log`).
    public func log(_ filter: LogFilter) throws(CairnError) -> [StoredEntry] { try CairnError.translating { try store.log(filter) } }

    /// The DAG's current heads.
    public func heads() throws(CairnError) -> [Head] { try CairnError.translating { try store.heads() } }

    /// The writer set.
    public func writers() throws(CairnError) -> [WriterInfo] { try CairnError.translating { try store.writers() } }

    /// Counts for `cairn status`.
    public func counts() throws(CairnError) -> LogCounts {
        try CairnError.translating {
            let hold = try store.skewHold()
            return LogCounts(
                entries: try store.entryCount(), heads: try store.heads().count,
                orphans: try store.orphanCount() - hold.waitingForQuarantine, quarantined: hold.quarantined,
                waitingForQuarantine: hold.waitingForQuarantine, headsAhead: hold.headsAhead, lastCursor: try store.lastCursor().rawValue
            )
        }
    }

    /// What the time rules hold back now (quarantine, orphans waiting for it, heads ahead of
    /// this node's clock); see ``SkewHold``.
    public func skewHold(horizonMilliseconds: UInt64 = 3_600_000) throws(CairnError) -> SkewHold {
        try CairnError.translating { try store.skewHold(horizonMilliseconds: horizonMilliseconds) }
    }

    /// Checks every hash, signature, link and rule (see ``LogStore/verify(progress:)``).
    /// The reconciliation index's bucket aggregates are recomputed from the entries too.
    ///
    /// - Throws: SQLite errors reading the file (problems found are reported, not thrown).
    public func verify(progress: (Int, Int) -> Void = { _, _ in }) throws(CairnError) -> VerifyReport {
        try CairnError.translating {
            var report = try store.verify(progress: progress)
            report.problems += try SQLiteStorage.verify(database: store.database).map { VerifyProblem(entryID: nil, seq: nil, message: $0) }
            return report
        }
    }

    /// Runs `body` with the underlying store, on the actor (for the sync service and tools).
    package func withStore<T: Sendable>(_ body: (LogStore) throws -> T) rethrows -> T { try body(store) }
}

/// One page of ``CairnLog/list(_:prefix:after:limit:)``: the keys, and where the next page
/// starts. A collection of its keys' states.
public struct KeyPage: RandomAccessCollection, Sendable {
    /// The live keys of the page, in byte order.
    public let keys: [KeyState]
    /// The last key of this page when more follow (pass it as `after:`), else `nil`.
    public let next: String?

    public var startIndex: Int { keys.startIndex }
    public var endIndex: Int { keys.endIndex }
    public subscript(position: Int) -> KeyState { keys[position] }
}

/// Why a value cannot be returned.
public enum ValueError: Error, Equatable, CustomStringConvertible {
    /// An operator purged the bytes.
    case purged(Hash32)
    /// The bytes never arrived here.
    case missing(Hash32)

    public var description: String {
        switch self {
        case .purged(let d): "value \(d.shortHex()) was purged"
        case .missing(let d): "value \(d.shortHex()) is not stored on this node"
        }
    }
}

/// Sizes of a log, for status displays.
public struct LogCounts: Sendable {
    public let entries: Int
    public let heads: Int
    /// Entries waiting for parents this node does not hold (true orphans: it asks peers for them).
    public let orphans: Int
    /// Entries stamped beyond the skew bound, stored unapplied until the wall clock nears them.
    public let quarantined: Int
    /// Entries waiting for parents that are here but quarantined (not asked for; applied with them).
    public let waitingForQuarantine: Int
    /// Heads stamped beyond this node's wall clock plus its tolerance: no local write or merge
    /// takes them as parents until the wall clock reaches them.
    public let headsAhead: Int
    /// The newest change-stream cursor (``Cursor/rawValue``).
    public let lastCursor: Int64
}

/// Blame for one key: every version, the winner, and the merges that decided between them.
public struct KeyHistory: Sendable {
    /// Every write to the key, in LWW order (oldest first).
    public let versions: [StoredEntry]
    /// The current winner, if the key was ever written.
    public let winner: Hash32?
    /// Merge entries that recorded a decision about the key.
    public let merges: [(StoredEntry, MergeDecision)]

    /// Writes that a merge recorded as losing to a concurrent write.
    public var concurrentLosers: Set<Hash32> { Set(merges.flatMap { $0.1.losers }) }
}
