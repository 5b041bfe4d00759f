import CairnCore
import CairnStore
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
            "The node's data directory (cairn.db, node.key, network.key). Default: $CAIRN_DIR, else ./.cairn.",
            valueName: "path"))
    var dataDirectory: String?

    @Flag(
        name: .customLong("no-write"),
        help: ArgumentHelp(
            "Open the log read-only (also $CAIRN_NO_WRITE=1): reading commands need no node key, writing ones fail. "
                + "A data directory this process cannot write is always opened read-only."))
    var noWrite = false

    @Flag(name: .shortAndLong, help: "Log what the command does (info and debug) to stderr.")
    var verbose = false

    /// The data directory: `--data-dir`, else `$CAIRN_DIR`, else `./.cairn`.
    var path: String {
        if let dataDirectory, !dataDirectory.isEmpty { return dataDirectory }
        if let env = getenv("CAIRN_DIR"), case let value = String(cString: env), !value.isEmpty { return value }
        return "./.cairn"
    }

    /// Whether read-only was asked for: `--no-write`, or `$CAIRN_NO_WRITE` set to anything but
    /// empty, `0`, `false` or `no`.
    var readOnlyRequested: Bool {
        if noWrite { return true }
        guard let env = getenv("CAIRN_NO_WRITE") else { return false }
        return !["", "0", "false", "no"].contains(String(cString: env).lowercased())
    }

    /// Store options: the defaults, except the lock wait from `$CAIRN_BUSY_TIMEOUT_MS`
    /// (milliseconds; default 30 s).
    var storeOptions: StoreOptions {
        var options = StoreOptions()
        if let env = getenv("CAIRN_BUSY_TIMEOUT_MS"), let value = Int32(String(cString: env)), value >= 0 {
            options.busyTimeoutMilliseconds = value
        }
        return options
    }

    /// Opens the log in the data directory for a command that writes: read-write, with the
    /// node key. Fails with one line when the directory is read-only (or read-only was asked).
    func open() throws -> CairnLog {
        log.debug("opening log", metadata: ["data-dir": .string(path)])
        if readOnlyRequested && DataDirectory(path: path).exists { throw StoreError.readOnly(path: path) }
        let opened = try CairnLog.open(at: path, options: storeOptions)
        log.debug("opened log", metadata: ["log": .string(opened.logID.hex)])
        return opened
    }

    /// Opens the log for a command that only reads. It opens read-only — no node key needed,
    /// nothing written, SQLite's read-only or immutable mode — when asked to, when this process
    /// cannot write the directory (read-only media, a copy without write permission), or when
    /// there is no `node.key`; otherwise read-write like ``open()``, so an older file is
    /// migrated as usual.
    func openForReading() throws -> CairnLog {
        let directory = DataDirectory(path: path)
        let readOnly = readOnlyRequested || (directory.exists && (!directory.isWritable || !directory.hasKeyFile))
        log.debug("opening log", metadata: ["data-dir": .string(path), "read-only": .stringConvertible(readOnly)])
        let opened = try CairnLog.open(at: path, readOnly: readOnly, options: storeOptions)
        log.debug("opened log", metadata: ["log": .string(opened.logID.hex)])
        return opened
    }

    /// The CLI's logger (stderr; see ``Cairn/bootstrapLogging(verbose:)``). Never given the node key.
    var log: Logger { Logger(label: "cairn") }
}

extension GlobalOptions {
    /// Lets the global options come before the subcommand, as in `cairn --data-dir X log`:
    /// ArgumentParser only accepts a subcommand's options after its name, so leading global
    /// options are moved to just after the subcommand path (`cairn log --data-dir X`).
    static func hoisted(_ arguments: [String]) -> [String] {
        var globals: [String] = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            if argument == "--data-dir", index + 1 < arguments.count {
                globals += [argument, arguments[index + 1]]
                index += 2
            } else if argument.hasPrefix("--data-dir=") || argument == "--verbose" || argument == "-v" || argument == "--no-write" {
                globals.append(argument)
                index += 1
            } else {
                break
            }
        }
        guard !globals.isEmpty else { return arguments }
        let rest = Array(arguments[index...])
        var command: any ParsableCommand.Type = Cairn.self
        var pathLength = 0
        while pathLength < rest.count,
            let next = command.configuration.subcommands.first(where: { $0.configuration.commandName == rest[pathLength] })
        {
            command = next
            pathLength += 1
        }
        guard pathLength > 0 else { return arguments }
        return Array(rest[..<pathLength]) + globals + Array(rest[pathLength...])
    }
}

/// Commands that take the global options (all of them).
protocol CairnCommand: AsyncParsableCommand {
    var global: GlobalOptions { get }
}
