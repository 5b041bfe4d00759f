#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The API's shared secret: a bearer token kept in a file only its owner may read.
struct BearerToken: Sendable {
    let bytes: [UInt8]

    /// Reads the token in `path`, or creates the file (mode 0600, exclusively) with 32 random
    /// bytes in hex when it does not exist.
    ///
    /// - Throws: ``APIConfigurationError/badTokenFile(path:problem:)`` when the file cannot be
    ///   read or made, is empty, or its group or others may read it.
    static func loadOrCreate(path: String) throws(APIConfigurationError) -> BearerToken {
        let created = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        if created >= 0 {
            defer { close(created) }
            var generator = SystemRandomNumberGenerator()
            let token = Array((0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }.hexText.utf8)
            guard write(created, token, token.count) == token.count else { throw failure(path, "cannot write it") }
            return BearerToken(bytes: token)
        }
        guard errno == EEXIST else { throw failure(path, String(cString: strerror(errno))) }
        return try load(path: path)
    }

    private static func load(path: String) throws(APIConfigurationError) -> BearerToken {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw failure(path, String(cString: strerror(errno))) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw failure(path, String(cString: strerror(errno))) }
        guard info.st_mode & 0o077 == 0 else { throw failure(path, "group or others may read it (chmod 600 it)") }
        // A token is a line of text; refusing big files keeps a wrong path from being read whole.
        var buffer = [UInt8](repeating: 0, count: 1025)
        let count = read(fd, &buffer, buffer.count)
        guard count >= 0 else { throw failure(path, String(cString: strerror(errno))) }
        guard count < buffer.count else { throw failure(path, "longer than 1 KiB") }
        let token = Array(buffer[..<count]).trimmingWhitespace()
        guard !token.isEmpty else { throw failure(path, "empty") }
        return BearerToken(bytes: token)
    }

    private static func failure(_ path: String, _ problem: String) -> APIConfigurationError {
        .badTokenFile(path: path, problem: problem)
    }

    /// Whether `presented` is the token, in time that depends only on the lengths.
    func matches(_ presented: some Collection<UInt8>) -> Bool {
        guard presented.count == bytes.count else { return false }
        var difference: UInt8 = 0
        for (a, b) in zip(presented, bytes) { difference |= a ^ b }
        return difference == 0
    }
}

extension [UInt8] {
    /// Lower-case hex.
    var hexText: String {
        let digits = Array("0123456789abcdef".utf8)
        return String(decoding: flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 0x0f)]] }, as: UTF8.self)
    }

    func trimmingWhitespace() -> [UInt8] {
        let isSpace: (UInt8) -> Bool = { $0 == 0x20 || (0x09...0x0d).contains($0) }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else { return [] }
        return Array(self[first...last])
    }
}
