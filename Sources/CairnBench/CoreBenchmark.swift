import CairnCore
import CairnStore
import Cairn
import CairnSQLite
import CairnTestSupport
import CSodium
import Foundation

/// Append and import throughput against the raw libsodium and SQLite limits.
struct CoreBenchmark {
    let entries: Int
    let batch = 1000

    func run() async throws {
        print("cairn-bench core: \(entries) entries, batches of \(batch), \(ProcessInfo.processInfo.activeProcessorCount) cores")
        print("-- raw primitive limits (same run) --")
        let sign = rawSignRate(count: 20_000)
        let verify = rawVerifyRate(count: 10_000)
        let (sqliteBatched, sqliteSingle) = try rawSQLiteInsertRates(rows: entries, thenSingle: 2_000)
        report("libsodium Ed25519 sign (1 thread)", sign)
        report("libsodium Ed25519 verify (1 thread)", verify)
        report("SQLite insert, \(batch) rows/txn", sqliteBatched, note: "entry + parent edge + state upsert + head")
        report("SQLite insert, 1 row/txn", sqliteSingle, note: "appended to that \(entries)-row database")
        let appendLimit = 1 / (1 / sign + 1 / sqliteBatched)
        let singleLimit = 1 / (1 / sign + 1 / sqliteSingle)
        let importLimit = 1 / (1 / verify + 1 / sqliteBatched)

        print("-- Cairn --")
        let source = scratchDirectory("source")
        defer { try? FileManager.default.removeItem(atPath: source) }
        let log = try CairnLog.create(at: source, name: "bench")
        let batched = try await appendBatched(log, count: entries)
        report("put, \(batch) per transaction", batched, limit: appendLimit, note: "limit = sign + SQLite insert")
        let single = try await appendSingly(log, count: 2_000)
        report("put, one per transaction", single, limit: singleLimit, note: "limit = sign + SQLite 1 row/txn")

        let bundle = source + ".bundle"
        defer { try? FileManager.default.removeItem(atPath: bundle) }
        _ = try await log.exportBundle(to: bundle)
        let (imported, rate) = try await importRate(bundle: bundle, like: log)
        report("import bundle of \(imported) entries", rate, limit: importLimit, note: "limit = verify + SQLite insert, 1 thread each")
        let verifyLimit = rawVerifyRate(count: 10_000, threads: 2)
        let verified = try await verifyRate(log)
        report("verify (fsck) of \(verified.entries) entries", verified.rate, limit: verifyLimit, note: "limit = Ed25519 verify on 2 threads")
        print(String(format: "peak memory: %.0f MiB", peakMemoryMiB()))
    }

    // MARK: - Cairn

    func appendBatched(_ log: CairnLog, count: Int) async throws -> Double {
        var done = 0
        let elapsed = try await seconds {
            while done < count {
                let n = min(batch, count - done)
                try await log.write((0..<n).map { i in .put(bucket: "objects", key: "k\(done + i)", value: objectID(done + i)) })
                done += n
            }
        }
        return Double(count) / elapsed
    }

    func appendSingly(_ log: CairnLog, count: Int) async throws -> Double {
        let elapsed = try await seconds {
            for i in 0..<count { try await log.put("single", "k\(i)", objectID(i)) }
        }
        return Double(count) / elapsed
    }

    /// `singles`: puts of one entry per transaction alone (for profiling that path), on a log
    /// of `entries` batched puts, against sign + SQLite 1 row/txn measured on a database of the
    /// same size in the same run.
    func singles(count: Int) async throws {
        print("cairn-bench singles: \(count) puts, one per transaction, on a log of \(entries) entries")
        let sign = rawSignRate(count: 20_000)
        let (_, sqliteSingle) = try rawSQLiteInsertRates(rows: entries, thenSingle: count)
        let source = scratchDirectory("singles")
        defer { try? FileManager.default.removeItem(atPath: source) }
        let log = try CairnLog.create(at: source, name: "bench")
        _ = try await appendBatched(log, count: entries)
        let single = try await appendSingly(log, count: count)
        report("put, one per transaction", single, limit: 1 / (1 / sign + 1 / sqliteSingle), note: "limit = sign + SQLite 1 row/txn")
    }

