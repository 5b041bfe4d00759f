import CairnTestSupport
import CairnCore
import Foundation
import Testing

/// A wall clock that plays back a script of readings (repeating the last one), for tests.
final class ScriptedWallClock: WallClock, @unchecked Sendable {
    private let lock = NSLock()
    private var readings: [UInt64]
    private var index = 0

    init(_ readings: [UInt64]) { self.readings = readings }

    /// Replaces what the clock reads from now on.
    func set(_ ms: UInt64) {
        lock.lock()
        defer { lock.unlock() }
        readings = [ms]
        index = 0
    }

    func nowMilliseconds() -> UInt64 {
        lock.lock()
        defer { lock.unlock() }
        let value = readings[min(index, readings.count - 1)]
        index += 1
        return value
    }
}

@Suite struct HybridClockTests {
    static let t0: UInt64 = 1_763_702_400_000

    @Test func packsWallMillisecondsAndCounter() {
        let hlc = HLC(wallMilliseconds: Self.t0, counter: 7)
        #expect(hlc.rawValue == Self.t0 << 16 | 7)
        #expect(hlc.wallMilliseconds == Self.t0 && hlc.counter == 7)
        #expect(hlc.description == "\(Self.t0).7")
        #expect(HLC(wallMilliseconds: Self.t0, counter: .max) < HLC(wallMilliseconds: Self.t0 + 1, counter: 0))
        #expect(HLC.maxValid.rawValue == (1 << 63) - 1 && HLC.maxValid.isValid)
        #expect(!HLC(rawValue: 1 << 63).isValid && !HLC(rawValue: .max).isValid && HLC.zero.isValid)
        #expect(HLC(wallMilliseconds: 5, counter: .max).successor == HLC(wallMilliseconds: 6, counter: 0))
    }

    @Test func nowIsStrictlyIncreasingWhenTheWallClockGoesBackwards() {
        let script: [UInt64] = [1000, 1000, 999, 500, 500, 1001, 2000, 1500, 0, 2000, 2001, 1]
        var clock = HybridClock(wall: ScriptedWallClock(script.map { Self.t0 + $0 }))
        var previous = HLC.zero
        var issued: [HLC] = []
        for _ in 0..<(script.count + 5) {
            let now = clock.now()
            #expect(now > previous, "\(now) after \(previous)")
            #expect(clock.last == now)
            previous = now
            issued.append(now)
        }
        // When the wall clock moves ahead of the clock, the counter resets to 0.
        #expect(issued[0] == HLC(wallMilliseconds: Self.t0 + 1000, counter: 0))
        #expect(issued[1] == HLC(wallMilliseconds: Self.t0 + 1000, counter: 1))
        #expect(issued[4] == HLC(wallMilliseconds: Self.t0 + 1000, counter: 4))
        #expect(issued[5] == HLC(wallMilliseconds: Self.t0 + 1001, counter: 0))
        #expect(issued[6] == HLC(wallMilliseconds: Self.t0 + 2000, counter: 0))
        #expect(issued[9] == HLC(wallMilliseconds: Self.t0 + 2000, counter: 3))
        #expect(issued[10] == HLC(wallMilliseconds: Self.t0 + 2001, counter: 0))
    }

    @Test func counterOverflowCarriesIntoTheWallPart() {
        let wall = ScriptedWallClock([Self.t0])
        var clock = HybridClock(last: HLC(wallMilliseconds: Self.t0, counter: .max - 1), wall: wall)
        #expect(clock.now() == HLC(wallMilliseconds: Self.t0, counter: .max))
        #expect(clock.now() == HLC(wallMilliseconds: Self.t0 + 1, counter: 0))
        #expect(clock.now() == HLC(wallMilliseconds: Self.t0 + 1, counter: 1))
        // A full counter's worth of events within one (stuck) millisecond keeps increasing.
        var previous = clock.last
        for _ in 0..<70_000 {
            let now = clock.now()
            #expect(now > previous)
            previous = now
        }
        #expect(previous.wallMilliseconds == Self.t0 + 2)
        // Once the wall clock catches up, it takes over again.
        wall.set(Self.t0 + 10)
        #expect(clock.now() == HLC(wallMilliseconds: Self.t0 + 10, counter: 0))
    }

