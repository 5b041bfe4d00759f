import CairnCore
import CairnStore
import ArgumentParser
import Cairn

/// `cairn join`: a new node of a log, from an invite.
struct JoinCommand: CairnCommand {
    static let configuration = CommandConfiguration(
        commandName: "join",
        abstract: "Create a node of an existing log from an invite token (see cairn invite).",
        discussion: """
            Creates the data directory with the log's genesis, its network secret (network.key), \
            the node key the invite carries (or a new one for a read-only invite) and the \
            inviting node's address in the peer list. Prints this node's PUBLIC key and the peer \
            `cairn serve` will dial. Give TOKEN as - to read it from stdin (keeps it out of the \
            shell history and the process list). Fails if a log already exists there.

            EXAMPLES:
              cairn --data-dir ./node2 join cairn-invite-v1:...
              cairn --data-dir ./node2 join - < invite.txt
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("The invite token (cairn-invite-v1:…), or - to read it from stdin.", valueName: "token"))
    var token: String

    func run() async throws {
        let text = token == "-" ? String(decoding: try Terminal.readAll(fd: 0), as: UTF8.self) : token
        let invite = try Invite(parsing: text)
        let path = global.path
        if global.readOnlyRequested { throw StoreError.readOnly(path: path) }  // --no-write: this creates a log
        try createParentDirectories(of: path)
        let node = try CairnLog.join(at: path, invite: invite)
        global.log.info("joined log", metadata: ["data-dir": .string(path), "log": .string(node.logID.hex)])
        let role = invite.nodeSeed == nil
            ? "none yet: read-only until an admin grants the node key (cairn writers add)"
            : "granted by the inviter; writes are accepted once the grant arrives by sync"
        let peer = invite.address.map { "\($0) (cairn serve dials it)" } ?? "none (add one: cairn peers add HOST:PORT)"
        try await printNewNode(node, heading: "joined Cairn log in \(path)", extra: [["role:", role], ["peer:", peer]])
    }
}
