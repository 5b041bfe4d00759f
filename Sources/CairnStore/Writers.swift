import CairnCore
import CairnSQLite

/// A key's standing in the writer set, derived by the writer-set rule (``WriterSet``) from the
/// writer-set entries alone, whatever order they arrived in.
///
/// A key may write an entry at HLC `h` iff some effective grant names it and no effective
/// revocation of it has `from ≤ h`. Re-adding a revoked key does not lift the revocation
/// (rotate to a new key instead). A key granted only by entries that took no effect keeps that
/// role but counts as revoked from HLC zero.
public struct WriterStatus: Sendable, Equatable {
    /// The highest role granted, or `nil` if the key was never granted.
    public let role: Role?
    /// The earliest HLC from which the key is revoked, if any.
    public let revokedFrom: HLC?

    /// Why the key may not write at `hlc`, or `nil` if it may.
    ///
    /// The role is judged before the revocation: a node that received the entry before the
    /// revocation judged the role alone, and must reach the same verdict as one that did not.
    func problem(for key: PublicKey, at hlc: HLC, needsAdmin: Bool) -> RejectReason? {
        guard let role else { return .unknownAuthor(key) }
        if needsAdmin && role != .admin { return .notAdmin(key) }
        if let revokedFrom, hlc >= revokedFrom { return .revokedAuthor(key, since: revokedFrom) }
        return nil
    }
}

/// A row of `cairn writers list`.
public struct WriterInfo: Sendable {
    public let key: PublicKey
    public let status: WriterStatus
}

extension LogStore {
    /// The standing of `key` in the writer set.
    ///
    /// - Throws: a SQLite error, or ``StoreError/corrupt(_:)`` for an unreadable row.
    public func writerStatus(_ key: PublicKey) throws -> WriterStatus {
        if let cached = writerCache[key] { return cached }
        let status = try database.readTransaction {
            let statement = try database.prepare(Schema.writerRow).bind(.blob(key.bytes))
            guard try statement.step() else { return WriterStatus(role: nil, revokedFrom: nil) }
            return try WriterStatus(row: statement, table: "writers")
        }
        writerCache[key] = status
        return status
    }

    /// Every key that appears in the writer set, with its standing, in key order.
    ///
    /// - Throws: a SQLite error, or ``StoreError/corrupt(_:)`` for an unreadable row.
    public func writers() throws -> [WriterInfo] {
        try database.readTransaction {
            let statement = try database.prepare(Schema.writersTable)
            var out: [WriterInfo] = []
            while try statement.step() {
                guard let key = statement.blob(0).flatMap(PublicKey.init(bytes:)) else { throw StoreError.corrupt("writers: a key is not 32 bytes") }
                out.append(WriterInfo(key: key, status: try WriterStatus(row: statement, table: "writers", offset: 1)))
            }
            return out
        }
    }

    /// Why the entry's author may not sign it locally, or `nil` if it may. (Received entries
    /// are judged by the writer-set rule instead: see ``recomputeWriterSet()``.)
    func authorizationProblem(_ entry: SignedEntry) throws -> RejectReason? {
        let needsAdmin: Bool
        switch entry.kind {
        case .addWriter, .revokeWriter: needsAdmin = true
        default: needsAdmin = false
        }
        return try writerStatus(entry.author).problem(for: entry.author, at: entry.hlc, needsAdmin: needsAdmin)
    }

    func recordWriterEvents(of entry: WriterSetEntry) throws {
        for event in entry.events {
            let row: [SQLiteValue]
            switch event {
            case .grant(let key, let role): row = [.blob(key.bytes), .integer(role.rawValue), .null]
            case .revoke(let key, let from): row = [.blob(key.bytes), .null, .integer(from.rawValue)]
            }
            try database.prepare(Schema.insertWriterEvent).bind([.blob(entry.id.bytes)] + row).run()
        }
    }

