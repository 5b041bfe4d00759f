import Cairn
import CairnTestSupport
import Foundation
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// `cairn-bench mesh [--nodes 10,25,50] [--writes 1000] [--peers 3] [--seed S]`: issue #9's mesh.
/// For each size N, one log and N data directories, each served by its own `cairn serve`
/// process (the binary beside this one) with a sparse random peer list of `peers` or
/// `peers + 1` others (seeded; the union graph connected). Once every session is open and the
/// first anti-entropy rounds are over, `writes` puts spread round-robin over the nodes (a quarter
/// as many keys, so versions collide and merges happen) are written through each node's data
/// directory from this process — its daemon finds them by its commit poll, as it finds the CLI's.
/// Prints the time until every node holds the same entries and the same single head, and the
/// wire bytes every daemon sent meanwhile (`cairn_wire_bytes_total`, scraped from `/metrics`)
/// per new entry per node, which must not grow with N.
struct MeshBenchmark {
    let sizes: [Int]
    let writes: Int
    let peers: Int
    let seed: UInt64

    init(arguments: [String]) {
        let nodes = arguments.firstIndex(of: "--nodes").flatMap { $0 + 1 < arguments.count ? arguments[$0 + 1] : nil }
        sizes = nodes.map { $0.split(separator: ",").compactMap { Int($0) }.filter { $0 >= 2 } } ?? [10, 25, 50]
        writes = BenchMain.option("--writes", in: arguments) ?? 1000
        peers = max(1, BenchMain.option("--peers", in: arguments) ?? 3)
        seed = arguments.firstIndex(of: "--seed").flatMap { $0 + 1 < arguments.count ? UInt64(arguments[$0 + 1]) : nil }
            ?? UInt64.random(in: 0...UInt64.max)
    }

    func run() async throws {
        let cairn = cairnBinary(for: "mesh")
        print("mesh: \(writes) writes, \(peers)–\(peers + 1) peers per node, seed \(seed) (replay with --seed \(seed)); load \(loadAverage())")
        print(" nodes  links  writes  writing  converge  entries  merges (sync)  daemon CPU  wire KB sent  B/entry/node  B/entry/link  entries sent/entry/node  rbsr B/entry/node")
        for size in sizes {
            var random = SplitMix64(seed: seed &+ UInt64(size))
            let graph = MeshGraph.random(nodes: size, peers: peers, using: &random)
            let result = try await MeshRun(cairn: cairn, graph: graph, writes: writes, random: random).measure()
            print(result.row + "   load \(loadAverage())")
            print("        " + result.counters.diagnostics)
        }
    }

    private func loadAverage() -> String {
        var loads = [Double](repeating: 0, count: 3)
        return getloadavg(&loads, 3) == 3 ? String(format: "%.1f %.1f %.1f", loads[0], loads[1], loads[2]) : "?"
    }
}

/// Who dials whom: node `i` dials each of `peers[i]`. Sessions are one per pair, whoever dialed,
/// so the mesh is the undirected union of the lists.
struct MeshGraph {
    let peers: [[Int]]

    var count: Int { peers.count }

    /// Each node's neighbours in the union graph.
    var neighbours: [Set<Int>] {
        var result = [Set<Int>](repeating: [], count: count)
        for (node, list) in peers.enumerated() {
            for peer in list {
                result[node].insert(peer)
                result[peer].insert(node)
            }
        }
        return result
    }

    var links: Int { neighbours.reduce(0) { $0 + $1.count } / 2 }

    /// Lists of `peers` or `peers + 1` distinct other nodes, drawn again until the union graph is
    /// connected (with three or more peers each the first draw almost always is). A node is not
    /// given one that already dials it, while others are left: two lists naming each other make
    /// one link, and a small mesh would have fewer links per node than a large one — the cost
    /// per node follows the links per node, so sizes compare only at the same degree.
    static func random(nodes: Int, peers: Int, using random: inout SplitMix64) -> MeshGraph {
        while true {
            var lists = [[Int]](repeating: [], count: nodes)
            for node in 0..<nodes {
                let wanted = min(peers + Int(random.next() % 2), nodes - 1)
                let (fresh, dialingUs) = (0..<nodes).filter { $0 != node }.shuffled(using: &random).reduce(into: ([Int](), [Int]())) {
                    if lists[$1].contains(node) { $0.1.append($1) } else { $0.0.append($1) }
                }
                lists[node] = Array((fresh + dialingUs).prefix(wanted))
            }
            let graph = MeshGraph(peers: lists)
            if graph.isConnected { return graph }
        }
    }

