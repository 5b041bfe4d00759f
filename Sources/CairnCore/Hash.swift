import CBlake2

/// A 32-byte BLAKE2b-256 digest: an entry id or a value digest.
///
/// Ordered by unsigned byte comparison (memcmp order), which is the order of parents in an entry
/// and of ids at equal HLC in the `(hlc, id)` index.
public struct Hash32: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Number of bytes in a digest.
    public static let byteCount = 32
    /// The digest bytes, always 32 of them.
    public let bytes: [UInt8]

    /// Wraps 32 bytes; returns `nil` for any other length.
    public init?(bytes: [UInt8]) {
        guard bytes.count == Hash32.byteCount else { return nil }
        self.bytes = bytes
    }

    /// Wraps 32 bytes from a slice; returns `nil` for any other length.
    public init?<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        self.init(bytes: Array(bytes))
    }

    /// Parses 64 hex digits.
    public init?(hex: String) {
        guard hex.utf8.count == 64, let bytes = Hex.decode(hex) else { return nil }
        self.bytes = bytes
    }

    /// Lower-case hex, 64 digits.
    public var hex: String { Hex.encode(bytes) }
    public var description: String { hex }

    /// The first `count` hex digits, like git's abbreviated object names.
    public func shortHex(_ count: Int = 12) -> String { String(hex.prefix(count)) }

    public static func < (lhs: Hash32, rhs: Hash32) -> Bool {
        lhs.bytes.lexicographicallyPrecedes(rhs.bytes)
    }
}

/// BLAKE2b-256 through libb2.
public enum Blake2b {
    /// The BLAKE2b-256 digest of `bytes`.
    public static func hash256(_ bytes: [UInt8]) -> Hash32 {
        var out = [UInt8](repeating: 0, count: 32)
        bytes.withUnsafeBytes { input in
            _ = blake2b(&out, input.baseAddress, nil, 32, input.count, 0)
        }
        return Hash32(bytes: out)!
    }

    /// An incremental BLAKE2b-256 hasher, for values that arrive or are read in pieces.
    public struct Hasher {
        private var state = blake2b_state()

        /// A fresh hasher with 32-byte output.
        public init() { blake2b_init(&state, 32) }

        /// Feeds more bytes.
        public mutating func update(_ bytes: UnsafeRawBufferPointer) {
            _ = blake2b_update(&state, bytes.baseAddress, bytes.count)
        }

        /// Feeds more bytes.
        public mutating func update(_ bytes: [UInt8]) {
            bytes.withUnsafeBytes { update($0) }
        }

        /// The digest of everything fed so far.
        public mutating func finalize() -> Hash32 {
            var out = [UInt8](repeating: 0, count: 32)
            blake2b_final(&state, &out, 32)
            return Hash32(bytes: out)!
        }
    }
}

/// Lower-case hexadecimal encoding.
public enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    /// Encodes bytes as lower-case hex.
    public static func encode<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes hex (either case); `nil` on an odd length or a non-hex character.
    public static func decode(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 2 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(chars.count / 2)
        var index = 0
        while index < chars.count {
            guard let high = nibble(chars[index]), let low = nibble(chars[index + 1]) else { return nil }
            out.append(high << 4 | low)
            index += 2
        }
        return out
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
