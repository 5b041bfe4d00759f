import CairnCore
import CairnStore
import Cairn

/// One message of the session protocol, carried (after the Noise handshake) as the plaintext of
/// one or more encrypted frames. ARCHITECTURE.md § "Sync wire format" gives the byte layout.
enum SyncMessage: Equatable, Sendable {
    /// First message each side sends: what it speaks and which log it holds.
    case hello(Hello)
    /// The sender's current heads, with their HLCs (so a receiver can tell a peer that went
    /// back in time, i.e. was restored from an old copy, even when the ids are unknown to it).
    case heads([Tip])
    /// Delta fetch: "send me the ancestry of `wants` that is not in the ancestry of `haves`".
    /// `request` is 1…2^31−1 and unique among the sender's requests in flight (``StreamID``).
    case fetch(request: UInt32, wants: [Hash32], haves: [Hash32])
    /// A batch of entries, parents first. `stream` is the fetch or need request it answers, or 0
    /// for a live push; batches of a stream are acknowledged by `batch` number. `chunked` (only
    /// to peers offering `value-chunks/1`) names the entry, at most one and the batch's last,
    /// whose value is too large to go inline: its `value-chunk` messages follow on the stream,
    /// and the batch is inserted (and acknowledged) once they are all here.
    case entries(stream: UInt32, batch: UInt32, [RawEntry], chunked: ChunkedValue? = nil)
    /// `bytes` of the value `digest` from `offset`, for the chunked entry of the batch of
    /// `stream` being received. Chunks come in order and add up to the declared length.
    case valueChunk(stream: UInt32, digest: Hash32, offset: UInt32, [UInt8])
    /// The receiver committed batch `batch` of `stream`.
    case ack(stream: UInt32, batch: UInt32)
    /// The sender has sent every batch of `request`, or refuses it as too large for the fast path.
    case done(request: UInt32, outcome: FetchOutcome)
    /// "Send me these entries" (RBSR `need` ids, or the missing parents of pushed entries).
    case need(request: UInt32, [Hash32])
    /// One Negentropy V1 message of set-reconciliation session `session`; `fromInitiator` tells
    /// its direction (each side may run its own sessions). An empty message from the initiator
    /// ends its round: the responder frees its state.
    case reconcile(session: UInt32, fromInitiator: Bool, [UInt8])
    /// "Start a reconciliation round with me now" (sent when the fast path cannot help).
    case reconcileRequest
    case ping(UInt64)
    case pong(UInt64)
    /// The sender closes the session, with a reason for the log.
    case bye(String)

    /// An entry of a batch whose value follows in `value-chunk` messages.
    struct ChunkedValue: Equatable, Sendable {
        /// Its position in the batch.
        var index: Int
        /// The value's length, as the entry signs it.
        var length: UInt32
    }

    struct Tip: Equatable, Sendable {
        var id: Hash32
        var hlc: HLC
    }

    struct Hello: Equatable, Sendable {
        var minVersion: UInt16
        var maxVersion: UInt16
        var logID: Hash32
        var nodeKey: PublicKey
        var capabilities: [String]
    }

    enum FetchOutcome: UInt8, Equatable, Sendable {
        case complete = 0
        case tooLarge = 1
    }
}

/// Names a stream of entry batches in a session: whose number space the number is in, and the
/// number.
///
/// Request numbers (`fetch`, `need`) are 1…2^31−1, chosen by the requester, and the stream that
/// answers a request carries its number. Streams a node opens on its own (a reconciliation's
/// `have` entries) carry numbers with the top bit set. So a number on the wire names one stream,
/// given which way its entries flow; a peer that picks a request number outside its space, or
/// reuses one whose stream is in flight, is dropped (protocol violation).
struct StreamID: Hashable, Sendable, CustomStringConvertible {
    /// Who chose the number: this node (its requests, its own streams) or the peer.
    enum Owner: Hashable, Sendable { case ours, theirs }

    let owner: Owner
    let number: UInt32

    static let ownStreamBit: UInt32 = 0x8000_0000

    init(_ owner: Owner, _ number: UInt32) {
        self.owner = owner
        self.number = number
    }

