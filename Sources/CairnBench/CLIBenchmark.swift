import Cairn
import CairnCore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// `cairn-bench cli --entries N [--dir PATH] [--reimport]`: the audit commands of the CLI at
/// scale. Makes (or reuses, with `--dir`) a log of N puts written in batches, then runs each
/// command as a subprocess of the `cairn` binary built beside this one, reads what a pager or
/// `head` would read, closes the pipe, and prints the wall time and the child's peak RSS.
struct CLIBenchmark {
    let entries: Int
    let directory: String?
    let reimport: Bool

    init(arguments: [String]) {
        entries = BenchMain.option("--entries", in: arguments) ?? 1_000_000
        directory = arguments.firstIndex(of: "--dir").flatMap { $0 + 1 < arguments.count ? arguments[$0 + 1] : nil }
        reimport = arguments.contains("--reimport")
    }

    func run() async throws {
        let cairn = cairnBinary(for: "cli")
        let path = directory ?? scratchDirectory("cli")
        if !FileManager.default.fileExists(atPath: path + "/cairn.db") {
            let log = try CairnLog.create(at: path, name: "bench")
            let elapsed = try await seconds {
                var done = 0
                while done < entries {
                    let n = min(5_000, entries - done)
                    try await log.write((0..<n).map { i in .put(bucket: "objects", key: "k\(done + i)", value: Array("v\(done + i)".utf8)) })
                    done += n
                }
            }
            print(String(format: "generated %d entries in %.1f s (%.0f /s) at %@", entries, elapsed, Double(entries) / elapsed, path))
        } else {
            print("reusing the log at \(path)")
        }
        defer { if directory == nil { try? FileManager.default.removeItem(atPath: path) } }

        print("command (best of 3)                            lines     time    peak RSS")
        let cases: [(String, [String], Int)] = [
            ("log | head -1", ["log"], 1),
            ("log --oneline | head -20", ["log", "--oneline"], 20),
            ("log --graph --oneline | head -20", ["log", "--graph", "--oneline"], 20),
            ("log --json -n 20", ["log", "--json", "-n", "20"], .max),
            ("ls objects --limit 20", ["ls", "objects", "--limit", "20"], .max),
            ("ls objects | head -20", ["ls", "objects"], 20),
            ("get objects/k12345", ["get", "objects/k12345"], .max),
            ("history objects/k12345", ["history", "objects/k12345"], .max),
            ("status", ["status"], .max),
        ]
        // Best of 3 runs (the machine is shared: the best run is the command's own cost).
        for (name, arguments, lines) in cases {
            let runs = try (0..<3).map { _ in try Self.measure(cairn, ["--data-dir", path] + arguments, lines: lines) }
            let best = runs.min { $0.milliseconds < $1.milliseconds }!
            let peak = runs.map(\.peakMiB).max()!
            print("\(name.padding(toLength: 44, withPad: " ", startingAt: 0)) \(String(format: "%7d  %6.0f ms  %6.1f MiB", best.lines, best.milliseconds, peak))")
        }
        if reimport {
            let bundle = path + ".bundle"
            defer { unlink(bundle) }
            let export = try Self.measure(cairn, ["--data-dir", path, "export", bundle], lines: .max)
            print("\("export (all entries)".padding(toLength: 44, withPad: " ", startingAt: 0)) \(String(format: "%7d  %6.0f ms  %6.1f MiB", export.lines, export.milliseconds, export.peakMiB))")
            let again = try Self.measure(cairn, ["--data-dir", path, "import", bundle], lines: .max)
            print("\("import again (all known)".padding(toLength: 44, withPad: " ", startingAt: 0)) \(String(format: "%7d  %6.0f ms  %6.1f MiB", again.lines, again.milliseconds, again.peakMiB))")
        }
    }

    /// Runs `executable arguments`, reads up to `lines` lines of its stdout then closes the
    /// pipe (as `| head -N` does), and waits: wall time and the child's peak RSS.
    ///
    /// The child is started through `/usr/bin/time -f %M` when it is there: a child spawned
    /// straight from this (large) process inherits its peak RSS across `exec` on Linux, so
    /// `wait4`'s figure would be this process's, not the command's.
    static func measure(_ executable: String, _ arguments: [String], lines wanted: Int) throws -> (lines: Int, milliseconds: Double, peakMiB: Double) {
        let timer = "/usr/bin/time"
        let report = NSTemporaryDirectory() + "cairn-bench-rss-\(getpid())"
        defer { unlink(report) }
        let useTimer = FileManager.default.isExecutableFile(atPath: timer)
        let program = useTimer ? timer : executable
        let argumentsToRun = useTimer ? ["-f", "%M", "-o", report, executable] + arguments : arguments
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw POSIXError(.EIO) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_addclose(&actions, fds[0])
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let argv = ([program] + argumentsToRun).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let start = DispatchTime.now().uptimeNanoseconds
        var pid: pid_t = 0
        guard posix_spawn(&pid, program, &actions, nil, argv, environ) == 0 else { throw POSIXError(.ENOENT) }
        close(fds[1])
        var count = 0
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        reading: while count < wanted {
            let n = buffer.withUnsafeMutableBytes { read(fds[0], $0.baseAddress, $0.count) }
            if n <= 0 { break }
            for byte in buffer[0..<n] where byte == 0x0A {
                count += 1
                if count >= wanted { break reading }
            }
        }
        close(fds[0])
        var status: Int32 = 0
        var usage = rusage()
        _ = wait4(pid, &status, 0, &usage)
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
        if useTimer, let text = try? String(contentsOfFile: report, encoding: .utf8),
            let kibibytes = text.split(separator: "\n").compactMap({ Double($0.trimmingCharacters(in: .whitespaces)) }).last
        {
            return (count, elapsed, kibibytes / 1024)
        }
        return (count, elapsed, Double(usage.ru_maxrss) / 1024)
    }
}
