import CairnCore
import CairnSQLite
import Dispatch
import Foundation

/// One problem `verify` found.
public struct VerifyProblem: Sendable, CustomStringConvertible {
    /// The entry concerned, when the problem is about one entry.
    public let entryID: Hash32?
    /// Its ingest sequence number, when known.
    public let seq: Int64?
    public let message: String

    public init(entryID: Hash32?, seq: Int64?, message: String) {
        (self.entryID, self.seq, self.message) = (entryID, seq, message)
    }

    public var description: String {
        var where_ = ""
        if let seq { where_ += "seq \(seq) " }
        if let entryID { where_ += "entry \(entryID.shortHex()) " }
        return where_.isEmpty ? message : "\(where_): \(message)"
    }
}

/// The outcome of ``LogStore/verify(progress:)``.
public struct VerifyReport: Sendable {
    public var entriesChecked = 0
    public var valuesChecked = 0
    public var problems: [VerifyProblem] = []
    public var isClean: Bool { problems.isEmpty }
    /// Rows of `merge_defeats` the merge entries checked so far account for.
    var defeatsRecorded = 0
}

extension LogStore {
    /// Checks everything, like `git fsck`, recomputing every derived table from the signed
    /// entries alone: the SQLite file; every entry's encoding, id, signature and stored columns;
    /// every parent link (present, applied earlier, lower HLC) and edge row; the writer set
    /// (`writer_events`, `writers`) and every inert flag by the writer-set rule; every merge's
    /// decisions and their `merge_defeats` rows; the heads; the state of every key (winner, tombstone, value digest and
    /// length); value presence and bytes; and the orphan and quarantine bookkeeping.
    ///
    /// Streams the log in batches: memory is bounded by the batch and the writer-set entries.
    /// `progress(done, total)` is called after each batch.
    ///
    /// - Throws: SQLite errors reading the file (a problem found is reported, not thrown).
    public func verify(progress: (Int, Int) -> Void = { _, _ in }) throws -> VerifyReport {
        var report = VerifyReport()
        try requireMergeDefeats()
        try database.readTransaction {
            try checkSQLiteIntegrity(&report)
            let total = try entryCount()
            let writerSet = try checkWriterSet(&report)
            try forEachDecodedBatch { rows, decoded in
                for (row, entry) in zip(rows, decoded) {
                    report.entriesChecked += 1
                    try check(row, entry, writerSet: writerSet, into: &report)
                }
                progress(report.entriesChecked, total)
            }
            try checkDefeatCount(expected: report.defeatsRecorded, into: &report)
            try checkHeads(&report)
            try checkState(&report)
            try checkValues(&report)
            try checkPending(&report)
        }
        return report
    }

    /// Rebuilds every derived table from the signed entries, in one transaction: the stored
    /// columns and parent edges of each entry, `writer_events`, `writers` and the inert flags, `merge_defeats`,
    /// the heads, the state, value rows for every put (bytes that do not match their digest are
    /// dropped, to be fetched again), and the orphans' wait list. Entry bodies and signatures
    /// are never rewritten; an entry whose body does not decode or whose id or signature is
    /// wrong cannot be repaired and is reported by `verify` still.
    ///
    /// - Throws: SQLite errors; the transaction then rolls back and nothing changes.
    public func repair() throws {
        try database.writeTransaction {
            // The change log is history, not derived: keep it, and record the keys whose winner
            // the rebuild changed (cause `rebuild`).
            try database.execute(Schema.saveStateForRebuild)
            changeRecorder.suspended = true
            defer { changeRecorder.suspended = false }
            try database.execute(Schema.clearDerivedTables)
            try forEachEntryRow { row in
                guard let entry = try? SignedEntry(bodyBytes: row.body, signature: row.sig), entry.id.bytes == row.id else { return }
                let target = entry.payload.target
                try database.prepare(Schema.rewriteEntryColumns).bind(
                    .int(row.seq), .integer(entry.hlc.rawValue), .blob(entry.author.bytes), .integer(entry.kind.rawValue),
                    target.map { .text($0.bucket) } ?? .null, target.map { .text($0.key) } ?? .null
                ).run()
                for parent in entry.parents {
                    try database.prepare(Schema.insertParent).bind(.blob(entry.id.bytes), .blob(parent.bytes)).run()
                }
                if case .put(_, _, let ref) = entry.payload {
                    try database.prepare(Schema.insertMissingValue).bind(.blob(ref.digest.bytes), .integer(ref.length)).run()
                }
                if let writerSetEntry = WriterSetEntry(entry) { try recordWriterEvents(of: writerSetEntry) }
                try recordDefeats(of: entry)
            }
            try database.execute(Schema.rebuildHeads)
            try dropMismatchedValues()
            try recomputeWriterSet()
            try rebuildState()
            try rebuildOrphanWaits()
            try database.execute(Schema.orphanPoolV3)
            try database.prepare(Schema.recordRebuildChanges).bind(.int(try lastSeq()), .integer(nowMilliseconds)).run()
            database.resetStatements()
            try database.execute(Schema.dropStateBeforeRebuild)
        }
    }

