import CairnSQLite

/// A storage over Cairn's SQLite `entries` table, with persistent bucket aggregates.
///
/// The key space `(hlc, id)` is cut into contiguous buckets of about a thousand items, each with
/// its item count and id sum, stored in `<prefix>_buckets` and mirrored in memory with prefix
/// sums. Inside a bucket, a checkpoint every 64 items (key and partial sum, stored with the
/// bucket) narrows any position down to one window of at most 64 rows. Since a fingerprint's id
/// sum is a group operation, any range's sum is `prefix(end) − prefix(begin)`; ranks, items and
/// fingerprints therefore cost O(log n) in memory plus one small indexed read, never O(range),
/// and memory stays O(buckets) plus fixed-size caches, never O(items).
///
/// **Keeping it current.** Entries are append-only and `seq` only grows, so the aggregates
/// follow a watermark on `seq`: ``catchUp()`` folds the entries above it into their buckets in
/// one write transaction, splitting buckets that grow too large. Call it right after each insert
/// batch, on the same connection, inside or outside the batch's transaction; sessions also call
/// it when they start (``beginSession()``). Entries above the watermark stay invisible to the
/// storage until then, so a session works on a consistent snapshot.
///
/// Opening costs O(buckets) when the aggregates are current; only the very first catch-up (no
/// aggregates yet) scans the whole table.
///
/// A `SQLiteStorage` is confined to one thread or task, like its ``CairnSQLite/Database``.
package final class SQLiteStorage: ReconcileStorage {
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
    private var checkpointCache: LRUCache<BucketCheckpoints>
    private var windowCache: LRUCache<LoadedWindow>

    /// Opens the storage on `database`, creating its tables if needed, and catches up.
    ///
    /// - Throws: ``SQLiteStorageError`` for a bad configuration or bad entries; `SQLiteError`.
    public init(database: Database, configuration: SQLiteStorageConfiguration = .init()) throws {
        try configuration.validate()
        self.configuration = configuration
        self.store = BucketStore(database: database, configuration: configuration)
        self.checkpointCache = LRUCache(capacity: configuration.cachedBuckets)
        self.windowCache = LRUCache(capacity: configuration.cachedWindows)
        if !store.schemaIsCurrent() {
            try inWriteTransaction { try store.prepareSchema() }
        }
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
        let stored = try store.readState()
        if let stored, stored.token != token {
            // Another connection (or a rollback) changed the aggregates: reload, no write needed.
            try withReadSnapshot { try reload() }
        }
        if let stored, stored.token == token, try store.maxSequence() == stored.watermark {
            return 0
        }
        return try inWriteTransaction { try self.foldPendingEntries() }
    }

    /// Recomputes every stored bucket's count and id sum from the entries up to the stored
    /// watermark (one scan in key order, memory O(buckets)) and describes each difference;
    /// empty when the aggregates are right, or when none were built yet. Reads only, so it
    /// runs on a read-only connection too.
    ///
    /// - Throws: `SQLiteError`.
    public static func verify(database: Database, configuration: SQLiteStorageConfiguration = .init()) throws -> [String] {
        let store = BucketStore(database: database, configuration: configuration)
        guard store.schemaIsCurrent() else { return [] }
        return try database.readTransaction {
            guard let stored = try store.readState() else { return [] }
            let buckets: [BucketIndex.Bucket]
            do {
                buckets = try BucketIndex(loaded: store.loadBuckets()).buckets
            } catch {
                return ["reconciliation index: \(error)"]
            }
            var recomputed = buckets.map { BucketIndex.Bucket(start: $0.start, count: 0, sum: .zero) }
            var current = 0
            try store.forEachEntryInKeyOrder(through: stored.watermark) { item in
                while current + 1 < recomputed.count, !(item < recomputed[current + 1].start) { current += 1 }
                recomputed[current].count += 1
                recomputed[current].sum.add(item.id)
            }
            return zip(buckets, recomputed).compactMap { storedBucket, actual in
                storedBucket == actual ? nil
                    : "reconciliation index: the bucket from \(actual.start) holds \(storedBucket.count) items by its aggregate, \(actual.count) by the entries"
            }
        }
    }

    /// Recomputes all aggregates from a full scan of the entries table.
    public func rebuild() throws {
        try inWriteTransaction { try self.rebuildFromScratch() }
    }

    // MARK: ReconcileStorage

    public var count: Int { index.total }

    public func beginSession() throws { try catchUp() }

    /// Runs `body` in one read transaction (unless the caller has one open): one lock and one
    /// WAL snapshot for the whole message instead of one per query.
    public func withReadSnapshot<T>(_ body: () throws -> T) throws -> T {
        if database.isInTransaction { return try body() }
        return try database.readTransaction(body)
    }

    public func item(at position: Int) throws -> Item {
        guard position >= 0, position < count else { throw ReconcileError.indexOutOfRange(position, count: count) }
        let (bucket, window, offset) = try locate(position)
        return try loadedWindow(bucket, window).items[offset]
    }

    public func lowerBound(of bound: Bound, from start: Int) throws -> Int {
        try checkStart(start)
        let key = bound.item
        let bucket = index.bucket(containing: key)
        let first = index.countPrefix[bucket]
        // A bound at a bucket's start (or in an empty bucket) needs no rows at all.
        if key == index.buckets[bucket].start || index.buckets[bucket].count == 0 {
            return max(first, start)
        }
        let window = try checkpoints(bucket).window(containing: key)
        let items = try loadedWindow(bucket, window).items
        var low = 0
        var high = items.count
        while low < high {
            let middle = (low + high) / 2
            if items[middle] < key { low = middle + 1 } else { high = middle }
        }
        // Past the window's end means the next window's first item, which is ≥ key.
        return max(first + window * configuration.checkpointInterval + low, start)
    }

    public func idSum(of range: Range<Int>) throws -> IDSum {
        try checkRange(range)
        if range.isEmpty { return .zero }
        return try prefixSum(range.upperBound) - prefixSum(range.lowerBound)
    }

    /// Streams the range with one indexed query. `body` must not call back into this storage.
    public func forEachItem(in range: Range<Int>, _ body: (Int, Item) throws -> Bool) throws {
        try checkRange(range)
        guard !range.isEmpty else { return }
        var position = range.lowerBound
        var stopped = false
        let delivered = try store.forEachItem(from: item(at: position), count: range.count, through: watermark) { item in
            stopped = try !body(position, item)
            position += 1
            return !stopped
        }
        guard stopped || delivered == range.count else {
            throw SQLiteStorageError.aggregatesOutOfDate("entries in \(range) went missing")
        }
    }

    // MARK: Positions

    /// Bucket, window within the bucket, and offset within the window of a position `< count`.
    private func locate(_ position: Int) throws -> (bucket: Int, window: Int, offset: Int) {
        let bucket = index.bucket(containingIndex: position)
        let (window, offset) = (position - index.countPrefix[bucket])
            .quotientAndRemainder(dividingBy: configuration.checkpointInterval)
        return (bucket, window, offset)
    }

    /// The id sum of items `0 ..< position`.
    private func prefixSum(_ position: Int) throws -> IDSum {
        if position == count { return index.sumPrefix[index.buckets.count] }
        let (bucket, window, offset) = try locate(position)
        if window == 0 && offset == 0 { return index.sumPrefix[bucket] }
        let withinBucket = try checkpoints(bucket).sums[window]
        let withinWindow = offset == 0 ? IDSum.zero : try loadedWindow(bucket, window).sums[offset]
        return index.sumPrefix[bucket] + withinBucket + withinWindow
    }

    /// Bucket `bucket`'s checkpoints: cached, stored, or (while stale) computed from its rows.
    private func checkpoints(_ bucket: Int) throws -> BucketCheckpoints {
        if let hit = checkpointCache.lookup(bucket) { return hit }
        let aggregate = index.buckets[bucket]
        let interval = configuration.checkpointInterval
        let checkpoints: BucketCheckpoints
        if let stored = try store.checkpoints(of: aggregate.start, interval: interval) {
            checkpoints = stored
        } else {
            let items = try store.items(from: aggregate.start, count: aggregate.count, through: watermark)
            checkpoints = BucketCheckpoints(start: aggregate.start, items: items[...], interval: interval)
        }
        guard checkpoints.keys.count == (aggregate.count + interval - 1) / interval || aggregate.count == 0 else {
            throw SQLiteStorageError.aggregatesOutOfDate("checkpoints of bucket at \(aggregate.start) do not match its size")
        }
        checkpointCache.insert(checkpoints, for: bucket)
        return checkpoints
    }

    /// Window `window` of bucket `bucket`, decoded from one indexed read and cross-checked
    /// against the checkpoint sums, so rows deleted or rewritten behind our back are caught.
    private func loadedWindow(_ bucket: Int, _ window: Int) throws -> LoadedWindow {
        let key = bucket * (configuration.maxBucketSize / configuration.checkpointInterval + 1) + window
        if let hit = windowCache.lookup(key) { return hit }
        let aggregate = index.buckets[bucket]
        let checkpoints = try checkpoints(bucket)
        let interval = configuration.checkpointInterval
        let expected = min(interval, aggregate.count - window * interval)
        let items = try store.items(from: checkpoints.keys[window], count: expected, through: watermark)
        let loaded = LoadedWindow(items: items)
        let expectedSum = window + 1 < checkpoints.sums.count
            ? checkpoints.sums[window + 1] - checkpoints.sums[window]
            : aggregate.sum - checkpoints.sums[window]
        guard items.count == expected, loaded.sums[items.count] == expectedSum else {
            throw SQLiteStorageError.aggregatesOutOfDate("bucket at \(aggregate.start) does not match its entries")
        }
        windowCache.insert(loaded, for: key)
        return loaded
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
        if newest == stored.watermark {
            // Nothing new after all (another connection caught up first): adopt what is stored.
            adopt(working, watermark: stored.watermark, token: stored.token)
            return 0
        }
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
        try rewrite(dirty, in: &working, through: newest)
        working.recomputePrefixes()
        let newToken = Self.freshToken()
        try store.writeState(watermark: newest, token: newToken)
        adopt(working, watermark: newest, token: newToken)
        return folded
    }

    /// Rewrites the rows of the changed buckets: splits those over
    /// ``SQLiteStorageConfiguration/maxBucketSize`` into buckets of about
    /// ``SQLiteStorageConfiguration/targetBucketSize`` and recomputes checkpoints.
    ///
    /// The last bucket is where appends with fresh HLCs land, often one entry per catch-up; its
    /// checkpoints are left stale (NULL) rather than rescanned each time, and readers compute
    /// them on demand.
    private func rewrite(_ dirty: Set<Int>, in working: inout BucketIndex, through: Int64) throws {
        var shift = 0
        for bucket in dirty.sorted() {
            let current = bucket + shift
            let aggregate = working.buckets[current]
            let isLast = current == working.buckets.count - 1
            if aggregate.count <= configuration.maxBucketSize && isLast {
                try store.writeBucket(aggregate, checkpoints: nil)
                continue
            }
            let items = try store.items(from: aggregate.start, count: aggregate.count, through: through)
            guard items.count == aggregate.count else {
                throw SQLiteStorageError.aggregatesOutOfDate("bucket at \(aggregate.start) lost entries")
            }
            let target = aggregate.count > configuration.maxBucketSize ? configuration.targetBucketSize : aggregate.count
            var pieces = chunk(items, target: target)
            // The first piece keeps the bucket's start, so the key ranges stay contiguous.
            pieces[0].bucket.start = aggregate.start
            working.replace(current, with: pieces.map(\.bucket))
            for piece in pieces {
                try store.writeBucket(piece.bucket, checkpoints: checkpoints(for: piece, in: items))
            }
            shift += pieces.count - 1
        }
    }

    /// Builds all buckets from one scan of the entries in key order.
    @discardableResult
    private func rebuildFromScratch() throws -> Int {
        let newest = try store.maxSequence()
        let interval = configuration.checkpointInterval
        try store.deleteAllBuckets()
        var buckets: [BucketIndex.Bucket] = []
        var current = BucketIndex.Bucket(start: BucketIndex.origin, count: 0, sum: .zero)
        var members: [Item] = []
        func flush() throws {
            try store.writeBucket(current, checkpoints: BucketCheckpoints(start: current.start, items: members[...], interval: interval))
            buckets.append(current)
        }
        try store.forEachEntryInKeyOrder(through: newest) { item in
            if current.count == configuration.targetBucketSize {
                try flush()
                current = BucketIndex.Bucket(start: item, count: 0, sum: .zero)
                members.removeAll(keepingCapacity: true)
            }
            current.count += 1
            current.sum.add(item.id)
            members.append(item)
        }
        try flush()
        let working = try BucketIndex(loaded: buckets)
        let newToken = Self.freshToken()
        try store.writeState(watermark: newest, token: newToken)
        adopt(working, watermark: newest, token: newToken)
        return working.total
    }

    /// Replaces the in-memory copy by the stored aggregates (O(buckets)).
    private func reload() throws {
        guard let stored = try store.readState() else { return }
        adopt(try BucketIndex(loaded: store.loadBuckets()), watermark: stored.watermark, token: stored.token)
    }

    private func adopt(_ working: BucketIndex, watermark: Int64, token: Int64) {
        index = working
        self.watermark = watermark
        self.token = token
        checkpointCache.removeAll()
        windowCache.removeAll()
    }

    /// A piece of a split bucket: its aggregate and where its items sit in the source array.
    private struct Piece {
        var bucket: BucketIndex.Bucket
        let range: Range<Int>
    }

    /// `items` cut into `ceil(n / target)` pieces of near-equal size, in order.
    private func chunk(_ items: [Item], target: Int) -> [Piece] {
        let pieceCount = max((items.count + target - 1) / target, 1)
        let (size, extra) = items.count.quotientAndRemainder(dividingBy: pieceCount)
        var pieces: [Piece] = []
        var start = 0
        for piece in 0..<pieceCount {
            let end = start + size + (piece < extra ? 1 : 0)
            var sum = IDSum.zero
            for item in items[start..<end] { sum.add(item.id) }
            let first = start < end ? items[start] : BucketIndex.origin
            pieces.append(Piece(bucket: BucketIndex.Bucket(start: first, count: end - start, sum: sum), range: start..<end))
            start = end
        }
        return pieces
    }

    private func checkpoints(for piece: Piece, in items: [Item]) -> BucketCheckpoints {
        BucketCheckpoints(start: piece.bucket.start, items: items[piece.range], interval: configuration.checkpointInterval)
    }

    /// A random tag for one version of the stored aggregates.
    private static func freshToken() -> Int64 { Int64.random(in: Int64.min...Int64.max) }
}
