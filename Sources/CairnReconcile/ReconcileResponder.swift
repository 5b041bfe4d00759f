/// The server side of a Negentropy V1 session: it answers each message and learns nothing.
///
/// Apart from its budget accounting (``ReconcileBudget``), a responder is stateless between
/// messages. Use one responder per session, so that the budget applies per peer, and drop it
/// when the session ends.
public final class ReconcileResponder<Storage: ReconcileStorage> {
    /// The local set.
    public let storage: Storage
    /// The frame size limit in bytes (0 = unlimited). Use the same limit on both ends.
    public let frameSizeLimit: Int
    /// An explicit cap on the messages answered, if any (`nil`: bounded by ``budget`` alone).
    public let maxRounds: Int?
    /// What ends a session that does not converge (progress and bytes).
    public let budget: ReconcileBudget
    /// Messages answered so far.
    public private(set) var rounds = 0

    private let engine: ReconcileEngine<Storage>
    private var progress: SessionProgress
    private var peerListed = 0

    /// - Parameters:
    ///   - frameSizeLimit: 0 (unlimited) or at least 4096 bytes.
    ///   - maxRounds: an explicit cap on the messages answered, or `nil` for none.
    ///   - budget: the progress and byte bounds (``ReconcileBudget``): a message received before
    ///     counts as no progress.
    /// - Throws: ``ReconcileError/frameSizeLimitTooSmall(_:)``, ``ReconcileError/invalidRoundLimit(_:)``.
    public init(storage: Storage, frameSizeLimit: Int = 0, maxRounds: Int? = nil, budget: ReconcileBudget = ReconcileBudget()) throws(ReconcileError) {
        if let maxRounds, maxRounds < 1 { throw .invalidRoundLimit(maxRounds) }
        guard budget.stallRounds >= 1 else { throw .invalidRoundLimit(budget.stallRounds) }
        self.engine = try ReconcileEngine(storage: storage, role: .responder, frameSizeLimit: frameSizeLimit)
        self.storage = storage
        self.frameSizeLimit = frameSizeLimit
        self.maxRounds = maxRounds
        self.budget = budget
        self.progress = SessionProgress(budget: budget)
    }

    /// Answers one message. The reply is never empty: at least the version byte `0x61`, which
    /// is also the whole answer to a message in a newer protocol version (§1.3).
    ///
    /// - Throws: a ``ReconcileError`` for a malformed message or an exhausted budget, or the
    ///   storage's error.
    public func reconcile(_ message: [UInt8]) throws -> [UInt8] {
        if let maxRounds, rounds >= maxRounds { throw ReconcileError.roundLimitExceeded(maxRounds) }
        if rounds == 0 { try storage.beginSession() }
        try progress.add(bytes: message.count, items: storage.count + peerListed)
        try progress.round(message: message, learned: false)
        rounds += 1
        var have: [ItemID] = []
        var need: [ItemID] = []
        let reply = try engine.reply(to: message, have: &have, need: &need, listed: &peerListed)
        try progress.add(bytes: reply.count, items: storage.count + peerListed)
        return reply
    }
}
