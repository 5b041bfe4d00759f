import CairnCore
import CairnStore
import ArgumentParser
import Cairn

/// `cairn purge`: erases value bytes.
struct PurgeCommand: CairnCommand {
    static let configuration = CommandConfiguration(
        commandName: "purge",
        abstract: "Erase the bytes of a value (a leaked secret, an erasure request).",
        discussion: """
            With BUCKET/KEY, erases the bytes of the key's current value; with --digest, the \
            bytes of that value. Every version sharing the bytes loses them. The entries stay: \
            they sign the digest, not the bytes, so the log still verifies. Cannot be undone here; \
            a peer may still hold the bytes.

            EXAMPLES:
              cairn purge tables/secrets
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("The key whose current value to erase.", valueName: "bucket/key"), transform: KeyPathArgument.parse)
    var path: KeyPathArgument?

    @Option(help: ArgumentHelp("Erase the value with this BLAKE2b-256 digest (64 hex digits).", valueName: "hex"))
    var digest: String?

    func validate() throws {
        if (path == nil) == (digest == nil) { throw ValidationError("give either BUCKET/KEY or --digest HEX") }
        if let digest, Hash32(hex: digest) == nil { throw ValidationError("--digest needs 64 hex digits, got '\(digest)'") }
    }

    func run() async throws {
        let log = try global.open()
        let target: Hash32
        if let path {
            guard let ref = try await log.state(path.bucket, path.key)?.value else {
                throw CLIError.notFound("\(path) has no live value to purge")
            }
            target = ref.digest
        } else {
            target = Hash32(hex: digest!)!
        }
        switch try await log.value(target) {
        case .missing: throw CLIError.notFound("no value bytes with digest \(target.hex) are stored here")
        case .purged:
            try Terminal.out.line("value \(target.hex) was already purged")
        case .present:
            try await log.purge(digest: target)
            global.log.info("purged", metadata: ["digest": .string(target.hex)])
            try Terminal.out.line("purged value \(target.hex)" + (path.map { " (\($0))" } ?? ""))
        }
    }
}
