import CairnCore
import CairnSQLite

/// Why an entry was refused. A refused entry changes nothing in the store.
public enum RejectReason: Error, Equatable, Sendable, CustomStringConvertible {
    /// The bytes are not a canonical entry.
    case malformed(EntryFormatError)
    /// The id the sender claimed is not the hash of the body.
    case idMismatch(claimed: Hash32, actual: Hash32)
    /// The signature does not verify against the author's key.
    case badSignature
    /// The author is not a writer of this log.
    case unknownAuthor(PublicKey)
    /// The author was revoked from an HLC at or before this entry's. Refuses local writes only:
    /// a received entry by a revoked author is stored inert, as on a node that got it first.
    case revokedAuthor(PublicKey, since: HLC)
    /// A writer-set entry by a key that is not an admin.
    case notAdmin(PublicKey)
    /// The entry's HLC is not above one of its parents'.
    case hlcNotAboveParent(parent: Hash32)
    /// The value bytes sent do not match the digest and length in the entry.
    case valueMismatch
    /// Value bytes came with an entry that references none.
    case unexpectedValue
    /// A genesis entry of another log.
    case foreignGenesis
    /// The orphan pool is full; the entry can be sent again once its parents are here.
    case orphanPoolFull
    /// A merge whose recorded decisions differ from those its parents' ancestry gives (a wrong
    /// winner, a missing key, an entry that is not there).
    case mergeDecisionsMismatch

    public var description: String {
        switch self {
        case .malformed(let e): "malformed entry: \(e)"
        case .idMismatch(let claimed, let actual): "id mismatch: claimed \(claimed.shortHex()), body hashes to \(actual.shortHex())"
        case .badSignature: "bad signature"
        case .unknownAuthor(let key): "unknown author \(key.hex.prefix(16))…"
        case .revokedAuthor(let key, let since): "author \(key.hex.prefix(16))… revoked from HLC \(since)"
        case .notAdmin(let key): "writer-set change by non-admin \(key.hex.prefix(16))…"
        case .hlcNotAboveParent(let parent): "HLC not above parent \(parent.shortHex())"
        case .valueMismatch: "value bytes do not match the entry's digest and length"
        case .unexpectedValue: "value bytes sent with an entry that has no value"
        case .foreignGenesis: "genesis entry of another log"
        case .orphanPoolFull: "orphan pool full"
        case .mergeDecisionsMismatch: "merge decisions differ from those its parents' ancestry gives"
        }
    }

    /// A short, stable label for metrics and JSON (`bad_signature`, `unknown_author`…).
    public var label: String {
        switch self {
        case .malformed: "malformed"
        case .idMismatch: "id_mismatch"
        case .badSignature: "bad_signature"
        case .unknownAuthor: "unknown_author"
        case .revokedAuthor: "revoked_author"
        case .notAdmin: "not_admin"
        case .hlcNotAboveParent: "hlc_not_above_parent"
        case .valueMismatch: "value_mismatch"
        case .unexpectedValue: "unexpected_value"
        case .foreignGenesis: "foreign_genesis"
        case .orphanPoolFull: "orphan_pool_full"
        case .mergeDecisionsMismatch: "bad_merge"
        }
    }
}

/// An entry as received: raw body and signature bytes, optionally the id the sender claims and
/// the value bytes of a put.
public struct RawEntry: Sendable, Equatable {
    public var body: [UInt8]
    public var signature: [UInt8]
    public var claimedID: Hash32?
    public var value: [UInt8]?

    public init(body: [UInt8], signature: [UInt8], claimedID: Hash32? = nil, value: [UInt8]? = nil) {
        self.body = body
        self.signature = signature
        self.claimedID = claimedID
        self.value = value
    }

    /// The raw form of a signed entry, with its value.
    public init(_ entry: SignedEntry, value: [UInt8]? = nil) {
        self.init(body: entry.bodyBytes, signature: entry.signature, claimedID: entry.id, value: value)
    }
}

/// What a batch insert did, entry by entry.
public struct InsertReport: Sendable {
    /// Entries newly applied, in application order (parents first); includes orphans this batch released.
    public var applied: [Hash32] = []
    /// Entries already known (applied, orphaned or quarantined before): no-ops.
    public var duplicates = 0
    /// Entries kept as orphans until their parents arrive.
    public var orphaned: [Hash32] = []
    /// Entries quarantined for being too far in the future.
    public var quarantined: [Hash32] = []
    /// Refused entries: their index in the batch and why.
    public var rejected: [(index: Int, reason: RejectReason)] = []
    /// Previously stored orphans or quarantined entries that were refused when re-checked.
    public var rejectedPending: [(id: Hash32, reason: RejectReason)] = []

