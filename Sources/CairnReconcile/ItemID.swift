/// A 32-byte record identifier (in Cairn: the BLAKE2b-256 entry hash).
///
/// The bytes are kept as four machine words loaded straight from memory, so that copying,
/// hashing, comparing (memcmp order) and fingerprint additions never touch the heap.
public struct ItemID: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The size of an id on the wire.
    public static let byteCount = 32

    /// Bytes 0–7, 8–15, 16–23 and 24–31, each loaded in native byte order.
    @usableFromInline var w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64

    @inlinable init(words w0: UInt64, _ w1: UInt64, _ w2: UInt64, _ w3: UInt64) {
        (self.w0, self.w1, self.w2, self.w3) = (w0, w1, w2, w3)
    }

    /// The all-zero id.
    public static let zero = ItemID(words: 0, 0, 0, 0)

    /// Reads an id from exactly 32 bytes; returns `nil` for any other length.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == Self.byteCount else { return nil }
        let copied: ItemID? = bytes.withContiguousStorageIfAvailable { buffer in
            ItemID(unsafeBytes: UnsafeRawBufferPointer(buffer))
        }
        if let copied {
            self = copied
        } else {
            self = Array(bytes).withUnsafeBytes { ItemID(unsafeBytes: $0) }
        }
    }

    /// Reads an id from the first 32 bytes of `raw`, which must hold at least 32 bytes.
    @inlinable public init(unsafeBytes raw: UnsafeRawBufferPointer) {
        precondition(raw.count >= Self.byteCount, "an ItemID needs 32 bytes")
        self.init(
            words: raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self),
            raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
            raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self),
            raw.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
    }

    /// Parses 64 hexadecimal digits; returns `nil` for anything else.
    public init?(hex: String) {
        guard let bytes = HexCoding.decode(hex), let id = ItemID(bytes: bytes) else { return nil }
        self = id
    }

    /// The 32 bytes of the id.
    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    /// Calls `body` with the 32 bytes of the id, without copying them to the heap.
    @inlinable public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        var copy = self
        return try Swift.withUnsafeBytes(of: &copy) { try body(UnsafeRawBufferPointer(rebasing: $0[0..<32])) }
    }

    /// Lowercase hexadecimal.
    public var description: String { HexCoding.encode(bytes) }

    /// Compares as `memcmp` on the 32 bytes: a big-endian read of each word orders like its bytes.
    @inlinable public static func < (a: ItemID, b: ItemID) -> Bool {
        if a.w0 != b.w0 { return UInt64(bigEndian: a.w0) < UInt64(bigEndian: b.w0) }
        if a.w1 != b.w1 { return UInt64(bigEndian: a.w1) < UInt64(bigEndian: b.w1) }
        if a.w2 != b.w2 { return UInt64(bigEndian: a.w2) < UInt64(bigEndian: b.w2) }
        return UInt64(bigEndian: a.w3) < UInt64(bigEndian: b.w3)
    }

    /// The number of leading bytes that `self` and `other` have in common (0–32).
    @inlinable func commonPrefixLength(with other: ItemID) -> Int {
        @inline(__always) func sharedBytes(_ a: UInt64, _ b: UInt64) -> Int {
            (UInt64(bigEndian: a) ^ UInt64(bigEndian: b)).leadingZeroBitCount / 8
        }
        if w0 != other.w0 { return sharedBytes(w0, other.w0) }
        if w1 != other.w1 { return 8 + sharedBytes(w1, other.w1) }
        if w2 != other.w2 { return 16 + sharedBytes(w2, other.w2) }
        if w3 != other.w3 { return 24 + sharedBytes(w3, other.w3) }
        return Self.byteCount
    }

    /// The first `length` bytes of the id followed by zeros (how a bound's prefix compares).
    @inlinable func truncated(to length: Int) -> ItemID {
        func mask(_ word: UInt64, keeping bytes: Int) -> UInt64 {
            if bytes >= 8 { return word }
            if bytes <= 0 { return 0 }
            // Keep the first `bytes` bytes in memory order, whatever the host byte order.
            let keep = UInt64.max << UInt64(64 - 8 * bytes)
            return UInt64(bigEndian: UInt64(bigEndian: word) & keep)
        }
        return ItemID(words: mask(w0, keeping: length), mask(w1, keeping: length - 8),
                      mask(w2, keeping: length - 16), mask(w3, keeping: length - 24))
    }
}

/// Hexadecimal helpers shared by the public `hex` APIs.
enum HexCoding {
    static func encode(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func decode(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 2 == 0 else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
            default: return nil
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(chars.count / 2)
        var index = 0
        while index < chars.count {
            guard let high = nibble(chars[index]), let low = nibble(chars[index + 1]) else { return nil }
            out.append(high << 4 | low)
            index += 2
        }
        return out
    }
}
