import CairnCore
import CairnSQLite

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Tunables of a store; the defaults suit most deployments.
public struct StoreOptions: Sendable {
    /// How far ahead of this node's wall clock a remote entry's HLC may be before it is
    /// quarantined instead of applied. Default: 5 minutes.
    public var maxFutureSkewMilliseconds: UInt64 = 5 * 60 * 1000
    /// How far ahead of this node's wall clock an HLC taken from another node's entry may move
    /// this node's clock, and so the HLCs it signs. An applied entry stamped further ahead (up to
    /// ``maxFutureSkewMilliseconds``) is kept and applied, but no local write or merge takes it
    /// as a parent until the wall clock comes within this tolerance of it (ARCHITECTURE.md,
    /// invariant 5). Default: 1 second; keep it well below the skew bound.
    public var clockToleranceMilliseconds: UInt64 = 1000
    /// Most orphans (entries waiting for parents) kept; beyond it new orphans are rejected.
    public var orphanLimit = 100_000
    /// The wall clock behind the HLC and the skew check; replaceable in tests.
    public var wallClock: any WallClock = SystemWallClock()
    /// Verify signatures on this many threads during a batch insert (libsodium is thread-safe).
    public var verifierThreads = 2
    /// How long a connection waits for another connection's lock (polling every 1–2 ms)
    /// before failing with `SQLITE_BUSY`. Default: 30 s.
    public var busyTimeoutMilliseconds: Int32 = 30_000

    public init() {}
}

/// Errors of opening, creating and writing a log store.
public enum StoreError: Error, Equatable, CustomStringConvertible {
    /// The file is not a Cairn log (no Cairn metadata).
    case notACairnLog(path: String)
    /// The file was written by an incompatible Cairn version.
    case unsupportedSchema(found: Int64, expected: Int64)
    /// `create` was asked to create a log where one exists.
    case alreadyExists(path: String)
    /// No entry, key or value matches.
    case notFound(String)
    /// A hex prefix matches more than one entry.
    case ambiguousPrefix(String)
    /// The signing key may not write this entry (unknown, revoked or not an admin).
    case notAuthorized(PublicKey, RejectReason)
    /// A local entry failed a format rule.
    case invalidEntry(EntryFormatError)
    /// A stored row cannot be read (it names the table): run `verify`, then `verify --repair`.
    case corrupt(String)
    /// A writer-set change that would leave the log without an admin, or that could never take
    /// effect (an admin revoking itself): the reason says which.
    case refusedWriterChange(String)
    /// The log cannot be written: opened read-only, on read-only media, or without write
    /// permission. `path` is the data directory (or the file, for a bare store).
    case readOnly(path: String)
    /// A read-only open of a file whose write-ahead log (`-wal`) holds commits, where SQLite can
    /// neither find nor create the `-shm` index it needs to read them (read-only media).
    case unreadableWriteAheadLog(path: String)

    public var description: String {
        switch self {
        case .notACairnLog(let path): "\(path) is not a Cairn log"
        case .unsupportedSchema(let found, let expected): "log schema version \(found) is not supported (expected \(expected))"
        case .alreadyExists(let path): "a Cairn log already exists at \(path)"
        case .notFound(let what): "not found: \(what)"
        case .ambiguousPrefix(let prefix): "entry id prefix \(prefix) is ambiguous"
        case .notAuthorized(let key, let reason): "key \(key.hex.prefix(16))… may not write: \(reason)"
        case .invalidEntry(let error): "invalid entry: \(error)"
        case .corrupt(let what): "the log is corrupt: \(what) (run `cairn verify`)"
        case .refusedWriterChange(let reason): reason
        case .readOnly(let path): "the log at \(path) is read-only (read-only media, no write permission, or opened read-only): it cannot be written"
        case .unreadableWriteAheadLog(let path):
            "cannot read \(path) read-only: its write-ahead log (-wal) holds commits, and its -shm file is missing and cannot be created here; copy the directory to writable storage"
        }
    }
}