    var isConnected: Bool {
        let neighbours = neighbours
        var seen: Set<Int> = [0]
        var work = [0]
        while let node = work.popLast() {
            for next in neighbours[node] where seen.insert(next).inserted { work.append(next) }
        }
        return seen.count == count
    }
}

/// One mesh of `cairn serve` processes, from set-up to clean stop.
struct MeshRun {
    let cairn: String
    let graph: MeshGraph
    let writes: Int
    let random: SplitMix64

    struct Result {
        let nodes: Int
        let links: Int
        let writes: Int
        /// Writing the puts, and from the first put until every node agrees.
        let writing: Double
        let converging: Double
        let entries: Int
        let merges: Int
        let counters: MeshCounters
        /// CPU seconds (user + system) the daemons used in all, start to stop.
        let daemonCPU: Double

        var row: String {
            let perEntryNode = Double(entries * nodes)
            let wireBytes = counters[MeshCounters.wireBytesSent]
            return String(format: "%6d %6d %7d %6.2f s %7.2f s %8d %7d (%4.0f) %9.1f s %13.1f %13.0f %13.0f %24.2f %18.0f", nodes, links, writes,
                          writing, converging, entries, merges, counters[MeshCounters.mergesWritten], daemonCPU, wireBytes / 1000,
                          wireBytes / perEntryNode, wireBytes / Double(entries * links), counters[MeshCounters.entriesSent] / perEntryNode,
                          counters[MeshCounters.reconcileBytesSent] / perEntryNode)
        }
    }

    func measure() async throws -> Result {
        let root = scratchDirectory("mesh-\(graph.count)")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let cpuBefore = childrenCPUSeconds()
        let logs = try await makeNodes(in: root)
        let daemons = try await startDaemons(logs, logsIn: root)
        let before = try await quiet(daemons)
        let initialEntries = try await logs[0].counts().entries

        let start = ContinuousClock.now
        try await writeSpread(over: logs)
        let written = ContinuousClock.now
        try await awaitConvergence(logs)
        let converged = ContinuousClock.now
        let after = try await quiet(daemons)
        await stop(daemons)

        let entries = try await logs[0].counts().entries - initialEntries
        let merges = try await logs[0].log(LogFilter()).filter { if case .merge = $0.entry.payload { true } else { false } }.count
        return Result(
            nodes: graph.count, links: graph.links, writes: writes, writing: (written - start).inSeconds, converging: (converged - start).inSeconds,
            entries: entries, merges: merges, counters: after - before, daemonCPU: childrenCPUSeconds() - cpuBefore)
    }

    /// One `cairn serve` per node, started together (each takes a moment to open its log) and
    /// waited for in turn; then each node's peer list, and the sessions it opens.
    private func startDaemons(_ logs: [CairnLog], logsIn root: String) async throws -> [ServeProcess] {
        var daemons: [ServeProcess] = []
        for index in 0..<graph.count {
            daemons.append(try ServeProcess(
                cairn: cairn, dataDirectory: logs[index].directory.path, logFile: root + "/serve-\(index).log",
                // All nodes dial from 127.0.0.1.
                arguments: ["--max-inbound-per-address", "\(graph.count)"]))
        }
        for daemon in daemons { try daemon.awaitListening() }
        for (index, list) in graph.peers.enumerated() {
            for peer in list { try await logs[index].addPeer(PeerAddress(address: daemons[peer].address)) }
        }
        try await awaitSessions(daemons)
        return daemons
    }

    /// The puts, round-robin over the nodes, on a quarter as many keys as puts.
    private func writeSpread(over logs: [CairnLog]) async throws {
        let keys = UInt64(max(1, writes / 4))
        var random = random
        for write in 0..<writes {
            _ = try await logs[write % logs.count].put("mesh", "k\(random.next() % keys)", Array("w\(write)".utf8))
        }
    }

    /// SIGTERM to every daemon, then waits for each; one that does not exit cleanly is reported
    /// with the end of its log.
    private func stop(_ daemons: [ServeProcess]) async {
        for daemon in daemons { daemon.terminate() }
        for daemon in daemons {
            let status = await daemon.exitStatus()
            if status != 0 { print("cairn serve \(daemon.address) exited with status \(status):\n\(daemon.logTail())") }
        }
    }

