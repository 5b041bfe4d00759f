import CairnCore
import CairnStore
import ArgumentParser
import Cairn

/// `cairn invite`: a token another machine joins the log with (`cairn join TOKEN`).
struct InviteCommand: CairnCommand {
    static let configuration = CommandConfiguration(
        commandName: "invite",
        abstract: "Print an invite token for a new node of this log.",
        discussion: """
            The token holds the log's genesis, its network secret and --address (this node's \
            `cairn serve` address, the new node's first peer). Unless --read-only, it also holds \
            a new node key that this node grants the writer role (--admin: the admin role) right \
            away, so this node must be an admin; the new node may write once that grant reaches \
            it by sync. The token is printed on stdout; it is a secret: share it only over a \
            trusted channel. A read-only node can be granted later with `cairn writers add`.

            EXAMPLES:
              cairn invite --address 10.0.0.1:7401
              cairn invite --read-only
            """)

    @OptionGroup var global: GlobalOptions

    @Option(help: ArgumentHelp("This node's address for the new node to dial: HOST:PORT or [IPv6]:PORT.", valueName: "host:port"),
            transform: parsePeerAddress)
    var address: String?

    @Flag(name: .customLong("read-only"), help: "Grant no role: the new node makes its own key and may only read and sync.")
    var readOnly = false

    @Flag(help: "Grant the new node's key the admin role instead of the writer role.")
    var admin = false

    func validate() throws {
        if readOnly && admin { throw ValidationError("--read-only and --admin exclude each other") }
    }

    func run() async throws {
        let log = try global.open()
        let role: Role? = readOnly ? nil : admin ? .admin : .writer
        let invite = try await log.invite(address: address, role: role)
        global.log.info("made invite", metadata: ["role": .string(role?.description ?? "read-only")])
        try Terminal.out.line(invite.encoded())
        let holds = role.map { "the network secret and a new \($0) key" } ?? "the network secret"
        Terminal.error("cairn: note: this invite holds \(holds); share it only over a trusted channel")
    }
}
