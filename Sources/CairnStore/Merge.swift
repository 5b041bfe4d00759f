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
        var reach: [Hash32: UInt32] = [:]
        var queue = MaxHeap()
        for (i, head) in heads.enumerated() {
            reach[head.id, default: 0] |= 1 << UInt32(i)
            queue.push((head.hlc, head.id))
        }
        var partial = heads.count > 1 ? heads.count : 0
        var branchWrites: [KeyPath: [(mask: UInt32, id: Hash32)]] = [:]
        while partial > 0, let (_, id) = queue.pop() {
            let mask = reach[id]!
            let isBranch = mask != all
            if isBranch { partial -= 1 }
            guard let stored = try entry(id: id) else { continue }
            // Common entries still pass their full mask on, so an ancestor reached both through
            // a branch and through common history ends up common.
            if isBranch, let target = stored.entry.payload.target, !stored.inert {
                branchWrites[KeyPath(bucket: target.bucket, key: target.key), default: []].append((mask, id))
            }
            for parent in stored.entry.parents {
                let before = reach[parent]
                let after = (before ?? 0) | mask
                reach[parent] = after
                if before == nil {
                    guard let hlc = try storedHLC(of: parent) else { throw StoreError.notFound(parent.hex) }
                    queue.push((hlc, parent))
                    if after != all { partial += 1 }
                } else if before != all && after == all {
                    partial -= 1
                }
            }
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

/// A binary max-heap of `(hlc, id)`, popping the greatest HLC first.
struct MaxHeap {
    private var items: [(HLC, Hash32)] = []

    mutating func push(_ item: (HLC, Hash32)) {
        items.append(item)
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard greater(items[child], items[parent]) else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> (HLC, Hash32)? {
        guard !items.isEmpty else { return nil }
        items.swapAt(0, items.count - 1)
        let top = items.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1, right = left + 1
            var largest = parent
            if left < items.count, greater(items[left], items[largest]) { largest = left }
            if right < items.count, greater(items[right], items[largest]) { largest = right }
            if largest == parent { break }
            items.swapAt(parent, largest)
            parent = largest
        }
        return top
    }

    private func greater(_ a: (HLC, Hash32), _ b: (HLC, Hash32)) -> Bool { (a.0, a.1) > (b.0, b.1) }
}
