/// Where the SQLite backend finds Cairn's entries and keeps its own aggregates.
///
/// The defaults match Cairn's table: `entries(seq INTEGER PRIMARY KEY AUTOINCREMENT,
/// id BLOB NOT NULL UNIQUE, hlc INTEGER NOT NULL, …)` with an index on `(hlc, id)`.
public struct SQLiteStorageConfiguration: Sendable, Equatable {
    /// The append-only table of records.
    public var entriesTable = "entries"
    /// Its monotonically growing `INTEGER PRIMARY KEY AUTOINCREMENT` column.
    public var sequenceColumn = "seq"
    /// Its 32-byte id column.
    public var idColumn = "id"
    /// Its timestamp column: a `UInt64` below 2^63 stored as `Int64(bitPattern:)`.
    public var timestampColumn = "hlc"
    /// Prefix of the backend's own tables: `<prefix>_buckets` and `<prefix>_meta`.
    public var aggregateTablePrefix = "rbsr"
    /// Items per bucket when buckets are built or split.
    public var targetBucketSize = 1024
    /// A bucket that grows past this many items is split into buckets of ``targetBucketSize``.
    public var maxBucketSize = 2048
    /// Every this many items a bucket keeps a checkpoint (key and partial id sum), so that a
    /// lookup inside a bucket decodes at most this many rows.
    public var checkpointInterval = 64
    /// How many buckets' checkpoint lists stay cached (about 72 B per checkpoint).
    public var cachedBuckets = 64
    /// How many decoded windows of ``checkpointInterval`` items stay cached (about 72 B per item).
    public var cachedWindows = 128

    /// The defaults, for Cairn's `entries` table.
    public init() {}

    var bucketsTable: String { aggregateTablePrefix + "_buckets" }
    var metaTable: String { aggregateTablePrefix + "_meta" }

    /// Throws unless every name is a plain SQL identifier (they are spliced into SQL text) and
    /// the bucket sizes make sense.
    func validate() throws(SQLiteStorageError) {
        for name in [entriesTable, sequenceColumn, idColumn, timestampColumn, aggregateTablePrefix] {
            guard Self.isPlainIdentifier(name) else { throw .invalidIdentifier(name) }
        }
        guard targetBucketSize >= 16, maxBucketSize >= targetBucketSize * 2,
              checkpointInterval >= 4, checkpointInterval <= targetBucketSize,
              cachedBuckets >= 2, cachedWindows >= 2 else {
            throw .invalidBucketSizes(target: targetBucketSize, max: maxBucketSize, interval: checkpointInterval)
        }
    }

    private static func isPlainIdentifier(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first == "_" || first.properties.isAlphabetic && first.isASCII else {
            return false
        }
        return name.unicodeScalars.allSatisfy { $0.isASCII && ($0 == "_" || $0.properties.isAlphabetic || ("0"..."9").contains($0)) }
    }
}

/// Errors of the SQLite backend beyond SQLite's own (``CairnSQLite/SQLiteError``).
public enum SQLiteStorageError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A table or column name that is not a plain identifier.
    case invalidIdentifier(String)
    /// Sizes out of range: target ≥ 16, max ≥ 2 × target, 4 ≤ checkpoint interval ≤ target,
    /// caches ≥ 2.
    case invalidBucketSizes(target: Int, max: Int, interval: Int)
    /// An entry's timestamp is negative as an `Int64`, i.e. ≥ 2^63 as a `UInt64`: SQLite's
    /// signed order would sort it first, so the backend refuses it.
    case timestampOutOfRange(sequence: Int64, storedValue: Int64)
    /// An entry's id is not 32 bytes.
    case invalidIDLength(sequence: Int64, length: Int)
    /// The stored aggregates disagree with the entries (rows deleted or updated, which Cairn's
    /// contract forbids). ``SQLiteStorage/rebuild()`` recomputes them.
    case aggregatesOutOfDate(String)

    public var description: String {
        switch self {
        case .invalidIdentifier(let name): return "'\(name)' is not a plain SQL identifier"
        case .invalidBucketSizes(let target, let max, let interval):
            return "invalid bucket sizes target=\(target) max=\(max) checkpoint interval=\(interval) (or caches < 2)"
        case .timestampOutOfRange(let sequence, let value):
            return "entry seq=\(sequence) has timestamp \(UInt64(bitPattern: value)) >= 2^63"
        case .invalidIDLength(let sequence, let length): return "entry seq=\(sequence) has a \(length)-byte id"
        case .aggregatesOutOfDate(let detail): return "reconciliation aggregates out of date: \(detail)"
        }
    }
}
