import CairnCore
import CairnSQLite

/// A merge's record that a write lost to a concurrent one: the merge entry and the winner it
/// named.
public struct Defeat: Sendable, Hashable {
    public let merge: Hash32
    public let winner: Hash32

    public init(merge: Hash32, winner: Hash32) {
        (self.merge, self.winner) = (merge, winner)
    }
}

/// `merge_defeats`: the losers of every merge decision, derived from the merge entries alone,
/// so a key's history finds what was decided about each version by index (see Schema.swift).
extension LogStore {
    /// Records the defeats a merge entry's decisions name (apply and repair).
    func recordDefeats(of entry: SignedEntry) throws {
        try Self.recordDefeats(of: entry, in: database)
    }

    private static func recordDefeats(of entry: SignedEntry, in db: Database) throws {
        guard case .merge(let decisions) = entry.payload else { return }
        for decision in decisions {
            for loser in decision.losers {
                try db.prepare(Schema.insertDefeat).bind(.blob(loser.bytes), .blob(entry.id.bytes), .blob(decision.winner.bytes)).run()
            }
        }
    }

    /// Fills `merge_defeats` from every merge entry: the migration from schema 4, and the
    /// temporary copy of a schema-4 file opened read-only. A merge whose body does not decode
    /// records nothing (verify reports it).
    static func fillMergeDefeats(in db: Database) throws {
        let merges = try db.prepare(Schema.mergeEntries)
        defer { merges.reset() }
        while try merges.step() {
            guard let entry = try? SignedEntry(bodyBytes: merges.blob(0) ?? [], signature: merges.blob(1) ?? []) else { continue }
            try recordDefeats(of: entry, in: db)
        }
    }

    /// Makes `merge_defeats` readable: an older file opened read-only gets a temporary copy,
    /// filled once, on the first read that needs it.
    func requireMergeDefeats() throws {
        guard !mergeDefeatsReady else { return }
        if try !database.prepare(Schema.hasMergeDefeats).step() {
            database.resetStatements()
            try database.execute(Schema.createTemporaryMergeDefeats)
            try Self.fillMergeDefeats(in: database)
        }
        database.resetStatements()
        mergeDefeatsReady = true
    }

    /// The merges that recorded `loser` losing, and the winner each named.
    ///
    /// - Throws: SQLite errors; ``StoreError/corrupt(_:)`` for a malformed row.
    public func defeats(of loser: Hash32) throws -> [Defeat] {
        try requireMergeDefeats()
        return try database.readTransaction { try defeatRows(of: loser) }
    }

    /// The entries `read` returns, each with its defeats, all read in one transaction (one
    /// snapshot): a page of a key's history.
    ///
    /// - Throws: SQLite errors; ``StoreError/corrupt(_:)`` for a malformed row.
    public func withDefeats(_ read: () throws -> [StoredEntry]) throws -> [(StoredEntry, [Defeat])] {
        try requireMergeDefeats()
        return try database.readTransaction { try read().map { ($0, try defeatRows(of: $0.entry.id)) } }
    }

    private func defeatRows(of loser: Hash32) throws -> [Defeat] {
        let statement = try database.prepare(Schema.defeatsOf).bind(.blob(loser.bytes))
        var out: [Defeat] = []
        while try statement.step() {
            out.append(Defeat(merge: try statement.hash(0, "merge_defeats"), winner: try statement.hash(1, "merge_defeats")))
        }
        return out
    }

    /// The merge entries whose decisions mention `bucket/key`, with that decision.
    ///
    /// - Throws: SQLite errors; ``StoreError/corrupt(_:)`` for a malformed row.
    public func merges(deciding bucket: String, key: String) throws -> [(StoredEntry, MergeDecision)] {
        try requireMergeDefeats()
        return try database.readTransaction {
            var ids: [Hash32] = []
            let statement = try database.prepare(Schema.mergesDecidingKey).bind(.text(bucket), .text(key))
            while try statement.step() { ids.append(try statement.hash(0, "merge_defeats")) }
            var out: [(StoredEntry, MergeDecision)] = []
            for id in ids {
                guard let stored = try entry(id: id), case .merge(let decisions) = stored.entry.payload else { continue }
                for decision in decisions where KeyPath(bucket: decision.bucket, key: decision.key) == KeyPath(bucket: bucket, key: key) {
                    out.append((stored, decision))
                }
            }
            return out.sorted { $0.0.seq < $1.0.seq }
        }
    }

    // MARK: - verify

    /// verify: every defeat `entry` (a merge) records is in `merge_defeats`; returns how many
    /// rows it accounts for, so the caller can check that no other row exists.
    func checkDefeats(of entry: SignedEntry, problem: (String) -> Void) throws -> Int {
        guard case .merge(let decisions) = entry.payload else { return 0 }
        var rows = 0
        for decision in decisions {
            for loser in decision.losers {
                rows += 1
                let statement = try database.prepare(Schema.defeatExists)
                    .bind(.blob(loser.bytes), .blob(entry.id.bytes), .blob(decision.winner.bytes))
                if try !statement.step() { problem("merge_defeats lacks the defeat of \(loser.shortHex()) by \(decision.winner.shortHex())") }
                statement.reset()
            }
        }
        return rows
    }

    /// verify: `merge_defeats` holds exactly the `expected` rows the merge entries account for.
    func checkDefeatCount(expected: Int, into report: inout VerifyReport) throws {
        let stored = try count(Schema.defeatCount)
        if stored != expected { report.problem("merge_defeats has \(stored) rows, the merge entries record \(expected)") }
    }
}
