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
            Creates the data directory (mode 0700) with cairn.db and a new node key in node.key \
            (mode 0600), and a genesis entry that names the log and grants this node admin rights \
            plus any --writer keys. Prints the log id and this node's PUBLIC key (give it to an \
            admin of another log to be granted writing). Fails if a log already exists there.

            With --from BUNDLE, joins the existing log the bundle belongs to instead: a new node \
            key, the log's genesis, then the bundle's entries. An admin must grant the printed \
            node key (cairn writers add) before this node may write.
            """)

    @OptionGroup var global: GlobalOptions

    @Option(help: "The log's name, recorded in its genesis entry.")
    var name = "cairn"

    @Option(name: .customLong("writer"), help: ArgumentHelp("Also grant this public key (64 hex digits) the writer role; repeatable.", valueName: "hexkey"),
            transform: parsePublicKey)
    var writers: [PublicKey] = []

    @Option(name: .customLong("from"), help: ArgumentHelp("Join the log of this bundle instead of creating a new log.", valueName: "bundle"))
    var bundle: String?

    func validate() throws {
        if bundle != nil && !writers.isEmpty { throw ValidationError("--writer applies to a new log, not with --from") }
    }

    func run() async throws {
        let path = global.path
        try createParentDirectories(of: path)
        let created = try bundle.map { try CairnLog.join(at: path, bundle: $0) }
            ?? CairnLog.create(at: path, name: name, writers: writers.map { WriterGrant(key: $0, role: .writer) })
        let name = try await created.name
        global.log.info("created log", metadata: ["data-dir": .string(path), "log": .string(created.logID.hex)])
        try Terminal.out.line(bundle == nil ? "initialized Cairn log in \(path)" : "joined Cairn log in \(path)")
        for line in formatTable([
            ["log id:", created.logID.hex],
            ["name:", name],
            ["node key:", "\(created.nodeKey.hex) (public key; the secret stays in node.key)"],
        ]) {
            try Terminal.out.line(line)
        }
    }

    /// Creates the missing parent directories of `path` (like `mkdir -p`); the library creates
    /// the data directory itself, with mode 0700.
    private func createParentDirectories(of path: String) throws {
        let components = path.split(separator: "/", omittingEmptySubsequences: false).dropLast()
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in components where !component.isEmpty {
            prefix += "/" + component
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST { throw CLIError.io(prefix, String(cString: strerror(errno))) }
        }
    }
}
