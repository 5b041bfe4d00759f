import CairnCore
import Foundation
import Testing

// The entry test vectors in Fixtures/entries/vectors.json (layout: Fixtures/entries/README.md).
//
// The Swift codec is the generator: `CAIRN_REGENERATE_VECTORS=1 swift test --filter EntryVector`
// rewrites the file from `EntryVectorGenerator` below. Every run then reads the file back and
// checks it against the codec, field by field and byte by byte.

// MARK: - The file, as read

struct EntryVectorFile: Decodable, Sendable {
    let format: String
    let positive: [PositiveVector]
    let negative: [NegativeVector]
    let badSignatures: [BadSignatureVector]
}

struct HLCJSON: Decodable, Sendable {
    let raw: String
    let wallMs: UInt64
    let counter: UInt16
}

struct GrantJSON: Decodable, Sendable {
    let key: String
    let role: String
}

struct DecisionJSON: Decodable, Sendable {
    let bucket: String
    let key: String
    let winner: String
    let losers: [String]
}

/// The kind-specific fields; which ones are present depends on `kind`.
struct PayloadJSON: Decodable, Sendable {
    let name: String?
    let writers: [GrantJSON]?
    let bucket: String?
    /// The text key of a put/delete, or the hex public key of an add-writer/revoke-writer.
    let key: String?
    let valueLength: UInt32?
    let valueDigest: String?
    let decisions: [DecisionJSON]?
    let role: String?
    let from: HLCJSON?
}

struct FieldsJSON: Decodable, Sendable {
    let version: Int
    let kind: String
    let hlc: HLCJSON
    let author: String
    let parents: [String]
    let payload: PayloadJSON
}

struct ValueRepeatJSON: Decodable, Sendable {
    let byte: String
    let count: Int
}

struct PositiveVector: Decodable, Sendable {
    let name: String
    let description: String
    let signingKeySeed: String
    let publicKey: String
    let fields: FieldsJSON
    let valueHex: String?
    let valueRepeat: ValueRepeatJSON?
    let bodyHex: String
    let idHex: String
    let signatureHex: String
    let framedHex: String
}

struct ErrorJSON: Decodable, Sendable {
    let kind: String
    let field: String?
    let reason: String?
    let count: Int?
    let bytes: Int?
    let version: UInt8?
    let code: UInt8?
    let value: String?
    let length: UInt32?
}

struct NegativeVector: Decodable, Sendable {
    let name: String
    let description: String
    let bodyHex: String
    let error: ErrorJSON
}

struct BadSignatureVector: Decodable, Sendable {
    let name: String
    let description: String
    let publicKey: String
    let bodyHex: String
    let idHex: String
    let signatureHex: String
}

struct VectorFixtureError: Error, Sendable, CustomStringConvertible {
    let description: String
}

