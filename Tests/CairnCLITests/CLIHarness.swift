import Foundation
import Testing

/// Runs the built `cairn` binary as a subprocess, in temporary directories.
enum CLI {
    /// The `cairn` executable: `$CAIRN_BIN`, else the one beside the test bundle (SwiftPM puts
    /// every product of a build in the same directory, whatever `--scratch-path` is), else the
    /// newest `.build*/debug/cairn` under the package root.
    static let binary: String = {
        let fileManager = FileManager.default
        if let path = ProcessInfo.processInfo.environment["CAIRN_BIN"], fileManager.isExecutableFile(atPath: path) { return path }
        var candidates: [String] = []
        for start in [Bundle.main.executablePath, CommandLine.arguments.first, Bundle.main.bundlePath].compactMap({ $0 }) {
            var directory = URL(fileURLWithPath: start).resolvingSymlinksInPath()
            for _ in 0..<4 {
                directory.deleteLastPathComponent()
                candidates.append(directory.appendingPathComponent("cairn").path)
            }
        }
        if let found = candidates.first(where: { fileManager.isExecutableFile(atPath: $0) && !isDirectory($0) }) { return found }
        // Sources/…/Tests/CairnCLITests/CLIHarness.swift → the package root.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let builds = ((try? fileManager.contentsOfDirectory(atPath: root.path)) ?? []).filter { $0.hasPrefix(".build") }
        let binaries = builds.map { root.appendingPathComponent($0).appendingPathComponent("debug/cairn").path }
            .filter { fileManager.isExecutableFile(atPath: $0) }
        let newest = binaries.max { modified($0) < modified($1) }
        return newest ?? "cairn-binary-not-found"
    }()

    private static func isDirectory(_ path: String) -> Bool {
        var flag: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &flag) && flag.boolValue
    }

    private static func modified(_ path: String) -> Date {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date) ?? .distantPast
    }

    struct Result: CustomStringConvertible {
        let status: Int32
        let stdoutData: Data
        let stderr: String
        var stdout: String { String(decoding: stdoutData, as: UTF8.self) }
        var lines: [String] { stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init).filter { !$0.isEmpty } }
        var description: String { "status \(status)\nstdout: \(stdout)\nstderr: \(stderr)" }
    }

    /// Runs `cairn args…` to completion; stdout and stderr go through files, so neither can
    /// fill up and block the child.
    /// `executable` and `prefix` run it through another program (`setpriv … cairn args…`).
    /// With `timeout`, a child still running after that many seconds is killed (SIGKILL:
    /// status 9), so a command expected to fail cannot hang a test.
    static func run(
        _ arguments: [String], stdin: Data? = nil, environment: [String: String] = [:], executable: String = binary, prefix: [String] = [],
        timeout: Double? = nil
    ) throws -> Result {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-io-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let outURL = scratch.appendingPathComponent("out"), errURL = scratch.appendingPathComponent("err")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = prefix + arguments
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "CAIRN_DIR")
        env.merge(environment) { $1 }
        process.environment = env
        let outHandle = try FileHandle(forWritingTo: outURL), errHandle = try FileHandle(forWritingTo: errURL)
        process.standardOutput = outHandle
        process.standardError = errHandle
        if let stdin {
            let input = scratch.appendingPathComponent("in")
            try stdin.write(to: input)
            process.standardInput = try FileHandle(forReadingFrom: input)
        } else {
            process.standardInput = FileHandle.nullDevice
        }
        try process.run()
        if let timeout {
            let pid = process.processIdentifier
            let exited = ExitFlag()
            defer { exited.set() }
            DispatchQueue.global().asyncAfter(deadline: .now() + timeout) {
                exited.ifNotSet { kill(pid, SIGKILL) }
            }
            process.waitUntilExit()
        } else {
            process.waitUntilExit()
        }
        try outHandle.close()
        try errHandle.close()
        return Result(
            status: process.terminationStatus, stdoutData: try Data(contentsOf: outURL),
            stderr: String(decoding: try Data(contentsOf: errURL), as: UTF8.self))
    }
}

