/// A small least-recently-used cache keyed by integers.
///
/// The engine walks each message's ranges in ascending order, so lookups mostly hit the same or
/// the next entry; a modest capacity captures nearly all reuse while bounding memory however
/// large the log grows.
struct LRUCache<Value> {
    private let capacity: Int
    private var slots: [Int: Int] = [:]
    private var keys: [Int] = []
    private var values: [Value] = []
    private var lastUse: [UInt64] = []
    private var clock: UInt64 = 0
    private var recent = -1

    init(capacity: Int) {
        precondition(capacity >= 1, "an LRU cache needs room for one entry")
        self.capacity = capacity
    }

    mutating func lookup(_ key: Int) -> Value? {
        // Most lookups repeat the previous one; skip the hash lookup for those.
        if recent >= 0, keys[recent] == key { return values[recent] }
        guard let slot = slots[key] else { return nil }
        touch(slot)
        return values[slot]
    }

    mutating func insert(_ value: Value, for key: Int) {
        if let slot = slots[key] {
            values[slot] = value
            touch(slot)
        } else if keys.count < capacity {
            keys.append(key)
            values.append(value)
            lastUse.append(0)
            slots[key] = keys.count - 1
            touch(keys.count - 1)
        } else {
            let victim = lastUse.indices.min { lastUse[$0] < lastUse[$1] }!
            slots[keys[victim]] = nil
            keys[victim] = key
            values[victim] = value
            slots[key] = victim
            touch(victim)
        }
    }

    mutating func removeAll() {
        slots.removeAll()
        keys.removeAll()
        values.removeAll()
        lastUse.removeAll()
        recent = -1
    }

    private mutating func touch(_ slot: Int) {
        clock += 1
        lastUse[slot] = clock
        recent = slot
    }
}