    /// The writer-set entries as stored (from `writer_events`), for the writer-set rule.
    func storedWriterSetEntries() throws -> [WriterSetEntry] {
        var byID: [Hash32: WriterSetEntry] = [:]
        let statement = try database.prepare(Schema.writerSetEvents)
        while try statement.step() {
            guard let id = statement.blob(0).flatMap(Hash32.init(bytes:)), let author = statement.blob(2).flatMap(PublicKey.init(bytes:)),
                  let key = statement.blob(4).flatMap(PublicKey.init(bytes:))
            else { throw StoreError.corrupt("writer_events: an id or key is not 32 bytes") }
            let event: WriterSetEntry.Event
            if !statement.isNull(5), let role = Role(rawValue: UInt8(truncatingIfNeeded: statement.int64(5))) {
                event = .grant(key, role)
            } else if !statement.isNull(6) {
                event = .revoke(key, from: HLC(rawValue: UInt64(bitPattern: statement.int64(6))))
            } else {
                throw StoreError.corrupt("writer_events: a row is neither a grant nor a revocation")
            }
            let old = byID[id]
            byID[id] = WriterSetEntry(
                id: id, hlc: HLC(rawValue: UInt64(bitPattern: statement.int64(1))), author: author,
                isGenesis: statement.int64(3) == Int64(EntryKind.genesis.rawValue), events: (old?.events ?? []) + [event])
        }
        return Array(byID.values)
    }

    /// Brings the derived writer set up to date with the stored writer-set entries: the
    /// `writers` table, the inert flag of every writer-set entry, and, for each key whose
    /// standing changed, the inert flags of its other entries and the state of the keys they
    /// wrote. Run after every applied writer-set entry, so the store is always a function of
    /// its entry set (ARCHITECTURE.md, "The writer-set rule").
    func recomputeWriterSet() throws {
        let entries = try storedWriterSetEntries()
        let set = WriterSet(entries)
        writerCache.removeAll()
        for entry in entries where !entry.isGenesis {
            try database.prepare(Schema.setInert).bind(.blob(entry.id.bytes), .int(set.effective.contains(entry.id) ? 0 : 1)).run()
        }
        var stored: [PublicKey: WriterStatus] = [:]
        for info in try writers() { stored[info.key] = info.status }
        var touched = Set<KeyPath>()
        for key in Set(stored.keys).union(set.statuses.keys) {
            let status = set.status(of: key)
            guard stored[key] != status else { continue }
            if status.role == nil && status.revokedFrom == nil {
                try database.prepare(Schema.deleteWriter).bind(.blob(key.bytes)).run()
            } else {
                try database.prepare(Schema.upsertWriter).bind(
                    .blob(key.bytes), status.role.map { .integer($0.rawValue) } ?? .null,
                    status.revokedFrom.map { .integer($0.rawValue) } ?? .null
                ).run()
            }
            let mark = try database.prepare(Schema.markAuthorInert).bind(.blob(key.bytes), .integer(status.inertFrom.rawValue))
            while try mark.step() {
                if let bucket = mark.text(0), let key = mark.text(1) { touched.insert(KeyPath(bucket: bucket, key: key)) }
            }
        }
        writerCache.removeAll()
        for path in touched { try recomputeState(bucket: path.bucket, key: path.key) }
    }
}

extension WriterStatus {
    /// Reads `role, revoked_from` at `offset` of a row of `table`.
    init(row statement: Statement, table: String, offset: Int32 = 0) throws {
        var role: Role?
        if !statement.isNull(offset) {
            guard let r = Role(rawValue: UInt8(truncatingIfNeeded: statement.int64(offset))) else { throw StoreError.corrupt("\(table): unknown role") }
            role = r
        }
        let from = statement.isNull(offset + 1) ? nil : HLC(rawValue: UInt64(bitPattern: statement.int64(offset + 1)))
        self.init(role: role, revokedFrom: from)
    }

    /// The HLC from which the key's puts, deletes and merges are inert: zero if it may never
    /// write, past every HLC if it is not revoked.
    var inertFrom: HLC {
        guard role != nil else { return .zero }
        return revokedFrom ?? HLC(rawValue: UInt64(Int64.max))
    }
}

/// A `(bucket, key)` pair, compared by bytes.
struct KeyPath: Hashable {
    let bucket: String
    let key: String
    static func == (a: KeyPath, b: KeyPath) -> Bool {
        a.bucket.utf8.elementsEqual(b.bucket.utf8) && a.key.utf8.elementsEqual(b.key.utf8)
    }
    func hash(into hasher: inout Hasher) {
        hasher.combine(Array(bucket.utf8))
        hasher.combine(Array(key.utf8))
    }
}
