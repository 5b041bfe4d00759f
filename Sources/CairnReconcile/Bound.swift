/// A range boundary: a timestamp plus an id prefix of 0–32 bytes.
///
/// For comparisons a bound is the item `(timestamp, prefix ‖ zeros)`. The prefix length is kept
/// separately because it is part of the encoding: a bound echoed back to a peer is re-encoded
/// with the prefix length it was decoded with.
public struct Bound: Hashable, Sendable, CustomStringConvertible {
    /// The timestamp; `UInt64.max` stands for infinity.
    public let timestamp: UInt64
    /// The id prefix, zero-padded to 32 bytes.
    public let paddedID: ItemID
    /// How many bytes of ``paddedID`` are significant (and sent on the wire).
    public let prefixLength: Int

    /// The lowest bound, `(0, empty prefix)`: the implicit start of every message.
    public static let zero = Bound(timestamp: 0)
    /// The bound past every item, `(UInt64.max, empty prefix)`; it encodes as `00 00`.
    public static let infinity = Bound(timestamp: .max)

    /// A bound with an empty id prefix.
    public init(timestamp: UInt64) {
        self.init(unchecked: timestamp, paddedID: .zero, prefixLength: 0)
    }

    /// A bound with the given id prefix (at most 32 bytes).
    public init(timestamp: UInt64, idPrefix: some Collection<UInt8>) throws(ReconcileError) {
        guard idPrefix.count <= ItemID.byteCount else {
            throw .idPrefixTooLong(UInt64(idPrefix.count))
        }
        var padded = [UInt8](repeating: 0, count: ItemID.byteCount)
        padded.replaceSubrange(0..<idPrefix.count, with: idPrefix)
        self.init(unchecked: timestamp, paddedID: ItemID(bytes: padded)!, prefixLength: idPrefix.count)
    }

    /// The bound that sits exactly at `item`: its timestamp and full 32-byte id.
    public init(item: Item) {
        self.init(unchecked: item.timestamp, paddedID: item.id, prefixLength: ItemID.byteCount)
    }

    @usableFromInline init(unchecked timestamp: UInt64, paddedID: ItemID, prefixLength: Int) {
        self.timestamp = timestamp
        self.paddedID = paddedID
        self.prefixLength = prefixLength
    }

    /// The significant id prefix bytes.
    public var idPrefix: [UInt8] { Array(paddedID.bytes.prefix(prefixLength)) }

    /// The item this bound compares as.
    @inlinable public var item: Item { Item(timestamp: timestamp, id: paddedID) }

    /// The shortest bound `b` with `previous < b <= next`, as emitted by the splitter.
    ///
    /// With different timestamps the id prefix is empty; with equal timestamps it is one byte
    /// longer than the ids' common prefix, so that it separates them.
    public static func minimal(between previous: Item, and next: Item) -> Bound {
        if previous.timestamp != next.timestamp {
            return Bound(timestamp: next.timestamp)
        }
        let length = min(previous.id.commonPrefixLength(with: next.id) + 1, ItemID.byteCount)
        return Bound(unchecked: next.timestamp, paddedID: next.id.truncated(to: length), prefixLength: length)
    }

    public var description: String {
        let time = timestamp == .max ? "∞" : String(timestamp)
        return "(\(time), \(HexCoding.encode(idPrefix)))"
    }

    /// Bounds are equal as items, whatever their prefix lengths (`(5, 00)` equals `(5, ∅)`).
    public static func == (a: Bound, b: Bound) -> Bool { a.item == b.item }

    public func hash(into hasher: inout Hasher) { hasher.combine(item) }
}

extension Bound: Comparable {
    @inlinable public static func < (a: Bound, b: Bound) -> Bool { a.item < b.item }
}

extension Item {
    /// Whether this item lies below `bound`, i.e. in a range that `bound` closes.
    @inlinable public func isBelow(_ bound: Bound) -> Bool { self < bound.item }
}
