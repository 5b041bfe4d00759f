/// An in-memory storage: a sorted array of items plus prefix sums of their ids.
///
/// Fingerprints cost O(1) (`prefix[end] − prefix[begin]`) and lower bounds O(log n). It is meant
/// for tests, tools and small sets; memory is about 72 bytes per item.
public final class VectorStorage: ReconcileStorage {
    /// The items in `(timestamp, id)` order.
    public let items: [Item]
    /// `prefixSums[i]` is the sum of the first `i` ids.
    private let prefixSums: [IDSum]

    /// Sorts and validates `items`.
    ///
    /// - Throws: ``ReconcileError/reservedTimestamp(_:)`` for a timestamp of `UInt64.max`,
    ///   ``ReconcileError/duplicateItem(_:)`` when an item appears twice.
    public init(items: some Sequence<Item>) throws(ReconcileError) {
        let sorted = items.sorted()
        try Self.validate(sorted)
        self.items = sorted
        self.prefixSums = IDSum.prefixSums(of: sorted)
    }

    public var count: Int { items.count }

    public func item(at index: Int) throws -> Item {
        guard items.indices.contains(index) else { throw ReconcileError.indexOutOfRange(index, count: count) }
        return items[index]
    }

    public func lowerBound(of bound: Bound, from start: Int) throws -> Int {
        try checkStart(start)
        let target = bound.item
        var low = start
        var high = items.count
        while low < high {
            let middle = low + (high - low) / 2
            if items[middle] < target { low = middle + 1 } else { high = middle }
        }
        return low
    }

    public func idSum(of range: Range<Int>) throws -> IDSum {
        try checkRange(range)
        return prefixSums[range.upperBound] - prefixSums[range.lowerBound]
    }

    public func forEachItem(in range: Range<Int>, _ body: (Int, Item) throws -> Bool) throws {
        try checkRange(range)
        for index in range where try !body(index, items[index]) { return }
    }

    private static func validate(_ sorted: [Item]) throws(ReconcileError) {
        if let last = sorted.last, last.timestamp == Item.reservedTimestamp {
            throw .reservedTimestamp(last.id)
        }
        for index in sorted.indices.dropFirst() where sorted[index - 1] == sorted[index] {
            throw .duplicateItem(sorted[index])
        }
    }

}
