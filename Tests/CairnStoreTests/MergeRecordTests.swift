import CairnCore
import CairnSQLite
import CairnStore
import Testing

/// Issue #8 item 3: a merge's decisions are a function of its parents' ancestry; ingest
/// refuses a merge that records anything else, and `verify` rechecks every stored merge.
@Suite struct MergeRecordTests {
    /// Two nodes write `b/k` concurrently and exchange entries: two heads, one conflict.
    private func diverged() throws -> (TestLog, LogStore, winner: SignedEntry, loser: SignedEntry) {
        let log = TestLog(writers: [WriterGrant(key: key(2).publicKey, role: .writer)])
        let a = try log.node("a"), b = try log.node("b")
        let first = try a.put("b", "k", "from a", by: log.admin)
        let second = try b.put("b", "k", "from b", by: key(2))
        #expect(try a.insert(b.exportRaw()).rejected.isEmpty)
        let (winner, loser) = (first.hlc, first.author, first.id) > (second.hlc, second.author, second.id) ? (first, second) : (second, first)
        return (log, a, winner, loser)
    }

    private func lyingMerge(_ decisions: [MergeDecision], on node: LogStore, by signer: SigningKey) throws -> SignedEntry {
        let heads = try node.heads()
        return LogStore.sign(.merge(decisions: decisions), by: signer, hlc: HLC(rawValue: heads.map(\.hlc.rawValue).max()! + 1), parents: heads.map(\.id).sorted())
    }

    @Test func anHonestMergeIsAcceptedAndAnyLieIsRefused() throws {
        let (log, a, winner, loser) = try diverged()
        defer { log.cleanup() }
        let honest = MergeDecision(bucket: "b", key: "k", winner: winner.id, losers: [loser.id])
        let lies: [(String, [MergeDecision])] = [
            ("wrong winner", [MergeDecision(bucket: "b", key: "k", winner: loser.id, losers: [winner.id])]),
            ("omitted key", []),
            ("entries that do not exist", [MergeDecision(bucket: "b", key: "k", winner: Hash32(bytes: [UInt8](repeating: 7, count: 32))!, losers: [loser.id])]),
            ("an extra key", [honest, MergeDecision(bucket: "b", key: "z", winner: winner.id, losers: [loser.id])]),
        ]
        for (what, decisions) in lies {
            let peer = try log.node()
            #expect(try peer.insert(a.exportRaw()).rejected.isEmpty)
            let report = try peer.insert([RawEntry(try lyingMerge(decisions, on: a, by: log.admin))])
            #expect(report.rejected.map(\.reason) == [.mergeDecisionsMismatch], "\(what)")
            #expect(try peer.heads().count == 2, "\(what): nothing applied")
        }
        let peer = try log.node()
        #expect(try peer.insert(a.exportRaw() + [RawEntry(try lyingMerge([honest], on: a, by: log.admin))]).rejected.isEmpty)
        #expect(try peer.heads().count == 1 && peer.verify().isClean)
    }

    @Test func theMergeALocalWriteMakesRecordsTheDecisionItsParentsGive() throws {
        let (log, a, winner, loser) = try diverged()
        defer { log.cleanup() }
        let written = try a.append([.put(bucket: "b", key: "other", value: [1])], signer: log.admin)
        guard case .merge(let decisions) = written.first?.payload else { Issue.record("no merge written"); return }
        #expect(decisions == [MergeDecision(bucket: "b", key: "k", winner: winner.id, losers: [loser.id])])
        let peer = try log.node()
        #expect(try peer.insert(a.exportRaw()).rejected.isEmpty, "every node recomputes the same decisions")
    }

    /// A lying merge planted past ingest (a store written by older code, or tampered) is
    /// reported by `verify`.
    @Test func verifyRechecksEveryStoredMerge() throws {
        let (log, a, winner, loser) = try diverged()
        defer { log.cleanup() }
        let lie = try lyingMerge([MergeDecision(bucket: "b", key: "k", winner: loser.id, losers: [winner.id])], on: a, by: log.admin)
        try a.database.prepare("""
            INSERT INTO entries(id, hlc, author, kind, body, sig, ingested_ms) VALUES(?1, ?2, ?3, 4, ?4, ?5, 0)
            """).bind(.blob(lie.id.bytes), .integer(lie.hlc.rawValue), .blob(lie.author.bytes), .blob(lie.bodyBytes), .blob(lie.signature)).run()
        for parent in lie.parents {
            try a.database.prepare("INSERT INTO parents(child, parent) VALUES(?1, ?2)").bind(.blob(lie.id.bytes), .blob(parent.bytes)).run()
        }
        try a.database.execute("DELETE FROM heads")
        try a.database.prepare("INSERT INTO heads(id) VALUES(?1)").bind(.blob(lie.id.bytes)).run()
        // Its defeat indexed as apply indexes it, so the lie is the only problem left.
        try a.database.prepare("INSERT INTO merge_defeats(loser, merge, winner) VALUES(?1, ?2, ?3)")
            .bind(.blob(winner.id.bytes), .blob(lie.id.bytes), .blob(loser.id.bytes)).run()
        let problems = try a.verify().problems.map(\.message)
        #expect(problems == [RejectReason.mergeDecisionsMismatch.description], "\(problems)")
    }
}