    /// A stream this node sends, as an `ack` names it: one this node opened (top bit), or the
    /// answer to the peer's request.
    init(sent number: UInt32) { self.init(number & Self.ownStreamBit != 0 ? .ours : .theirs, number) }

    /// A stream this node receives, as `entries` and `done` name it: one the peer opened (top
    /// bit), or the answer to this node's request.
    init(received number: UInt32) { self.init(number & Self.ownStreamBit != 0 ? .theirs : .ours, number) }

    /// Whether a requester may use `number` for a fetch or need: 1…2^31−1.
    static func isRequestNumber(_ number: UInt32) -> Bool { number != 0 && number & ownStreamBit == 0 }

    var description: String { "\(owner == .ours ? "ours" : "theirs")/\(number)" }
}

/// Why a received message was refused; the session is dropped.
public enum WireError: Error, Equatable, Sendable, CustomStringConvertible {
    case truncated(field: String)
    case unknownMessageType(UInt8)
    case trailingBytes(Int)
    case tooMany(field: String, count: Int, limit: Int)
    case messageTooLarge(Int, limit: Int)
    case badField(String)

    public var description: String {
        switch self {
        case .truncated(let field): "truncated message (\(field))"
        case .unknownMessageType(let type): "unknown message type \(type)"
        case .trailingBytes(let n): "\(n) trailing bytes after the message"
        case .tooMany(let field, let count, let limit): "\(count) \(field) (limit \(limit))"
        case .messageTooLarge(let size, let limit): "message of \(size) bytes (limit \(limit))"
        case .badField(let field): "invalid \(field)"
        }
    }
}

/// Limits that keep a hostile peer from making a decoder allocate without bound.
enum WireLimits {
    static let ids = 100_000
    static let entries = 100_000
    static let capabilities = 64
    static let capabilityBytes = 64
    static let entryBody = 1 << 20
    static let value = 64 << 20
    /// Largest `value-chunk` payload, and the size above which a value goes in chunks.
    static let valueChunk = 1 << 20
    static let signature = 64
}

extension SyncMessage {
    private enum Tag: UInt8 {
        case hello = 1, heads, fetch, entries, ack, done, need, reconcile, reconcileRequest, ping, pong, bye, valueChunk
    }

    /// The message's bytes: a one-byte type, then its fields, big-endian.
    func encoded() -> [UInt8] {
        var w = ByteWriter()
        switch self {
        case .hello(let h):
            w.u8(Tag.hello.rawValue)
            w.u16(h.minVersion); w.u16(h.maxVersion); w.raw(h.logID.bytes); w.raw(h.nodeKey.bytes)
            w.u16(UInt16(h.capabilities.count))
            for capability in h.capabilities { w.bytes8(Array(capability.utf8)) }
        case .heads(let tips):
            w.u8(Tag.heads.rawValue); w.u32(UInt32(tips.count))
            for tip in tips { w.raw(tip.id.bytes); w.u64(tip.hlc.rawValue) }
        case .fetch(let request, let wants, let haves):
            w.u8(Tag.fetch.rawValue); w.u32(request); w.ids(wants); w.ids(haves)
        case .entries(let stream, let batch, let entries, let chunked):
            w.u8(Tag.entries.rawValue); w.u32(stream); w.u32(batch); w.u32(UInt32(entries.count))
            for (index, entry) in entries.enumerated() {
                if let chunked, chunked.index == index {
                    w.entry(entry, chunkedLength: chunked.length)
                } else {
                    w.entry(entry)
                }
            }
        case .valueChunk(let stream, let digest, let offset, let bytes):
            w.u8(Tag.valueChunk.rawValue); w.u32(stream); w.raw(digest.bytes); w.u32(offset)
            w.u32(UInt32(bytes.count)); w.raw(bytes)
        case .ack(let stream, let batch):
            w.u8(Tag.ack.rawValue); w.u32(stream); w.u32(batch)
        case .done(let request, let outcome):
            w.u8(Tag.done.rawValue); w.u32(request); w.u8(outcome.rawValue)
        case .need(let request, let ids):
            w.u8(Tag.need.rawValue); w.u32(request); w.ids(ids)
        case .reconcile(let session, let fromInitiator, let bytes):
            w.u8(Tag.reconcile.rawValue); w.u32(session); w.u8(fromInitiator ? 1 : 0)
            w.u32(UInt32(bytes.count)); w.raw(bytes)
        case .reconcileRequest:
            w.u8(Tag.reconcileRequest.rawValue)
        case .ping(let nonce):
            w.u8(Tag.ping.rawValue); w.u64(nonce)
        case .pong(let nonce):
            w.u8(Tag.pong.rawValue); w.u64(nonce)
        case .bye(let reason):
            w.u8(Tag.bye.rawValue); w.bytes16(Array(reason.utf8.prefix(1000)))
        }
        return w.bytes
    }