    public init() {}
}

/// A batch decoded, with ids and signatures checked, ready for ``LogStore/insert(_:)-(VerifiedBatch)``.
package struct VerifiedBatch: Sendable {
    let raw: [RawEntry]
    let results: [Result<SignedEntry, RejectReason>]
}

/// How one entry fared.
enum Outcome {
    case applied, duplicate, orphaned, quarantined
    case rejected(RejectReason)
}

extension LogStore {
    /// Verifies and inserts a batch in one transaction.
    ///
    /// Each entry is checked in order: encoding, id, signature, author allowed, parents present
    /// (else kept as an orphan), HLC above its parents and within the future-skew bound (else
    /// quarantined). Inserting a known entry is a no-op. Valid entries are applied — inert if
    /// their author was revoked at their HLC; each refused one is reported with its index and
    /// reason and changes nothing.
    public func insert(_ batch: [RawEntry]) throws -> InsertReport {
        try insert(LogStore.verify(batch, threads: options.verifierThreads))
    }

    /// Applies a batch already decoded and signature-checked by ``verify(_:threads:)`` (which a
    /// caller runs before taking the store), in one transaction.
    package func insert(_ verified: VerifiedBatch) throws -> InsertReport {
        var report = InsertReport()
        try database.writeTransaction {
            try refreshClock()
            writerCache.removeAll()
            let now = nowMilliseconds
            for (index, result) in verified.results.enumerated() {
                switch result {
                case .failure(let reason):
                    report.rejected.append((index, reason))
                case .success(let entry):
                    let outcome = try process(entry, value: verified.raw[index].value, now: now, report: &report)
                    record(outcome, id: entry.id, index: index, into: &report)
                }
            }
            try saveClock()
        }
        return report
    }

    /// Decodes a batch and checks ids and signatures: pure CPU work with no store involved,
    /// spread over `threads` threads.
    package static func verify(_ batch: [RawEntry], threads: Int) -> VerifiedBatch {
        VerifiedBatch(raw: batch, results: parallelMap(count: batch.count, threads: min(threads, batch.count / 64)) { decodeAndVerify(batch[$0]) })
    }

    private func record(_ outcome: Outcome, id: Hash32, index: Int, into report: inout InsertReport) {
        switch outcome {
        case .applied: break  // already appended, with any orphans it released
        case .duplicate: report.duplicates += 1
        case .orphaned: report.orphaned.append(id)
        case .quarantined: report.quarantined.append(id)
        case .rejected(let reason): report.rejected.append((index, reason))
        }
    }

    static func decodeAndVerify(_ raw: RawEntry) -> Result<SignedEntry, RejectReason> {
        let entry: SignedEntry
        do {
            entry = try SignedEntry(bodyBytes: raw.body, signature: raw.signature)
        } catch {
            return .failure(.malformed(error))
        }
        if let claimed = raw.claimedID, claimed != entry.id { return .failure(.idMismatch(claimed: claimed, actual: entry.id)) }
        guard entry.hasValidSignature else { return .failure(.badSignature) }
        return .success(entry)
    }

    /// The store-side checks and the apply, for an entry whose encoding, id and signature passed.
    func process(_ entry: SignedEntry, value: [UInt8]?, now: UInt64, report: inout InsertReport) throws -> Outcome {
        if try isKnown(entry.id) { return .duplicate }
        if case .genesis = entry.payload { return .rejected(.foreignGenesis) }
        // One lookup per parent answers both "is it here?" and "is our HLC above it?".
        let parentHLCs = try entry.parents.map { try storedHLC(of: $0) }
        let missing = zip(entry.parents, parentHLCs).compactMap { $1 == nil ? $0 : nil }
        // Who may write decides only whether an entry is inert (the writer-set rule, a function
        // of the entry set). An author no grant names at all is refused, unless its grant may be
        // among the missing ancestors: no honest node signs before its grant reached it, so the
        // grant is in the ancestry of everything it signs.
        if try writerStatus(entry.author).role == nil && missing.isEmpty { return .rejected(.unknownAuthor(entry.author)) }
        if let reason = valueProblem(entry, value) { return .rejected(reason) }
        if !missing.isEmpty {
            // An entry beyond the skew bound waits in quarantine even when parents are missing:
            // the children of a quarantined entry (stamped above it) wait there with it, are
            // re-checked with it in HLC order, and are not taken for orphans whose parents
            // should be fetched (the parents are here, quarantined).
            if entry.hlc.wallMilliseconds > now + options.maxFutureSkewMilliseconds {
                try quarantine(entry, value: value, now: now)
                return .quarantined
            }
            // The clock observes every orphan it keeps, within its tolerance: one of them may be
            // this node's own, signed before its data directory was restored.
            clock.observe(entry.hlc)
            return try keepOrphan(entry, value: value, waitingFor: missing, now: now)
        }
        for (parent, hlc) in zip(entry.parents, parentHLCs) where hlc! >= entry.hlc {
            return .rejected(.hlcNotAboveParent(parent: parent))
        }
        if let reason = try mergeProblem(entry) { return .rejected(reason) }
        if entry.hlc.wallMilliseconds > now + options.maxFutureSkewMilliseconds {
            try quarantine(entry, value: value, now: now)
            return .quarantined
        }
        try apply(entry, value: value)
        report.applied.append(entry.id)
        try releaseOrphans(of: entry.id, now: now, report: &report)
        return .applied
    }