    /// Imports `bundle` into a fresh node of the same log (the genesis comes first in the bundle
    /// and is a duplicate there). Returns entries imported and entries per second.
    func importRate(bundle: String, like log: CairnLog) async throws -> (Int, Double) {
        let target = scratchDirectory("target")
        defer { try? FileManager.default.removeItem(atPath: target) }
        let fresh = try await freshNode(at: target, of: log)
        var report = ImportReport()
        let elapsed = try await seconds { report = try await fresh.importBundle(from: bundle) }
        guard report.applied + report.duplicates == report.entries else { fatalError("import incomplete: \(report)") }
        return (report.entries, Double(report.entries) / elapsed)
    }

    /// A second node of `log`'s log: its own data directory holding the same genesis.
    func freshNode(at path: String, of log: CairnLog) async throws -> CairnLog {
        try CairnLog.join(at: path, genesis: try await log.genesis)
    }

    /// `import-memory`: peak memory while importing a large bundle. The bundle is generated by a
    /// child process so that generation does not count towards this process's peak.
    func importMemory() async throws {
        let source = scratchDirectory("mem-source")
        defer { try? FileManager.default.removeItem(atPath: source) }
        let bundle = source + ".bundle"
        defer { try? FileManager.default.removeItem(atPath: bundle) }
        let child = Process()
        child.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
        child.arguments = ["generate-bundle", "--entries", "\(entries)", source]
        try child.run()
        child.waitUntilExit()
        guard child.terminationStatus == 0 else { fatalError("bundle generation failed") }
        let log = try CairnLog.open(at: source)
        let before = peakMemoryMiB()
        let (count, rate) = try await importRate(bundle: bundle, like: log)
        report("import bundle of \(count) entries", rate)
        print(String(format: "peak memory: %.0f MiB (%.0f MiB before the import)", peakMemoryMiB(), before))
    }

    func generateBundle(at source: String) async throws {
        let log = try CairnLog.create(at: source, name: "bench")
        _ = try await appendBatched(log, count: entries)
        _ = try await log.exportBundle(to: source + ".bundle")
    }

    // MARK: - Gets beside a large value

    /// `get`: reads of small keys on a log of `keys` small values, then the same reads once a
    /// 50 MiB value is in the log. Value lookups must not depend on other values, so the ratio
    /// should stay within 1.1×.
    func getBesideLargeValue(keys: Int, gets: Int) async throws {
        let seed = UInt64(0x6765_7462_656e_6368)
        print("cairn-bench get: \(keys) small keys, \(gets) gets per run, seed \(seed)")
        let path = scratchDirectory("get")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try CairnLog.create(at: path, name: "bench")
        for start in stride(from: 0, to: keys, by: batch) {
            try await log.write((start..<min(keys, start + batch)).map { .put(bucket: "small", key: "k\($0)", value: objectID($0)) })
        }
        var rng = SplitMix64(seed: seed)
        let order = (0..<gets).map { _ in Int.random(in: 0..<keys, using: &rng) }
        func run() async throws -> Double {
            // Best of three, each after a warm-up pass, so both runs read from a warm cache.
            var best = Double.infinity
            for _ in 0..<3 {
                for i in order.prefix(1000) { _ = try await log.get("small", "k\(i)") }
                best = min(best, try await seconds {
                    for i in order { guard try await log.get("small", "k\(i)") != nil else { fatalError("k\(i) missing") } }
                })
            }
            return best
        }
        let without = try await run()
        report("get small key, no large value", Double(gets) / without)
        _ = try await log.put("large", "blob", [UInt8](repeating: 0x5a, count: 50 << 20))
        let with = try await run()
        report("get small key, 50 MiB value in the log", Double(gets) / with)
        print(String(format: "get slowdown with a 50 MiB value present: %.3f× (goal ≤ 1.1×); %.2f µs vs %.2f µs per get",
                     with / without, with / Double(gets) * 1e6, without / Double(gets) * 1e6))
    }

    // MARK: - Raw limits

    func rawSignRate(count: Int) -> Double {
        let key = SigningKey.generate()
        let messages = (0..<count).map { objectID($0) }
        return Double(count) / seconds { for m in messages { _ = key.sign(m) } }
    }

    func rawVerifyRate(count: Int, threads: Int = 1) -> Double {
        let key = SigningKey.generate()
        let signed = (0..<count).map { (objectID($0), key.sign(objectID($0))) }
        let chunk = (count + threads - 1) / threads
        return Double(count) / seconds {
            DispatchQueue.concurrentPerform(iterations: threads) { t in
                for (m, s) in signed[(t * chunk)..<min(count, (t + 1) * chunk)] { precondition(key.publicKey.isValidSignature(s, for: m)) }
            }
        }
    }

