/// One bucket's items decoded from SQLite, with running sums so that any prefix of the bucket
/// costs O(1).
struct LoadedBucket {
    let bucket: Int
    let items: [Item]
    /// `sums[i]` = id sum of `items[0 ..< i]`.
    let sums: [IDSum]

    init(bucket: Int, items: [Item]) {
        self.bucket = bucket
        self.items = items
        var sums: [IDSum] = []
        sums.reserveCapacity(items.count + 1)
        var running = IDSum.zero
        sums.append(running)
        for item in items {
            running.add(item.id)
            sums.append(running)
        }
        self.sums = sums
    }
}

/// A small least-recently-used cache of decoded buckets.
///
/// The engine walks each message's ranges in ascending order, so consecutive lookups mostly hit
/// the same or the next bucket; a handful of entries captures nearly all reuse, and the capacity
/// bounds memory however large the log grows.
struct BucketCache {
    private let capacity: Int
    private var entries: [LoadedBucket] = []
    private var lastUse: [UInt64] = []
    private var clock: UInt64 = 0
    private var recent = 0

    init(capacity: Int) { self.capacity = capacity }

    mutating func lookup(_ bucket: Int) -> LoadedBucket? {
        // Linear scan: the capacity is small and the most recent entry is checked first.
        if recent < entries.count, entries[recent].bucket == bucket { return entries[recent] }
        guard let slot = entries.firstIndex(where: { $0.bucket == bucket }) else { return nil }
        touch(slot)
        return entries[slot]
    }

    mutating func insert(_ loaded: LoadedBucket) {
        if entries.count < capacity {
            entries.append(loaded)
            lastUse.append(0)
            touch(entries.count - 1)
            return
        }
        let victim = lastUse.indices.min { lastUse[$0] < lastUse[$1] }!
        entries[victim] = loaded
        touch(victim)
    }

    private mutating func touch(_ slot: Int) {
        clock += 1
        lastUse[slot] = clock
        recent = slot
    }

    mutating func removeAll() {
        entries.removeAll()
        lastUse.removeAll()
    }
}
