import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Thrown when stdout's reader has gone away (EPIPE): the command stops quietly and exits 0,
/// like `git log | head -1`.
struct OutputClosed: Error {}

/// Buffered writes to a file descriptor with plain `write(2)` calls, so that a closed pipe is an
/// error we see (SIGPIPE is ignored in `main`) instead of a signal that kills the process.
final class OutputStream: Sendable {
    let fd: Int32
    private let buffer = Mutex<[UInt8]>([])
    private static let flushThreshold = 64 * 1024

    init(fd: Int32) { self.fd = fd }

    /// Appends text followed by a newline.
    func line(_ text: String) throws {
        try append(Array(text.utf8) + [0x0A])
    }

    /// Appends raw bytes.
    func bytes(_ data: [UInt8]) throws {
        try append(data)
    }

    private func append(_ data: [UInt8]) throws {
        let pending: [UInt8]? = buffer.withLock { buffer in
            buffer.append(contentsOf: data)
            guard buffer.count >= OutputStream.flushThreshold else { return nil }
            defer { buffer.removeAll(keepingCapacity: true) }
            return buffer
        }
        if let pending { try writeAll(pending) }
    }

    /// Writes out everything buffered.
    func flush() throws {
        let pending = buffer.withLock { buffer in
            defer { buffer.removeAll(keepingCapacity: true) }
            return buffer
        }
        try writeAll(pending)
    }

    private func writeAll(_ data: [UInt8]) throws {
        var offset = 0
        while offset < data.count {
            let written = data.withUnsafeBytes { raw in
                write(fd, raw.baseAddress! + offset, raw.count - offset)
            }
            if written < 0 {
                if errno == EINTR { continue }
                throw OutputClosed()
            }
            offset += written
        }
    }
}

/// The process's standard streams.
enum Terminal {
    /// Standard output, buffered; flushed at exit and after each line of a stream (`tail`).
    static let out = OutputStream(fd: 1)

    /// Writes one line to stderr at once (unbuffered); errors there are ignored.
    static func error(_ text: String) {
        let bytes = Array((text + "\n").utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { write(2, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0 && errno == EINTR { continue }
            if written <= 0 { return }
            offset += written
        }
    }

    /// Writes raw text to stderr without a newline (progress bars).
    static func errorRaw(_ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { write(2, $0.baseAddress!, $0.count) }
    }

    /// Whether stderr is a terminal.
    static var stderrIsTTY: Bool { isatty(2) == 1 }

    /// Reads everything from a file descriptor (stdin for `put -`).
    static func readAll(fd: Int32) throws -> [UInt8] {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw CLIError.io("standard input", String(cString: strerror(errno)))
            }
            if n == 0 { return out }
            out.append(contentsOf: chunk[0..<n])
        }
    }

    /// Reads a whole file.
    static func readFile(_ path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw CLIError.io(path, String(cString: strerror(errno))) }
        defer { close(fd) }
        do {
            return try readAll(fd: fd)
        } catch CLIError.io(_, let reason) {
            throw CLIError.io(path, reason)
        }
    }
}

/// A monotonic stopwatch.
struct Stopwatch {
    private let start = ContinuousClock.now
    var seconds: Double {
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }
}
