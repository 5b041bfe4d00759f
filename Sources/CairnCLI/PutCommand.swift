import CairnCore
import CairnStore
import ArgumentParser
import Cairn

/// `cairn put`: sets a key.
struct PutCommand: CairnCommand {
    static let configuration = CommandConfiguration(
        commandName: "put",
        abstract: "Set BUCKET/KEY to a value.",
        discussion: """
            The value comes from the VALUE argument (its UTF-8 bytes, no newline added), from \
            --file PATH, or from standard input when VALUE is '-'. Prints the new entry's id. If \
            the log had diverged, a merge entry is written first.

            EXAMPLES:
              cairn put tables/orders --file ./orders.json
              cairn put notes/today "hello"
              echo hello | cairn put notes/today -
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("Where to write: BUCKET/KEY (split at the first '/').", valueName: "bucket/key"),
              transform: KeyPathArgument.parse)
    var path: KeyPathArgument

    @Argument(help: ArgumentHelp("The value, or '-' to read it from standard input.", valueName: "value"))
    var value: String?

    @Option(help: ArgumentHelp("Read the value from this file.", valueName: "path"))
    var file: String?

    func validate() throws {
        switch (value, file) {
        case (nil, nil): throw ValidationError("give a VALUE, '-' for standard input, or --file PATH")
        case (.some, .some): throw ValidationError("give either a VALUE or --file, not both")
        default: break
        }
    }

    func run() async throws {
        let bytes: [UInt8]
        if let file {
            bytes = try Terminal.readFile(file)
        } else if value == "-" {
            bytes = try Terminal.readAll(fd: 0)
        } else {
            bytes = Array((value ?? "").utf8)
        }
        let log = try global.open()
        let entry = try await log.put(path.bucket, path.key, bytes)
        global.log.info("put", metadata: ["key": .string(path.description), "entry": .string(entry.id.hex), "bytes": .stringConvertible(bytes.count)])
        try Terminal.out.line(entry.id.hex)
    }
}
