import CBlake2
import CSodium

// The three primitives of Noise_*_25519_ChaChaPoly_BLAKE2b (Noise spec rev. 34, §4, §12):
// X25519 and ChaCha20-Poly1305 (IETF) from libsodium, BLAKE2b-512 from libb2.

let sodiumReady: Bool = sodium_init() >= 0

/// An X25519 key pair: a node's static Noise key, or a handshake's ephemeral one.
public struct NoiseKeyPair: Sendable {
    public let privateKey: [UInt8]
    public let publicKey: [UInt8]

    /// The key pair of a 32-byte private key; `nil` for another length.
    public init?(privateKey: [UInt8]) {
        precondition(sodiumReady, "libsodium failed to initialise")
        guard privateKey.count == 32 else { return nil }
        var publicKey = [UInt8](repeating: 0, count: 32)
        guard crypto_scalarmult_base(&publicKey, privateKey) == 0 else { return nil }
        self.privateKey = privateKey
        self.publicKey = publicKey
    }

    /// A fresh key pair from libsodium's CSPRNG.
    public static func generate() -> NoiseKeyPair {
        precondition(sodiumReady, "libsodium failed to initialise")
        var key = [UInt8](repeating: 0, count: 32)
        randombytes_buf(&key, 32)
        return NoiseKeyPair(privateKey: key)!
    }

    /// DH(self, remote). Fails on a low-order remote key (an all-zero shared secret).
    func agree(with remote: [UInt8]) throws(NoiseError) -> [UInt8] {
        var shared = [UInt8](repeating: 0, count: 32)
        guard remote.count == 32, crypto_scalarmult(&shared, privateKey, remote) == 0 else { throw .invalidPublicKey }
        return shared
    }
}

enum BLAKE2b512 {
    static let hashLength = 64
    static let blockLength = 128

    static func hash(_ parts: [UInt8]...) -> [UInt8] {
        var state = blake2b_state()
        blake2b_init(&state, hashLength)
        for part in parts { part.withUnsafeBytes { _ = blake2b_update(&state, $0.baseAddress, $0.count) } }
        var out = [UInt8](repeating: 0, count: hashLength)
        blake2b_final(&state, &out, hashLength)
        return out
    }

    /// HMAC (RFC 2104) over BLAKE2b-512, as Noise defines it (not BLAKE2b's keyed mode).
    static func hmac(key: [UInt8], _ data: [UInt8]) -> [UInt8] {
        var block = key.count > blockLength ? hash(key) : key
        block += [UInt8](repeating: 0, count: blockLength - block.count)
        return hash(block.map { $0 ^ 0x5c }, hash(block.map { $0 ^ 0x36 }, data))
    }

    /// Noise's HKDF: two or three outputs of `hashLength` bytes.
    static func hkdf(chainingKey: [UInt8], _ input: [UInt8], outputs: Int) -> [[UInt8]] {
        let temp = hmac(key: chainingKey, input)
        var result: [[UInt8]] = []
        var previous: [UInt8] = []
        for i in 1...outputs {
            previous = hmac(key: temp, previous + [UInt8(i)])
            result.append(previous)
        }
        return result
    }
}

enum ChaChaPoly {
    static let tagLength = Int(crypto_aead_chacha20poly1305_IETF_ABYTES)

    /// Noise's nonce: 4 zero bytes, then the 64-bit counter little-endian.
    static func nonce(_ n: UInt64) -> [UInt8] {
        [0, 0, 0, 0] + (0..<8).map { UInt8(truncatingIfNeeded: n >> (8 * UInt64($0))) }
    }

    static func encrypt(key: [UInt8], nonce n: UInt64, ad: [UInt8], _ plaintext: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: plaintext.count + tagLength)
        var written: UInt64 = 0
        crypto_aead_chacha20poly1305_ietf_encrypt(
            &out, &written, plaintext, UInt64(plaintext.count), ad, UInt64(ad.count), nil, nonce(n), key)
        return out
    }

    static func decrypt(key: [UInt8], nonce n: UInt64, ad: [UInt8], _ ciphertext: [UInt8]) throws(NoiseError) -> [UInt8] {
        guard ciphertext.count >= tagLength else { throw .decryptionFailed }
        var out = [UInt8](repeating: 0, count: ciphertext.count - tagLength)
        var written: UInt64 = 0
        guard crypto_aead_chacha20poly1305_ietf_decrypt(
            &out, &written, nil, ciphertext, UInt64(ciphertext.count), ad, UInt64(ad.count), nonce(n), key) == 0
        else { throw .decryptionFailed }
        return out
    }
}
