// The canonical binary encoding of an entry body. ARCHITECTURE.md specifies it byte by byte;
// keep the two in step. Every rule the decoder enforces is also enforced by the encoder, so one
// logical entry has exactly one byte form.

extension EntryBody {
    /// The canonical bytes of this body: what is hashed into the entry id and signed.
    ///
    /// Throws if the body breaks a format rule (too long text, unsorted merge decisions…), so an
    /// invalid entry can never be created locally either.
    public func encoded() throws(EntryFormatError) -> [UInt8] {
        try validateHeader()
        var w = ByteWriter(capacity: 96 + parents.count * 32)
        w.u8(EntryBody.currentVersion)
        w.u8(payload.kind.rawValue)
        w.u64(hlc.rawValue)
        w.raw(author.bytes)
        w.u8(UInt8(parents.count))
        for parent in parents { w.raw(parent.bytes) }
        try encodePayload(into: &w)
        guard w.bytes.count <= EntryBody.maxBodyBytes else { throw .bodyTooLarge(bytes: w.bytes.count) }
        return w.bytes
    }

    /// Decodes canonical body bytes, rejecting anything that is not the one valid encoding.
    public static func decode(_ bytes: [UInt8]) throws(EntryFormatError) -> EntryBody {
        guard bytes.count <= maxBodyBytes else { throw .bodyTooLarge(bytes: bytes.count) }
        var r = ByteReader(bytes)
        do {
            let version = try r.u8("version")
            guard version == currentVersion else { throw EntryFormatError.unsupportedVersion(version) }
            let kindCode = try r.u8("kind")
            guard let kind = EntryKind(rawValue: kindCode) else { throw EntryFormatError.unknownKind(kindCode) }
            let hlc = HLC(rawValue: try r.u64("hlc"))
            let author = PublicKey(bytes: Array(try r.raw(32, "author")))!
            let parentCount = Int(try r.u8("parent count"))
            guard parentCount <= maxParents else { throw EntryFormatError.tooManyParents(parentCount) }
            var parents: [Hash32] = []
            parents.reserveCapacity(parentCount)
            for _ in 0..<parentCount { parents.append(Hash32(try r.raw(32, "parent"))!) }
            guard isStrictlyAscending(parents) else { throw EntryFormatError.parentsNotSortedUnique }
            let payload = try decodePayload(kind, author: author, from: &r)
            guard r.isAtEnd else { throw EntryFormatError.trailingBytes(count: r.remaining) }
            let body = EntryBody(hlc: hlc, author: author, parents: parents, payload: payload)
            try body.validateHeader()
            return body
        } catch let error as ByteReader.Truncated {
            throw .truncated(field: error.field)
        } catch let error as EntryFormatError {
            throw error
        } catch {
            preconditionFailure("unexpected error \(error)")
        }
    }

    private func validateHeader() throws(EntryFormatError) {
        guard hlc.isValid else { throw .invalidHLC(hlc.rawValue) }
        guard parents.count <= EntryBody.maxParents else { throw .tooManyParents(parents.count) }
        if case .genesis = payload {
            guard parents.isEmpty else { throw .genesisHasParents }
        } else if parents.isEmpty {
            throw .missingParents
        }
    }

    private func encodePayload(into w: inout ByteWriter) throws(EntryFormatError) {
        switch payload {
        case .genesis(let name, let writers):
            try writeText(name, field: "log name", maxBytes: 255, lengthWidth: 1, into: &w)
            guard !writers.isEmpty, writers.count <= 255,
                isStrictlyAscending(writers.map(\.key))
            else { throw .writersNotSortedUnique }
            guard writers.contains(WriterGrant(key: author, role: .admin)) else { throw .genesisAuthorNotAdmin }
            w.u8(UInt8(writers.count))
            for grant in writers { writeGrant(grant, into: &w) }
        case .put(let bucket, let key, let value):
            try writeTarget(bucket: bucket, key: key, into: &w)
            guard value.length <= EntryBody.maxValueLength else { throw .valueTooLarge(value.length) }
            w.u32(value.length)
            w.raw(value.digest.bytes)
        case .delete(let bucket, let key):
            try writeTarget(bucket: bucket, key: key, into: &w)
        case .merge(let decisions):
            guard decisions.count <= Int(UInt16.max),
                isStrictlyAscending(decisions.map { MergeKey(bucket: $0.bucket, key: $0.key) })
            else { throw .decisionsNotSortedUnique }
            w.u16(UInt16(decisions.count))
            for decision in decisions {
                try writeTarget(bucket: decision.bucket, key: decision.key, into: &w)
                try EntryBody.checkLosers(decision.losers, winner: decision.winner)
                w.raw(decision.winner.bytes)
                w.u8(UInt8(decision.losers.count))
                for loser in decision.losers { w.raw(loser.bytes) }
            }
        case .addWriter(let grant):
            writeGrant(grant, into: &w)
        case .revokeWriter(let key, let from):
            guard from.isValid else { throw .invalidHLC(from.rawValue) }
            w.raw(key.bytes)
            w.u64(from.rawValue)
        }
    }

