import CairnCore
import CairnStore
import Cairn
import Foundation
import Testing

/// `cairn serve` as a user runs it: separate processes, real ports, signals.
@Suite("cairn serve", .serialized)
struct ServeTests {
    /// A running `cairn serve`; killed when dropped.
    final class Daemon {
        let process = Process()
        let address: String
        private let stderrURL: URL

        /// `descriptorLimit` runs it under `ulimit -n` (through `/bin/sh`); `environment` is added
        /// to the test's own.
        init(_ node: Node, arguments: [String] = [], descriptorLimit: Int? = nil, environment: [String: String] = [:]) throws {
            stderrURL = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-serve-\(UUID().uuidString).err")
            _ = FileManager.default.createFile(atPath: stderrURL.path, contents: nil)
            let output = Pipe()
            let serve = ["--data-dir", node.dataDir, "serve", "--listen", "127.0.0.1:0", "--reconcile-interval", "1"] + arguments
            if let descriptorLimit {
                process.executableURL = URL(fileURLWithPath: "/bin/sh")
                process.arguments = ["-c", "ulimit -n \(descriptorLimit) && exec \"$0\" \"$@\"", CLI.binary] + serve
            } else {
                process.executableURL = URL(fileURLWithPath: CLI.binary)
                process.arguments = serve
            }
            var env = ProcessInfo.processInfo.environment
            env.removeValue(forKey: "CAIRN_DIR")
            env.merge(environment) { $1 }
            process.environment = env
            process.standardOutput = output
            process.standardError = try FileHandle(forWritingTo: stderrURL)
            process.standardInput = FileHandle.nullDevice
            try process.run()
            // The first stdout line: `listening HOST:PORT node KEY`.
            var line = Data()
            while let byte = try output.fileHandleForReading.read(upToCount: 1), !byte.isEmpty, byte != Data("\n".utf8) { line += byte }
            let words = String(decoding: line, as: UTF8.self).split(separator: " ")
            guard words.count == 4, words[0] == "listening" else {
                let errors = (try? String(contentsOf: stderrURL, encoding: .utf8)) ?? ""
                throw CLIError("cairn serve did not start: \(String(decoding: line, as: UTF8.self)) \(errors)")
            }
            address = String(words[1])
        }

        var stderr: String { (try? String(contentsOf: stderrURL, encoding: .utf8)) ?? "" }

        func signal(_ signal: Int32) { kill(process.processIdentifier, signal) }

        /// Waits for the process to exit (at most `seconds`); its status, or nil if it did not.
        func waitForExit(seconds: Double = 20) async throws -> Int32? {
            let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
            while process.isRunning, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            return process.isRunning ? nil : process.terminationStatus
        }

        deinit {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            try? FileManager.default.removeItem(at: stderrURL)
        }
    }

