import CairnCore
import CairnStore
import ArgumentParser
import Cairn
import CairnSync
import Logging

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
            shell history and the process list). Fails if a log already exists there. With \
            --fetch it then fetches the log from the inviting node, as git clone does, drawing \
            a counter of entries received on a terminal, and exits once this node holds \
            everything that node held; without it, `cairn serve` fetches the log.

            EXAMPLES:
              cairn --data-dir ./node2 join cairn-invite-v1:...
              cairn --data-dir ./node2 join - < invite.txt
              cairn --data-dir ./node2 join --fetch - < invite.txt
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("The invite token (cairn-invite-v1:…), or - to read it from stdin.", valueName: "token"))
    var token: String

    @Flag(help: "Then fetch the log from the inviting node and exit once this node holds everything it held.")
    var fetch = false

    @Option(help: ArgumentHelp("With --fetch: give up if no session with the inviting node opens within this many seconds.", valueName: "seconds"))
    var connectTimeout: Double = 30

    func validate() throws {
        guard connectTimeout > 0 else { throw ValidationError("--connect-timeout must be positive") }
    }

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
        guard fetch else { return }
        guard let address = invite.address else {
            throw CLIError.usage("the invite names no address to fetch from; add a peer (cairn peers add HOST:PORT) and run cairn serve")
        }
        try Terminal.out.flush()
        try await fetchLog(into: node, from: address)
    }

    /// Runs a sync node (no listener) that dials the inviter from the peer list, until a session
    /// with it has completed a sync — its heads and everything behind them are held here — then
    /// stops it. A counter of entries held is drawn on stderr meanwhile.
    ///
    /// - Throws: `CLIError.message` if no session opens within `connectTimeout`, or the
    ///   inviter ends the session with an error (for example, it does not allow this node).
    private func fetchLog(into node: CairnLog, from address: String) async throws {
        let started = SystemWallClock().nowMilliseconds()
        var quiet = Logger(label: "cairn.sync")
        quiet.logLevel = .error
        let sync = try SyncNode(log: node, configuration: SyncConfiguration(), logger: quiet)
        let bar = ProgressBar(label: "fetching")
        let clock = Stopwatch()
        let before = try await node.counts().entries
        let firstSeq = try await node.lastSeq()
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await sync.run() }
            defer { tasks.cancelAll() }
            while true {
                try await Task.sleep(for: .milliseconds(100))
                // The ingest sequence, not a count: one indexed lookup per redraw, not a scan.
                bar.update(count: Int(try await node.lastSeq() - firstSeq))
                let status = try await node.peerStatuses().first { ($0.lastConnectedMilliseconds ?? 0) >= started }
                if let synced = status?.lastSyncMilliseconds, synced >= started { break }
                if let status, status.state != "connected", let error = status.lastError {
                    bar.finish()
                    throw CLIError.message("\(address) ended the fetch: \(error); the node is joined — run cairn serve to sync later")
                }
                if status == nil, clock.seconds > connectTimeout {
                    bar.finish()
                    throw CLIError.message(
                        "no session with \(address) within \(Int(connectTimeout)) s (is cairn serve running there?); the node is joined — run cairn serve to sync later")
                }
            }
        }
        bar.finish()
        let fetched = try await node.counts().entries - before
        try Terminal.out.line("fetched \(fetched) entries from \(address) in \(String(format: "%.1f", clock.seconds)) s")
    }
}
