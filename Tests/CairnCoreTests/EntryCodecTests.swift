import CairnTestSupport
import CairnCore
import Foundation
import Testing

// Codec tests that do not depend on the vectors file: random round trips, every error from
// bytes, the encoder's own checks, size limits, and a mutation fuzz loop.

/// Random valid entry bodies for property tests.
struct RandomBodies {
    var rng: SplitMix64

    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &rng) }
    mutating func chance(_ percent: Int) -> Bool { int(0...99) < percent }
    mutating func hash() -> Hash32 { Hash32(bytes: rng.bytes(32))! }
    mutating func key() -> PublicKey { PublicKey(bytes: rng.bytes(32))! }

    mutating func hlc() -> HLC {
        switch int(0...9) {
        case 0: .zero
        case 1: .maxValid
        case 2: HLC(rawValue: HLC.maxValid.rawValue - UInt64(int(0...100)))
        default: HLC(rawValue: UInt64.random(in: 0...HLC.maxValid.rawValue, using: &rng))
        }
    }

    /// Non-empty text of at most `maxBytes` UTF-8 bytes, mixing 1- to 4-byte scalars and
    /// combining marks; `/` only when `allowSlash`.
    mutating func text(maxBytes: Int, allowSlash: Bool) -> String {
        let target = chance(5) ? maxBytes : int(1...min(maxBytes, 24))
        var scalars = String.UnicodeScalarView()
        var length = 0
        while length < target {
            let scalar: Unicode.Scalar
            switch int(0...9) {
            case 0...4: scalar = Unicode.Scalar(UInt8(int(0x00...0x7f)))
            case 5: scalar = Unicode.Scalar(UInt32(int(0x80...0x7ff)))!
            case 6: scalar = Unicode.Scalar(UInt32(int(0x300...0x36f)))!  // combining marks
            case 7: scalar = Unicode.Scalar(UInt32(int(0xe000...0xfffd)))!
            case 8: scalar = Unicode.Scalar(UInt32(int(0x800...0xd7ff)))!
            default: scalar = Unicode.Scalar(UInt32(int(0x10000...0x10ffff)))!
            }
            if !allowSlash && scalar == "/" { continue }
            let width = String(scalar).utf8.count
            if length + width > target { if length == 0 { continue } else { break } }
            scalars.append(scalar)
            length += width
        }
        return String(scalars)
    }

    mutating func bucket() -> String { text(maxBytes: EntryBody.maxBucketBytes, allowSlash: false) }
    mutating func textKey() -> String { text(maxBytes: EntryBody.maxKeyBytes, allowSlash: true) }

    mutating func body() -> EntryBody {
        let author = key()
        let parents = (0..<int(1...EntryBody.maxParents)).map { _ in hash() }
        let payload: Payload
        switch int(1...6) {
        case 1:
            var writers = [WriterGrant(key: author, role: .admin)]
            for _ in 0..<int(0...5) { writers.append(WriterGrant(key: key(), role: chance(50) ? .admin : .writer)) }
            writers.sort { $0.key < $1.key }
            return EntryBody(hlc: hlc(), author: author, parents: [],
                             payload: .genesis(name: text(maxBytes: 255, allowSlash: true), writers: writers))
        case 2:
            let length = chance(10) ? EntryBody.maxValueLength : UInt32(int(0...Int(EntryBody.maxValueLength)))
            payload = .put(bucket: bucket(), key: textKey(), value: ValueRef(digest: hash(), length: length))
        case 3:
            payload = .delete(bucket: bucket(), key: textKey())
        case 4:
            var decisions: [MergeDecision] = []
            var seen = Set<[UInt8]>()
            for _ in 0..<int(0...6) {
                let (b, k) = (bucket(), textKey())
                guard seen.insert(Array(b.utf8) + [0xff] + Array(k.utf8)).inserted else { continue }
                let winner = hash()
                decisions.append(MergeDecision(bucket: b, key: k, winner: winner, losers: (0..<int(1...4)).map { _ in hash() }))
            }
            decisions.sort {
                let (a, b) = ((Array($0.bucket.utf8), Array($0.key.utf8)), (Array($1.bucket.utf8), Array($1.key.utf8)))
                return a.0 != b.0 ? a.0.lexicographicallyPrecedes(b.0) : a.1.lexicographicallyPrecedes(b.1)
            }
            payload = .merge(decisions: decisions)
        case 5:
            payload = .addWriter(WriterGrant(key: key(), role: chance(50) ? .admin : .writer))
        default:
            payload = .revokeWriter(key: key(), from: hlc())
        }
        return EntryBody(hlc: hlc(), author: author, parents: parents, payload: payload)
    }
}

