import CairnSQLite

/// A storage over Cairn's SQLite `entries` table, with persistent bucket aggregates.
///
/// The key space `(hlc, id)` is cut into contiguous buckets of about a thousand items, each with
/// its item count and id sum, stored in `<prefix>_buckets` and mirrored in memory with prefix
/// sums. Since a fingerprint's id sum is a group operation, any range's sum is
/// `prefix(end) − prefix(begin)`, and a prefix at an arbitrary index costs one bucket lookup plus
/// one decoded bucket (cached). Ranks, items and fingerprints therefore cost O(log n + bucket
/// size) instead of O(range), and memory stays O(buckets + cache), never O(items).
///
/// **Keeping it current.** Entries are append-only and `seq` only grows, so the aggregates
/// follow a watermark on `seq`: ``catchUp()`` folds the entries above it into their buckets in
/// one write transaction, splitting buckets that grow too large. Call it right after each insert
/// batch, on the same connection, inside or outside the batch's transaction; sessions also call
/// it when they start (``beginSession()``). Entries above the watermark are invisible to the
/// storage until then, so a session works on a consistent snapshot.
///
/// Opening costs O(buckets) when the aggregates are current; only the very first catch-up (no
/// aggregates yet) scans the whole table.
///
/// A `SQLiteStorage` is confined to one thread or task, like its ``CairnSQLite/Database``.
public final class SQLiteStorage: ReconcileStorage {
    /// The connection.
    public var database: Database { store.database }
    /// Names and sizes in use.
    public let configuration: SQLiteStorageConfiguration
    /// The highest `seq` folded into the aggregates.
    public private(set) var watermark: Int64 = 0

    private let store: BucketStore
    private var index = BucketIndex()
    /// The `token` of the stored aggregates this copy mirrors.
    private var token: Int64?
    private var cache: BucketCache

    /// Opens the storage on `database`, creating its tables if needed, and catches up.
    ///
    /// - Throws: ``SQLiteStorageError`` for a bad configuration or bad entries; `SQLiteError`.
    public init(database: Database, configuration: SQLiteStorageConfiguration = .init()) throws {
        try configuration.validate()
        self.configuration = configuration
        self.store = BucketStore(database: database, configuration: configuration)
        self.cache = BucketCache(capacity: configuration.cachedBuckets)
        try store.createSchema()
        try catchUp()
    }

    /// The number of buckets (for diagnostics and tests).
    public var bucketCount: Int { index.buckets.count }

    /// Folds entries appended since the last call into the aggregates and advances the
    /// watermark, in one write transaction (or inside the caller's open transaction).
    ///
    /// Cheap when there is nothing new: two indexed reads and no write. It also notices
    /// aggregates rewritten by another connection, or rolled back with the caller's transaction,
    /// and reloads them.
    ///
    /// - Returns: the number of entries folded in.
    @discardableResult
    public func catchUp() throws -> Int {
        if let stored = try store.readState(), stored.token == token,
           try store.maxSequence() == stored.watermark {
            return 0
        }
        return try inWriteTransaction { try self.foldPendingEntries() }
    }

    /// Recomputes all aggregates from a full scan of the entries table.
    public func rebuild() throws {
        try inWriteTransaction { try self.rebuildFromScratch() }
    }

    // MARK: ReconcileStorage

    public var count: Int { index.total }

    public func beginSession() throws { try catchUp() }

    public func item(at position: Int) throws -> Item {
        guard position >= 0, position < count else { throw ReconcileError.indexOutOfRange(position, count: count) }
        let bucket = index.bucket(containingIndex: position)
        return try loaded(bucket).items[position - index.countPrefix[bucket]]
    }

    public func lowerBound(of bound: Bound, from start: Int) throws -> Int {
        try checkStart(start)
        let key = bound.item
        let bucket = index.bucket(containing: key)
        let first = index.countPrefix[bucket]
        // A bound at a bucket's start (or in an empty bucket) needs no items at all.
        if key == index.buckets[bucket].start || index.buckets[bucket].count == 0 {
            return max(first, start)
        }
        let items = try loaded(bucket).items
        var low = 0
        var high = items.count
        while low < high {
            let middle = (low + high) / 2
            if items[middle] < key { low = middle + 1 } else { high = middle }
        }
        return max(first + low, start)
    }

    public func idSum(of range: Range<Int>) throws -> IDSum {
        try checkRange(range)
        if range.isEmpty { return .zero }
        return try prefixSum(range.upperBound) - prefixSum(range.lowerBound)
    }

    public func forEachItem(in range: Range<Int>, _ body: (Int, Item) throws -> Bool) throws {
        try checkRange(range)
        var position = range.lowerBound
        while position < range.upperBound {
            let bucket = index.bucket(containingIndex: position)
            let first = index.countPrefix[bucket]
            let items = try loaded(bucket).items
            let end = min(range.upperBound, first + items.count)
            for offset in (position - first)..<(end - first) {
                guard try body(first + offset, items[offset]) else { return }
            }
            position = end
        }
    }

    // MARK: Prefix sums

    /// The id sum of items `0 ..< position`.
    private func prefixSum(_ position: Int) throws -> IDSum {
        if position == count { return index.sumPrefix[index.buckets.count] }
        let bucket = index.bucket(containingIndex: position)
        let offset = position - index.countPrefix[bucket]
        if offset == 0 { return index.sumPrefix[bucket] }
        return try index.sumPrefix[bucket] + loaded(bucket).sums[offset]
    }

