import CairnCore
import CairnStore
import ArgumentParser
import Cairn
import CairnAPI
import CairnSync
import Foundation
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import UnixSignals

/// `cairn serve`: the sync daemon.
struct ServeCommand: CairnCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the sync node: accept peers, dial peers, push, fetch and reconcile until stopped.",
        discussion: """
            Peers come from --peer, the config file, and the log's peer list (`cairn peers add`, \
            reread every second). Sessions are Noise XXpsk3 keyed by the log's network secret \
            (network.key). Once every listener is bound (peers, and metrics if asked), prints \
            `listening HOST:PORT node KEY` on stdout and tells systemd READY=1 (if $NOTIFY_SOCKET \
            is set). Only one daemon may serve a data directory (a lock on DATA-DIR/serve.lock, \
            which holds its PID). Stops cleanly on SIGINT or SIGTERM; SIGHUP rereads the config file \
            and applies the peers and connection limits. Logs go to stderr (--log-level, --log-format).

            The optional config file (--config, default DATA-DIR/serve.json if present) is JSON with \
            any of: "listen", "metrics", "peers" (["host:port", ...]), "reconcile_interval_seconds", \
            "idle_timeout_seconds", "merge_settle_milliseconds", "handshake_timeout_seconds", \
            "max_inbound_connections", "max_inbound_connections_per_address", "allow" (["KEY", ...]), \
            "allow_any". Flags override it.

            Inbound peers must hold the network secret and, by default, a key in the log's writer \
            set (or pinned in the peer list). Read-only nodes are not in the writer set: admit them \
            with --allow KEY (or "allow"), or admit every holder of the secret with --allow-any.

            With --api HOST:PORT (or unix:PATH), the JSON HTTP API of `cairn api` runs in the same             process and stops with it; it prints `api listening ADDRESS` once bound.
            """)

    @OptionGroup var global: GlobalOptions

    @Option(help: ArgumentHelp("Accept peers on this address (port 0 picks a free port). Default: 127.0.0.1:7401.", valueName: "host:port"))
    var listen: String?

    @Option(name: .customLong("peer"), help: ArgumentHelp("Dial this peer too (repeatable).", valueName: "host:port"))
    var peers: [String] = []

    @Option(help: ArgumentHelp("Serve Prometheus metrics at http://HOST:PORT/metrics (and /healthz).", valueName: "host:port"))
    var metrics: String?

    @Option(help: ArgumentHelp("Seconds between anti-entropy rounds with each peer (jittered ±20%). Default: 30.", valueName: "seconds"))
    var reconcileInterval: Double?

    @Option(help: ArgumentHelp("Drop a peer silent this many seconds. Default: 30.", valueName: "seconds"))
    var idleTimeout: Double?

    @Option(help: ArgumentHelp("Close a connection that has not completed the handshake within this many seconds. Default: 5.", valueName: "seconds"))
    var handshakeTimeout: Double?

    @Option(help: ArgumentHelp("Inbound connections open at once (also capped by the descriptor limit). Default: 256.", valueName: "n"))
    var maxInbound: Int?

    @Option(help: ArgumentHelp("Inbound connections open at once from one IP address. Default: 8.", valueName: "n"))
    var maxInboundPerAddress: Int?

    @Option(help: ArgumentHelp("A JSON config file.", valueName: "path"))
    var config: String?

    @Option(name: .customLong("allow"), help: ArgumentHelp("Admit inbound peers with this node key besides the writer set, e.g. a read-only node (repeatable).", valueName: "key"))
    var allow: [String] = []

    @Flag(name: .customLong("allow-any"), help: "Admit any inbound peer that holds the network secret.")
    var allowAny = false

    @Option(help: ArgumentHelp("Also serve the JSON HTTP API here (as `cairn api --listen`).", valueName: "host:port|unix:path"))
    var api: String?

    @Option(help: ArgumentHelp("The API's bearer token file (as `cairn api --token-file`).", valueName: "path"))
    var apiTokenFile: String?
    @Option(help: ArgumentHelp("trace, debug, info, notice, warning, error or critical. Default: info (debug with --verbose).", valueName: "level"))
    var logLevel: String?

    @Option(help: ArgumentHelp("text or json (one object per line: ts, level, label, message, metadata). Default: text.", valueName: "format"))
    var logFormat: String?

    func validate() throws {
        if apiTokenFile != nil && api == nil { throw ValidationError("--api-token-file needs --api") }
        if let logLevel, Logger.Level(rawValue: logLevel) == nil {
            throw ValidationError("--log-level must be one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if let logFormat, LogFormat(rawValue: logFormat) == nil {
            throw ValidationError("--log-format must be text or json")
        }
    }

    func logLevel(verbose: Bool) -> Logger.Level {
        logLevel.flatMap(Logger.Level.init(rawValue:)) ?? (verbose ? .debug : .info)
    }

    var logFormatChoice: LogFormat { logFormat.flatMap(LogFormat.init(rawValue:)) ?? .text }

    func run() async throws {
        // Trapped first: from here on SIGHUP reloads instead of killing the process.
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        let descriptors = raiseDescriptorLimit()
        let log = try global.open()
        let lock = try DataDirectoryLock(directory: global.path)
        let settings = try currentSettings()
        let logger = Logger(label: "cairn.sync")
        logger.debug("descriptor limit", metadata: ["soft": "\(descriptors)"])
        var factory = PrometheusMetricsFactory(registry: PrometheusCollectorRegistry())
        factory.durationHistogramBuckets["cairn_push_latency_seconds"] = SyncMetrics.pushLatencyBuckets
        MetricsSystem.bootstrap(factory)
        let node = try SyncNode(log: log, configuration: try settings.configuration(), logger: logger)
        let host = settings.listen.map { String($0[..<($0.lastIndex(of: ":") ?? $0.endIndex)]) } ?? "127.0.0.1"
        let notifier = ServiceNotifier(environment: ProcessInfo.processInfo.environment)
        let apiServer = try api.map { try APIServer(log: log, configuration: try APIConfiguration(listen: $0, tokenFile: apiTokenFile)) }
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: node), .init(service: ShutdownNotice(notifier: notifier))] + (apiServer.map { [.init(service: $0)] } ?? []),
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            if let apiServer { tasks.addTask { try await announce(apiServer) } }
            tasks.addTask {
                guard let port = try? await node.listeningPort() else { return }
                try Terminal.out.line("listening \(host):\(port) node \(log.nodeKey.hex)")
                try Terminal.out.flush()
                notifier.notify("READY=1\nSTATUS=listening \(host):\(port)")
            }
            tasks.addTask {
                for await _ in hangups { await self.reload(node, logger: logger) }
            }
            try await group.run()
            tasks.cancelAll()
        }
        withExtendedLifetime(lock) {}
        logger.info("stopped")
    }

    /// The config file's settings with the flags on top.
    private func currentSettings() throws -> ServeSettings {
        var settings = try ServeSettings.load(explicit: config, dataDirectory: global.path)
        settings.override(
            listen: listen, peers: peers, metrics: metrics, reconcileInterval: reconcileInterval, idleTimeout: idleTimeout,
            handshakeTimeout: handshakeTimeout, maxInbound: maxInbound, maxInboundPerAddress: maxInboundPerAddress)
        settings.allow += allow
        if allowAny { settings.allowAny = true }
        return settings
    }

    /// SIGHUP: rereads the config file and hands the node what it can change while running;
    /// a file that does not parse leaves the running configuration as it is.
    private func reload(_ node: SyncNode, logger: Logger) async {
        do {
            let changed = await node.reload(try currentSettings().configuration())
            logger.info("reloaded configuration (SIGHUP)", metadata: ["changed": "\(changed.isEmpty ? "nothing" : changed.joined(separator: ", "))"])
        } catch {
            logger.error("could not reload the configuration; keeping the running one", metadata: ["error": "\(ErrorReport.message(for: error) ?? "\(error)")"])
        }
    }
}