/// Canonical fields, as UTF-8 bytes (String == would equate NFC and NFD text).
func fieldBytes(_ body: EntryBody) -> [UInt8] { Array(fieldsJSON(body).rendered().utf8) }

@Suite struct EntryCodecTests {
    static let keyA = testKey(0x01)
    static let parent = Blake2b.hash256(Array("parent".utf8))

    static func put(_ bucket: String = "notes", _ key: String = "hello", length: UInt32 = 5,
                    hlc: HLC = HLC(wallMilliseconds: 1_000, counter: 0), parents: [Hash32] = [parent]) -> EntryBody {
        EntryBody(hlc: hlc, author: keyA.publicKey, parents: parents,
                  payload: .put(bucket: bucket, key: key, value: ValueRef(digest: parent, length: length)))
    }

    static func expectEncodeError(_ body: EntryBody, _ expected: EntryFormatError, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(throws: expected, sourceLocation: sourceLocation) { _ = try body.encoded() }
    }

    // MARK: Round trips

    @Test func randomBodiesRoundTrip() throws {
        let seed = randomizedTestSeed("randomBodiesRoundTrip")
        var random = RandomBodies(rng: SplitMix64(seed: seed))
        var kinds = Set<EntryKind>()
        for i in 0..<600 {
            let body = random.body()
            kinds.insert(body.payload.kind)
            let bytes = try body.encoded()
            let decoded = try EntryBody.decode(bytes)
            #expect(fieldBytes(decoded) == fieldBytes(body), "seed \(seed), body \(i)")
            #expect(try decoded.encoded() == bytes, "seed \(seed), body \(i)")
            if i % 20 == 0 {
                // Sign and verify through the framed form now and then (signing is the slow part).
                let key = SigningKey(seed: random.rng.bytes(32))!
                let own = EntryBody(hlc: body.hlc, author: key.publicKey, parents: body.parents, payload: body.payload)
                if case .genesis = own.payload { continue }  // the genesis author must be in its writer list
                let entry = try SignedEntry(signing: own, with: key)
                var reader = ByteReader(entry.framed)
                let back = try SignedEntry.readFramed(from: &reader)
                #expect(back == entry && back.hasValidSignature && reader.isAtEnd, "seed \(seed), body \(i)")
            }
        }
        #expect(kinds.count == EntryKind.allCases.count)
    }

    @Test func textIsNeverNormalized() throws {
        let nfc = Self.put("notes", "caf\u{E9}")
        let nfd = Self.put("notes", "cafe\u{301}")
        let (a, b) = (try nfc.encoded(), try nfd.encoded())
        #expect(a != b)
        #expect(Blake2b.hash256(a) != Blake2b.hash256(b))
        #expect(try EntryBody.decode(b).encoded() == b)
        if case .put(_, let key, _) = try EntryBody.decode(b).payload {
            #expect(Array(key.utf8) == [0x63, 0x61, 0x66, 0x65, 0xcc, 0x81])
        }
        // NUL and a byte-order mark are ordinary scalars.
        let odd = Self.put("\u{FEFF}b", "k\u{0}")
        #expect(try EntryBody.decode(try odd.encoded()).encoded() == (try odd.encoded()))
    }

