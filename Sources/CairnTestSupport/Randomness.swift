#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// splitmix64: a tiny, fast, seedable PRNG. Every randomized test and benchmark draws from one,
/// so a run replays exactly from its seed (the reference-transcript fixtures were made with it).
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// `count` random bytes.
    public mutating func bytes(_ count: Int) -> [UInt8] {
        (0..<count).map { _ in UInt8(truncatingIfNeeded: next()) }
    }
}

/// The seed of a randomized test: `CAIRN_SEED` if set, else a fresh one. Printed either way,
/// so a failure replays with `CAIRN_SEED=<seed> swift test --filter <test>`.
public func randomizedTestSeed(_ testName: String) -> UInt64 {
    let seed = getenv("CAIRN_SEED").flatMap { UInt64(String(cString: $0)) } ?? UInt64.random(in: 0...UInt64.max)
    print("\(testName): seed=\(seed) (replay with CAIRN_SEED=\(seed))")
    return seed
}