    private static func decodePayload(_ kind: EntryKind, author: PublicKey, from r: inout ByteReader) throws -> Payload {
        switch kind {
        case .genesis:
            let name = try readText(&r, field: "log name", lengthWidth: 1)
            let count = Int(try r.u8("writer count"))
            var writers: [WriterGrant] = []
            for _ in 0..<count { writers.append(try readGrant(&r)) }
            guard count > 0, isStrictlyAscending(writers.map(\.key)) else { throw EntryFormatError.writersNotSortedUnique }
            guard writers.contains(WriterGrant(key: author, role: .admin)) else { throw EntryFormatError.genesisAuthorNotAdmin }
            return .genesis(name: name, writers: writers)
        case .put:
            let (bucket, key) = try readTarget(&r)
            let length = try r.u32("value length")
            guard length <= maxValueLength else { throw EntryFormatError.valueTooLarge(length) }
            let digest = Hash32(try r.raw(32, "value digest"))!
            return .put(bucket: bucket, key: key, value: ValueRef(digest: digest, length: length))
        case .delete:
            let (bucket, key) = try readTarget(&r)
            return .delete(bucket: bucket, key: key)
        case .merge:
            let count = Int(try r.u16("decision count"))
            var decisions: [MergeDecision] = []
            var previous: MergeKey?
            for _ in 0..<count {
                let (bucket, key) = try readTarget(&r)
                let current = MergeKey(bucket: bucket, key: key)
                if let previous, !(previous < current) { throw EntryFormatError.decisionsNotSortedUnique }
                previous = current
                let winner = Hash32(try r.raw(32, "merge winner"))!
                let loserCount = Int(try r.u8("loser count"))
                var losers: [Hash32] = []
                for _ in 0..<loserCount { losers.append(Hash32(try r.raw(32, "merge loser"))!) }
                try checkLosers(losers, winner: winner)
                decisions.append(MergeDecision(bucket: bucket, key: key, winner: winner, losers: losers))
            }
            return .merge(decisions: decisions)
        case .addWriter:
            return .addWriter(try readGrant(&r))
        case .revokeWriter:
            let key = PublicKey(bytes: Array(try r.raw(32, "revoked key")))!
            let from = HLC(rawValue: try r.u64("revoked from"))
            guard from.isValid else { throw EntryFormatError.invalidHLC(from.rawValue) }
            return .revokeWriter(key: key, from: from)
        }
    }

    private static func checkLosers(_ losers: [Hash32], winner: Hash32) throws(EntryFormatError) {
        guard !losers.isEmpty, losers.count <= 255, isStrictlyAscending(losers), !losers.contains(winner) else {
            throw .losersInvalid
        }
    }

    private func writeTarget(bucket: String, key: String, into w: inout ByteWriter) throws(EntryFormatError) {
        try EntryBody.validateBucket(bucket)
        try writeText(bucket, field: "bucket", maxBytes: EntryBody.maxBucketBytes, lengthWidth: 1, into: &w)
        try writeText(key, field: "key", maxBytes: EntryBody.maxKeyBytes, lengthWidth: 2, into: &w)
    }

    private static func readTarget(_ r: inout ByteReader) throws -> (String, String) {
        let bucket = try readText(&r, field: "bucket", lengthWidth: 1)
        try validateBucket(bucket)
        let key = try readText(&r, field: "key", lengthWidth: 2)
        guard key.utf8.count <= maxKeyBytes else {
            throw EntryFormatError.invalidText(field: "key", reason: "longer than \(maxKeyBytes) bytes")
        }
        return (bucket, key)
    }

    /// Checks the rules a bucket name obeys beyond being non-empty UTF-8: no `/`, since
    /// `bucket/key` splits at the first slash.
    public static func validateBucket(_ bucket: String) throws(EntryFormatError) {
        guard !bucket.utf8.contains(UInt8(ascii: "/")) else {
            throw .invalidText(field: "bucket", reason: "contains '/'")
        }
    }

    private func writeText(_ text: String, field: String, maxBytes: Int, lengthWidth: Int, into w: inout ByteWriter) throws(EntryFormatError) {
        let utf8 = Array(text.utf8)
        guard !utf8.isEmpty else { throw .invalidText(field: field, reason: "empty") }
        guard utf8.count <= maxBytes else { throw .invalidText(field: field, reason: "longer than \(maxBytes) bytes") }
        if lengthWidth == 1 { w.u8(UInt8(utf8.count)) } else { w.u16(UInt16(utf8.count)) }
        w.raw(utf8)
    }

    private static func readText(_ r: inout ByteReader, field: String, lengthWidth: Int) throws -> String {
        let length = lengthWidth == 1 ? Int(try r.u8("\(field) length")) : Int(try r.u16("\(field) length"))
        guard length > 0 else { throw EntryFormatError.invalidText(field: field, reason: "empty") }
        let bytes = try r.raw(length, field)
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw EntryFormatError.invalidText(field: field, reason: "not valid UTF-8")
        }
        return text
    }

    private func writeGrant(_ grant: WriterGrant, into w: inout ByteWriter) {
        w.raw(grant.key.bytes)
        w.u8(grant.role.rawValue)
    }

    private static func readGrant(_ r: inout ByteReader) throws -> WriterGrant {
        let key = PublicKey(bytes: Array(try r.raw(32, "writer key")))!
        let code = try r.u8("writer role")
        guard let role = Role(rawValue: code) else { throw EntryFormatError.unknownRole(code) }
        return WriterGrant(key: key, role: role)
    }
}

/// The order of merge decisions: by bucket bytes, then key bytes.
private struct MergeKey: Comparable {
    let bucket: String
    let key: String
    static func < (a: MergeKey, b: MergeKey) -> Bool {
        // Compare bytes, not Strings: Swift's String equality is Unicode-canonical, and two
        // different byte strings must stay two different keys.
        let (ab, bb) = (Array(a.bucket.utf8), Array(b.bucket.utf8))
        if ab != bb { return ab.lexicographicallyPrecedes(bb) }
        return Array(a.key.utf8).lexicographicallyPrecedes(Array(b.key.utf8))
    }
    static func == (a: MergeKey, b: MergeKey) -> Bool { sameBytes(a.bucket, b.bucket) && sameBytes(a.key, b.key) }
}

private func isStrictlyAscending<T: Comparable>(_ items: [T]) -> Bool {
    zip(items, items.dropFirst()).allSatisfy { $0 < $1 }
}
