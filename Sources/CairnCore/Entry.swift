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

    /// Byte-exact: `bucket` and `key` compare by UTF-8 bytes, not by Swift's canonical
    /// equivalence, so precomposed and decomposed "é" are different keys (entry format §2.1).
    public static func == (a: MergeDecision, b: MergeDecision) -> Bool {
        sameBytes(a.bucket, b.bucket) && sameBytes(a.key, b.key) && a.winner == b.winner && a.losers == b.losers
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combineUTF8(bucket)
        hasher.combineUTF8(key)
        hasher.combine(winner)
        hasher.combine(losers)
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

    /// Byte-exact: text fields (log name, bucket, key) compare by UTF-8 bytes, not by Swift's
    /// canonical equivalence, so two payloads are equal only if they encode the same.
    public static func == (a: Payload, b: Payload) -> Bool {
        switch (a, b) {
        case let (.genesis(n1, w1), .genesis(n2, w2)): sameBytes(n1, n2) && w1 == w2
        case let (.put(b1, k1, v1), .put(b2, k2, v2)): sameBytes(b1, b2) && sameBytes(k1, k2) && v1 == v2
        case let (.delete(b1, k1), .delete(b2, k2)): sameBytes(b1, b2) && sameBytes(k1, k2)
        case let (.merge(d1), .merge(d2)): d1 == d2
        case let (.addWriter(g1), .addWriter(g2)): g1 == g2
        case let (.revokeWriter(k1, f1), .revokeWriter(k2, f2)): k1 == k2 && f1 == f2
        default: false
        }
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(kind.rawValue)
        switch self {
        case .genesis(let name, let writers):
            hasher.combineUTF8(name)
            hasher.combine(writers)
        case .put(let bucket, let key, let value):
            hasher.combineUTF8(bucket)
            hasher.combineUTF8(key)
            hasher.combine(value)
        case .delete(let bucket, let key):
            hasher.combineUTF8(bucket)
            hasher.combineUTF8(key)
        case .merge(let decisions):
            hasher.combine(decisions)
        case .addWriter(let grant):
            hasher.combine(grant)
        case .revokeWriter(let key, let from):
            hasher.combine(key)
            hasher.combine(from)
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

/// Whether two strings have the same UTF-8 bytes. Swift's `==` on `String` is canonical
/// equivalence (`"\u{e9}" == "e\u{301}"`); bucket names and keys are byte strings.
@inline(__always)
func sameBytes(_ a: String, _ b: String) -> Bool { a.utf8.elementsEqual(b.utf8) }

extension Hasher {
    /// Feeds a string's UTF-8 bytes (and their count), consistent with ``sameBytes(_:_:)``.
    mutating func combineUTF8(_ text: String) {
        combine(text.utf8.count)
        for byte in text.utf8 { combine(byte) }
    }
}