/// The last service of the group, so the first to hear of a graceful shutdown: tells systemd
/// `STOPPING=1` while the node winds down.
struct ShutdownNotice: Service {
    let notifier: ServiceNotifier

    func run() async throws {
        try await gracefulShutdown()
        notifier.notify("STOPPING=1")
    }
}

/// What `cairn serve` runs with: the config file's values, then the flags on top.
struct ServeSettings: Decodable {
    var listen: String? = "127.0.0.1:7401"
    var metrics: String?
    var peers: [String] = []
    var reconcileIntervalSeconds: Double?
    var idleTimeoutSeconds: Double?
    var mergeSettleMilliseconds: Int?
    var allow: [String] = []
    var allowAny = false
    var handshakeTimeoutSeconds: Double?
    var maxInboundConnections: Int?
    var maxInboundConnectionsPerAddress: Int?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case listen, metrics, peers, allow
        case allowAny = "allow_any"
        case reconcileIntervalSeconds = "reconcile_interval_seconds"
        case idleTimeoutSeconds = "idle_timeout_seconds"
        case mergeSettleMilliseconds = "merge_settle_milliseconds"
        case handshakeTimeoutSeconds = "handshake_timeout_seconds"
        case maxInboundConnections = "max_inbound_connections"
        case maxInboundConnectionsPerAddress = "max_inbound_connections_per_address"
    }

    init() {}

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        listen = try container.decodeIfPresent(String.self, forKey: .listen) ?? listen
        metrics = try container.decodeIfPresent(String.self, forKey: .metrics)
        peers = try container.decodeIfPresent([String].self, forKey: .peers) ?? []
        reconcileIntervalSeconds = try container.decodeIfPresent(Double.self, forKey: .reconcileIntervalSeconds)
        idleTimeoutSeconds = try container.decodeIfPresent(Double.self, forKey: .idleTimeoutSeconds)
        mergeSettleMilliseconds = try container.decodeIfPresent(Int.self, forKey: .mergeSettleMilliseconds)
        allow = try container.decodeIfPresent([String].self, forKey: .allow) ?? []
        allowAny = try container.decodeIfPresent(Bool.self, forKey: .allowAny) ?? false
        handshakeTimeoutSeconds = try container.decodeIfPresent(Double.self, forKey: .handshakeTimeoutSeconds)
        maxInboundConnections = try container.decodeIfPresent(Int.self, forKey: .maxInboundConnections)
        maxInboundConnectionsPerAddress = try container.decodeIfPresent(Int.self, forKey: .maxInboundConnectionsPerAddress)
    }

    /// The settings from `explicit` (which must exist), else from `DATA-DIR/serve.json` if it
    /// exists, else the defaults. Unknown keys are refused: a typo must not be silently ignored.
    static func load(explicit: String?, dataDirectory: String) throws -> ServeSettings {
        let path = explicit ?? dataDirectory + "/serve.json"
        guard let data = FileManager.default.contents(atPath: path) else {
            if explicit != nil { throw ServeConfigError(path: path, problem: "cannot read it") }
            return ServeSettings()
        }
        guard data.count <= 1 << 20 else { throw ServeConfigError(path: path, problem: "larger than 1 MiB") }
        do {
            let object = try JSONSerialization.jsonObject(with: data)
            guard let keys = (object as? [String: Any])?.keys else { throw ServeConfigError(path: path, problem: "not a JSON object") }
            let known = Set(CodingKeys.allCases.map(\.rawValue))
            if let unknown = keys.sorted().first(where: { !known.contains($0) }) {
                throw ServeConfigError(path: path, problem: "unknown key \"\(unknown)\"")
            }
            return try JSONDecoder().decode(ServeSettings.self, from: data)
        } catch let error as ServeConfigError {
            throw error
        } catch {
            throw ServeConfigError(path: path, problem: jsonProblem(error, in: data))
        }
    }

    /// What is wrong with the file, in a user's words: where the JSON breaks (line and column),
    /// or which setting has the wrong type.
    private static func jsonProblem(_ error: any Error, in data: Data) -> String {
        if let error = error as? DecodingError {
            switch error {
            case .typeMismatch(let type, let context), .valueNotFound(let type, let context):
                return "\(settingName(context.codingPath)) should be \(typeName(type))"
            case .keyNotFound(let key, _): return "\"\(key.stringValue)\" is missing"
            case .dataCorrupted(let context): return "\(settingName(context.codingPath)): \(context.debugDescription)"
            @unknown default: return "not the expected shape"
            }
        }
        // JSONSerialization reports "… around line L, column C." or "… around character N."
        let text = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? "\(error)"
        if let range = text.range(of: #"line \d+, column \d+"#, options: .regularExpression) {
            return "not valid JSON at \(text[range]) (a missing comma, quote or bracket?)"
        }
        if let range = text.range(of: #"character \d+"#, options: .regularExpression),
            let offset = Int(text[range].dropFirst("character ".count))
        {
            let before = data.prefix(offset)
            let line = before.filter { $0 == UInt8(ascii: "\n") }.count + 1
            let column = before.count - (before.lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? 0) + 1
            return "not valid JSON at line \(line), column \(column) (a missing comma, quote or bracket?)"
        }
        return "not valid JSON (a missing comma, quote or bracket?)"
    }

    private static func settingName(_ path: [any CodingKey]) -> String {
        guard !path.isEmpty else { return "the file" }
        let name = path.reduce("") { name, key in key.intValue.map { name + "[\($0)]" } ?? (name.isEmpty ? key.stringValue : name + "." + key.stringValue) }
        return "\"" + name + "\""
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is [String].Type: "a list of strings"
        case is Double.Type, is Int.Type: "a number"
        case is Bool.Type: "true or false"
        default: "\(type)"
        }
    }

    mutating func override(
        listen: String?, peers: [String], metrics: String?, reconcileInterval: Double?, idleTimeout: Double?,
        handshakeTimeout: Double? = nil, maxInbound: Int? = nil, maxInboundPerAddress: Int? = nil
    ) {
        if let listen { self.listen = listen }
        self.peers += peers
        if let metrics { self.metrics = metrics }
        if let reconcileInterval { reconcileIntervalSeconds = reconcileInterval }
        if let idleTimeout { idleTimeoutSeconds = idleTimeout }
        if let handshakeTimeout { handshakeTimeoutSeconds = handshakeTimeout }
        if let maxInbound { maxInboundConnections = maxInbound }
        if let maxInboundPerAddress { maxInboundConnectionsPerAddress = maxInboundPerAddress }
    }

    func configuration() throws -> SyncConfiguration {
        var configuration = SyncConfiguration(listen: listen, peers: peers.map { PeerAddress(address: $0) })
        configuration.metricsListen = metrics
        if let seconds = reconcileIntervalSeconds {
            guard seconds > 0 else { throw ServeConfigError(path: "reconcile interval", problem: "must be positive") }
            configuration.reconcileInterval = .milliseconds(Int64(seconds * 1000))
        }
        if let seconds = idleTimeoutSeconds {
            guard seconds >= 1 else { throw ServeConfigError(path: "idle timeout", problem: "must be at least 1 second") }
            configuration.idleTimeout = .milliseconds(Int64(seconds * 1000))
        }
        if let milliseconds = mergeSettleMilliseconds { configuration.mergeSettle = .milliseconds(max(10, milliseconds)) }
        configuration.allow = try allow.map { text in
            guard let key = PublicKey(hex: text) else { throw ServeConfigError(path: "allow", problem: "'\(text)' is not a node key (64 hex digits)") }
            return key
        }
        if allowAny { configuration.inboundPolicy = .anyHolderOfTheSecret }
        if let seconds = handshakeTimeoutSeconds {
            guard seconds > 0 else { throw ServeConfigError(path: "handshake timeout", problem: "must be positive") }
            configuration.handshakeTimeout = .milliseconds(Int64(seconds * 1000))
        }
        if let count = maxInboundConnections {
            guard count >= 1 else { throw ServeConfigError(path: "max inbound connections", problem: "must be at least 1") }
            configuration.maxInboundConnections = count
        }
        if let count = maxInboundConnectionsPerAddress {
            guard count >= 1 else { throw ServeConfigError(path: "max inbound connections per address", problem: "must be at least 1") }
            configuration.maxInboundConnectionsPerAddress = count
        }
        return configuration
    }
}

/// A config file or setting `cairn serve` cannot use.
struct ServeConfigError: Error, CustomStringConvertible {
    let path: String
    let problem: String

    var description: String { "\(path): \(problem)" }
}
