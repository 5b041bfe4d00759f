import CairnTestSupport
import CairnCore
import CairnStore
import Testing

/// Delta planning for the tip-based sync fast path: what a peer lacks, from its wants and haves.
@Suite struct DeltaTests {
    /// Ids in the order a delta lists them: parents first, by `(hlc, id)`.
    func parentsFirst(_ entries: [SignedEntry]) -> [Hash32] {
        entries.sorted { ($0.hlc, $0.id) < ($1.hlc, $1.id) }.map(\.id)
    }

    /// `count` puts by `signer`, each a child of the one before.
    func chain(_ count: Int, on node: LogStore, by signer: SigningKey) throws -> [SignedEntry] {
        try (0..<count).map { try node.put("b", "k\($0)", "v\($0)", by: signer) }
    }

    let unknown = Hash32(bytes: [UInt8](repeating: 0xAB, count: 32))!

    @Test func aLinearChainShipsWhatFollowsTheNewestHave() throws {
        let log = TestLog()
        defer { log.cleanup() }
        let node = try log.node()
        let puts = try chain(6, on: node, by: log.admin)
        #expect(try node.delta(wants: [puts[5].id], haves: [puts[2].id], limit: 100) == .entries(puts[3...].map(\.id)))
        #expect(try node.delta(wants: [puts[5].id], haves: [puts[0].id, puts[4].id], limit: 100) == .entries([puts[5].id]))
        #expect(try node.delta(wants: [puts[5].id], haves: [puts[5].id], limit: 100) == .entries([]))
        // A want the peer already has below one of its haves costs nothing.
        #expect(try node.delta(wants: [puts[3].id], haves: [puts[5].id], limit: 100) == .entries([]))
        #expect(try node.delta(wants: [], haves: [puts[2].id], limit: 100) == .entries([]))
    }

    @Test func divergedBranchesAndTheirMergeShipOnlyTheSideThePeerLacks() throws {
        let (alice, bob) = (key(1), key(2))
        let log = TestLog(admin: alice, writers: [WriterGrant(key: bob.publicKey, role: .writer)])
        defer { log.cleanup() }
        let a = try log.node("a"), b = try log.node("b")
        let base = try a.put("b", "base", "x", by: alice)
        #expect(try b.insert(a.exportRaw()).rejected.isEmpty)
        let a1 = try a.put("b", "k", "a1", by: alice)
        let b1 = try b.put("b", "k", "b1", by: bob)
        log.clock.advance(1)
        let b2 = try b.put("b", "k", "b2", by: bob)
        let a2 = try a.put("b", "k", "a2", by: alice)
        #expect(try a.insert(b.exportRaw()).rejected.isEmpty)
        let written = try a.append([.put(bucket: "b", key: "after", value: [1])], signer: alice)
        #expect(written.count == 2, "a merge, then the write")
        let (merge, after) = (written[0], written[1])

        #expect(try a.delta(wants: [after.id], haves: [b2.id], limit: 100) == .entries(parentsFirst([a1, a2, merge, after])))
        #expect(try a.delta(wants: [after.id], haves: [a2.id], limit: 100) == .entries(parentsFirst([b1, b2, merge, after])))
        #expect(try a.delta(wants: [after.id], haves: [a1.id, b1.id], limit: 100) == .entries(parentsFirst([a2, b2, merge, after])))
        #expect(try a.delta(wants: [a2.id, b2.id], haves: [base.id], limit: 100) == .entries(parentsFirst([a1, a2, b1, b2])))
        #expect(try a.delta(wants: [after.id], haves: [merge.id], limit: 100) == .entries([after.id]))
    }

    @Test func unknownWantsAndHavesAreIgnored() throws {
        let log = TestLog()
        defer { log.cleanup() }
        let node = try log.node()
        let puts = try chain(4, on: node, by: log.admin)
        let other = Hash32(bytes: [UInt8](repeating: 0xCD, count: 32))!
        #expect(try node.delta(wants: [unknown, puts[3].id], haves: [other, puts[1].id], limit: 100) == .entries(puts[2...].map(\.id)))
        #expect(try node.delta(wants: [unknown], haves: [puts[1].id], limit: 100) == .entries([]))
        #expect(try node.delta(wants: [puts[3].id], haves: [unknown], limit: 100) == .everything)
    }

