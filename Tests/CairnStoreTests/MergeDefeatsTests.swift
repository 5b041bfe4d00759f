import CairnCore
import CairnSQLite
import CairnStore
import Foundation
import Testing

extension LogStore {
    /// Every `merge_defeats` row as a comparable string, sorted.
    func defeatSnapshot() throws -> [String] {
        var out: [String] = []
        let statement = try database.prepare("SELECT loser, merge, winner FROM merge_defeats")
        while try statement.step() {
            out.append("defeat \(Hex.encode(statement.blob(0) ?? [])) by \(Hex.encode(statement.blob(2) ?? [])) in \(Hex.encode(statement.blob(1) ?? []))")
        }
        statement.reset()
        return out.sorted()
    }
}

/// A key's history reads in pages, each version with the merges that recorded its defeat,
/// found through `merge_defeats` (an index derived from the merge entries, checked by verify,
/// rebuilt by repair, filled on migration) instead of reading every merge written since.
@Suite struct MergeDefeatsTests {
    /// Two writers write `b/k` concurrently `rounds` times; after each round the nodes swap
    /// entries and `a` writes elsewhere, which makes a merge deciding `b/k`.
    private func contestedKey(rounds: Int) throws -> (TestLog, a: LogStore, b: LogStore) {
        let log = TestLog(writers: [WriterGrant(key: key(2).publicKey, role: .writer)])
        let a = try log.node("a"), b = try log.node("b")
        for round in 0..<rounds {
            _ = try a.put("b", "k", "a\(round)", by: log.admin)
            _ = try b.put("b", "k", "b\(round)", by: key(2))
            _ = try a.insert(b.exportRaw())
            _ = try a.put("b", "other", "\(round)", by: log.admin)
            _ = try b.insert(a.exportRaw())
        }
        return (log, a, b)
    }

    @Test func aKeysHistoryReadsInPagesWithTheDefeatsItsMergesRecord() throws {
        let (log, a, b) = try contestedKey(rounds: 6)
        defer { log.cleanup() }
        let all = try a.history(bucket: "b", key: "k")
        #expect(try all.count == 12 && a.historyCount(bucket: "b", key: "k") == 12)
        for limit in [1, 5, 100] {
            var paged: [StoredEntry] = []
            while case let page = try a.historyPage(bucket: "b", key: "k", after: paged.last?.entry, limit: limit), !page.isEmpty { paged += page }
            #expect(paged.map(\.entry.id) == all.map(\.entry.id), "pages of \(limit)")
        }
        #expect(try a.newestHistory(bucket: "b", key: "k", count: 3).map(\.entry.id) == all.suffix(3).map(\.entry.id))

        // The index says what the merges say, loser by loser.
        let merges = try a.merges(deciding: "b", key: "k")
        #expect(merges.count == 6)
        var expected: [Hash32: [Defeat]] = [:]
        for (merge, decision) in merges {
            for loser in decision.losers { expected[loser, default: []].append(Defeat(merge: merge.entry.id, winner: decision.winner)) }
        }
        for version in all {
            #expect(try a.defeats(of: version.entry.id) == (expected[version.entry.id] ?? []))
        }
        #expect(expected.count == 6, "one loser per round")
        #expect(try a.defeatSnapshot() == b.defeatSnapshot(), "the same on every node")
        #expect(try a.verify().isClean && b.verify().isClean)
    }

    @Test(arguments: [
        "DELETE FROM merge_defeats WHERE loser = (SELECT loser FROM merge_defeats LIMIT 1)",
        "INSERT INTO merge_defeats(loser, merge, winner) VALUES(zeroblob(32), zeroblob(32), zeroblob(32))",
        "UPDATE merge_defeats SET winner = zeroblob(32)",
    ])
    func tamperingWithTheIndexIsFoundAndRepaired(tampering: String) throws {
        let (log, a, b) = try contestedKey(rounds: 3)
        defer { log.cleanup() }
        let untampered = try b.defeatSnapshot()
        try a.database.execute(tampering)
        #expect(try a.verify().problems.contains { $0.message.contains("merge_defeats") }, "\(tampering)")
        try a.repair()
        #expect(try a.verify().isClean)
        #expect(try a.defeatSnapshot() == untampered)
    }

    /// A file of schema 4 (before the index) gets it filled on its first read-write open; a
    /// read-only open of one reads its history through a temporary copy and leaves it as is.
    @Test func aSchemaFourFileIsFilledOnMigrationAndReadableReadOnly() throws {
        let (log, a, _) = try contestedKey(rounds: 3)
        defer { log.cleanup() }
        let expected = try a.defeatSnapshot()
        let path = log.directory.appendingPathComponent("a.db").path
        try a.database.execute("DROP TABLE merge_defeats; ALTER TABLE peer_status DROP COLUMN held; UPDATE meta SET value = 4 WHERE name = 'schema_version'")

        let readOnly = try LogStore.open(path: path, options: log.options, readOnly: true)
        let loser = try #require(try readOnly.merges(deciding: "b", key: "k").first?.1.losers.first)
        #expect(try readOnly.defeats(of: loser).count == 1)
        #expect(try readOnly.verify().isClean)
        #expect(try schemaVersion(readOnly) == 4, "a read-only open changes nothing")

        let migrated = try LogStore.open(path: path, options: log.options)
        #expect(try schemaVersion(migrated) == 5)
        #expect(try migrated.defeatSnapshot() == expected)
        #expect(try migrated.verify().isClean)
    }

    private func schemaVersion(_ node: LogStore) throws -> Int64 {
        let statement = try node.database.prepare("SELECT value FROM meta WHERE name = 'schema_version'")
        defer { statement.reset() }
        return try statement.step() ? statement.int64(0) : 0
    }
}
