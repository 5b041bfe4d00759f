import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Auditing a copy: every reading command works on a data directory that cannot be written,
/// without a node key; every writing command fails with one line saying so.
@Suite("cairn: read-only data directories")
struct ReadOnlyTests {
    static let readingCommands: [[String]] = [
        ["log"], ["log", "--oneline", "--graph"], ["show", "HEAD"], ["history", "b/k"], ["get", "b/k"], ["get", "b/k", "--json"],
        ["ls"], ["ls", "b", "--long"], ["status"], ["status", "--json"], ["tail"], ["verify"], ["writers", "list"], ["peers", "list"],
    ]

    static func writingCommands(bundle: String) -> [[String]] {
        [["put", "b/k", "v2"], ["delete", "b/k"], ["import", bundle], ["purge", "b/k"],
         ["writers", "add", String(repeating: "ab", count: 32)], ["peers", "add", "127.0.0.1:7401"]]
    }

    /// `show HEAD` stands for the newest entry's id.
    static func resolved(_ command: [String], newest: String) -> [String] { command.map { $0 == "HEAD" ? newest : $0 } }

    /// A log with a few writes and a bundle of it.
    private func source(in sandbox: Sandbox) throws -> (Node, String, String) {
        let node = try sandbox.initLog("source")
        try node.ok("put", "b/k", "v1")
        try node.ok("put", "b/other", "x")
        let newest = try node.ok("put", "b/k", "v1b").trimmingCharacters(in: .whitespacesAndNewlines)
        let bundle = sandbox.path("all.bundle")
        try node.ok("export", bundle)
        return (node, newest, bundle)
    }

    /// Copies a data directory (as `cp -r` would onto other media), without the node key.
    private func copy(_ node: Node, to target: String) throws {
        let fileManager = FileManager.default
        try fileManager.createDirectory(atPath: target, withIntermediateDirectories: false)
        for file in ["cairn.db", "cairn.db-wal", "cairn.db-shm", "network.key"] where fileManager.fileExists(atPath: node.dataDir + "/" + file) {
            try fileManager.copyItem(atPath: node.dataDir + "/" + file, toPath: target + "/" + file)
        }
    }

    private func bytes(of directory: String) throws -> [String: Data] {
        var out: [String: Data] = [:]
        for file in try FileManager.default.contentsOfDirectory(atPath: directory) where file == "cairn.db" || file == "network.key" {
            out[file] = try Data(contentsOf: URL(fileURLWithPath: directory + "/" + file))
        }
        return out
    }

    /// `--no-write` (or `CAIRN_NO_WRITE=1`): a copy without `node.key` is read by every
    /// reading command and refused by every writing one; the database file is not changed.
    /// (Root ignores permission bits, so this is how the suite simulates read-only media when it
    /// runs as root; the test below checks real permissions.)
    @Test func readOnlyModeReadsACopyWithoutNodeKeyAndRefusesWrites() throws {
        let sandbox = try Sandbox()
        let (origin, newest, bundle) = try source(in: sandbox)
        let target = sandbox.path("copy")
        try copy(origin, to: target)
        let before = try bytes(of: target)
        let expected = try Set(origin.ok("log", "--oneline").split(separator: "\n"))
        for (index, command) in Self.readingCommands.enumerated() {
            // Alternate between the flag and the environment variable.
            let result = index % 2 == 0
                ? try CLI.run(["--data-dir", target, "--no-write"] + Self.resolved(command, newest: newest))
                : try CLI.run(["--data-dir", target] + Self.resolved(command, newest: newest), environment: ["CAIRN_NO_WRITE": "1"])
            #expect(result.status == 0 && result.stderr.isEmpty, "cairn \(command.joined(separator: " ")): \(result)")
        }
        let readOnly = Node(dataDir: target)
        #expect(try Set(CLI.run(["--data-dir", target, "--no-write", "log", "--oneline"]).stdout.split(separator: "\n")) == expected)
        #expect(try CLI.run(["--data-dir", target, "--no-write", "get", "b/k"]).stdout == "v1b")
        let status = try JSONSerialization.jsonObject(with: CLI.run(["--no-write", "--data-dir", target, "status", "--json"]).stdoutData) as? [String: Any]
        #expect(status?["node_key"] is NSNull)
        for command in Self.writingCommands(bundle: bundle) {
            let result = try CLI.run(["--data-dir", target, "--no-write"] + command)
            expectCleanError(result, containing: "is read-only")
            #expect(result.stderr.split(separator: "\n").count == 1 && !result.stderr.contains("SQL"), "\(result)")
        }
        #expect(try bytes(of: target) == before, "a command changed the copy")
        // Without the flag, a reading command still needs no node key (a copy may lack it).
        #expect(try readOnly.ok("get", "b/k") == "v1b")
    }

    /// Whether the suite can run `cairn` as a user that permission bits apply to: it is not
    /// root, or it is root and can drop to `nobody` with setpriv(1).
    static let canRunUnprivileged = getuid() != 0 || FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv")

    /// `cairn args…` as a user without write permission on root's files (nobody, via setpriv,
    /// when the suite runs as root).
    private func runUnprivileged(_ arguments: [String]) throws -> CLI.Result {
        guard getuid() == 0 else { return try CLI.run(arguments) }
        return try CLI.run(arguments, executable: "/usr/bin/setpriv", prefix: ["--reuid=65534", "--regid=65534", "--clear-groups", CLI.binary])
    }

    /// A copy on "read-only media": directory mode 0555 and files 0444, no `-wal` or `-shm`
    /// (a cleanly closed log), so SQLite cannot create the `-shm` it needs and must open the file
    /// immutable. Reading commands work without any flag; writing commands fail with one line.
    @Test(.enabled(if: canRunUnprivileged))
    func aDirectoryWithoutWritePermissionIsReadWithoutFlagsAndRefusesWrites() throws {
        let sandbox = try Sandbox()
        let (origin, newest, bundle) = try source(in: sandbox)
        let target = sandbox.path("media")
        try copy(origin, to: target)
        let fileManager = FileManager.default
        for file in ["cairn.db-wal", "cairn.db-shm"] { try? fileManager.removeItem(atPath: target + "/" + file) }
        for file in try fileManager.contentsOfDirectory(atPath: target) {
            try fileManager.setAttributes([.posixPermissions: 0o444], ofItemAtPath: target + "/" + file)
        }
        try fileManager.setAttributes([.posixPermissions: 0o555], ofItemAtPath: target)
        try fileManager.setAttributes([.posixPermissions: 0o755], ofItemAtPath: sandbox.root.path)
        defer { try? fileManager.setAttributes([.posixPermissions: 0o755], ofItemAtPath: target) }
        for command in Self.readingCommands {
            let result = try runUnprivileged(["--data-dir", target] + Self.resolved(command, newest: newest))
            #expect(result.status == 0 && result.stderr.isEmpty, "cairn \(command.joined(separator: " ")): \(result)")
        }
        #expect(try runUnprivileged(["--data-dir", target, "get", "b/k"]).stdout == "v1b")
        for command in Self.writingCommands(bundle: bundle) {
            let result = try runUnprivileged(["--data-dir", target] + command)
            expectCleanError(result, containing: "is read-only")
            #expect(result.stderr.split(separator: "\n").count == 1 && !result.stderr.contains("SQL"), "\(result)")
        }
        #expect(try fileManager.contentsOfDirectory(atPath: target).sorted() == ["cairn.db", "network.key"])
    }
}
