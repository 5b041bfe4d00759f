import CairnCore
import CairnSQLite

extension LogStore {
    /// The decisions a merge of `heads` records: for each key written on more than one of the
    /// joined branches, its LWW winner and the writes it beat.
    ///
    /// Walks back from the heads in descending HLC order — a topological order, since every
    /// entry's HLC is above its parents' — tagging each entry with the set of heads that reach
    /// it, and stops once every entry still queued is reached by all heads (common history).
    /// The cost is proportional to the diverged part of the DAG, not to the log.
    func mergeDecisions(joining heads: [Head]) throws -> [MergeDecision] {
        precondition(heads.count <= 32, "at most 32 heads per merge")
        let all: UInt32 = heads.count == 32 ? .max : (1 << UInt32(heads.count)) - 1
        let starts = heads.enumerated().map { (id: $1.id, mask: UInt32(1) << UInt32($0)) }
        var branchWrites: [KeyPath: [(mask: UInt32, id: Hash32)]] = [:]
        try walkBack(from: starts, settled: { $0 == all }) { id, mask in
            guard let stored = try entry(id: id) else { return [] }
            // Common entries still pass their full mask on, so an ancestor reached both through
            // a branch and through common history ends up common.
            if mask != all, let target = stored.entry.payload.target, !stored.inert {
                branchWrites[KeyPath(bucket: target.bucket, key: target.key), default: []].append((mask, id))
            }
            return stored.entry.parents
        }
        return try decisions(from: branchWrites)
    }

    private func decisions(from writes: [KeyPath: [(mask: UInt32, id: Hash32)]]) throws -> [MergeDecision] {
        var out: [MergeDecision] = []
        for (path, list) in writes where Set(list.map(\.mask)).count > 1 {
            guard let winner = try state(bucket: path.bucket, key: path.key)?.entryID else { continue }
            let losers = Array(Set(list.map(\.id)).subtracting([winner])).sorted()
            guard !losers.isEmpty else { continue }
            // A decision holds at most 255 losers; the rest stay visible through `history`.
            out.append(MergeDecision(bucket: path.bucket, key: path.key, winner: winner, losers: Array(losers.prefix(255))))
        }
        return out.sorted { a, b in
            let (ab, bb) = (Array(a.bucket.utf8), Array(b.bucket.utf8))
            return ab != bb ? ab.lexicographicallyPrecedes(bb) : Array(a.key.utf8).lexicographicallyPrecedes(Array(b.key.utf8))
        }
    }
}
