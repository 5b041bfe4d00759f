#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// How an ``APIServer`` listens and what it accepts.
///
/// ```swift
/// let configuration = try APIConfiguration(listen: "127.0.0.1:7480")
/// ```
public struct APIConfiguration: Sendable {
    /// Where the server listens.
    public enum Address: Sendable, Equatable, CustomStringConvertible {
        /// A TCP host (name, IPv4 or IPv6 literal) and port (0 picks a free port).
        case tcp(host: String, port: Int)
        /// A Unix domain socket at this path.
        case unix(path: String)

        /// Parses `HOST:PORT`, `[IPV6]:PORT` or `unix:PATH`.
        ///
        /// - Throws: ``APIConfigurationError/invalidAddress(_:)`` for anything else.
        public init(parsing text: String) throws(APIConfigurationError) {
            if text.hasPrefix("unix:") {
                let path = String(text.dropFirst("unix:".count))
                guard !path.isEmpty else { throw .invalidAddress(text) }
                self = .unix(path: path)
                return
            }
            guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
                (0...65_535).contains(port)
            else { throw .invalidAddress(text) }
            var host = String(text[..<colon])
            if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            guard !host.isEmpty else { throw .invalidAddress(text) }
            self = .tcp(host: host, port: port)
        }

        /// Whether only this machine can reach the address: a Unix socket, or a loopback host.
        public var isLocal: Bool {
            switch self {
            case .unix: true
            case .tcp(let host, _): host == "localhost" || host == "::1" || host.hasPrefix("127.")
            }
        }

        public var description: String {
            switch self {
            case .unix(let path): "unix:\(path)"
            case .tcp(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
            }
        }
    }

    /// Bounds on what one request may make the server hold.
    public struct Limits: Sendable {
        /// Largest value a `PUT` may carry (bytes).
        public var maxValueBytes: Int = 16 << 20
        /// Largest bundle an import may stream in (bytes).
        public var maxBundleBytes: Int = 1 << 30
        /// Largest header block (all fields together, bytes), and largest single field.
        public var maxHeaderBytes: Int = 16 << 10
        /// Most header fields in one request.
        public var maxHeaderCount: Int = 64
        /// Most keys one list page returns (a larger `limit` is clamped to it).
        public var maxPageSize: Int = 1000
        /// Changes a feed consumer may fall behind by before the server ends its stream with a
        /// `lagged` event (the cursor to resume from).
        public var feedBuffer: Int = 4096

        public init() {}
    }

    /// Where to listen (default `127.0.0.1:7480`).
    public var address: Address
    /// A file holding the bearer token clients must send (created with a random token, mode
    /// 0600, if missing). Required when ``address`` is not local.
    public var tokenFile: String?
    /// Request bounds.
    public var limits: Limits

    /// The default port of `cairn api`.
    public static let defaultPort = 7480

    public init(address: Address = .tcp(host: "127.0.0.1", port: defaultPort), tokenFile: String? = nil, limits: Limits = Limits()) {
        self.address = address
        self.tokenFile = tokenFile
        self.limits = limits
    }

    /// A configuration listening on `listen` (`HOST:PORT` or `unix:PATH`).
    ///
    /// - Throws: ``APIConfigurationError/invalidAddress(_:)``.
    public init(listen: String, tokenFile: String? = nil, limits: Limits = Limits()) throws(APIConfigurationError) {
        self.init(address: try Address(parsing: listen), tokenFile: tokenFile, limits: limits)
    }
}

/// Why an ``APIServer`` cannot start.
public enum APIConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The listen address does not parse.
    case invalidAddress(String)
    /// The address is reachable from other machines and no token file was given.
    case tokenRequired(String)
    /// The token file cannot be read or created, is empty, or others may read it.
    case badTokenFile(path: String, problem: String)

    public var description: String {
        switch self {
        case .invalidAddress(let text): "invalid API address \"\(text)\": expected HOST:PORT, [IPV6]:PORT or unix:PATH"
        case .tokenRequired(let address):
            "refusing to serve the API on \(address) without a token: only loopback and unix: addresses may go without one (add --token-file PATH)"
        case .badTokenFile(let path, let problem): "token file \(path): \(problem)"
        }
    }
}
