/// Negentropy varints: unsigned base-128, most significant group first (BER / Perl `pack "w"`).
///
/// This is *not* LEB128: every byte but the last has its high bit set, and the groups run from
/// the most significant down.
public enum Varint {
    /// A `UInt64` never needs more than 10 groups of 7 bits.
    public static let maxLength = 10

    /// Appends the shortest encoding of `value` to `out`.
    @inlinable public static func encode(_ value: UInt64, into out: inout [UInt8]) {
        if value < 0x80 {
            out.append(UInt8(value))
            return
        }
        let groups = (64 - value.leadingZeroBitCount + 6) / 7
        for group in stride(from: groups - 1, through: 1, by: -1) {
            out.append(UInt8(truncatingIfNeeded: value >> UInt64(7 * group)) | 0x80)
        }
        out.append(UInt8(value & 0x7f))
    }

    /// The shortest encoding of `value`.
    public static func encode(_ value: UInt64) -> [UInt8] {
        var out: [UInt8] = []
        encode(value, into: &out)
        return out
    }

    /// The number of bytes `encode` produces for `value`.
    @inlinable public static func encodedLength(_ value: UInt64) -> Int {
        value == 0 ? 1 : (64 - value.leadingZeroBitCount + 6) / 7
    }

    /// Decodes one varint from `bytes` starting at `position`, advancing it past the varint.
    ///
    /// Unlike the C++ reference, which shifts without limit, this rejects more than 10 bytes
    /// and any value above `UInt64.max`.
    public static func decode(_ bytes: [UInt8], at position: inout Int) throws(ReconcileError) -> UInt64 {
        var value: UInt64 = 0
        var length = 0
        while true {
            // Ten groups with the continuation bit set is already too long, however it ends.
            guard length < maxLength else { throw .varintTooLong }
            guard position < bytes.count else { throw .truncated(.varint) }
            let byte = bytes[position]
            position += 1
            length += 1
            // Shifting in 7 more bits must not push any set bit past bit 63.
            guard value >> 57 == 0 else { throw .varintOverflow }
            value = value << 7 | UInt64(byte & 0x7f)
            if byte & 0x80 == 0 { return value }
        }
    }
}
