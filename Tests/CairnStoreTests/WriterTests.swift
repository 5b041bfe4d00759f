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

    @Test func revokedWritersAreRefusedLocallyAndTheirLaterEntriesStoredInertAndHistoryStillVerifies() throws {
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
        // A peer learns it all: the revocation applies there too. A later entry by the revoked
        // key is kept, inert, as on a node that got it before the revocation.
        #expect(try b.insert(a.exportRaw()).rejected.isEmpty)
        let late = LogStore.sign(.delete(bucket: "b", key: "k"), by: bob, hlc: revokeFrom.successor, parents: try b.heads().map(\.id))
        #expect(try b.insert([RawEntry(late)]).applied == [late.id])
        #expect(try b.entry(id: late.id)?.inert == true && b.entry(id: before.id)?.inert == false)
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
        let stranger = LogStore.sign(.delete(bucket: "b", key: "k"), by: key(7), hlc: HLC(rawValue: b.lastHLC.rawValue + 1), parents: try b.heads().map(\.id))
        #expect(try b.insert([RawEntry(stranger)]).rejected.first?.reason == .unknownAuthor(key(7).publicKey))
    }

    /// Every node's entries, inert flags, heads, state and writer set, as comparable strings.
    func fullSnapshot(_ node: LogStore) throws -> [String] {
        try node.entrySnapshot() + node.stateSnapshot() + node.heads().map { "head \($0.id.hex)" }
            + node.writers().map { "writer \($0.key.hex) \($0.status)" }
            + ["orphans \(try node.orphanCount())", "quarantined \(try node.quarantineCount())"]
    }

    /// Inserts `entries` in every order on fresh nodes — one by one (early ones wait in the
    /// orphan pool) or as one batch — and expects nothing refused and the same store each time.
    /// Returns the node that got them in the given order.
    func expectSameStoreInEveryOrder(_ entries: [RawEntry], of log: TestLog) throws -> LogStore {
        let reference = try log.node("reference")
        #expect(try reference.insert(entries).rejected.isEmpty)
        #expect(try reference.verify().isClean)
        let expected = try fullSnapshot(reference)
        for (n, order) in permutations(entries).enumerated() {
            let node = try log.node("order\(n)")
            if n % 2 == 0 {
                for entry in order { #expect(try node.insert([entry]).rejected.isEmpty, "order \(n)") }
            } else {
                #expect(try node.insert(order).rejected.isEmpty, "order \(n)")
            }
            #expect(try fullSnapshot(node) == expected, "order \(n)")
            #expect(try node.verify().isClean, "order \(n)")
        }
        return reference
    }

    func permutations<T>(_ items: [T]) -> [[T]] {
        guard items.count > 1 else { return [items] }
        return items.indices.flatMap { i in
            var rest = items
            let first = rest.remove(at: i)
            return permutations(rest).map { [first] + $0 }
        }
    }

    @Test func aGrantEntriesOfTheKeyAndItsRevocationGiveTheSameStoreInEveryOrder() throws {
        let (alice, bob) = (key(1), key(2))
        let log = TestLog(admin: alice)
        defer { log.cleanup() }
        // The key's entries and the revocation are concurrent: both descend from the grant only.
        let source = try log.node("source")
        let grant = try source.append([.other(.addWriter(WriterGrant(key: bob.publicKey, role: .writer)))], signer: alice).last!
        let early = try source.put("b", "k", "early", by: bob)
        log.clock.advance(10)
        let late = try source.put("b", "k", "late", by: bob)
        let elsewhere = try source.put("b", "other", "late too", by: bob)
        let admin = try log.node("admin")
        #expect(try admin.insert([RawEntry(grant)]).rejected.isEmpty)
        let revoke = try admin.append([.other(.revokeWriter(key: bob.publicKey, from: late.hlc))], signer: alice).last!

        let node = try expectSameStoreInEveryOrder(try source.exportRaw() + [RawEntry(revoke)], of: log)
        #expect(try node.entry(id: early.id)?.inert == false)
        #expect(try node.entry(id: late.id)?.inert == true && node.entry(id: elsewhere.id)?.inert == true)
        #expect(try node.stateSnapshot() == ["b/k=\(early.id.hex)"])
        #expect(throws: StoreError.notAuthorized(bob.publicKey, .revokedAuthor(bob.publicKey, since: late.hlc))) {
            try node.put("b", "k", "after the revocation", by: bob)
        }
    }

    @Test func entriesOfAKeyGrantedByARevokedAdminAreInertInEveryOrder() throws {
        let (alice, carol, bob) = (key(1), key(3), key(2))
        let log = TestLog(admin: alice)
        defer { log.cleanup() }
        let source = try log.node("source")
        let carolAdmin = try source.append([.other(.addWriter(WriterGrant(key: carol.publicKey, role: .admin)))], signer: alice).last!
        log.clock.advance(10)
        let bobByCarol = try source.append([.other(.addWriter(WriterGrant(key: bob.publicKey, role: .writer)))], signer: carol).last!
        let byBob = try source.put("b", "k", "by bob", by: bob)
        // Alice revokes Carol from before Carol's grant; she has not seen it.
        let admin = try log.node("admin")
        #expect(try admin.insert([RawEntry(carolAdmin)]).rejected.isEmpty)
        let revoke = try admin.append([.other(.revokeWriter(key: carol.publicKey, from: bobByCarol.hlc))], signer: alice).last!

        let node = try expectSameStoreInEveryOrder(try source.exportRaw() + [RawEntry(revoke)], of: log)
        #expect(try node.entry(id: bobByCarol.id)?.inert == true && node.entry(id: byBob.id)?.inert == true)
        #expect(try node.stateSnapshot().isEmpty)
        let status = try node.writerStatus(bob.publicKey)
        #expect(status.role == .writer && status.revokedFrom == .zero, "granted only by an inert entry: revoked from the start")
        #expect(throws: StoreError.notAuthorized(bob.publicKey, .revokedAuthor(bob.publicKey, since: .zero))) {
            try node.put("b", "k", "again", by: bob)
        }
    }

    /// J and K grant each other admin after Alice made J an admin. Once Alice is revoked from
    /// before her grant, J's grant of K (judged in HLC order, before K's grant of J existed)
    /// took no effect, so neither can write: a cycle of grants cannot lift itself.
    @Test func revokingACycleOfAdminGrantsTerminates() throws {
        let (alice, bob, j, k) = (key(1), key(2), key(4), key(5))
        let log = TestLog(admin: alice)
        defer { log.cleanup() }
        let node = try log.node()
        func grant(_ key: SigningKey, by admin: SigningKey) throws -> SignedEntry {
            try node.append([.other(.addWriter(WriterGrant(key: key.publicKey, role: .admin)))], signer: admin).last!
        }
        _ = try grant(bob, by: alice)
        log.clock.advance(10)
        let jByAlice = try grant(j, by: alice)
        let kByJ = try grant(k, by: j)
        let jByK = try grant(j, by: k)
        try node.append([.other(.revokeWriter(key: alice.publicKey, from: jByAlice.hlc))], signer: bob)
        #expect(try node.entry(id: jByAlice.id)?.inert == true && node.entry(id: kByJ.id)?.inert == true)
        #expect(try node.entry(id: jByK.id)?.inert == true)
        try node.append([.other(.revokeWriter(key: k.publicKey, from: .zero))], signer: bob)
        #expect(try node.entry(id: jByK.id)?.inert == true && node.entry(id: kByJ.id)?.inert == true)
        #expect(try node.writerStatus(j.publicKey).revokedFrom == .zero)
        #expect(try node.verify().isClean)
    }

    // MARK: - Issue #8 item 5: the three order dependences found on the old main

    /// Carol (admin by Alice) makes Bob an admin; Bob grants Dave, who writes. Alice, unaware,
    /// revokes Carol from before her grant of Bob: Bob's grant, Dave's grant and Dave's write
    /// take no effect, in every arrival order.
    @Test func aGrantByAnAdminLaterRevokedFromBeforeItTakesNoEffectInEveryOrder() throws {
        let (alice, bob, carol, dave) = (key(1), key(2), key(3), key(4))
        let log = TestLog(admin: alice, writers: [WriterGrant(key: carol.publicKey, role: .admin)])
        defer { log.cleanup() }
        let source = try log.node("source")
        log.clock.advance(10)
        let bobByCarol = try source.append([.other(.addWriter(WriterGrant(key: bob.publicKey, role: .admin)))], signer: carol).last!
        let daveByBob = try source.append([.other(.addWriter(WriterGrant(key: dave.publicKey, role: .writer)))], signer: bob).last!
        let byDave = try source.put("b", "k", "by dave", by: dave)
        let admin = try log.node("admin")
        let revoke = try admin.append([.other(.revokeWriter(key: carol.publicKey, from: bobByCarol.hlc))], signer: alice).last!
        let node = try expectSameStoreInEveryOrder(try source.exportRaw() + [RawEntry(revoke)], of: log)
        for id in [bobByCarol.id, daveByBob.id, byDave.id] { #expect(try node.entry(id: id)?.inert == true) }
        #expect(try node.stateSnapshot().isEmpty)
    }

    /// Carol (an admin) revokes Dave; Alice, unaware, revokes Carol from before that. Carol's
    /// revocation takes no effect, so Dave's later put is live — in every order (on the old
    /// main, a node that applied Carol's revocation first kept Dave's put inert forever).
    @Test func aRevocationByAnAdminLaterRevokedFromBeforeItTakesNoEffectInEveryOrder() throws {
        let (alice, carol, dave) = (key(1), key(3), key(4))
        let log = TestLog(admin: alice, writers: [WriterGrant(key: carol.publicKey, role: .admin), WriterGrant(key: dave.publicKey, role: .writer)])
        defer { log.cleanup() }
        let source = try log.node("source")
        log.clock.advance(10)
        let revokeDave = try source.append([.other(.revokeWriter(key: dave.publicKey, from: .zero))], signer: carol).last!
        let admin = try log.node("admin")
        let byDave = try admin.put("b", "k", "by dave", by: dave)
        let revokeCarol = try admin.append([.other(.revokeWriter(key: carol.publicKey, from: revokeDave.hlc))], signer: alice).last!
        let node = try expectSameStoreInEveryOrder([RawEntry(revokeDave), RawEntry(byDave, value: Array("by dave".utf8)), RawEntry(revokeCarol)], of: log)
        #expect(try node.entry(id: revokeDave.id)?.inert == true && node.entry(id: byDave.id)?.inert == false)
        #expect(try node.stateSnapshot() == ["b/k=\(byDave.id.hex)"])
    }

    /// Bob is a writer by Alice's grant on one branch and an admin by Carol's grant on a
    /// concurrent one; his grant of Dave descends from both, his put only from the first.
    @Test func grantsOnConcurrentBranchesGiveTheSameStoreInEveryOrder() throws {
        let (alice, bob, carol, dave) = (key(1), key(2), key(3), key(4))
        let log = TestLog(admin: alice, writers: [WriterGrant(key: carol.publicKey, role: .admin)])
        defer { log.cleanup() }
        let a = try log.node("a"), c = try log.node("c")
        let writerGrant = try a.append([.other(.addWriter(WriterGrant(key: bob.publicKey, role: .writer)))], signer: alice).last!
        let adminGrant = try c.append([.other(.addWriter(WriterGrant(key: bob.publicKey, role: .admin)))], signer: carol).last!
        let put = try a.put("b", "k", "by bob", by: bob)
        #expect(try a.insert([RawEntry(adminGrant)]).rejected.isEmpty)
        let daveByBob = try a.append([.other(.addWriter(WriterGrant(key: dave.publicKey, role: .writer)))], signer: bob)
        let entries = [RawEntry(writerGrant), RawEntry(adminGrant), RawEntry(put)] + daveByBob.map { RawEntry($0) }
        let node = try expectSameStoreInEveryOrder(entries, of: log)
        #expect(try node.writerStatus(bob.publicKey).role == .admin && node.writerStatus(bob.publicKey).revokedFrom == nil)
        #expect(try node.writerStatus(dave.publicKey).role == .writer && node.writerStatus(dave.publicKey).revokedFrom == nil)
    }

    /// Bob, a writer from the genesis, becomes an admin by Carol's grant; Alice revokes Carol
    /// from before it. Bob loses only his admin role: his grant of Dave takes no effect, his
    /// own put stays live.
    @Test func anAdminThatLosesOnlyItsAdminRoleGivesTheSameStoreInEveryOrder() throws {
        let (alice, bob, carol, dave) = (key(1), key(2), key(3), key(4))
        let log = TestLog(admin: alice, writers: [WriterGrant(key: carol.publicKey, role: .admin), WriterGrant(key: bob.publicKey, role: .writer)])
        defer { log.cleanup() }
        let source = try log.node("source")
        log.clock.advance(10)
        let bobAdmin = try source.append([.other(.addWriter(WriterGrant(key: bob.publicKey, role: .admin)))], signer: carol).last!
        let daveByBob = try source.append([.other(.addWriter(WriterGrant(key: dave.publicKey, role: .writer)))], signer: bob).last!
        let byBob = try source.put("b", "k", "by bob", by: bob)
        let admin = try log.node("admin")
        let revoke = try admin.append([.other(.revokeWriter(key: carol.publicKey, from: bobAdmin.hlc))], signer: alice).last!
        let node = try expectSameStoreInEveryOrder(try source.exportRaw() + [RawEntry(revoke)], of: log)
        #expect(try node.entry(id: daveByBob.id)?.inert == true && node.entry(id: byBob.id)?.inert == false)
        #expect(try node.writerStatus(bob.publicKey).role == .writer && node.writerStatus(bob.publicKey).revokedFrom == nil)
        #expect(try node.stateSnapshot() == ["b/k=\(byBob.id.hex)"])
    }

    /// An admin's revocation of itself could never take effect: the library refuses to sign
    /// it, and one signed by hand is stored inert and verifies (it failed verify forever).
    @Test func selfRevocationIsRefusedLocallyAndInertWhenReceived() throws {
        let (alice, bob) = (key(1), key(2))
        let log = TestLog(admin: alice, writers: [WriterGrant(key: bob.publicKey, role: .admin)])
        defer { log.cleanup() }
        let node = try log.node()
        #expect(throws: StoreError.self) { try node.append([.other(.revokeWriter(key: alice.publicKey, from: .zero))], signer: alice) }
        let selfRevocation = LogStore.sign(.revokeWriter(key: alice.publicKey, from: .zero), by: alice,
                                           hlc: HLC(rawValue: node.lastHLC.rawValue + 1), parents: try node.heads().map(\.id))
        #expect(try node.insert([RawEntry(selfRevocation)]).rejected.isEmpty)
        #expect(try node.entry(id: selfRevocation.id)?.inert == true)
        #expect(try node.writerStatus(alice.publicKey).role == .admin && node.writerStatus(alice.publicKey).revokedFrom == nil)
        #expect(try node.verify().isClean)
        _ = try node.put("b", "k", "still writing", by: alice)
    }

    @Test func revokingTheLastAdminIsRefused() throws {
        let (alice, bob) = (key(1), key(2))
        let log = TestLog(admin: alice, writers: [WriterGrant(key: bob.publicKey, role: .admin)])
        defer { log.cleanup() }
        let node = try log.node()
        try node.append([.other(.revokeWriter(key: bob.publicKey, from: .zero))], signer: alice)
        #expect {
            try node.append([.other(.revokeWriter(key: alice.publicKey, from: .zero))], signer: alice)
        } throws: { error in
            "\(error)".contains("last admin")
        }
    }
}