/// Set once a child has exited, so a timer never signals a reused PID.
final class ExitFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var done = false

    func set() { lock.withLock { done = true } }
    func ifNotSet(_ action: () -> Void) { lock.withLock { if !done { action() } } }
}

/// A temporary directory holding one or more data directories; removed when dropped.
final class Sandbox {
    let root: URL

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: root) }

    func path(_ name: String) -> String { root.appendingPathComponent(name).path }

    /// `cairn init` in a new data directory; returns it.
    func initLog(_ name: String = "node", logName: String = "test") throws -> Node {
        let node = Node(dataDir: path(name))
        let result = try node.run("init", "--name", logName)
        #expect(result.status == 0, "\(result)")
        return node
    }
}

/// One data directory and the commands run on it.
struct Node {
    let dataDir: String

    /// `cairn --data-dir DIR args…`.
    func run(_ arguments: String..., stdin: Data? = nil) throws -> CLI.Result {
        try CLI.run(["--data-dir", dataDir] + arguments, stdin: stdin)
    }

    /// Runs and expects success; returns stdout.
    @discardableResult
    func ok(_ arguments: String..., sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        let result = try CLI.run(["--data-dir", dataDir] + arguments)
        #expect(result.status == 0, "cairn \(arguments.joined(separator: " ")): \(result)", sourceLocation: sourceLocation)
        #expect(result.stderr.isEmpty, "cairn \(arguments.joined(separator: " ")) wrote to stderr: \(result.stderr)", sourceLocation: sourceLocation)
        return result.stdout
    }

    /// The node's public key, from `status --json`.
    func publicKey() throws -> String { try statusJSON()["node_key"] as! String }

    func statusJSON() throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(try ok("status", "--json").utf8)) as! [String: Any]
    }

    func entryCount() throws -> Int { try statusJSON()["entries"] as! Int }

    /// The secret seed in node.key (to check that no output ever contains it).
    func secretSeed() throws -> String {
        try String(contentsOfFile: dataDir + "/node.key", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A second node of the same log: a copy of this node's database with a new node key (taken
    /// from a throwaway `cairn init`), granted the writer role here first. This is how a replica
    /// is seeded until the CLI has a `clone` command.
    func replica(named name: String, in sandbox: Sandbox) throws -> Node {
        let keySource = try sandbox.initLog(name + "-keygen")
        let key = try keySource.publicKey()
        try ok("writers", "add", key)
        let fileManager = FileManager.default
        let target = sandbox.path(name)
        try fileManager.createDirectory(atPath: target, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        for file in ["cairn.db", "cairn.db-wal"] where fileManager.fileExists(atPath: dataDir + "/" + file) {
            try fileManager.copyItem(atPath: dataDir + "/" + file, toPath: target + "/" + file)
        }
        try fileManager.copyItem(atPath: keySource.dataDir + "/node.key", toPath: target + "/node.key")
        return Node(dataDir: target)
    }
}

/// Parses JSON lines.
func jsonLines(_ text: String) throws -> [[String: Any]] {
    try text.split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
}

/// What an error report must look like: one line starting `cairn: error:`, and nothing that
/// looks like a crash or a stack trace.
func expectCleanError(_ result: CLI.Result, status: Int32 = 1, containing text: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(result.status == status, "\(result)", sourceLocation: sourceLocation)
    #expect(result.stderr.hasPrefix("cairn: error: "), "\(result)", sourceLocation: sourceLocation)
    if let text { #expect(result.stderr.contains(text), "\(result)", sourceLocation: sourceLocation) }
    for marker in ["Fatal error", "Stack trace", "Backtrace", "Thread 0", "Swift runtime failure", ".swift:"] {
        #expect(!result.stderr.contains(marker), "\(result)", sourceLocation: sourceLocation)
    }
}
