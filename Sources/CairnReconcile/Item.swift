/// One record of a reconciled set: a timestamp (in Cairn, the entry's HLC) and a 32-byte id.
///
/// Items order by timestamp, then by id in `memcmp` order, as in the Negentropy reference.
public struct Item: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// `UInt64.max` means "infinity" on the wire, so no record may carry it.
    public static let reservedTimestamp = UInt64.max

    /// The record's timestamp; never ``reservedTimestamp`` in a valid storage.
    public var timestamp: UInt64
    /// The record's id.
    public var id: ItemID

    /// Creates an item. Validity (the reserved timestamp) is checked by the storages.
    @inlinable public init(timestamp: UInt64, id: ItemID) {
        self.timestamp = timestamp
        self.id = id
    }

    @inlinable public static func < (a: Item, b: Item) -> Bool {
        a.timestamp != b.timestamp ? a.timestamp < b.timestamp : a.id < b.id
    }

    public var description: String { "(\(timestamp), \(id))" }
}
