import CairnCore
import CairnStore
import Cairn
import CairnSync
import Foundation
import Logging
import Prometheus

/// `cairn-bench sync`: the sync service over loopback, against the raw verify limit measured in
/// the same run.
///
///     swift run -c release cairn-bench sync [--entries 100000] [--pushes 300] [--items 1000000] [--diffs 1000]
///
/// 1. Catch-up: a fresh node fetches a peer's whole log (delta fetch, batches verified ahead of
///    their insert), both nodes `cairn serve` processes — entries/s, as a ratio of a bundle import
///    of the same entries measured in the same run.
/// 2. Live push: one entry at a time on one node; the time until it is committed on the other.
/// 3. Anti-entropy: two nodes of `items` entries each with `diffs` differences, fast path off, so
///    one Negentropy round over the network and the fetches it triggers do all the work.
struct SyncBenchmark {
    let entries: Int
    let pushes: Int
    let items: Int
    let diffs: Int

    init(arguments: [String]) {
        entries = BenchMain.option("--entries", in: arguments) ?? 100_000
        pushes = BenchMain.option("--pushes", in: arguments) ?? 300
        items = BenchMain.option("--items", in: arguments) ?? 1_000_000
        diffs = BenchMain.option("--diffs", in: arguments) ?? 1000
    }

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .warning
            return handler
        }
        let verify = CoreBenchmark(entries: entries).rawVerifyRate(count: 20_000)
        print("raw Ed25519 verify (1 thread): \(Int(verify)) /s")
        try await catchUp(verifyRate: verify)
        try await pushLatency()
        if items > 0 { try await antiEntropy() }
    }

    // MARK: - Catch-up

    /// A fresh node fetches a peer's whole log, both running as `cairn serve` processes, timed
    /// from the fresh daemon's start until it holds every entry; against a bundle import of the
    /// same entries into another fresh node, measured in the same run (goal: at least 1.0×).
    func catchUp(verifyRate: Double) async throws {
        let cairn = cairnBinary(for: "sync")
        let (source, fresh) = try await pair("catchup")
        defer { remove(source, fresh) }
        try await fill(source.log, count: entries, prefix: "k")
        let total = try await source.log.counts().entries

        let bundle = source.path + ".bundle", imported = scratchDirectory("catchup-import")
        defer { for path in [bundle, imported] { try? FileManager.default.removeItem(atPath: path) } }
        _ = try await source.log.exportBundle(to: bundle)
        let importer = try CairnLog.join(at: imported, genesis: try await source.log.genesis)
        let importSeconds = try await seconds { _ = try await importer.importBundle(from: bundle) }
        let importRate = Double(total) / importSeconds
        report("bundle import of the same \(total) entries", importRate, limit: verifyRate, note: "limit = Ed25519 verify, 1 thread")

        let upstream = try ServeProcess(cairn: cairn, dataDirectory: source.path, logFile: source.path + ".serve.log", arguments: [])
        try upstream.awaitListening()
        var downstream: ServeProcess?
        let elapsed = try await seconds {
            downstream = try ServeProcess(cairn: cairn, dataDirectory: fresh.path, logFile: fresh.path + ".serve.log", arguments: ["--peer", upstream.address])
            // Polled by the ingest sequence (one indexed lookup), confirmed by a count once it
            // is reached: a count every 20 ms would scan the table the daemon is filling.
            while true {
                if try await fresh.log.lastSeq() >= Int64(total), try await fresh.log.counts().entries >= total { break }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        report("catch-up of \(total) entries, two cairn serve processes", Double(total) / elapsed, limit: importRate,
               note: String(format: "%.2f s; limit = bundle import above (goal ≥ 1.0×)", elapsed))
        for daemon in [upstream, downstream].compactMap({ $0 }) {
            daemon.terminate()
            _ = await daemon.exitStatus()
        }
    }

    // MARK: - Push latency

    func pushLatency() async throws {
        let (a, b) = try await pair("push")
        defer { remove(a, b) }
        a.start()
        b.start()
        try await b.log.addPeer(PeerAddress(address: "127.0.0.1:\(try await a.node.listeningPort())"))
        try await waitUntil {
            let connected = await a.node.connectedPeers.count + b.node.connectedPeers.count
            return connected == 2
        }
        try await Task.sleep(for: .seconds(1))  // let the first anti-entropy round finish
        var samples: [Double] = []
        for i in 0..<pushes {
            let entry = try await a.log.put("push", "k\(i)", [UInt8(i % 256)])
            let start = DispatchTime.now().uptimeNanoseconds
            while try await b.log.entry(entry.id) == nil { try await Task.sleep(for: .microseconds(200)) }
            samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
            try await Task.sleep(for: .milliseconds(5))
        }
        samples.sort()
        let p = { (q: Double) in samples[min(samples.count - 1, Int(Double(samples.count) * q))] }
        print(String(format: "live push latency, %d entries: p50 %.2f ms, p99 %.2f ms, max %.2f ms (woken by the commit; goal p99 < 20 ms)",
                     samples.count, p(0.5), p(0.99), samples.last!))
        await a.stop()
        await b.stop()
    }

    // MARK: - Anti-entropy

    func antiEntropy() async throws {
        var configuration = benchConfiguration()
        configuration.fastPath = false
        configuration.reconcileInterval = .seconds(3600)
        var (a, b) = try await pair("rbsr", configuration: configuration)
        defer { remove(a, b) }
        print("anti-entropy: generating \(items) entries …")
        try await fill(a.log, count: items - diffs / 2, prefix: "shared")
        let shared = try await a.log.counts().entries
        b = try await clone(a, into: b, configuration: configuration)
        try await fill(a.log, count: diffs / 2, prefix: "only-a")
        try await fill(b.log, count: diffs - diffs / 2, prefix: "only-b")
        let aCount = try await a.log.counts().entries, bCount = try await b.log.counts().entries
        let union = aCount + bCount - shared
        let elapsed = try await seconds {
            a.start()
            b.start()
            try await b.log.addPeer(PeerAddress(address: "127.0.0.1:\(try await a.node.listeningPort())"))
            // ≥: once both hold the union, a merge entry may follow.
            try await waitUntil {
                let held = (try await a.log.counts().entries, try await b.log.counts().entries)
                return held.0 >= union && held.1 >= union
            }
        }
        let bytes = ["sent", "received"].map { b.node.metrics.value(of: "cairn_rbsr_bytes_total{direction=\"\($0)\"}") }
        let rounds = b.node.metrics.value(of: "cairn_rbsr_rounds_total")
        print(String(format: "anti-entropy, %d vs %d entries, %d differences: %.0f round trips, %.1f KB sent + %.1f KB received, %.2f s until both hold all %d (includes ≤ 1 s until the dialer rereads its peer list)",
                     aCount, bCount, diffs, rounds, bytes[0] / 1000, bytes[1] / 1000, elapsed, union))
        await a.stop()
        await b.stop()
    }

    // MARK: - Helpers

    final class Node: @unchecked Sendable {
        let path: String
        var log: CairnLog
        var node: SyncNode
        var task: Task<Void, any Error>?

        init(path: String, log: CairnLog, configuration: SyncConfiguration) throws {
            self.path = path
            self.log = log
            // Each node records into its own registry, so the figures read are this node's.
            var configuration = configuration
            configuration.metricsFactory = PrometheusMetricsFactory(registry: PrometheusCollectorRegistry())
            self.node = try SyncNode(log: log, configuration: configuration)
        }

        func start() {
            let node = node
            task = Task { try await node.run() }
        }

        func stop() async {
            task?.cancel()
            _ = await task?.result
        }
    }

    func benchConfiguration() -> SyncConfiguration {
        var configuration = SyncConfiguration(listen: "127.0.0.1:0")
        configuration.mergeSettle = .milliseconds(200)
        return configuration
    }

    func pair(_ name: String, configuration: SyncConfiguration? = nil) async throws -> (Node, Node) {
        let configuration = configuration ?? benchConfiguration()
        let first = scratchDirectory("\(name)-a"), second = scratchDirectory("\(name)-b")
        let origin = try CairnLog.create(at: first, name: name)
        let invite = try await origin.invite(address: nil, role: .writer)
        let joined = try CairnLog.join(at: second, invite: invite)
        return (try Node(path: first, log: origin, configuration: configuration), try Node(path: second, log: joined, configuration: configuration))
    }

    func fill(_ log: CairnLog, count: Int, prefix: String) async throws {
        var written = 0
        while written < count {
            let n = min(1000, count - written)
            _ = try await log.write((written..<written + n).map { .put(bucket: "bench", key: "\(prefix)\($0)", value: objectID($0)) })
            written += n
        }
    }

    /// A node with `a`'s database and `b`'s node key (granted on `a` before the copy): the same
    /// entries without re-verifying a million of them.
    func clone(_ a: Node, into b: Node, configuration: SyncConfiguration) async throws -> Node {
        try copyDatabase(from: a.log.directory.databasePath, to: b.log.directory.databasePath)
        return try Node(path: b.path, log: try CairnLog.open(at: b.path), configuration: configuration)
    }

    func waitUntil(_ condition: () async throws -> Bool) async throws {
        while !(try await condition()) { try await Task.sleep(for: .milliseconds(2)) }
    }

    func remove(_ nodes: Node...) {
        for node in nodes {
            try? FileManager.default.removeItem(atPath: node.path)
        }
    }
}
