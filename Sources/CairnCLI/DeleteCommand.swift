import CairnCore
import CairnStore
import ArgumentParser
import Cairn

/// `cairn delete`: writes a tombstone.
struct DeleteCommand: CairnCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete",
        abstract: "Delete BUCKET/KEY (writes a tombstone entry).",
        discussion: """
            Prints the tombstone's entry id. Fails if the key has no live value.

            EXAMPLES:
              cairn delete tables/orders
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("The key to delete: BUCKET/KEY.", valueName: "bucket/key"), transform: KeyPathArgument.parse)
    var path: KeyPathArgument

    func run() async throws {
        let log = try global.open()
        guard let state = try await log.state(path.bucket, path.key), !state.isDeleted else {
            throw CLIError.notFound("\(path) (no live value to delete)")
        }
        let entry = try await log.delete(path.bucket, path.key)
        global.log.info("deleted", metadata: ["key": .string(path.description), "entry": .string(entry.id.hex)])
        try Terminal.out.line(entry.id.hex)
    }
}
