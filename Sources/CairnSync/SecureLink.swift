import CairnCore
import CairnStore
import CSodium
import Cairn
import CairnNoise
import NIOCore

/// Why a session ended on the peer's fault (or by timeout); logged and counted by reason.
public enum SessionError: Error, Equatable, Sendable, CustomStringConvertible {
    case handshakeFailed(NoiseError)
    case undecryptableFrame
    case malformedFrame(String)
    case malformedMessage(WireError)
    case timedOut
    case handshakeTimedOut
    case closedDuringHandshake
    case unexpectedMessage(String)
    case wrongLog(Hash32)
    case noCommonVersion(UInt16, UInt16)
    case identityNotBound
    case identityMismatch(expected: PublicKey, got: PublicKey)
    case connectedToSelf
    case duplicateConnection
    case protocolViolation(String)
    case hostileEntries(String)
    case sendQueueOverflow
    /// The peer's node key is not admitted by the inbound policy.
    case notAllowed(PublicKey)
    /// The peer refused this node (its `bye` said why).
    case refusedByPeer(String)
    /// A reconciliation with the peer stopped making progress or exceeded its byte budget.
    case reconcileStalled(String)

    public var description: String {
        switch self {
        case .handshakeFailed(let e): "Noise handshake failed (\(e)); wrong network secret?"
        case .undecryptableFrame: "a frame failed to decrypt"
        case .malformedFrame(let why): "malformed frame: \(why)"
        case .malformedMessage(let e): "malformed message: \(e)"
        case .timedOut: "peer stalled past the timeout"
        case .handshakeTimedOut: "no completed handshake before the deadline"
        case .closedDuringHandshake: "connection closed during the handshake"
        case .unexpectedMessage(let what): "unexpected message: \(what)"
        case .wrongLog(let id): "peer holds another log (\(id.shortHex()))"
        case .noCommonVersion(let lo, let hi): "no common protocol version (peer speaks \(lo)…\(hi))"
        case .identityNotBound: "the peer's Noise key is not derived from the node key it claims"
        case .identityMismatch(let expected, let got): "pinned identity \(expected.hex.prefix(16))…, peer is \(got.hex.prefix(16))…"
        case .connectedToSelf: "the address is this node"
        case .duplicateConnection: "another session with this peer is kept"
        case .protocolViolation(let why): "protocol violation: \(why)"
        case .hostileEntries(let why): "peer sent entries no honest node relays (\(why))"
        case .sendQueueOverflow: "peer does not read fast enough"
        case .notAllowed(let key): "node key \(key.hex.prefix(16))… is not allowed to connect (inbound policy)"
        case .refusedByPeer(let reason): "the peer refused this node: \(reason)"
        case .reconcileStalled(let why): "reconciliation abandoned: \(why)"
        }
    }

    /// Whether the peer reached us but failed to prove it holds the network secret (worth a
    /// warning: a misconfigured node), as opposed to a connection that merely went away.
    var isAuthenticationFailure: Bool {
        switch self {
        case .handshakeFailed, .notAllowed: true  // an operator wants to see who was turned away
        default: false
        }
    }

    /// A short label for metrics.
    var label: String {
        switch self {
        case .handshakeFailed: "handshake"
        case .undecryptableFrame: "undecryptable"
        case .malformedFrame, .malformedMessage: "malformed"
        case .timedOut: "timeout"
        case .handshakeTimedOut: "handshake_timeout"
        case .closedDuringHandshake: "closed"
        case .unexpectedMessage, .protocolViolation: "protocol"
        case .wrongLog: "wrong_log"
        case .noCommonVersion: "version"
        case .identityNotBound, .identityMismatch: "identity"
        case .connectedToSelf: "self"
        case .duplicateConnection: "duplicate"
        case .hostileEntries: "hostile_entries"
        case .sendQueueOverflow: "slow_reader"
        case .notAllowed: "not_allowed"
        case .refusedByPeer: "refused"
        case .reconcileStalled: "no_progress"
        }
    }
}

// MARK: - Identity binding

/// A node's Noise static key is its Ed25519 node key converted to X25519 (libsodium's
/// `crypto_sign_ed25519_*_to_curve25519`), so completing the handshake proves possession of
/// the node key the hello names: no separate certificate to sign, store or rotate.
extension SigningKey {
    var noiseStaticKey: NoiseKeyPair {
        var publicKey = [UInt8](repeating: 0, count: Int(crypto_sign_PUBLICKEYBYTES))
        var secretKey = [UInt8](repeating: 0, count: Int(crypto_sign_SECRETKEYBYTES))
        var curve = [UInt8](repeating: 0, count: 32)
        _ = crypto_sign_seed_keypair(&publicKey, &secretKey, seed)
        _ = crypto_sign_ed25519_sk_to_curve25519(&curve, secretKey)
        sodium_memzero(&secretKey, secretKey.count)
        return NoiseKeyPair(privateKey: curve)!
    }
}

