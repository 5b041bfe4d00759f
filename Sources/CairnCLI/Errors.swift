import CairnCore
import CairnStore
import ArgumentParser
import Cairn
import CairnAPI
import CairnSQLite

/// Errors the CLI itself raises (the library's own errors are mapped in ``ErrorReport``).
enum CLIError: Error {
    /// A key, entry, writer or value the command was asked about does not exist.
    case notFound(String)
    /// A key or writer prefix matches several.
    case ambiguous(String)
    /// Reading or writing a file failed.
    case io(String, String)
    /// Anything else, already phrased for the user.
    case message(String)
    /// A bad argument found while running (exit status 64, like ArgumentParser's own), with
    /// what is wrong instead of the usage text.
    case usage(String)
}

/// The one place where errors become what the user sees: a single line
/// `cairn: error: <message>` on stderr and a non-zero exit status. Never a stack trace.
///
/// Exit statuses: 0 success; 1 a runtime error (missing or foreign data directory, not found,
/// ambiguous, rejected, corrupt bundle, failed verification); 64 a usage error (bad arguments,
/// from ArgumentParser).
enum ErrorReport {
    /// The message for an error the CLI or the library raised, or `nil` for ArgumentParser's
    /// own errors (usage, help, explicit exit codes), which it reports itself. `dataDirectory`
    /// names the log in messages about SQLite locks and permissions.
    static func message(for error: Error, dataDirectory: String? = nil) -> String? {
        switch error {
        case let error as CairnError: message(for: error.underlying, dataDirectory: dataDirectory) ?? error.message
        case let error as CLIError:
            switch error {
            case .notFound(let what): "not found: \(what)"
            case .ambiguous(let what): what
            case .io(let path, let reason): "\(path): \(reason)"
            case .message(let text): text
            case .usage(let text): text
            }
        case let error as DataDirectoryError: error.description
        case let error as StoreError:
            switch error {
            case .notACairnLog(let path): "\(path) is not a Cairn log (is --data-dir right?)"
            case .notAuthorized(_, .unknownAuthor):
                "\(error.description) (a node made by `cairn join` may write once its grant has synced: run `cairn serve` and check `cairn writers`)"
            default: error.description
            }
        case let error as BundleError: error.description
        case let error as APIConfigurationError: error.description
        case let error as InviteError: error.description
        case let error as PeerAddressError: error.description
        case let error as ValueError: error.description
        case let error as RejectReason: "rejected: \(error.description)"
        case let error as EntryFormatError: "invalid entry: \(error.description)"
        case let error as SQLiteError where error.code & 0xff == Database.ResultCode.busy:
            "the log at \(dataDirectory ?? "the data directory") is busy (another process holds the write lock); try again"
        case let error as SQLiteError where error.code & 0xff == Database.ResultCode.readOnly:
            StoreError.readOnly(path: dataDirectory ?? "the data directory").description
        case let error as SQLiteError where error.code & 0xff == Database.ResultCode.corrupt:
            "\(dataDirectory.map { "\($0)/cairn.db" } ?? "the log's database") is damaged (SQLite: \(error.message)); "
                + "restore it from a backup, or make a new node from a bundle (`cairn init --from`) or an invite and sync"
        case let error as SQLiteError:
            // Never SQLite's raw text with the statement: the file, what failed, what to do.
            "\(dataDirectory.map { "\($0)/cairn.db" } ?? "the log's database"): \(error.message) (SQLite code \(error.code)); "
                + "check the file's permissions and the disk, then run `cairn verify`"
        default:
            // ArgumentParser's errors (usage, help, exit codes) are reported by it, with the
            // same prefix; it prints any other error (SQLite, below the library) as
            // `cairn: error: <description>` with status 1.
            nil
        }
    }

    /// Reports `error` and exits: with status 0 when stdout was closed by its reader.
    static func exit(with error: Error, dataDirectory: String? = nil) -> Never {
        if error is OutputClosed { Cairn.exit(withError: nil) }
        guard let text = message(for: error, dataDirectory: dataDirectory) else { Cairn.exit(withError: error) }
        let oneLine = text.split(whereSeparator: \.isNewline).joined(separator: " ")
        Terminal.error("\(Cairn._errorPrefix)\(oneLine)")
        if case CLIError.usage = error { Cairn.exit(withError: ExitCode(64)) }
        Cairn.exit(withError: ExitCode.failure)
    }
}
