import Foundation
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `cairn api` and `cairn serve --api` as a user runs them: separate processes, real ports.
@Suite("cairn api", .serialized)
struct APICommandTests {
    /// Starts `cairn ARGUMENTS` and reads stdout lines until every prefix in `awaiting` has
    /// been seen (in any order); returns the process and those lines.
    private func start(_ arguments: [String], awaiting prefixes: [String]) throws -> (Process, [String: String]) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CLI.binary)
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment.removeValue(forKey: "CAIRN_DIR")
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        var seen: [String: String] = [:]
        var line = Data()
        while seen.count < prefixes.count, let byte = try output.fileHandleForReading.read(upToCount: 1), !byte.isEmpty {
            guard byte == Data("\n".utf8) else { line += byte; continue }
            let text = String(decoding: line, as: UTF8.self)
            if let prefix = prefixes.first(where: { text.hasPrefix($0) }) { seen[prefix] = text }
            line = Data()
        }
        return (process, seen)
    }

    private func waitForExit(_ process: Process) async -> Int32 {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                process.waitUntilExit()
                continuation.resume(returning: process.terminationStatus)
            }
        }
    }

    @Test func serveWithAPIAnswersAndStopsOnSIGTERMWithAFeedOpen() async throws {
        let sandbox = try Sandbox()
        let node = try sandbox.initLog()
        let (process, lines) = try start(
            ["--data-dir", node.dataDir, "serve", "--listen", "127.0.0.1:0", "--api", "127.0.0.1:0"],
            awaiting: ["listening ", "api listening "])
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        let address = try #require(lines["api listening "]?.split(separator: " ").last)
        let (body, response) = try await URLSession.shared.data(from: URL(string: "http://\(address)/v1/status")!)
        #expect((response as? HTTPURLResponse)?.statusCode == 200)
        let status = try #require(try JSONSerialization.jsonObject(with: body) as? [String: Any])
        #expect(status["node_key"] as? String == (try node.publicKey()))

        // A following feed consumer stays connected while the daemon is told to stop.
        let feed = Process()
        feed.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        feed.arguments = ["curl", "-sN", "http://\(address)/v1/changes"]
        let feedOutput = Pipe()
        feed.standardOutput = feedOutput
        try feed.run()
        defer { if feed.isRunning { kill(feed.processIdentifier, SIGKILL) } }
        let first = try feedOutput.fileHandleForReading.read(upToCount: 1)
        #expect(first == Data("{".utf8))
        kill(process.processIdentifier, SIGTERM)
        #expect(await waitForExit(process) == 0)
        #expect(await waitForExit(feed) == 0)
    }

    @Test func offLoopbackTheAPIRefusesToStartWithoutAToken() throws {
        let sandbox = try Sandbox()
        let node = try sandbox.initLog()
        let result = try node.run("api", "--listen", "0.0.0.0:0")
        expectCleanError(result, containing: "without a token")
    }
}
