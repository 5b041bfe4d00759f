import CairnCore
import CairnStore
import ArgumentParser
import Cairn

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `cairn verify`: re-checks the whole log, like `git fsck`.
struct VerifyCommand: CairnCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check every hash, signature, parent link, writer rule, the state and every value.",
        discussion: """
            Prints each problem on its own line, then a summary: 'verified N entries, M values: \
            OK' or '... K problems'. Exits 0 if the log is clean, 1 otherwise. A progress bar is \
            drawn on stderr once the check has run for more than a second, if stderr is a \
            terminal. --json prints one object {"entries","values","ok","problems":[{"entry",\
            "cursor","message"}]} instead. Every derived table is recomputed from the signed \
            entries and compared; --repair rebuilds them first (entries are never rewritten).

            EXAMPLES:
              cairn verify
              cairn verify --repair
            """)

    @OptionGroup var global: GlobalOptions

    @Flag(help: "Print the report as one JSON object.")
    var json = false

    @Flag(help: "First rebuild every derived table (state, heads, writer set, inert flags, value rows, orphan waits, the reconciliation index) from the signed entries, in one transaction; then verify.")
    var repair = false

    func run() async throws {
        let log = repair ? try global.open() : try global.openForReading()
        if repair {
            try await log.repair()
            global.log.info("rebuilt the derived tables from the signed entries")
        }
        let bar = ProgressBar(label: "verifying", enabled: Terminal.stderrIsTTY)
        let report = try await log.verify { done, total in bar.update(done, total) }
        bar.finish()
        global.log.info("verified", metadata: ["entries": .stringConvertible(report.entriesChecked), "problems": .stringConvertible(report.problems.count)])
        if json {
            try Terminal.out.json(.object([
                ("entries", .int(Int64(report.entriesChecked))), ("values", .int(Int64(report.valuesChecked))),
                ("ok", .bool(report.isClean)),
                ("problems", .array(report.problems.map { problem in
                    .object([
                        ("entry", .optional(problem.entryID?.hex)), ("cursor", problem.seq.map { .int($0) } ?? .null),
                        ("message", .string(problem.message)),
                    ])
                })),
            ]))
        } else {
            for problem in report.problems { try Terminal.out.line(problem.description) }
            let summary = "verified \(report.entriesChecked) entries, \(report.valuesChecked) values"
            let count = report.problems.count
            try Terminal.out.line(report.isClean ? "\(summary): OK" : "\(summary): \(count) problem\(count == 1 ? "" : "s")")
        }
        if !report.isClean { throw ExitCode.failure }
    }
}

/// The one progress bar of the CLI (`verify`, `import`, `init --from`, `export`): on stderr,
/// only on a terminal, and only once the work has taken more than a second. It shows the
/// fraction done, the count, the rate and the time left:
/// `importing [########              ]  27% 54000/200000  18.2k/s  ETA 0:08`.
/// Called from the library's progress callback, then finished by the caller once that call
/// has returned, so it is never used from two places at once.
final class ProgressBar: @unchecked Sendable {
    private let label: String
    private let enabled: Bool
    private let clock = Stopwatch()
    private var drawn = false
    private var lastDraw = -1.0

    /// Seconds before the bar appears: 1, or `$CAIRN_PROGRESS_DELAY_MS` (the tests set 0).
    private let delay: Double

    init(label: String, enabled: Bool = Terminal.stderrIsTTY) {
        self.label = label
        self.enabled = enabled
        if let env = getenv("CAIRN_PROGRESS_DELAY_MS"), let milliseconds = Double(String(cString: env)) {
            delay = milliseconds / 1000
        } else {
            delay = 1
        }
    }

    func update(_ done: Int, _ total: Int) {
        guard enabled, total > 0 else { return }
        let elapsed = clock.seconds
        guard elapsed >= delay, elapsed - lastDraw >= 0.1 || done >= total else { return }
        lastDraw = elapsed
        Terminal.errorRaw("\r" + Self.render(label: label, done: done, total: total, elapsed: elapsed) + "\u{1B}[K")
        drawn = true
    }

    /// For work whose total is not known in advance (a fetch from a peer): the count and the
    /// rate, like git's "Receiving objects" counter: `fetching 54000 entries  18.2k/s`.
    func update(count done: Int) {
        guard enabled else { return }
        let elapsed = clock.seconds
        guard elapsed >= delay, elapsed - lastDraw >= 0.1 else { return }
        lastDraw = elapsed
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        Terminal.errorRaw("\r\(label) \(done) entries  \(Self.rateText(rate))/s\u{1B}[K")
        drawn = true
    }

    /// The bar's text (no carriage return): label, bar, percent, count, rate, ETA.
    static func render(label: String, done: Int, total: Int, elapsed: Double) -> String {
        let width = 24
        let clamped = min(max(done, 0), total)
        let filled = clamped * width / total
        let percent = clamped * 100 / total
        let rate = elapsed > 0 ? Double(clamped) / elapsed : 0
        var text = "\(label) [\(String(repeating: "#", count: filled))\(String(repeating: " ", count: width - filled))] "
        text += "\(percent < 10 ? "  " : percent < 100 ? " " : "")\(percent)% \(clamped)/\(total)  \(rateText(rate))/s"
        if rate > 0 && clamped < total { text += "  ETA \(durationText(Double(total - clamped) / rate))" }
        return text
    }

    static func rateText(_ rate: Double) -> String {
        if rate >= 1_000_000 { return String(Int(rate / 100_000)).withDecimal + "M" }
        if rate >= 1_000 { return String(Int(rate / 100)).withDecimal + "k" }
        return String(Int(rate))
    }

    static func durationText(_ seconds: Double) -> String {
        let total = Int(seconds.rounded(.up))
        let (hours, minutes, secs) = (total / 3600, total / 60 % 60, total % 60)
        let two = { (value: Int) in value < 10 ? "0\(value)" : "\(value)" }
        return hours > 0 ? "\(hours):\(two(minutes)):\(two(secs))" : "\(minutes):\(two(secs))"
    }

    func finish() {
        if drawn { Terminal.errorRaw("\r\u{1B}[K") }
    }
}

private extension String {
    /// "123" → "12.3": tenths as digits.
    var withDecimal: String { count < 2 ? "0." + self : String(dropLast()) + "." + String(last!) }
}
