import CairnCore
import CairnSQLite

/// What a peer lacks, from the ids it wants (our heads it does not know) and the ids it has.
public enum DeltaPlan: Sendable, Equatable {
    /// These entry ids, parents first ((hlc, id) ascending).
    case entries([Hash32])
    /// The only common ancestor is the genesis: the peer lacks about everything; stream the log in seq order.
    case everything
    /// The difference exceeds the limit: reconcile with RBSR instead.
    case tooLarge
}

/// The marks of the delta walk: reached from a want, from a have, or both.
private enum DeltaMark {
    static let wanted: UInt32 = 1
    static let common: UInt32 = 2
}

extension LogStore {
    // MARK: - Planning

    /// Entries that are ancestors-or-self of the known `wants` but not ancestors-or-self of the known `haves` (git's `rev-list wants ^haves`).
    ///
    /// Ids not applied here are ignored. Walks back from wants and haves together in descending
    /// HLC order (see ``walkBack(from:settled:visit:)``), so the cost is proportional to the
    /// part of the DAG above the newest common history; it gives up with ``DeltaPlan/tooLarge``
    /// as soon as more than `limit` entries are found, so memory stays bounded by `limit` (plus
    /// the walk's frontier).
    public func delta(wants: [Hash32], haves: [Hash32], limit: Int) throws -> DeltaPlan {
        try database.readTransaction {
            let wanted = try appliedUnique(wants)
            let common = try appliedUnique(haves)
            guard !wanted.isEmpty else { return .entries([]) }
            // Everything descends from the genesis, so it alone says nothing worth a walk.
            guard common.contains(where: { $0 != logID }) else { return .everything }
            let starts = wanted.map { (id: $0, mask: DeltaMark.wanted) } + common.map { (id: $0, mask: DeltaMark.common) }
            var found: [Hash32] = []
            var overflowed = false
            try walkBack(from: starts, settled: { $0 & DeltaMark.common != 0 }) { id, mask in
                if mask == DeltaMark.wanted {
                    found.append(id)
                    if found.count > limit {
                        overflowed = true
                        return nil
                    }
                }
                return try parentEdges(of: id)
            }
            // The walk visits in descending (hlc, id) order; parents first is the reverse.
            return overflowed ? .tooLarge : .entries(found.reversed())
        }
    }

    /// Ids to advertise as "haves": the heads, then applied entries at exponentially spaced seqs back from the newest (newest-1, -2, -4, -8, …), ending with the genesis; at most `limit`, no duplicates.
    ///
    /// Heads come newest first. Like git's negotiation, the spacing lets a peer find recent
    /// common history in few ids whatever the gap; the genesis is always last (every log shares it).
    public func haveSample(limit: Int = 32) throws -> [Hash32] {
        guard limit > 0 else { return [] }
        return try database.readTransaction {
            var sample: [Hash32] = []
            var seen: Set<Hash32> = [logID]  // the genesis goes last, whatever else lists it
            func add(_ id: Hash32) {
                if sample.count < limit - 1, seen.insert(id).inserted { sample.append(id) }
            }
            for head in try heads().reversed() { add(head.id) }
            let newest = try lastSeq()
            var distance: Int64 = 1
            while sample.count < limit - 1, distance < newest {
                if let id = try entryID(atOrBeforeSeq: newest - distance) { add(id) }
                distance *= 2
            }
            return sample + [logID]
        }
    }

    /// Which of `ids` are applied entries here (orphans and quarantined entries do not count).
    public func appliedIDs(among ids: [Hash32]) throws -> Set<Hash32> {
        try database.readTransaction { Set(try appliedUnique(ids)) }
    }

    // MARK: - Shipping

    /// Entries by id as raw entries carrying their value bytes (nil when the entry has no value or it was purged), in the given order; unknown ids are skipped.
    public func rawEntries(_ ids: [Hash32]) throws -> [RawEntry] {
        try database.readTransaction {
            try ids.compactMap { id in try entry(id: id).map(rawEntry) }
        }
    }

    /// Up to `limit` applied entries with seq > `afterSeq`, in seq order (which is parents-first, since an entry is applied only after its parents), as raw entries with values; plus the last seq read (== afterSeq when none).
    public func rawEntries(afterSeq: Int64, limit: Int) throws -> (entries: [RawEntry], lastSeq: Int64) {
        try database.readTransaction {
            let batch = try entries(afterSeq: afterSeq, limit: limit)
            return (try batch.map(rawEntry), batch.last?.seq ?? afterSeq)
        }
    }

    /// Up to `limit` applied entry ids with seq > `afterSeq`, in seq order, and the last seq read
    /// (== afterSeq when none): cheaper than ``rawEntries(afterSeq:limit:)`` when most of them
    /// turn out not to be needed.
    public func entryIDs(afterSeq: Int64, limit: Int) throws -> (ids: [Hash32], lastSeq: Int64) {
        try database.readTransaction {
            let statement = try database.prepare(Schema.entryIDsAfterSeq).bind(.integer(afterSeq), .integer(Int64(limit)))
            var ids: [Hash32] = []
            var last = afterSeq
            while try statement.step() {
                last = statement.int64(0)
                ids.append(try statement.hash(1, "entries"))
            }
            return (ids, last)
        }
    }

    /// The raw form of an applied entry, with its value bytes when this node holds them.
    private func rawEntry(_ stored: StoredEntry) throws -> RawEntry {
        guard case .put(_, _, let ref) = stored.entry.payload, case .present(let bytes) = try value(ref.digest) else {
            return RawEntry(stored.entry)
        }
        return RawEntry(stored.entry, value: bytes)
    }

    // MARK: - Helpers

    /// The applied ones among `ids`, first occurrences only, in the given order.
    private func appliedUnique(_ ids: [Hash32]) throws -> [Hash32] {
        var seen = Set<Hash32>()
        return try ids.filter { id in
            guard seen.insert(id).inserted else { return false }
            return try exists(Schema.entryExists, id)
        }
    }

    private func entryID(atOrBeforeSeq seq: Int64) throws -> Hash32? {
        let statement = try database.prepare(Schema.entryIDAtOrBeforeSeq).bind(.int(seq))
        return try statement.step() ? try statement.hash(0, "entries") : nil
    }
}
