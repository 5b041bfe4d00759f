import CairnCore
import CairnStore
import ArgumentParser
import Cairn

/// `cairn get`: prints a key's current value.
struct GetCommand: CairnCommand {
    static let configuration = CommandConfiguration(
        commandName: "get",
        abstract: "Print the current value of BUCKET/KEY.",
        discussion: """
            Writes the value's raw bytes to standard output, exactly (no newline added). Exits 1 \
            with 'not found' if the key was never written or is deleted, and with a clear message \
            if its bytes were purged. With --json, prints the key's state instead: \
            {"bucket","key","entry","hlc","hlc_wall_ms","hlc_counter","time","author","digest",\
            "length","value_state"} where value_state is present, purged or missing.

            EXAMPLES:
              cairn get tables/orders
              cairn get tables/orders > orders.json
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("The key: BUCKET/KEY.", valueName: "bucket/key"), transform: KeyPathArgument.parse)
    var path: KeyPathArgument

    @Flag(help: "Print the key's metadata as one JSON object instead of the value.")
    var json = false

    func run() async throws {
        let log = try global.openForReading()
        guard let state = try await log.state(path.bucket, path.key) else { throw CLIError.notFound("\(path)") }
        guard let ref = state.value else {
            throw CLIError.notFound("\(path) (deleted by entry \(state.entryID.short))")
        }
        let lookup = try await log.value(ref.digest)
        if json {
            var fields: [(String, JSON)] = [
                ("bucket", .string(state.bucket)), ("key", .string(state.key)), ("entry", .string(state.entryID.hex)),
            ]
            fields += EntryRendering.hlcFields(state.hlc)
            fields += [
                ("author", .string(state.author.hex)), ("digest", .string(ref.digest.hex)),
                ("length", .int(Int64(ref.length))), ("value_state", .string(ValueFormat.state(lookup))),
            ]
            try Terminal.out.json(.object(fields))
            return
        }
        switch lookup {
        case .present(let bytes): try Terminal.out.bytes(bytes)
        case .purged: throw CLIError.message("the value of \(path) (digest \(ref.digest.short)) was purged; its entry \(state.entryID.short) remains")
        case .missing: throw CLIError.message("the value of \(path) (digest \(ref.digest.short)) is not stored on this node")
        }
    }
}