    /// Equality and hashing of payloads and merge decisions compare text by bytes, not by
    /// Swift's canonical equivalence (`"\u{e9}" == "e\u{301}"` holds for `String`).
    @Test func payloadAndDecisionEqualityIsByteExact() throws {
        let ref = ValueRef(of: [1])
        let pairs: [(String, String)] = [("\u{e9}", "e\u{301}"), ("caf\u{E9}", "cafe\u{301}"), ("\u{212B}", "\u{C5}")]
        for (x, y) in pairs {
            #expect(x == y, "the premise: Swift calls them equal")
            #expect(Payload.put(bucket: "b", key: x, value: ref) != .put(bucket: "b", key: y, value: ref))
            #expect(Payload.put(bucket: x, key: "k", value: ref) != .put(bucket: y, key: "k", value: ref))
            #expect(Payload.delete(bucket: "b", key: x) != .delete(bucket: "b", key: y))
            #expect(Payload.genesis(name: x, writers: []) != .genesis(name: y, writers: []))
            #expect(Set([Payload.delete(bucket: x, key: x), .delete(bucket: y, key: y)]).count == 2)
            let winner = Hash32(bytes: [UInt8](repeating: 1, count: 32))!, loser = Hash32(bytes: [UInt8](repeating: 2, count: 32))!
            let (dx, dy) = (MergeDecision(bucket: "b", key: x, winner: winner, losers: [loser]),
                            MergeDecision(bucket: "b", key: y, winner: winner, losers: [loser]))
            #expect(dx != dy && Set([dx, dy]).count == 2)
            #expect(Payload.merge(decisions: [dx]) != .merge(decisions: [dy]))
            #expect(Self.put("b", x) != Self.put("b", y), "bodies differ too")
        }
        #expect(Payload.put(bucket: "b", key: "\u{e9}", value: ref) == .put(bucket: "b", key: "\u{e9}", value: ref))
        #expect(Payload.delete(bucket: "b", key: "a\0x") != .delete(bucket: "b", key: "a\0y"))
    }

    @Test func lwwOrderIsHLCThenAuthorThenID() throws {
        let (a, b) = (testKey(0x01), testKey(0x02))
        func entry(_ key: SigningKey, _ hlc: UInt64, _ k: String = "x") throws -> SignedEntry {
            try SignedEntry(signing: EntryBody(hlc: HLC(rawValue: hlc), author: key.publicKey, parents: [Self.parent],
                                               payload: .delete(bucket: "b", key: k)), with: key)
        }
        let (low, high) = a.publicKey < b.publicKey ? (a, b) : (b, a)
        #expect(try entry(high, 1) < entry(low, 2), "HLC first")
        #expect(try entry(low, 2) < entry(high, 2), "then author bytes")
        let (e1, e2) = (try entry(low, 3, "k1"), try entry(low, 3, "k2"))
        #expect((e1 < e2) == (e1.id < e2.id), "then id bytes")
        #expect(e1 != e2 && ((e1 < e2) != (e2 < e1)))
    }

    // MARK: Errors

