/// Appends big-endian integers and byte strings to a buffer.
public struct ByteWriter {
    /// The bytes written so far.
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    public mutating func u8(_ v: UInt8) { bytes.append(v) }
    public mutating func u16(_ v: UInt16) { append(bigEndian: UInt64(v), width: 2) }
    public mutating func u32(_ v: UInt32) { append(bigEndian: UInt64(v), width: 4) }
    public mutating func u64(_ v: UInt64) { append(bigEndian: v, width: 8) }
    public mutating func raw<C: Collection>(_ b: C) where C.Element == UInt8 { bytes.append(contentsOf: b) }

    private mutating func append(bigEndian v: UInt64, width: Int) {
        for shift in stride(from: (width - 1) * 8, through: 0, by: -8) {
            bytes.append(UInt8(truncatingIfNeeded: v >> UInt64(shift)))
        }
    }
}

/// Reads big-endian integers and byte strings, failing with `truncated` instead of trapping.
public struct ByteReader {
    private let bytes: [UInt8]
    /// The offset of the next unread byte.
    public private(set) var offset: Int

    public init(_ bytes: [UInt8], offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    /// Bytes left to read.
    public var remaining: Int { bytes.count - offset }
    /// Whether every byte has been read.
    public var isAtEnd: Bool { offset == bytes.count }

    /// Thrown when fewer bytes remain than a field needs; `field` names what was being read.
    public struct Truncated: Error, Equatable {
        public let field: String
    }

    public mutating func u8(_ field: String) throws(Truncated) -> UInt8 { UInt8(try uint(width: 1, field)) }
    public mutating func u16(_ field: String) throws(Truncated) -> UInt16 { UInt16(try uint(width: 2, field)) }
    public mutating func u32(_ field: String) throws(Truncated) -> UInt32 { UInt32(try uint(width: 4, field)) }
    public mutating func u64(_ field: String) throws(Truncated) -> UInt64 { try uint(width: 8, field) }

    /// The next `count` bytes.
    public mutating func raw(_ count: Int, _ field: String) throws(Truncated) -> ArraySlice<UInt8> {
        guard count >= 0, remaining >= count else { throw Truncated(field: field) }
        defer { offset += count }
        return bytes[offset..<offset + count]
    }

    private mutating func uint(width: Int, _ field: String) throws(Truncated) -> UInt64 {
        guard remaining >= width else { throw Truncated(field: field) }
        var v: UInt64 = 0
        for i in 0..<width { v = v << 8 | UInt64(bytes[offset + i]) }
        offset += width
        return v
    }
}
