import ArgumentParser
import Cairn
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Options every command takes.
struct GlobalOptions: ParsableArguments {
    @Option(
        name: .customLong("data-dir"),
        help: ArgumentHelp(
            "The node's data directory (cairn.db and node.key). Default: $CAIRN_DIR, else ./.cairn.",
            valueName: "path"))
    var dataDirectory: String?

    @Flag(name: .shortAndLong, help: "Log what the command does (info and debug) to stderr.")
    var verbose = false

    /// The data directory: `--data-dir`, else `$CAIRN_DIR`, else `./.cairn`.
    var path: String {
        if let dataDirectory, !dataDirectory.isEmpty { return dataDirectory }
        if let env = getenv("CAIRN_DIR"), case let value = String(cString: env), !value.isEmpty { return value }
        return "./.cairn"
    }

    /// Opens the log in the data directory.
    func open() throws -> CairnLog {
        log.debug("opening log", metadata: ["data-dir": .string(path)])
        let opened = try CairnLog.open(at: path)
        log.debug("opened log", metadata: ["log": .string(opened.logID.hex)])
        return opened
    }

    /// The CLI's logger (stderr; see ``Cairn/bootstrapLogging(verbose:)``). Never given the node key.
    var log: Logger { Logger(label: "cairn") }
}

/// Commands that take the global options (all of them).
protocol CairnCommand: AsyncParsableCommand {
    var global: GlobalOptions { get }
}