/// The vectors file, regenerated first when `CAIRN_REGENERATE_VECTORS=1`. A global, so the
/// regeneration happens once, before any test (including the Python interop test) reads it.
let entryVectors: Result<EntryVectorFile, VectorFixtureError> = {
    if ProcessInfo.processInfo.environment["CAIRN_REGENERATE_VECTORS"] == "1" {
        do {
            let text = try EntryVectorGenerator.render()
            try FileManager.default.createDirectory(
                at: entryVectorsURL.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(text.utf8).write(to: entryVectorsURL, options: .atomic)
            print("wrote \(entryVectorsURL.path)")
        } catch {
            return .failure(VectorFixtureError(description: "regenerating vectors failed: \(error)"))
        }
    }
    do {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let data = try Data(contentsOf: entryVectorsURL)
        return .success(try decoder.decode(EntryVectorFile.self, from: data))
    } catch {
        return .failure(VectorFixtureError(
            description: "cannot read \(entryVectorsURL.path): \(error) (regenerate with CAIRN_REGENERATE_VECTORS=1)"))
    }
}()

func loadEntryVectors() throws -> EntryVectorFile {
    try entryVectors.get()
}

// MARK: - JSON <-> model

/// Unwraps a fixture field, failing with its name.
func need<T>(_ value: T?, _ what: @autoclosure () -> String) throws -> T {
    guard let value else { throw VectorFixtureError(description: "vector lacks or has a malformed \(what())") }
    return value
}

extension HLCJSON {
    func hlc() throws -> HLC {
        let raw = try need(UInt64(raw), "hlc raw \(raw)")
        guard raw == wallMs << 16 | UInt64(counter) else {
            throw VectorFixtureError(description: "hlc raw \(raw) != wall_ms << 16 | counter")
        }
        return HLC(rawValue: raw)
    }
}

func roleFromJSON(_ text: String) throws -> Role {
    switch text {
    case "writer": return .writer
    case "admin": return .admin
    default: throw VectorFixtureError(description: "unknown role \(text)")
    }
}

extension FieldsJSON {
    /// The body these fields describe. `EntryBody.init` sorts parents; the checks separately
    /// require the JSON to list them in canonical order already.
    func body() throws -> EntryBody {
        guard version == Int(EntryBody.currentVersion) else { throw VectorFixtureError(description: "version \(version)") }
        let author = try need(PublicKey(hex: author), "author")
        let parents = try parents.map { try need(Hash32(hex: $0), "parent") }
        let p = payload
        func publicKey(_ hex: String?) throws -> PublicKey { try need(PublicKey(hex: try need(hex, "key")), "key") }
        let payload: Payload
        switch kind {
        case "genesis":
            let writers = try need(p.writers, "writers").map {
                WriterGrant(key: try publicKey($0.key), role: try roleFromJSON($0.role))
            }
            payload = .genesis(name: try need(p.name, "name"), writers: writers)
        case "put":
            let digest = try need(Hash32(hex: try need(p.valueDigest, "value_digest")), "value_digest")
            let ref = ValueRef(digest: digest, length: try need(p.valueLength, "value_length"))
            payload = .put(bucket: try need(p.bucket, "bucket"), key: try need(p.key, "key"), value: ref)
        case "delete":
            payload = .delete(bucket: try need(p.bucket, "bucket"), key: try need(p.key, "key"))
        case "merge":
            payload = .merge(decisions: try need(p.decisions, "decisions").map { d in
                MergeDecision(bucket: d.bucket, key: d.key, winner: try need(Hash32(hex: d.winner), "winner"),
                              losers: try d.losers.map { try need(Hash32(hex: $0), "loser") })
            })
        case "add-writer":
            payload = .addWriter(WriterGrant(key: try publicKey(p.key), role: try roleFromJSON(try need(p.role, "role"))))
        case "revoke-writer":
            payload = .revokeWriter(key: try publicKey(p.key), from: try need(p.from, "from").hlc())
        default:
            throw VectorFixtureError(description: "unknown kind \(kind)")
        }
        return EntryBody(hlc: try hlc.hlc(), author: author, parents: parents, payload: payload)
    }
}

extension ErrorJSON {
    /// The `EntryFormatError` this records.
    func expected() throws -> EntryFormatError {
        switch kind {
        case "truncated": return .truncated(field: try need(field, "field"))
        case "trailingBytes": return .trailingBytes(count: try need(count, "count"))
        case "bodyTooLarge": return .bodyTooLarge(bytes: try need(bytes, "bytes"))
        case "unsupportedVersion": return .unsupportedVersion(try need(version, "version"))
        case "unknownKind": return .unknownKind(try need(code, "code"))
        case "invalidHLC":
            return .invalidHLC(try need(UInt64(try need(value, "value")), "value"))
        case "tooManyParents": return .tooManyParents(try need(count, "count"))
        case "parentsNotSortedUnique": return .parentsNotSortedUnique
        case "genesisHasParents": return .genesisHasParents
        case "missingParents": return .missingParents
        case "invalidText": return .invalidText(field: try need(field, "field"), reason: try need(reason, "reason"))
        case "valueTooLarge": return .valueTooLarge(try need(length, "length"))
        case "unknownRole": return .unknownRole(try need(code, "code"))
        case "writersNotSortedUnique": return .writersNotSortedUnique
        case "genesisAuthorNotAdmin": return .genesisAuthorNotAdmin
        case "decisionsNotSortedUnique": return .decisionsNotSortedUnique
        case "losersInvalid": return .losersInvalid
        case "badSignatureLength": return .badSignatureLength(try need(count, "count"))
        default: throw VectorFixtureError(description: "unknown error kind \(kind)")
        }
    }
}

/// The JSON form of an HLC: the raw value as a decimal string (it exceeds 2^53, so some JSON
/// readers would round a number), plus its two parts.
func hlcJSON(_ hlc: HLC) -> JSONValue {
    .object([
        ("raw", .string(String(hlc.rawValue))),
        ("wall_ms", .int(Int64(hlc.wallMilliseconds))),
        ("counter", .int(Int64(hlc.counter))),
    ])
}

/// The human-readable fields of a body, as the vectors file lists them.
func fieldsJSON(_ body: EntryBody) -> JSONValue {
    let payload: JSONValue
    switch body.payload {
    case .genesis(let name, let writers):
        payload = .object([
            ("name", .string(name)),
            ("writers", .array(writers.map { .object([("key", .string($0.key.hex)), ("role", .string($0.role.description))]) })),
        ])
    case .put(let bucket, let key, let value):
        payload = .object([
            ("bucket", .string(bucket)), ("key", .string(key)),
            ("value_length", .int(Int64(value.length))), ("value_digest", .string(value.digest.hex)),
        ])
    case .delete(let bucket, let key):
        payload = .object([("bucket", .string(bucket)), ("key", .string(key))])
    case .merge(let decisions):
        payload = .object([
            ("decisions", .array(decisions.map { d in
                .object([
                    ("bucket", .string(d.bucket)), ("key", .string(d.key)),
                    ("winner", .string(d.winner.hex)), ("losers", .array(d.losers.map { .string($0.hex) })),
                ])
            })),
        ])
    case .addWriter(let grant):
        payload = .object([("key", .string(grant.key.hex)), ("role", .string(grant.role.description))])
    case .revokeWriter(let key, let from):
        payload = .object([("key", .string(key.hex)), ("from", hlcJSON(from))])
    }
    return .object([
        ("version", .int(Int64(EntryBody.currentVersion))),
        ("kind", .string(body.payload.kind.description)),
        ("hlc", hlcJSON(body.hlc)),
        ("author", .string(body.author.hex)),
        ("parents", .array(body.parents.map { .string($0.hex) })),
        ("payload", payload),
    ])
}

// MARK: - The generator

/// Builds every vector from fixed seeds. Deterministic: Ed25519 (RFC 8032) signatures are.
enum EntryVectorGenerator {
    static let keyA = testKey(0x01)
    static let keyB = testKey(0x02)
    static let keyC = testKey(0x03)
    /// 2025-11-21T05:20:00Z.
    static let t0: UInt64 = 1_763_702_400_000

    static func hlc(_ offsetMs: UInt64, _ counter: UInt16 = 0) -> HLC {
        HLC(wallMilliseconds: t0 + offsetMs, counter: counter)
    }

    /// Ids that name no real entry: the format does not check that parents or merge
    /// winners/losers exist, only their shape.
    static func synthetic(_ label: String) -> Hash32 {
        Blake2b.hash256(Array("cairn-vector-\(label)".utf8))
    }

    struct Positive {
        let name: String
        let description: String
        let key: SigningKey
        let body: EntryBody
        var value: [UInt8]? = nil
        var valueRepeat: (byte: UInt8, count: Int)? = nil
    }

    static func positives() throws -> [Positive] {
        var out: [Positive] = []
        func sign(_ p: Positive) throws -> SignedEntry {
            out.append(p)
            return try SignedEntry(signing: p.body, with: p.key)
        }

        let writers = [WriterGrant(key: keyA.publicKey, role: .admin), WriterGrant(key: keyB.publicKey, role: .writer)]
            .sorted { $0.key < $1.key }
        let g = try sign(Positive(
            name: "genesis-two-writers",
            description: "Genesis by key A naming the log 'cairn-vectors' and granting A admin and B writer (writers sorted by public key bytes). No parents. Its id is the log id.",
            key: keyA,
            body: EntryBody(hlc: hlc(0), author: keyA.publicKey, parents: [], payload: .genesis(name: "cairn-vectors", writers: writers))))

        let helloA = Array("Hello, Cairn!".utf8)
        let p1 = try sign(Positive(
            name: "put-small-value",
            description: "A puts notes/hello = 'Hello, Cairn!' (13 bytes). The body holds only the value's length and BLAKE2b-256 digest, never the value bytes.",
            key: keyA,
            body: EntryBody(hlc: hlc(1000), author: keyA.publicKey, parents: [g.id],
                            payload: .put(bucket: "notes", key: "hello", value: ValueRef(of: helloA))),
            value: helloA))

        let helloB = Array("Hi from B".utf8)
        let p2 = try sign(Positive(
            name: "put-concurrent-same-hlc",
            description: "B puts notes/hello concurrently with put-small-value, at the SAME HLC; the LWW order (hlc, author, id) breaks the tie by author bytes.",
            key: keyB,
            body: EntryBody(hlc: hlc(1000), author: keyB.publicKey, parents: [g.id],
                            payload: .put(bucket: "notes", key: "hello", value: ValueRef(of: helloB))),
            value: helloB))

        let p3 = try sign(Positive(
            name: "put-empty-value",
            description: "A puts notes/empty = the empty value: length 0, digest = BLAKE2b-256 of zero bytes.",
            key: keyA,
            body: EntryBody(hlc: hlc(2000), author: keyA.publicKey, parents: [p1.id],
                            payload: .put(bucket: "notes", key: "empty", value: ValueRef(of: []))),
            value: []))

        let d = try sign(Positive(
            name: "delete",
            description: "B deletes notes/empty (a tombstone), concurrently with put-empty-value. HLC counter 5.",
            key: keyB,
            body: EntryBody(hlc: hlc(2000, 5), author: keyB.publicKey, parents: [p2.id],
                            payload: .delete(bucket: "notes", key: "empty"))))

        func decision(_ bucket: String, _ key: String, _ entries: [SignedEntry]) -> MergeDecision {
            let sorted = entries.sorted()
            return MergeDecision(bucket: bucket, key: key, winner: sorted.last!.id, losers: sorted.dropLast().map(\.id))
        }
        let m = try sign(Positive(
            name: "merge-two-decisions",
            description: "A merges the two heads (put-empty-value, delete). Two decisions, sorted by (bucket bytes, key bytes): notes/empty and notes/hello; each winner is the LWW-greatest write, the loser the other.",
            key: keyA,
            body: EntryBody(hlc: hlc(3000), author: keyA.publicKey, parents: [p3.id, d.id],
                            payload: .merge(decisions: [decision("notes", "empty", [p3, d]), decision("notes", "hello", [p1, p2])]))))

        let aw = try sign(Positive(
            name: "add-writer",
            description: "A (admin) grants key C the writer role.",
            key: keyA,
            body: EntryBody(hlc: hlc(4000), author: keyA.publicKey, parents: [m.id],
                            payload: .addWriter(WriterGrant(key: keyC.publicKey, role: .writer)))))

        _ = try sign(Positive(
            name: "revoke-writer",
            description: "A (admin) revokes key B for entries with HLC >= t0+4500 ms, counter 0.",
            key: keyA,
            body: EntryBody(hlc: hlc(5000), author: keyA.publicKey, parents: [aw.id],
                            payload: .revokeWriter(key: keyB.publicKey, from: hlc(4500)))))

        _ = try sign(Positive(
            name: "delete-four-parents",
            description: "C deletes todo/1 with four parents (synthetic ids: BLAKE2b-256 of 'cairn-vector-parent-<n>'), listed in ascending byte order.",
            key: keyC,
            body: EntryBody(hlc: hlc(6000, 1), author: keyC.publicKey,
                            parents: (0..<4).map { synthetic("parent-\($0)") },
                            payload: .delete(bucket: "todo", key: "1"))))

        let creme = Array("crème".utf8)
        _ = try sign(Positive(
            name: "put-utf8-key",
            description: "B puts a non-ASCII key: bucket 'café' in NFC (U+00E9), key 'cafe\\u0301/menu\\u0308 🍰' in NFD with a '/' (allowed in keys) and an emoji. Text is raw UTF-8: never normalized.",
            key: keyB,
            body: EntryBody(hlc: hlc(7000), author: keyB.publicKey, parents: [synthetic("parent-0")],
                            payload: .put(bucket: "caf\u{E9}", key: "cafe\u{301}/menu\u{308} \u{1F370}", value: ValueRef(of: creme))),
            value: creme))

        let (w, l1, l2, l3) = (synthetic("winner"), synthetic("loser-1"), synthetic("loser-2"), synthetic("loser-3"))
        _ = try sign(Positive(
            name: "merge-byte-order",
            description: "A merge with three parents and four decisions whose order is byte order of (bucket, key) compared as a pair: (a, z) before (ab, a) although 'az' > 'aba'; key U+FF5E (ef bd 9e) before U+1F600 (f0 9f 98 80) although UTF-16 order is the reverse. The first decision has three losers. Ids are synthetic.",
            key: keyA,
            body: EntryBody(hlc: hlc(8000), author: keyA.publicKey,
                            parents: [synthetic("parent-0"), synthetic("parent-1"), synthetic("parent-2")],
                            payload: .merge(decisions: [
                                MergeDecision(bucket: "a", key: "z", winner: w, losers: [l1, l2, l3]),
                                MergeDecision(bucket: "ab", key: "a", winner: w, losers: [l1]),
                                MergeDecision(bucket: "notes", key: "\u{FF5E}", winner: l1, losers: [w]),
                                MergeDecision(bucket: "notes", key: "\u{1F600}", winner: l2, losers: [l3]),
                            ]))))

        _ = try sign(Positive(
            name: "merge-no-decisions",
            description: "A merge of two heads with no contested key: decision count 0 is valid.",
            key: keyA,
            body: EntryBody(hlc: hlc(9000), author: keyA.publicKey,
                            parents: [synthetic("parent-1"), synthetic("parent-2")], payload: .merge(decisions: []))))

        let maxValue = Int(EntryBody.maxValueLength)
        var hasher = Blake2b.Hasher()
        let chunk = [UInt8](repeating: 0, count: 1 << 20)
        for _ in 0..<(maxValue / chunk.count) { hasher.update(chunk) }
        _ = try sign(Positive(
            name: "put-max-lengths",
            description: "Upper bounds, all inclusive: a 255-byte bucket, a 1024-byte key, and a value of exactly 64 MiB (67108864 zero bytes, given as value_repeat, not as hex).",
            key: keyB,
            body: EntryBody(hlc: hlc(10000), author: keyB.publicKey, parents: [synthetic("parent-3")],
                            payload: .put(bucket: String(repeating: "b", count: 255), key: String(repeating: "k", count: 1024),
                                          value: ValueRef(digest: hasher.finalize(), length: EntryBody.maxValueLength))),
            valueRepeat: (0, maxValue)))

        _ = try sign(Positive(
            name: "delete-max-hlc-sixteen-parents",
            description: "Upper bounds: HLC 2^63 - 1 (the largest valid) and 16 parents (the most allowed; synthetic ids).",
            key: keyC,
            body: EntryBody(hlc: .maxValid, author: keyC.publicKey,
                            parents: (0..<16).map { synthetic("parent-\($0)") },
                            payload: .delete(bucket: "b", key: "k"))))
        return out
    }

    // Negative bodies are laid out by hand (the encoder refuses to produce them).
    struct Negative {
        let name: String
        let description: String
        let bytes: [UInt8]
        let error: EntryFormatError
    }

    static func text8(_ b: [UInt8]) -> [UInt8] { [UInt8(b.count)] + b }
    static func text16(_ b: [UInt8]) -> [UInt8] { [UInt8(b.count >> 8), UInt8(b.count & 0xff)] + b }
    static func u32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (24 - 8 * $0)) } }
    static func u64(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (56 - 8 * $0)) } }

    static func rawBody(version: UInt8 = 1, kind: UInt8, hlc: UInt64 = EntryVectorGenerator.hlc(1000).rawValue,
                        author: PublicKey = keyA.publicKey, parents: [Hash32], payload: [UInt8]) -> [UInt8] {
        [version, kind] + u64(hlc) + author.bytes + [UInt8(parents.count)] + parents.flatMap(\.bytes) + payload
    }

    static func rawTarget(_ bucket: [UInt8], _ key: [UInt8]) -> [UInt8] { text8(bucket) + text16(key) }

    static func rawPut(bucket: [UInt8] = Array("notes".utf8), key: [UInt8] = Array("hello".utf8),
                       length: UInt32 = 13, digest: Hash32 = Blake2b.hash256(Array("Hello, Cairn!".utf8))) -> [UInt8] {
        rawTarget(bucket, key) + u32(length) + digest.bytes
    }

    static func rawGrants(_ grants: [(PublicKey, UInt8)]) -> [UInt8] {
        [UInt8(grants.count)] + grants.flatMap { $0.0.bytes + [$0.1] }
    }

    static func rawGenesis(name: [UInt8] = Array("cairn-vectors".utf8), grants: [(PublicKey, UInt8)]) -> [UInt8] {
        text8(name) + rawGrants(grants)
    }

    static func rawDecision(_ bucket: String, _ key: String, winner: Hash32, losers: [Hash32]) -> [UInt8] {
        rawTarget(Array(bucket.utf8), Array(key.utf8)) + winner.bytes + [UInt8(losers.count)] + losers.flatMap(\.bytes)
    }

    static func rawMerge(_ decisions: [[UInt8]]) -> [UInt8] {
        [UInt8(decisions.count >> 8), UInt8(decisions.count & 0xff)] + decisions.flatMap { $0 }
    }

    static func negatives() -> [Negative] {
        let (p0, p1) = [synthetic("parent-0"), synthetic("parent-1")].sorted().pair
        let parent = [p0]
        let validPut = rawBody(kind: 2, parents: parent, payload: rawPut())
        let (kA, kB, kC) = (keyA.publicKey, keyB.publicKey, keyC.publicKey)
        let adminAWriterB = [(kA, UInt8(1)), (kB, UInt8(0))].sorted { $0.0 < $1.0 }
        let (w, l1, l2) = (synthetic("winner"), synthetic("loser-1"), synthetic("loser-2"))
        let (lo, hi) = [l1, l2].sorted().pair
        func merge(_ decisions: [[UInt8]]) -> [UInt8] { rawBody(kind: 4, parents: [p0, p1], payload: rawMerge(decisions)) }
        func putKey(_ key: [UInt8]) -> [UInt8] { rawBody(kind: 2, parents: parent, payload: rawPut(key: key)) }
        func putBucket(_ bucket: [UInt8]) -> [UInt8] { rawBody(kind: 2, parents: parent, payload: rawPut(bucket: bucket)) }
        let seventeen = (0..<17).map { synthetic("parent-\($0)") }.sorted()

        return [
            Negative(name: "empty-body", description: "Zero bytes.", bytes: [], error: .truncated(field: "version")),
            Negative(name: "truncated-last-byte", description: "A valid put without its last byte (the value digest is 31 bytes).",
                     bytes: Array(validPut.dropLast()), error: .truncated(field: "value digest")),
            Negative(name: "truncated-header", description: "Version, kind and 5 of the 8 HLC bytes.",
                     bytes: Array(validPut.prefix(7)), error: .truncated(field: "hlc")),
            Negative(name: "truncated-text", description: "A put whose key length says 5 bytes but only 3 follow (body ends there).",
                     bytes: rawBody(kind: 2, parents: parent, payload: text8(Array("notes".utf8)) + [0, 5] + Array("hel".utf8)),
                     error: .truncated(field: "key")),
            Negative(name: "trailing-byte", description: "A valid put followed by one 0x00 byte.",
                     bytes: validPut + [0], error: .trailingBytes(count: 1)),
            Negative(name: "version-2", description: "Version byte 2; the rest is a valid version-1 put.",
                     bytes: rawBody(version: 2, kind: 2, parents: parent, payload: rawPut()), error: .unsupportedVersion(2)),
            Negative(name: "version-0", description: "Version byte 0; the rest is a valid version-1 put.",
                     bytes: rawBody(version: 0, kind: 2, parents: parent, payload: rawPut()), error: .unsupportedVersion(0)),
            Negative(name: "unknown-kind-7", description: "Kind byte 7 followed by a put payload.",
                     bytes: rawBody(kind: 7, parents: parent, payload: rawPut()), error: .unknownKind(7)),
            Negative(name: "unknown-kind-0", description: "Kind byte 0 followed by a put payload.",
                     bytes: rawBody(kind: 0, parents: parent, payload: rawPut()), error: .unknownKind(0)),
            Negative(name: "hlc-2^63", description: "A put with HLC = 2^63 (the smallest invalid value).",
                     bytes: rawBody(kind: 2, hlc: 1 << 63, parents: parent, payload: rawPut()), error: .invalidHLC(1 << 63)),
            Negative(name: "hlc-max-u64", description: "A put with HLC = 2^64 - 1.",
                     bytes: rawBody(kind: 2, hlc: .max, parents: parent, payload: rawPut()), error: .invalidHLC(.max)),
            Negative(name: "revoke-from-2^63", description: "A revoke-writer whose 'from' HLC is 2^63.",
                     bytes: rawBody(kind: 6, parents: parent, payload: kB.bytes + u64(1 << 63)), error: .invalidHLC(1 << 63)),
            Negative(name: "parents-unsorted", description: "A put with two parents in descending byte order.",
                     bytes: rawBody(kind: 2, parents: [p1, p0], payload: rawPut()), error: .parentsNotSortedUnique),
            Negative(name: "parents-duplicate", description: "A put naming the same parent twice.",
                     bytes: rawBody(kind: 2, parents: [p0, p0], payload: rawPut()), error: .parentsNotSortedUnique),
            Negative(name: "parents-seventeen", description: "A put with 17 sorted, unique parents (the limit is 16).",
                     bytes: rawBody(kind: 2, parents: seventeen, payload: rawPut()), error: .tooManyParents(17)),
            Negative(name: "genesis-with-parents", description: "An otherwise valid genesis with one parent.",
                     bytes: rawBody(kind: 1, parents: parent, payload: rawGenesis(grants: adminAWriterB)), error: .genesisHasParents),
            Negative(name: "put-without-parents", description: "An otherwise valid put with parent count 0.",
                     bytes: rawBody(kind: 2, parents: [], payload: rawPut()), error: .missingParents),
            Negative(name: "merge-without-parents", description: "A merge with no decisions and parent count 0.",
                     bytes: rawBody(kind: 4, parents: [], payload: rawMerge([])), error: .missingParents),
            Negative(name: "key-empty", description: "A put whose key has length 0.",
                     bytes: putKey([]), error: .invalidText(field: "key", reason: "empty")),
            Negative(name: "bucket-empty", description: "A put whose bucket has length 0.",
                     bytes: putBucket([]), error: .invalidText(field: "bucket", reason: "empty")),
            Negative(name: "log-name-empty", description: "A genesis whose log name has length 0.",
                     bytes: rawBody(kind: 1, parents: [], payload: rawGenesis(name: [], grants: adminAWriterB)),
                     error: .invalidText(field: "log name", reason: "empty")),
            Negative(name: "bucket-with-slash", description: "A put to bucket 'a/b'.",
                     bytes: putBucket(Array("a/b".utf8)), error: .invalidText(field: "bucket", reason: "contains '/'")),
            Negative(name: "key-1025-bytes", description: "A put whose key is 1025 bytes of 'k' (the limit is 1024).",
                     bytes: putKey([UInt8](repeating: 0x6b, count: 1025)), error: .invalidText(field: "key", reason: "longer than 1024 bytes")),
            Negative(name: "key-invalid-utf8", description: "A put whose key is 'f' 0xff: 0xff never occurs in UTF-8.",
                     bytes: putKey([0x66, 0xff]), error: .invalidText(field: "key", reason: "not valid UTF-8")),
            Negative(name: "key-overlong-utf8", description: "A put whose key is c0 af, an overlong encoding of '/'.",
                     bytes: putKey([0xc0, 0xaf]), error: .invalidText(field: "key", reason: "not valid UTF-8")),
            Negative(name: "key-surrogate-utf8", description: "A put whose key is ed a0 80, the UTF-8 form of surrogate U+D800.",
                     bytes: putKey([0xed, 0xa0, 0x80]), error: .invalidText(field: "key", reason: "not valid UTF-8")),
            Negative(name: "bucket-incomplete-utf8", description: "A put whose bucket is e2 82, a 3-byte sequence cut short.",
                     bytes: putBucket([0xe2, 0x82]), error: .invalidText(field: "bucket", reason: "not valid UTF-8")),
            Negative(name: "log-name-invalid-utf8", description: "A genesis whose log name is the single byte 0x80 (a lone continuation byte).",
                     bytes: rawBody(kind: 1, parents: [], payload: rawGenesis(name: [0x80], grants: adminAWriterB)),
                     error: .invalidText(field: "log name", reason: "not valid UTF-8")),
            Negative(name: "value-too-large", description: "A put whose value length is 64 MiB + 1 = 67108865.",
                     bytes: rawBody(kind: 2, parents: parent, payload: rawPut(length: EntryBody.maxValueLength + 1)),
                     error: .valueTooLarge(EntryBody.maxValueLength + 1)),
            Negative(name: "unknown-role", description: "An add-writer granting role 2.",
                     bytes: rawBody(kind: 5, parents: parent, payload: kC.bytes + [2]), error: .unknownRole(2)),
            Negative(name: "genesis-unknown-role", description: "A genesis granting B role 255.",
                     bytes: rawBody(kind: 1, parents: [], payload: rawGenesis(grants: [(kA, UInt8(1)), (kB, UInt8(255))].sorted { $0.0 < $1.0 })),
                     error: .unknownRole(255)),
            Negative(name: "genesis-author-not-admin", description: "A genesis by A granting A only the writer role (B is admin).",
                     bytes: rawBody(kind: 1, parents: [], payload: rawGenesis(grants: [(kA, UInt8(0)), (kB, UInt8(1))].sorted { $0.0 < $1.0 })),
                     error: .genesisAuthorNotAdmin),
            Negative(name: "genesis-author-not-listed", description: "A genesis by C granting admin to A and B but nothing to its author C.",
                     bytes: rawBody(kind: 1, author: kC, parents: [], payload: rawGenesis(grants: [(kA, UInt8(1)), (kB, UInt8(1))].sorted { $0.0 < $1.0 })),
                     error: .genesisAuthorNotAdmin),
            Negative(name: "genesis-no-writers", description: "A genesis with writer count 0.",
                     bytes: rawBody(kind: 1, parents: [], payload: rawGenesis(grants: [])), error: .writersNotSortedUnique),
            Negative(name: "genesis-writers-unsorted", description: "A genesis listing its two writers in descending key order.",
                     bytes: rawBody(kind: 1, parents: [], payload: rawGenesis(grants: adminAWriterB.reversed())), error: .writersNotSortedUnique),
            Negative(name: "genesis-writer-duplicate", description: "A genesis listing key A twice (admin and writer).",
                     bytes: rawBody(kind: 1, parents: [], payload: rawGenesis(grants: [(kA, 1), (kA, 0)])), error: .writersNotSortedUnique),
            Negative(name: "merge-loser-is-winner", description: "A merge decision whose losers include its winner.",
                     bytes: merge([rawDecision("notes", "hello", winner: w, losers: [w, l1].sorted())]), error: .losersInvalid),
            Negative(name: "merge-no-losers", description: "A merge decision with loser count 0.",
                     bytes: merge([rawDecision("notes", "hello", winner: w, losers: [])]), error: .losersInvalid),
            Negative(name: "merge-losers-unsorted", description: "A merge decision with two losers in descending order.",
                     bytes: merge([rawDecision("notes", "hello", winner: w, losers: [hi, lo])]), error: .losersInvalid),
            Negative(name: "merge-losers-duplicate", description: "A merge decision naming the same loser twice.",
                     bytes: merge([rawDecision("notes", "hello", winner: w, losers: [l1, l1])]), error: .losersInvalid),
            Negative(name: "merge-decisions-unsorted", description: "Decisions notes/b then notes/a.",
                     bytes: merge([rawDecision("notes", "b", winner: w, losers: [l1]), rawDecision("notes", "a", winner: w, losers: [l1])]),
                     error: .decisionsNotSortedUnique),
            Negative(name: "merge-decisions-duplicate", description: "Two decisions for notes/a.",
                     bytes: merge([rawDecision("notes", "a", winner: w, losers: [l1]), rawDecision("notes", "a", winner: l2, losers: [l1])]),
                     error: .decisionsNotSortedUnique),
            Negative(name: "merge-decisions-concatenated-order", description: "Decisions (ab, a) then (a, z): sorted as concatenated strings ('aba' < 'az') but not as (bucket, key) pairs.",
                     bytes: merge([rawDecision("ab", "a", winner: w, losers: [l1]), rawDecision("a", "z", winner: w, losers: [l1])]),
                     error: .decisionsNotSortedUnique),
            Negative(name: "merge-decisions-utf16-order", description: "Keys U+1F600 then U+FF5E: ascending in UTF-16 code units, descending in UTF-8 bytes.",
                     bytes: merge([rawDecision("notes", "\u{1F600}", winner: w, losers: [l1]), rawDecision("notes", "\u{FF5E}", winner: w, losers: [l1])]),
                     error: .decisionsNotSortedUnique),
        ]
    }

    struct BadSignature {
        let name: String
        let description: String
        let entry: SignedEntry
        let signature: [UInt8]
    }

    static func badSignatures(_ positives: [Positive]) throws -> [BadSignature] {
        guard let base = positives.first(where: { $0.name == "put-small-value" }) else {
            throw VectorFixtureError(description: "no put-small-value vector")
        }
        let entry = try SignedEntry(signing: base.body, with: base.key)
        var flipped0 = entry.signature
        flipped0[0] ^= 0x01
        var flipped40 = entry.signature
        flipped40[40] ^= 0x80
        let other = try SignedEntry(signing: EntryBody(hlc: base.body.hlc.successor, author: base.body.author,
                                                       parents: base.body.parents, payload: base.body.payload), with: base.key)
        return [
            BadSignature(name: "signature-flipped-byte-0", description: "put-small-value with bit 0 of signature byte 0 flipped (in R).",
                         entry: entry, signature: flipped0),
            BadSignature(name: "signature-flipped-byte-40", description: "put-small-value with bit 7 of signature byte 40 flipped (in S).",
                         entry: entry, signature: flipped40),
            BadSignature(name: "signature-by-other-key", description: "put-small-value (author A) signed by key B.",
                         entry: entry, signature: keyB.sign(entry.id.bytes)),
            BadSignature(name: "signature-over-body", description: "put-small-value signed by A over the body bytes instead of the 32-byte id.",
                         entry: entry, signature: keyA.sign(entry.bodyBytes)),
            BadSignature(name: "signature-of-other-entry", description: "A body with HLC one above put-small-value's, carrying put-small-value's signature.",
                         entry: other, signature: entry.signature),
        ]
    }

    /// The whole vectors file.
    static func render() throws -> String {
        let positives = try positives()
        let positiveJSON: [JSONValue] = try positives.map { p in
            let e = try SignedEntry(signing: p.body, with: p.key)
            var fields: [(String, JSONValue)] = [
                ("name", .string(p.name)),
                ("description", .string(p.description)),
                ("signing_key_seed", .string(Hex.encode(p.key.seed))),
                ("public_key", .string(p.key.publicKey.hex)),
                ("fields", fieldsJSON(p.body)),
            ]
            if let value = p.value { fields.append(("value_hex", .string(Hex.encode(value)))) }
            if let r = p.valueRepeat {
                fields.append(("value_repeat", .object([("byte", .string(Hex.encode([r.byte]))), ("count", .int(Int64(r.count)))])))
            }
            fields += [
                ("body_hex", .string(Hex.encode(e.bodyBytes))),
                ("id_hex", .string(e.id.hex)),
                ("signature_hex", .string(Hex.encode(e.signature))),
                ("framed_hex", .string(Hex.encode(e.framed))),
            ]
            return .object(fields)
        }
        var problems: [String] = []
        let negativeJSON: [JSONValue] = negatives().map { n in
            let actual = decodeError(n.bytes)
            if actual != n.error { problems.append("\(n.name): expected \(n.error), decoder says \(actual.map { "\($0)" } ?? "valid")") }
            return .object([
                ("name", .string(n.name)),
                ("description", .string(n.description)),
                ("body_hex", .string(Hex.encode(n.bytes))),
                ("error", errorJSON(n.error)),
            ])
        }
        let badJSON: [JSONValue] = try badSignatures(positives).map { b in
            .object([
                ("name", .string(b.name)),
                ("description", .string(b.description)),
                ("public_key", .string(b.entry.author.hex)),
                ("body_hex", .string(Hex.encode(b.entry.bodyBytes))),
                ("id_hex", .string(b.entry.id.hex)),
                ("signature_hex", .string(Hex.encode(b.signature))),
            ])
        }
        guard problems.isEmpty else { throw VectorFixtureError(description: problems.joined(separator: "\n")) }
        let file = JSONValue.object([
            ("format", .string("cairn-entry-v1")),
            ("spec", .string("docs/entry-format.md")),
            ("generator", .string("Tests/CairnCoreTests/EntryVectorTests.swift (CAIRN_REGENERATE_VECTORS=1)")),
            ("positive", .array(positiveJSON)),
            ("negative", .array(negativeJSON)),
            ("bad_signatures", .array(badJSON)),
        ])
        return file.rendered()
    }
}