    struct CLIError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// `cairn invite`: the token on stdout (stderr carries a note that it holds secrets).
    func invite(_ node: Node, _ address: String, _ options: String...) throws -> String {
        let result = try CLI.run(["--data-dir", node.dataDir, "invite", "--address", address] + options)
        #expect(result.status == 0, "\(result)")
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Polls `condition` every 100 ms for at most `seconds`.
    func eventually(_ seconds: Double, _ what: String, _ condition: () throws -> Bool) async throws {
        let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
        while ContinuousClock.now < deadline {
            if try condition() { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("timed out waiting for: \(what)")
        throw CLIError("timed out: \(what)")
    }

    /// README's three-node walk-through: init, invite, join, serve; a write on each node (by the
    /// CLI, a separate process, while the daemons run) reaches every node.
    @Test func threeNodeClusterAgrees() async throws {
        let sandbox = try Sandbox()
        let a = try sandbox.initLog("a", logName: "demo")
        let daemonA = try Daemon(a)
        let b = Node(dataDir: sandbox.path("b")), c = Node(dataDir: sandbox.path("c"))
        for node in [b, c] {
            let token = try invite(a, daemonA.address)
            let joined = try CLI.run(["--data-dir", node.dataDir, "join", token])
            #expect(joined.status == 0, "\(joined)")
        }
        let daemons = [daemonA, try Daemon(b), try Daemon(c)]
        // A joined node may write once its grant (written on a by the invite) has reached it.
        try await eventually(60, "b and c hold their grants") { try [b, c].allSatisfy { try $0.entryCount() >= 3 } }
        try a.ok("put", "app/from-a", "1")
        try b.ok("put", "app/from-b", "2")
        try c.ok("put", "app/from-c", "3")
        let nodes = [a, b, c]
        try await eventually(60, "every write on every node, one head") {
            try nodes.allSatisfy { node in
                let listing = try node.ok("ls", "app")
                let heads = try node.statusJSON()["heads"] as? [Any]
                return ["from-a", "from-b", "from-c"].allSatisfy(listing.contains) && heads?.count == 1
            }
        }
        let heads = try nodes.map { (try $0.statusJSON()["heads"] as? [[String: Any]])?.first?["id"] as? String }
        #expect(Set(heads).count == 1, "one shared head: \(heads)")
        for daemon in daemons { daemon.signal(SIGTERM) }
        for daemon in daemons { #expect(try await daemon.waitForExit() == 0, "\(daemon.stderr)") }
    }

    /// `join --fetch` fetches the log from the inviting daemon, as git clone does, and exits
    /// once the new node holds everything; an inviter that cannot be reached is said in one
    /// line, and the node stays joined.
    @Test func joinFetchClonesTheLogFromTheInviter() async throws {
        let sandbox = try Sandbox()
        let a = try sandbox.initLog("a")
        do {
            let log = try CairnLog.open(at: a.dataDir)
            for batch in 0..<5 {
                _ = try await log.write((0..<1000).map { .put(bucket: "bulk", key: "k\(batch)-\($0)", value: Array("v\($0)".utf8)) })
            }
        }
        let daemon = try Daemon(a)
        let b = Node(dataDir: sandbox.path("b"))
        let joined = try CLI.run(["--data-dir", b.dataDir, "join", "--fetch", try invite(a, daemon.address)])
        #expect(joined.status == 0 && joined.stdout.contains("fetched ") && joined.stdout.contains("entries from \(daemon.address)"), "\(joined)")
        #expect(try b.entryCount() == (try a.entryCount()), "b holds every entry a held")
        #expect(try b.ok("get", "bulk/k4-999") == "v999")
        daemon.signal(SIGTERM)
        #expect(try await daemon.waitForExit() == 0)

        let c = Node(dataDir: sandbox.path("c"))
        let unreachable = try CLI.run(["--data-dir", c.dataDir, "join", "--fetch", "--connect-timeout", "1", try invite(a, "127.0.0.1:9")])
        expectCleanError(unreachable, containing: "no session with 127.0.0.1:9 within 1 s")
        #expect(try c.entryCount() >= 1, "the node is joined even though the fetch failed")
    }

    /// A read-only node's key is in no writer set: the daemon it dials refuses it until the
    /// operator allows the key (`--allow KEY`); a malformed key is refused at start.
    @Test func aReadOnlyNodeConnectsOnceItsKeyIsAllowed() async throws {
        let sandbox = try Sandbox()
        let a = try sandbox.initLog("a")
        try a.ok("put", "app/x", "1")
        let b = Node(dataDir: sandbox.path("b"))
        #expect(try CLI.run(["--data-dir", b.dataDir, "join", try invite(a, "127.0.0.1:9", "--read-only")]).status == 0)
        let bad = try a.run("serve", "--listen", "127.0.0.1:0", "--allow", "not-a-key")
        #expect(bad.status != 0 && bad.stderr.contains("not a node key"), "\(bad)")

        let refusing = try Daemon(a)
        try b.ok("peers", "add", refusing.address)
        var daemonB: Daemon? = try Daemon(b)
        try await eventually(60, "a refuses b") { refusing.stderr.contains("not allowed to connect") }
        #expect(try b.entryCount() == 1)
        refusing.signal(SIGTERM)
        #expect(try await refusing.waitForExit() == 0)
        daemonB!.signal(SIGTERM)
        _ = try await daemonB!.waitForExit()

        let allowing = try Daemon(a, arguments: ["--allow", try b.publicKey()])
        try b.ok("peers", "add", allowing.address)
        daemonB = try Daemon(b)
        try await eventually(60, "b syncs from a") { try b.entryCount() >= 2 }
        for daemon in [allowing, daemonB!] { daemon.signal(SIGTERM) }
        for daemon in [allowing, daemonB!] { #expect(try await daemon.waitForExit() == 0, "\(daemon.stderr)") }
    }

    /// A broken serve.json is named with the line and column where it breaks, or the setting of
    /// the wrong type — never a Foundation error domain.
    @Test func aBadConfigFileSaysWhereItBreaks() throws {
        let sandbox = try Sandbox()
        let node = try sandbox.initLog()
        let config = node.dataDir + "/serve.json"
        for (text, expected) in [("{\"listen\": \"127.0.0.1:0\",\n \"peers\": [1,\n}", "not valid JSON at line 3, column 1"),
                                 ("{\"peers\": [1]}", "\"peers[0]\" should be a string")] {
            try text.write(toFile: config, atomically: true, encoding: .utf8)
            let result = try node.run("serve", "--listen", "127.0.0.1:0")
            #expect(result.status != 0 && result.stderr.contains("\(config): \(expected)"), "\(result)")
            #expect(!result.stderr.contains("NSCocoaErrorDomain") && result.stderr.split(separator: "\n").count == 1, "\(result)")
        }
    }

    /// A peer whose name does not resolve is reported once, in words, and retried quietly.
    @Test func anUnresolvablePeerIsNamedOnce() async throws {
        let sandbox = try Sandbox()
        let node = try sandbox.initLog()
        let daemon = try Daemon(node, arguments: ["--peer", "nosuchhost.invalid:7401"])
        try await eventually(30, "the unreachable peer is reported") { daemon.stderr.contains("cannot resolve host 'nosuchhost.invalid'") }
        #expect(!daemon.stderr.contains("SocketAddressError"), "\(daemon.stderr)")
        daemon.signal(SIGTERM)
        #expect(try await daemon.waitForExit() == 0)
    }

    @Test func sigtermStopsTheDaemonCleanly() async throws {
        let sandbox = try Sandbox()
        let daemon = try Daemon(try sandbox.initLog())
        daemon.signal(SIGTERM)
        #expect(try await daemon.waitForExit() == 0)
        #expect(daemon.stderr.contains("stopped"), "\(daemon.stderr)")
    }

    /// A node killed with SIGKILL while it catches up keeps every entry it had committed, opens
    /// and verifies cleanly, and converges after a restart.
    @Test func nodeKilledMidSyncLosesNothingAndConverges() async throws {
        let sandbox = try Sandbox()
        let a = try sandbox.initLog("a")
        do {
            let log = try CairnLog.open(at: a.dataDir)
            for batch in 0..<30 {
                _ = try await log.write((0..<1000).map { .put(bucket: "bulk", key: "k\(batch)-\($0)", value: Array("v\($0)".utf8)) })
            }
        }
        let total = try a.entryCount()
        // b joins read-only: its key is not in the writer set, so a must admit it explicitly.
        let daemonA = try Daemon(a, arguments: ["--allow-any"])
        let b = Node(dataDir: sandbox.path("b"))
        let token = try invite(a, daemonA.address, "--read-only")
        #expect(try CLI.run(["--data-dir", b.dataDir, "join", token]).status == 0)

        var daemonB: Daemon? = try Daemon(b)
        var seenBeforeKill = 0
        try await eventually(60, "b is partway through the catch-up") {
            seenBeforeKill = try b.entryCount()
            return seenBeforeKill > 1000
        }
        daemonB!.signal(SIGKILL)
        _ = try await daemonB!.waitForExit()
        daemonB = nil
        let afterKill = try b.entryCount()
        #expect(afterKill >= seenBeforeKill, "committed entries survive SIGKILL (\(afterKill) < \(seenBeforeKill))")
        let verify = try b.run("verify")
        #expect(verify.status == 0, "\(verify)")

        daemonB = try Daemon(b)
        try await eventually(120, "b converges after the restart") { try b.entryCount() >= total }
        #expect(try b.run("verify").status == 0)
        #expect(try b.ok("get", "bulk/k29-999") == "v999")
    }
}
