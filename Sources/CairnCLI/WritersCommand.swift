import CairnCore
import CairnStore
import ArgumentParser
import Cairn

/// `cairn writers`: the writer set.
struct WritersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "writers",
        abstract: "List, add and revoke the keys that may write to the log.",
            discussion: """
                EXAMPLES:
                  cairn writers list
                  cairn writers add <64 hex digits>
                  cairn writers revoke 9a63f0e1 --at 2026-11-21T10:00:00Z
                """,
        subcommands: [List.self, Add.self, Revoke.self],
        defaultSubcommand: List.self)

    struct List: CairnCommand {
        static let configuration = CommandConfiguration(
            commandName: "list",
            abstract: "List every key of the writer set with its role and revocation.",
            discussion: """
                Columns: key, role, revoked-from (an HLC, '-' if not revoked). This node's key is marked.

                EXAMPLES:
                  cairn writers list
                  cairn writers list --json
                """)

        @OptionGroup var global: GlobalOptions

        @Flag(help: "One JSON object per line: {\"key\",\"role\",\"revoked_from\",\"revoked_from_time\",\"this_node\"}.")
        var json = false

        func run() async throws {
            let log = try global.openForReading()
            let writers = try await log.writers()
            if json {
                for writer in writers {
                    let from = writer.status.revokedFrom
                    try Terminal.out.json(.object([
                        ("key", .string(writer.key.hex)), ("role", .optional(writer.status.role?.description)),
                        ("revoked_from", from.map { .uint($0.rawValue) } ?? .null),
                        ("revoked_from_time", .optional(from.map { TimeFormat.iso(milliseconds: $0.wallMilliseconds) })),
                        ("this_node", .bool(writer.key == log.nodeKey)),
                    ]))
                }
                return
            }
            let rows = [["KEY", "ROLE", "REVOKED FROM", ""]] + writers.map { writer in
                [writer.key.hex, writer.status.role?.description ?? "none",
                 writer.status.revokedFrom.map(TimeFormat.hlc) ?? "-", writer.key == log.nodeKey ? "(this node)" : ""]
            }
            for line in formatTable(rows) { try Terminal.out.line(line) }
        }
    }

    struct Add: CairnCommand {
        static let configuration = CommandConfiguration(
            commandName: "add",
            abstract: "Grant a key the right to write (this node must be an admin).",
            discussion: """
                Prints the add-writer entry's id.

                EXAMPLES:
                  cairn writers add <64 hex digits>
                  cairn writers add <64 hex digits> --admin
                """)

        @OptionGroup var global: GlobalOptions

        @Argument(help: ArgumentHelp("The public key to grant (64 hex digits).", valueName: "hexkey"), transform: parsePublicKey)
        var key: PublicKey

        @Flag(help: "Grant the admin role (may also add and revoke writers).")
        var admin = false

        func run() async throws {
            let log = try global.open()
            let entry = try await log.addWriter(key, role: admin ? .admin : .writer)
            global.log.info("added writer", metadata: ["key": .string(key.hex), "entry": .string(entry.id.hex)])
            try Terminal.out.line(entry.id.hex)
        }
    }

    struct Revoke: CairnCommand {
        static let configuration = CommandConfiguration(
            commandName: "revoke",
            abstract: "Revoke a key's right to write from a time on (this node must be an admin).",
            discussion: """
                Entries the key signed at or after --at (default: now) become inert: they stay \
                in the DAG and still verify, but no longer count in the state; entries signed \
                before it are untouched. Prints the revoke-writer entry's id. (--from, the old \
                name of --at, is still accepted.)

                EXAMPLES:
                  cairn writers revoke 9a63f0e1
                  cairn writers revoke 9a63f0e1 --at 2026-11-21T10:00:00Z
                """)

        @OptionGroup var global: GlobalOptions

        @Argument(help: ArgumentHelp("The public key to revoke: 64 hex digits, or a unique prefix (4+ digits) of a writer's key.",
                                     valueName: "hexkey"))
        var key: String

        @Option(help: ArgumentHelp("Revoke from this time on: \(TimeSpec.help). Default: now.", valueName: "time"), transform: TimeSpec.parse)
        var at: TimeSpec?

        @Option(name: .customLong("from"), help: .hidden, transform: TimeSpec.parse)
        var deprecatedFrom: TimeSpec?

        func validate() throws {
            if at != nil && deprecatedFrom != nil { throw ValidationError("give --at only (--from is its old name)") }
        }

        func run() async throws {
            let log = try global.open()
            let key = try await WriterLookup.resolve(self.key, in: log, option: "writers revoke")
            guard try await log.writers().contains(where: { $0.key == key }) else {
                throw CLIError.notFound("\(key.short)… is not in the writer set")
            }
            let entry = try await log.revokeWriter(key, from: (at ?? deprecatedFrom)?.lower)
            global.log.info("revoked writer", metadata: ["key": .string(key.hex), "entry": .string(entry.id.hex)])
            try Terminal.out.line(entry.id.hex)
        }
    }
}
