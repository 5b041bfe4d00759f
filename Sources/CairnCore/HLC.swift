#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A Hybrid Logical Clock timestamp (Kulkarni et al.): 48 bits of wall-clock milliseconds
/// since the Unix epoch, then a 16-bit logical counter, packed into one `UInt64`.
///
/// Comparing two HLCs compares their raw values. Cairn accepts only values below 2^63 (the
/// wall-clock part then reaches the year 6429), so the value sorts correctly as a signed
/// SQLite integer; `UInt64.max` is "infinity" in the reconciliation protocol and never valid.
public struct HLC: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The packed value: `wallMilliseconds << 16 | counter`.
    public let rawValue: UInt64

    /// The largest valid HLC (2^63 − 1).
    public static let maxValid = HLC(rawValue: UInt64(Int64.max))
    /// The smallest HLC.
    public static let zero = HLC(rawValue: 0)

    /// Wraps a packed value.
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// Packs wall-clock milliseconds and a counter.
    public init(wallMilliseconds: UInt64, counter: UInt16) {
        self.rawValue = wallMilliseconds << 16 | UInt64(counter)
    }

    /// The wall-clock part, in milliseconds since the Unix epoch.
    public var wallMilliseconds: UInt64 { rawValue >> 16 }
    /// The logical counter.
    public var counter: UInt16 { UInt16(truncatingIfNeeded: rawValue) }
    /// Whether Cairn accepts this value in an entry.
    public var isValid: Bool { rawValue <= HLC.maxValid.rawValue }

    /// `wall.counter`, e.g. `1763702400000.3`.
    public var description: String { "\(wallMilliseconds).\(counter)" }

    public static func < (lhs: HLC, rhs: HLC) -> Bool { lhs.rawValue < rhs.rawValue }

    /// The next HLC after this one (counter + 1, carrying into the wall-clock part).
    public var successor: HLC { HLC(rawValue: rawValue + 1) }
}

/// A source of physical time in milliseconds since the Unix epoch; injectable for tests.
public protocol WallClock: Sendable {
    /// Milliseconds since the Unix epoch.
    func nowMilliseconds() -> UInt64
}

/// The system's real-time clock.
public struct SystemWallClock: WallClock {
    public init() {}
    public func nowMilliseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) * 1000 + UInt64(ts.tv_nsec) / 1_000_000
    }
}

/// The HLC state machine: `now()` for local events, `observe(_:)` for remote timestamps.
///
/// The clock never goes backwards, even when the wall clock does: every value it hands out is
/// above every value it has issued or adopted. Persist ``last`` (the store does) and seed a new
/// clock with it after a restart.
///
/// **Bounded adoption.** With a ``tolerance``, a remote timestamp may move the clock forward only
/// to `wall + tolerance`: ``observe(_:)`` adopts a remote HLC only when ``admits(_:)`` it, that is
/// when its wall part is below `wall + tolerance` or the clock is already at or past it. A remote
/// HLC further ahead is ignored until the wall clock comes within the tolerance of it, so one node
/// with a fast wall clock cannot drag the others' clocks (and every entry they sign) into the
/// future. Values this node committed to itself — its own signed entries, its persisted clock, the
/// parents it chose under the rule — are taken with ``adopt(_:)``, unconditionally. Without a
/// tolerance the clock follows Kulkarni's receive rule: it adopts any remote value.
public struct HybridClock: Sendable {
    /// The greatest HLC issued or adopted so far.
    public private(set) var last: HLC
    /// How far ahead of the wall clock, in milliseconds, a remote HLC may move this clock;
    /// `nil`: no limit.
    public let tolerance: UInt64?
    private let wall: any WallClock

    /// A clock that will only issue values above `last`, and adopts remote values at most
    /// `tolerance` milliseconds ahead of `wall` (`nil`: any).
    public init(last: HLC = .zero, wall: any WallClock = SystemWallClock(), tolerance: UInt64? = nil) {
        self.last = last
        self.wall = wall
        self.tolerance = tolerance
    }

    /// The physical time now, in milliseconds.
    public func physicalMilliseconds() -> UInt64 { wall.nowMilliseconds() }

    /// A new timestamp for a local event, greater than every one issued or adopted before.
    ///
    /// Kulkarni's send rule: `l' = max(l, pt)`; the counter increments if `l` did not move,
    /// else resets. When the 16-bit counter would overflow, the wall part advances by one
    /// millisecond instead (the raw successor), which keeps the value strictly increasing.
    public mutating func now() -> HLC {
        let physical = HLC(wallMilliseconds: wall.nowMilliseconds(), counter: 0)
        last = physical > last ? physical : last.successor
        return last
    }

    /// The greatest HLC the clock may adopt from another node now: just below
    /// `HLC(wall + tolerance, 0)`, or ``last`` if that is greater (adopting a value at or below
    /// `last` moves nothing). A value issued after adopting the ceiling has a wall part of at
    /// most `wall + tolerance`. `HLC.maxValid` without a tolerance.
    public func ceiling() -> HLC {
        guard let tolerance else { return .maxValid }
        let bound = HLC(wallMilliseconds: wall.nowMilliseconds() + tolerance, counter: 0)
        return max(last, HLC(rawValue: max(bound.rawValue, 1) - 1))
    }

    /// Whether ``observe(_:)`` would adopt `remote` now (see ``ceiling()``).
    public func admits(_ remote: HLC) -> Bool { remote <= ceiling() }

    /// Folds in a timestamp seen on a remote entry (Kulkarni's receive rule, bounded): if the
    /// clock ``admits(_:)`` it, every later local timestamp is above it. A remote value beyond the
    /// ceiling is ignored. Returns whether the clock is now at or above `remote`.
    @discardableResult
    public mutating func observe(_ remote: HLC) -> Bool {
        guard remote > last else { return true }
        guard admits(remote) else { return false }
        last = remote
        return true
    }

    /// Moves the clock to at least `value`, whatever the wall clock reads: for HLCs this node
    /// committed to itself (its own signed entries, its persisted clock, the parents it chose).
    public mutating func adopt(_ value: HLC) {
        if value > last { last = value }
    }
}
