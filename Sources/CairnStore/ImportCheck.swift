import CairnCore
import CairnSQLite

/// Why an import refuses an entry before anything is applied: a ``RejectReason`` the store
/// would give, or a parent that is neither earlier in the import nor applied here.
public enum ImportRefusal: Error, Equatable, Sendable, CustomStringConvertible {
    /// The store would refuse the entry.
    case rejected(RejectReason)
    /// A parent that is neither earlier in the import nor applied in the store.
    case unknownParent(Hash32)

    public var description: String {
        switch self {
        case .rejected(let reason): reason.description
        case .unknownParent(let parent): "parent \(parent.shortHex()) is neither earlier in the bundle nor in this log"
        }
    }
}

/// The first pass of an all-or-nothing import: every entry checked, in order, for everything
/// that could make the store refuse it — encoding, id, signature, value, another log's
/// genesis, parents (earlier in the import or applied here), HLC above each parent, author
/// granted a role (here or earlier in the import) and admin for writer-set changes — against
/// one read snapshot, before anything is applied.
///
/// Memory is bounded by the import's size at about 50 bytes per entry not yet applied here
/// (its id and HLC); entries, bodies and values are not kept. Because a store only grows, an
/// entry that passed keeps passing, so the checked entries can then be applied in several
/// short write transactions (``LogStore/insertChecked(_:)``) while other writers get turns.
package struct ImportCheck {
    /// HLCs of the entries seen so far that were not applied here, by id.
    private var pending: [IDKey: UInt64] = [:]
    /// Roles granted by writer-set entries seen so far.
    private var granted: [PublicKey: Role] = [:]
    /// Entries checked.
    package internal(set) var entries = 0
    /// The first refusals (at most ``refusalLimit``), by index in the import.
    package private(set) var refusals: [(index: Int, reason: ImportRefusal)] = []
    /// How many entries were refused in all.
    package private(set) var refusedCount = 0
    /// Most refusals kept for the report.
    package static let refusalLimit = 100

    /// A check of an import of about `expectedEntries` entries (a hint: memory for that many
    /// ids is reserved up front, so the table never grows by copying).
    package init(expectedEntries: Int = 0) {
        pending.reserveCapacity(max(expectedEntries, 0))
    }

    mutating func refuse(_ index: Int, _ reason: ImportRefusal) {
        refusedCount += 1
        if refusals.count < Self.refusalLimit { refusals.append((index, reason)) }
    }

    /// The HLC of a parent seen earlier in the import and not applied here.
    func pendingHLC(of id: Hash32) -> HLC? { pending[IDKey(id)].map { HLC(rawValue: $0) } }

    mutating func remember(_ entry: SignedEntry) { pending[IDKey(entry.id)] = entry.hlc.rawValue }

    func grantedRole(_ key: PublicKey) -> Role? { granted[key] }

    mutating func grant(_ key: PublicKey, _ role: Role) {
        if granted[key] != .admin { granted[key] = role }
    }
}

/// A digest as four words: a 32-byte key stored inline (a `Hash32` holds a heap array).
/// An id in the check's table: its first 128 bits. 24 bytes an entry with the HLC instead of
/// 40, which keeps a 1M-entry import under 100 MB. Two ids sharing a 128-bit prefix take about
/// 2^64 hashes to find; if a bundle held such a pair, an entry could pass the check on the
/// wrong parent and then wait as an orphan at apply time instead of refusing the whole import.
private struct IDKey: Hashable {
    let a: UInt64, b: UInt64

    init(_ id: Hash32) {
        var words = (UInt64(0), UInt64(0))
        id.bytes.withUnsafeBytes { raw in
            words = (raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self), raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        }
        (a, b) = words
    }
}

