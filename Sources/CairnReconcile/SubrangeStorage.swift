/// A view of the items of another storage that lie in `[lowerBound, upperBound)`.
///
/// Use it to reconcile only part of a set, e.g. the last hour of HLCs. Both peers must use the
/// same bounds. Unlike the reference's `SubRange`, which also admits an item equal to the upper
/// bound, the range here is half-open.
public final class SubrangeStorage<Base: ReconcileStorage>: ReconcileStorage {
    /// The underlying storage.
    public let base: Base
    /// The first bound included.
    public let lowerBound: Bound
    /// The first bound excluded.
    public let upperBound: Bound
    /// The base indices of the view, recomputed whenever the base may have changed.
    private var baseRange: Range<Int> = 0..<0

    /// Creates the view; `lowerBound` must not exceed `upperBound`.
    public init(base: Base, lowerBound: Bound = .zero, upperBound: Bound = .infinity) throws {
        guard lowerBound <= upperBound else {
            throw ReconcileError.boundWentBackwards(previous: lowerBound, current: upperBound)
        }
        self.base = base
        self.lowerBound = lowerBound
        self.upperBound = upperBound
        try locate()
    }

    public var count: Int { baseRange.count }

    /// Starts the base's session, then re-locates the bounds in the (possibly grown) base.
    public func beginSession() throws {
        try base.beginSession()
        try locate()
    }

    public func withReadSnapshot<T>(_ body: () throws -> T) throws -> T {
        try base.withReadSnapshot(body)
    }

    public func item(at index: Int) throws -> Item {
        guard index >= 0, index < count else { throw ReconcileError.indexOutOfRange(index, count: count) }
        return try base.item(at: baseRange.lowerBound + index)
    }

    public func lowerBound(of bound: Bound, from start: Int) throws -> Int {
        try checkStart(start)
        // Clamp to the view: the base may hold items past our upper bound.
        let found = try base.lowerBound(of: bound, from: baseRange.lowerBound + start)
        return min(found, baseRange.upperBound) - baseRange.lowerBound
    }

    public func idSum(of range: Range<Int>) throws -> IDSum {
        try checkRange(range)
        return try base.idSum(of: shifted(range))
    }

    public func forEachItem(in range: Range<Int>, _ body: (Int, Item) throws -> Bool) throws {
        try checkRange(range)
        let offset = baseRange.lowerBound
        try base.forEachItem(in: shifted(range)) { index, item in try body(index - offset, item) }
    }

    private func shifted(_ range: Range<Int>) -> Range<Int> {
        (range.lowerBound + baseRange.lowerBound)..<(range.upperBound + baseRange.lowerBound)
    }

    private func locate() throws {
        let begin = lowerBound == .zero ? 0 : try base.lowerBound(of: lowerBound, from: 0)
        let end = upperBound == .infinity ? base.count : try base.lowerBound(of: upperBound, from: begin)
        baseRange = begin..<end
    }
}
