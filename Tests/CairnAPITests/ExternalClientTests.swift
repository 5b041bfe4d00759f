import Cairn
import CairnAPI
import Foundation
import Testing

/// Clients outside Swift against a live server: a Python engine (`requests`) and schemathesis
/// checking the server against docs/openapi.yaml. Both are installed by .ci/run.
@Suite struct ExternalClientTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let python = root.appendingPathComponent("Tests/CairnAPITests/python")

    @Test func aPythonEngineRunsTheWholeCycle() async throws {
        try await withServedLog(name: "engine") { _, address in
            let (status, output) = try await run(
                "python3", [Self.python.appendingPathComponent("engine_client.py").path, "http://\(address)",
                            Self.root.appendingPathComponent("docs/cairn-change-event.schema.json").path])
            #expect(status == 0, "\(output)")
        }
    }

    /// Every documented operation but the change feed (whose responses never end while
    /// following; FeedTests and engine_client.py cover it), with generated valid and invalid
    /// requests: statuses, content types, headers and bodies must be as documented.
    @Test func theServerMatchesItsOpenAPIDocument() async throws {
        try await withServedLog(name: "schema") { log, address in
            try await log.put("tables", "orders", Array("v1".utf8))
            let seed = UInt64.random(in: 0..<UInt64(UInt32.max))
            // Requests may wait long on a CI machine running every suite at once (tests that
            // block a thread of the small cooperative pool stall this server too): a generous
            // timeout, so only a server that never answers fails.
            print("schemathesis seed \(seed)")
            let (status, output) = try await run(
                "schemathesis",
                ["--config-file", Self.python.appendingPathComponent("schemathesis.toml").path, "run",
                 Self.root.appendingPathComponent("docs/openapi.yaml").path, "--url", "http://\(address)",
                 "--exclude-path", "/v1/changes", "--max-examples", "25", "--seed", "\(seed)", "--request-timeout", "60",
                 "--no-color"])
            #expect(status == 0, "\(output)")
        }
    }

    /// Runs a program found on PATH, returning its exit status and output (stdout and stderr).
    private func run(_ program: String, _ arguments: [String]) async throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [program] + arguments
        // Outside the repository: schemathesis keeps a cache of failures in its working directory.
        process.currentDirectoryURL = FileManager.default.temporaryDirectory
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        let exited = AsyncStream<Int32> { continuation in
            process.terminationHandler = { continuation.yield($0.terminationStatus); continuation.finish() }
        }
        try process.run()
        // Read while it runs, so a full pipe never stalls it; on a thread of its own, since the
        // blocking read must not hold one of the few threads the server in this process needs.
        let text = await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(returning: String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
            }
        }
        var statuses = exited.makeAsyncIterator()
        return (await statuses.next() ?? -1, text)
    }
}