private extension Array {
    var pair: (Element, Element) { (self[0], self[1]) }
}

// MARK: - The checks

@Suite struct EntryVectorTests {
    @Test func fileMatchesGenerator() throws {
        let onDisk = Array(try Data(contentsOf: entryVectorsURL))
        let generated = Array(try EntryVectorGenerator.render().utf8)
        guard onDisk != generated else { return }
        let (diskLines, genLines) = (onDisk.split(separator: 10, omittingEmptySubsequences: false),
                                     generated.split(separator: 10, omittingEmptySubsequences: false))
        let line = zip(diskLines, genLines).enumerated().first { $0.element.0 != $0.element.1 }?.offset
            ?? min(diskLines.count, genLines.count)
        func text(_ lines: [ArraySlice<UInt8>]) -> String {
            line < lines.count ? String(decoding: lines[line], as: UTF8.self) : "(end of file)"
        }
        Issue.record("""
            Fixtures/entries/vectors.json differs from the generator at line \(line + 1):
              file:      \(text(diskLines))
              generator: \(text(genLines))
            If the change is intended, regenerate with CAIRN_REGENERATE_VECTORS=1.
            """)
    }

    @Test func positiveVectorsEncodeExactly() throws {
        let file = try loadEntryVectors()
        #expect(file.format == "cairn-entry-v1")
        for v in file.positive {
            let key = try #require(SigningKey(seed: bytes(hex: v.signingKeySeed)), "\(v.name)")
            #expect(key.publicKey.hex == v.publicKey, "\(v.name): public key")
            #expect(v.fields.author == v.publicKey, "\(v.name): author is the signer")
            let body = try v.fields.body()
            // The JSON must list parents (and losers) in canonical order already.
            #expect(body.parents.map(\.hex) == v.fields.parents, "\(v.name): parents not in canonical order")
            if case .merge(let decisions) = body.payload {
                #expect(decisions.map { $0.losers.map(\.hex) } == v.fields.payload.decisions?.map(\.losers), "\(v.name): losers order")
            }
            let entry = try SignedEntry(signing: body, with: key)
            #expect(Hex.encode(entry.bodyBytes) == v.bodyHex, "\(v.name): body")
            #expect(entry.id.hex == v.idHex, "\(v.name): id")
            #expect(Blake2b.hash256(entry.bodyBytes).hex == v.idHex, "\(v.name): id = BLAKE2b-256(body)")
            #expect(Hex.encode(entry.signature) == v.signatureHex, "\(v.name): signature")
            #expect(Hex.encode(entry.framed) == v.framedHex, "\(v.name): framed")
            if case .put(_, _, let ref) = body.payload {
                let value: ValueRef
                if let hex = v.valueHex {
                    value = ValueRef(of: bytes(hex: hex))
                } else {
                    let r = try #require(v.valueRepeat, "\(v.name): a put needs value_hex or value_repeat")
                    var hasher = Blake2b.Hasher()
                    let chunk = [UInt8](repeating: bytes(hex: r.byte)[0], count: 1 << 20)
                    var left = r.count
                    while left > 0 {
                        let n = Swift.min(left, chunk.count)
                        hasher.update(Array(chunk.prefix(n)))
                        left -= n
                    }
                    value = ValueRef(digest: hasher.finalize(), length: UInt32(r.count))
                }
                #expect(value == ref, "\(v.name): value reference")
            } else {
                #expect(v.valueHex == nil && v.valueRepeat == nil, "\(v.name): value given for a non-put")
            }
        }
    }

