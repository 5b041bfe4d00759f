import CairnCore
import CairnStore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Errors about the data directory, the node key and the network secret.
public enum DataDirectoryError: Error, Equatable, CustomStringConvertible {
    /// No Cairn log at this directory (`cairn init` creates one).
    case missing(path: String)
    /// `init` was asked to create a log where one exists.
    case alreadyInitialized(path: String)
    /// The key file is unreadable, the wrong size, or readable by others.
    case badKeyFile(path: String, reason: String)
    /// A filesystem call failed.
    case io(path: String, errno: Int32)
    /// This node has no network secret, so it cannot authenticate to peers.
    case noNetworkSecret(path: String)

    public var description: String {
        switch self {
        case .missing(let path): "no Cairn log at \(path) (run `cairn init` to create one)"
        case .alreadyInitialized(let path): "a Cairn log already exists at \(path)"
        case .badKeyFile(let path, let reason): "bad key file \(path): \(reason)"
        case .io(let path, let code): "\(path): \(String(cString: strerror(code)))"
        case .noNetworkSecret(let path):
            "no network secret at \(path): run `cairn join` with an invite, or copy network.key from a node of this log (mode 0600)"
        }
    }
}

/// The files of a node: `<dir>/cairn.db` (the SQLite log), `<dir>/node.key` (the node's
/// Ed25519 seed) and `<dir>/network.key` (the log's network secret, the pre-shared key of peer
/// sessions). Both secrets are 64 hex digits and a newline, mode 0600.
public struct DataDirectory: Sendable {
    /// Bytes in a network secret (the Noise PSK).
    public static let networkSecretByteCount = 32

    /// The directory path.
    public let path: String
    /// The SQLite database file.
    public var databasePath: String { path + "/cairn.db" }
    /// The node's signing key file.
    public var keyPath: String { path + "/node.key" }
    /// The log's network secret file.
    public var networkSecretPath: String { path + "/network.key" }

    public init(path: String) { self.path = path }

    /// Whether a log exists here.
    public var exists: Bool { access(databasePath, F_OK) == 0 }

    /// Whether this process may write the directory and its database (`access(2)`: false on
    /// read-only media, and for a directory or `cairn.db` without write permission — except
    /// for root, whom permission bits do not stop).
    public var isWritable: Bool { access(path, W_OK) == 0 && access(databasePath, W_OK) == 0 }

    /// Whether `node.key` exists (readable or not).
    public var hasKeyFile: Bool { access(keyPath, F_OK) == 0 }

    /// Creates the directory (mode 0700) if needed, and its missing parents (mode 0755, like
    /// `mkdir -p`).
    func createDirectory() throws {
        let components = path.split(separator: "/", omittingEmptySubsequences: false).dropLast()
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in components where !component.isEmpty {
            prefix += "/" + component
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST { throw DataDirectoryError.io(path: prefix, errno: errno) }
        }
        if mkdir(path, 0o700) != 0 && errno != EEXIST { throw DataDirectoryError.io(path: path, errno: errno) }
    }

    /// Removes the files a failed `create`/`join` made, and the directory if it is then empty.
    func remove() {
        for file in [databasePath, databasePath + "-wal", databasePath + "-shm", keyPath, networkSecretPath] { unlink(file) }
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
        let seed = try DataDirectory.readSecret(at: keyPath, ifMissing: .badKeyFile(path: keyPath, reason: "cannot read it"))
        return SigningKey(seed: seed)!  // readSecret returns exactly 32 bytes, a valid seed
    }

    /// Writes the node key's seed to a new `node.key`.
    func writeKey(_ key: SigningKey) throws { try DataDirectory.writeSecret(key.seed, to: keyPath) }

    /// The log's network secret: the 32-byte pre-shared key every node of the log holds, without
    /// which a peer session cannot be opened. Refuses a file that others can read.
    public func loadNetworkSecret() throws(CairnError) -> [UInt8] {
        try CairnError.translating {
            try DataDirectory.readSecret(at: networkSecretPath, ifMissing: .noNetworkSecret(path: networkSecretPath))
        }
    }

    /// Writes `secret` to a new `network.key`; fails if one exists.
    func writeNetworkSecret(_ secret: [UInt8]) throws {
        guard secret.count == DataDirectory.networkSecretByteCount else {
            throw DataDirectoryError.badKeyFile(path: networkSecretPath, reason: "a network secret is 32 bytes, got \(secret.count)")
        }
        try DataDirectory.writeSecret(secret, to: networkSecretPath)
    }

    /// Reads a secret file as `node.key` and `network.key` are written (64 hex digits), for
    /// copying one in (`cairn init --from BUNDLE --secret-file PATH`). Same checks as the node
    /// key: a file that group or others can read is refused.
    public static func readSecretFile(at path: String) throws(CairnError) -> [UInt8] {
        try CairnError.translating {
            try readSecret(at: path, ifMissing: .io(path: path, errno: ENOENT))
        }
    }

    /// Reads 32 bytes stored as hex in a file only its owner can read; throws `ifMissing` when
    /// there is no such file.
    static func readSecret(at path: String, ifMissing: DataDirectoryError) throws -> [UInt8] {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw errno == ENOENT ? ifMissing : DataDirectoryError.badKeyFile(path: path, reason: "cannot read it")
        }
        guard info.st_mode & 0o077 == 0 else {
            throw DataDirectoryError.badKeyFile(path: path, reason: "readable by group or others (chmod 600 it)")
        }
        guard let text = try readFile(path) else { throw DataDirectoryError.badKeyFile(path: path, reason: "cannot read it") }
        guard let bytes = Hex.decode(String(decoding: text, as: UTF8.self).trimmingWhitespace()),
            bytes.count == 32  // seeds and network secrets alike
        else { throw DataDirectoryError.badKeyFile(path: path, reason: "expected 64 hex digits") }
        return bytes
    }

    /// Writes bytes as hex to a new file created with mode 0600 (never wider, not even briefly).
    /// `O_EXCL`: an existing secret is never overwritten.
    static func writeSecret(_ secret: [UInt8], to path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else { throw DataDirectoryError.io(path: path, errno: errno) }
        defer { close(fd) }
        let bytes = Array((Hex.encode(secret) + "\n").utf8)
        guard write(fd, bytes, bytes.count) == bytes.count, fsync(fd) == 0 else {
            throw DataDirectoryError.io(path: path, errno: errno)
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
