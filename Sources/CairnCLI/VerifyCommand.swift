import CairnCore
import CairnStore
import ArgumentParser
import Cairn

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

/// A progress bar on stderr that appears only once the work has taken more than a second, and
/// only on a terminal. Called from the library's progress callback, then finished by the
/// caller once that call has returned, so it is never used from two places at once.
final class ProgressBar: @unchecked Sendable {
    private let label: String
    private let enabled: Bool
    private let clock = Stopwatch()
    private var drawn = false

    init(label: String, enabled: Bool) {
        self.label = label
        self.enabled = enabled
    }

    func update(_ done: Int, _ total: Int) {
        guard enabled, clock.seconds > 1, total > 0 else { return }
        let width = 30
        let filled = min(width, done * width / total)
        let percent = min(100, done * 100 / total)
        Terminal.errorRaw("\r\(label) [\(String(repeating: "#", count: filled))\(String(repeating: " ", count: width - filled))] \(percent)% \(done)/\(total)")
        drawn = true
    }

    func finish() {
        if drawn { Terminal.errorRaw("\r\u{1B}[K") }
    }
}
