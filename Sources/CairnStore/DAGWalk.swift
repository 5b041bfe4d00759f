import CairnCore

extension LogStore {
    /// Walks the DAG back from `starts` in descending `(hlc, id)` order — a topological order,
    /// since every entry's HLC is above its parents' (ingest enforces it) — OR-ing each entry's
    /// mask into its parents'. `visit` sees each entry once, with its final mask (every child
    /// that reaches it has a greater HLC, so was visited before), and returns the parents to go
    /// on with, or `nil` to stop. The walk ends once every queued entry's mask is `settled`
    /// (typically: reached from every side, i.e. common history), so its cost is proportional
    /// to the part of the DAG above that point, and its memory to the walk's frontier: a
    /// visited entry's mask is dropped, as no entry queued later can be its parent.
    ///
    /// Used by merges (one bit per head) and by delta planning (wanted and common bits).
    func walkBack(
        from starts: [(id: Hash32, mask: UInt32)], settled: (UInt32) -> Bool,
        visit: (_ id: Hash32, _ mask: UInt32) throws -> [Hash32]?
    ) throws {
        var masks: [Hash32: UInt32] = [:]
        var queue = MaxHeap()
        var unsettled = 0  // queued entries whose mask is not settled yet
        func reach(_ id: Hash32, with mask: UInt32) throws {
            if let before = masks[id] {
                let after = before | mask
                masks[id] = after
                if !settled(before) && settled(after) { unsettled -= 1 }
                return
            }
            guard let hlc = try storedHLC(of: id) else { throw StoreError.notFound(id.hex) }
            masks[id] = mask
            queue.push((hlc, id))
            if !settled(mask) { unsettled += 1 }
        }
        for start in starts { try reach(start.id, with: start.mask) }
        while unsettled > 0, let (_, id) = queue.pop() {
            guard let mask = masks.removeValue(forKey: id) else { continue }  // every queued id has a mask
            if !settled(mask) { unsettled -= 1 }
            guard let parents = try visit(id, mask) else { return }
            for parent in parents { try reach(parent, with: mask) }
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
