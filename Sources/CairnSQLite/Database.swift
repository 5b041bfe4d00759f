import CSQLite

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An error reported by SQLite, with the result code and SQLite's own message.
package struct SQLiteError: Error, CustomStringConvertible, Sendable {
    /// The (extended) SQLite result code, e.g. `SQLITE_BUSY`.
    package let code: Int32
    /// SQLite's message for the failure.
    package let message: String
    /// The SQL that failed, when there was one.
    package let sql: String?

    package var description: String {
        if let sql { return "SQLite error \(code): \(message) (in: \(sql))" }
        return "SQLite error \(code): \(message)"
    }
}

/// `SQLITE_TRANSIENT` is a function-pointer-cast macro and does not import into Swift.
let sqliteTransient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

/// One SQLite connection, opened through the C API.
///
/// A `Database` is not thread-safe: confine it to one task, actor or thread. Statements are
/// prepared once and cached by SQL text (``prepare(_:)``), so hot paths pay for parsing only once.
package final class Database {
    /// How a database file is opened.
    package enum OpenMode: Sendable {
        /// Open read-write; create the file if it does not exist.
        case readWriteCreate
        /// Open read-write; fail if the file does not exist.
        case readWrite
        /// Open read-only.
        case readOnly
        /// Open read-only as an immutable file (the URI `file:PATH?immutable=1`): no locks, no
        /// `-shm` or `-wal`, nothing created. Only for a file nobody writes, such as a copy on
        /// read-only media; SQLite ignores any `-wal` file in this mode.
        case readOnlyImmutable
    }

    /// SQLite's primary result codes this wrapper's callers test for.
    package enum ResultCode {
        /// `SQLITE_BUSY`: another connection holds a conflicting lock.
        public static let busy: Int32 = 5
        /// `SQLITE_READONLY`: a write to a read-only database (or one it cannot make writable).
        public static let readOnly: Int32 = 8
        /// `SQLITE_CANTOPEN`: the file (or its `-wal`/`-shm`) cannot be opened or created.
        public static let cantOpen: Int32 = 14
        /// `SQLITE_CORRUPT`: the file is damaged.
        public static let corrupt: Int32 = 11
    }

    /// The raw connection handle, for code that needs a C API call this wrapper lacks.
    package let handle: OpaquePointer
    /// The path the connection was opened at (`:memory:` for an in-memory database).
    package let path: String
    private var statements: [String: Statement] = [:]
    /// The busy handler's state; its address is the handler's context, so it lives as long as
    /// the connection.
    private let busyWait: BusyWait

    /// Opens (or creates) a database at `path`.
    ///
    /// The connection waits up to `busyTimeoutMilliseconds` for a lock held by another
    /// connection or process before failing with `SQLITE_BUSY`. It polls in 1–2 ms steps (see
    /// ``BusyWait``) rather than SQLite's default backoff of up to 100 ms, so a waiting writer
    /// gets in during another process's short pause between two transactions.
    ///
    /// - Throws: `SQLiteError` if the file cannot be opened.
    package init(path: String, mode: OpenMode = .readWriteCreate, busyTimeoutMilliseconds: Int32 = 30_000) throws {
        var db: OpaquePointer?
        let flags: Int32
        var target = path
        switch mode {
        case .readWriteCreate: flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
        case .readWrite: flags = SQLITE_OPEN_READWRITE
        case .readOnly: flags = SQLITE_OPEN_READONLY
        case .readOnlyImmutable:
            flags = SQLITE_OPEN_READONLY | SQLITE_OPEN_URI
            target = "file:" + Database.uriEscaped(path) + "?immutable=1"
        }
        let rc = sqlite3_open_v2(target, &db, flags | SQLITE_OPEN_NOMUTEX, nil)
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            if let db { sqlite3_close_v2(db) }
            throw SQLiteError(code: rc, message: message, sql: nil)
        }
        self.handle = db
        self.path = path
        self.busyWait = BusyWait(timeoutMilliseconds: Int(busyTimeoutMilliseconds))
        sqlite3_extended_result_codes(db, 1)
        sqlite3_busy_handler(db, { context, attempt in
            guard let context else { return 0 }
            return Unmanaged<BusyWait>.fromOpaque(context).takeUnretainedValue().shouldRetry(attempt: attempt) ? 1 : 0
        }, Unmanaged.passUnretained(busyWait).toOpaque())
    }

    /// `path` as the path part of an SQLite `file:` URI: every byte but unreserved characters
    /// and `/` percent-encoded (so `?`, `#` and `%` in a directory name survive).
    static func uriEscaped(_ path: String) -> String {
        var out = ""
        for byte in path.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "/"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = Array("0123456789ABCDEF".utf8)
                out += "%" + String(decoding: [hex[Int(byte >> 4)], hex[Int(byte & 15)]], as: UTF8.self)
            }
        }
        return out
    }

    /// Whether SQLite opened the main database read-only (asked to, or because the file or its
    /// directory cannot be written).
    package var isReadOnly: Bool { sqlite3_db_readonly(handle, "main") == 1 }

    deinit {
        statements.removeAll()
        sqlite3_close_v2(handle)
    }

    /// Runs one or more SQL statements that return no rows (schema, pragmas).
    package func execute(_ sql: String) throws {
        var errorMessage: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &errorMessage)
        if rc != SQLITE_OK {
            let message = errorMessage.map { String(cString: $0) } ?? lastErrorMessage
            sqlite3_free(errorMessage)
            throw SQLiteError(code: rc, message: message, sql: sql)
        }
    }

    /// Returns the cached prepared statement for `sql`, preparing it on first use.
    ///
    /// The statement is reset and its bindings cleared before it is handed out.
    package func prepare(_ sql: String) throws -> Statement {
        if let cached = statements[sql] {
            cached.reset()
            return cached
        }
        let statement = try Statement(database: self, sql: sql)
        statements[sql] = statement
        return statement
    }

    /// A new statement for `sql`, not cached: for SQL built at run time (filters), which would
    /// otherwise fill the cache with one-off texts. It is finalized when released.
    package func freshStatement(_ sql: String) throws -> Statement {
        try Statement(database: self, sql: sql, persistent: false)
    }

    /// Resets every cached statement. A statement stepped to a row and not reset keeps the
    /// connection's read snapshot open: the connection then sees no other connection's
    /// commits, and ``dataVersion()`` never changes. Call this between reads that must see
    /// new commits (a poller), never while iterating a statement.
    package func resetStatements() {
        for statement in statements.values { statement.reset() }
    }

    /// Runs `body` inside `BEGIN IMMEDIATE … COMMIT`; rolls back if `body` throws.
    ///
    /// `IMMEDIATE` takes the write lock up front, so two processes writing the same file
    /// serialize at `BEGIN` (waiting up to the busy timeout) instead of failing at commit.
    /// Called inside an open transaction, it nests as a savepoint: a throw rolls back only the
    /// inner part, and nothing is durable until the outermost transaction commits.
    package func writeTransaction<T>(_ body: () throws -> T) throws -> T {
        let nested = isInTransaction
        // A statement left on a row holds an old read snapshot, and SQLite refuses to turn a
        // stale snapshot into a write (SQLITE_BUSY_SNAPSHOT, without waiting): release it.
        if !nested { resetStatements() }
        try execute(nested ? "SAVEPOINT nested_write" : "BEGIN IMMEDIATE")
        do {
            let result = try body()
            if !nested { resetStatements() }
            try execute(nested ? "RELEASE nested_write" : "COMMIT")
            return result
        } catch {
            if !nested { resetStatements() }
            try? execute(nested ? "ROLLBACK TO nested_write; RELEASE nested_write" : "ROLLBACK")
            throw error
        }
    }

    /// Runs `body` inside a read transaction, so every query in it sees one snapshot.
    /// Inside an open transaction it simply runs `body`.
    package func readTransaction<T>(_ body: () throws -> T) throws -> T {
        if isInTransaction { return try body() }
        try execute("BEGIN DEFERRED")
        do {
            let result = try body()
            resetStatements()
            try execute("COMMIT")
            return result
        } catch {
            resetStatements()
            try? execute("ROLLBACK")
            throw error
        }
    }

    /// Whether the connection is inside an explicit transaction.
    package var isInTransaction: Bool { sqlite3_get_autocommit(handle) == 0 }

    /// Rows changed by the most recent INSERT, UPDATE or DELETE.
    package var changes: Int { Int(sqlite3_changes(handle)) }

    /// The rowid of the most recent successful INSERT on this connection.
    package var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }

    /// `PRAGMA data_version`: changes whenever another connection commits to the file.
    package func dataVersion() throws -> Int64 {
        let statement = try prepare("PRAGMA data_version")
        defer { statement.reset() }
        guard try statement.step() else { return 0 }
        return statement.int64(0)
    }

    /// Pages this connection has read from the file (page-cache misses,
    /// `SQLITE_DBSTATUS_CACHE_MISS`) since it opened or since the last `reset`. Tests use it to
    /// check how much of the file a query reads, without timing anything.
    package func cacheMisses(reset: Bool = false) -> Int {
        var current: Int32 = 0
        var highwater: Int32 = 0
        sqlite3_db_status(handle, SQLITE_DBSTATUS_CACHE_MISS, &current, &highwater, reset ? 1 : 0)
        return Int(current)
    }

    var lastErrorMessage: String { String(cString: sqlite3_errmsg(handle)) }

    func error(_ code: Int32, sql: String?) -> SQLiteError {
        SQLiteError(code: code, message: lastErrorMessage, sql: sql)
    }
}

