/// The server side of a Negentropy V1 session: it answers each message and learns nothing.
///
/// Apart from the round count, a responder is stateless between messages. Use one responder per
/// session, so that the round budget applies per peer.
public final class ReconcileResponder<Storage: ReconcileStorage> {
    /// The local set.
    public let storage: Storage
    /// The frame size limit in bytes (0 = unlimited). Use the same limit on both ends.
    public let frameSizeLimit: Int
    /// The most messages this session answers.
    public let maxRounds: Int
    /// Messages answered so far.
    public private(set) var rounds = 0

    private let engine: ReconcileEngine<Storage>

    /// - Parameters:
    ///   - frameSizeLimit: 0 (unlimited) or at least 4096 bytes.
    ///   - maxRounds: the round budget; `nil` picks ``RoundLimit/default(frameSizeLimit:)``.
    /// - Throws: ``ReconcileError/frameSizeLimitTooSmall(_:)``, ``ReconcileError/invalidRoundLimit(_:)``.
    public init(storage: Storage, frameSizeLimit: Int = 0, maxRounds: Int? = nil) throws(ReconcileError) {
        let rounds = maxRounds ?? RoundLimit.default(frameSizeLimit: frameSizeLimit)
        guard rounds >= 1 else { throw .invalidRoundLimit(rounds) }
        self.engine = try ReconcileEngine(storage: storage, role: .responder, frameSizeLimit: frameSizeLimit)
        self.storage = storage
        self.frameSizeLimit = frameSizeLimit
        self.maxRounds = rounds
    }

    /// Answers one message. The reply is never empty: at least the version byte `0x61`, which
    /// is also the whole answer to a message in a newer protocol version (§1.3).
    ///
    /// - Throws: a ``ReconcileError`` for a malformed message or an exhausted round budget, or
    ///   the storage's error.
    public func reconcile(_ message: [UInt8]) throws -> [UInt8] {
        guard rounds < maxRounds else { throw ReconcileError.roundLimitExceeded(maxRounds) }
        if rounds == 0 { try storage.beginSession() }
        rounds += 1
        var have: [ItemID] = []
        var need: [ItemID] = []
        return try engine.reply(to: message, have: &have, need: &need)
    }
}
