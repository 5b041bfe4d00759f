import CairnCore
import CairnStore

#if canImport(Glibc)
import Glibc
#endif

/// Why a bundle cannot be read or imported. Nothing is applied when any of these is thrown,
/// except ``changedDuringImport`` and ``refusedWhileApplying(index:reason:imported:)``, after
/// which the entries imported form a parents-first prefix that importing the bundle again
/// completes.
public enum BundleError: Error, Equatable, CustomStringConvertible {
    case cannotOpen(path: String)
    case notABundle
    case unsupportedVersion(UInt8)
    case wrongLog(expected: Hash32, found: Hash32)
    case truncated
    case malformed(String)
    case checksumMismatch
    case countMismatch(declared: UInt64, found: UInt64)
    /// Entries the log would refuse (the first ones, by index; `total` in all): nothing was applied.
    case rejected([(index: Int, reason: ImportRefusal)], total: Int)
    /// The file changed between the check and the apply pass; the chunks applied before the
    /// change had passed the check.
    case changedDuringImport
    /// An entry that passed the check was refused while applying (the writer set changed in a
    /// way the check does not foresee); `imported` entries before its chunk were applied.
    case refusedWhileApplying(index: Int, reason: RejectReason, imported: Int)

    public static func == (a: BundleError, b: BundleError) -> Bool { a.description == b.description }

    public var description: String {
        switch self {
        case .cannotOpen(let path): "cannot open bundle \(path)"
        case .notABundle: "not a Cairn bundle (bad magic)"
        case .unsupportedVersion(let v): "unsupported bundle version \(v)"
        case .wrongLog(let expected, let found): "bundle is for log \(found.shortHex()), this is log \(expected.shortHex())"
        case .truncated: "bundle is truncated"
        case .malformed(let what): "corrupt bundle: \(what)"
        case .checksumMismatch: "corrupt bundle: checksum mismatch"
        case .countMismatch(let declared, let found): "corrupt bundle: declares \(declared) entries, holds \(found)"
        case .rejected(let list, let total):
            "bundle rejected, nothing imported: "
                + list.prefix(5).map { "entry #\($0.index): \($0.reason)" }.joined(separator: "; ")
                + (total > 5 ? " (and \(total - 5) more)" : "")
        case .changedDuringImport:
            "the bundle file changed during the import; what was imported before the change is valid: import the bundle again"
        case .refusedWhileApplying(let index, let reason, let imported):
            "entry #\(index) was refused while applying (\(reason)) after \(imported) entries were imported; they stay"
        }
    }
}

/// The bundle file format (see ARCHITECTURE.md, "Bundle format"):
///
///     magic "CAIRNBDL" | u8 version = 1 | log id [32]
///     record*  where record = 0x01 | u32 body length | body | signature [64] | u8 has value | [u32 length | value]
///     0x00 | u64 entry count | BLAKE2b-256 of every byte before it [32]
///
/// Entries are in ingest order, so parents come before children.
enum BundleFormat {
    static let magic = Array("CAIRNBDL".utf8)
    static let version: UInt8 = 1
    static let entryTag: UInt8 = 1
    static let endTag: UInt8 = 0
}

/// A buffered file writer that hashes everything it writes.
final class HashingWriter {
    private let file: UnsafeMutablePointer<FILE>
    private var hasher = Blake2b.Hasher()
    let path: String

    init(path: String) throws {
        guard let file = fopen(path, "wb") else { throw BundleError.cannotOpen(path: path) }
        self.file = file
        self.path = path
    }

    func write(_ bytes: [UInt8]) throws {
        hasher.update(bytes)
        guard fwrite(bytes, 1, bytes.count, file) == bytes.count else { throw DataDirectoryError.io(path: path, errno: errno) }
    }

    func finish() throws {
        let digest = hasher.finalize()
        guard fwrite(digest.bytes, 1, 32, file) == 32, fflush(file) == 0, fsync(fileno(file)) == 0 else {
            throw DataDirectoryError.io(path: path, errno: errno)
        }
        fclose(file)
    }

