/// The in-memory copy of the bucket aggregates: contiguous key ranges with their item counts
/// and id sums, plus prefix sums over them.
///
/// Bucket `b` holds the items `starts[b] ≤ item < starts[b + 1]`; bucket 0 starts at the lowest
/// possible key, so every item falls in exactly one bucket. Memory is O(buckets), never O(items).
struct BucketIndex {
    /// One bucket's aggregate.
    struct Bucket: Equatable {
        var start: Item
        var count: Int
        var sum: IDSum
    }

    /// The lowest key: bucket 0 always starts here.
    static let origin = Item(timestamp: 0, id: .zero)

    private(set) var buckets: [Bucket]
    /// `countPrefix[b]` = items in buckets `0 ..< b`; one longer than `buckets`.
    private(set) var countPrefix: [Int] = []
    /// `sumPrefix[b]` = id sum of buckets `0 ..< b`; one longer than `buckets`.
    private(set) var sumPrefix: [IDSum] = []

    /// One empty bucket covering everything.
    init() { self.init(validated: [Bucket(start: Self.origin, count: 0, sum: .zero)]) }

    /// Buckets read back from storage; they must start at the origin and ascend.
    init(loaded buckets: [Bucket]) throws(SQLiteStorageError) {
        guard let first = buckets.first, first.start == Self.origin else {
            throw .aggregatesOutOfDate("the first bucket does not start at the lowest key")
        }
        for index in buckets.indices.dropFirst() where !(buckets[index - 1].start < buckets[index].start) {
            throw .aggregatesOutOfDate("bucket starts are not ascending")
        }
        self.init(validated: buckets)
    }

    private init(validated buckets: [Bucket]) {
        self.buckets = buckets
        recomputePrefixes()
    }

    var total: Int { countPrefix[buckets.count] }

    /// The bucket whose key range holds `item`.
    func bucket(containing item: Item) -> Int {
        // Last bucket whose start is ≤ item; bucket 0 starts at the origin, so one always is.
        var low = 0
        var high = buckets.count
        while high - low > 1 {
            let middle = (low + high) / 2
            if item < buckets[middle].start { high = middle } else { low = middle }
        }
        return low
    }

    /// The bucket holding the item of global index `index` (`0 ..< total`), or for `index ==
    /// total` the last bucket.
    func bucket(containingIndex index: Int) -> Int {
        // Last bucket whose first index is ≤ index: empty buckets are skipped naturally.
        countPrefix[..<buckets.count].lastIndex(notAbove: index)
    }

    /// Folds one new item into its bucket; prefixes are stale until ``recomputePrefixes()``.
    @discardableResult
    mutating func add(_ item: Item) -> Int {
        let index = bucket(containing: item)
        buckets[index].count += 1
        buckets[index].sum.add(item.id)
        return index
    }

    /// Replaces bucket `index` by `pieces` (the first keeps the bucket's start); prefixes are
    /// stale until ``recomputePrefixes()``.
    mutating func replace(_ index: Int, with pieces: [Bucket]) {
        precondition(pieces.first?.start == buckets[index].start, "a split keeps the bucket's start")
        buckets.replaceSubrange(index...index, with: pieces)
    }

    mutating func recomputePrefixes() {
        countPrefix = [0]
        sumPrefix = [.zero]
        countPrefix.reserveCapacity(buckets.count + 1)
        sumPrefix.reserveCapacity(buckets.count + 1)
        for bucket in buckets {
            countPrefix.append(countPrefix[countPrefix.count - 1] + bucket.count)
            sumPrefix.append(sumPrefix[sumPrefix.count - 1] + bucket.sum)
        }
    }
}