    private func isKnown(_ id: Hash32) throws -> Bool {
        if id == logID { return true }
        return try exists(Schema.entryExists, id) || exists(Schema.orphanExists, id) || exists(Schema.quarantineExists, id)
    }

    func exists(_ sql: String, _ id: Hash32) throws -> Bool {
        try database.prepare(sql).bind(.blob(id.bytes)).step()
    }

    /// The HLC of an applied entry, or `nil` if it is not applied here.
    func storedHLC(of id: Hash32) throws -> HLC? {
        let statement = try database.prepare(Schema.entryHLC).bind(.blob(id.bytes))
        return try statement.step() ? HLC(rawValue: UInt64(statement.int64(0))) : nil
    }

    private func valueProblem(_ entry: SignedEntry, _ value: [UInt8]?) -> RejectReason? {
        guard let value else { return nil }
        guard case .put(_, _, let ref) = entry.payload else { return .unexpectedValue }
        return ValueRef(of: value) == ref ? nil : .valueMismatch
    }

    // MARK: - Orphans and quarantine

    private func keepOrphan(_ entry: SignedEntry, value: [UInt8]?, waitingFor missing: [Hash32], now: UInt64) throws -> Outcome {
        guard try orphanCount() < options.orphanLimit else { return .rejected(.orphanPoolFull) }
        try database.prepare(Schema.insertOrphan).bind(
            .blob(entry.id.bytes), .blob(entry.bodyBytes), .blob(entry.signature), value.map { .blob($0) } ?? .null,
            .integer(now)
        ).run()
        if database.changes > 0 { try adjustOrphanCount(by: 1) }
        for parent in missing {
            try database.prepare(Schema.insertOrphanWait).bind(.blob(parent.bytes), .blob(entry.id.bytes)).run()
        }
        return .orphaned
    }

    private func adjustOrphanCount(by delta: Int) throws {
        try database.prepare(Schema.addToOrphanCount).bind(.integer(delta)).run()
    }

    /// Applies the orphans whose last missing parent is `id`, then those they release, and so on.
    ///
    /// A work list, not a recursion: applying a released orphan calls back here (from
    /// `process`), and that nested call only queues the orphan's id for the outermost call's
    /// loop. A chain of any length received children-first thus runs in constant stack.
    /// Parents still come before children: an id is queued only once its entry is applied.
    private func releaseOrphans(of id: Hash32, now: UInt64, report: inout InsertReport) throws {
        if releaseQueue != nil {
            releaseQueue!.append(id)
            return
        }
        releaseQueue = [id]
        defer { releaseQueue = nil }
        var next = 0
        // Index the queue in place (no local copy of it: nested calls append to it).
        while next < releaseQueue!.count {
            let parent = releaseQueue![next]
            next += 1
            if next >= 4096 {
                // Drop the processed prefix now and then, so a long chain does not keep every id.
                releaseQueue!.removeFirst(next)
                next = 0
            }
            var waiting: [Hash32] = []
            let select = try database.prepare(Schema.orphansWaitingFor).bind(.blob(parent.bytes))
            while try select.step() { waiting.append(try select.hash(0, "orphan_waits")) }
            guard !waiting.isEmpty else { continue }
            try database.prepare(Schema.deleteOrphanWaits).bind(.blob(parent.bytes)).run()
            for orphan in waiting where try !exists(Schema.orphanStillWaits, orphan) {
                guard let raw = try take(Schema.takeOrphan, orphan) else { continue }
                try adjustOrphanCount(by: -1)
                try reprocess(raw, id: orphan, now: now, report: &report)
            }
        }
    }