    deinit {}
}

/// A buffered file reader that hashes everything it reads, failing with `truncated` at EOF.
final class HashingReader {
    private let file: UnsafeMutablePointer<FILE>
    private var hasher = Blake2b.Hasher()

    init(path: String) throws {
        guard let file = fopen(path, "rb") else { throw BundleError.cannotOpen(path: path) }
        self.file = file
    }

    deinit { fclose(file) }

    func read(_ count: Int, hashing: Bool = true) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        guard count == 0 || fread(&bytes, 1, count, file) == count else { throw BundleError.truncated }
        if hashing { hasher.update(bytes) }
        return bytes
    }

    func u8() throws -> UInt8 { try read(1)[0] }
    func u32() throws -> UInt32 { try read(4).reduce(0) { $0 << 8 | UInt32($1) } }
    func u64() throws -> UInt64 { try read(8).reduce(0) { $0 << 8 | UInt64($1) } }
    func digest() -> Hash32 { hasher.finalize() }
    var atEnd: Bool {
        let c = fgetc(file)
        if c == EOF { return true }
        ungetc(c, file)
        return false
    }
}

/// Reads a bundle record by record, checking the header, each record's framing and the
/// trailer's count and checksum.
struct BundleReader {
    let reader: HashingReader
    let logID: Hash32
    private(set) var count: UInt64 = 0

    init(path: String) throws {
        reader = try HashingReader(path: path)
        guard (try? reader.read(8)) == BundleFormat.magic else { throw BundleError.notABundle }
        let version = try reader.u8()
        guard version == BundleFormat.version else { throw BundleError.unsupportedVersion(version) }
        logID = Hash32(bytes: try reader.read(32))!
    }

    /// The entry count the trailer declares, read from the file's end without checking
    /// anything: a hint for sizing memory, capped by what the file's size could hold (a record
    /// takes at least 115 bytes). `nil` when the file is too short or does not end in a trailer.
    static func declaredCount(of path: String) -> Int? {
        guard let file = fopen(path, "rb") else { return nil }
        defer { fclose(file) }
        guard fseek(file, -41, SEEK_END) == 0 else { return nil }
        let size = ftell(file) + 41
        var trailer = [UInt8](repeating: 0, count: 9)
        guard fread(&trailer, 1, 9, file) == 9, trailer[0] == BundleFormat.endTag else { return nil }
        let declared = trailer[1...].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return Int(min(declared, UInt64(max(size, 0) / 115)))
    }

    /// The genesis entry a bundle starts with (bundles hold entries parents first).
    static func genesis(of path: String) throws -> SignedEntry {
        var reader = try BundleReader(path: path)
        guard let first = try reader.next(), let entry = try? SignedEntry(bodyBytes: first.body, signature: first.signature),
            case .genesis = entry.payload, entry.id == reader.logID, entry.hasValidSignature
        else { throw BundleError.malformed("it does not start with its log's genesis entry") }
        return entry
    }

    /// The next entry, or `nil` after the trailer has been read and checked.
    mutating func next() throws -> RawEntry? {
        switch try reader.u8() {
        case BundleFormat.entryTag:
            let length = Int(try reader.u32())
            guard length <= EntryBody.maxBodyBytes else { throw BundleError.malformed("entry body of \(length) bytes") }
            let body = try reader.read(length)
            let signature = try reader.read(SignedEntry.signatureBytes)
            var value: [UInt8]?
            switch try reader.u8() {
            case 0: break
            case 1:
                let valueLength = try reader.u32()
                guard valueLength <= EntryBody.maxValueLength else { throw BundleError.malformed("value of \(valueLength) bytes") }
                value = try reader.read(Int(valueLength))
            case let flag: throw BundleError.malformed("value flag \(flag)")
            }
            count += 1
            return RawEntry(body: body, signature: signature, value: value)
        case BundleFormat.endTag:
            let declared = try reader.u64()
            let computed = reader.digest()
            let stored = Hash32(bytes: try reader.read(32, hashing: false))!
            guard stored == computed else { throw BundleError.checksumMismatch }
            guard declared == count else { throw BundleError.countMismatch(declared: declared, found: count) }
            guard reader.atEnd else { throw BundleError.malformed("bytes after the trailer") }
            return nil
        case let tag:
            throw BundleError.malformed("record tag \(tag)")
        }
    }
}

