/// The Negentropy V1 range-processing algorithm shared by both roles.
///
/// This follows the C++ reference step for step (split rule, skip coalescing, frame-limit
/// handling), because transcripts must be byte-identical to it; see `negentropy-v1.md` §1.7–1.10.
struct ReconcileEngine<Storage: ReconcileStorage> {
    enum Role { case initiator, responder }

    let storage: Storage
    let role: Role
    /// 0 for unlimited, otherwise at least 4096 bytes.
    let frameSizeLimit: Int

    init(storage: Storage, role: Role, frameSizeLimit: Int) throws(ReconcileError) {
        guard frameSizeLimit == 0 || frameSizeLimit >= NegentropyProtocol.minimumFrameSizeLimit else {
            throw .frameSizeLimitTooSmall(frameSizeLimit)
        }
        self.storage = storage
        self.role = role
        self.frameSizeLimit = frameSizeLimit
    }

    /// `0x61` followed by a split of the whole storage (ignores the frame limit, like the
    /// reference: it is at most about 1 KB).
    func initialMessage() throws -> [UInt8] {
        try storage.withReadSnapshot {
            var out = [NegentropyProtocol.version]
            var encoder = BoundEncoder()
            try split(0..<storage.count, upperBound: .infinity, encoder: &encoder, into: &out)
            return out
        }
    }

    /// Processes one incoming message and returns the reply (`[0x61]` alone means "nothing left").
    /// The initiator collects the ids only it has in `have` and those only the peer has in `need`;
    /// `listed` counts the ids in the message's IdLists (what the peer disclosed of its set).
    func reply(to message: [UInt8], have: inout [ItemID], need: inout [ItemID], listed: inout Int) throws -> [UInt8] {
        var haveFound: [ItemID] = []
        var needFound: [ItemID] = []
        var listedFound = 0
        let reply = try storage.withReadSnapshot {
            try processMessage(message, have: &haveFound, need: &needFound, listed: &listedFound)
        }
        have += haveFound
        need += needFound
        listed += listedFound
        return reply
    }

    private func processMessage(_ message: [UInt8], have: inout [ItemID], need: inout [ItemID], listed: inout Int) throws -> [UInt8] {
        var reader = MessageReader(message)
        var out = [NegentropyProtocol.version]
        guard try acceptsVersion(reader.readVersion()) else { return out }

        var state = RangeState()
        var encoder = BoundEncoder()
        var rangeOut: [UInt8] = []
        let total = storage.count
        while !reader.isAtEnd {
            rangeOut.removeAll(keepingCapacity: true)
            let bound = try reader.readBound()
            guard bound >= state.previousBound else {
                throw ReconcileError.boundWentBackwards(previous: state.previousBound, current: bound)
            }
            let mode = try reader.readMode()
            let lower = state.previousIndex
            var upper = try storage.lowerBound(of: bound, from: lower)

            switch mode {
            case .skip:
                state.pendingSkip = true
            case .fingerprint:
                let theirs = try reader.readFingerprint()
                if try storage.fingerprint(of: lower..<upper) == theirs {
                    state.pendingSkip = true
                } else {
                    state.flushSkip(encoder: &encoder, into: &rangeOut)
                    try split(lower..<upper, upperBound: bound, encoder: &encoder, into: &rangeOut)
                }
            case .idList:
                switch role {
                case .initiator:
                    let theirs = try reader.readIDList()
                    listed += theirs.count
                    try compare(theirs, with: lower..<upper, have: &have, need: &need)
                    state.pendingSkip = true
                case .responder:
                    listed += try reader.skipIDList()
                    state.flushSkip(encoder: &encoder, into: &rangeOut)
                    upper = try appendIDList(lower..<upper, bound: bound, written: out.count,
                                             encoder: &encoder, into: &rangeOut)
                    // The reference moves the IdList into the output at once, before the check below.
                    out += rangeOut
                    rangeOut.removeAll(keepingCapacity: true)
                }
            }

            if exceedsFrameLimit(out.count + rangeOut.count) {
                // Drop this range (and any unwritten skip); one fingerprint covers the rest.
                try appendRemainderFingerprint(from: upper, total: total, encoder: &encoder, into: &out)
                break
            }
            out += rangeOut
            state.previousIndex = upper
            state.previousBound = bound
        }
        return out
    }

    // MARK: Steps