extension LogStore {
    /// Checks the next `batch` of an import (see ``ImportCheck``): decodes and verifies it on
    /// ``StoreOptions/verifierThreads`` threads, then runs the store-side checks in order.
    /// Writes nothing. Call it inside one read transaction for the whole import, so every
    /// batch sees the same snapshot.
    ///
    /// - Throws: `SQLiteError` if the store cannot be read.
    package func check(_ batch: [RawEntry], into check: inout ImportCheck) throws {
        if check.entries == 0 { writerCache.removeAll() }  // judge by this snapshot only
        // Entries already applied here are duplicates, whatever else the bundle says of them:
        // they are recognised by their id (a hash of the body) before the costly signature
        // checks, so re-importing a bundle of known entries costs a hash and a lookup each.
        var decoded = [Result<SignedEntry, RejectReason>?](repeating: nil, count: batch.count)
        var unknown: [Int] = []
        try database.readTransaction {
            for (index, raw) in batch.enumerated() {
                if let entry = try? SignedEntry(bodyBytes: raw.body, signature: raw.signature),
                    raw.claimedID == nil || raw.claimedID == entry.id,
                    try entry.id == logID || storedHLC(of: entry.id) != nil
                {
                    decoded[index] = .success(entry)
                } else {
                    unknown.append(index)
                }
            }
        }
        for (result, index) in zip(LogStore.verify(unknown.map { batch[$0] }, threads: options.verifierThreads).results, unknown) { decoded[index] = result }
        try database.readTransaction {
            for (offset, result) in decoded.enumerated() {
                let index = check.entries + offset
                switch result! {
                case .failure(let reason): check.refuse(index, .rejected(reason))
                case .success(let entry):
                    if let refusal = try refusal(of: entry, value: batch[offset].value, check: &check) { check.refuse(index, refusal) }
                }
            }
        }
        check.entries += batch.count
    }

    /// Why the store would refuse `entry` after the entries checked before it, or `nil`.
    private func refusal(of entry: SignedEntry, value: [UInt8]?, check: inout ImportCheck) throws -> ImportRefusal? {
        if entry.id == logID { return nil }  // this log's genesis: a duplicate
        if case .genesis = entry.payload { return .rejected(.foreignGenesis) }
        if try storedHLC(of: entry.id) != nil { return nil }  // applied here: a duplicate
        if let value {
            guard case .put(_, _, let ref) = entry.payload else { return .rejected(.unexpectedValue) }
            guard ValueRef(of: value) == ref else { return .rejected(.valueMismatch) }
        }
        for parent in entry.parents {
            guard let hlc = try check.pendingHLC(of: parent) ?? storedHLC(of: parent) else { return .unknownParent(parent) }
            if hlc >= entry.hlc { return .rejected(.hlcNotAboveParent(parent: parent)) }
        }
        // Only an author no grant names is refused; the writer-set rule decides the rest (an
        // entry by a revoked key or a non-admin's writer-set change is stored inert).
        let role = [try writerStatus(entry.author).role, check.grantedRole(entry.author)].compactMap { $0 }.max { $0.rawValue < $1.rawValue }
        guard role != nil else { return .rejected(.unknownAuthor(entry.author)) }
        if case .addWriter(let grant) = entry.payload { check.grant(grant.key, grant.role) }
        check.remember(entry)
        return nil
    }

    /// Inserts entries that ``check(_:into:)`` passed — the same bytes, in the same order —
    /// without verifying their signatures again, in one transaction (or the caller's). The
    /// store-side checks run as in ``insert(_:)``; after a clean check they refuse nothing.
    ///
    /// - Throws: `SQLiteError`.
    package func insertChecked(_ batch: [RawEntry]) throws -> InsertReport {
        var report = InsertReport()
        try database.writeTransaction {
            try refreshClock()
            writerCache.removeAll()
            let now = nowMilliseconds
            for (index, raw) in batch.enumerated() {
                let entry: SignedEntry
                do {
                    entry = try SignedEntry(bodyBytes: raw.body, signature: raw.signature)
                } catch let error as EntryFormatError {
                    report.rejected.append((index, .malformed(error)))
                    continue
                }
                switch try process(entry, value: raw.value, now: now, report: &report) {
                case .applied: break
                case .duplicate: report.duplicates += 1
                case .orphaned: report.orphaned.append(entry.id)
                case .quarantined: report.quarantined.append(entry.id)
                case .rejected(let reason): report.rejected.append((index, reason))
                }
            }
            try saveClock()
        }
        return report
    }
}
