import CairnCore
import CairnSQLite

/// An entry to send to a peer: its raw form with its value inline when small, or — for a value
/// this node holds that is larger than the inline limit — a reference to it, so the sender can
/// stream the bytes in pieces (``LogStore/valueBytes(_:offset:count:)``) instead of holding
/// whole large values in memory.
public struct OutgoingEntry: Sendable, Equatable {
    public var raw: RawEntry
    /// Set when the value is held here but was not loaded (longer than the inline limit).
    public var largeValue: ValueRef?

    public init(raw: RawEntry, largeValue: ValueRef? = nil) {
        self.raw = raw
        self.largeValue = largeValue
    }
}

extension LogStore {
    private static let valueRow = "SELECT rowid, length(data) FROM value_store WHERE digest = ?1"

    /// The applied entries among `ids`, in the given order, values up to `inlineValueLimit`
    /// bytes inline and larger held values as references.
    public func outgoingEntries(_ ids: [Hash32], inlineValueLimit: Int) throws -> [OutgoingEntry] {
        try database.readTransaction {
            try ids.compactMap { id in try entry(id: id).map { try outgoing($0, inlineValueLimit: inlineValueLimit) } }
        }
    }

    /// Up to `limit` applied entries with seq > `afterSeq`, in seq order (parents first), like
    /// ``rawEntries(afterSeq:limit:)`` but with large values as references.
    public func outgoingEntries(afterSeq: Int64, limit: Int, inlineValueLimit: Int) throws -> (entries: [OutgoingEntry], lastSeq: Int64) {
        try database.readTransaction {
            let batch = try entries(afterSeq: afterSeq, limit: limit)
            return (try batch.map { try outgoing($0, inlineValueLimit: inlineValueLimit) }, batch.last?.seq ?? afterSeq)
        }
    }

    /// `count` bytes of a held value from `offset` (incremental blob I/O: the rest of the value
    /// is not read into memory), or `nil` when its bytes are not held (purged, never received)
    /// or the range is beyond its end.
    public func valueBytes(_ digest: Hash32, offset: Int, count: Int) throws -> [UInt8]? {
        try database.readTransaction {
            guard let (rowid, length) = try valueRow(digest), offset >= 0, count >= 0, offset + count <= length else { return nil }
            return try database.readBlob(table: "value_store", column: "data", rowid: rowid, offset: offset, count: count)
        }
    }

    /// The rowid and length of a held value's bytes; `length(data)` reads no overflow pages.
    private func valueRow(_ digest: Hash32) throws -> (rowid: Int64, length: Int)? {
        let statement = try database.prepare(Self.valueRow).bind(.blob(digest.bytes))
        defer { statement.reset() }
        guard try statement.step(), !statement.isNull(1) else { return nil }
        return (statement.int64(0), statement.int(1))
    }

    private func outgoing(_ stored: StoredEntry, inlineValueLimit: Int) throws -> OutgoingEntry {
        guard case .put(_, _, let ref) = stored.entry.body.payload else { return OutgoingEntry(raw: RawEntry(stored.entry)) }
        if Int(ref.length) > inlineValueLimit {
            guard let (_, length) = try valueRow(ref.digest), length == Int(ref.length) else { return OutgoingEntry(raw: RawEntry(stored.entry)) }
            return OutgoingEntry(raw: RawEntry(stored.entry), largeValue: ref)
        }
        guard case .present(let bytes) = try value(ref.digest) else { return OutgoingEntry(raw: RawEntry(stored.entry)) }
        return OutgoingEntry(raw: RawEntry(stored.entry, value: bytes))
    }
}