    /// §1.3: outside 0x60…0x6F is an error for both roles; another version is an error for the
    /// initiator, while the responder answers with just its own version byte.
    private func acceptsVersion(_ version: UInt8) throws(ReconcileError) -> Bool {
        guard NegentropyProtocol.versionRange.contains(version) else { throw .invalidProtocolVersion(version) }
        if version == NegentropyProtocol.version { return true }
        if role == .initiator { throw .unsupportedProtocolVersion(version) }
        return false
    }

    /// §1.7: fewer than 32 items go out as one IdList; otherwise 16 fingerprint ranges, the first
    /// `n mod 16` of them one item larger, separated by minimal bounds.
    func split(_ range: Range<Int>, upperBound: Bound, encoder: inout BoundEncoder, into out: inout [UInt8]) throws {
        let count = range.count
        if count < NegentropyProtocol.idListThreshold {
            encoder.encode(upperBound, into: &out)
            out.append(mode: .idList)
            Varint.encode(UInt64(count), into: &out)
            try storage.forEachItem(in: range) { _, item in
                out.append(id: item.id)
                return true
            }
            return
        }
        let buckets = NegentropyProtocol.bucketCount
        let (perBucket, withExtra) = count.quotientAndRemainder(dividingBy: buckets)
        var start = range.lowerBound
        for bucket in 0..<buckets {
            let end = start + perBucket + (bucket < withExtra ? 1 : 0)
            let fingerprint = try storage.fingerprint(of: start..<end)
            let bound = end == range.upperBound
                ? upperBound
                : try Bound.minimal(between: storage.item(at: end - 1), and: storage.item(at: end))
            encoder.encode(bound, into: &out)
            out.append(mode: .fingerprint)
            fingerprint.append(to: &out)
            start = end
        }
    }

    /// Initiator side of an IdList: ours-not-theirs is `have`, theirs-not-ours is `need`.
    /// `need` keeps the peer's order (the reference uses hash-set order, which is unspecified).
    private func compare(_ theirs: [ItemID], with range: Range<Int>,
                         have: inout [ItemID], need: inout [ItemID]) throws {
        var remaining = Set(theirs)
        try storage.forEachItem(in: range) { _, item in
            if remaining.remove(item.id) == nil { have.append(item.id) }
            return true
        }
        for id in theirs where remaining.remove(id) != nil {
            need.append(id)
        }
    }

    /// Responder side of an IdList: reply with all our ids in `range` under the same bound,
    /// unless the frame limit cuts the list short. Then the list ends at the full 32-byte bound
    /// of the first id not sent, and the returned upper index is that id's index.
    private func appendIDList(_ range: Range<Int>, bound: Bound, written: Int,
                              encoder: inout BoundEncoder, into out: inout [UInt8]) throws -> Int {
        var ids: [UInt8] = []
        var sent = 0
        var endBound = bound
        var upper = range.upperBound
        try storage.forEachItem(in: range) { index, item in
            // `written` excludes the skip just flushed into `out`, exactly as in the reference.
            if exceedsFrameLimit(written + ids.count) {
                endBound = Bound(item: item)
                upper = index
                return false
            }
            ids.append(id: item.id)
            sent += 1
            return true
        }
        encoder.encode(endBound, into: &out)
        out.append(mode: .idList)
        Varint.encode(UInt64(sent), into: &out)
        out += ids
        return upper
    }

    /// The coalesced final range after the frame limit fired: `(∞, Fingerprint, fp[upper, N))`.
    private func appendRemainderFingerprint(from upper: Int, total: Int,
                                            encoder: inout BoundEncoder, into out: inout [UInt8]) throws {
        let fingerprint = try storage.fingerprint(of: upper..<total)
        encoder.encode(.infinity, into: &out)
        out.append(mode: .fingerprint)
        fingerprint.append(to: &out)
    }

    /// §1.10: `limit ≠ 0 && n > limit − 200`.
    private func exceedsFrameLimit(_ size: Int) -> Bool {
        frameSizeLimit != 0 && size > frameSizeLimit - NegentropyProtocol.frameSlack
    }
}

/// Where the range loop stands within one message.
private struct RangeState {
    var previousBound = Bound.zero
    var previousIndex = 0
    /// A Skip is only written when something non-skip follows, so adjacent skips merge and a
    /// trailing one is left to the implicit skip to infinity.
    var pendingSkip = false

    mutating func flushSkip(encoder: inout BoundEncoder, into out: inout [UInt8]) {
        guard pendingSkip else { return }
        pendingSkip = false
        encoder.encode(previousBound, into: &out)
        out.append(mode: .skip)
    }
}