    @Test func observingARemoteTimestampPushesTheClockPastIt() {
        let wall = ScriptedWallClock([Self.t0])
        var clock = HybridClock(wall: wall)
        let first = clock.now()
        let remote = HLC(wallMilliseconds: Self.t0 + 600_000, counter: 7)  // ten minutes ahead
        clock.observe(remote)
        #expect(clock.last == remote)
        let next = clock.now()
        #expect(next > remote && next > first)
        #expect(next == remote.successor)
        // An older remote timestamp changes nothing.
        clock.observe(HLC(wallMilliseconds: Self.t0 - 5, counter: 0))
        #expect(clock.last == next)
        #expect(clock.now() == next.successor)
        // Observing a remote counter at its maximum still yields a greater value.
        clock.observe(HLC(wallMilliseconds: Self.t0 + 700_000, counter: .max))
        #expect(clock.now() == HLC(wallMilliseconds: Self.t0 + 700_001, counter: 0))
    }

    @Test func persistedLastSeedsAMonotonicClock() {
        let wall = ScriptedWallClock([Self.t0 + 5_000])
        var clock = HybridClock(wall: wall)
        for _ in 0..<100 { _ = clock.now() }
        clock.observe(HLC(wallMilliseconds: Self.t0 + 9_000, counter: 3))
        let persisted = clock.last.rawValue  // what a store writes to disk

        // After a "restart" the wall clock reads an hour earlier.
        var restarted = HybridClock(last: HLC(rawValue: persisted), wall: ScriptedWallClock([Self.t0 - 3_600_000]))
        let first = restarted.now()
        #expect(first.rawValue > persisted)
        #expect(restarted.now() > first)
        // A clock not seeded with `last` would go backwards: the reason to persist it.
        var unseeded = HybridClock(wall: ScriptedWallClock([Self.t0 - 3_600_000]))
        #expect(unseeded.now().rawValue < persisted)
    }

    /// The clock rule of invariant 5: with a tolerance, a remote HLC moves the clock only if it
    /// is within the tolerance of the wall clock; one further ahead is ignored until the wall
    /// clock nears it, so what the clock issues stays within the tolerance of the wall clock.
    /// Values the node committed to itself (`adopt`) move it regardless.
    @Test func aRemoteHLCIsAdoptedOnlyWithinTheToleranceOfTheWallClock() {
        let tolerance: UInt64 = 1_000
        let wall = ScriptedWallClock([Self.t0])
        var clock = HybridClock(wall: wall, tolerance: tolerance)
        #expect(clock.ceiling() == HLC(rawValue: HLC(wallMilliseconds: Self.t0 + tolerance, counter: 0).rawValue - 1))

        // Ten minutes ahead (a peer with a fast clock, just inside a 5-minute skew bound or not):
        // not adopted, and the next local value follows the wall clock.
        let fast = HLC(wallMilliseconds: Self.t0 + 600_000, counter: 3)
        #expect(!clock.admits(fast))
        let adoptedFast = clock.observe(fast)
        #expect(!adoptedFast)
        let local = clock.now()
        #expect(local == HLC(wallMilliseconds: Self.t0, counter: 0))

        // Just within the tolerance: adopted (Kulkarni's receive rule), the next value above it.
        let near = HLC(wallMilliseconds: Self.t0 + tolerance - 1, counter: .max)
        #expect(clock.admits(near))
        let adoptedNear = clock.observe(near)
        #expect(adoptedNear)
        let next = clock.now()
        #expect(next == near.successor && next.wallMilliseconds == Self.t0 + tolerance)
        // The clock now stands at wall + tolerance: one step above it is not admitted.
        #expect(clock.ceiling() == next && !clock.admits(next.successor))
        // Anything at or below the clock is admitted (it moves nothing).
        let adoptedOld = clock.observe(HLC(wallMilliseconds: Self.t0 - 5, counter: 0))
        #expect(clock.admits(next) && adoptedOld && clock.last == next)

        // Once the wall clock comes within the tolerance of the fast value, it is adopted.
        wall.set(Self.t0 + 600_000 - tolerance + 1)
        let adoptedLater = clock.observe(fast)
        #expect(adoptedLater)
        let afterFast = clock.now()
        #expect(afterFast == fast.successor)

        // `adopt` (the node's own HLCs) ignores the tolerance; the clock never goes backwards.
        wall.set(Self.t0)
        let own = HLC(wallMilliseconds: Self.t0 + 3_600_000, counter: 0)
        clock.adopt(own)
        #expect(clock.last == own && clock.admits(own))
        let afterOwn = clock.now()
        #expect(afterOwn == own.successor)

        // Without a tolerance, any remote value is adopted (the unbounded receive rule).
        var unbounded = HybridClock(wall: ScriptedWallClock([Self.t0]))
        #expect(unbounded.ceiling() == .maxValid)
        let adoptedUnbounded = unbounded.observe(fast)
        let afterUnbounded = unbounded.now()
        #expect(adoptedUnbounded && afterUnbounded == fast.successor)
    }

