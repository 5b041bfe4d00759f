import CairnCore
import CairnStore
import ArgumentParser
import Cairn

/// `cairn import`: reads a bundle, all or nothing.
struct ImportCommand: CairnCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import a bundle exported from a node of this log.",
        discussion: """
            All or nothing: the whole file is checked (framing, count, checksum, log id) and every \
            entry verified (hash, signature, parents, HLCs, writer rules) before anything is kept; \
            any problem leaves the log untouched, prints why and exits 1. Entries are then applied \
            in chunks of a few thousand, one short transaction each, so other writers are not \
            locked out; an interrupted import is completed by running it again. Entries whose authors are not \
            writers here are refused: grant them first with 'cairn writers add'. Prints how many \
            entries were applied, already known, kept as orphans (parents missing) or quarantined \
            (HLC too far in the future).

            EXAMPLES:
              cairn import backup.bundle
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("The bundle file to read.", valueName: "file"))
    var file: String

    func run() async throws {
        let log = try global.open()
        let bar = ProgressBar(label: "importing")
        let report = try await log.importBundle(from: file) { progress in
            bar.update(progress.done, progress.total)
            global.log.info("applied chunk", metadata: ["done": .stringConvertible(progress.done), "total": .stringConvertible(progress.total)])
        }
        bar.finish()
        global.log.info("imported", metadata: ["file": .string(file), "applied": .stringConvertible(report.applied)])
        try Terminal.out.line(
            "imported \(file): \(report.entries) entries, \(report.applied) applied, \(report.duplicates) already known, "
                + "\(report.orphaned) orphaned, \(report.quarantined) quarantined")
    }
}
