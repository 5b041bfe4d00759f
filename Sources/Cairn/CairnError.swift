import CairnCore
import CairnReconcile
import CairnSQLite
import CairnStore
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The one error the library's public API throws: a ``Code`` a caller can switch on (new codes
/// may be added, so keep a `default:`), and a one-line message that names the file, key, entry
/// or setting concerned and, where there is one, what to do.
///
/// ```swift
/// do { try await log.put("tables", "orders", bytes) }
/// catch let error as CairnError where error.code == .notAuthorized { … }
/// ```
public struct CairnError: Error, Sendable, CustomStringConvertible, LocalizedError {
    /// What went wrong, as a stable value (like swift-service-lifecycle's error codes).
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The directory or file is not a Cairn log.
        public static let notACairnLog = Code("notACairnLog")
        /// A log already exists where one was to be created.
        public static let alreadyExists = Code("alreadyExists")
        /// The file was written by an incompatible Cairn version.
        public static let unsupportedVersion = Code("unsupportedVersion")
        /// No entry, key, value or peer matches.
        public static let notFound = Code("notFound")
        /// A hex prefix matches more than one entry.
        public static let ambiguous = Code("ambiguous")
        /// This node's key may not make that write (unknown, revoked, not an admin).
        public static let notAuthorized = Code("notAuthorized")
        /// An entry, a writer-set change or a bundle was refused; nothing was applied.
        public static let refused = Code("refused")
        /// Input that does not parse: an entry, a bundle, an invite, an address, a key.
        public static let invalidInput = Code("invalidInput")
        /// The log cannot be written: opened read-only, read-only media, no permission.
        public static let readOnly = Code("readOnly")
        /// Another process held the write lock for longer than the busy timeout.
        public static let busy = Code("busy")
        /// Stored data does not read back as Cairn wrote it: run `verify`, then `verify --repair`.
        public static let corrupt = Code("corrupt")
        /// A file could not be read or written.
        public static let io = Code("io")
        /// A conditional write's condition did not hold: the key moved on; nothing was written.
        public static let conditionFailed = Code("conditionFailed")
        /// Anything else; the message says what.
        public static let other = Code("other")
    }

    /// What went wrong.
    public let code: Code
    /// One line for a person.
    public let message: String
    /// The detailed error the library raised, for the CLI and tests in this package.
    package let underlying: any Error

    public var description: String { message }
    public var errorDescription: String? { message }

    /// Classifies any error the library's layers raise.
    package init(_ error: any Error) {
        if let error = error as? CairnError {
            self = error
            return
        }
        let (code, message) = CairnError.classify(error)
        self.code = code
        self.message = message
        self.underlying = error
    }

    /// Runs `body`, translating what it throws into a ``CairnError``.
    package static func translating<T>(_ body: () throws -> T) throws(CairnError) -> T {
        do { return try body() } catch { throw CairnError(error) }
    }

    /// Runs `body`, translating what it throws into a ``CairnError``.
    package static func translating<T>(_ body: () async throws -> T) async throws(CairnError) -> T {
        do { return try await body() } catch { throw CairnError(error) }
    }

    private static func classify(_ error: any Error) -> (Code, String) {
        switch error {
        case let error as StoreError:
            switch error {
            case .notACairnLog: (.notACairnLog, error.description)
            case .unsupportedSchema: (.unsupportedVersion, error.description)
            case .alreadyExists: (.alreadyExists, error.description)
            case .notFound: (.notFound, error.description)
            case .ambiguousPrefix: (.ambiguous, error.description)
            case .notAuthorized: (.notAuthorized, error.description)
            case .invalidEntry: (.invalidInput, error.description)
            case .corrupt: (.corrupt, error.description)
            case .refusedWriterChange: (.refused, error.description)
            case .readOnly, .unreadableWriteAheadLog: (.readOnly, error.description)
            }
        case let error as DataDirectoryError:
            switch error {
            case .missing: (.notACairnLog, error.description)
            case .alreadyInitialized: (.alreadyExists, error.description)
            case .badKeyFile, .noNetworkSecret: (.invalidInput, error.description)
            case .io: (.io, error.description)
            }
        case let error as BundleError: (.refused, error.description)
        case let error as InviteError: (.invalidInput, error.description)
        case let error as PeerAddressError: (.invalidInput, error.description)
        case let error as ValueError: (.notFound, error.description)
        case let error as ConditionFailed: (.conditionFailed, error.description)
        case let error as RejectReason: (.refused, "rejected: \(error.description)")
        case let error as EntryFormatError: (.invalidInput, "invalid entry: \(error.description)")
        case let error as ReconcileError: (.invalidInput, "reconciliation: \(error)")
        case let error as SQLiteError where error.code & 0xff == Database.ResultCode.busy:
            (.busy, "the log is busy: another process held the write lock too long; try again")
        case let error as SQLiteError where error.code & 0xff == Database.ResultCode.readOnly:
            (.readOnly, "the log is read-only (read-only media, no write permission, or opened read-only)")
        case let error as SQLiteError where error.code & 0xff == Database.ResultCode.corrupt:
            (.corrupt, "the database is damaged: \(error.message); restore it from a backup or make a new node and sync")
        case let error as SQLiteError: (.io, "the database failed: \(error.message)")
        default: (.other, "\(error)")
        }
    }
}