/// A Cairn log in one SQLite file: entries, their DAG, the materialized state, and the
/// bookkeeping of sync (orphans, quarantine, writers).
///
/// Opening is O(1): nothing is replayed. A `LogStore` is a single connection and is not
/// thread-safe; several processes may open the same file (SQLite WAL serializes writers).
package final class LogStore {
    /// The connection, for modules that keep their own tables in the same file (reconciliation).
    public let database: Database
    /// The log id: the id of the genesis entry.
    public let logID: Hash32
    /// The options the store was opened with.
    public let options: StoreOptions
    var clock: HybridClock
    var writerCache: [PublicKey: WriterStatus] = [:]
    /// Ids whose waiting orphans are still to be released, while a release is running
    /// (`nil` otherwise): the work list that replaces recursion in `releaseOrphans`.
    var releaseQueue: [Hash32]?
    /// The change-log bookkeeping of the write in progress (see ChangeLog.swift).
    var changeRecorder = ChangeRecorder()
    /// Whether `merge_defeats` can be read: schema 5, or (for an older file opened read-only)
    /// once a temporary copy has been filled on first use (MergeDefeats.swift).
    var mergeDefeatsReady: Bool

    private init(database: Database, logID: Hash32, options: StoreOptions, schemaVersion: Int64 = Schema.version) throws {
        self.database = database
        self.mergeDefeatsReady = schemaVersion >= 5
        self.logID = logID
        self.options = options
        self.clock = HybridClock(wall: options.wallClock, tolerance: options.clockToleranceMilliseconds)
        try refreshClock()
    }

    /// Creates a new log file at `path` holding `genesis`, a signed genesis entry.
    public static func create(path: String, genesis: SignedEntry, options: StoreOptions = StoreOptions()) throws -> LogStore {
        guard case .genesis = genesis.payload else { throw StoreError.invalidEntry(.missingParents) }
        guard genesis.hasValidSignature else { throw StoreError.notAuthorized(genesis.author, .badSignature) }
        let db = try Database(path: path, mode: .readWriteCreate, busyTimeoutMilliseconds: options.busyTimeoutMilliseconds)
        try db.execute(Schema.pragmas)
        let hasTables = try db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'meta'")
        if try hasTables.step() { throw StoreError.alreadyExists(path: path) }
        try db.writeTransaction {
            try db.execute(Schema.create)
            try putMeta(db, "schema_version", .int(Schema.version))
            try putMeta(db, "log_id", .blob(genesis.id.bytes))
        }
        let store = try LogStore(database: db, logID: genesis.id, options: options)
        try store.database.writeTransaction {
            try store.apply(genesis, value: nil)
            try store.saveClock()
        }
        return store
    }

    /// Opens an existing log file.
    ///
    /// `readOnly` opens a read-only connection that never writes (no migration, no pragma). On
    /// read-only media (or a copy this process cannot write), SQLite cannot create the `-shm`
    /// file a WAL database needs; the file is then opened immutable (`file:PATH?immutable=1`),
    /// which is exact as long as no `-wal` file holds commits — otherwise the open fails with
    /// ``StoreError/unreadableWriteAheadLog(path:)`` rather than show an older state.
    ///
    /// - Throws: ``StoreError/notACairnLog(path:)``, ``StoreError/unsupportedSchema(found:expected:)``,
    ///   ``StoreError/readOnly(path:)`` (a read-write open SQLite can only read),
    ///   ``StoreError/unreadableWriteAheadLog(path:)``; `SQLiteError` from a migration, or
    ///   `SQLITE_BUSY` when another connection holds a lock past the busy timeout.
    public static func open(path: String, options: StoreOptions = StoreOptions(), readOnly: Bool = false) throws -> LogStore {
        let db: Database
        let version: Int64
        let logID: Hash32
        if readOnly {
            do {
                (db, version, logID) = try connect(path: path, mode: .readOnly, options: options)
            } catch let error as SQLiteError where cannotInitializeSharedMemory(error) {
                guard !hasWriteAheadContent(path) else { throw StoreError.unreadableWriteAheadLog(path: path) }
                (db, version, logID) = try mapped(path) { try connect(path: path, mode: .readOnlyImmutable, options: options) }
            } catch let error as SQLiteError where error.code & 0xff == Database.ResultCode.busy {
                throw error  // another process held a lock past the busy timeout: not a format problem
            } catch let error as SQLiteError where error.code & 0xff == Database.ResultCode.corrupt {
                throw error  // a Cairn log, damaged: the caller says so, not "not a Cairn log"
            } catch is SQLiteError {
                throw StoreError.notACairnLog(path: path)
            }
        } else {
            do {
                (db, version, logID) = try connect(path: path, mode: .readWrite, options: options)
            } catch let error as SQLiteError where error.code & 0xff == Database.ResultCode.readOnly && access(path, F_OK) == 0 {
                throw StoreError.readOnly(path: path)
            } catch let error as SQLiteError where error.code & 0xff == Database.ResultCode.busy || error.code & 0xff == Database.ResultCode.corrupt {
                throw error
            } catch is SQLiteError {
                throw StoreError.notACairnLog(path: path)
            }
        }
        guard (1...Schema.version).contains(version) else {
            throw StoreError.unsupportedSchema(found: version, expected: Schema.version)
        }
        // A read-only connection cannot migrate; it reads an older file's tables as they are
        // (only the newer tables are missing), and the next read-write open migrates it.
        if version < Schema.version && !readOnly { try migrate(db) }
        let store = try LogStore(database: db, logID: logID, options: options, schemaVersion: readOnly ? version : Schema.version)
        // Version 3 derives the writer set into its own table: fill it from the entries.
        if version < 3 && !readOnly {
            try store.database.writeTransaction {
                try store.recomputeWriterSet()
                try store.flushRebuildChanges()
            }
        }
        // Files made by development builds of schema 3 before the change log existed.
        if version == 3 && !readOnly { try store.addMissingChangeLog() }
        return store
    }

    /// Opens `path` and reads the schema version and log id: a couple of pages. SQLite errors
    /// pass through (the caller decides what they mean); a file without Cairn metadata throws
    /// ``StoreError/notACairnLog(path:)``.
    private static func connect(path: String, mode: Database.OpenMode, options: StoreOptions) throws -> (Database, Int64, Hash32) {
        let db = try Database(path: path, mode: mode, busyTimeoutMilliseconds: options.busyTimeoutMilliseconds)
        if mode == .readWrite { try db.execute(Schema.pragmas) }
        guard let version = try metaInt(db, "schema_version"),
            let id = try metaBlob(db, "log_id").flatMap(Hash32.init(bytes:))
        else { throw StoreError.notACairnLog(path: path) }
        return (db, version, id)
    }

    /// Runs `body`, turning any SQLite error into ``StoreError/notACairnLog(path:)``.
    private static func mapped<T>(_ path: String, _ body: () throws -> T) throws -> T {
        do { return try body() } catch is SQLiteError { throw StoreError.notACairnLog(path: path) }
    }

    /// Whether a read-only connection failed because SQLite could not open or create the
    /// WAL's `-shm` file (or the `-wal` itself) next to the database.
    private static func cannotInitializeSharedMemory(_ error: SQLiteError) -> Bool {
        let primary = error.code & 0xff
        return primary == Database.ResultCode.readOnly || primary == Database.ResultCode.cantOpen
    }

    /// Whether `path-wal` exists and is not empty (it may hold commits not yet in the file).
    private static func hasWriteAheadContent(_ path: String) -> Bool {
        var info = stat()
        return stat(path + "-wal", &info) == 0 && info.st_size > 0
    }

    /// Brings an older file up to ``Schema/version`` in one transaction. The version is read
    /// again under the write lock: another process may have migrated the file meanwhile.
    private static func migrate(_ db: Database) throws {
        try db.writeTransaction {
            var version = try metaInt(db, "schema_version") ?? Schema.version
            while version < Schema.version {
                guard let step = Schema.migrations[version] else {
                    throw StoreError.unsupportedSchema(found: version, expected: Schema.version)
                }
                // A statement left on a row (the meta reads) would make DROP TABLE fail with
                // SQLITE_LOCKED.
                db.resetStatements()
                try db.execute(step)
                if version == 4 { try fillMergeDefeats(in: db) }
                version += 1
            }
            try putMeta(db, "schema_version", .int(version))
        }
    }

    // MARK: - Clock

    /// Brings the in-memory clock up to what any process has issued or stored, so that a new
    /// local HLC is above all of them — within the clock's tolerance: a stored entry stamped
    /// beyond `wall + tolerance` (from a node with a fast clock) is not adopted; the newest one
    /// within it is. Cheap: two or three indexed lookups. `meta.clock` is this node's own clock,
    /// adopted unconditionally.
    func refreshClock() throws {
        if let saved = try LogStore.metaInt(database, "clock") { clock.adopt(HLC(rawValue: UInt64(saved))) }
        guard let stored = try maxStoredHLC(), !clock.observe(stored) else { return }
        if let admitted = try maxStoredHLC(atMost: clock.ceiling()) { clock.observe(admitted) }
    }

    /// Before signing for `author`: the clock adopts the newest HLC `author` signed, applied or
    /// waiting in the orphan pool, so a node never signs at or below its own entries (another
    /// process with the same key, this node's wall clock stepped back, or its own entries from
    /// before a restore arriving children-first), whatever the tolerance. One indexed lookup,
    /// and a pass over the orphan pool's body prefixes when it is not empty.
    func adoptNewestOwnHLC(_ author: PublicKey) throws {
        let statement = try database.prepare(Schema.maxHLCByAuthor).bind(.blob(author.bytes))
        if try statement.step(), !statement.isNull(0) { clock.adopt(HLC(rawValue: UInt64(statement.int64(0)))) }
        guard try orphanCount() > 0 else { return }
        let orphans = try database.prepare(Schema.maxOrphanHLCByAuthor).bind(.blob(author.bytes))
        if try orphans.step(), let bytes = orphans.blob(0), bytes.count == 8 {
            clock.adopt(HLC(rawValue: bytes.reduce(0) { $0 << 8 | UInt64($1) }))
        }
    }

    /// Persists the clock so a restart never issues a smaller HLC, even if the wall clock jumped
    /// back. The entries themselves persist their HLCs, so `meta.clock` is written only when
    /// the clock is ahead of every stored entry (it saves a page write per transaction).
    func saveClock() throws {
        guard clock.last > (try maxStoredHLC() ?? .zero) else { return }
        try LogStore.putMeta(database, "clock", .int(Int64(clock.last.rawValue)))
    }

    private func maxStoredHLC() throws -> HLC? {
        let statement = try database.prepare(Schema.maxHLC)
        guard try statement.step(), !statement.isNull(0) else { return nil }
        return HLC(rawValue: UInt64(statement.int64(0)))
    }

    private func maxStoredHLC(atMost bound: HLC) throws -> HLC? {
        let statement = try database.prepare(Schema.maxHLCAtMost).bind(.integer(bound.rawValue))
        guard try statement.step(), !statement.isNull(0) else { return nil }
        return HLC(rawValue: UInt64(statement.int64(0)))
    }

    /// The greatest HLC this store has issued or seen.
    public var lastHLC: HLC { clock.last }

    /// The current wall-clock time in milliseconds, from the store's clock source.
    public var nowMilliseconds: UInt64 { clock.physicalMilliseconds() }

    // MARK: - Meta

    static func metaInt(_ db: Database, _ name: String) throws -> Int64? {
        let statement = try db.prepare(Schema.getMeta).bind(.text(name))
        return try statement.step() ? statement.int64(0) : nil
    }

    static func metaBlob(_ db: Database, _ name: String) throws -> [UInt8]? {
        let statement = try db.prepare(Schema.getMeta).bind(.text(name))
        return try statement.step() ? statement.blob(0) : nil
    }

    static func putMeta(_ db: Database, _ name: String, _ value: SQLiteValue) throws {
        try db.prepare(Schema.putMeta).bind(.text(name), value).run()
    }

    /// The current `PRAGMA data_version`: it changes when another connection commits.
    public func dataVersion() throws -> Int64 { try database.dataVersion() }
}
