/// What a writer may do: write keys, or also change the writer set.
public enum Role: UInt8, Sendable, Hashable, CustomStringConvertible {
    /// May put and delete keys and write merges.
    case writer = 0
    /// May also add and revoke writers.
    case admin = 1

    public var description: String { self == .admin ? "admin" : "writer" }
}

/// A key and the role granted to it, in a genesis or add-writer entry.
public struct WriterGrant: Sendable, Hashable {
    public let key: PublicKey
    public let role: Role
    public init(key: PublicKey, role: Role) {
        self.key = key
        self.role = role
    }
}

/// A reference to a value stored beside the entry: its BLAKE2b-256 digest and length.
///
/// The signed body carries only this reference, so the bytes can be purged later while every
/// hash and signature still verifies.
public struct ValueRef: Sendable, Hashable {
    public let digest: Hash32
    public let length: UInt32
    public init(digest: Hash32, length: UInt32) {
        self.digest = digest
        self.length = length
    }

    /// The reference for `bytes`.
    public init(of bytes: [UInt8]) {
        self.init(digest: Blake2b.hash256(bytes), length: UInt32(bytes.count))
    }
}

/// One key decided by a merge: the LWW winner among concurrent branches and the writes it beat.
public struct MergeDecision: Sendable, Hashable {
    public let bucket: String
    public let key: String
    public let winner: Hash32
    /// The losing entries, sorted ascending, never empty, never containing the winner.
    public let losers: [Hash32]
    public init(bucket: String, key: String, winner: Hash32, losers: [Hash32]) {
        self.bucket = bucket
        self.key = key
        self.winner = winner
        self.losers = losers.sorted()
    }
}

/// The kind-specific part of an entry.
public enum Payload: Sendable, Hashable {
    /// The first entry of a log: names it and grants its first writers. Its id is the log id.
    case genesis(name: String, writers: [WriterGrant])
    /// Sets `bucket/key` to the referenced value.
    case put(bucket: String, key: String, value: ValueRef)
    /// Deletes `bucket/key` (a tombstone).
    case delete(bucket: String, key: String)
    /// Joins the parents' branches, recording how each contested key was decided.
    case merge(decisions: [MergeDecision])
    /// Grants a key the right to write (admin only).
    case addWriter(WriterGrant)
    /// Revokes a key's right to write for entries with HLC ≥ `from` (admin only).
    case revokeWriter(key: PublicKey, from: HLC)

    /// The one-byte kind code in the encoding.
    public var kind: EntryKind {
        switch self {
        case .genesis: .genesis
        case .put: .put
        case .delete: .delete
        case .merge: .merge
        case .addWriter: .addWriter
        case .revokeWriter: .revokeWriter
        }
    }

    /// The `(bucket, key)` a put or delete writes; `nil` for other kinds.
    public var target: (bucket: String, key: String)? {
        switch self {
        case .put(let bucket, let key, _), .delete(let bucket, let key): (bucket, key)
        default: nil
        }
    }
}

/// The kind code of an entry (byte 1 of the encoding).
public enum EntryKind: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case genesis = 1, put = 2, delete = 3, merge = 4, addWriter = 5, revokeWriter = 6

    public var description: String {
        switch self {
        case .genesis: "genesis"
        case .put: "put"
        case .delete: "delete"
        case .merge: "merge"
        case .addWriter: "add-writer"
        case .revokeWriter: "revoke-writer"
        }
    }
}

/// The signed part of an entry, before encoding. See ARCHITECTURE.md, "Entry format".
public struct EntryBody: Sendable, Hashable {
    /// The only format version this build reads and writes.
    public static let currentVersion: UInt8 = 1
    /// Most parents an entry may name.
    public static let maxParents = 16
    /// Largest encoded body accepted.
    public static let maxBodyBytes = 1 << 20
    /// Largest value a put may reference (64 MiB).
    public static let maxValueLength: UInt32 = 64 << 20
    /// Longest bucket name, in UTF-8 bytes.
    public static let maxBucketBytes = 255
    /// Longest key, in UTF-8 bytes.
    public static let maxKeyBytes = 1024

    public let hlc: HLC
    public let author: PublicKey
    /// Parent entry ids, sorted ascending and unique.
    public let parents: [Hash32]
    public let payload: Payload

    /// A body; parents are sorted and de-duplicated here, so callers need not.
    public init(hlc: HLC, author: PublicKey, parents: [Hash32], payload: Payload) {
        self.hlc = hlc
        self.author = author
        self.parents = Array(Set(parents)).sorted()
        self.payload = payload
    }
}

/// Why bytes are not a valid canonical entry.
public enum EntryFormatError: Error, Equatable, Sendable, CustomStringConvertible {
    case truncated(field: String)
    case trailingBytes(count: Int)
    case bodyTooLarge(bytes: Int)
    case unsupportedVersion(UInt8)
    case unknownKind(UInt8)
    case invalidHLC(UInt64)
    case tooManyParents(Int)
    case parentsNotSortedUnique
    case genesisHasParents
    case missingParents
    case invalidText(field: String, reason: String)
    case valueTooLarge(UInt32)
    case unknownRole(UInt8)
    case writersNotSortedUnique
    case genesisAuthorNotAdmin
    case decisionsNotSortedUnique
    case losersInvalid
    case badSignatureLength(Int)

    public var description: String {
        switch self {
        case .truncated(let field): "truncated entry: missing \(field)"
        case .trailingBytes(let n): "\(n) unexpected bytes after the entry body"
        case .bodyTooLarge(let n): "entry body of \(n) bytes exceeds \(EntryBody.maxBodyBytes)"
        case .unsupportedVersion(let v): "unsupported entry version \(v)"
        case .unknownKind(let k): "unknown entry kind \(k)"
        case .invalidHLC(let v): "invalid HLC \(v) (must be below 2^63)"
        case .tooManyParents(let n): "\(n) parents exceed the limit of \(EntryBody.maxParents)"
        case .parentsNotSortedUnique: "parents are not sorted and unique"
        case .genesisHasParents: "a genesis entry has no parents"
        case .missingParents: "a non-genesis entry needs at least one parent"
        case .invalidText(let field, let reason): "invalid \(field): \(reason)"
        case .valueTooLarge(let n): "value length \(n) exceeds \(EntryBody.maxValueLength)"
        case .unknownRole(let r): "unknown writer role \(r)"
        case .writersNotSortedUnique: "genesis writers are not sorted and unique"
        case .genesisAuthorNotAdmin: "genesis author is not among its admins"
        case .decisionsNotSortedUnique: "merge decisions are not sorted by key and unique"
        case .losersInvalid: "merge losers must be non-empty, sorted, unique and exclude the winner"
        case .badSignatureLength(let n): "signature of \(n) bytes, expected 64"
        }
    }
}