    @Test func positiveVectorsDecodeAndRoundTrip() throws {
        let file = try loadEntryVectors()
        for v in file.positive {
            let body = bytes(hex: v.bodyHex)
            let entry = try SignedEntry(bodyBytes: body, signature: bytes(hex: v.signatureHex))
            #expect(entry.id.hex == v.idHex, "\(v.name): id")
            #expect(entry.hasValidSignature, "\(v.name): signature verifies")
            #expect(try entry.body.encoded() == body, "\(v.name): re-encoding")
            // Compare fields as rendered UTF-8 bytes: String == is Unicode-canonical and would
            // call an NFC and an NFD key equal.
            let decodedFields = fieldsJSON(entry.body).rendered()
            let jsonFields = fieldsJSON(try v.fields.body()).rendered()
            let same = Array(decodedFields.utf8) == Array(jsonFields.utf8)
            #expect(same, "\(v.name): decoded fields\n\(decodedFields)differ from the JSON's\n\(jsonFields)")
            #expect(entry.parents.map(\.hex) == v.fields.parents, "\(v.name): parents")
            var reader = ByteReader(bytes(hex: v.framedHex))
            let framed = try SignedEntry.readFramed(from: &reader)
            #expect(reader.isAtEnd && framed == entry, "\(v.name): framed form")
        }
    }