extension PublicKey {
    /// The X25519 public key a node with this Ed25519 key uses as its Noise static key.
    var noiseStaticKey: [UInt8]? {
        var curve = [UInt8](repeating: 0, count: 32)
        return crypto_sign_ed25519_pk_to_curve25519(&curve, bytes) == 0 ? curve : nil
    }
}

// MARK: - Handshake and frames

/// The Noise prologue: both sides must agree on it, so it names the protocol.
let syncPrologue = Array("cairn-sync/1".utf8)

/// Largest plaintext chunk per Noise transport message: 65,535 minus the 16-byte tag and the
/// one-byte "final chunk" flag.
let maxChunk = NoiseCipherState.maxMessageLength - 16 - 1

/// Runs the three-message XXpsk3 handshake over the channel and returns the transport keys and
/// the peer's static key.
func noiseHandshake(
    initiator: Bool, staticKey: NoiseKeyPair, psk: [UInt8],
    inbound: inout NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator,
    outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
) async throws -> (NoiseTransport, remoteStatic: [UInt8]) {
    do {
        var handshake = try NoiseHandshake(
            pattern: .XXpsk3, initiator: initiator, prologue: syncPrologue, staticKey: staticKey, psk: psk)
        var myTurn = initiator
        while !handshake.isComplete {
            if myTurn {
                try await outbound.write(ByteBuffer(bytes: try handshake.writeMessage()))
            } else {
                guard let frame = try await inbound.next() else { throw SessionError.closedDuringHandshake }
                _ = try handshake.readMessage(Array(frame.readableBytesView))
            }
            myTurn.toggle()
        }
        return (try handshake.transport(), handshake.remoteStaticKey!)
    } catch let error as NoiseError {
        throw SessionError.handshakeFailed(error)
    }
}

/// The sending half of a session: encrypts messages in order and writes them in that order.
///
/// Writes are chained (each waits for the one before) because Noise nonces must reach the
/// peer in the order they were used, and two tasks writing to an NIO writer may interleave.
actor FrameSender {
    private var cipher: NoiseCipherState
    private let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    private var tail: Task<Void, any Error>?
    /// Bytes encrypted but not yet handed to the socket.
    private(set) var queuedBytes = 0

    init(cipher: NoiseCipherState, outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>) {
        self.cipher = cipher
        self.outbound = outbound
    }

    /// Sends a message and waits until it is handed to the socket.
    func send(_ message: SyncMessage) async throws {
        try await enqueue(message).value
    }

    /// Queues a message without waiting; its write is ordered after every earlier one.
    @discardableResult
    func enqueue(_ message: SyncMessage) throws -> Task<Void, any Error> {
        let frames = try encrypt(message.encoded())
        let size = frames.reduce(0) { $0 + $1.readableBytes }
        queuedBytes += size
        let previous = tail
        let outbound = outbound
        let task = Task {
            defer { self.written(size) }
            _ = await previous?.result
            try await outbound.write(contentsOf: frames)
        }
        tail = task
        return task
    }

    private func written(_ size: Int) { queuedBytes -= size }

    /// Splits a message into chunks of at most ``maxChunk`` bytes, each prefixed with a flag
    /// byte (1 on the last chunk), and encrypts each into one Noise message.
    private func encrypt(_ message: [UInt8]) throws -> [ByteBuffer] {
        var frames: [ByteBuffer] = []
        var start = 0
        repeat {
            let end = min(start + maxChunk, message.count)
            let chunk = [end == message.count ? 1 : 0] + message[start..<end]
            frames.append(ByteBuffer(bytes: try cipher.encrypt(chunk)))
            start = end
        } while start < message.count
        return frames
    }
}

/// The receiving half: decrypts frames and reassembles messages, refusing any message larger
/// than `maxMessageBytes`.
struct FrameReceiver {
    private var cipher: NoiseCipherState
    private var inbound: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    let maxMessageBytes: Int

    init(cipher: NoiseCipherState, inbound: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator, maxMessageBytes: Int) {
        self.cipher = cipher
        self.inbound = inbound
        self.maxMessageBytes = maxMessageBytes
    }

    /// The next whole message, or `nil` when the peer closed between messages.
    mutating func next() async throws -> SyncMessage? {
        var assembled: [UInt8] = []
        while true {
            guard let frame = try await inbound.next() else {
                if assembled.isEmpty { return nil }
                throw SessionError.malformedFrame("connection closed mid-message")
            }
            let plain: [UInt8]
            do {
                plain = try cipher.decrypt(Array(frame.readableBytesView))
            } catch {
                throw SessionError.undecryptableFrame
            }
            guard let flag = plain.first, flag <= 1 else { throw SessionError.malformedFrame("bad chunk flag") }
            guard assembled.count + plain.count - 1 <= maxMessageBytes else {
                throw SessionError.malformedMessage(.messageTooLarge(assembled.count + plain.count - 1, limit: maxMessageBytes))
            }
            assembled += plain.dropFirst()
            if flag == 1 {
                do {
                    return try SyncMessage(decoding: assembled)
                } catch {
                    throw SessionError.malformedMessage(error)
                }
            }
        }
    }
}
