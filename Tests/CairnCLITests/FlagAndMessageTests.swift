import Cairn
import CairnCore
import CairnStore
import Foundation
import Testing

@Suite("cairn: one meaning per flag, examples in help, clear messages, quoted names")
struct FlagAndMessageTests {
    @Test func versionNamesTheFormats() throws {
        let result = try CLI.run(["--version"])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.hasPrefix("cairn "), "\(result)")
        #expect(result.stdout.contains("entry format 1") && result.stdout.contains("sync protocol 1"), "\(result)")
    }

    @Test func everyCommandsHelpHasExamples() throws {
        let commands = [
            [], ["init"], ["put"], ["delete"], ["get"], ["ls"], ["log"], ["show"], ["history"], ["verify"],
            ["writers"], ["writers", "list"], ["writers", "add"], ["writers", "revoke"], ["export"], ["import"], ["purge"],
            ["status"], ["invite"], ["join"], ["peers"], ["peers", "list"], ["peers", "add"], ["peers", "remove"],
        ]
        for command in commands {
            let result = try CLI.run(command + ["--help"])
            #expect(result.status == 0, "\(command): \(result)")
            #expect(result.stdout.contains("EXAMPLES:"), "cairn \(command.joined(separator: " ")) --help has no EXAMPLES")
        }
        // The deprecated spelling of writers revoke --at works but is not advertised.
        let revoke = try CLI.run(["writers", "revoke", "--help"]).stdout
        #expect(revoke.contains("--at <time>") && !revoke.contains("--from <"), "\(revoke)")
    }

    @Test func dashNLimitsLogAndHistory() throws {
        let sandbox = try Sandbox()
        let node = try sandbox.initLog()
        for index in 0..<3 { try node.ok("put", "b/k", "v\(index)") }
        #expect(try node.ok("log", "--oneline", "-n", "2").split(separator: "\n").count == 2)
        #expect(try node.ok("log", "--oneline", "--limit", "1").split(separator: "\n").count == 1)
        let history = try node.ok("history", "b/k", "-n", "1").split(separator: "\n")
        #expect(history.count == 2 && history[0].contains("3 versions") && history[1].hasPrefix("*"), "\(history)")
        #expect(try node.ok("ls", "b", "-n", "1") == "k\n")
    }

    @Test func badAuthorSaysWhatIsWrong() throws {
        let sandbox = try Sandbox()
        let node = try sandbox.initLog()
        let result = try node.run("log", "--author", "zz")
        expectCleanError(result, status: 64, containing: "--author 'zz'")
        #expect(!result.stderr.contains("USAGE"), "\(result)")
        #expect(result.stderr.split(separator: "\n").count == 1, "\(result)")
    }

    @Test func writersRevokeTakesAPrefixAndAt() throws {
        let sandbox = try Sandbox()
        let node = try sandbox.initLog()
        let other = try sandbox.initLog("other")
        let key = try other.publicKey()
        try node.ok("writers", "add", key)
        let revoked = try node.ok("writers", "revoke", String(key.prefix(8)), "--at", "2030-01-01T00:00:00Z")
        #expect(revoked.count == 65, "\(revoked)")
        #expect(try node.ok("writers", "list").contains("2030-01-01T00:00:00.000Z"))
        // The old spelling still works, hidden.
        try node.ok("writers", "revoke", key, "--from", "2031-01-01T00:00:00Z")
        expectCleanError(try node.run("writers", "revoke", "zz"), status: 64, containing: "unique prefix")
    }

    @Test func anAmbiguousIdPrefixListsTheCandidates() async throws {
        let sandbox = try Sandbox()
        let path = sandbox.path("node")
        let log = try CairnLog.create(at: path, name: "ambiguous")
        // Write until two entries share their first 4 hex digits (a few hundred, by the birthday bound).
        var seen: [String: String] = [:]
        var pair: (String, String)?
        var written = 0
        while pair == nil && written < 20_000 {
            let entries = try await log.write((0..<200).map { .put(bucket: "b", key: "k\(written + $0)", value: [1]) })
            written += 200
            for entry in entries {
                let prefix = String(entry.id.hex.prefix(4))
                if let earlier = seen[prefix] { pair = (earlier, entry.id.hex); break }
                seen[prefix] = entry.id.hex
            }
        }
        let (first, second) = try #require(pair)
        let result = try Node(dataDir: path).run("show", String(first.prefix(4)))
        expectCleanError(result, containing: "short entry id \(first.prefix(4)) is ambiguous; candidates: ")
        #expect(result.stderr.contains(String(first.prefix(12))) && result.stderr.contains(String(second.prefix(12))), "\(result)")
    }

    @Test func namesWithNewlinesControlBytesAndQuotesAreQuoted() throws {
        let sandbox = try Sandbox()
        let node = try sandbox.initLog()
        try node.ok("put", "b/two\nlines", "x")
        try node.ok("put", "b/say \"hi\"", "x")
        try node.ok("put", "b/bell\u{7}\\", "x")
        try node.ok("put", "b/plain key", "x")
        let listed = try node.ok("ls", "b").split(separator: "\n").map(String.init)
        #expect(Set(listed) == ["\"bell\\a\\\\\"", "plain key", "\"say \\\"hi\\\"\"", "\"two\\nlines\""], "\(listed)")
        let log = try node.ok("log", "--oneline")
        #expect(log.split(separator: "\n").count == 5, "one line per entry: \(log)")
        #expect(log.contains("put \"b/two\\nlines\" (1 B)"), "\(log)")
        let history = try node.ok("history", "b/two\nlines")
        #expect(history.hasPrefix("history of \"b/two\\nlines\": 1 version"), "\(history)")
    }

    /// On a terminal, export, import, init --from and verify draw one kind of bar: label,
    /// fraction, count, rate and ETA (checked through `script`, which gives the command a TTY).
    @Test func progressBarsOnATerminalShowRateAndETA() async throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/script") else { return }
        let sandbox = try Sandbox()
        let path = sandbox.path("node")
        let log = try CairnLog.create(at: path, name: "progress")
        for batch in 0..<5 {
            _ = try await log.write((0..<1000).map { .put(bucket: "b", key: "k\(batch)-\($0)", value: [1]) })
        }
        let bundle = sandbox.path("all.bundle")
        func onTerminal(_ arguments: [String]) throws -> String {
            let command = ([CLI.binary] + arguments).map { "'\($0)'" }.joined(separator: " ")
            return try runProgram("/usr/bin/script", ["-qec", command, "/dev/null"], in: sandbox.root.path,
                                  environment: ["CAIRN_PROGRESS_DELAY_MS": "0", "TERM": "dumb"])
        }
        let runs: [(String, [String])] = [
            ("exporting", ["--data-dir", path, "export", bundle]),
            ("importing", ["--data-dir", sandbox.path("copy"), "init", "--from", bundle]),
            ("importing", ["--data-dir", path, "import", bundle]),
            ("verifying", ["--data-dir", path, "verify"]),
        ]
        for (label, arguments) in runs {
            let output = try onTerminal(arguments)
            #expect(output.contains("\(label) ["), "\(arguments): \(output)")
            #expect(output.contains("/s"), "\(arguments): \(output)")
        }
        // Not on a terminal: nothing on stderr.
        let plain = try Node(dataDir: path).run("export", sandbox.path("again.bundle"))
        #expect(plain.status == 0 && plain.stderr.isEmpty, "\(plain)")
    }

    @Test func aDamagedDatabaseIsNamedWithWhatToDo() throws {
        let sandbox = try Sandbox()
        let node = try sandbox.initLog()
        for index in 0..<30 { try node.ok("put", "b/k\(index)", String(repeating: "v\(index)", count: 600)) }
        // Overwrite the start of every page after the first three.
        let database = node.dataDir + "/cairn.db"
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: database)))
        var offset = 3 * 4096
        while offset + 100 <= bytes.count {
            for index in offset..<(offset + 100) { bytes[index] = 0xFF }
            offset += 4096
        }
        try Data(bytes).write(to: URL(fileURLWithPath: database))
        for command in [["log"], ["ls", "b"]] {
            let result = try CLI.run(["--data-dir", node.dataDir] + command)
            expectCleanError(result, containing: "\(node.dataDir)/cairn.db is damaged")
            #expect(!result.stderr.contains("SQLite error") && !result.stderr.contains("SELECT"), "\(result)")
            #expect(result.stderr.split(separator: "\n").count == 1, "\(result)")
        }
    }

    @Test func sqliteFailuresNameTheFileAndWhatToDo() throws {
        let sandbox = try Sandbox()
        let node = try sandbox.initLog()
        try node.ok("put", "b/k", "v")
        // A database file this process may not write, in a directory it may write.
        let database = node.dataDir + "/cairn.db"
        try FileManager.default.setAttributes([.posixPermissions: 0o444], ofItemAtPath: database)
        defer { try? FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: database) }
        guard getuid() != 0 else { return }  // root writes anyway
        let result = try node.run("put", "b/k", "w")
        expectCleanError(result)
        #expect(!result.stderr.contains("SQLite error") && !result.stderr.contains("INSERT"), "\(result)")
        #expect(result.stderr.contains(node.dataDir), "\(result)")
    }
}
