import CairnCore
import CairnStore
import Testing

/// Buckets and keys are byte strings (docs/entry-format.md §2.1): U+0000 is allowed, and two
/// canonically equivalent but different byte strings are two different keys.
@Suite struct ByteExactKeyTests {
    /// Pairs that must stay apart: an embedded NUL, and precomposed vs decomposed é.
    static let paths: [(bucket: String, key: String)] = [
        ("b", "a\0x"), ("b", "a\0y"), ("b", "a"),
        ("b", "\u{e9}"), ("b", "e\u{301}"),
        ("\u{e9}", "k"), ("e\u{301}", "k"), ("b\0c", "k"),
    ]

    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    /// Every path's state row is its own put, its value reads back, and verify is clean.
    func expectDistinct(_ node: LogStore, _ written: [SignedEntry]) throws {
        for ((bucket, key), entry) in zip(Self.paths, written) {
            let state = try #require(try node.state(bucket: bucket, key: key), "state of \(Self.bytes(bucket))/\(Self.bytes(key))")
            #expect(state.entryID == entry.id, "\(Self.bytes(bucket))/\(Self.bytes(key))")
            #expect(Self.bytes(state.bucket) == Self.bytes(bucket) && Self.bytes(state.key) == Self.bytes(key))
            #expect(try node.value(state.value!.digest) == .present(Self.bytes("\(Self.bytes(bucket))/\(Self.bytes(key))")))
            #expect(try node.history(bucket: bucket, key: key).map(\.entry.id) == [entry.id])
        }
        var listed: [[UInt8]] = []
        for (bucket, _) in try node.buckets() {
            listed += try node.list(bucket: bucket, limit: .max).map { Self.bytes(bucket) + [0xff] + Self.bytes($0.key) }
        }
        #expect(Set(listed).count == Self.paths.count && listed.count == Self.paths.count)
        let report = try node.verify()
        #expect(report.isClean, "\(report.problems)")
    }

    @Test func keysWithNULAndCanonicallyEquivalentKeysAreDistinct() throws {
        let log = TestLog()
        defer { log.cleanup() }
        let a = try log.node("a")
        let written = try Self.paths.map { bucket, key in
            try a.append([.put(bucket: bucket, key: key, value: Self.bytes("\(Self.bytes(bucket))/\(Self.bytes(key))"))], signer: log.admin)[0]
        }
        try expectDistinct(a, written)
        // The same entries received from a peer (the ingest path) land on the same distinct keys.
        let b = try log.node("b")
        let report = try b.insert(try a.exportRaw())
        #expect(report.rejected.isEmpty && report.applied.count == written.count)
        try expectDistinct(b, written)
    }

    /// A merge of branches that wrote canonically equivalent keys decides nothing: no key was
    /// written on two branches.
    @Test func equivalentKeysOnTwoBranchesAreNotAConflict() throws {
        let log = TestLog(writers: [WriterGrant(key: key(2).publicKey, role: .writer)])
        defer { log.cleanup() }
        let a = try log.node("a"), b = try log.node("b")
        _ = try a.put("b", "\u{e9}", "precomposed", by: log.admin)
        _ = try b.put("b", "e\u{301}", "decomposed", by: key(2))
        #expect(try a.insert(try b.exportRaw()).rejected.isEmpty)
        let merge = try a.append([.delete(bucket: "other", key: "x")], signer: log.admin)[0]
        guard case .merge(let decisions) = merge.payload else { Issue.record("expected a merge first"); return }
        #expect(decisions.isEmpty)
        #expect(try a.verify().isClean)
    }
}
