/// Everything that can go wrong in a reconciliation session, as a typed error.
///
/// Decoding is strict: where the C++ reference silently tolerates malformed input (overlong
/// varints, bounds that go backwards), this implementation rejects the message.
public enum ReconcileError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What was being read when a message ended too early.
    public enum Field: String, Sendable {
        case versionByte = "protocol version byte"
        case varint
        case idPrefix = "bound id prefix"
        case fingerprint
        case idList = "id list"
    }

    // MARK: Message decoding

    /// The message ended in the middle of a field (an empty message lacks its version byte).
    case truncated(Field)
    /// A varint ran over 10 bytes.
    case varintTooLong
    /// A varint's value exceeded `UInt64.max`.
    case varintOverflow
    /// A bound's id prefix was longer than 32 bytes.
    case idPrefixTooLong(UInt64)
    /// A range used a mode other than Skip (0), Fingerprint (1) or IdList (2).
    case unknownMode(UInt64)
    /// A range's upper bound was below the previous range's (the reference silently yields an
    /// empty range; a correct peer never sends this).
    case boundWentBackwards(previous: Bound, current: Bound)
    /// An IdList announced more ids than the bytes left in the message can hold.
    case idListTooLong(count: UInt64, bytesLeft: Int)
    /// The version byte was outside `0x60...0x6F`, so this is not a Negentropy message at all.
    case invalidProtocolVersion(UInt8)
    /// The initiator received a reply in a protocol version other than V1 (`0x61`).
    case unsupportedProtocolVersion(UInt8)

    // MARK: Session

    /// A frame size limit below the minimum of 4096 bytes (0 means unlimited).
    case frameSizeLimitTooSmall(Int)
    /// A round limit below 1.
    case invalidRoundLimit(Int)
    /// The session used up its round budget without finishing: a buggy or hostile peer.
    case roundLimitExceeded(Int)
    /// This many rounds in a row made no progress (see ``ReconcileBudget``): the peer replays
    /// or loops.
    case noProgress(rounds: Int)
    /// The session moved more bytes than its ``ReconcileBudget`` allows for the set sizes.
    case byteBudgetExceeded(Int)
    /// `initiate()` was called twice on one initiator.
    case alreadyInitiated
    /// The initiator got a reply before it sent `initiate()`.
    case notInitiated
    /// The initiator got a reply after the session had already finished.
    case sessionFinished

    // MARK: Storage contents

    /// A record used the reserved timestamp `UInt64.max` ("infinity").
    case reservedTimestamp(ItemID)
    /// The same `(timestamp, id)` was stored twice.
    case duplicateItem(Item)
    /// A storage index or range outside `0...count`.
    case indexOutOfRange(Int, count: Int)

    public var description: String {
        switch self {
        case .truncated(let field): return "message ends prematurely in \(field.rawValue)"
        case .varintTooLong: return "varint longer than 10 bytes"
        case .varintOverflow: return "varint above 2^64-1"
        case .idPrefixTooLong(let length): return "bound id prefix of \(length) bytes (max 32)"
        case .unknownMode(let mode): return "unknown range mode \(mode)"
        case .boundWentBackwards(let previous, let current): return "bound \(current) below previous bound \(previous)"
        case .idListTooLong(let count, let left): return "IdList of \(count) ids with only \(left) bytes left"
        case .invalidProtocolVersion(let byte): return "invalid protocol version byte 0x\(String(byte, radix: 16))"
        case .unsupportedProtocolVersion(let byte): return "peer speaks unsupported protocol version 0x\(String(byte, radix: 16))"
        case .frameSizeLimitTooSmall(let limit): return "frame size limit \(limit) too small (0 or >= 4096)"
        case .invalidRoundLimit(let limit): return "round limit \(limit) must be at least 1"
        case .roundLimitExceeded(let limit): return "session exceeded its limit of \(limit) rounds"
        case .noProgress(let rounds): return "\(rounds) rounds in a row made no progress"
        case .byteBudgetExceeded(let limit): return "session exceeded its budget of \(limit) bytes"
        case .alreadyInitiated: return "initiate() called twice"
        case .notInitiated: return "reconcile() called before initiate()"
        case .sessionFinished: return "reconcile() called after the session finished"
        case .reservedTimestamp(let id): return "record \(id) uses the reserved timestamp 2^64-1"
        case .duplicateItem(let item): return "duplicate item \(item)"
        case .indexOutOfRange(let index, let count): return "index \(index) out of range 0...\(count)"
        }
    }
}
