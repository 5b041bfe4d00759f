/// An entry as stored and sent: canonical body bytes, their id and the author's signature.
///
/// `id = BLAKE2b-256(body)`; `signature = Ed25519(author, id)`. Signing the 32-byte id rather
/// than the body keeps signing cost independent of body size; the id commits to every body byte.
public struct SignedEntry: Sendable, Hashable {
    /// Length of an Ed25519 signature.
    public static let signatureBytes = 64

    /// The decoded body.
    public let body: EntryBody
    /// The canonical body bytes.
    public let bodyBytes: [UInt8]
    /// BLAKE2b-256 of ``bodyBytes``.
    public let id: Hash32
    /// The author's Ed25519 signature over ``id``.
    public let signature: [UInt8]

    /// Encodes, hashes and signs `body` with `key`, whose public key must be the body's author.
    public init(signing body: EntryBody, with key: SigningKey) throws(EntryFormatError) {
        precondition(body.author == key.publicKey, "signing key does not match the entry author")
        let bytes = try body.encoded()
        self.body = body
        self.bodyBytes = bytes
        self.id = Blake2b.hash256(bytes)
        self.signature = key.sign(id.bytes)
    }

    /// The entry `unsigned` with its author's `signature` over its id (made with
    /// ``SigningKey/sign(_:)``; not checked here).
    public init(_ unsigned: UnsignedEntry, signature: [UInt8]) {
        (body, bodyBytes, id, self.signature) = (unsigned.body, unsigned.bodyBytes, unsigned.id, signature)
    }

    /// Decodes received bytes. The id is recomputed from the body; the signature is NOT checked
    /// here (see ``hasValidSignature``), so callers can decode cheaply and verify in bulk.
    public init(bodyBytes: [UInt8], signature: [UInt8]) throws(EntryFormatError) {
        guard signature.count == SignedEntry.signatureBytes else { throw .badSignatureLength(signature.count) }
        self.body = try EntryBody.decode(bodyBytes)
        self.bodyBytes = bodyBytes
        self.id = Blake2b.hash256(bodyBytes)
        self.signature = signature
    }

    /// Whether ``signature`` is the author's valid signature over ``id``.
    public var hasValidSignature: Bool {
        body.author.isValidSignature(signature, for: id.bytes)
    }

    /// The framed form used in bundles and on the wire:
    /// `u32 body length ‖ body ‖ 64-byte signature`.
    public var framed: [UInt8] {
        var w = ByteWriter(capacity: 4 + bodyBytes.count + 64)
        w.u32(UInt32(bodyBytes.count))
        w.raw(bodyBytes)
        w.raw(signature)
        return w.bytes
    }

    /// Reads one framed entry (see ``framed``) from `reader`.
    public static func readFramed(from reader: inout ByteReader) throws(EntryFormatError) -> SignedEntry {
        do {
            let length = Int(try reader.u32("entry length"))
            guard length <= EntryBody.maxBodyBytes else { throw EntryFormatError.bodyTooLarge(bytes: length) }
            let body = Array(try reader.raw(length, "entry body"))
            let signature = Array(try reader.raw(signatureBytes, "signature"))
            return try SignedEntry(bodyBytes: body, signature: signature)
        } catch let error as ByteReader.Truncated {
            throw .truncated(field: error.field)
        } catch let error as EntryFormatError {
            throw error
        } catch {
            preconditionFailure("unexpected error \(error)")
        }
    }

    // Convenience accessors.
    public var hlc: HLC { body.hlc }
    public var author: PublicKey { body.author }
    public var parents: [Hash32] { body.parents }
    public var payload: Payload { body.payload }
    public var kind: EntryKind { body.payload.kind }
}

/// An encoded, hashed body not yet signed: ids chain cheaply (a child names its parent's id),
/// so a batch can be hashed in order and signed in parallel.
public struct UnsignedEntry: Sendable {
    public let body: EntryBody
    public let bodyBytes: [UInt8]
    /// BLAKE2b-256 of ``bodyBytes``: what the author signs.
    public let id: Hash32

    /// Encodes and hashes `body`.
    ///
    /// - Throws: ``EntryFormatError`` if the body breaks a format rule.
    public init(_ body: EntryBody) throws(EntryFormatError) {
        self.body = body
        self.bodyBytes = try body.encoded()
        self.id = Blake2b.hash256(bodyBytes)
    }
}

extension SignedEntry: Comparable {
    /// The LWW order: `(hlc, author, id)`. The greatest write to a key wins.
    public static func < (a: SignedEntry, b: SignedEntry) -> Bool {
        (a.hlc, a.author, a.id) < (b.hlc, b.author, b.id)
    }
}
