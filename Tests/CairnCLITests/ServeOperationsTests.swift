import Cairn
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// What an operator needs from `cairn serve`: surviving a connection flood, one daemon per
/// directory, reload on SIGHUP, log levels and JSON logs, systemd readiness, clear bind errors.
@Suite("cairn serve operations", .serialized)
struct ServeOperationsTests {
    typealias Daemon = ServeTests.Daemon

    /// A loopback TCP connection that sends nothing (the descriptor; close it with `close`).
    private func rawConnection(to address: String) -> Int32? {
        let port = UInt16(address.split(separator: ":").last!)!
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var target = sockaddr_in()
        target.sin_family = sa_family_t(AF_INET)
        target.sin_port = port.bigEndian
        target.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &target) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if connected != 0 {
            close(fd)
            return nil
        }
        return fd
    }

    private func eventually(_ seconds: Double, _ what: String, _ condition: () throws -> Bool) async throws {
        try await ServeTests().eventually(seconds, what, condition)
    }

    /// Issue #9 (2): with a 64-descriptor limit, 600 idle TCP connections used to exhaust the
    /// descriptors, and libdispatch's worker monitor traps when it cannot open
    /// /proc/self/task/…/stat (SIGILL, no log line). The daemon now stays below the limit (a cap on
    /// inbound connections derived from RLIMIT_NOFILE, a per-address cap, a handshake deadline),
    /// says so in its log, and an honest peer still syncs both ways through the flood.
    @Test func aConnectionFloodUnderALowDescriptorLimitIsSurvived() async throws {
        let sandbox = try Sandbox()
        let a = try sandbox.initLog("a")
        let daemonA = try Daemon(a, descriptorLimit: 64)
        var flood: [Int32] = []
        defer { for fd in flood { close(fd) } }
        for _ in 0..<300 { if let fd = rawConnection(to: daemonA.address) { flood.append(fd) } }
        #expect(flood.count > 64, "more connections than the descriptor limit were opened (\(flood.count))")

        let b = Node(dataDir: sandbox.path("b"))
        let token = try ServeTests().invite(a, daemonA.address)
        #expect(try CLI.run(["--data-dir", b.dataDir, "join", token]).status == 0)
        let daemonB = try Daemon(b)
        // A second wave while the honest peer connects and syncs.
        for _ in 0..<300 { if let fd = rawConnection(to: daemonA.address) { flood.append(fd) } }
        let grants = try a.entryCount()
        try await eventually(60, "b holds its grant") { try b.entryCount() >= grants }
        try a.ok("put", "app/from-a", "1")
        try b.ok("put", "app/from-b", "2")
        try await eventually(60, "both writes on both nodes") {
            try [a, b].allSatisfy { node in
                let listing = try node.ok("ls", "app")
                return listing.contains("from-a") && listing.contains("from-b")
            }
        }
        #expect(daemonA.process.isRunning, "the daemon survived: \(daemonA.stderr.suffix(2000))")
        #expect(daemonA.stderr.contains("inbound connection limit reached"), "\(daemonA.stderr.suffix(2000))")
        for daemon in [daemonA, daemonB] { daemon.signal(SIGTERM) }
        for daemon in [daemonA, daemonB] { #expect(try await daemon.waitForExit() == 0, "\(daemon.stderr.suffix(2000))") }
    }

    /// Issue #9 (6d): one daemon per data directory; the second fails with one line naming the
    /// PID that holds the lock.
    @Test func aSecondDaemonOnTheSameDirectoryFailsNamingThePID() async throws {
        let sandbox = try Sandbox()
        let node = try sandbox.initLog()
        let first = try Daemon(node)
        let second = try CLI.run(["--data-dir", node.dataDir, "serve", "--listen", "127.0.0.1:0"], timeout: 30)
        expectCleanError(second, containing: "pid \(first.process.processIdentifier)")
        #expect(second.stderr.split(separator: "\n").count == 1, "\(second)")
        #expect(first.process.isRunning)
        first.signal(SIGTERM)
        #expect(try await first.waitForExit() == 0)
        // The lock goes with the process.
        let third = try Daemon(node)
        third.signal(SIGTERM)
        #expect(try await third.waitForExit() == 0)
    }

    /// Issue #9 (6e): SIGHUP rereads serve.json (a peer added there is dialed) instead of
    /// killing the daemon (exit 129).
    @Test func sighupReloadsTheConfigFile() async throws {
        let sandbox = try Sandbox()
        let a = try sandbox.initLog("a")
        let daemonA = try Daemon(a)
        let b = Node(dataDir: sandbox.path("b"))
        let token = try ServeTests().invite(a, daemonA.address, "--read-only")
        #expect(try CLI.run(["--data-dir", b.dataDir, "join", token]).status == 0)
        // b dials no one: its peer list is emptied; a learns of b only from serve.json.
        #expect(try CLI.run(["--data-dir", b.dataDir, "peers", "remove", daemonA.address]).status == 0)
        let daemonB = try Daemon(b)
        try a.ok("put", "app/key", "v")
        try Data(#"{"peers": ["\#(daemonB.address)"]}"#.utf8).write(to: URL(fileURLWithPath: a.dataDir + "/serve.json"))
        daemonA.signal(SIGHUP)
        try await eventually(60, "b receives a's write once a dials it") { try b.ok("ls", "app").contains("key") }
        #expect(daemonA.process.isRunning)
        #expect(daemonA.stderr.contains("reloaded configuration"), "\(daemonA.stderr)")
        for daemon in [daemonA, daemonB] { daemon.signal(SIGTERM) }
        for daemon in [daemonA, daemonB] { #expect(try await daemon.waitForExit() == 0, "\(daemon.stderr)") }
    }

    /// Issue #9 (6f): `--log-format json` writes one JSON object per line with ts, level, label,
    /// message and metadata; `--log-level` filters.
    @Test func jsonLogsAndLogLevels() async throws {
        let sandbox = try Sandbox()
        let node = try sandbox.initLog()
        let daemon = try Daemon(node, arguments: ["--log-format", "json", "--log-level", "debug"])
        daemon.signal(SIGTERM)
        #expect(try await daemon.waitForExit() == 0)
        let lines = daemon.stderr.split(separator: "\n")
        #expect(!lines.isEmpty)
        for line in lines {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(Set(object?.keys.map { $0 } ?? []) == ["ts", "level", "label", "message", "metadata"], "\(line)")
        }
        let levels = Set(lines.compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["level"] as? String })
        #expect(levels.contains("info"))

        let quiet = try Daemon(node, arguments: ["--log-level", "warning"])
        quiet.signal(SIGTERM)
        #expect(try await quiet.waitForExit() == 0)
        #expect(!quiet.stderr.contains(" info "), "\(quiet.stderr)")
        expectCleanError(try CLI.run(["--data-dir", node.dataDir, "serve", "--log-level", "loud"], timeout: 30), status: 64, containing: "--log-level")
    }

    /// Issue #9 (6g): READY=1 once listening and STOPPING=1 at shutdown, to $NOTIFY_SOCKET, a
    /// path or an abstract socket ('@').
    @Test(arguments: [false, true]) func systemdIsNotified(abstract: Bool) async throws {
        let sandbox = try Sandbox()
        let node = try sandbox.initLog()
        let name = abstract ? "@cairn-test-\(UUID().uuidString.prefix(8))" : sandbox.path("notify.sock")
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        #expect(fd >= 0)
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var path = Array(name.utf8)
        if abstract { path[0] = 0 }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: path) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + path.count + (abstract ? 0 : 1))
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        #expect(bound == 0)
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        func receive() -> String {
            var buffer = [UInt8](repeating: 0, count: 512)
            let count = recv(fd, &buffer, buffer.count, 0)
            return count > 0 ? String(decoding: buffer.prefix(count), as: UTF8.self) : ""
        }
        let daemon = try Daemon(node, environment: ["NOTIFY_SOCKET": name])
        let ready = receive()
        #expect(ready.split(separator: "\n").contains("READY=1"), "\(ready)")
        daemon.signal(SIGTERM)
        let stopping = receive()
        #expect(stopping.split(separator: "\n").contains("STOPPING=1"), "\(stopping)")
        #expect(try await daemon.waitForExit() == 0)
    }

    /// Issue #9 (6h): nothing says "listening" unless every listener is bound; a metrics port
    /// that is taken fails the daemon with one clear line.
    @Test func aTakenMetricsPortFailsWithOneLine() async throws {
        let sandbox = try Sandbox()
        let node = try sandbox.initLog()
        let holder = try Daemon(try sandbox.initLog("other"), arguments: ["--metrics", "127.0.0.1:0"])
        let port = try await metricsPort(of: holder)
        let result = try CLI.run(["--data-dir", node.dataDir, "serve", "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:\(port)"], timeout: 30)
        expectCleanError(result, containing: "cannot listen on 127.0.0.1:\(port) (metrics)")
        #expect(!result.stdout.contains("listening"), "\(result)")
        #expect(result.stderr.split(separator: "\n").count == 1, "\(result)")
        holder.signal(SIGTERM)
        #expect(try await holder.waitForExit() == 0)
    }

    /// The port a daemon's metrics server reported in its log.
    private func metricsPort(of daemon: Daemon) async throws -> Int {
        var port: Int?
        try await eventually(30, "the metrics server is bound") {
            port = daemon.stderr.split(separator: "\n").first { $0.contains("serving metrics") }
                .flatMap { line in line.split(separator: " ").first { $0.hasPrefix("port=") }.flatMap { Int($0.dropFirst(5)) } }
            return port != nil
        }
        return port!
    }
}
