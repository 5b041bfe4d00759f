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
    static let bundleEntries = 20_000
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

    /// One process imports a 20,000-entry bundle while 4 others each run `cairn put` until the
    /// import is over (at least 20 times): no put fails or is lost, the import applies every
    /// entry, and puts commit between the import's chunks — not all after it.
    @Test func putsFromOtherProcessesSucceedDuringALargeImport() async throws {
        let sandbox = try Sandbox()
        let (target, bundle, bulkIDs) = try await prepare(in: sandbox)
        let done = sandbox.path("import-done")
        let importer = try launch(CLI.binary, ["--data-dir", target, "import", bundle], output: sandbox.path("import"))
        // Each writer puts w<n>/k<i> until the import is over and it has put at least 20 times.
        let script = """
            i=0
            while [ $i -lt \(Self.minimumPuts) ] || [ ! -e "$1" ]; do
              i=$((i + 1))
              "$2" --data-dir "$3" put "w$4/k$i" "v$i" || exit 1
              [ $i -lt 100000 ] || exit 2
            done
            """
        let writers = try (0..<Self.writers).map { n in
            try launch("/bin/sh", ["-c", script, "writer", done, CLI.binary, target, String(n)], output: sandbox.path("writer\(n)"))
        }
        importer.waitUntilExit()
        _ = FileManager.default.createFile(atPath: done, contents: nil)
        for writer in writers { writer.waitUntilExit() }

        let importOutput = try read(sandbox.path("import.out")), importErrors = try read(sandbox.path("import.err"))
        #expect(importer.terminationStatus == 0 && importErrors.isEmpty, "import: \(importOutput) \(importErrors)")
        #expect(importOutput.contains("\(Self.bundleEntries + 2) entries, \(Self.bundleEntries) applied, 2 already known"), "\(importOutput)")
        var putIDs: [String: Set<String>] = [:]
        for (n, writer) in writers.enumerated() {
            let errors = try read(sandbox.path("writer\(n).err"))
            #expect(writer.terminationStatus == 0 && errors.isEmpty, "writer \(n): \(errors)")
            let ids = try read(sandbox.path("writer\(n).out")).split(separator: "\n").map(String.init)
            #expect(ids.count >= Self.minimumPuts)
            putIDs["w\(n)"] = Set(ids)
        }

        // Every put and every bundle entry is in the log, in an order where puts landed
        // between the import's chunks.
        let tail = try CLI.run(["--data-dir", target, "tail"])
        #expect(tail.status == 0)
        var cursors: [String: Int] = [:]
        var bucketOf: [String: String] = [:]
        for line in try jsonLines(tail.stdout) {
            guard let source = line["source"] as? [String: Any], let id = source["entry"] as? String,
                let cursor = line["cursor"] as? Int
            else { continue }
            cursors[id] = cursor
            bucketOf[id] = line["bucket"] as? String
        }
        #expect(bulkIDs.isSubset(of: Set(cursors.keys)), "bundle entries missing")
        for (bucket, ids) in putIDs {
            #expect(ids.allSatisfy { bucketOf[$0] == bucket }, "puts of \(bucket) missing: lost writes")
        }
        let lastBulk = bulkIDs.compactMap { cursors[$0] }.max() ?? 0
        let firstBulk = bulkIDs.compactMap { cursors[$0] }.min() ?? 0
        let putsDuringImport = putIDs.values.flatMap { $0 }.filter { (cursors[$0] ?? 0) > firstBulk && (cursors[$0] ?? 0) < lastBulk }
        #expect(!putsDuringImport.isEmpty, "no put committed while the import was applying its chunks")
        #expect(try Node(dataDir: target).ok("verify").contains("OK"))
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