    /// `cairn verify` of the whole log: every signature, link and derived table.
    func verifyRate(_ log: CairnLog) async throws -> (entries: Int, rate: Double) {
        var checked = 0
        let elapsed = try await seconds {
            let report = try await log.verify()
            guard report.isClean else { fatalError("verify found problems: \(report.problems.prefix(3))") }
            checked = report.entriesChecked
        }
        return (checked, Double(checked) / elapsed)
    }

    /// The SQLite floor for one entry: the schema and statements of the machine baseline
    /// (entries row, one parent edge, LWW state upsert, heads maintenance), WAL + NORMAL.
    /// Fills `rows` rows in transactions of ``batch``, then appends `single` rows one per
    /// transaction to the same database, as Cairn's single puts run on a full log.
    func rawSQLiteInsertRates(rows: Int, thenSingle single: Int) throws -> (batched: Double, single: Double) {
        let path = scratchDirectory("raw-sqlite") + ".db"
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        let db = try Database(path: path)
        try db.execute("""
            PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
            CREATE TABLE entries(hash BLOB PRIMARY KEY, hlc INTEGER NOT NULL, author BLOB NOT NULL, body BLOB NOT NULL);
            CREATE INDEX entries_hlc ON entries(hlc, hash);
            CREATE TABLE parents(child BLOB NOT NULL, parent BLOB NOT NULL, PRIMARY KEY(child, parent)) WITHOUT ROWID;
            CREATE INDEX parents_parent ON parents(parent);
            CREATE TABLE heads(hash BLOB PRIMARY KEY) WITHOUT ROWID;
            CREATE TABLE state(bucket TEXT NOT NULL, key TEXT NOT NULL, value BLOB, hlc INTEGER NOT NULL, hash BLOB NOT NULL,
                               PRIMARY KEY(bucket, key)) WITHOUT ROWID;
            """)
        var inserter = RawInserter(db: db)
        let batched = try seconds { try inserter.insert(rows, perTransaction: batch) }
        let singles = try seconds { try inserter.insert(single, perTransaction: 1) }
        return (Double(rows) / batched, Double(single) / singles)
    }
}

/// Inserts synthetic entries with the baseline's statements.
struct RawInserter {
    let db: Database
    var done = 0
    var previous = objectID(-1)
    let body = [UInt8](repeating: 0xab, count: 220)

    init(db: Database) { self.db = db }

    mutating func insert(_ rows: Int, perTransaction: Int) throws {
        let end = done + rows
        while done < end {
            try db.writeTransaction {
                for _ in 0..<min(perTransaction, end - done) { try insertOne() }
            }
        }
    }

    private mutating func insertOne() throws {
        let hash = objectID(done)
        try db.prepare("INSERT OR IGNORE INTO entries(hash, hlc, author, body) VALUES(?1, ?2, ?3, ?4)")
            .bind(.blob(hash), .integer(done), .blob(previous), .blob(body)).run()
        try db.prepare("INSERT OR IGNORE INTO parents(child, parent) VALUES(?1, ?2)").bind(.blob(hash), .blob(previous)).run()
        try db.prepare("""
            INSERT INTO state(bucket, key, value, hlc, hash) VALUES(?1, ?2, ?3, ?4, ?5)
            ON CONFLICT(bucket, key) DO UPDATE SET value = excluded.value, hlc = excluded.hlc, hash = excluded.hash
            WHERE excluded.hlc > state.hlc
            """).bind(.text("objects"), .text("k\(done)"), .blob(hash), .integer(done), .blob(hash)).run()
        try db.prepare("DELETE FROM heads WHERE hash = ?1").bind(.blob(previous)).run()
        try db.prepare("INSERT OR IGNORE INTO heads(hash) VALUES(?1)").bind(.blob(hash)).run()
        previous = hash
        done += 1
    }
}

/// A 32-byte object id (a BLAKE2b-256 of the index): what storage engines store as values.
func objectID(_ i: Int) -> [UInt8] {
    var w = ByteWriter()
    w.u64(UInt64(bitPattern: Int64(i)))
    return Blake2b.hash256(w.bytes).bytes
}
