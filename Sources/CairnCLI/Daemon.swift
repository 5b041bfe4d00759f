#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `cairn serve` holds an exclusive `flock(2)` on `DATA-DIR/serve.lock` (which holds its PID)
/// for as long as it runs: a second daemon on the same directory fails at once, naming the PID.
/// The kernel drops the lock when the process exits, however it exits.
final class DataDirectoryLock {
    private let fd: Int32

    /// Takes the lock or throws ``CLIError/message(_:)`` naming the process that holds it.
    init(directory: String) throws {
        let path = directory + "/serve.lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw CLIError.io(path, String(cString: strerror(errno))) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let reason = errno
            var buffer = [UInt8](repeating: 0, count: 32)
            let count = pread(fd, &buffer, buffer.count, 0)
            close(fd)
            guard reason == EWOULDBLOCK else { throw CLIError.io(path, String(cString: strerror(reason))) }
            let pid = String(decoding: buffer.prefix(max(0, count)).filter { (0x30...0x39).contains($0) }, as: UTF8.self)
            throw CLIError.message(
                "\(directory) is in use by another cairn serve (pid \(pid.isEmpty ? "unknown" : pid)); stop it first")
        }
        let text = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pwrite(fd, text, text.count, 0)
        self.fd = fd
    }

    deinit { close(fd) }
}

/// systemd's readiness protocol (`sd_notify(3)`): datagrams like `READY=1` to the unix socket
/// named by `$NOTIFY_SOCKET` (an `@` prefix names an abstract socket). Without the variable
/// every call does nothing.
struct ServiceNotifier: Sendable {
    let socketPath: String?

    init(environment: [String: String]) {
        socketPath = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Sends `state` (e.g. `READY=1`); returns whether a datagram went out.
    @discardableResult
    func notify(_ state: String) -> Bool {
        guard let socketPath else { return false }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var path = Array(socketPath.utf8)
        if path.first == UInt8(ascii: "@") { path[0] = 0 }
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard path.count < capacity else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: path)
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + path.count + (path.first == 0 ? 0 : 1))
        let message = Array(state.utf8)
        let sent = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, message, message.count, 0, $0, length) }
        }
        return sent == message.count
    }
}

/// Raises the soft descriptor limit (`ulimit -n`, often 1,024) to the hard limit, at most
/// 65,536, as daemons do: the node caps inbound connections below the soft limit, so this is
/// what lets it serve more than a thousand peers. Returns the soft limit in force.
@discardableResult
func raiseDescriptorLimit() -> UInt64 {
    var limits = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limits) == 0 else { return 0 }
    let target = min(limits.rlim_max, 65_536)
    if limits.rlim_cur < target {
        var raised = limits
        raised.rlim_cur = target
        if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { return UInt64(target) }
    }
    return UInt64(limits.rlim_cur)
}
