/// The sorted set of items a reconciliation engine works on.
///
/// Items are addressed by their index in `(timestamp, id)` order. The engine only ever asks for
/// counts, single items, lower bounds, id sums of index ranges and short iterations, so a backend
/// with cached partial sums can answer in O(log n) instead of O(range).
///
/// A storage must present one consistent snapshot between two ``beginSession()`` calls — at the
/// very least for the duration of one `reconcile` call, since indices are not kept across
/// messages.
public protocol ReconcileStorage: AnyObject {
    /// The number of items.
    var count: Int { get }

    /// The item at `index` (`0 ..< count`).
    func item(at index: Int) throws -> Item

    /// The index of the first item at or after `start` that is not below `bound`
    /// (`count` if there is none): `std::lower_bound` over `start ..< count`.
    func lowerBound(of bound: Bound, from start: Int) throws -> Int

    /// The sum of the ids of the items in `range` (a sub-range of `0 ..< count`).
    func idSum(of range: Range<Int>) throws -> IDSum

    /// Calls `body` with each index and item of `range` in order, until it returns `false`.
    func forEachItem(in range: Range<Int>, _ body: (Int, Item) throws -> Bool) throws

    /// Called when a session starts, so a backend can bring itself up to date
    /// (the SQLite backend folds in newly appended entries here).
    func beginSession() throws

    /// Runs `body`, which reads the storage to build one message, against one snapshot
    /// (the SQLite backend wraps it in a read transaction: one lock instead of one per query).
    func withReadSnapshot<T>(_ body: () throws -> T) throws -> T
}

extension ReconcileStorage {
    /// Nothing to refresh by default.
    public func beginSession() throws {}

    /// In-memory storages need no snapshot: `body` runs as is.
    public func withReadSnapshot<T>(_ body: () throws -> T) throws -> T { try body() }

    /// The fingerprint of the items in `range`.
    public func fingerprint(of range: Range<Int>) throws -> Fingerprint {
        try idSum(of: range).fingerprint(count: range.count)
    }

    /// Throws unless `start` lies within `0 ... count`.
    func checkStart(_ start: Int) throws(ReconcileError) {
        guard start >= 0, start <= count else { throw .indexOutOfRange(start, count: count) }
    }

    /// Throws unless `range` lies within `0 ... count`.
    func checkRange(_ range: Range<Int>) throws(ReconcileError) {
        guard range.lowerBound >= 0 else { throw .indexOutOfRange(range.lowerBound, count: count) }
        guard range.upperBound <= count else { throw .indexOutOfRange(range.upperBound, count: count) }
    }
}