/// The busy handler of a connection: while another connection holds a conflicting lock, retry
/// every 1 ms (2 ms after the first 100 tries) until the timeout, measured on the monotonic
/// clock from the first try. Short steps matter: SQLite's default busy timeout backs off to
/// 100 ms sleeps, so a waiting writer can miss every short gap between another process's
/// transactions (a bundle import commits in chunks) and starve.
final class BusyWait {
    let timeoutMilliseconds: Int
    private var startedNanoseconds: UInt64 = 0

    init(timeoutMilliseconds: Int) { self.timeoutMilliseconds = timeoutMilliseconds }

    /// Called by SQLite with the number of earlier tries for this lock; `true`: try again.
    func shouldRetry(attempt: Int32) -> Bool {
        let now = Self.monotonicNanoseconds()
        if attempt == 0 { startedNanoseconds = now }
        guard timeoutMilliseconds > 0, now - startedNanoseconds < UInt64(timeoutMilliseconds) * 1_000_000 else { return false }
        usleep(attempt < 100 ? 1_000 : 2_000)
        return true
    }

    private static func monotonicNanoseconds() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }
}

/// A prepared statement. Obtain one from ``Database/prepare(_:)``; bind with 1-based indices.
package final class Statement {
    let pointer: OpaquePointer
    unowned let database: Database
    /// The SQL text of the statement.
    package let sql: String

    init(database: Database, sql: String, persistent: Bool = true) throws {
        var statement: OpaquePointer?
        let rc = sqlite3_prepare_v3(database.handle, sql, -1, persistent ? UInt32(SQLITE_PREPARE_PERSISTENT) : 0, &statement, nil)
        guard rc == SQLITE_OK, let statement else { throw database.error(rc, sql: sql) }
        self.pointer = statement
        self.database = database
        self.sql = sql
    }

    deinit { sqlite3_finalize(pointer) }

    /// Resets the statement and clears its bindings.
    package func reset() {
        sqlite3_reset(pointer)
        sqlite3_clear_bindings(pointer)
    }

    /// Binds the values in order, starting at parameter 1, after a reset.
    @discardableResult
    package func bind(_ values: SQLiteValue...) throws -> Statement {
        try bind(values)
    }

    /// Binds the values in order, starting at parameter 1, after a reset.
    @discardableResult
    package func bind(_ values: [SQLiteValue]) throws -> Statement {
        reset()
        for (offset, value) in values.enumerated() {
            try bind(value, at: Int32(offset + 1))
        }
        return self
    }

    /// Binds one value at a 1-based parameter index.
    package func bind(_ value: SQLiteValue, at index: Int32) throws {
        let rc: Int32
        switch value {
        case .null: rc = sqlite3_bind_null(pointer, index)
        case .int(let v): rc = sqlite3_bind_int64(pointer, index, v)
        case .double(let v): rc = sqlite3_bind_double(pointer, index, v)
        case .text(let v):
            // Bind exactly the UTF-8 bytes: with length -1 SQLite would stop at the first NUL,
            // and "a\0x" and "a\0y" would both bind as "a".
            var text = v
            rc = text.withUTF8 { utf8 in
                // Empty text must still bind as text, not NULL: pass a valid pointer.
                guard let base = utf8.baseAddress, !utf8.isEmpty else { return sqlite3_bind_text(pointer, index, "", 0, sqliteTransient) }
                return UnsafeRawPointer(base).withMemoryRebound(to: CChar.self, capacity: utf8.count) {
                    sqlite3_bind_text(pointer, index, $0, Int32(utf8.count), sqliteTransient)
                }
            }
        case .blob(let bytes):
            rc = bytes.withUnsafeBytes { raw in
                // A zero-length blob must still bind as a blob, not NULL: pass a valid pointer.
                sqlite3_bind_blob(pointer, index, raw.baseAddress ?? UnsafeRawPointer(bitPattern: 1), Int32(raw.count), sqliteTransient)
            }
        }
        guard rc == SQLITE_OK else { throw database.error(rc, sql: sql) }
    }

    /// Advances to the next row. Returns `true` if a row is available, `false` when done.
    @discardableResult
    package func step() throws -> Bool {
        let rc = sqlite3_step(pointer)
        switch rc {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default:
            let error = database.error(rc, sql: sql)
            sqlite3_reset(pointer)
            throw error
        }
    }

    /// Runs the statement to completion, ignoring any rows.
    package func run() throws {
        while try step() {}
    }

    /// The name of result column `index` (0-based), for messages.
    package func columnName(_ index: Int32) -> String {
        sqlite3_column_name(pointer, index).map { String(cString: $0) } ?? "#\(index)"
    }

    /// Whether column `index` (0-based) of the current row is NULL.
    package func isNull(_ index: Int32) -> Bool { sqlite3_column_type(pointer, index) == SQLITE_NULL }

    /// Column `index` (0-based) of the current row as a 64-bit integer.
    package func int64(_ index: Int32) -> Int64 { sqlite3_column_int64(pointer, index) }

    /// Column `index` of the current row as an `Int`.
    package func int(_ index: Int32) -> Int { Int(sqlite3_column_int64(pointer, index)) }

    /// Column `index` of the current row as a `Double`.
    package func double(_ index: Int32) -> Double { sqlite3_column_double(pointer, index) }

    /// Column `index` of the current row as text, or `nil` when NULL.
    ///
    /// Decodes exactly the column's bytes (`sqlite3_column_bytes`) as UTF-8, so an embedded
    /// U+0000 is kept rather than ending the string.
    package func text(_ index: Int32) -> String? {
        // sqlite3_column_text first, then sqlite3_column_bytes: the byte count is of the text form.
        guard let c = sqlite3_column_text(pointer, index) else { return nil }
        let count = Int(sqlite3_column_bytes(pointer, index))
        return String(decoding: UnsafeBufferPointer(start: c, count: count), as: UTF8.self)
    }

    /// Column `index` of the current row as bytes, or `nil` when NULL.
    package func blob(_ index: Int32) -> [UInt8]? {
        if isNull(index) { return nil }
        let count = Int(sqlite3_column_bytes(pointer, index))
        guard count > 0, let base = sqlite3_column_blob(pointer, index) else { return [] }
        return Array(UnsafeRawBufferPointer(start: base, count: count))
    }

    /// Calls `body` with column `index`'s bytes in place, without copying them.
    /// The buffer is valid only during the call.
    package func withBlob<T>(_ index: Int32, _ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
        let count = Int(sqlite3_column_bytes(pointer, index))
        let base = sqlite3_column_blob(pointer, index)
        return try body(UnsafeRawBufferPointer(start: count > 0 ? base : nil, count: count))
    }
}

/// A value bound to a statement parameter.
package enum SQLiteValue: Sendable {
    case null
    case int(Int64)
    case double(Double)
    case text(String)
    case blob([UInt8])

    /// An integer value from any fixed-width integer, clamped to SQLite's signed 64-bit range:
    /// a bound from outside (an HLC cursor of 2^64 − 1 in a request) never traps. Stored HLCs
    /// are below 2^63, so a clamped bound still orders as the unclamped one would.
    package static func integer<I: BinaryInteger>(_ value: I) -> SQLiteValue { .int(Int64(clamping: value)) }
}