    /// Decodes one whole message; anything malformed, truncated, oversized or followed by extra
    /// bytes is a ``WireError``.
    init(decoding bytes: [UInt8]) throws(WireError) {
        var r = ByteReader(bytes)
        do {
            guard let tag = Tag(rawValue: try r.u8("type")) else { throw WireError.unknownMessageType(bytes[0]) }
            self = try Self.decodeBody(tag, &r)
        } catch let truncated as ByteReader.Truncated {
            throw .truncated(field: truncated.field)
        } catch let error as WireError {
            throw error
        } catch {
            throw .badField("\(error)")
        }
        guard r.isAtEnd else { throw .trailingBytes(r.remaining) }
    }

    private static func decodeBody(_ tag: Tag, _ r: inout ByteReader) throws -> SyncMessage {
        switch tag {
        case .hello:
            let minVersion = try r.u16("min version"), maxVersion = try r.u16("max version")
            let logID = try r.hash("log id")
            guard let nodeKey = PublicKey(bytes: Array(try r.raw(32, "node key"))) else { throw WireError.badField("node key") }
            let count = try r.count(UInt32(try r.u16("capability count")), limit: WireLimits.capabilities, "capabilities")
            var capabilities: [String] = []
            for _ in 0..<count {
                let raw = try r.bytes8("capability")
                guard raw.count <= WireLimits.capabilityBytes, let text = String(validating: raw, as: UTF8.self) else {
                    throw WireError.badField("capability")
                }
                capabilities.append(text)
            }
            return .hello(Hello(minVersion: minVersion, maxVersion: maxVersion, logID: logID, nodeKey: nodeKey, capabilities: capabilities))
        case .heads:
            let n = try r.count(try r.u32("head count"), limit: WireLimits.ids, "heads")
            return .heads(try (0..<n).map { _ in Tip(id: try r.hash("head"), hlc: HLC(rawValue: try r.u64("head hlc"))) })
        case .fetch:
            return .fetch(request: try r.u32("request"), wants: try r.ids("wants"), haves: try r.ids("haves"))
        case .entries:
            let stream = try r.u32("stream"), batch = try r.u32("batch")
            let count = try r.count(try r.u32("entry count"), limit: WireLimits.entries, "entries")
            var entries: [RawEntry] = []
            entries.reserveCapacity(min(count, 1024))
            var chunked: ChunkedValue?
            for index in 0..<count {
                let (entry, chunkedLength) = try r.entry()
                if let chunkedLength {
                    // One chunked value per batch, as its last entry: the receiver holds at most
                    // one partial value per stream.
                    guard index == count - 1 else { throw WireError.badField("chunked value before the last entry of a batch") }
                    chunked = ChunkedValue(index: index, length: chunkedLength)
                }
                entries.append(entry)
            }
            return .entries(stream: stream, batch: batch, entries, chunked: chunked)
        case .valueChunk:
            let stream = try r.u32("stream"), digest = try r.hash("value digest"), offset = try r.u32("offset")
            let length = Int(try r.u32("chunk length"))
            guard length > 0, length <= WireLimits.valueChunk else { throw WireError.badField("chunk length \(length)") }
            return .valueChunk(stream: stream, digest: digest, offset: offset, Array(try r.raw(length, "chunk")))
        case .ack:
            return .ack(stream: try r.u32("stream"), batch: try r.u32("batch"))
        case .done:
            let request = try r.u32("request")
            guard let outcome = FetchOutcome(rawValue: try r.u8("outcome")) else { throw WireError.badField("fetch outcome") }
            return .done(request: request, outcome: outcome)
        case .need:
            return .need(request: try r.u32("request"), try r.ids("ids"))
        case .reconcile:
            let session = try r.u32("session")
            let direction = try r.u8("direction")
            guard direction <= 1 else { throw WireError.badField("direction") }
            let length = Int(try r.u32("reconcile length"))
            return .reconcile(session: session, fromInitiator: direction == 1, Array(try r.raw(length, "reconcile message")))
        case .reconcileRequest:
            return .reconcileRequest
        case .ping:
            return .ping(try r.u64("nonce"))
        case .pong:
            return .pong(try r.u64("nonce"))
        case .bye:
            let length = Int(try r.u16("reason length"))
            return .bye(String(decoding: try r.raw(length, "reason"), as: UTF8.self))
        }
    }
}

