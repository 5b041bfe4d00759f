/// The second level of the SQLite backend's index: inside one bucket, the key of every
/// `interval`-th item and the id sum of the items before it.
///
/// With them, a rank, an item or a prefix sum at any position of a bucket costs one stored blob
/// (cached) plus one window of at most `interval` rows, instead of decoding the whole bucket.
/// They are persisted with the bucket (`checkpoints` column) and rebuilt whenever it changes.
struct BucketCheckpoints {
    /// `keys[c]` is the item at offset `c × interval`; `keys[0]` is the bucket's start key.
    let keys: [Item]
    /// `sums[c]` is the id sum of the bucket's items before offset `c × interval`.
    let sums: [IDSum]
    let interval: Int

    /// Builds checkpoints for a bucket starting at `start` and holding `items` (in order).
    init(start: Item, items: ArraySlice<Item>, interval: Int) {
        var keys = [start]
        var sums = [IDSum.zero]
        var running = IDSum.zero
        for (offset, item) in items.enumerated() {
            if offset > 0 && offset % interval == 0 {
                keys.append(item)
                sums.append(running)
            }
            running.add(item.id)
        }
        self.init(keys: keys, sums: sums, interval: interval)
    }

    private init(keys: [Item], sums: [IDSum], interval: Int) {
        self.keys = keys
        self.sums = sums
        self.interval = interval
    }

    /// The window holding `key`: the last checkpoint whose key is ≤ `key`.
    func window(containing key: Item) -> Int {
        keys.lastIndex(notAbove: key)
    }

    // MARK: Serialization: per checkpoint after the first, u64le timestamp ‖ id ‖ 32-byte sum.

    private static let recordSize = 8 + ItemID.byteCount + 32

    /// The stored form (the first checkpoint is implied by the bucket row).
    var encoded: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity((keys.count - 1) * Self.recordSize)
        for index in keys.indices.dropFirst() {
            withUnsafeBytes(of: keys[index].timestamp.littleEndian) { out.append(contentsOf: $0) }
            out.append(id: keys[index].id)
            out.append(contentsOf: sums[index].bytes)
        }
        return out
    }

    /// Reads the stored form back; `nil` if it is malformed.
    init?(start: Item, encoded raw: UnsafeRawBufferPointer, interval: Int) {
        guard raw.count % Self.recordSize == 0 else { return nil }
        var keys = [start]
        var sums = [IDSum.zero]
        for offset in stride(from: 0, to: raw.count, by: Self.recordSize) {
            let timestamp = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
            let id = ItemID(unsafeBytes: UnsafeRawBufferPointer(rebasing: raw[(offset + 8)...]))
            let sum = IDSum(ItemID(unsafeBytes: UnsafeRawBufferPointer(rebasing: raw[(offset + 40)...])))
            keys.append(Item(timestamp: timestamp, id: id))
            sums.append(sum)
        }
        self.init(keys: keys, sums: sums, interval: interval)
    }
}

/// Up to `interval` consecutive items of one bucket, with running sums from the window start.
struct LoadedWindow {
    let items: [Item]
    /// `sums[i]` = id sum of `items[0 ..< i]`.
    let sums: [IDSum]

    init(items: [Item]) {
        self.items = items
        self.sums = IDSum.prefixSums(of: items)
    }
}