/// What an import did.
public struct ImportReport: Sendable {
    public var entries = 0
    public var applied = 0
    public var duplicates = 0
    public var orphaned = 0
    public var quarantined = 0
    public init() {}
}

/// How far an import has got: reported after each chunk it commits.
public struct ImportProgress: Sendable {
    /// Entries in the bundle (all checked before the first chunk is applied).
    public let total: Int
    /// Entries of the bundle through the last committed chunk.
    public let done: Int
}

extension CairnLog {
    /// Writes every entry (and every value still held) to a bundle file, parents first.
    /// Returns the number of entries written.
    ///
    /// - Throws: ``BundleError/cannotOpen(path:)`` or ``DataDirectoryError/io(path:errno:)``
    ///   if the file cannot be written; `SQLiteError`.
    @discardableResult
    public func exportBundle(to path: String, progress: (_ done: Int, _ total: Int) -> Void = { _, _ in }) throws(CairnError) -> Int {
        try CairnError.translating {
            try store.exportBundle(to: path, progress: progress)
        }
    }

    /// Imports a bundle, all or nothing with respect to refusal, without holding the write lock
    /// for long.
    ///
    /// First a check pass reads the whole file on one read snapshot — framing, count and
    /// checksum, and every entry's encoding, id, signature and value, its parents (earlier in
    /// the bundle or already here), HLCs and author — keeping only ids and HLCs in memory.
    /// If any entry would be refused, nothing is applied and every problem is reported. Only
    /// then are the entries applied, in chunks of `batchSize`, one write transaction each, with
    /// a short pause between chunks so other writers (`cairn put`) get the lock. An
    /// interrupted import leaves a parents-first prefix; importing the bundle again completes it.
    ///
    /// - Parameter progress: called after each committed chunk; a throw stops the import there.
    /// - Throws: ``BundleError`` for a bundle that is corrupt, of another log, or refused;
    ///   ``StoreError/readOnly(path:)``; `SQLiteError`.
    public func importBundle(
        from path: String, batchSize: Int = 2000, progress: (ImportProgress) throws -> Void = { _ in }
    ) throws(CairnError) -> ImportReport {
        try CairnError.translating {
            try requireWritable()
            return try store.importBundle(from: path, batchSize: batchSize, inTransaction: { try writing($0) }, progress: progress)
        }
    }
}

extension LogStore {
    func exportBundle(to path: String, progress: (_ done: Int, _ total: Int) -> Void = { _, _ in }) throws -> Int {
        let store = self
        let writer = try HashingWriter(path: path)
        try writer.write(BundleFormat.magic + [BundleFormat.version] + logID.bytes)
        var count: UInt64 = 0
        try store.database.readTransaction {
            let total = try store.entryCount()
            try store.forEachEntry { stored in
                var w = ByteWriter(capacity: stored.entry.bodyBytes.count + 80)
                w.u8(BundleFormat.entryTag)
                w.raw(stored.entry.framed)
                if case .put(_, _, let ref) = stored.entry.payload, case .present(let bytes) = try store.value(ref.digest) {
                    w.u8(1)
                    w.u32(UInt32(bytes.count))
                    w.raw(bytes)
                } else {
                    w.u8(0)
                }
                try writer.write(w.bytes)
                count += 1
                if count % 1000 == 0 { progress(Int(count), total) }
                return true
            }
        }
        var trailer = ByteWriter()
        trailer.u8(BundleFormat.endTag)
        trailer.u64(count)
        try writer.write(trailer.bytes)
        try writer.finish()
        return Int(count)
    }

