/// How many rounds a session may take before it is abandoned as looping: an optional hard cap.
///
/// A round is one initiator message and the responder's reply. The reference has no such bound.
/// Sessions are bounded by their progress and bytes instead (``ReconcileBudget``); a round cap
/// is only applied when one is passed explicitly, because an honest peer with a small frame
/// limit may need hundreds of rounds.
public enum RoundLimit {
    /// With unlimited frames an honest session needs about `log16(n / 32) + 2` rounds
    /// (3 at a million items, 17 at 2^64), so 64 leaves a wide margin.
    public static let unlimitedFrames = 64

    /// The budget of bytes in one direction that the limited-frame default allows for.
    public static let limitedFrameBudget = 64 << 20

    /// A generous round cap for a frame size limit (for callers that want one).
    ///
    /// - Unlimited frames (`0`): ``unlimitedFrames``.
    /// - Limited frames: 64 plus enough rounds to move ``limitedFrameBudget`` bytes (64 MiB) in
    ///   full frames, e.g. 17,288 rounds at 4096 B, 4,160 at 16 KiB, 577 at 128 KiB.
    public static func `default`(frameSizeLimit: Int) -> Int {
        guard frameSizeLimit > NegentropyProtocol.frameSlack else { return unlimitedFrames }
        return unlimitedFrames + limitedFrameBudget / (frameSizeLimit - NegentropyProtocol.frameSlack)
    }
}

/// What ends a session that does not converge, whatever its round count.
///
/// A round **makes progress** when the initiator learns an id it had not learned before or
/// sends a message it never sent before (for the responder: receives a message it never
/// received before). Both roles are deterministic over an unchanged set, so an honest session
/// never repeats a message: a repeat means the peer replays or loops. A session is abandoned
/// after ``stallRounds`` consecutive rounds without progress (``ReconcileError/noProgress(rounds:)``),
/// or when the bytes it moved in both directions exceed
/// `min(maxBytes, baseBytes + bytesPerItem × items)`, where `items` counts the local set plus the
/// ids the peer sent (``ReconcileError/byteBudgetExceeded(_:)``). Honest sessions move a few
/// dozen bytes per differing item, so the byte bound only stops a peer that keeps inventing work.
public struct ReconcileBudget: Sendable, Equatable {
    /// Consecutive rounds without progress before the session is abandoned.
    public var stallRounds: Int
    /// Bytes every session may move regardless of the set sizes.
    public var baseBytes: Int
    /// Further bytes allowed per item (local items plus ids received from the peer).
    public var bytesPerItem: Int
    /// Bytes no session may exceed.
    public var maxBytes: Int

    public init(stallRounds: Int = 16, baseBytes: Int = 16 << 20, bytesPerItem: Int = 1024, maxBytes: Int = 1 << 30) {
        self.stallRounds = stallRounds
        self.baseBytes = baseBytes
        self.bytesPerItem = bytesPerItem
        self.maxBytes = maxBytes
    }

    /// The byte bound for a session over `items` items.
    public func byteLimit(items: Int) -> Int {
        let (perItem, overflow) = items.multipliedReportingOverflow(by: bytesPerItem)
        let (total, overflowAgain) = baseBytes.addingReportingOverflow(perItem)
        return overflow || overflowAgain ? maxBytes : min(maxBytes, total)
    }
}

/// The progress and byte accounting of one session (either role).
struct SessionProgress {
    let budget: ReconcileBudget
    private(set) var bytes = 0
    private(set) var stalled = 0
    /// Hashes of messages seen (sent by the initiator, received by the responder).
    private var messages = Set<Int>()

    init(budget: ReconcileBudget) { self.budget = budget }

    /// Counts `count` more bytes; throws once the bound for `items` items is exceeded.
    mutating func add(bytes count: Int, items: Int) throws(ReconcileError) {
        bytes += count
        let limit = budget.byteLimit(items: items)
        if bytes > limit { throw .byteBudgetExceeded(limit) }
    }

    /// Records one round: `message` is the one the rule watches for repeats, `learned` whether
    /// the round taught anything new. Throws after ``ReconcileBudget/stallRounds`` rounds in a
    /// row without progress.
    mutating func round(message: [UInt8], learned: Bool) throws(ReconcileError) {
        let fresh = messages.insert(message.hashValue).inserted
        stalled = fresh || learned ? 0 : stalled + 1
        if stalled >= budget.stallRounds { throw .noProgress(rounds: stalled) }
    }
}
