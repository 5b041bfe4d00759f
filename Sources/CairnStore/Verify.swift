import CairnCore
import CairnSQLite

/// One problem `verify` found.
public struct VerifyProblem: Sendable, CustomStringConvertible {
    /// The entry concerned, when the problem is about one entry.
    public let entryID: Hash32?
    /// Its ingest sequence number, when known.
    public let seq: Int64?
    public let message: String

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
}

extension LogStore {
    /// Checks everything, like `git fsck`: the SQLite file, every entry's encoding, id,
    /// signature and stored columns, every parent link (present, applied earlier, lower HLC),
    /// the writer rules, the heads, the materialized state and every stored value's digest.
    ///
    /// Streams the log in batches, so memory stays bounded. `progress(done, total)` is called
    /// after each batch.
    public func verify(progress: (Int, Int) -> Void = { _, _ in }) throws -> VerifyReport {
        var report = VerifyReport()
        try database.readTransaction {
            try checkSQLiteIntegrity(&report)
            let total = try entryCount()
            writerCache.removeAll()
            try forEachEntryRow { row in
                report.entriesChecked += 1
                try check(row, into: &report)
                if report.entriesChecked % 1000 == 0 { progress(report.entriesChecked, total) }
            }
            progress(report.entriesChecked, total)
            try checkHeads(&report)
            try checkState(&report)
            try checkValues(&report)
        }
        return report
    }

    private func checkSQLiteIntegrity(_ report: inout VerifyReport) throws {
        let statement = try database.prepare(Schema.quickCheck)
        while try statement.step() {
            let line = statement.text(0) ?? ""
            if line != "ok" { report.problems.append(VerifyProblem(entryID: nil, seq: nil, message: "SQLite: \(line)")) }
        }
    }

    /// A stored row, undecoded, so that corruption is reported instead of thrown.
    struct EntryRow {
        let seq: Int64, id: [UInt8], hlc: Int64, author: [UInt8], kind: Int64
        let bucket: String?, key: String?, body: [UInt8], sig: [UInt8], inert: Bool
    }

    private func forEachEntryRow(_ body: (EntryRow) throws -> Void) throws {
        var cursor: Int64 = 0
        while true {
            let statement = try database.prepare(Schema.entriesAfterSeq).bind(.int(cursor), .int(1000))
            var rows: [EntryRow] = []
            while try statement.step() {
                rows.append(EntryRow(
                    seq: statement.int64(0), id: statement.blob(1) ?? [], hlc: statement.int64(2),
                    author: statement.blob(3) ?? [], kind: statement.int64(4), bucket: statement.text(5),
                    key: statement.text(6), body: statement.blob(7) ?? [], sig: statement.blob(8) ?? [],
                    inert: statement.int64(9) != 0))
            }
            guard let last = rows.last else { return }
            for row in rows { try body(row) }
            cursor = last.seq
        }
    }

    private func check(_ row: EntryRow, into report: inout VerifyReport) throws {
        func problem(_ message: String) {
            report.problems.append(VerifyProblem(entryID: Hash32(bytes: row.id), seq: row.seq, message: message))
        }
        let entry: SignedEntry
        do {
            entry = try SignedEntry(bodyBytes: row.body, signature: row.sig)
        } catch {
            return problem("body does not decode: \(error)")
        }
        guard entry.id.bytes == row.id else { return problem("stored id does not match the body's hash \(entry.id.shortHex())") }
        if !entry.hasValidSignature { problem("bad signature") }
        let target = entry.payload.target
        if row.hlc != Int64(bitPattern: entry.hlc.rawValue) || row.author != entry.author.bytes
            || row.kind != Int64(entry.kind.rawValue) || !sameBytes(row.bucket, target?.bucket) || !sameBytes(row.key, target?.key)
        {
            problem("stored columns disagree with the signed body")
        }
        try checkParents(entry, seq: row.seq, problem: problem)
        try checkWriterRule(entry, seq: row.seq, inert: row.inert, problem: problem)
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

    private func checkWriterRule(_ entry: SignedEntry, seq: Int64, inert: Bool, problem: (String) -> Void) throws {
        if case .genesis = entry.payload { return }
        let reason = try authorizationProblem(entry)
        switch (reason, inert) {
        case (nil, true): problem("marked inert, but its author may write at its HLC")
        case (.some(.revokedAuthor), true): break  // its author was revoked at its HLC, before or after it arrived
        case (.some(let reason), _): problem("writer rule: \(reason)")
        case (nil, false): break
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

    private func checkState(_ report: inout VerifyReport) throws {
        for (sql, message) in [(Schema.staleState, "state is not the LWW winner"), (Schema.missingState, "key has writes but no state")] {
            let statement = try database.prepare(sql)
            while try statement.step() {
                let path = "\(statement.text(0) ?? "?")/\(statement.text(1) ?? "?")"
                report.problems.append(VerifyProblem(entryID: nil, seq: nil, message: "\(path): \(message)"))
            }
        }
    }

    private func checkValues(_ report: inout VerifyReport) throws {
        let statement = try database.prepare(Schema.allValues)
        while try statement.step() {
            report.valuesChecked += 1
            let data = statement.blob(2) ?? []
            let ref = ValueRef(of: data)
            if ref.digest.bytes != statement.blob(0) || Int64(ref.length) != statement.int64(1) {
                let digest = Hex.encode(statement.blob(0) ?? []).prefix(12)
                report.problems.append(VerifyProblem(entryID: nil, seq: nil, message: "value \(digest) does not match its digest or length"))
            }
        }
    }
}
