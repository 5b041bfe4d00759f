/// Protocol constants of Negentropy V1.
public enum NegentropyProtocol {
    /// The version byte of V1; it starts every message.
    public static let version: UInt8 = 0x61
    /// Version bytes that identify a Negentropy message at all (V0–V15).
    public static let versionRange: ClosedRange<UInt8> = 0x60...0x6F
    /// The smallest frame size limit allowed (0 means unlimited).
    public static let minimumFrameSizeLimit = 4096
    /// Room kept free under the frame limit for the final coalesced range.
    static let frameSlack = 200
    /// Ranges with fewer items than this are sent as IdLists instead of being split.
    static let idListThreshold = 32
    /// The number of fingerprint ranges a split produces.
    static let bucketCount = 16
}

/// The mode of one range of a message.
enum RangeMode: UInt64 {
    case skip = 0
    case fingerprint = 1
    case idList = 2
}

/// Strict, allocation-light reader of one incoming message.
///
/// Timestamps are delta-encoded, and the delta state restarts with every message, so one reader
/// decodes exactly one message.
struct MessageReader {
    private let bytes: [UInt8]
    private var position = 0
    private var lastTimestamp: UInt64 = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var isAtEnd: Bool { position == bytes.count }
    private var bytesLeft: Int { bytes.count - position }

    mutating func readVersion() throws(ReconcileError) -> UInt8 {
        guard position < bytes.count else { throw .truncated(.versionByte) }
        defer { position += 1 }
        return bytes[position]
    }

    mutating func readVarint() throws(ReconcileError) -> UInt64 {
        try Varint.decode(bytes, at: &position)
    }

    /// Decodes a bound; every bound advances the timestamp delta state, whatever its role.
    mutating func readBound() throws(ReconcileError) -> Bound {
        let timestamp = try readTimestamp()
        let length = try readVarint()
        guard length <= UInt64(ItemID.byteCount) else { throw .idPrefixTooLong(length) }
        let prefixLength = Int(length)
        guard prefixLength <= bytesLeft else { throw .truncated(.idPrefix) }
        var padded = ItemID.zero
        if prefixLength > 0 {
            // Copy straight into the id's own 32 bytes; the rest stays zero, as the wire implies.
            withUnsafeMutableBytes(of: &padded) { target in
                bytes.withUnsafeBytes { source in
                    target.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[position..<position + prefixLength]))
                }
            }
            position += prefixLength
        }
        return Bound(unchecked: timestamp, paddedID: padded, prefixLength: prefixLength)
    }

    mutating func readMode() throws(ReconcileError) -> RangeMode {
        let raw = try readVarint()
        guard let mode = RangeMode(rawValue: raw) else { throw .unknownMode(raw) }
        return mode
    }

    mutating func readFingerprint() throws(ReconcileError) -> Fingerprint {
        guard bytesLeft >= Fingerprint.byteCount else { throw .truncated(.fingerprint) }
        defer { position += Fingerprint.byteCount }
        return bytes.withUnsafeBytes { Fingerprint(unsafeBytes: $0, offset: position) }
    }

    /// Reads an IdList payload; the count is checked against the bytes left before anything is
    /// allocated, so a hostile count cannot make us reserve memory.
    mutating func readIDList() throws(ReconcileError) -> [ItemID] {
        let count = try checkedIDListCount()
        var ids: [ItemID] = []
        ids.reserveCapacity(count)
        bytes.withUnsafeBytes { raw in
            for index in 0..<count {
                let start = position + index * ItemID.byteCount
                ids.append(ItemID(unsafeBytes: UnsafeRawBufferPointer(rebasing: raw[start..<start + ItemID.byteCount])))
            }
        }
        position += count * ItemID.byteCount
        return ids
    }

    /// Steps over an IdList payload without materializing it (the responder ignores its content).
    /// Skips an IdList; returns how many ids it held.
    mutating func skipIDList() throws(ReconcileError) -> Int {
        let count = try checkedIDListCount()
        position += count * ItemID.byteCount
        return count
    }

    private mutating func checkedIDListCount() throws(ReconcileError) -> Int {
        let count = try readVarint()
        guard count <= UInt64(bytesLeft / ItemID.byteCount) else {
            throw .idListTooLong(count: count, bytesLeft: bytesLeft)
        }
        return Int(count)
    }

    /// `0` is infinity; otherwise `value − 1` is a delta on the previous timestamp, saturating.
    private mutating func readTimestamp() throws(ReconcileError) -> UInt64 {
        let encoded = try readVarint()
        let delta = encoded == 0 ? UInt64.max : encoded - 1
        let (sum, overflow) = delta.addingReportingOverflow(lastTimestamp)
        lastTimestamp = overflow ? .max : sum
        return lastTimestamp
    }
}

/// Encodes bounds with the per-message timestamp delta state.
///
/// One encoder serves a whole outgoing message, including ranges that end up discarded by the
/// frame limit: the reference shares this state the same way, and since only the infinity bound
/// (which ignores the state) can follow a discarded range, the bytes stay identical.
struct BoundEncoder {
    private var lastTimestamp: UInt64 = 0

    mutating func encode(_ bound: Bound, into out: inout [UInt8]) {
        if bound.timestamp == .max {
            lastTimestamp = .max
            out.append(0)
        } else {
            // Bounds in a message never decrease, so the delta never wraps in practice; wrapping
            // arithmetic mirrors the reference's unsigned subtraction if it ever did.
            Varint.encode((bound.timestamp &- lastTimestamp) &+ 1, into: &out)
            lastTimestamp = bound.timestamp
        }
        Varint.encode(UInt64(bound.prefixLength), into: &out)
        if bound.prefixLength > 0 {
            bound.paddedID.withUnsafeBytes { out.append(contentsOf: $0[0..<bound.prefixLength]) }
        }
    }
}

extension Array where Element == UInt8 {
    /// Appends a range mode.
    mutating func append(mode: RangeMode) { append(UInt8(mode.rawValue)) }

    /// Appends the 32 bytes of `id`.
    mutating func append(id: ItemID) { id.withUnsafeBytes { append(contentsOf: $0) } }
}