    @Test func negativeVectorsAreRejected() throws {
        let file = try loadEntryVectors()
        for v in file.negative {
            let expected = try v.error.expected()
            let body = bytes(hex: v.bodyHex)
            #expect(decodeError(body) == expected, "\(v.name)")
            #expect(throws: expected, "\(v.name) as a signed entry") {
                _ = try SignedEntry(bodyBytes: body, signature: [UInt8](repeating: 0, count: 64))
            }
        }
    }

    @Test func badSignatureVectorsFailVerification() throws {
        let file = try loadEntryVectors()
        #expect(!file.badSignatures.isEmpty)
        for v in file.badSignatures {
            let entry = try SignedEntry(bodyBytes: bytes(hex: v.bodyHex), signature: bytes(hex: v.signatureHex))
            #expect(entry.author.hex == v.publicKey, "\(v.name)")
            #expect(entry.id.hex == v.idHex, "\(v.name)")
            #expect(!entry.hasValidSignature, "\(v.name) must not verify")
        }
    }

    @Test func vectorsCoverEveryKindAndRule() throws {
        let file = try loadEntryVectors()
        #expect(Set(file.positive.map(\.fields.kind)) == Set(EntryKind.allCases.map(\.description)))
        #expect(Set(file.positive.map(\.name)).count == file.positive.count, "names are unique")
        #expect(Set(file.negative.map(\.name)).count == file.negative.count, "names are unique")
        let required = [
            "parents-unsorted", "parents-duplicate", "parents-seventeen", "trailing-byte", "truncated-last-byte",
            "unknown-kind-7", "version-2", "hlc-2^63", "key-empty", "bucket-with-slash", "key-invalid-utf8",
            "genesis-with-parents", "put-without-parents", "merge-loser-is-winner", "value-too-large",
            "unknown-role", "genesis-author-not-admin",
        ]
        let names = Set(file.negative.map(\.name))
        for name in required { #expect(names.contains(name), "missing negative vector \(name)") }
        // Every error that body bytes can cause appears (bodyTooLarge needs > 1 MiB, so it is
        // covered by EntryCodecTests instead; badSignatureLength is not about body bytes).
        let kinds = Set(file.negative.map(\.error.kind))
        for kind in allErrorKinds where kind != "bodyTooLarge" && kind != "badSignatureLength" {
            #expect(kinds.contains(kind), "no negative vector for \(kind)")
        }
    }
}