    @Test func onlyTheGenesisInCommonMeansEverything() throws {
        let log = TestLog()
        defer { log.cleanup() }
        let node = try log.node()
        let puts = try chain(3, on: node, by: log.admin)
        #expect(try node.delta(wants: [puts[2].id], haves: [log.genesis.id], limit: 100) == .everything)
        #expect(try node.delta(wants: [puts[2].id], haves: [log.genesis.id, unknown], limit: 100) == .everything)
        #expect(try node.delta(wants: [puts[2].id], haves: [], limit: 100) == .everything)
    }

    @Test func aDifferenceAboveTheLimitIsTooLarge() throws {
        let log = TestLog()
        defer { log.cleanup() }
        let node = try log.node()
        let puts = try chain(10, on: node, by: log.admin)
        let (wants, haves) = ([puts[9].id], [puts[0].id])
        #expect(try node.delta(wants: wants, haves: haves, limit: 9) == .entries(puts[1...].map(\.id)))
        #expect(try node.delta(wants: wants, haves: haves, limit: 8) == .tooLarge)
        #expect(try node.delta(wants: wants, haves: haves, limit: 0) == .tooLarge)
        #expect(try node.delta(wants: wants, haves: [puts[9].id], limit: 0) == .entries([]))
    }

    /// A peer holding exactly the ancestry of a few random entries of a random DAG (several
    /// writers, merges) advertises its have sample; the delta, shipped as raw entries, lands
    /// without orphans and makes the peer's entries, heads and state equal the source's.
    @Test func shippingTheDeltaMakesAnyAncestryClosedPeerEqualTheSource() throws {
        let seed = randomizedTestSeed("shippingTheDeltaMakesAnyAncestryClosedPeerEqualTheSource")
        var rng = SplitMix64(seed: seed)
        let (log, hub, entries) = try randomDAG(seed: seed, steps: 80)
        defer { log.cleanup() }
        let decoded = try entries.map { try SignedEntry(bodyBytes: $0.body, signature: $0.signature) }
        let parents = Dictionary(uniqueKeysWithValues: decoded.map { ($0.id, $0.parents) })
        let everyID = Set(decoded.map(\.id)).union([log.genesis.id])
        for round in 0..<6 {
            var held = Set<Hash32>()
            var stack = (0..<Int.random(in: 1...3, using: &rng)).map { _ in decoded.randomElement(using: &rng)!.id }
            while let id = stack.popLast() {
                if held.insert(id).inserted { stack += parents[id] ?? [] }
            }
            let peer = try log.node("peer\(round)")
            let seeded = try peer.insert(entries.filter { held.contains($0.claimedID!) })
            #expect(seeded.rejected.isEmpty && seeded.orphaned.isEmpty, "seed \(seed)")

            let haves = try peer.haveSample()
            let wants = try hub.heads().map(\.id).filter { !held.contains($0) }
            guard case .entries(let ids) = try hub.delta(wants: wants, haves: haves, limit: entries.count) else {
                Issue.record("expected entries (seed \(seed), round \(round))")
                continue
            }
            #expect(Set(ids) == everyID.subtracting(held) && ids.count == Set(ids).count, "exactly what the peer lacks (seed \(seed))")
            let shipped = try hub.rawEntries(ids)
            let order = try shipped.map { try SignedEntry(bodyBytes: $0.body, signature: $0.signature) }
            #expect(parentsFirst(order) == ids, "seed \(seed)")
            let report = try peer.insert(shipped)
            #expect(report.rejected.isEmpty && report.orphaned.isEmpty && report.applied == ids, "seed \(seed), round \(round)")
            #expect(try peer.entrySnapshot() == hub.entrySnapshot(), "seed \(seed), round \(round)")
            #expect(try peer.heads() == hub.heads() && peer.stateSnapshot() == hub.stateSnapshot(), "seed \(seed)")
            if !ids.isEmpty {
                #expect(try hub.delta(wants: wants, haves: haves, limit: ids.count - 1) == .tooLarge, "seed \(seed)")
            }
        }
    }

