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
    /// The most rounds this session may take.
    public let maxRounds: Int
    /// Rounds started so far (1 after ``initiate()``).
    public private(set) var rounds = 0
    /// Whether the session has finished (a reply left nothing to do).
    public private(set) var isFinished = false

    private let engine: ReconcileEngine<Storage>

    /// - Parameters:
    ///   - frameSizeLimit: 0 (unlimited) or at least 4096 bytes.
    ///   - maxRounds: the round budget; `nil` picks ``RoundLimit/default(frameSizeLimit:)``.
    /// - Throws: ``ReconcileError/frameSizeLimitTooSmall(_:)``, ``ReconcileError/invalidRoundLimit(_:)``.
    public init(storage: Storage, frameSizeLimit: Int = 0, maxRounds: Int? = nil) throws(ReconcileError) {
        let rounds = maxRounds ?? RoundLimit.default(frameSizeLimit: frameSizeLimit)
        guard rounds >= 1 else { throw .invalidRoundLimit(rounds) }
        self.engine = try ReconcileEngine(storage: storage, role: .initiator, frameSizeLimit: frameSizeLimit)
        self.storage = storage
        self.frameSizeLimit = frameSizeLimit
        self.maxRounds = rounds
    }

    /// Starts the session: brings the storage up to date and returns the first message.
    public func initiate() throws -> [UInt8] {
        guard rounds == 0 else { throw ReconcileError.alreadyInitiated }
        try storage.beginSession()
        let message = try engine.initialMessage()
        rounds = 1
        return message
    }

    /// Processes the responder's reply.
    ///
    /// - Returns: `next`, the message to send, or `nil` when reconciliation is complete; `have`,
    ///   ids only we hold; `need`, ids only the peer holds.
    /// - Throws: a ``ReconcileError`` for a malformed reply or an exhausted round budget, or the
    ///   storage's error.
    public func reconcile(_ message: [UInt8]) throws -> (next: [UInt8]?, have: [ItemID], need: [ItemID]) {
        guard rounds > 0 else { throw ReconcileError.notInitiated }
        guard !isFinished else { throw ReconcileError.sessionFinished }
        var have: [ItemID] = []
        var need: [ItemID] = []
        let reply = try engine.reply(to: message, have: &have, need: &need)
        if reply.count == 1 {
            isFinished = true
            return (nil, have, need)
        }
        guard rounds < maxRounds else { throw ReconcileError.roundLimitExceeded(maxRounds) }
        rounds += 1
        return (reply, have, need)
    }
}