    /// One log (its genesis on node 0), every other node joined by invite, then node 0's
    /// database — which holds every grant — copied to all: each node may write at once.
    private func makeNodes(in root: String) async throws -> [CairnLog] {
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let origin = try CairnLog.create(at: root + "/node-0", name: "mesh")
        var paths: [String] = []
        for index in 1..<graph.count {
            let path = root + "/node-\(index)"
            _ = try CairnLog.join(at: path, invite: try await origin.invite(address: nil, role: .writer))
            paths.append(path)
        }
        var logs = [origin]
        for path in paths {
            try copyDatabase(from: origin.directory.databasePath, to: path + "/cairn.db")
            logs.append(try CairnLog.open(at: path))
        }
        return logs
    }

    /// Waits until every node has a session with each of its neighbours.
    private func awaitSessions(_ daemons: [ServeProcess]) async throws {
        let neighbours = graph.neighbours
        var index = 0
        try await poll(every: .milliseconds(200), "node \(index) to open a session with each of its \(neighbours[index].count) peers") {
            while index < daemons.count, try await daemons[index].scrape().value("cairn_peers_connected") >= Double(neighbours[index].count) {
                index += 1
            }
            return index == daemons.count
        }
    }

    /// Waits until no entry moves and no reconciliation runs for half a second (pings go on),
    /// and returns the counters summed over the nodes.
    private func quiet(_ daemons: [ServeProcess]) async throws -> MeshCounters {
        var last = try await MeshCounters(daemons)
        var now = last
        try await poll(every: .milliseconds(500), "the mesh to go quiet") {
            (last, now) = (now, try await MeshCounters(daemons))
            return now.activity == last.activity
        }
        return now
    }

    /// Polls every node's heads and entry count until all hold the same single head and the
    /// same number of entries (read through this process's own connections).
    private func awaitConvergence(_ logs: [CairnLog]) async throws {
        var states: Set<MeshNodeState> = []
        try await poll(every: .milliseconds(100), "convergence (\(states.count) distinct states)") {
            states = []
            for log in logs { states.insert(MeshNodeState(heads: try await log.heads().map(\.id), entries: try await log.counts().entries)) }
            return states.count == 1 && states.first?.heads.count == 1
        }
    }

    /// Checks `condition` every `interval` until it holds; a mesh that does not get there in
    /// ten minutes is broken, not slow, and fails the benchmark naming what it waited for.
    private func poll(every interval: Duration, _ what: @autoclosure () -> String, until condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(600)
        while !(try await condition()) {
            guard ContinuousClock.now < deadline else { throw MeshError("gave up waiting for \(what())") }
            try await Task.sleep(for: interval)
        }
    }
}

/// What convergence compares between nodes.
struct MeshNodeState: Hashable {
    let heads: [Hash32]
    let entries: Int
}

/// Counters summed over every node of a mesh.
struct MeshCounters {
    static let wireBytesSent = #"cairn_wire_bytes_total{direction="sent"}"#
    static let reconcileBytesSent = #"cairn_rbsr_bytes_total{direction="sent"}"#
    static let fetched = #"cairn_fetches_total{outcome="complete"}"#
    static let fetchesTooLarge = #"cairn_fetches_total{outcome="too_large"}"#
    static let entriesSent = "cairn_entries_sent_total"
    static let entriesApplied = "cairn_entries_received_total"
    static let rounds = "cairn_rbsr_rounds_total"
    static let mergesWritten = "cairn_merges_written_total"
    /// Read whatever their labels (summed over them): what the diagnostic line counts.
    static let families = ["cairn_sessions_dropped_total", "cairn_entries_rejected_total", "cairn_reconcile_fallbacks_total"]
    static let series = [wireBytesSent, reconcileBytesSent, fetched, fetchesTooLarge, entriesSent, entriesApplied, rounds, mergesWritten] + families

    private var values: [String: Double]

    /// A series summed over the nodes (one of ``series``).
    subscript(_ series: String) -> Double { values[series, default: 0] }

    /// What moves only while the mesh is still syncing (pings go on).
    var activity: [Double] { [self[Self.entriesSent], self[Self.entriesApplied], self[Self.rounds]] }

    /// Where bytes went besides first deliveries: entries sent where they were held already
    /// (`cairn_entries_received_total` counts only those applied), reconciliation, fetches,
    /// sessions lost.
    var diagnostics: String {
        let sent = self[Self.entriesSent], applied = self[Self.entriesApplied]
        let redundant = sent > 0 ? 100 * (sent - applied) / sent : 0
        return String(format: "entries sent %.0f, applied where received %.0f (%.0f%% of the sent were held already), rbsr rounds %.0f, fetches %.0f (+%.0f too large), ",
                      sent, applied, redundant, self[Self.rounds], self[Self.fetched], self[Self.fetchesTooLarge])
            + Self.families.map { "\($0) \(Int(self[$0]))" }.joined(separator: ", ")
    }

