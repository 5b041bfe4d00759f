/// The client side of a Negentropy V1 session: it opens the session and learns the differences.
///
/// ```swift
/// let client = try ReconcileInitiator(storage: local, frameSizeLimit: 60_000)
/// var message = try client.initiate()
/// while true {
///     let reply = try transport.exchange(message)
///     let step = try client.reconcile(reply)
///     upload(step.have); download(step.need)
///     guard let next = step.next else { break }
///     message = next
/// }
/// ```
///
/// With a frame limit, the same id can be reported more than once across rounds (ranges that were
/// cut off are processed again); de-duplicate before acting on `have` and `need`.
public final class ReconcileInitiator<Storage: ReconcileStorage> {
    /// The local set.
    public let storage: Storage
    /// The frame size limit in bytes (0 = unlimited). Use the same limit on both ends.
    public let frameSizeLimit: Int
    /// An explicit round cap, if any (`nil`: bounded by ``budget`` alone).
    public let maxRounds: Int?
    /// What ends a session that does not converge (progress and bytes).
    public let budget: ReconcileBudget
    /// Rounds started so far (1 after ``initiate()``).
    public private(set) var rounds = 0
    /// Whether the session has finished (a reply left nothing to do).
    public private(set) var isFinished = false

    private let engine: ReconcileEngine<Storage>
    private var progress: SessionProgress
    /// Distinct ids reported as `have` or `need` so far (what counts as learning something).
    private var learned = Set<ItemID>()
    private var peerListed = 0
    private var unaccountedBytes = 0

    /// - Parameters:
    ///   - frameSizeLimit: 0 (unlimited) or at least 4096 bytes.
    ///   - maxRounds: an explicit round cap, or `nil` for none (the budget still applies).
    ///   - budget: the progress and byte bounds (``ReconcileBudget``).
    /// - Throws: ``ReconcileError/frameSizeLimitTooSmall(_:)``, ``ReconcileError/invalidRoundLimit(_:)``.
    public init(storage: Storage, frameSizeLimit: Int = 0, maxRounds: Int? = nil, budget: ReconcileBudget = ReconcileBudget()) throws(ReconcileError) {
        if let maxRounds, maxRounds < 1 { throw .invalidRoundLimit(maxRounds) }
        guard budget.stallRounds >= 1 else { throw .invalidRoundLimit(budget.stallRounds) }
        self.engine = try ReconcileEngine(storage: storage, role: .initiator, frameSizeLimit: frameSizeLimit)
        self.storage = storage
        self.frameSizeLimit = frameSizeLimit
        self.maxRounds = maxRounds
        self.budget = budget
        self.progress = SessionProgress(budget: budget)
    }

    /// Starts the session: brings the storage up to date and returns the first message.
    public func initiate() throws -> [UInt8] {
        guard rounds == 0 else { throw ReconcileError.alreadyInitiated }
        try storage.beginSession()
        let message = try engine.initialMessage()
        try progress.add(bytes: message.count, items: storage.count)
        try progress.round(message: message, learned: true)
        rounds = 1
        return message
    }

    /// Processes the responder's reply.
    ///
    /// - Returns: `next`, the message to send, or `nil` when reconciliation is complete; `have`,
    ///   ids only we hold; `need`, ids only the peer holds.
    /// - Throws: a ``ReconcileError`` for a malformed reply or an exhausted budget
    ///   (``ReconcileError/noProgress(rounds:)``, ``ReconcileError/byteBudgetExceeded(_:)``,
    ///   ``ReconcileError/roundLimitExceeded(_:)``), or the storage's error. The ids returned by
    ///   earlier calls stay valid when the budget ends the session: act on them. (The byte bound
    ///   is checked before a reply is processed, and a round that stalls learned nothing new.)
    public func reconcile(_ message: [UInt8]) throws -> (next: [UInt8]?, have: [ItemID], need: [ItemID]) {
        guard rounds > 0 else { throw ReconcileError.notInitiated }
        guard !isFinished else { throw ReconcileError.sessionFinished }
        try progress.add(bytes: unaccountedBytes + message.count, items: storage.count + peerListed)
        unaccountedBytes = 0
        var have: [ItemID] = []
        var need: [ItemID] = []
        let reply = try engine.reply(to: message, have: &have, need: &need, listed: &peerListed)
        if reply.count == 1 {
            isFinished = true
            return (nil, have, need)
        }
        if let maxRounds, rounds >= maxRounds { throw ReconcileError.roundLimitExceeded(maxRounds) }
        var learnedSomething = false
        for id in have where learned.insert(id).inserted { learnedSomething = true }
        for id in need where learned.insert(id).inserted { learnedSomething = true }
        try progress.round(message: reply, learned: learnedSomething)
        // Counted with the next reply, so that the byte bound never discards a processed round.
        unaccountedBytes = reply.count
        rounds += 1
        return (reply, have, need)
    }
}