extension ByteWriter {
    mutating func ids(_ ids: [Hash32]) {
        u32(UInt32(ids.count))
        for id in ids { raw(id.bytes) }
    }

    mutating func bytes8(_ b: [UInt8]) { u8(UInt8(b.count)); raw(b) }
    mutating func bytes16(_ b: [UInt8]) { u16(UInt16(b.count)); raw(b) }

    /// The claimed id, body length, body, signature (64 bytes), then a flag and the value bytes
    /// if any. The id lets a receiver skip entries it holds; ingest checks it against the body.
    /// With `chunkedLength`, the value is not inline: flag 2 and its length say it follows in
    /// `value-chunk` messages.
    mutating func entry(_ entry: RawEntry, chunkedLength: UInt32? = nil) {
        raw(entry.claimedID?.bytes ?? [UInt8](repeating: 0, count: 32))
        u32(UInt32(entry.body.count)); raw(entry.body)
        raw(entry.signature)
        if let chunkedLength {
            u8(2); u32(chunkedLength)
        } else if let value = entry.value {
            u8(1); u32(UInt32(value.count)); raw(value)
        } else {
            u8(0)
        }
    }
}

extension ByteReader {
    mutating func hash(_ field: String) throws -> Hash32 {
        guard let id = Hash32(bytes: Array(try raw(32, field))) else { throw WireError.badField(field) }
        return id
    }

    mutating func count(_ n: UInt32, limit: Int, _ field: String) throws -> Int {
        guard n <= limit else { throw WireError.tooMany(field: field, count: Int(n), limit: limit) }
        // Each counted item needs at least one byte: a count beyond what is left is a lie.
        guard Int(n) <= remaining else { throw WireError.truncated(field: field) }
        return Int(n)
    }

    mutating func ids(_ field: String) throws -> [Hash32] {
        let n = try count(try u32("\(field) count"), limit: WireLimits.ids, field)
        return try (0..<n).map { _ in try hash(field) }
    }

    mutating func bytes8(_ field: String) throws -> [UInt8] { Array(try raw(Int(try u8(field)), field)) }

    /// An entry, and the declared length of its value when the value follows in chunks.
    mutating func entry() throws -> (RawEntry, chunkedLength: UInt32?) {
        let id = try hash("entry id")
        let bodyLength = Int(try u32("entry body length"))
        guard bodyLength <= WireLimits.entryBody else { throw WireError.messageTooLarge(bodyLength, limit: WireLimits.entryBody) }
        let body = Array(try raw(bodyLength, "entry body"))
        let signature = Array(try raw(WireLimits.signature, "signature"))
        switch try u8("value flag") {
        case 0:
            return (RawEntry(body: body, signature: signature, claimedID: id), nil)
        case 1:
            let valueLength = Int(try u32("value length"))
            guard valueLength <= WireLimits.value else { throw WireError.messageTooLarge(valueLength, limit: WireLimits.value) }
            return (RawEntry(body: body, signature: signature, claimedID: id, value: Array(try raw(valueLength, "value"))), nil)
        case 2:
            let valueLength = try u32("chunked value length")
            guard valueLength > 0, valueLength <= WireLimits.value else { throw WireError.badField("chunked value length \(valueLength)") }
            return (RawEntry(body: body, signature: signature, claimedID: id), valueLength)
        default:
            throw WireError.badField("value flag")
        }
    }
}
