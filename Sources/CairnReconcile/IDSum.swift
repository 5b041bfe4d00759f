/// The sum of ids modulo 2^256, each id read as a little-endian 256-bit integer.
///
/// This is the reference's `Accumulator`. Because it is a group (it has subtraction), a range's
/// sum is `prefix(end) − prefix(begin)`, which is what makes cached checkpoints possible.
public struct IDSum: Hashable, Sendable {
    /// Limbs, least significant first.
    @usableFromInline var l0: UInt64, l1: UInt64, l2: UInt64, l3: UInt64

    /// The sum of no ids.
    public static let zero = IDSum(limbs: 0, 0, 0, 0)

    @inlinable init(limbs l0: UInt64, _ l1: UInt64, _ l2: UInt64, _ l3: UInt64) {
        (self.l0, self.l1, self.l2, self.l3) = (l0, l1, l2, l3)
    }

    /// The sum holding just `id`.
    @inlinable public init(_ id: ItemID) {
        self.init(limbs: UInt64(littleEndian: id.w0), UInt64(littleEndian: id.w1),
                  UInt64(littleEndian: id.w2), UInt64(littleEndian: id.w3))
    }

    /// Reads a sum from its 32-byte little-endian serialization; `nil` for another length.
    public init?(bytes: some Collection<UInt8>) {
        guard let asID = ItemID(bytes: bytes) else { return nil }
        self.init(asID)
    }

    /// Adds `id` in place.
    @inlinable public mutating func add(_ id: ItemID) { add(IDSum(id)) }

    /// Adds another sum in place (mod 2^256).
    @inlinable public mutating func add(_ other: IDSum) {
        var carry: UInt64
        var overflow: Bool
        (l0, overflow) = l0.addingReportingOverflow(other.l0)
        carry = overflow ? 1 : 0
        (l1, carry) = Self.addWithCarry(l1, other.l1, carry)
        (l2, carry) = Self.addWithCarry(l2, other.l2, carry)
        (l3, _) = Self.addWithCarry(l3, other.l3, carry)
    }

    /// Subtracts another sum in place (mod 2^256).
    @inlinable public mutating func subtract(_ other: IDSum) {
        var borrow: UInt64
        var overflow: Bool
        (l0, overflow) = l0.subtractingReportingOverflow(other.l0)
        borrow = overflow ? 1 : 0
        (l1, borrow) = Self.subtractWithBorrow(l1, other.l1, borrow)
        (l2, borrow) = Self.subtractWithBorrow(l2, other.l2, borrow)
        (l3, _) = Self.subtractWithBorrow(l3, other.l3, borrow)
    }

    /// `a + b` (mod 2^256).
    @inlinable public static func + (a: IDSum, b: IDSum) -> IDSum {
        var result = a
        result.add(b)
        return result
    }

    /// `a − b` (mod 2^256).
    @inlinable public static func - (a: IDSum, b: IDSum) -> IDSum {
        var result = a
        result.subtract(b)
        return result
    }

    /// The 32-byte little-endian serialization that the fingerprint hashes.
    public var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(32)
        for limb in [l0, l1, l2, l3] {
            withUnsafeBytes(of: limb.littleEndian) { out.append(contentsOf: $0) }
        }
        return out
    }

    /// The fingerprint of a range holding `count` items whose ids add up to this sum.
    public func fingerprint(count: Int) -> Fingerprint {
        Fingerprint(sum: self, count: UInt64(count))
    }

    @inlinable static func addWithCarry(_ a: UInt64, _ b: UInt64, _ carry: UInt64) -> (UInt64, UInt64) {
        let (partial, overflow1) = a.addingReportingOverflow(b)
        let (result, overflow2) = partial.addingReportingOverflow(carry)
        return (result, (overflow1 || overflow2) ? 1 : 0)
    }

    @inlinable static func subtractWithBorrow(_ a: UInt64, _ b: UInt64, _ borrow: UInt64) -> (UInt64, UInt64) {
        let (partial, overflow1) = a.subtractingReportingOverflow(b)
        let (result, overflow2) = partial.subtractingReportingOverflow(borrow)
        return (result, (overflow1 || overflow2) ? 1 : 0)
    }
}

extension IDSum {
    /// `result[i]` is the sum of the first `i` items' ids (so `result[0]` is zero and the sum of
    /// `items[a..<b]` is `result[b] − result[a]`).
    static func prefixSums(of items: [Item]) -> [IDSum] {
        var sums: [IDSum] = []
        sums.reserveCapacity(items.count + 1)
        var running = IDSum.zero
        sums.append(running)
        for item in items {
            running.add(item.id)
            sums.append(running)
        }
        return sums
    }
}
