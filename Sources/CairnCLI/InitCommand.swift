import CairnCore
import CairnStore
import ArgumentParser
import Cairn

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `cairn init`: creates a log in the data directory.
struct InitCommand: CairnCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create a new log in the data directory.",
        discussion: """
            Creates the data directory (mode 0700) with cairn.db, a new node key in node.key and \
            a random network secret in network.key (both mode 0600), and a genesis entry that \
            names the log and grants this node admin rights plus any --writer keys. Prints the \
            log id and this node's PUBLIC key (give it to an admin of another log to be granted \
            writing). Fails if a log already exists there.

            With --from BUNDLE, joins the existing log the bundle belongs to instead: a new node \
            key, the log's genesis, then the bundle's entries; --secret-file copies the log's \
            network secret in (without it, this node cannot sync with peers). An admin must grant \
            the printed node key (cairn writers add) before this node may write. `cairn join` \
            with an invite does all of this in one step.

            EXAMPLES:
              cairn init --name manifests
              cairn --data-dir ./node2 init --from all.bundle --secret-file .cairn/network.key
            """)

    @OptionGroup var global: GlobalOptions

    @Option(help: "The log's name, recorded in its genesis entry.")
    var name = "cairn"

    @Option(name: .customLong("writer"), help: ArgumentHelp("Also grant this public key (64 hex digits) the writer role; repeatable.", valueName: "hexkey"),
            transform: parsePublicKey)
    var writers: [PublicKey] = []

    @Option(name: .customLong("from"), help: ArgumentHelp("Join the log of this bundle instead of creating a new log.", valueName: "bundle"))
    var bundle: String?

    @Option(
        name: .customLong("secret-file"),
        help: ArgumentHelp("With --from: copy the log's network secret from this file (another node's network.key, mode 0600).", valueName: "path"))
    var secretFile: String?

    func validate() throws {
        if bundle != nil && !writers.isEmpty { throw ValidationError("--writer applies to a new log, not with --from") }
        if bundle == nil && secretFile != nil { throw ValidationError("--secret-file applies with --from (a new log makes its own secret)") }
    }

    func run() async throws {
        let path = global.path
        if global.readOnlyRequested { throw StoreError.readOnly(path: path) }  // --no-write: this creates a log
        let secret = try secretFile.map(DataDirectory.readSecretFile(at:))
        try createParentDirectories(of: path)
        let bar = ProgressBar(label: "importing")
        let created = try bundle.map { bundle in
            defer { bar.finish() }
            return try CairnLog.join(at: path, bundle: bundle, networkSecret: secret) { bar.update($0.done, $0.total) }
        }
            ?? CairnLog.create(at: path, name: name, writers: writers.map { WriterGrant(key: $0, role: .writer) })
        global.log.info("created log", metadata: ["data-dir": .string(path), "log": .string(created.logID.hex)])
        try await printNewNode(created, heading: bundle == nil ? "initialized Cairn log in \(path)" : "joined Cairn log in \(path)")
    }
}

/// Prints what `init` and `join` made: the log, this node's PUBLIC key, whether it holds the
/// network secret, then `extra` rows.
func printNewNode(_ node: CairnLog, heading: String, extra: [[String]] = []) async throws {
    try Terminal.out.line(heading)
    let rows = [
        ["log id:", node.logID.hex],
        ["name:", try await node.name],
        ["node key:", "\(node.nodeKey.hex) (public key; the secret stays in node.key)"],
        ["network secret:", SecretState(of: node).text],
    ]
    for line in formatTable(rows + extra) { try Terminal.out.line(line) }
}

/// Creates the missing parent directories of `path` (like `mkdir -p`); the library creates
/// the data directory itself, with mode 0700.
func createParentDirectories(of path: String) throws {
    let components = path.split(separator: "/", omittingEmptySubsequences: false).dropLast()
    var prefix = path.hasPrefix("/") ? "" : "."
    for component in components where !component.isEmpty {
        prefix += "/" + component
        if mkdir(prefix, 0o755) != 0 && errno != EEXIST { throw CLIError.io(prefix, String(cString: strerror(errno))) }
    }
}