    private func checkSQLiteIntegrity(_ report: inout VerifyReport) throws {
        let statement = try database.prepare(Schema.quickCheck)
        while try statement.step() {
            let line = statement.text(0) ?? ""
            if line != "ok" { report.problem("SQLite: \(line)") }
        }
    }

    /// A stored row, undecoded, so that corruption is reported instead of thrown.
    struct EntryRow {
        let seq: Int64, id: [UInt8], hlc: Int64, author: [UInt8], kind: Int64
        let bucket: String?, key: String?, body: [UInt8], sig: [UInt8], inert: Bool
    }

    private func entryRows(afterSeq cursor: Int64) throws -> [EntryRow] {
        let statement = try database.prepare(Schema.entriesAfterSeq).bind(.int(cursor), .int(1000))
        var rows: [EntryRow] = []
        while try statement.step() {
            rows.append(EntryRow(
                seq: statement.int64(0), id: statement.blob(1) ?? [], hlc: statement.int64(2),
                author: statement.blob(3) ?? [], kind: statement.int64(4), bucket: statement.text(5),
                key: statement.text(6), body: statement.blob(7) ?? [], sig: statement.blob(8) ?? [],
                inert: statement.int64(9) != 0))
        }
        return rows
    }

    private func forEachEntryRow(_ body: (EntryRow) throws -> Void) throws {
        var rows = try entryRows(afterSeq: 0)
        while let last = rows.last {
            for row in rows { try body(row) }
            rows = try entryRows(afterSeq: last.seq)
        }
    }

    /// A row decoded and its signature checked, off the connection's thread.
    enum DecodedRow: Sendable {
        case entry(SignedEntry, signatureValid: Bool)
        case undecodable(String)
    }

    /// The log in batches of 1000 rows, each decoded and signature-checked on
    /// ``StoreOptions/verifierThreads`` threads while the previous batch's database checks run
    /// on this one: signature verification, the dominant cost, overlaps everything else.
    private func forEachDecodedBatch(_ body: ([EntryRow], [DecodedRow]) throws -> Void) throws {
        let threads = options.verifierThreads
        @Sendable func decode(_ rows: [EntryRow]) -> [DecodedRow] {
            parallelMap(count: rows.count, threads: threads) { i in
                do {
                    let entry = try SignedEntry(bodyBytes: rows[i].body, signature: rows[i].sig)
                    return .entry(entry, signatureValid: entry.hasValidSignature)
                } catch {
                    return .undecodable("\(error)")
                }
            }
        }
        var rows = try entryRows(afterSeq: 0)
        var decoded = decode(rows)
        while let last = rows.last {
            let next = try entryRows(afterSeq: last.seq)
            let ahead = Prefetch { decode(next) }
            try body(rows, decoded)
            (rows, decoded) = (next, ahead.wait())
        }
    }