    /// Random walks of the wall clock and remote observations from a peer up to ten minutes
    /// ahead: every issued value is above everything issued or adopted before it, and its wall
    /// part is at most the wall clock plus the tolerance.
    @Test func aBoundedClockNeverIssuesBeyondTheTolerance() {
        let seed = randomizedTestSeed("aBoundedClockNeverIssuesBeyondTheTolerance")
        var rng = SplitMix64(seed: seed)
        let tolerance: UInt64 = 1_000
        let wall = ScriptedWallClock([Self.t0])
        var clock = HybridClock(wall: wall, tolerance: tolerance)
        var ms = Self.t0
        var highest = HLC.zero
        for step in 0..<5_000 {
            switch Int.random(in: 0...9, using: &rng) {
            case 0...5: ms += UInt64.random(in: 0...50, using: &rng)
            case 6: ms += UInt64.random(in: 0...5_000, using: &rng)
            default:
                let remote = HLC(wallMilliseconds: ms + UInt64.random(in: 0...600_000, using: &rng), counter: UInt16.random(in: 0...UInt16.max, using: &rng))
                wall.set(ms)
                if clock.observe(remote) { highest = max(highest, remote) }
                continue
            }
            wall.set(ms)
            let now = clock.now()
            #expect(now > highest, "seed \(seed), step \(step)")
            #expect(now.wallMilliseconds <= ms + tolerance, "seed \(seed), step \(step): \(now) at wall \(ms)")
            highest = now
        }
    }

    /// A random walk of the wall clock, interleaved with remote observations: every issued
    /// value exceeds everything issued or observed before it.
    @Test func randomWalkStaysMonotonic() {
        let seed = randomizedTestSeed("randomWalkStaysMonotonic")
        var rng = SplitMix64(seed: seed)
        let wall = ScriptedWallClock([Self.t0])
        var clock = HybridClock(wall: wall)
        var ms = Self.t0
        var highest = HLC.zero
        for step in 0..<5_000 {
            switch Int.random(in: 0...9, using: &rng) {
            case 0: ms -= UInt64.random(in: 0...10_000, using: &rng)  // clock stepped back
            case 1...6: ms += UInt64.random(in: 0...3, using: &rng)
            case 7: ms += UInt64.random(in: 0...5_000, using: &rng)
            default:
                let remote = HLC(wallMilliseconds: ms + UInt64.random(in: 0...2_000, using: &rng) - 1_000,
                                 counter: UInt16.random(in: 0...UInt16.max, using: &rng))
                clock.observe(remote)
                highest = max(highest, remote)
                continue
            }
            wall.set(ms)
            let now = clock.now()
            #expect(now > highest, "seed \(seed), step \(step)")
            #expect(now.isValid)
            highest = now
        }
    }

    /// With the real clock (whatever it reads), values still only grow.
    @Test func systemClockValuesIncrease() {
        var clock = HybridClock()
        var previous = clock.now()
        for _ in 0..<1_000 {
            let now = clock.now()
            #expect(now > previous)
            previous = now
        }
    }
}
