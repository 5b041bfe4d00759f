/// Why a Noise operation failed. A session that sees any of these must be dropped.
public enum NoiseError: Error, Equatable, Sendable {
    /// A ciphertext did not authenticate: wrong key, wrong PSK, or tampered bytes.
    case decryptionFailed
    /// A handshake message is shorter than its tokens need.
    case truncatedMessage
    /// A message or payload over the Noise limit of 65,535 bytes.
    case messageTooLong
    /// A public key is the wrong size or of low order.
    case invalidPublicKey
    /// `writeMessage` / `readMessage` called out of turn, or after the handshake ended.
    case outOfTurn
    /// A pattern needs a key or PSK that was not given.
    case missingKey(String)
    /// The 2^64 − 1 nonces of a cipher state are used up.
    case nonceExhausted
}

/// Noise's CipherState (§5.1): a key and a message counter. Encrypts with ChaCha20-Poly1305.
public struct NoiseCipherState: Sendable {
    /// The Noise maximum message length.
    public static let maxMessageLength = 65_535

    private(set) var key: [UInt8]?
    private var nonce: UInt64 = 0

    init(key: [UInt8]? = nil) { self.key = key }

    var hasKey: Bool { key != nil }

    /// Encrypts `plaintext` (authenticating `ad`); without a key, returns it unchanged.
    public mutating func encrypt(_ plaintext: [UInt8], ad: [UInt8] = []) throws(NoiseError) -> [UInt8] {
        guard let key else { return plaintext }
        guard plaintext.count + ChaChaPoly.tagLength <= Self.maxMessageLength else { throw .messageTooLong }
        guard nonce < .max else { throw .nonceExhausted }
        defer { nonce += 1 }
        return ChaChaPoly.encrypt(key: key, nonce: nonce, ad: ad, plaintext)
    }

    /// Decrypts and authenticates `ciphertext`; without a key, returns it unchanged.
    public mutating func decrypt(_ ciphertext: [UInt8], ad: [UInt8] = []) throws(NoiseError) -> [UInt8] {
        guard let key else { return ciphertext }
        guard ciphertext.count <= Self.maxMessageLength else { throw .messageTooLong }
        guard nonce < .max else { throw .nonceExhausted }
        let plaintext = try ChaChaPoly.decrypt(key: key, nonce: nonce, ad: ad, ciphertext)
        nonce += 1  // only after success: a forged frame must not desynchronise the counter
        return plaintext
    }
}

/// Noise's SymmetricState (§5.2): the chaining key, the handshake hash and a CipherState.
struct SymmetricState {
    private(set) var chainingKey: [UInt8]
    private(set) var handshakeHash: [UInt8]
    private(set) var cipher = NoiseCipherState()

    init(protocolName: String) {
        let name = Array(protocolName.utf8)
        handshakeHash = name.count <= BLAKE2b512.hashLength
            ? name + [UInt8](repeating: 0, count: BLAKE2b512.hashLength - name.count)
            : BLAKE2b512.hash(name)
        chainingKey = handshakeHash
    }

    mutating func mixHash(_ data: [UInt8]) { handshakeHash = BLAKE2b512.hash(handshakeHash, data) }

    mutating func mixKey(_ input: [UInt8]) {
        let out = BLAKE2b512.hkdf(chainingKey: chainingKey, input, outputs: 2)
        chainingKey = out[0]
        cipher = NoiseCipherState(key: Array(out[1].prefix(32)))
    }

    mutating func mixKeyAndHash(_ input: [UInt8]) {
        let out = BLAKE2b512.hkdf(chainingKey: chainingKey, input, outputs: 3)
        chainingKey = out[0]
        mixHash(out[1])
        cipher = NoiseCipherState(key: Array(out[2].prefix(32)))
    }

    mutating func encryptAndHash(_ plaintext: [UInt8]) throws(NoiseError) -> [UInt8] {
        let ciphertext = try cipher.encrypt(plaintext, ad: handshakeHash)
        mixHash(ciphertext)
        return ciphertext
    }

    mutating func decryptAndHash(_ ciphertext: [UInt8]) throws(NoiseError) -> [UInt8] {
        let plaintext = try cipher.decrypt(ciphertext, ad: handshakeHash)
        mixHash(ciphertext)
        return plaintext
    }

    /// The two transport cipher states: initiator→responder, responder→initiator.
    func split() -> (NoiseCipherState, NoiseCipherState) {
        let out = BLAKE2b512.hkdf(chainingKey: chainingKey, [], outputs: 2)
        return (NoiseCipherState(key: Array(out[0].prefix(32))), NoiseCipherState(key: Array(out[1].prefix(32))))
    }
}
