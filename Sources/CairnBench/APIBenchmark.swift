import Cairn
import CairnAPI
import Foundation
import Logging
import ServiceLifecycle

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `cairn-bench api`: the HTTP API's put/get throughput and latency under 16 concurrent wrk
/// connections on loopback, as ratios of the library's own put/get rate with 16 concurrent
/// tasks in the same run; the change feed's events/s to 1 and to 100 consumers; and the put
/// rate while a consumer stalls, as a ratio of the rate without it.
struct APIBenchmark {
    let seconds: Int
    let events: Int
    let clients = 16

    init(arguments: [String]) {
        seconds = BenchMain.option("--seconds", in: arguments) ?? 5
        events = BenchMain.option("--events", in: arguments) ?? 20_000
    }

    func run() async throws {
        print("cairn-bench api: \(clients) clients, \(seconds) s per wrk run, \(events) feed events, \(ProcessInfo.processInfo.activeProcessorCount) cores")
        let path = scratchDirectory("api")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try CairnLog.create(at: path, name: "bench")
        try await log.write((0..<1000).map { .put(bucket: "bench", key: "k\($0)", value: objectID($0)) })

        print("-- in-process (same run) --")
        let libraryPut = try await concurrentRate(count: 4_000) { i in try await log.put("lib", "k\(i)", objectID(i)) }
        let libraryGet = try await concurrentRate(count: 100_000) { i in _ = try await log.get("bench", "k\(i % 1000)") }
        report("library put, \(clients) tasks", libraryPut)
        report("library get, \(clients) tasks", libraryGet)

        let server = try APIServer(log: log, configuration: try APIConfiguration(listen: "127.0.0.1:0"), logger: Logger(label: "bench"))
        let group = ServiceGroup(services: [server], logger: Logger(label: "bench"))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let base = "http://\(try await server.listeningAddress())"
            print("-- HTTP API over loopback (wrk -c\(clients)) --")
            let get = try wrk(base + "/v1/kv/bench/k1", script: nil)
            report("API get", get.rate, limit: libraryGet, note: "ratio of library get (goal ≥ 0.5×); p50 \(get.p50), p99 \(get.p99)")
            let put = try wrk(base + "/v1/kv/wrk/k", script: Self.putScript)
            report("API put", put.rate, limit: libraryPut, note: "ratio of library put (goal ≥ 0.8×); p50 \(put.p50), p99 \(put.p99)")

            print("-- change feed --")
            let start = try await log.counts().lastCursor
            try await log.write((0..<events).map { .put(bucket: "feed", key: "e\($0)", value: objectID($0)) })
            let feed = base + "/v1/changes?follow=false&cursor=\(start)"
            report("feed events to 1 consumer", try await feedRate(feed, consumers: 1))
            report("feed events to 100 consumers (total)", try await feedRate(feed, consumers: 100))

            // Alternating rounds, best of each, so the machine's noise does not pass for an effect.
            var (unstalled, during) = (0.0, 0.0)
            for round in 0..<3 {
                unstalled = max(unstalled, try await concurrentRate(count: 2_000) { i in try await log.put("free\(round)", "k\(i)", objectID(i)) })
                let stalled = try StalledConsumer(base: base)
                during = max(during, try await concurrentRate(count: 2_000) { i in try await log.put("stalled\(round)", "k\(i)", objectID(i)) })
                stalled.close()
            }
            report("put with a stalled feed consumer", during, limit: unstalled, note: "ratio of put without it (goal ≈ 1×; best of 3 each)")

            await group.triggerGracefulShutdown()
            try await tasks.next()
        }
    }

    /// Calls per second of `body`, called `count` times from `clients` concurrent tasks.
    private func concurrentRate(count: Int, _ body: @escaping @Sendable (Int) async throws -> Void) async throws -> Double {
        let clients = self.clients
        let elapsed = try await BenchMain.seconds {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for client in 0..<clients {
                    group.addTask { for i in stride(from: client, to: count, by: clients) { try await body(i) } }
                }
                try await group.waitForAll()
            }
        }
        return Double(count) / elapsed
    }

    /// Each wrk request puts a new key (a counter per wrk thread), 64 bytes.
    static let putScript = """
        counter = 0
        wrk.method = "PUT"
        wrk.body = string.rep("v", 64)
        request = function()
          counter = counter + 1
          return wrk.format(nil, "/v1/kv/wrk/" .. tostring(counter) .. "-" .. tostring(math.random(1e9)))
        end
        """

    /// Runs wrk (2 threads, `clients` connections) and reads its rate and latency percentiles.
    private func wrk(_ url: String, script: String?) throws -> (rate: Double, p50: String, p99: String) {
        var arguments = ["-t2", "-c\(clients)", "-d\(seconds)s", "--latency"]
        let scriptPath = NSTemporaryDirectory() + "cairn-bench-wrk-\(getpid()).lua"
        defer { try? FileManager.default.removeItem(atPath: scriptPath) }
        if let script {
            try script.write(toFile: scriptPath, atomically: true, encoding: .utf8)
            arguments += ["-s", scriptPath]
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["wrk"] + arguments + [url]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        func field(_ prefix: String) -> String? {
            output.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.first { $0.hasPrefix(prefix) }
                .map { String($0.dropFirst(prefix.count)).trimmingCharacters(in: .whitespaces) }
        }
        if output.contains("Non-2xx") { print("wrk: some responses were not 2xx:\n\(output)") }
        guard let rate = field("Requests/sec:").flatMap(Double.init) else { fatalError("wrk said:\n\(output)") }
        return (rate, field("50%") ?? "?", field("99%") ?? "?")
    }

    /// Change events per second delivered to `consumers` concurrent readers of `url` (all).
    private func feedRate(_ url: String, consumers: Int) async throws -> Double {
        let events = self.events
        let session = URLSession(configuration: .ephemeral)
        let elapsed = try await BenchMain.seconds {
            try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<consumers {
                    group.addTask {
                        let (data, _) = try await session.data(from: URL(string: url)!)
                        return data.reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }
                    }
                }
                for try await lines in group where lines != events { print("a consumer got \(lines) events, not \(events)") }
            }
        }
        return Double(events * consumers) / elapsed
    }
}

/// A feed consumer that asks for everything, following, and never reads: the server's writes
/// to it stall once the socket buffers fill.
struct StalledConsumer {
    let fd: Int32

    init(base: String) throws {
        let port = UInt16(base.split(separator: ":").last!)!
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw CocoaError(.fileReadUnknown) }
        let request = Array("GET /v1/changes?cursor=0 HTTP/1.1\r\nHost: bench\r\n\r\n".utf8)
        _ = send(fd, request, request.count, 0)
    }

    func close() { _ = Glibc.close(fd) }
}
