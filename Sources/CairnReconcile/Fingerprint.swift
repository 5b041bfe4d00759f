import CSodium

/// A range fingerprint: the first 16 bytes of `SHA-256(sum ‖ Varint(count))`, where `sum` is the
/// 32-byte little-endian ``IDSum`` of the range's ids.
public struct Fingerprint: Hashable, Sendable, CustomStringConvertible {
    /// Bytes on the wire.
    public static let byteCount = 16

    /// Bytes 0–7 and 8–15 in native byte order (compared, never interpreted).
    @usableFromInline var low: UInt64, high: UInt64

    /// Reads a fingerprint from exactly 16 bytes; `nil` for another length.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == Self.byteCount else { return nil }
        let array = Array(bytes)
        (low, high) = array.withUnsafeBytes {
            ($0.loadUnaligned(fromByteOffset: 0, as: UInt64.self), $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        }
    }

    /// Reads 16 bytes of `raw` starting at `offset`; the caller checks the length.
    @inlinable init(unsafeBytes raw: UnsafeRawBufferPointer, offset: Int) {
        low = raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
        high = raw.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self)
    }

    /// Computes the fingerprint of `count` items whose ids add up to `sum`.
    public init(sum: IDSum, count: UInt64) {
        Sodium.ensureInitialized()
        // 32 bytes of sum plus at most 10 bytes of varint: hash from a stack buffer, no heap.
        var input: (IDSum, UInt64, UInt64) = (sum, 0, 0)
        var digest: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        let length = withUnsafeMutableBytes(of: &input) { raw -> Int in
            Fingerprint.writeLittleEndian(sum, into: raw)
            return 32 + Fingerprint.writeVarint(count, into: UnsafeMutableRawBufferPointer(rebasing: raw[32...]))
        }
        withUnsafeBytes(of: &input) { raw in
            withUnsafeMutableBytes(of: &digest) { out in
                _ = crypto_hash_sha256(out.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                       raw.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                       UInt64(length))
            }
        }
        (low, high) = (digest.0, digest.1)
    }

    /// The 16 bytes.
    public var bytes: [UInt8] {
        var pair = (low, high)
        return withUnsafeBytes(of: &pair) { Array($0) }
    }

    /// Appends the 16 bytes to `out`.
    @inlinable func append(to out: inout [UInt8]) {
        var pair = (low, high)
        withUnsafeBytes(of: &pair) { out.append(contentsOf: $0) }
    }

    /// Lowercase hexadecimal.
    public var description: String { HexCoding.encode(bytes) }

    private static func writeLittleEndian(_ sum: IDSum, into raw: UnsafeMutableRawBufferPointer) {
        raw.storeBytes(of: sum.l0.littleEndian, toByteOffset: 0, as: UInt64.self)
        raw.storeBytes(of: sum.l1.littleEndian, toByteOffset: 8, as: UInt64.self)
        raw.storeBytes(of: sum.l2.littleEndian, toByteOffset: 16, as: UInt64.self)
        raw.storeBytes(of: sum.l3.littleEndian, toByteOffset: 24, as: UInt64.self)
    }

    private static func writeVarint(_ value: UInt64, into raw: UnsafeMutableRawBufferPointer) -> Int {
        let length = Varint.encodedLength(value)
        for index in 0..<length {
            let shift = UInt64(7 * (length - 1 - index))
            let continuation: UInt8 = index < length - 1 ? 0x80 : 0
            raw[index] = UInt8(truncatingIfNeeded: value >> shift) & 0x7f | continuation
        }
        return length
    }
}

/// One-time libsodium initialization (thread-safe and idempotent, so a `static let` suffices).
enum Sodium {
    private static let initialized: Bool = sodium_init() >= 0

    static func ensureInitialized() {
        precondition(initialized, "libsodium failed to initialize")
    }
}
