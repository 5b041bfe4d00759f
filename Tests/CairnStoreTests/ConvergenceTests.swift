import CairnTestSupport
import CairnCore
import CairnStore
import Testing

/// The materialized state must be a function of the set of entries, not of the order they
/// arrived in: LWW by `(hlc, author, id)`, merges and orphans included.
@Suite struct ConvergenceTests {
    /// A random parents-first order of `entries` (Kahn's algorithm, picking at random).
    func randomTopologicalOrder(_ entries: [RawEntry], using rng: inout SplitMix64) throws -> [RawEntry] {
        let decoded = try entries.map { try SignedEntry(bodyBytes: $0.body, signature: $0.signature) }
        let ids = Set(decoded.map(\.id))
        var waiting = decoded.map { Set($0.parents).intersection(ids).count }
        var children: [Hash32: [Int]] = [:]
        for (i, entry) in decoded.enumerated() { for parent in entry.parents where ids.contains(parent) { children[parent, default: []].append(i) } }
        var ready = waiting.indices.filter { waiting[$0] == 0 }
        var order: [RawEntry] = []
        while !ready.isEmpty {
            let i = ready.remove(at: Int.random(in: 0..<ready.count, using: &rng))
            order.append(entries[i])
            for child in children[decoded[i].id] ?? [] {
                waiting[child] -= 1
                if waiting[child] == 0 { ready.append(child) }
            }
        }
        return order
    }

    @Test func stateAndHeadsDoNotDependOnArrivalOrder() throws {
        let seed = randomizedTestSeed("stateAndHeadsDoNotDependOnArrivalOrder")
        var rng = SplitMix64(seed: seed)
        let (log, hub, entries) = try randomDAG(seed: seed, steps: 120)
        defer { log.cleanup() }
        let expectedState = try hub.stateSnapshot()
        let expectedHeads = try hub.heads()
        #expect(entries.contains { (try? SignedEntry(bodyBytes: $0.body, signature: $0.signature).kind) == .merge },
                "the DAG should contain merges (seed \(seed))")
        for permutation in 0..<12 {
            let order = try randomTopologicalOrder(entries, using: &rng)
            let node = try log.node("p\(permutation)")
            var index = 0
            while index < order.count {  // random batch sizes, one transaction each
                let size = Int.random(in: 1...20, using: &rng)
                #expect(try node.insert(Array(order[index..<min(index + size, order.count)])).rejected.isEmpty)
                index += size
            }
            #expect(try node.stateSnapshot() == expectedState, "seed \(seed), permutation \(permutation)")
            #expect(try node.heads() == expectedHeads, "seed \(seed), permutation \(permutation)")
        }
    }

    @Test func anyArrivalOrderConvergesThroughTheOrphanPool() throws {
        let seed = randomizedTestSeed("anyArrivalOrderConvergesThroughTheOrphanPool")
        var rng = SplitMix64(seed: seed)
        let (log, hub, entries) = try randomDAG(seed: seed, steps: 60)
        defer { log.cleanup() }
        for permutation in 0..<4 {
            let node = try log.node("s\(permutation)")
            for entry in entries.shuffled(using: &rng) { #expect(try node.insert([entry]).rejected.isEmpty) }
            #expect(try node.orphanCount() == 0, "seed \(seed)")
            #expect(try node.stateSnapshot() == hub.stateSnapshot(), "seed \(seed), permutation \(permutation)")
            #expect(try node.heads() == hub.heads(), "seed \(seed), permutation \(permutation)")
            #expect(try node.verify().isClean, "seed \(seed)")
        }
    }

    @Test func aLocalWriteOnDivergedHeadsFirstWritesAMergeRecordingTheDecision() throws {
        let (alice, bob) = (key(1), key(2))
        let log = TestLog(admin: alice, writers: [WriterGrant(key: bob.publicKey, role: .writer)])
        defer { log.cleanup() }
        let a = try log.node("a"), b = try log.node("b")
        let fromA = try a.put("t", "shared", "A", by: alice)
        _ = try a.put("t", "only-a", "A", by: alice)
        let fromB = try b.put("t", "shared", "B", by: bob)
        #expect(try a.insert(b.exportRaw()).rejected.isEmpty)
        #expect(try a.heads().count == 2)
        let written = try a.append([.put(bucket: "t", key: "after", value: [1])], signer: alice)
        #expect(written.count == 2)
        guard case .merge(let decisions) = written[0].payload else {
            Issue.record("expected a merge first")
            return
        }
        let winner = max(fromA, fromB)
        #expect(decisions == [MergeDecision(bucket: "t", key: "shared", winner: winner.id, losers: [min(fromA, fromB).id])])
        #expect(Set(written[0].parents) == Set([fromB.id, try a.history(bucket: "t", key: "only-a").last!.entry.id]))
        #expect(try a.heads().map(\.id) == [written[1].id])
        #expect(try a.verify().isClean)
    }
}