    @Test func rawEntriesCarryValuesAndNilForPurgedOnes() throws {
        let log = TestLog()
        defer { log.cleanup() }
        let node = try log.node()
        let one = try node.put("b", "one", "1", by: log.admin)
        let two = try node.put("b", "two", "2", by: log.admin)
        let gone = try node.append([.delete(bucket: "b", key: "one")], signer: log.admin).last!
        guard case .put(_, _, let ref) = two.payload else { return }
        #expect(try node.purge(ref.digest))

        let byID = try node.rawEntries([two.id, unknown, one.id, gone.id])
        #expect(byID.map(\.claimedID) == [two.id, one.id, gone.id])
        #expect(byID.map(\.body) == [two, one, gone].map(\.bodyBytes) && byID.map(\.signature) == [two, one, gone].map(\.signature))
        #expect(byID.map(\.value) == [nil, Array("1".utf8), nil])

        let first = try node.rawEntries(afterSeq: 0, limit: 2)
        #expect(first.entries.map(\.claimedID) == [log.genesis.id, one.id] && first.lastSeq == 2)
        let rest = try node.rawEntries(afterSeq: first.lastSeq, limit: 10)
        #expect(rest.entries.map(\.claimedID) == [two.id, gone.id] && rest.lastSeq == 4)
        #expect(rest.entries.map(\.value) == [nil, nil])
        let none = try node.rawEntries(afterSeq: rest.lastSeq, limit: 10)
        #expect(none.entries.isEmpty && none.lastSeq == rest.lastSeq)
    }

    @Test func appliedIDsLeaveOutOrphansQuarantineAndStrangers() throws {
        let log = TestLog()
        defer { log.cleanup() }
        let a = try log.node("a"), b = try log.node("b")
        let applied = try a.put("b", "k", "here", by: log.admin)
        _ = try b.put("b", "x", "1", by: log.admin)
        let orphan = try b.put("b", "x", "2", by: log.admin)  // its parent stays on b
        let future = LogStore.sign(
            .delete(bucket: "b", key: "k"), by: log.admin,
            hlc: HLC(wallMilliseconds: log.clock.nowMilliseconds() + 3_600_000, counter: 0), parents: [applied.id])
        let report = try a.insert([RawEntry(orphan, value: Array("2".utf8)), RawEntry(future)])
        #expect(report.orphaned == [orphan.id] && report.quarantined == [future.id])
        let asked = [applied.id, orphan.id, future.id, unknown, applied.id, log.genesis.id]
        #expect(try a.appliedIDs(among: asked) == [applied.id, log.genesis.id])
        #expect(try a.delta(wants: [orphan.id, future.id], haves: [applied.id], limit: 10) == .entries([]))
    }

    @Test func theHaveSampleIsHeadsThenExponentiallySpacedSeqsThenTheGenesis() throws {
        let log = TestLog()
        defer { log.cleanup() }
        let node = try log.node()
        #expect(try node.haveSample() == [log.genesis.id])
        let puts = try chain(40, on: node, by: log.admin)  // seqs 2…41
        let seqs = { (sample: [Hash32]) in try sample.map { try node.entry(id: $0)!.seq } }
        let sample = try node.haveSample()
        #expect(sample.first == puts.last!.id && sample.last == log.genesis.id)
        #expect(try seqs(sample) == [41, 40, 39, 37, 33, 25, 9, 1])
        #expect(try seqs(node.haveSample(limit: 4)) == [41, 40, 39, 1])
        #expect(try node.haveSample(limit: 1) == [log.genesis.id])
        #expect(try node.haveSample(limit: 0) == [])
    }

    @Test func theHaveSampleListsEveryHeadFirstWithoutDuplicates() throws {
        let (alice, bob) = (key(1), key(2))
        let log = TestLog(admin: alice, writers: [WriterGrant(key: bob.publicKey, role: .writer)])
        defer { log.cleanup() }
        let a = try log.node("a"), b = try log.node("b")
        _ = try chain(3, on: a, by: alice)
        _ = try chain(2, on: b, by: bob)
        #expect(try a.insert(b.exportRaw()).rejected.isEmpty)
        let heads = try a.heads().map(\.id)
        #expect(heads.count == 2)
        for limit in [3, 4, 32] {
            let sample = try a.haveSample(limit: limit)
            #expect(Set(sample.prefix(2)) == Set(heads) && sample.last == log.genesis.id, "limit \(limit)")
            #expect(sample.count <= limit && Set(sample).count == sample.count, "limit \(limit)")
        }
        #expect(try a.haveSample(limit: 32).count == 5, "the 2 heads, seqs 5 and 2 (seq 4 is a head), the genesis")
    }
}
