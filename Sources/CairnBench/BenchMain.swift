import CairnCore
import CairnStore
import Cairn
import CairnSQLite
import CSodium
import Foundation

/// `cairn-bench`: release-mode figures for Cairn and the raw primitive limits of this machine,
/// measured in the same run so every Cairn figure can be read as a ratio of its limit.
///
///     swift run -c release cairn-bench                  # core: append, import, raw limits
///     swift run -c release cairn-bench --entries 20000  # smaller/faster
///     swift run -c release cairn-bench import-memory --entries 1000000
///     swift run -c release cairn-bench reconcile [--items N]
///     swift run -c release cairn-bench sync [--entries N] [--pushes N] [--items N] [--diffs N]
///     swift run -c release cairn-bench get [--keys N] [--gets N]   # small gets beside a 50 MiB value
///     swift run -c release cairn-bench cli --entries 1000000 [--dir PATH] [--reimport]   # log/ls/get/history as subprocesses
///     swift run -c release cairn-bench mesh [--nodes 10,25,50] [--writes 1000] [--peers 3] [--seed S]   # one cairn serve per node
///     swift run -c release cairn-bench api [--seconds N] [--events N]   # HTTP API with wrk, change feed
@main
struct BenchMain {
    static func main() async throws {
        var arguments = Array(CommandLine.arguments.dropFirst())
        let mode = arguments.first.flatMap { $0.hasPrefix("-") ? nil : $0 } ?? "core"
        if arguments.first == mode { arguments.removeFirst() }
        let entries = option("--entries", in: arguments) ?? 100_000
        switch mode {
        case "core": try await CoreBenchmark(entries: entries).run()
        case "import-memory": try await CoreBenchmark(entries: entries).importMemory()
        case "generate-bundle": try await CoreBenchmark(entries: entries).generateBundle(at: arguments.last!)
        case "reconcile": try ReconcileBenchmark.run(arguments: arguments)
        case "sync": try await SyncBenchmark(arguments: arguments).run()
        case "cli": try await CLIBenchmark(arguments: arguments).run()
        case "singles": try await CoreBenchmark(entries: entries).singles(count: option("--puts", in: arguments) ?? 5_000)
        case "mesh": try await MeshBenchmark(arguments: arguments).run()
        case "api": try await APIBenchmark(arguments: arguments).run()
        case "get":
            try await CoreBenchmark(entries: entries).getBesideLargeValue(
                keys: option("--keys", in: arguments) ?? 10_000, gets: option("--gets", in: arguments) ?? 20_000)
        default:
            print("usage: cairn-bench [core|singles|import-memory|reconcile|sync|get|cli|mesh|api] [--entries N] [--items N] [--keys N] [--gets N] [--seconds N] [--events N]")
            exit(2)
        }
    }

    static func option(_ name: String, in arguments: [String]) -> Int? {
        guard let i = arguments.firstIndex(of: name), i + 1 < arguments.count else { return nil }
        return Int(arguments[i + 1])
    }
}

extension BenchMain {
    /// Async wall-clock seconds of `body` (a name the benchmarks with a `seconds` setting can reach).
    static func seconds(_ body: () async throws -> Void) async rethrows -> Double {
        try await CairnBench.seconds(body)
    }
}

/// Wall-clock seconds of `body`.
func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

/// Async flavour of ``seconds(_:)``.
func seconds(_ body: () async throws -> Void) async rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try await body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

/// Peak resident memory of this process so far, in MiB.
func peakMemoryMiB() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_maxrss) / 1024
}

func report(_ name: String, _ perSecond: Double, limit: Double? = nil, note: String = "") {
    var line = "\(name.padding(toLength: 44, withPad: " ", startingAt: 0)) \(String(format: "%10.0f /s", perSecond))"
    if let limit { line += String(format: "   %5.2f× of raw limit %8.0f /s", perSecond / limit, limit) }
    if !note.isEmpty { line += "   \(note)" }
    print(line)
}

func scratchDirectory(_ name: String) -> String {
    let path = NSTemporaryDirectory() + "cairn-bench-\(name)-\(getpid())"
    try? FileManager.default.removeItem(atPath: path)
    return path
}

/// The `cairn` executable built beside this one (benchmarks that run it as a subprocess); exits
/// with a hint when it is not there.
func cairnBinary(for benchmark: String) -> String {
    let cairn = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        .appendingPathComponent("cairn").path
    guard FileManager.default.isExecutableFile(atPath: cairn) else {
        print("cairn-bench \(benchmark): no cairn binary beside this one (\(cairn)); build both: swift build -c release")
        exit(2)
    }
    return cairn
}

/// Replaces the database at `target` with a copy of the one at `source` (its WAL and shared
/// memory too), so a node starts with another's entries without verifying them again. Neither
/// may be written meanwhile.
func copyDatabase(from source: String, to target: String) throws {
    for suffix in ["", "-wal", "-shm"] {
        try? FileManager.default.removeItem(atPath: target + suffix)
        if FileManager.default.fileExists(atPath: source + suffix) {
            try FileManager.default.copyItem(atPath: source + suffix, toPath: target + suffix)
        }
    }
}