    private func quarantine(_ entry: SignedEntry, value: [UInt8]?, now: UInt64) throws {
        try database.prepare(Schema.insertQuarantine).bind(
            .blob(entry.id.bytes), .blob(entry.bodyBytes), .blob(entry.signature), value.map { .blob($0) } ?? .null,
            .integer(entry.hlc.rawValue), .integer(now)
        ).run()
    }

    /// Re-checks quarantined entries: those now within the skew bound are applied (or orphaned,
    /// or rejected); the rest stay. Returns what happened.
    @discardableResult
    public func recheckQuarantine(limit: Int = 10_000) throws -> InsertReport {
        var report = InsertReport()
        try database.writeTransaction {
            try refreshClock()
            writerCache.removeAll()
            let now = nowMilliseconds
            let horizon = HLC(wallMilliseconds: now + options.maxFutureSkewMilliseconds, counter: .max)
            var due: [Hash32] = []
            let select = try database.prepare(Schema.quarantineDue).bind(.integer(horizon.rawValue), .integer(limit))
            while try select.step() { due.append(try select.hash(0, "quarantine")) }
            for id in due {
                guard let raw = try take(Schema.takeQuarantined, id) else { continue }
                try reprocess(raw, id: id, now: now, report: &report)
            }
            try database.prepare(Schema.touchQuarantine).bind(.integer(now)).run()
            try saveClock()
        }
        return report
    }

    /// Removes a pending (orphan or quarantined) entry's row and returns its bytes.
    private func take(_ sql: String, _ id: Hash32) throws -> RawEntry? {
        let statement = try database.prepare(sql).bind(.blob(id.bytes))
        guard try statement.step() else { return nil }
        let raw = RawEntry(body: try statement.bytes(0, "orphans or quarantine"), signature: try statement.bytes(1, "orphans or quarantine"), claimedID: id, value: statement.blob(2))
        try statement.run()  // finish the DELETE … RETURNING
        return raw
    }

    /// Runs a pending entry through the checks again; it was verified when it arrived, but the
    /// writer set or its parents may have changed since.
    /// A pending entry that no longer decodes (its row was damaged) is reported in
    /// ``InsertReport/rejectedPending`` and stays deleted.
    private func reprocess(_ raw: RawEntry, id: Hash32, now: UInt64, report: inout InsertReport) throws {
        let entry: SignedEntry
        do {
            entry = try SignedEntry(bodyBytes: raw.body, signature: raw.signature)
        } catch {
            report.rejectedPending.append((id, .malformed(error)))
            return
        }
        guard entry.id == id else {
            report.rejectedPending.append((id, .idMismatch(claimed: id, actual: entry.id)))
            return
        }
        switch try process(entry, value: raw.value, now: now, report: &report) {
        case .rejected(let reason): report.rejectedPending.append((id, reason))
        case .quarantined: report.quarantined.append(id)
        case .orphaned: report.orphaned.append(id)
        case .applied, .duplicate: break
        }
    }

    /// Number of entries waiting for parents: a persisted counter, O(1).
    /// - Throws: `SQLiteError` if the database cannot be read.
    public func orphanCount() throws -> Int {
        try database.readTransaction {
            let statement = try database.prepare(Schema.orphanCount)
            if try statement.step() { return statement.int(0) }
            return try count(Schema.orphanRows)  // a schema-2 file read as it is (read-only)
        }
    }
    /// Number of quarantined entries.
    public func quarantineCount() throws -> Int { try database.readTransaction { try count(Schema.quarantineCount) } }

    func count(_ sql: String) throws -> Int {
        let statement = try database.prepare(sql)
        return try statement.step() ? statement.int(0) : 0
    }

    // MARK: - Apply