    /// Recomputes the writer set from the signed writer-set entries and compares it with
    /// `writer_events` and `writers`. Returns the recomputed set, against which every inert
    /// flag is then checked.
    private func checkWriterSet(_ report: inout VerifyReport) throws -> WriterSet {
        var entries: [WriterSetEntry] = []
        let statement = try database.prepare(Schema.writerSetBodies)
        while try statement.step() {
            guard let body = statement.blob(0), let sig = statement.blob(1),
                  let entry = try? SignedEntry(bodyBytes: body, signature: sig), let change = WriterSetEntry(entry)
            else { continue }  // the entry pass reports it
            entries.append(change)
        }
        let recomputed = WriterSet(entries)
        func line(_ change: WriterSetEntry, _ event: WriterSetEntry.Event) -> String {
            switch event {
            case .grant(let key, let role): "\(change.id.hex) grants \(key.hex) \(role)"
            case .revoke(let key, let from): "\(change.id.hex) revokes \(key.hex) from \(from.rawValue)"
            }
        }
        let expectedEvents = Set(entries.flatMap { change in change.events.map { line(change, $0) } })
        let storedEvents = Set(try storedWriterSetEntries().flatMap { change in change.events.map { line(change, $0) } })
        for line in expectedEvents.subtracting(storedEvents).sorted() { report.problem("writer_events lacks: \(line)") }
        for line in storedEvents.subtracting(expectedEvents).sorted() { report.problem("writer_events has a row no entry signs: \(line)") }
        var stored: [PublicKey: WriterStatus] = [:]
        for info in try writers() { stored[info.key] = info.status }
        for key in Set(stored.keys).union(recomputed.statuses.keys).sorted() where stored[key] != recomputed.statuses[key] {
            report.problem("writers: \(key.hex) is \(describe(stored[key])), the writer-set rule gives \(describe(recomputed.statuses[key]))")
        }
        return recomputed
    }

    private func describe(_ status: WriterStatus?) -> String {
        guard let status else { return "absent" }
        return "\(status.role.map(\.description) ?? "no role")\(status.revokedFrom.map { ", revoked from \($0.rawValue)" } ?? "")"
    }

    private func check(_ row: EntryRow, _ decoded: DecodedRow, writerSet: WriterSet, into report: inout VerifyReport) throws {
        func problem(_ message: String) {
            report.problems.append(VerifyProblem(entryID: Hash32(bytes: row.id), seq: row.seq, message: message))
        }
        let entry: SignedEntry
        switch decoded {
        case .undecodable(let error): return problem("body does not decode: \(error)")
        case .entry(let decoded, let signatureValid):
            entry = decoded
            guard entry.id.bytes == row.id else { return problem("stored id does not match the body's hash \(entry.id.shortHex())") }
            if !signatureValid { problem("bad signature") }
        }
        let target = entry.payload.target
        if row.hlc != Int64(bitPattern: entry.hlc.rawValue) || row.author != entry.author.bytes
            || row.kind != Int64(entry.kind.rawValue) || !sameBytes(row.bucket, target?.bucket) || !sameBytes(row.key, target?.key)
        {
            problem("stored columns disagree with the signed body")
        }
        try checkParents(entry, seq: row.seq, problem: problem)
        let inert = writerSet.isInert(id: entry.id, kind: entry.kind, author: entry.author, hlc: entry.hlc)
        if row.inert != inert { problem("inert flag is \(row.inert), the writer-set rule gives \(inert)") }
        if case .genesis = entry.payload {} else if writerSet.status(of: entry.author).role == nil {
            problem("writer rule: \(RejectReason.unknownAuthor(entry.author))")
        }
        if case .merge = entry.payload, let reason = try? mergeProblem(entry) { problem("\(reason)") }
        report.defeatsRecorded += try checkDefeats(of: entry, problem: problem)
        if case .put(_, _, let ref) = entry.payload { try checkValueRow(ref, problem: problem) }
    }