    private init(values: [String: Double]) { self.values = values }

    init(_ daemons: [ServeProcess]) async throws {
        values = [:]
        for daemon in daemons {
            let page = try await daemon.scrape()
            for series in Self.series {
                values[series, default: 0] += series.contains("{") ? page.value(series) : page.sum(series)
            }
        }
    }

    static func - (after: MeshCounters, before: MeshCounters) -> MeshCounters {
        MeshCounters(values: after.values.merging(before.values.mapValues { -$0 }, uniquingKeysWith: +))
    }
}

/// CPU seconds (user + system) used by this process's children that were waited for.
func childrenCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_CHILDREN.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}

extension Duration {
    var inSeconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

/// A `cairn serve` process of the mesh: listening on a free port, metrics on another, logs in
/// a file.
final class ServeProcess {
    private let process = Process()
    private let output = Pipe()
    private let logFile: String
    private(set) var address = ""
    private var metricsPort = 0

    /// Starts `cairn --data-dir DIR serve --listen 127.0.0.1:0 --metrics 127.0.0.1:0 arguments…`.
    ///
    /// - Throws: if the process cannot be started.
    init(cairn: String, dataDirectory: String, logFile: String, arguments: [String]) throws {
        self.logFile = logFile
        _ = FileManager.default.createFile(atPath: logFile, contents: nil)
        process.executableURL = URL(fileURLWithPath: cairn)
        process.arguments = ["--data-dir", dataDirectory, "serve", "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0"] + arguments
        var environment = ProcessInfo.processInfo.environment
        environment.removeValue(forKey: "CAIRN_DIR")
        process.environment = environment
        process.standardOutput = output
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: logFile))
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    /// Reads the `listening HOST:PORT node KEY` line (printed once every listener is bound) and
    /// the metrics port the log reported before it.
    ///
    /// - Throws: ``MeshError`` if the daemon stopped instead.
    func awaitListening() throws {
        var line = Data()
        while let byte = try output.fileHandleForReading.read(upToCount: 1), !byte.isEmpty, byte != Data("\n".utf8) { line += byte }
        let words = String(decoding: line, as: UTF8.self).split(separator: " ")
        let port = logTail().split(separator: "\n").first { $0.contains("serving metrics") }?
            .split(separator: " ").first { $0.hasPrefix("port=") }.flatMap { Int($0.dropFirst(5)) }
        guard words.count == 4, words[0] == "listening", let port else {
            throw MeshError("cairn serve did not start: \(String(decoding: line, as: UTF8.self))\n\(logTail())")
        }
        address = String(words[1])
        metricsPort = port
    }

    /// `GET /metrics`.
    ///
    /// - Throws: if the endpoint cannot be reached.
    func scrape() async throws -> MetricsPage {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: metricsPort) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        let text = try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"))
            var text = ""
            for try await buffer in inbound { text += String(buffer: buffer) }
            return text
        }
        return MetricsPage(text: text)
    }

    /// Asks the daemon to stop (SIGTERM: sessions close, the log is left clean).
    func terminate() { kill(process.processIdentifier, SIGTERM) }

    /// Waits for the process to exit; its status.
    func exitStatus() async -> Int32 {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async { [process] in
                process.waitUntilExit()
                continuation.resume(returning: process.terminationStatus)
            }
        }
    }

    /// A daemon still running when dropped (the benchmark failed half-way) is killed.
    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    func logTail() -> String {
        String(((try? String(contentsOfFile: logFile, encoding: .utf8)) ?? "").suffix(4000))
    }
}

/// A page of Prometheus text.
struct MetricsPage {
    let text: String

    /// The value of one series, e.g. `cairn_wire_bytes_total{direction="sent"}`; 0 when absent.
    func value(_ series: String) -> Double {
        for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.dropFirst(series.count + 1).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        }
        return 0
    }

    /// The sum of every series of a metric, whatever its labels.
    func sum(_ metric: String) -> Double {
        text.split(separator: "\n").filter { $0.hasPrefix(metric + "{") || $0.hasPrefix(metric + " ") }
            .compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }.reduce(0, +)
    }
}

struct MeshError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
