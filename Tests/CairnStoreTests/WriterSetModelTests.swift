import CairnCore
import CairnStore
import CairnTestSupport
import Foundation
import Testing

/// Model-based proof that the store is a function of its entry set: random DAGs with puts,
/// deletes, merges, grants, admin grants and revocations (self-revocations and revocations of
/// the granting admin included), applied in many random orders — children first through the
/// orphan pool, one by one or in batches — give byte-identical stores.
///
/// `CAIRN_MODEL_DAGS` sets how many DAGs to try (default 12); `CAIRN_SEED` replays one run.
@Suite struct WriterSetModelTests {
    @Test func everyArrivalOrderGivesTheSameStore() throws {
        let seed = randomizedTestSeed("everyArrivalOrderGivesTheSameStore")
        var rng = SplitMix64(seed: seed)
        let dags = ProcessInfo.processInfo.environment["CAIRN_MODEL_DAGS"].flatMap(Int.init) ?? 12
        for dag in 0..<dags {
            let dagSeed = rng.next()
            try checkOneDAG(seed: dagSeed, label: "seed \(seed), DAG \(dag) (dag seed \(dagSeed))")
        }
    }

    private func checkOneDAG(seed: UInt64, label: String) throws {
        var rng = SplitMix64(seed: seed)
        let (log, entries) = try randomWriterDAG(&rng, steps: 40)
        defer { log.cleanup() }
        let reference = try log.node("reference")
        #expect(try reference.insert(entries).rejected.isEmpty, "\(label)")
        let problems = try reference.verify().problems
        #expect(problems.isEmpty, "\(label): \(problems)")
        let expected = try storeSnapshot(reference)
        for order in 0..<6 {
            let node = try log.node("order\(order)")
            var shuffled = entries
            shuffled.shuffle(using: &rng)
            var rest = shuffled[...]
            while !rest.isEmpty {
                let size = order % 2 == 0 ? 1 : Int.random(in: 1...max(1, rest.count), using: &rng)
                let report = try node.insert(Array(rest.prefix(size)))
                #expect(report.rejected.isEmpty && report.rejectedPending.isEmpty, "\(label), order \(order)")
                rest = rest.dropFirst(size)
            }
            let snapshot = try storeSnapshot(node)
            #expect(snapshot == expected, "\(label), order \(order): \(firstDifference(snapshot, expected))")
            #expect(try node.verify().isClean, "\(label), order \(order)")
        }
    }

    private func firstDifference(_ a: [String], _ b: [String]) -> String {
        for (x, y) in zip(a, b) where x != y { return "\(x) ≠ \(y)" }
        return "\(a.count) vs \(b.count) lines"
    }
}

/// Entries, inert flags, state, heads, writer table, orphans, quarantine and merge defeats, as strings.
func storeSnapshot(_ node: LogStore) throws -> [String] {
    try node.entrySnapshot() + node.stateSnapshot() + node.heads().map { "head \($0.id.hex)" }
        + node.writers().map { "writer \($0.key.hex) \(String(describing: $0.status.role)) \(String(describing: $0.status.revokedFrom))" }
        + ["orphans \(try node.orphanCount())", "quarantined \(try node.quarantineCount())"]
        + node.defeatSnapshot()
}

/// Three nodes and five keys. Each step one node writes with a key it believes may (a put or
/// delete, a writer or admin grant, a revocation from some earlier HLC, sometimes of the
/// revoking admin's own granter), or signs a self-revocation by hand (which the library would
/// refuse), or syncs to another node (later writes there then merge first). Returns every
/// entry after the genesis, parents first.
func randomWriterDAG(_ rng: inout SplitMix64, steps: Int) throws -> (TestLog, [RawEntry]) {
    let keys = (1...5).map { key(UInt8($0)) }
    let log = TestLog(admin: keys[0])
    let nodes = try (0..<3).map { try log.node("n\($0)") }
    for _ in 0..<steps {
        let node = nodes[Int.random(in: 0..<3, using: &rng)]
        let signer = keys[Int.random(in: 0..<keys.count, using: &rng)]
        let status = try node.writerStatus(signer.publicKey)
        let now = node.lastHLC
        let canWrite = status.role != nil && !(status.revokedFrom.map { $0 <= now } ?? false)
        let isAdmin = canWrite && status.role == .admin
        switch Int.random(in: 0..<10, using: &rng) {
        case 0...3 where canWrite:
            let key = "k\(Int.random(in: 0..<3, using: &rng))"
            let write: LocalWrite = Int.random(in: 0..<4, using: &rng) == 0
                ? .delete(bucket: "b", key: key) : .put(bucket: "b", key: key, value: Array("\(rng.next() % 1000)".utf8))
            _ = try? node.append([write], signer: signer)
        case 4 where isAdmin, 5 where isAdmin:
            let grantee = keys[Int.random(in: 0..<keys.count, using: &rng)]
            let role: Role = Bool.random(using: &rng) ? .admin : .writer
            _ = try? node.append([.other(.addWriter(WriterGrant(key: grantee.publicKey, role: role)))], signer: signer)
        case 6 where isAdmin:
            let revoked = keys[Int.random(in: 0..<keys.count, using: &rng)]
            let entries = try node.entries(afterSeq: 0, limit: .max)
            let from = Bool.random(using: &rng) ? HLC.zero : entries[Int.random(in: 0..<entries.count, using: &rng)].entry.hlc
            // Refused locally when it would revoke the last admin or the signer itself.
            _ = try? node.append([.other(.revokeWriter(key: revoked.publicKey, from: from))], signer: signer)
        case 7 where isAdmin && Int.random(in: 0..<3, using: &rng) == 0:
            let selfRevocation = LogStore.sign(
                .revokeWriter(key: signer.publicKey, from: now), by: signer, hlc: HLC(rawValue: now.rawValue + 1),
                parents: try node.heads().map(\.id))
            #expect(try node.insert([RawEntry(selfRevocation)]).rejected.isEmpty)
        case 8, 9:
            let other = nodes[Int.random(in: 0..<3, using: &rng)]
            #expect(try other.insert(node.exportRaw()).rejected.isEmpty)
        default:
            break
        }
        if Int.random(in: 0..<3, using: &rng) == 0 { log.clock.advance(UInt64.random(in: 0..<3, using: &rng)) }
    }
    let hub = try log.node("hub")
    for node in nodes { #expect(try hub.insert(node.exportRaw()).rejected.isEmpty) }
    return (log, try hub.exportRaw())
}