    /// Every `EntryFormatError` case can be produced from bytes (body bytes, a frame or a
    /// signature), each from a body that is valid but for one defect made by byte surgery.
    @Test func everyErrorIsReachableFromBytes() throws {
        let put = try Self.put().encoded()  // parents at 43..<75, bucket at 75
        let parentCount = 42
        func patched(_ bytes: [UInt8], _ edits: [Int: UInt8]) -> [UInt8] {
            var b = bytes
            for (offset, value) in edits { b[offset] = value }
            return b
        }
        let twoParents = try Self.put(parents: [Hash32(bytes: [UInt8](repeating: 1, count: 32))!, Hash32(bytes: [UInt8](repeating: 2, count: 32))!]).encoded()
        let bucketOffset = 43 + 32
        let keyOffset = bucketOffset + 1 + 5
        let valueLengthOffset = keyOffset + 2 + 5
        let genesisKey = Self.keyA.publicKey
        let other = testKey(0x02).publicKey
        let genesis = try EntryBody(hlc: .zero, author: genesisKey, parents: [],
                                    payload: .genesis(name: "g", writers: [WriterGrant(key: genesisKey, role: .admin)])).encoded()
        let genesisRole = genesis.count - 1
        let addWriter = try EntryBody(hlc: .zero, author: genesisKey, parents: [Self.parent],
                                      payload: .addWriter(WriterGrant(key: other, role: .writer))).encoded()
        let revoke = try EntryBody(hlc: .zero, author: genesisKey, parents: [Self.parent],
                                   payload: .revokeWriter(key: other, from: .zero)).encoded()
        let (w, l) = (Hash32(bytes: [UInt8](repeating: 5, count: 32))!, Hash32(bytes: [UInt8](repeating: 6, count: 32))!)
        let merge = try EntryBody(hlc: .zero, author: genesisKey, parents: [Self.parent], payload: .merge(decisions: [
            MergeDecision(bucket: "b", key: "a", winner: w, losers: [l]),
            MergeDecision(bucket: "b", key: "b", winner: w, losers: [l]),
        ])).encoded()
        let firstDecision = 43 + 32 + 2
        let secondKeyByte = firstDecision + (2 + 3 + 32 + 1 + 32) + 2 + 3 - 1  // last byte of the 2nd key
        let firstWinner = firstDecision + 2 + 3

        let cases: [(String, [UInt8], EntryFormatError)] = [
            ("empty", [], .truncated(field: "version")),
            ("cut", Array(put.dropLast(3)), .truncated(field: "value digest")),
            ("trailing", put + [1, 2], .trailingBytes(count: 2)),
            ("huge", put + [UInt8](repeating: 0, count: EntryBody.maxBodyBytes), .bodyTooLarge(bytes: put.count + EntryBody.maxBodyBytes)),
            ("version", patched(put, [0: 9]), .unsupportedVersion(9)),
            ("kind", patched(put, [1: 0xff]), .unknownKind(0xff)),
            ("hlc", patched(put, [2: 0x80]), .invalidHLC(0x8000_0000_0000_0000 | HLC(wallMilliseconds: 1_000, counter: 0).rawValue)),
            ("parents>16", patched(put, [parentCount: 17]), .tooManyParents(17)),
            ("parents order", Array(twoParents[..<43]) + Array(twoParents[75..<107]) + Array(twoParents[43..<75]) + Array(twoParents[107...]),
             .parentsNotSortedUnique),
            ("genesis parents", Array(genesis[..<42]) + [1] + Self.parent.bytes + Array(genesis[43...]), .genesisHasParents),
            ("no parents", Array(put[..<42]) + [0] + Array(put[75...]), .missingParents),
            ("bucket slash", patched(put, [bucketOffset + 2: UInt8(ascii: "/")]), .invalidText(field: "bucket", reason: "contains '/'")),
            ("bucket utf8", patched(put, [bucketOffset + 1: 0xfe]), .invalidText(field: "bucket", reason: "not valid UTF-8")),
            ("key empty", Array(put[..<keyOffset]) + [0, 0] + Array(put[valueLengthOffset...]), .invalidText(field: "key", reason: "empty")),
            ("key long", Array(put[..<keyOffset]) + [0x04, 0x01] + [UInt8](repeating: 0x61, count: 1025) + Array(put[valueLengthOffset...]),
             .invalidText(field: "key", reason: "longer than 1024 bytes")),
            ("value", patched(put, [valueLengthOffset: 0x04, valueLengthOffset + 3: 1]), .valueTooLarge(EntryBody.maxValueLength + 1)),
            ("role", patched(genesis, [genesisRole: 7]), .unknownRole(7)),
            ("admin", patched(genesis, [genesisRole: 0]), .genesisAuthorNotAdmin),
            ("add-writer role", patched(addWriter, [addWriter.count - 1: 2]), .unknownRole(2)),
            ("writers", patched(genesis, [genesisRole - 33: 0]), .writersNotSortedUnique),  // writer count 0, trailing grant
            ("decisions", patched(merge, [secondKeyByte: UInt8(ascii: "a")]), .decisionsNotSortedUnique),
            ("losers", patched(merge, [firstWinner + 32: 0]), .losersInvalid),  // loser count 0
            ("revoke", patched(revoke, [revoke.count - 8: 0xff]), .invalidHLC(0xff00_0000_0000_0000)),
        ]
        // "writers": a zero count leaves the grant as trailing bytes, but the writer rule is
        // checked first (the payload is complete once its declared fields are read).
        var reached = Set<String>()
        for (name, bytes, expected) in cases {
            #expect(decodeError(bytes) == expected, "\(name)")
            reached.insert(errorKind(expected))
        }

        // Through the framed form and the signature.
        var frame = ByteWriter()
        frame.u32(UInt32(EntryBody.maxBodyBytes + 1))
        var reader = ByteReader(frame.bytes + [0, 0])
        #expect(throws: EntryFormatError.bodyTooLarge(bytes: EntryBody.maxBodyBytes + 1)) { _ = try SignedEntry.readFramed(from: &reader) }
        var short = ByteWriter()
        short.u32(UInt32(put.count))
        short.raw(put)
        short.raw([UInt8](repeating: 0, count: 63))
        reader = ByteReader(short.bytes)
        #expect(throws: EntryFormatError.truncated(field: "signature")) { _ = try SignedEntry.readFramed(from: &reader) }
        #expect(throws: EntryFormatError.badSignatureLength(63)) {
            _ = try SignedEntry(bodyBytes: put, signature: [UInt8](repeating: 0, count: 63))
        }
        reached.insert("badSignatureLength")
        #expect(reached == Set(allErrorKinds), "unreached: \(Set(allErrorKinds).subtracting(reached).sorted())")
    }

    @Test func encoderEnforcesEveryRule() throws {
        let (a, b) = (Self.keyA.publicKey, testKey(0x02).publicKey)
        let sortedAB = [WriterGrant(key: a, role: .admin), WriterGrant(key: b, role: .writer)].sorted { $0.key < $1.key }
        let (w, l1, l2) = (Blake2b.hash256([1]), Blake2b.hash256([2]), Blake2b.hash256([3]))
        func body(_ payload: Payload, parents: [Hash32] = [Self.parent], hlc: HLC = .zero) -> EntryBody {
            EntryBody(hlc: hlc, author: a, parents: parents, payload: payload)
        }
        func merge(_ decisions: [MergeDecision]) -> EntryBody { body(.merge(decisions: decisions)) }

        Self.expectEncodeError(Self.put(hlc: HLC(rawValue: 1 << 63)), .invalidHLC(1 << 63))
        Self.expectEncodeError(Self.put(parents: (0..<17).map { Blake2b.hash256([UInt8($0)]) }), .tooManyParents(17))
        Self.expectEncodeError(Self.put(parents: []), .missingParents)
        Self.expectEncodeError(body(.genesis(name: "g", writers: sortedAB)), .genesisHasParents)
        Self.expectEncodeError(Self.put(""), .invalidText(field: "bucket", reason: "empty"))
        Self.expectEncodeError(Self.put("a/b"), .invalidText(field: "bucket", reason: "contains '/'"))
        Self.expectEncodeError(Self.put(String(repeating: "b", count: 256)), .invalidText(field: "bucket", reason: "longer than 255 bytes"))
        Self.expectEncodeError(Self.put("b", ""), .invalidText(field: "key", reason: "empty"))
        Self.expectEncodeError(Self.put("b", String(repeating: "é", count: 513)), .invalidText(field: "key", reason: "longer than 1024 bytes"))
        Self.expectEncodeError(Self.put(length: EntryBody.maxValueLength + 1), .valueTooLarge(EntryBody.maxValueLength + 1))
        Self.expectEncodeError(body(.genesis(name: "", writers: sortedAB), parents: []), .invalidText(field: "log name", reason: "empty"))
        Self.expectEncodeError(body(.genesis(name: "g", writers: []), parents: []), .writersNotSortedUnique)
        Self.expectEncodeError(body(.genesis(name: "g", writers: sortedAB.reversed()), parents: []), .writersNotSortedUnique)
        Self.expectEncodeError(body(.genesis(name: "g", writers: [WriterGrant(key: a, role: .writer), WriterGrant(key: b, role: .admin)]
                                            .sorted { $0.key < $1.key }), parents: []), .genesisAuthorNotAdmin)
        Self.expectEncodeError(merge([MergeDecision(bucket: "b", key: "z", winner: w, losers: [l1]),
                                      MergeDecision(bucket: "b", key: "a", winner: w, losers: [l1])]), .decisionsNotSortedUnique)
        Self.expectEncodeError(merge([MergeDecision(bucket: "b", key: "a", winner: w, losers: [l1]),
                                      MergeDecision(bucket: "b", key: "a", winner: l2, losers: [l1])]), .decisionsNotSortedUnique)
        Self.expectEncodeError(merge([MergeDecision(bucket: "b", key: "a", winner: w, losers: [])]), .losersInvalid)
        Self.expectEncodeError(merge([MergeDecision(bucket: "b", key: "a", winner: w, losers: [l1, w])]), .losersInvalid)
        Self.expectEncodeError(merge([MergeDecision(bucket: "b", key: "a", winner: w, losers: [l1, l1])]), .losersInvalid)
        Self.expectEncodeError(body(.revokeWriter(key: b, from: HLC(rawValue: .max))), .invalidHLC(.max))

        // Inclusive bounds encode.
        _ = try Self.put(String(repeating: "b", count: 255), String(repeating: "k", count: 1024),
                         length: EntryBody.maxValueLength, hlc: .maxValid,
                         parents: (0..<16).map { Blake2b.hash256([UInt8($0)]) }).encoded()
        // Parents are sorted and de-duplicated by the initializer, so they always encode canonically.
        let shuffled = EntryBody(hlc: .zero, author: a, parents: [l2, l1, l2, w], payload: .delete(bucket: "b", key: "k"))
        #expect(shuffled.parents == [l1, l2, w].sorted())
    }

    /// A merge of exactly 1 MiB encodes and decodes; one byte more is rejected both ways.
    @Test func bodySizeLimitIsInclusive() throws {
        // Header with one parent (75 bytes) + decision count (2) = 77; a decision with a 1-byte
        // bucket, an n-byte key and one loser takes 69 + n bytes.
        func body(lastKeyBytes: Int) -> EntryBody {
            var decisions = (0..<959).map { i in
                MergeDecision(bucket: "b", key: String(format: "%04d", i) + String(repeating: "k", count: 1020),
                              winner: Blake2b.hash256([1]), losers: [Blake2b.hash256([2])])
            }
            decisions.append(MergeDecision(bucket: "b", key: "0959" + String(repeating: "k", count: lastKeyBytes - 4),
                                           winner: Blake2b.hash256([1]), losers: [Blake2b.hash256([2])]))
            return EntryBody(hlc: .zero, author: Self.keyA.publicKey, parents: [Self.parent], payload: .merge(decisions: decisions))
        }
        let exact = try body(lastKeyBytes: 243).encoded()
        #expect(exact.count == EntryBody.maxBodyBytes)
        #expect(try EntryBody.decode(exact).encoded() == exact)
        Self.expectEncodeError(body(lastKeyBytes: 244), .bodyTooLarge(bytes: EntryBody.maxBodyBytes + 1))
        #expect(decodeError(exact + [0]) == .bodyTooLarge(bytes: EntryBody.maxBodyBytes + 1))
    }

    // MARK: Fuzz

    /// Mutated and random bytes never trap the decoder, and whatever it accepts is canonical:
    /// re-encoding gives the same bytes.
    @Test func decodeNeverTrapsOnMutatedBytes() throws {
        let seed = randomizedTestSeed("decodeNeverTrapsOnMutatedBytes")
        var random = RandomBodies(rng: SplitMix64(seed: seed))
        var corpus: [[UInt8]] = []
        for _ in 0..<60 {
            var body = random.body()
            if case .put(let b, let k, let v) = body.payload, random.chance(50) {
                // Short texts keep mutations near the interesting bytes.
                body = EntryBody(hlc: body.hlc, author: body.author, parents: Array(body.parents.prefix(2)),
                                 payload: .put(bucket: String(b.prefix(3)), key: String(k.prefix(3)), value: v))
            }
            corpus.append(try body.encoded())
        }
        var accepted = 0
        let iterations = 4000
        for i in 0..<iterations {
            var bytes = corpus[random.int(0...corpus.count - 1)]
            for _ in 0..<random.int(1...4) {
                let n = bytes.count
                switch random.int(0...7) {
                case 0 where n > 0: bytes[random.int(0...n - 1)] ^= UInt8(1) << UInt8(random.int(0...7))
                case 1 where n > 0: bytes[random.int(0...n - 1)] = UInt8(random.int(0...255))
                case 2 where n > 0: bytes[random.int(0...n - 1)] = [0, 1, 0x10, 0x11, 0x2f, 0x7f, 0x80, 0xff][random.int(0...7)]
                case 3: bytes.insert(contentsOf: random.rng.bytes(random.int(1...8)), at: random.int(0...n))
                case 4 where n > 0:
                    let start = random.int(0...n - 1)
                    bytes.removeSubrange(start..<min(n, start + random.int(1...40)))
                case 5: bytes = Array(bytes.prefix(random.int(0...n)))
                case 6 where n > 1:
                    let start = random.int(0...n - 2)
                    let chunk = bytes[start..<min(n, start + random.int(1...33))]
                    bytes.insert(contentsOf: chunk, at: random.int(0...n))
                default: bytes.append(UInt8(random.int(0...255)))
                }
            }
            if let body = try? EntryBody.decode(bytes) {
                accepted += 1
                #expect(try body.encoded() == bytes, "seed \(seed), iteration \(i): accepted a non-canonical body \(Hex.encode(bytes))")
            }
        }
        // Pure noise behind a valid version byte.
        for i in 0..<1000 {
            let bytes = [1, UInt8(random.int(0...7))] + random.rng.bytes(random.int(0...200))
            if let body = try? EntryBody.decode(bytes) {
                #expect(try body.encoded() == bytes, "seed \(seed), noise \(i)")
            }
        }
        print("decodeNeverTrapsOnMutatedBytes: \(accepted) of \(iterations) mutants decoded (all canonical)")
    }
}
