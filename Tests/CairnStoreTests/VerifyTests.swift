import CairnCore
import CairnSQLite
import CairnStore
import Testing

@Suite struct VerifyTests {
    /// A node with a few entries of every common kind.
    func populated() throws -> (TestLog, LogStore) {
        let log = TestLog(writers: [WriterGrant(key: key(2).publicKey, role: .writer)])
        let node = try log.node()
        _ = try node.put("b", "k1", "one", by: log.admin)
        _ = try node.put("b", "k2", "two", by: key(2))
        try node.append([.delete(bucket: "b", key: "k1")], signer: log.admin)
        return (log, node)
    }

    @Test func aCleanLogVerifies() throws {
        let (log, node) = try populated()
        defer { log.cleanup() }
        var calls = 0
        let report = try node.verify { _, _ in calls += 1 }
        #expect(report.isClean, "\(report.problems)")
        #expect(report.entriesChecked == 4 && report.valuesChecked == 2 && calls >= 1)
    }

    /// Flipping any single byte of any stored entry's body or signature is found.
    @Test(arguments: ["body", "sig", "id"])
    func everyFlippedByteIsFound(column: String) throws {
        let (log, node) = try populated()
        defer { log.cleanup() }
        for seq in 1...4 {
            let length = try blob(node.database, column, seq).count
            for offset in stride(from: 0, to: length, by: max(1, length / 24)) {
                try flip(node.database, column, seq: seq, at: offset)
                let report = try node.verify()
                #expect(!report.isClean, "flipped \(column)[\(offset)] of seq \(seq) went unnoticed")
                try flip(node.database, column, seq: seq, at: offset)
            }
        }
        #expect(try node.verify().isClean)
    }

    @Test func tamperedStateHeadsAndValuesAreFound() throws {
        let (log, node) = try populated()
        defer { log.cleanup() }
        try node.database.execute("UPDATE state SET entry_id = zeroblob(32) WHERE key = 'k2'")
        #expect(try node.verify().problems.contains { $0.message.contains("not the LWW winner") })
        try node.database.execute("DELETE FROM state")
        #expect(try node.verify().problems.contains { $0.message.contains("no state") })

        let (log2, node2) = try populated()
        defer { log2.cleanup() }
        try node2.database.execute("DELETE FROM heads")
        #expect(try node2.verify().problems.contains { $0.message.contains("not a head") })
        try node2.database.execute("UPDATE value_store SET data = X'00'")
        #expect(try node2.verify().problems.contains { $0.message.contains("digest") })
    }

    @Test func purgingAValueKeepsTheLogVerifiable() throws {
        let (log, node) = try populated()
        defer { log.cleanup() }
        let state = try #require(try node.state(bucket: "b", key: "k2"))
        #expect(try node.purge(state.value!.digest))
        #expect(try node.value(state.value!.digest) == .purged)
        #expect(try node.verify().isClean)
        // A peer that receives the entry without its value keeps it, and does not count it purged there.
        let peer = try log.node("peer")
        #expect(try peer.insert(node.exportRaw()).rejected.isEmpty)
        #expect(try peer.value(state.value!.digest) == .missing)
        #expect(try peer.stateSnapshot() == node.stateSnapshot())
    }

    /// Issue #8 item 4: tampering with any derived table is found, and `repair` rebuilds it
    /// from the signed entries to exactly what an untampered copy holds.
    @Test(arguments: [
        "UPDATE state SET deleted = 1 - deleted WHERE key = 'k2'",
        "UPDATE state SET value_digest = zeroblob(32) WHERE key = 'k2'",
        "UPDATE state SET value_length = value_length + 1 WHERE key = 'k2'",
        "UPDATE writer_events SET role = 1 WHERE role = 0",
        "UPDATE writers SET role = 1 WHERE role = 0",
        "DELETE FROM writer_events WHERE revoked_from IS NOT NULL",
        "UPDATE writers SET revoked_from = NULL",
        "UPDATE entries SET inert = 0 WHERE inert = 1",
        "DELETE FROM value_store WHERE length = 3",
        "DELETE FROM parents WHERE child = (SELECT child FROM parents LIMIT 1)",
        "INSERT INTO orphan_waits(parent, orphan) VALUES(zeroblob(32), zeroblob(32))",
        "UPDATE meta SET value = 7 WHERE name = 'orphan_count'",
    ])
    func tamperingWithADerivedTableIsFoundAndRepaired(_ tampering: String) throws {
        let (log, node) = try populated()
        defer { log.cleanup() }
        // A revoked writer with an entry made inert, so the writer tables have a revocation.
        let late = LogStore.sign(.put(bucket: "b", key: "k3", value: ValueRef(of: [1])), by: key(2),
                                 hlc: HLC(rawValue: node.lastHLC.rawValue + 1), parents: try node.heads().map(\.id))
        #expect(try node.insert([RawEntry(late, value: [1])]).rejected.isEmpty)
        try node.append([.other(.revokeWriter(key: key(2).publicKey, from: late.hlc))], signer: log.admin)
        #expect(try node.entry(id: late.id)?.inert == true)
        let expected = try storeSnapshot(node)
        #expect(try node.verify().isClean)

        try node.database.execute(tampering)
        #expect(try !node.verify().isClean, "\(tampering) went unnoticed")
        try node.repair()
        let problems = try node.verify().problems
        #expect(problems.isEmpty, "\(tampering): \(problems)")
        #expect(try storeSnapshot(node) == expected, "\(tampering)")
    }

    @Test func aTamperedWriterTableCannotAdmitAChangeAnUntamperedCopyRefuses() throws {
        let (log, node) = try populated()
        defer { log.cleanup() }
        try node.database.execute("UPDATE writers SET role = 1 WHERE role = 0")
        #expect(try node.writerStatus(key(2).publicKey).role == .admin, "the tampered table says admin")
        #expect(try !node.verify().isClean)
        try node.repair()
        #expect(throws: StoreError.notAuthorized(key(2).publicKey, .notAdmin(key(2).publicKey))) {
            try node.append([.other(.addWriter(WriterGrant(key: key(3).publicKey, role: .writer)))], signer: key(2))
        }
    }

    private func blob(_ db: Database, _ column: String, _ seq: Int) throws -> [UInt8] {
        let statement = try db.prepare("SELECT \(column) FROM entries WHERE seq = ?1").bind(.integer(seq))
        try #require(try statement.step())
        return statement.blob(0)!
    }

    private func flip(_ db: Database, _ column: String, seq: Int, at offset: Int) throws {
        var bytes = try blob(db, column, seq)
        bytes[offset] ^= 0x01
        try db.prepare("UPDATE entries SET \(column) = ?1 WHERE seq = ?2").bind(.blob(bytes), .integer(seq)).run()
    }
}
