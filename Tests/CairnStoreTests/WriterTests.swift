import CairnCore
import CairnStore
import Testing

@Suite struct WriterTests {
    @Test func onlyGrantedKeysMayWriteAndOnlyAdminsMayGrant() throws {
        let (alice, bob, carol) = (key(1), key(2), key(3))
        let log = TestLog(admin: alice)
        defer { log.cleanup() }
        let node = try log.node()
        #expect(throws: StoreError.notAuthorized(bob.publicKey, .unknownAuthor(bob.publicKey))) {
            try node.put("b", "k", "v", by: bob)
        }
        try node.append([.other(.addWriter(WriterGrant(key: bob.publicKey, role: .writer)))], signer: alice)
        _ = try node.put("b", "k", "from bob", by: bob)
        #expect(throws: StoreError.notAuthorized(bob.publicKey, .notAdmin(bob.publicKey))) {
            try node.append([.other(.addWriter(WriterGrant(key: carol.publicKey, role: .writer)))], signer: bob)
        }
        let roles = try node.writers().map { ($0.key, $0.status.role) }
        #expect(roles.count == 2 && roles.contains { $0 == (alice.publicKey, .admin) } && roles.contains { $0 == (bob.publicKey, .writer) })
    }

    @Test func revokedWritersAreRejectedFromTheirRevocationOnAndHistoryStillVerifies() throws {
        let (alice, bob) = (key(1), key(2))
        let log = TestLog(admin: alice, writers: [WriterGrant(key: bob.publicKey, role: .writer)])
        defer { log.cleanup() }
        let a = try log.node("a"), b = try log.node("b")
        let before = try a.put("b", "k", "bob was here", by: bob)
        log.clock.advance(10)
        let revokeFrom = HLC(wallMilliseconds: log.clock.nowMilliseconds(), counter: 0)
        try a.append([.other(.revokeWriter(key: bob.publicKey, from: revokeFrom))], signer: alice)
        #expect(throws: StoreError.notAuthorized(bob.publicKey, .revokedAuthor(bob.publicKey, since: revokeFrom))) {
            try a.put("b", "k", "too late", by: bob)
        }
        // A peer learns it all: the revocation applies there too.
        #expect(try b.insert(a.exportRaw()).rejected.isEmpty)
        let late = LogStore.sign(.delete(bucket: "b", key: "k"), by: bob, hlc: revokeFrom.successor, parents: try b.heads().map(\.id))
        #expect(try b.insert([RawEntry(late)]).rejected.first?.reason == .revokedAuthor(bob.publicKey, since: revokeFrom))
        #expect(try b.state(bucket: "b", key: "k")?.entryID == before.id)
        #expect(try a.verify().isClean && b.verify().isClean)
    }

    @Test func aRevocationArrivingAfterTheRevokedWritesMakesThemInert() throws {
        let (alice, bob) = (key(1), key(2))
        let log = TestLog(admin: alice, writers: [WriterGrant(key: bob.publicKey, role: .writer)])
        defer { log.cleanup() }
        let a = try log.node("a"), b = try log.node("b")
        let good = try b.put("b", "k", "honest", by: bob)
        log.clock.advance(100)
        let stolen = try b.put("b", "k", "attacker", by: bob)  // the key leaked; this is the attacker
        // Alice revokes Bob from a moment between the two writes; she has not seen the second.
        #expect(try a.insert(b.exportRaw().prefix(1).map { $0 }).rejected.isEmpty)
        let from = HLC(rawValue: good.hlc.rawValue + 1)
        let revoke = try a.append([.other(.revokeWriter(key: bob.publicKey, from: from))], signer: alice).last!
        // b applies the revocation after the stolen write: the write stays in the DAG, inert.
        #expect(try b.insert(a.exportRaw()).rejected.isEmpty)
        #expect(try b.entry(id: stolen.id)?.inert == true)
        #expect(try b.state(bucket: "b", key: "k")?.entryID == good.id)
        #expect(try b.verify().isClean)
        _ = revoke
    }

    @Test func anEntryArrivingBeforeItsAuthorsGrantWaitsForIt() throws {
        let (alice, bob) = (key(1), key(2))
        let log = TestLog(admin: alice)
        defer { log.cleanup() }
        let a = try log.node("a"), b = try log.node("b")
        try a.append([.other(.addWriter(WriterGrant(key: bob.publicKey, role: .writer)))], signer: alice)
        _ = try a.put("b", "k", "by bob", by: bob)
        let raw = try a.exportRaw()
        #expect(try b.insert([raw[1]]).orphaned.count == 1, "bob is unknown here, but his grant may be an ancestor")
        #expect(try b.insert([raw[0]]).applied.count == 2)
        #expect(try b.stateSnapshot() == a.stateSnapshot())
        // With every parent present, an unknown author is refused outright.
        let stranger = LogStore.sign(.delete(bucket: "b", key: "k"), by: key(7), hlc: HLC(rawValue: try b.lastHLC.rawValue + 1), parents: try b.heads().map(\.id))
        #expect(try b.insert([RawEntry(stranger)]).rejected.first?.reason == .unknownAuthor(key(7).publicKey))
    }
}
