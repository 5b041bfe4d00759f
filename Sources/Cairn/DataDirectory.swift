import CairnCore
import CairnStore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Errors about the data directory and the node key.
public enum DataDirectoryError: Error, Equatable, CustomStringConvertible {
    /// No Cairn log at this directory (`cairn init` creates one).
    case missing(path: String)
    /// `init` was asked to create a log where one exists.
    case alreadyInitialized(path: String)
    /// The key file is unreadable, the wrong size, or readable by others.
    case badKeyFile(path: String, reason: String)
    /// A filesystem call failed.
    case io(path: String, errno: Int32)

    public var description: String {
        switch self {
        case .missing(let path): "no Cairn log at \(path) (run `cairn init` to create one)"
        case .alreadyInitialized(let path): "a Cairn log already exists at \(path)"
        case .badKeyFile(let path, let reason): "bad key file \(path): \(reason)"
        case .io(let path, let code): "\(path): \(String(cString: strerror(code)))"
        }
    }
}

/// The files of a node: `<dir>/cairn.db` (the SQLite log) and `<dir>/node.key` (the node's
/// Ed25519 seed, hex, mode 0600).
public struct DataDirectory: Sendable {
    /// The directory path.
    public let path: String
    /// The SQLite database file.
    public var databasePath: String { path + "/cairn.db" }
    /// The node's signing key file.
    public var keyPath: String { path + "/node.key" }

    public init(path: String) { self.path = path }

    /// Whether a log exists here.
    public var exists: Bool { access(databasePath, F_OK) == 0 }

    /// Creates the directory (mode 0700) if needed.
    func createDirectory() throws {
        if mkdir(path, 0o700) != 0 && errno != EEXIST { throw DataDirectoryError.io(path: path, errno: errno) }
    }

    /// Removes the files a failed `create`/`join` made, and the directory if it is then empty.
    func remove() {
        for file in [databasePath, databasePath + "-wal", databasePath + "-shm", keyPath] { unlink(file) }
        rmdir(path)
    }

    /// Loads the node key, creating one (mode 0600, never printed or logged) if there is none.
    func loadOrCreateKey() throws -> SigningKey {
        if access(keyPath, F_OK) == 0 { return try loadKey() }
        let key = SigningKey.generate()
        try writeKey(key)
        return key
    }

    /// Loads the node key; refuses a key file that others can read.
    func loadKey() throws -> SigningKey {
        var info = stat()
        guard stat(keyPath, &info) == 0 else { throw DataDirectoryError.badKeyFile(path: keyPath, reason: "cannot read it") }
        guard info.st_mode & 0o077 == 0 else {
            throw DataDirectoryError.badKeyFile(path: keyPath, reason: "readable by group or others (chmod 600 it)")
        }
        guard let text = try readFile(keyPath),
            let seed = Hex.decode(String(decoding: text, as: UTF8.self).trimmingWhitespace()),
            let key = SigningKey(seed: seed)
        else { throw DataDirectoryError.badKeyFile(path: keyPath, reason: "expected 64 hex digits") }
        return key
    }

    /// Writes the seed as hex to a new file created with mode 0600 (never wider, not even briefly).
    func writeKey(_ key: SigningKey) throws {
        let fd = open(keyPath, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else { throw DataDirectoryError.io(path: keyPath, errno: errno) }
        defer { close(fd) }
        let bytes = Array((Hex.encode(key.seed) + "\n").utf8)
        guard write(fd, bytes, bytes.count) == bytes.count, fsync(fd) == 0 else {
            throw DataDirectoryError.io(path: keyPath, errno: errno)
        }
    }
}

/// Reads a whole file, or `nil` if it cannot be opened.
func readFile(_ path: String) throws -> [UInt8]? {
    guard let file = fopen(path, "rb") else { return nil }
    defer { fclose(file) }
    var out: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = fread(&buffer, 1, buffer.count, file)
        if n > 0 { out.append(contentsOf: buffer[0..<n]) }
        if n < buffer.count { break }
    }
    return out
}

extension String {
    func trimmingWhitespace() -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
            let last = scalars.lastIndex(where: { !$0.properties.isWhitespace })
        else { return "" }
        return String(scalars[first...last])
    }
}
