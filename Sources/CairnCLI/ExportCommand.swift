import CairnCore
import CairnStore
import ArgumentParser
import Cairn

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `cairn export`: writes a bundle.
struct ExportCommand: CairnCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write every entry and stored value to a bundle file.",
        discussion: """
            The bundle holds the entries parents-first with the value bytes still stored here, and \
            a trailing count and BLAKE2b checksum. It is written to a temporary file beside FILE \
            and renamed into place, so FILE is either the complete bundle or untouched.

            EXAMPLES:
              cairn export backup.bundle
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("The bundle file to write.", valueName: "file"))
    var file: String

    func run() async throws {
        let log = try global.openForReading()
        let temporary = "\(file).partial-\(getpid())"
        let count: Int
        do {
            let bar = ProgressBar(label: "exporting")
            count = try await log.exportBundle(to: temporary) { done, total in bar.update(done, total) }
            bar.finish()
            guard rename(temporary, file) == 0 else { throw CLIError.io(file, String(cString: strerror(errno))) }
        } catch {
            unlink(temporary)
            throw error
        }
        global.log.info("exported", metadata: ["file": .string(file), "entries": .stringConvertible(count)])
        try Terminal.out.line("exported \(count) entries to \(file)")
    }
}
