import CairnCore
import CairnSQLite

/// A key's standing in the writer set, derived from the live writer-set entries.
///
/// The rule is order-independent: a key may write an entry at HLC `h` iff some live grant names
/// it and no live revocation of it has `from ≤ h`. Re-adding a revoked key does not lift the
/// revocation (rotate to a new key instead), so the answer never depends on arrival order.
/// A key granted only by entries that became inert keeps that role but counts as revoked from
/// HLC zero: a node that applied its entries before the grants went inert made them all inert.
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

    /// The higher of a role so far and a granted one.
    fileprivate static func higher(_ current: Role?, _ granted: Role) -> Role {
        current == .admin || granted == .admin ? .admin : .writer
    }
}

/// A row of `cairn writers list`.
public struct WriterInfo: Sendable {
    public let key: PublicKey
    public let status: WriterStatus
}

extension LogStore {
    /// The standing of `key` in the writer set.
    public func writerStatus(_ key: PublicKey) throws -> WriterStatus {
        try database.readTransaction {
            if let cached = writerCache[key] { return cached }
            var liveRole: Role?
            var inertRole: Role?
            var revokedFrom: HLC?
            let statement = try database.prepare(Schema.writerEventsForKey).bind(.blob(key.bytes))
            while try statement.step() {
                let inert = statement.int64(2) != 0
                if !statement.isNull(0), let granted = Role(rawValue: UInt8(statement.int64(0))) {
                    if inert { inertRole = WriterStatus.higher(inertRole, granted) } else { liveRole = WriterStatus.higher(liveRole, granted) }
                }
                if !inert, !statement.isNull(1) {
                    let from = HLC(rawValue: UInt64(statement.int64(1)))
                    revokedFrom = min(revokedFrom ?? from, from)
                }
            }
            let status = liveRole == nil && inertRole != nil
                ? WriterStatus(role: inertRole, revokedFrom: .zero)
                : WriterStatus(role: liveRole, revokedFrom: revokedFrom)
            writerCache[key] = status
            return status
        }
    }

    /// Every key that appears in the writer set, with its standing.
    public func writers() throws -> [WriterInfo] {
        try database.readTransaction {
            var keys: [PublicKey] = []
            let statement = try database.prepare(Schema.writerKeys)
            while try statement.step() { keys.append(PublicKey(bytes: statement.blob(0)!)!) }
            return try keys.map { WriterInfo(key: $0, status: try writerStatus($0)) }
        }
    }

    /// Why the entry's author may not write it, or `nil` if it may.
    func authorizationProblem(_ entry: SignedEntry) throws -> RejectReason? {
        let needsAdmin: Bool
        switch entry.kind {
        case .addWriter, .revokeWriter: needsAdmin = true
        default: needsAdmin = false
        }
        return try writerStatus(entry.author).problem(for: entry.author, at: entry.hlc, needsAdmin: needsAdmin)
    }

    func recordWriterEvent(_ entryID: Hash32, key: PublicKey, role: Role?, revokedFrom: HLC?) throws {
        try database.prepare(Schema.insertWriterEvent).bind(
            .blob(entryID.bytes), .blob(key.bytes), role.map { .integer($0.rawValue) } ?? .null,
            revokedFrom.map { .integer($0.rawValue) } ?? .null
        ).run()
        writerCache.removeAll()
    }

    /// Applies a revocation to what is already stored: the key's entries at or after `from`
    /// become inert (kept in the DAG, dropped from the state), and so, transitively, do entries
    /// of keys whose only grants came from entries that just became inert.
    func applyRevocation(of key: PublicKey, from: HLC) throws {
        var pending: [(PublicKey, HLC)] = [(key, from)]
        // Keys already made inert from HLC zero here: each is done once, so grant cycles end.
        var stripped = Set<PublicKey>()
        while let (revoked, since) = pending.popLast() {
            var touched = Set<KeyPath>()
            var grantsLost: [PublicKey] = []
            let mark = try database.prepare(Schema.markInert).bind(.blob(revoked.bytes), .integer(since.rawValue))
            while try mark.step() {
                if let bucket = mark.text(0), let key = mark.text(1) { touched.insert(KeyPath(bucket: bucket, key: key)) }
            }
            let inertIDs = try inertWriterGrants(by: revoked, since: since)
            writerCache.removeAll()
            for id in inertIDs {
                // Revoked from zero now means the key just lost its last live grant.
                for granted in try grantedKeys(in: id) where try writerStatus(granted).revokedFrom == .zero {
                    if stripped.insert(granted).inserted { grantsLost.append(granted) }
                }
            }
            for path in touched { try recomputeState(bucket: path.bucket, key: path.key) }
            pending += grantsLost.map { ($0, HLC.zero) }
        }
    }

    private func inertWriterGrants(by author: PublicKey, since: HLC) throws -> [Hash32] {
        let statement = try database.prepare(Schema.writerGrantsByAuthorSince).bind(.blob(author.bytes), .integer(since.rawValue))
        var ids: [Hash32] = []
        while try statement.step() { ids.append(Hash32(bytes: statement.blob(0)!)!) }
        return ids
    }

    private func grantedKeys(in entryID: Hash32) throws -> [PublicKey] {
        let statement = try database.prepare(Schema.keysGrantedBy).bind(.blob(entryID.bytes))
        var keys: [PublicKey] = []
        while try statement.step() { keys.append(PublicKey(bytes: statement.blob(0)!)!) }
        return keys
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