    /// The import behind ``CairnLog/importBundle(from:batchSize:progress:)``; `inTransaction`
    /// runs each chunk's write transaction (the facade's also folds the chunk into a loaded
    /// reconciliation index), and `pauseMicroseconds` is the gap left between chunks.
    func importBundle(
        from path: String, batchSize: Int, pauseMicroseconds: UInt32 = 5_000,
        inTransaction: (() throws -> InsertReport) throws -> InsertReport = { try $0() },
        progress: (ImportProgress) throws -> Void = { _ in }
    ) throws -> ImportReport {
        let store = self
        let size = max(batchSize, 1)

        // Pass 1: framing, checksum and every check, on one snapshot; a digest per chunk, so
        // pass 2 applies exactly the bytes that were checked.
        var checking = try BundleReader(path: path)
        guard checking.logID == logID else { throw BundleError.wrongLog(expected: logID, found: checking.logID) }
        var check = ImportCheck(expectedEntries: BundleReader.declaredCount(of: path) ?? 0)
        var digests: [Hash32] = []
        try database.readTransaction {
            var batch: [RawEntry] = []
            func flush() throws {
                try store.check(batch, into: &check)
                digests.append(LogStore.digest(of: batch))
                batch.removeAll(keepingCapacity: true)
            }
            while let raw = try checking.next() {
                batch.append(raw)
                if batch.count == size { try flush() }
            }
            if !batch.isEmpty { try flush() }
        }
        guard check.refusedCount == 0 else { throw BundleError.rejected(check.refusals, total: check.refusedCount) }

        // Pass 2: apply chunk by chunk, each in its own short write transaction.
        var reader = try BundleReader(path: path)
        var report = ImportReport()
        var chunk = 0
        var batch: [RawEntry] = []
        func apply() throws {
            guard chunk < digests.count, LogStore.digest(of: batch) == digests[chunk] else { throw BundleError.changedDuringImport }
            if chunk > 0 && pauseMicroseconds > 0 { usleep(pauseMicroseconds) }  // let waiting writers in
            let result = try inTransaction {
                try store.database.writeTransaction {  // a savepoint inside `inTransaction`'s: a refusal undoes the chunk
                    let result = try store.insertChecked(batch)
                    if let first = result.rejected.first {
                        throw BundleError.refusedWhileApplying(index: report.entries + first.index, reason: first.reason, imported: report.entries)
                    }
                    return result
                }
            }
            report.applied += result.applied.count
            report.duplicates += result.duplicates
            report.orphaned += result.orphaned.count
            report.quarantined += result.quarantined.count
            report.entries += batch.count
            chunk += 1
            batch.removeAll(keepingCapacity: true)
            try progress(ImportProgress(total: check.entries, done: report.entries))
        }
        while let raw = try reader.next() {
            batch.append(raw)
            if batch.count == size { try apply() }
        }
        if !batch.isEmpty { try apply() }
        guard chunk == digests.count else { throw BundleError.changedDuringImport }
        return report
    }

    /// A digest of a chunk's records, to tell that pass 2 reads the bytes pass 1 checked.
    private static func digest(of batch: [RawEntry]) -> Hash32 {
        var hasher = Blake2b.Hasher()
        for raw in batch {
            var w = ByteWriter(capacity: 16)
            w.u32(UInt32(raw.body.count))
            w.u8(raw.value == nil ? 0 : 1)
            w.u32(UInt32(raw.value?.count ?? 0))
            hasher.update(w.bytes)
            hasher.update(raw.body)
            hasher.update(raw.signature)
            if let value = raw.value { hasher.update(value) }
        }
        return hasher.finalize()
    }
}
