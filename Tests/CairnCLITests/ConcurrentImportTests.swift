import CairnCore
import CairnStore
import Cairn
import CairnSQLite
import Foundation
import Testing

/// A bundle import applies in short chunks, so `cairn put` from other processes keeps working
/// while it runs.
@Suite("cairn import: writers are not locked out")
struct ConcurrentImportTests {
    static let bundleEntries = ProcessInfo.processInfo.environment["CAIRN_CONCURRENT_ENTRIES"].flatMap(Int.init) ?? 20_000
    static let writers = 4
    static let minimumPuts = 20

    /// A log (node `target`, a writer) and a bundle of the same log holding `bundleEntries`
    /// puts in bucket `bulk` that `target` lacks.
    private func prepare(in sandbox: Sandbox) async throws -> (target: String, bundle: String, bulkIDs: Set<String>) {
        let source = try CairnLog.create(at: sandbox.path("source"), name: "big")
        let target = try CairnLog.join(at: sandbox.path("target"), genesis: try await source.genesis)
        try await source.addWriter(target.nodeKey)
        let grant = sandbox.path("grant.bundle")
        try await source.exportBundle(to: grant)
        _ = try await target.importBundle(from: grant)
        var ids = Set<String>()
        for start in stride(from: 0, to: Self.bundleEntries, by: 2000) {
            let written = try await source.write((start..<min(start + 2000, Self.bundleEntries)).map {
                .put(bucket: "bulk", key: "k\($0)", value: Array("value \($0)".utf8))
            })
            ids.formUnion(written.map(\.id.hex))
        }
        let bundle = sandbox.path("big.bundle")
        try await source.exportBundle(to: bundle)
        return (target.directory.path, bundle, ids)
    }

