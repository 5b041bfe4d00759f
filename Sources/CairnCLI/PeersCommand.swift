import CairnCore
import CairnStore
import ArgumentParser
import Cairn

/// `cairn peers`: the addresses this node's sync service dials.
struct PeersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "peers",
        abstract: "List, add and remove the peers this node dials.",
        discussion: """
            The list is local to this node (never synced). `cairn status` shows what the sync service last saw of each peer.

            EXAMPLES:
              cairn peers add 10.0.0.2:7401
              cairn peers list
              cairn peers remove 10.0.0.2:7401
            """,
        subcommands: [List.self, Add.self, Remove.self],
        defaultSubcommand: List.self)

    struct List: CairnCommand {
        static let configuration = CommandConfiguration(
            commandName: "list",
            abstract: "List the peers, by address.",
            discussion: """
                Columns: address, pinned identity (the node key the peer must present; 'any' if none). Prints nothing when the list is empty.

                EXAMPLES:
                  cairn peers list
                """)

        @OptionGroup var global: GlobalOptions

        @Flag(help: "One JSON object per line: {\"address\",\"identity\"} (identity null when not pinned).")
        var json = false

        func run() async throws {
            let peers = try await global.openForReading().peers()
            if json {
                for peer in peers { try Terminal.out.json(peerJSON(peer)) }
                return
            }
            guard !peers.isEmpty else { return }
            let rows = [["ADDRESS", "IDENTITY"]] + peers.map { [$0.address, $0.identity?.hex ?? "any"] }
            for line in formatTable(rows) { try Terminal.out.line(line) }
        }
    }

    struct Add: CairnCommand {
        static let configuration = CommandConfiguration(
            commandName: "add",
            abstract: "Add a peer to dial, or change the identity pinned for its address.",
            discussion: """
                Prints the address as stored (host lowercased, port without leading zeros).

                EXAMPLES:
                  cairn peers add 10.0.0.2:7401
                  cairn peers add node-b:7401 --identity <64 hex digits>
                """)

        @OptionGroup var global: GlobalOptions

        @Argument(help: ArgumentHelp("HOST:PORT or [IPv6]:PORT.", valueName: "host:port"), transform: parsePeerAddress)
        var address: String

        @Option(help: ArgumentHelp("Accept only the node presenting this public key (64 hex digits).", valueName: "hexkey"),
                transform: parsePublicKey)
        var identity: PublicKey?

        func run() async throws {
            try await global.open().addPeer(PeerAddress(address: address, identity: identity))
            global.log.info("added peer", metadata: ["address": .string(address)])
            try Terminal.out.line(address)
        }
    }

    struct Remove: CairnCommand {
        static let configuration = CommandConfiguration(
            commandName: "remove",
            abstract: "Remove a peer from the list.",
            discussion: """
                EXAMPLES:
                  cairn peers remove 10.0.0.2:7401
                """)

        @OptionGroup var global: GlobalOptions

        @Argument(help: ArgumentHelp("HOST:PORT or [IPv6]:PORT, as listed.", valueName: "host:port"), transform: parsePeerAddress)
        var address: String

        func run() async throws {
            guard try await global.open().removePeer(address: address) else {
                throw CLIError.notFound("peer \(address) is not in the peer list (see cairn peers list)")
            }
            global.log.info("removed peer", metadata: ["address": .string(address)])
        }
    }
}

/// A peer list entry as JSON: `{"address","identity"}`.
func peerJSON(_ peer: PeerAddress) -> JSON {
    .object([("address", .string(peer.address)), ("identity", .optional(peer.identity?.hex))])
}