    private func checkParents(_ entry: SignedEntry, seq: Int64, problem: (String) -> Void) throws {
        if case .genesis = entry.payload {
            if entry.id != logID { problem("a second genesis entry") }
            return
        }
        for parent in entry.parents {
            let statement = try database.prepare(Schema.seqAndHLC).bind(.blob(parent.bytes))
            guard try statement.step() else {
                problem("parent \(parent.shortHex()) is missing")
                continue
            }
            if statement.int64(0) >= seq { problem("parent \(parent.shortHex()) was applied after its child") }
            if UInt64(statement.int64(1)) >= entry.hlc.rawValue { problem("HLC not above parent \(parent.shortHex())") }
        }
        if Set(try parentEdges(of: entry.id)) != Set(entry.parents) { problem("parent edges disagree with the signed body") }
    }

    /// Every put has a value row of its digest and length (the bytes may be purged or missing).
    private func checkValueRow(_ ref: ValueRef, problem: (String) -> Void) throws {
        let statement = try database.prepare(Schema.valueLength).bind(.blob(ref.digest.bytes))
        guard try statement.step() else { return problem("value \(ref.digest.shortHex()) has no value_store row") }
        if statement.int64(0) != Int64(ref.length) && statement.int64(1) == 0 {
            problem("value \(ref.digest.shortHex()) has length \(statement.int64(0)) in value_store, \(ref.length) signed")
        }
    }

    private func checkHeads(_ report: inout VerifyReport) throws {
        for (sql, message) in [(Schema.headsNotChildless, "is a head but has children"),
                               (Schema.childlessNotHeads, "has no children but is not a head")] {
            let statement = try database.prepare(sql)
            while try statement.step() {
                report.problems.append(VerifyProblem(entryID: Hash32(bytes: statement.blob(0) ?? []), seq: nil, message: message))
            }
        }
    }

    /// Every state row equals its key's LWW winner among the live writes (the inert flags were
    /// checked against the writer-set rule first), column by column; every key with live writes
    /// has a row.
    private func checkState(_ report: inout VerifyReport) throws {
        let rows = try database.prepare(Schema.allState)
        while try rows.step() {
            let bucket = rows.text(0) ?? "", key = rows.text(1) ?? ""
            let path = "\(bucket)/\(key)"
            let winner = try database.prepare(Schema.keyWinner).bind(.text(bucket), .text(key))
            guard try winner.step(), let id = winner.blob(0).flatMap(Hash32.init(bytes:)) else {
                report.problem("\(path): state row for a key with no live write")
                continue
            }
            guard let stored = try? entry(id: id) else { continue }  // the entry pass reports a body that does not decode
            let entry = stored.entry
            var ref: ValueRef?
            if case .put(_, _, let r) = entry.payload { ref = r }
            let matches = rows.blob(2) == entry.id.bytes && rows.int64(3) == Int64(entry.hlc.rawValue)
                && rows.blob(4) == entry.author.bytes && (rows.int64(5) != 0) == (ref == nil)
                && rows.blob(6) == ref?.digest.bytes && (rows.isNull(7) ? nil : rows.int64(7)) == ref.map { Int64($0.length) }
            if !matches { report.problem("\(path): state is not the LWW winner \(entry.id.shortHex()) (entry, HLC, author, tombstone, value digest or length differ)") }
        }
        let missing = try database.prepare(Schema.missingState)
        while try missing.step() { report.problem("\(missing.text(0) ?? "?")/\(missing.text(1) ?? "?"): key has writes but no state") }
    }

    private func checkValues(_ report: inout VerifyReport) throws {
        let statement = try database.prepare(Schema.allValues)
        while try statement.step() {
            report.valuesChecked += 1
            let data = statement.blob(2) ?? []
            let ref = ValueRef(of: data)
            if ref.digest.bytes != statement.blob(0) || Int64(ref.length) != statement.int64(1) {
                report.problem("value \(Hex.encode(statement.blob(0) ?? []).prefix(12)) does not match its digest or length")
            }
        }
    }