    private func launch(_ executable: String, _ arguments: [String], output: String) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment.removeValue(forKey: "CAIRN_DIR")
        process.environment = environment
        _ = FileManager.default.createFile(atPath: output + ".out", contents: nil)
        _ = FileManager.default.createFile(atPath: output + ".err", contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: output + ".out"))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: output + ".err"))
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return process
    }

    private func read(_ path: String) throws -> String { try String(contentsOfFile: path, encoding: .utf8) }

    /// Each of `writers` processes runs `cairn put w<n>/k<i> v<i>` on `dataDir` until the file
    /// `done` exists and it has put at least `minimumPuts` times.
    private func startWriters(on dataDir: String, until done: String, in sandbox: Sandbox) throws -> [Process] {
        let script = """
            i=0
            while [ $i -lt \(Self.minimumPuts) ] || [ ! -e "$1" ]; do
              i=$((i + 1))
              "$2" --data-dir "$3" put "w$4/k$i" "v$i" || exit 1
              [ $i -lt 100000 ] || exit 2
            done
            """
        return try (0..<Self.writers).map { n in
            try launch("/bin/sh", ["-c", script, "writer", done, CLI.binary, dataDir, String(n)], output: sandbox.path("writer\(n)"))
        }
    }

    /// Waits for the writers; expects each to have exited 0 with nothing on stderr and returns
    /// the ids each printed, by bucket (`w<n>`).
    private func finish(_ writers: [Process], in sandbox: Sandbox) throws -> [String: Set<String>] {
        var putIDs: [String: Set<String>] = [:]
        for (n, writer) in writers.enumerated() {
            writer.waitUntilExit()
            let errors = try read(sandbox.path("writer\(n).err"))
            #expect(writer.terminationStatus == 0 && errors.isEmpty, "writer \(n): \(errors)")
            let ids = try read(sandbox.path("writer\(n).out")).split(separator: "\n").map(String.init)
            #expect(ids.count >= Self.minimumPuts)
            putIDs["w\(n)"] = Set(ids)
        }
        return putIDs
    }

    /// Every entry's cursor and bucket in `dataDir`'s change stream, by entry id.
    private func streamed(_ dataDir: String) throws -> (cursors: [String: Int], buckets: [String: String]) {
        let tail = try CLI.run(["--data-dir", dataDir, "tail"])
        #expect(tail.status == 0)
        var cursors: [String: Int] = [:]
        var buckets: [String: String] = [:]
        for line in try jsonLines(tail.stdout) {
            guard let source = line["source"] as? [String: Any], let id = source["entry"] as? String,
                let cursor = line["cursor"] as? Int
            else { continue }
            cursors[id] = cursor
            buckets[id] = line["bucket"] as? String
        }
        return (cursors, buckets)
    }

    /// Every put is in `dataDir` under its writer's bucket (nothing lost), and some committed
    /// between the first and last of `bulkIDs` — while the bulk work ran, not all after it.
    private func expectPutsInterleaved(_ putIDs: [String: Set<String>], with bulkIDs: Set<String>, in dataDir: String) throws {
        let (cursors, buckets) = try streamed(dataDir)
        #expect(bulkIDs.isSubset(of: Set(cursors.keys)), "bulk entries missing")
        for (bucket, ids) in putIDs {
            #expect(ids.allSatisfy { buckets[$0] == bucket }, "puts of \(bucket) missing: lost writes")
        }
        let bulkCursors = bulkIDs.compactMap { cursors[$0] }
        let (firstBulk, lastBulk) = (bulkCursors.min() ?? 0, bulkCursors.max() ?? 0)
        let during = putIDs.values.flatMap { $0 }.filter { (cursors[$0] ?? 0) > firstBulk && (cursors[$0] ?? 0) < lastBulk }
        #expect(!during.isEmpty, "no put committed while the bulk entries were being applied")
    }

    /// One process imports a 20,000-entry bundle (`CAIRN_CONCURRENT_ENTRIES` sets another size)
    /// while 4 others each run `cairn put` until the import is over (at least 20 times): no put
    /// fails or is lost, the import applies every entry, and puts commit between the import's
    /// chunks — not all after it.
    @Test func putsFromOtherProcessesSucceedDuringALargeImport() async throws {
        let sandbox = try Sandbox()
        let (target, bundle, bulkIDs) = try await prepare(in: sandbox)
        let done = sandbox.path("import-done")
        let importer = try launch(CLI.binary, ["--data-dir", target, "import", bundle], output: sandbox.path("import"))
        let writers = try startWriters(on: target, until: done, in: sandbox)
        importer.waitUntilExit()
        _ = FileManager.default.createFile(atPath: done, contents: nil)
        let putIDs = try finish(writers, in: sandbox)

        let importOutput = try read(sandbox.path("import.out")), importErrors = try read(sandbox.path("import.err"))
        #expect(importer.terminationStatus == 0 && importErrors.isEmpty, "import: \(importOutput) \(importErrors)")
        #expect(importOutput.contains("\(Self.bundleEntries + 2) entries, \(Self.bundleEntries) applied, 2 already known"), "\(importOutput)")
        try expectPutsInterleaved(putIDs, with: bulkIDs, in: target)
        #expect(try Node(dataDir: target).ok("verify").contains("OK"))
    }

    /// A node catching up 20,000 entries from a `cairn serve` peer (its own daemon applying the
    /// batches) while 4 processes run `cairn put` on it until the catch-up is over: no put fails
    /// or is lost, puts commit between the catch-up's batches, and both nodes end with every
    /// entry and a clean verify.
    @Test func putsFromOtherProcessesSucceedDuringACatchUp() async throws {
        let sandbox = try Sandbox()
        let a = try sandbox.initLog("a")
        // The invite's grant is written before the bulk entries, so it reaches b first and b's
        // own writers are admitted from the start of the catch-up.
        let token = try CLI.run(["--data-dir", a.dataDir, "invite", "--address", "127.0.0.1:9"])
        #expect(token.status == 0, "\(token)")
        var bulkIDs = Set<String>()
        do {
            let log = try CairnLog.open(at: a.dataDir)
            for start in stride(from: 0, to: Self.bundleEntries, by: 2000) {
                let written = try await log.write((start..<min(start + 2000, Self.bundleEntries)).map {
                    .put(bucket: "bulk", key: "k\($0)", value: Array("value \($0)".utf8))
                })
                bulkIDs.formUnion(written.map(\.id.hex))
            }
        }
        let total = try a.entryCount()
        let b = Node(dataDir: sandbox.path("b"))
        let joined = try CLI.run(["--data-dir", b.dataDir, "join", token.stdout.trimmingCharacters(in: .whitespacesAndNewlines)])
        #expect(joined.status == 0, "\(joined)")
        let daemonA = try ServeTests.Daemon(a)
        try b.ok("peers", "add", daemonA.address)
        let daemonB = try ServeTests.Daemon(b)

        // A safety net only, not a measurement: 5 minutes per 20,000 entries.
        let deadline = ContinuousClock.now + .seconds(max(300, Self.bundleEntries / 20_000 * 300))
        // b may write once its grant (the first entry after the genesis) has arrived.
        while try b.entryCount() < 3, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        let done = sandbox.path("catch-up-done")
        let writers = try startWriters(on: b.dataDir, until: done, in: sandbox)
        while try b.entryCount() < total + Self.writers, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
        _ = FileManager.default.createFile(atPath: done, contents: nil)
        let putIDs = try finish(writers, in: sandbox)
        #expect(try b.entryCount() >= total, "b caught up")
        try expectPutsInterleaved(putIDs, with: bulkIDs, in: b.dataDir)

        // The puts reach a too, and both verify clean.
        let written = Set(putIDs.values.flatMap { $0 })
        while try Set(streamed(a.dataDir).cursors.keys).isSuperset(of: written) == false, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(try Set(streamed(a.dataDir).cursors.keys).isSuperset(of: written), "every put reached a")
        for daemon in [daemonA, daemonB] { daemon.signal(SIGTERM) }
        for daemon in [daemonA, daemonB] { #expect(try await daemon.waitForExit() == 0, "\(daemon.stderr)") }
        for node in [a, b] { #expect(try node.ok("verify").contains("OK")) }
    }

    /// A writer that cannot get the lock within its wait says so in one line (no SQL); readers
    /// are not held up meanwhile.
    @Test func aWriterThatCannotGetTheLockSaysTheLogIsBusy() throws {
        let sandbox = try Sandbox()
        let node = try sandbox.initLog()
        try node.ok("put", "b/k", "v1")
        let holder = try Database(path: node.dataDir + "/cairn.db", mode: .readWrite)
        try holder.execute("BEGIN IMMEDIATE")
        let environment = ["CAIRN_BUSY_TIMEOUT_MS": "100"]
        let put = try CLI.run(["--data-dir", node.dataDir, "put", "b/k", "v2"], environment: environment)
        expectCleanError(put, containing: "the log at \(node.dataDir) is busy (another process holds the write lock); try again")
        #expect(put.stderr.split(separator: "\n").count == 1 && !put.stderr.contains("SQL"), "\(put)")
        let get = try CLI.run(["--data-dir", node.dataDir, "get", "b/k"], environment: environment)
        #expect(get.status == 0 && get.stdout == "v1", "\(get)")
        try holder.execute("ROLLBACK")
        try node.ok("put", "b/k", "v2")
        #expect(try node.ok("get", "b/k") == "v2")
    }
}
