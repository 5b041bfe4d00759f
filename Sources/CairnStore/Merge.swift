import CairnCore
import CairnSQLite

extension LogStore {
    /// The decisions a merge of `parents` records: a pure function of the parents' ancestry,
    /// so ingest and `verify` recompute them and refuse a merge that records anything else.
    ///
    /// The diverged part is the entries reached from some but not all parents. For each key
    /// written there on more than one branch (by entries reached from different sets of
    /// parents), the decision names the greatest of those writes in LWW order
    /// `(hlc, author, id)` as the winner and the others as losers (ascending; at most 255).
    /// Inert writes count like any other: inertness depends on revocations that need not be in
    /// the ancestry, while a merge's record may not.
    ///
    /// Walks back from the parents in descending HLC order — a topological order, since every
    /// entry's HLC is above its parents' — tagging each entry with the set of parents that reach
    /// it, and stops once every entry still queued is reached by all (common history). The cost
    /// is proportional to the diverged part of the DAG, not to the log.
    ///
    /// - Throws: ``StoreError/notFound(_:)`` if an ancestor is not applied here; SQLite errors.
    func mergeDecisions(joining parents: [Hash32]) throws -> [MergeDecision] {
        precondition(parents.count <= 32, "at most 32 parents per merge")
        let all: UInt32 = parents.count == 32 ? .max : (1 << UInt32(parents.count)) - 1
        let starts = parents.enumerated().map { (id: $1, mask: UInt32(1) << UInt32($0)) }
        var branchWrites: [KeyPath: [(mask: UInt32, rank: LWWRank)]] = [:]
        try walkBack(from: starts, settled: { $0 == all }) { id, mask in
            guard let stored = try entry(id: id) else { throw StoreError.notFound(id.hex) }
            // Common entries still pass their full mask on, so an ancestor reached both through
            // a branch and through common history ends up common.
            if mask != all, let target = stored.entry.payload.target {
                let entry = stored.entry
                branchWrites[KeyPath(bucket: target.bucket, key: target.key), default: []]
                    .append((mask, LWWRank(hlc: entry.hlc, author: entry.author, id: entry.id)))
            }
            return stored.entry.parents
        }
        return decisions(from: branchWrites)
    }

    private func decisions(from writes: [KeyPath: [(mask: UInt32, rank: LWWRank)]]) -> [MergeDecision] {
        var out: [MergeDecision] = []
        for (path, list) in writes where Set(list.map(\.mask)).count > 1 {
            guard let winner = list.map(\.rank).max() else { continue }
            let losers = list.map(\.rank.id).filter { $0 != winner.id }.sorted()
            // A decision holds at most 255 losers; the rest stay visible through `history`.
            out.append(MergeDecision(bucket: path.bucket, key: path.key, winner: winner.id, losers: Array(losers.prefix(255))))
        }
        return out.sorted { a, b in
            let (ab, bb) = (Array(a.bucket.utf8), Array(b.bucket.utf8))
            return ab != bb ? ab.lexicographicallyPrecedes(bb) : Array(a.key.utf8).lexicographicallyPrecedes(Array(b.key.utf8))
        }
    }

    /// Why a received merge's decisions are not the ones its parents' ancestry gives, or `nil`.
    func mergeProblem(_ entry: SignedEntry) throws -> RejectReason? {
        guard case .merge(let recorded) = entry.payload else { return nil }
        let expected = try mergeDecisions(joining: entry.parents)
        return sameDecisions(recorded, expected) ? nil : .mergeDecisionsMismatch
    }

    /// Byte-exact comparison (Swift's `String ==` is Unicode-canonical, keys are bytes).
    private func sameDecisions(_ a: [MergeDecision], _ b: [MergeDecision]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { x, y in
            KeyPath(bucket: x.bucket, key: x.key) == KeyPath(bucket: y.bucket, key: y.key) && x.winner == y.winner && x.losers == y.losers
        }
    }
}

/// A write's position in last-writer-wins order.
struct LWWRank: Comparable {
    let hlc: HLC
    let author: PublicKey
    let id: Hash32
    static func < (a: LWWRank, b: LWWRank) -> Bool { (a.hlc, a.author, a.id) < (b.hlc, b.author, b.id) }
}
