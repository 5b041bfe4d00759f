import CSodium

/// libsodium must be initialised once before use; `sodium_init` is thread-safe and idempotent.
let sodiumReady: Bool = sodium_init() >= 0

/// An Ed25519 public key: an author's identity.
public struct PublicKey: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Number of bytes in a public key.
    public static let byteCount = 32
    /// The key bytes, always 32 of them.
    public let bytes: [UInt8]

    /// Wraps 32 bytes; `nil` for any other length.
    public init?(bytes: [UInt8]) {
        guard bytes.count == PublicKey.byteCount else { return nil }
        self.bytes = bytes
    }

    /// Parses 64 hex digits.
    public init?(hex: String) {
        guard hex.utf8.count == 64, let bytes = Hex.decode(hex) else { return nil }
        self.bytes = bytes
    }

    /// Lower-case hex, 64 digits.
    public var hex: String { Hex.encode(bytes) }
    public var description: String { hex }

    public static func < (lhs: PublicKey, rhs: PublicKey) -> Bool {
        lhs.bytes.lexicographicallyPrecedes(rhs.bytes)
    }

    /// Whether `signature` is a valid Ed25519 signature by this key over `message`.
    public func isValidSignature(_ signature: [UInt8], for message: [UInt8]) -> Bool {
        precondition(sodiumReady, "libsodium failed to initialise")
        guard signature.count == Int(crypto_sign_BYTES) else { return false }
        return crypto_sign_verify_detached(signature, message, UInt64(message.count), bytes) == 0
    }
}

/// An Ed25519 signing key (libsodium). Its secret never leaves this type except through
/// ``seed``, which the key file stores.
public struct SigningKey: Sendable {
    /// The 32-byte seed the key pair derives from (what a key file holds).
    public let seed: [UInt8]
    /// The matching public key.
    public let publicKey: PublicKey
    private let secretKey: [UInt8]

    /// Derives the key pair from a 32-byte seed; `nil` for any other length.
    public init?(seed: [UInt8]) {
        precondition(sodiumReady, "libsodium failed to initialise")
        guard seed.count == Int(crypto_sign_SEEDBYTES) else { return nil }
        var pk = [UInt8](repeating: 0, count: Int(crypto_sign_PUBLICKEYBYTES))
        var sk = [UInt8](repeating: 0, count: Int(crypto_sign_SECRETKEYBYTES))
        guard crypto_sign_seed_keypair(&pk, &sk, seed) == 0 else { return nil }
        self.seed = seed
        self.secretKey = sk
        self.publicKey = PublicKey(bytes: pk)!
    }

    /// A new key pair from libsodium's CSPRNG.
    public static func generate() -> SigningKey {
        precondition(sodiumReady, "libsodium failed to initialise")
        var seed = [UInt8](repeating: 0, count: Int(crypto_sign_SEEDBYTES))
        randombytes_buf(&seed, seed.count)
        return SigningKey(seed: seed)!
    }

    /// The detached Ed25519 signature of `message` (64 bytes).
    public func sign(_ message: [UInt8]) -> [UInt8] {
        var signature = [UInt8](repeating: 0, count: Int(crypto_sign_BYTES))
        crypto_sign_detached(&signature, nil, message, UInt64(message.count), secretKey)
        return signature
    }
}

/// Random bytes from libsodium's CSPRNG.
public func secureRandomBytes(_ count: Int) -> [UInt8] {
    precondition(sodiumReady, "libsodium failed to initialise")
    var bytes = [UInt8](repeating: 0, count: count)
    randombytes_buf(&bytes, count)
    return bytes
}
