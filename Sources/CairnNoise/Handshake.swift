/// A Noise handshake pattern (§7) over 25519, ChaChaPoly and BLAKE2b.
public struct NoisePattern: Sendable {
    enum Token: Sendable { case e, s, ee, es, se, ss, psk }

    let name: String
    let messages: [[Token]]

    /// `Noise_XXpsk3_25519_ChaChaPoly_BLAKE2b`: Cairn's transport. Both sides learn each other's
    /// static key; the PSK (the log's network secret) is mixed in by the third message.
    public static let XXpsk3 = NoisePattern(name: "XXpsk3", messages: [[.e], [.e, .ee, .s, .es], [.s, .se, .psk]])
    /// `Noise_XX_…`: mutual static keys, no PSK (a stepping stone, tested against vectors).
    public static let XX = NoisePattern(name: "XX", messages: [[.e], [.e, .ee, .s, .es], [.s, .se]])
    /// `Noise_NN_…`: ephemeral keys only (a stepping stone, tested against vectors).
    public static let NN = NoisePattern(name: "NN", messages: [[.e], [.e, .ee]])

    var protocolName: String { "Noise_\(name)_25519_ChaChaPoly_BLAKE2b" }
    var usesPSK: Bool { messages.joined().contains(.psk) }
}

/// Noise's HandshakeState (§5.3) for one side of one session.
///
///     var initiator = try NoiseHandshake(pattern: .XXpsk3, initiator: true, prologue: p, staticKey: k, psk: secret)
///     let m1 = try initiator.writeMessage()            // → send
///     let payload = try initiator.readMessage(m2)      // ← receive
///     let m3 = try initiator.writeMessage()            // → send; now initiator.isComplete
///     var transport = try initiator.transport()
public struct NoiseHandshake: Sendable {
    public let pattern: NoisePattern
    public let isInitiator: Bool
    private var symmetric: SymmetricState
    private let staticKey: NoiseKeyPair?
    private var ephemeralKey: NoiseKeyPair?
    private let psk: [UInt8]?
    /// The peer's static public key, once a handshake message has carried it.
    public private(set) var remoteStaticKey: [UInt8]?
    private var remoteEphemeralKey: [UInt8]?
    private var messageIndex = 0

    /// Starts a handshake. `ephemeralKey` is for test vectors only; normally it is generated.
    public init(
        pattern: NoisePattern, initiator: Bool, prologue: [UInt8] = [], staticKey: NoiseKeyPair? = nil,
        psk: [UInt8]? = nil, ephemeralKey: NoiseKeyPair? = nil
    ) throws(NoiseError) {
        if pattern.messages.joined().contains(.s), staticKey == nil { throw .missingKey("static key") }
        if pattern.usesPSK, psk?.count != 32 { throw .missingKey("32-byte PSK") }
        self.pattern = pattern
        self.isInitiator = initiator
        self.staticKey = staticKey
        self.ephemeralKey = ephemeralKey
        self.psk = psk
        symmetric = SymmetricState(protocolName: pattern.protocolName)
        symmetric.mixHash(prologue)
    }

    /// Whether every handshake message has been written or read.
    public var isComplete: Bool { messageIndex == pattern.messages.count }

    /// The handshake hash `h`: identical on both sides after the handshake; binds the session.
    public var handshakeHash: [UInt8] { symmetric.handshakeHash }

    private var myTurn: Bool { (messageIndex % 2 == 0) == isInitiator }

    /// Writes the next handshake message, carrying `payload`.
    public mutating func writeMessage(payload: [UInt8] = []) throws(NoiseError) -> [UInt8] {
        guard !isComplete, myTurn else { throw .outOfTurn }
        var out: [UInt8] = []
        for token in pattern.messages[messageIndex] {
            switch token {
            case .e:
                let e = ephemeralKey ?? NoiseKeyPair.generate()
                ephemeralKey = e
                out += e.publicKey
                mixEphemeral(e.publicKey)
            case .s:
                out += try symmetric.encryptAndHash(staticKey!.publicKey)
            case .psk:
                symmetric.mixKeyAndHash(psk!)
            default:
                try mixDH(token)
            }
        }
        out += try symmetric.encryptAndHash(payload)
        guard out.count <= NoiseCipherState.maxMessageLength else { throw .messageTooLong }
        messageIndex += 1
        return out
    }

    /// Reads the peer's next handshake message and returns its payload.
    public mutating func readMessage(_ message: [UInt8]) throws(NoiseError) -> [UInt8] {
        guard !isComplete, !myTurn else { throw .outOfTurn }
        guard message.count <= NoiseCipherState.maxMessageLength else { throw .messageTooLong }
        var rest = message[...]
        for token in pattern.messages[messageIndex] {
            switch token {
            case .e:
                guard rest.count >= 32 else { throw .truncatedMessage }
                let e = Array(rest.prefix(32))
                rest = rest.dropFirst(32)
                remoteEphemeralKey = e
                mixEphemeral(e)
            case .s:
                let length = 32 + (symmetric.cipher.hasKey ? ChaChaPoly.tagLength : 0)
                guard rest.count >= length else { throw .truncatedMessage }
                remoteStaticKey = try symmetric.decryptAndHash(Array(rest.prefix(length)))
                rest = rest.dropFirst(length)
            case .psk:
                symmetric.mixKeyAndHash(psk!)
            default:
                try mixDH(token)
            }
        }
        let payload = try symmetric.decryptAndHash(Array(rest))
        messageIndex += 1
        return payload
    }

    /// The transport cipher states, once the handshake is complete.
    public func transport() throws(NoiseError) -> NoiseTransport {
        guard isComplete else { throw .outOfTurn }
        let (initiatorToResponder, responderToInitiator) = symmetric.split()
        return isInitiator
            ? NoiseTransport(sender: initiatorToResponder, receiver: responderToInitiator)
            : NoiseTransport(sender: responderToInitiator, receiver: initiatorToResponder)
    }

    private mutating func mixEphemeral(_ publicKey: [UInt8]) {
        symmetric.mixHash(publicKey)
        if pattern.usesPSK { symmetric.mixKey(publicKey) }  // §9.2: in PSK handshakes "e" also mixes the key
    }

    /// ee, es, se, ss: which local and remote key each token combines depends on the role.
    private mutating func mixDH(_ token: NoisePattern.Token) throws(NoiseError) {
        let (local, remote): (NoiseKeyPair?, [UInt8]?)
        switch (token, isInitiator) {
        case (.ee, _): (local, remote) = (ephemeralKey, remoteEphemeralKey)
        case (.es, true): (local, remote) = (ephemeralKey, remoteStaticKey)
        case (.es, false): (local, remote) = (staticKey, remoteEphemeralKey)
        case (.se, true): (local, remote) = (staticKey, remoteEphemeralKey)
        case (.se, false): (local, remote) = (ephemeralKey, remoteStaticKey)
        default: (local, remote) = (staticKey, remoteStaticKey)
        }
        guard let local, let remote else { throw .missingKey("key for DH") }
        symmetric.mixKey(try local.agree(with: remote))
    }
}

/// The two directions of an established Noise session.
public struct NoiseTransport: Sendable {
    /// Encrypts what this side sends.
    public var sender: NoiseCipherState
    /// Decrypts what this side receives.
    public var receiver: NoiseCipherState
}