    /// Orphans and quarantined entries: each decodes to its id; each orphan waits for exactly
    /// its parents that are not applied, and nothing waits for an orphan that is gone.
    private func checkPending(_ report: inout VerifyReport) throws {
        for (sql, table) in [(Schema.allOrphans, "orphans"), (Schema.allQuarantined, "quarantine")] {
            let statement = try database.prepare(sql)
            while try statement.step() {
                let id = statement.blob(0) ?? []
                guard let entry = try? SignedEntry(bodyBytes: statement.blob(1) ?? [], signature: statement.blob(2) ?? []),
                      entry.id.bytes == id, entry.hasValidSignature
                else {
                    report.problem("\(table): \(Hex.encode(id).prefix(12)) does not decode to a signed entry of that id")
                    continue
                }
                guard table == "orphans" else { continue }
                let missing = try Set(entry.parents.filter { try storedHLC(of: $0) == nil })
                if Set(try waits(of: entry.id)) != missing {
                    report.problem("orphans: \(entry.id.shortHex()) does not wait for exactly its missing parents")
                }
            }
        }
        if try count(Schema.orphanRows) != orphanCount() { report.problem("meta.orphan_count is not the number of orphans") }
        let stray = try database.prepare(Schema.strayOrphanWaits)
        while try stray.step() { report.problem("orphan_waits: a row for \(Hex.encode(stray.blob(0) ?? []).prefix(12)), which is not an orphan") }
    }

    private func waits(of orphan: Hash32) throws -> [Hash32] {
        let statement = try database.prepare(Schema.waitsOfOrphan).bind(.blob(orphan.bytes))
        var out: [Hash32] = []
        while try statement.step() { if let id = statement.blob(0).flatMap(Hash32.init(bytes:)) { out.append(id) } }
        return out
    }

    // MARK: - Repair steps

    private func dropMismatchedValues() throws {
        var bad: [[UInt8]] = []
        let statement = try database.prepare(Schema.allValues)
        while try statement.step() {
            let ref = ValueRef(of: statement.blob(2) ?? [])
            if ref.digest.bytes != statement.blob(0) || Int64(ref.length) != statement.int64(1) { bad.append(statement.blob(0) ?? []) }
        }
        for digest in bad { try database.prepare(Schema.forgetValueBytes).bind(.blob(digest)).run() }
    }

    private func rebuildState() throws {
        var keys: [KeyPath] = []
        let statement = try database.prepare(Schema.liveKeys)
        while try statement.step() {
            if let bucket = statement.text(0), let key = statement.text(1) { keys.append(KeyPath(bucket: bucket, key: key)) }
        }
        for path in keys { try recomputeState(bucket: path.bucket, key: path.key) }
    }

    private func rebuildOrphanWaits() throws {
        var orphans: [SignedEntry] = []
        let statement = try database.prepare(Schema.allOrphans)
        while try statement.step() {
            if let entry = try? SignedEntry(bodyBytes: statement.blob(1) ?? [], signature: statement.blob(2) ?? []) { orphans.append(entry) }
        }
        for orphan in orphans {
            for parent in orphan.parents where try storedHLC(of: parent) == nil {
                try database.prepare(Schema.insertOrphanWait).bind(.blob(parent.bytes), .blob(orphan.id.bytes)).run()
            }
        }
    }
}

extension VerifyReport {
    mutating func problem(_ message: String) { problems.append(VerifyProblem(entryID: nil, seq: nil, message: message)) }
}

/// Work started on a global queue now, its result collected later by ``wait()``. If no pool
/// thread has picked the work up by then, ``wait()`` runs it itself: it never blocks on a work
/// item that has not started (with the pool's threads all busy or blocked, that could be never).
private final class Prefetch<T: Sendable>: @unchecked Sendable {
    private let work: @Sendable () -> T
    private var result: T?
    private var claimed = false  // guarded by `lock`
    private let lock = NSLock()
    private let done = DispatchSemaphore(value: 0)

    init(_ work: @escaping @Sendable () -> T) {
        self.work = work
        DispatchQueue.global().async {
            guard self.claim() else { return }
            self.result = work()
            self.done.signal()
        }
    }

    private func claim() -> Bool {
        lock.withLock {
            defer { claimed = true }
            return !claimed
        }
    }

    /// The work's result: computed here if no pool thread has started it, else waited for.
    /// Call once.
    func wait() -> T {
        if claim() { return work() }
        done.wait()
        return result!
    }
}
