import CairnCore
import CairnStore
import ArgumentParser
import Cairn
import CairnSync
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What `cairn --version` prints: the library's version and the formats it speaks.
enum VersionText {
    static var text: String {
        "cairn \(CairnVersion.string) (entry format \(EntryBody.currentVersion), sync protocol \(SyncNode.protocolVersion))"
    }
}

/// `cairn`: the command-line tool of a Cairn log.
@main
struct Cairn: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cairn",
        abstract: "A signed, multi-writer operation log.",
        discussion: """
            Every command works on the data directory given by --data-dir (default: $CAIRN_DIR, \
            else ./.cairn). BUCKET/KEY splits at the first '/'; the key may contain more slashes. \
            Entry ids may be abbreviated to a unique prefix of 4 or more hex digits. Times are \
            printed in ISO-8601 UTC followed by the HLC counter ('2026-11-21T10:00:00.123Z #0').

            Exit status: 0 on success, 1 on an error (printed as one line 'cairn: error: ...'), \
            64 on bad arguments. The node's secret key (node.key) and the log's network secret \
            (network.key) are never printed or logged; only `cairn invite` prints secrets, on purpose.

            EXAMPLES:
              cairn init --name manifests
              cairn put tables/orders --file ./orders.json
              cairn log --graph --oneline -n 20
              cairn --version
            """,
        version: VersionText.text,
        subcommands: [
            InitCommand.self, PutCommand.self, DeleteCommand.self, GetCommand.self, LsCommand.self,
            LogCommand.self, ShowCommand.self, HistoryCommand.self, VerifyCommand.self,
            WritersCommand.self, ExportCommand.self, ImportCommand.self, PurgeCommand.self,
            StatusCommand.self, TailCommand.self, InviteCommand.self, JoinCommand.self, PeersCommand.self,
            ServeCommand.self, APICommand.self,
        ]
    )

    static var _errorPrefix: String { "cairn: error: " }

    /// Parses, bootstraps logging once, runs the command, and routes every error through
    /// ``ErrorReport`` (one message, one exit status, for all commands).
    static func main() async {
        // A closed stdout must be a write error (EPIPE) we handle, not a signal that kills us.
        signal(SIGPIPE, SIG_IGN)
        var dataDirectory: String?
        do {
            var command = try await asyncParseAsRoot(GlobalOptions.hoisted(Array(CommandLine.arguments.dropFirst())))
            dataDirectory = (command as? any CairnCommand)?.global.path
            let verbose = (command as? any CairnCommand)?.global.verbose ?? false
            if let serve = command as? ServeCommand {
                bootstrapLogging(level: serve.logLevel(verbose: verbose), format: serve.logFormatChoice)
            } else {
                bootstrapLogging(level: verbose ? .debug : .warning, format: .text)
            }
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            try Terminal.out.flush()
        } catch {
            try? Terminal.out.flush()
            ErrorReport.exit(with: error, dataDirectory: dataDirectory)
        }
    }

    /// swift-log to stderr: warnings and errors by default, everything with `--verbose`; the
    /// daemon logs info and up unless `--log-level` says otherwise, as text or JSON lines.
    static func bootstrapLogging(level: Logger.Level, format: LogFormat) {
        LoggingSystem.bootstrap { label in
            switch format {
            case .text:
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            case .json:
                var handler = JSONLogHandler(label: label)
                handler.logLevel = level
                return handler
            }
        }
    }
}