    /// Bucket `bucket`'s items, from the cache or from SQLite.
    private func loaded(_ bucket: Int) throws -> LoadedBucket {
        if let hit = cache.lookup(bucket) { return hit }
        let aggregate = index.buckets[bucket]
        let items = try store.items(from: aggregate.start, count: aggregate.count, through: watermark)
        let loaded = LoadedBucket(bucket: bucket, items: items)
        try verify(loaded, against: aggregate, next: bucket + 1 < index.buckets.count ? index.buckets[bucket + 1].start : nil)
        cache.insert(loaded)
        return loaded
    }

    /// Cross-checks decoded items against the bucket's aggregate: catches rows deleted or
    /// rewritten behind our back, which would otherwise yield silently wrong fingerprints.
    private func verify(_ loaded: LoadedBucket, against aggregate: BucketIndex.Bucket, next: Item?) throws {
        guard loaded.items.count == aggregate.count, loaded.sums[loaded.items.count] == aggregate.sum else {
            throw SQLiteStorageError.aggregatesOutOfDate("bucket at \(aggregate.start) does not match its entries")
        }
        if let next, let last = loaded.items.last, !(last < next) {
            throw SQLiteStorageError.aggregatesOutOfDate("bucket at \(aggregate.start) overlaps the next one")
        }
    }

    // MARK: Catching up

    /// Runs `body` in a write transaction, or inside the caller's if one is open.
    @discardableResult
    private func inWriteTransaction<T>(_ body: () throws -> T) throws -> T {
        if database.isInTransaction { return try body() }
        return try database.writeTransaction(body)
    }

    /// Reloads the stored aggregates if ours are stale, then folds entries above the watermark.
    /// The in-memory state changes only once everything has been written.
    private func foldPendingEntries() throws -> Int {
        guard let stored = try store.readState() else { return try rebuildFromScratch() }
        var working = stored.token == token ? index : try BucketIndex(loaded: store.loadBuckets())
        let newest = try store.maxSequence()
        guard newest >= stored.watermark else {
            // Entries vanished (the contract forbids it): start over rather than trust the sums.
            return try rebuildFromScratch()
        }
        var dirty = Set<Int>()
        var folded = 0
        try store.forEachEntry(after: stored.watermark, through: newest) { item in
            dirty.insert(working.add(item))
            folded += 1
        }
        let changed = try splitOversized(dirty, in: &working, through: newest)
        working.recomputePrefixes()
        let newToken = Self.freshToken()
        for bucket in changed.sorted() { try store.writeBucket(working.buckets[bucket]) }
        try store.writeState(watermark: newest, token: newToken)
        adopt(working, watermark: newest, token: newToken)
        return folded
    }

    /// Splits every dirty bucket over ``SQLiteStorageConfiguration/maxBucketSize`` into buckets
    /// of about ``SQLiteStorageConfiguration/targetBucketSize``, reading its entries once.
    ///
    /// - Returns: the indices (after splitting) of every bucket whose row must be rewritten.
    private func splitOversized(_ dirty: Set<Int>, in working: inout BucketIndex, through: Int64) throws -> [Int] {
        var changed: [Int] = []
        var shift = 0
        for bucket in dirty.sorted() {
            let current = bucket + shift
            let aggregate = working.buckets[current]
            guard aggregate.count > configuration.maxBucketSize else {
                changed.append(current)
                continue
            }
            let items = try store.items(from: aggregate.start, count: aggregate.count, through: through)
            guard items.count == aggregate.count else {
                throw SQLiteStorageError.aggregatesOutOfDate("bucket at \(aggregate.start) lost entries")
            }
            // The first piece keeps the bucket's start, so the key ranges stay contiguous.
            var pieces = Self.chunk(items, target: configuration.targetBucketSize)
            pieces[0].start = aggregate.start
            working.replace(current, with: pieces)
            changed.append(contentsOf: current..<(current + pieces.count))
            shift += pieces.count - 1
        }
        return changed
    }

    /// Builds all buckets from one scan of the entries in key order.
    @discardableResult
    private func rebuildFromScratch() throws -> Int {
        let newest = try store.maxSequence()
        var pieces: [BucketIndex.Bucket] = []
        var current = BucketIndex.Bucket(start: BucketIndex.origin, count: 0, sum: .zero)
        var scanned = 0
        try store.forEachEntryInKeyOrder(through: newest) { item in
            if current.count == configuration.targetBucketSize {
                pieces.append(current)
                current = BucketIndex.Bucket(start: item, count: 0, sum: .zero)
            }
            current.count += 1
            current.sum.add(item.id)
            scanned += 1
        }
        pieces.append(current)
        let working = try BucketIndex(loaded: pieces)
        let newToken = Self.freshToken()
        try store.replaceAllBuckets(pieces)
        try store.writeState(watermark: newest, token: newToken)
        adopt(working, watermark: newest, token: newToken)
        return scanned
    }

    private func adopt(_ working: BucketIndex, watermark: Int64, token: Int64) {
        index = working
        self.watermark = watermark
        self.token = token
        cache.removeAll()
    }

    /// `items` cut into `ceil(n / target)` pieces of near-equal size, in order.
    private static func chunk(_ items: [Item], target: Int) -> [BucketIndex.Bucket] {
        let pieceCount = (items.count + target - 1) / target
        let (size, extra) = items.count.quotientAndRemainder(dividingBy: pieceCount)
        var pieces: [BucketIndex.Bucket] = []
        var start = 0
        for piece in 0..<pieceCount {
            let end = start + size + (piece < extra ? 1 : 0)
            var sum = IDSum.zero
            for item in items[start..<end] { sum.add(item.id) }
            pieces.append(BucketIndex.Bucket(start: items[start], count: end - start, sum: sum))
            start = end
        }
        return pieces
    }

    /// A random tag for one version of the stored aggregates.
    private static func freshToken() -> Int64 { Int64.random(in: Int64.min...Int64.max) }
}