    /// Writes a fully checked entry: row, parent edges, heads, value, state, writer set, clock.
    ///
    /// Whether it is inert follows from the writer set: a put, delete or merge by a key that may
    /// not write at its HLC is stored inert (kept in the DAG, never in the state); a writer-set
    /// entry is recorded and the writer set recomputed, which sets its own inert flag.
    func apply(_ entry: SignedEntry, value: [UInt8]?) throws {
        let target = entry.payload.target
        let writerSetEntry = WriterSetEntry(entry)
        let inert = try writerSetEntry == nil && writerStatus(entry.author).problem(for: entry.author, at: entry.hlc, needsAdmin: false) != nil
        try database.prepare(Schema.insertEntry).bind(
            .blob(entry.id.bytes), .integer(entry.hlc.rawValue), .blob(entry.author.bytes),
            .integer(entry.kind.rawValue), target.map { .text($0.bucket) } ?? .null, target.map { .text($0.key) } ?? .null,
            .blob(entry.bodyBytes), .blob(entry.signature), .integer(nowMilliseconds), .int(inert ? 1 : 0)
        ).run()
        let seq = database.lastInsertRowID
        for parent in entry.parents {
            try database.prepare(Schema.insertParent).bind(.blob(entry.id.bytes), .blob(parent.bytes)).run()
            try database.prepare(Schema.deleteHead).bind(.blob(parent.bytes)).run()
        }
        try database.prepare(Schema.insertHead).bind(.blob(entry.id.bytes)).run()
        // Bounded: an entry stamped beyond wall + tolerance does not move the clock (invariant 5).
        clock.observe(entry.hlc)
        // Every applied entry gets one change row (ChangeLog.swift), written here with the
        // key's winner before and after it; a writer-set entry's row is followed by one per key
        // whose winner its inert flags changed.
        switch entry.payload {
        case .put(let bucket, let key, _), .delete(let bucket, let key):
            if case .put(_, _, let ref) = entry.payload { try storeValue(ref, value) }
            let before = try stateWinnerID(bucket: bucket, key: key)
            let after = inert ? before : try updateState(bucket: bucket, key: key, with: entry, current: before)
            try recordChange(entrySeq: seq, cause: .entry, bucket: bucket, key: key, before: before, after: after, inert: inert)
        case .genesis, .addWriter, .revokeWriter:
            if let writerSetEntry { try recordWriterEvents(of: writerSetEntry) }
            changeRecorder.pending = []
            try recomputeWriterSet()
            let ownInert = try isInert(seq: seq)
            try recordChange(entrySeq: seq, cause: .entry, bucket: nil, key: nil, before: nil, after: nil, inert: ownInert)
            try flushWinnerChanges(entrySeq: seq, cause: .writerSet, inert: ownInert)
        case .merge:
            // A merge records decisions already reflected in the state; its defeats are indexed.
            try recordDefeats(of: entry)
            try recordChange(entrySeq: seq, cause: .entry, bucket: nil, key: nil, before: nil, after: nil, inert: inert)
        }
    }

    private func storeValue(_ ref: ValueRef, _ value: [UInt8]?) throws {
        if let value {
            try database.prepare(Schema.insertValue).bind(.blob(ref.digest.bytes), .integer(ref.length), .blob(value)).run()
        } else {
            try database.prepare(Schema.insertMissingValue).bind(.blob(ref.digest.bytes), .integer(ref.length)).run()
        }
    }

    /// LWW: the entry becomes the key's state if its `(hlc, author, id)` is the greatest seen.
    /// Returns the key's winner afterwards.
    private func updateState(bucket: String, key: String, with entry: SignedEntry, current winner: Hash32?) throws -> Hash32 {
        let current = try database.prepare(Schema.stateRow).bind(.text(bucket), .text(key))
        if try current.step() {
            let existing = (current.hlc(1), try current.publicKey(2, "state"), try current.hash(0, "state"))
            guard existing < (entry.hlc, entry.author, entry.id) else { return existing.2 }
        }
        try writeState(bucket: bucket, key: key, entry: entry)
        return entry.id
    }

    private func writeState(bucket: String, key: String, entry: SignedEntry) throws {
        var ref: ValueRef?
        if case .put(_, _, let r) = entry.payload { ref = r }
        try database.prepare(Schema.upsertState).bind(
            .text(bucket), .text(key), .blob(entry.id.bytes), .integer(entry.hlc.rawValue), .blob(entry.author.bytes),
            .int(ref == nil ? 1 : 0), ref.map { .blob($0.digest.bytes) } ?? .null, ref.map { .integer($0.length) } ?? .null
        ).run()
    }

    /// Recomputes a key's state from its live (non-inert) writes; used after a revocation.
    /// A change of the winner is noted for the change log (``noteWinnerChange(bucket:key:before:after:)``).
    func recomputeState(bucket: String, key: String) throws {
        let before = try stateWinnerID(bucket: bucket, key: key)
        let winner = try database.prepare(Schema.keyWinner).bind(.text(bucket), .text(key))
        guard try winner.step(), let id = Optional(try winner.hash(0, "entries")) else {
            try database.prepare(Schema.deleteState).bind(.text(bucket), .text(key)).run()
            noteWinnerChange(bucket: bucket, key: key, before: before, after: nil)
            return
        }
        guard let stored = try entry(id: id) else { return }
        try writeState(bucket: bucket, key: key, entry: stored.entry)
        noteWinnerChange(bucket: bucket, key: key, before: before, after: id)
    }
}
