import CairnCore
import CairnStore
import ArgumentParser
import Cairn
import CairnSync
import Foundation
import Logging
import ServiceLifecycle

/// `cairn serve`: the sync daemon.
struct ServeCommand: CairnCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the sync node: accept peers, dial peers, push, fetch and reconcile until stopped.",
        discussion: """
            Peers come from --peer, the config file, and the log's peer list (`cairn peers add`, \
            reread every second). Sessions are Noise XXpsk3 keyed by the log's network secret \
            (network.key). Once listening, prints `listening HOST:PORT node KEY` on stdout. Stops \
            cleanly on SIGINT or SIGTERM. Logs go to stderr (info; --verbose for debug).

            The optional config file (--config, default DATA-DIR/serve.json if present) is JSON with \
            any of: "listen", "metrics", "peers" (["host:port", ...]), "reconcile_interval_seconds", \
            "idle_timeout_seconds", "merge_settle_milliseconds", "allow" (["KEY", ...]), "allow_any". \
            Flags override it.

            Inbound peers must hold the network secret and, by default, a key in the log's writer \
            set (or pinned in the peer list). Read-only nodes are not in the writer set: admit them \
            with --allow KEY (or "allow"), or admit every holder of the secret with --allow-any.
            """)

    @OptionGroup var global: GlobalOptions

    @Option(help: ArgumentHelp("Accept peers on this address (port 0 picks a free port). Default: 127.0.0.1:7401.", valueName: "host:port"))
    var listen: String?

    @Option(name: .customLong("peer"), help: ArgumentHelp("Dial this peer too (repeatable).", valueName: "host:port"))
    var peers: [String] = []

    @Option(help: ArgumentHelp("Serve Prometheus metrics at http://HOST:PORT/metrics.", valueName: "host:port"))
    var metrics: String?

    @Option(help: ArgumentHelp("Seconds between anti-entropy rounds with each peer (jittered ±20%). Default: 30.", valueName: "seconds"))
    var reconcileInterval: Double?

    @Option(help: ArgumentHelp("Drop a peer silent this many seconds. Default: 30.", valueName: "seconds"))
    var idleTimeout: Double?

    @Option(help: ArgumentHelp("A JSON config file.", valueName: "path"))
    var config: String?

    @Option(name: .customLong("allow"), help: ArgumentHelp("Admit inbound peers with this node key besides the writer set, e.g. a read-only node (repeatable).", valueName: "key"))
    var allow: [String] = []

    @Flag(name: .customLong("allow-any"), help: "Admit any inbound peer that holds the network secret.")
    var allowAny = false

    func run() async throws {
        let log = try global.open()
        var settings = try ServeSettings.load(explicit: config, dataDirectory: global.path)
        settings.override(listen: listen, peers: peers, metrics: metrics, reconcileInterval: reconcileInterval, idleTimeout: idleTimeout)
        settings.allow += allow
        if allowAny { settings.allowAny = true }
        let logger = Logger(label: "cairn.sync")
        let node = try SyncNode(log: log, configuration: try settings.configuration(), logger: logger)
        let host = settings.listen.map { String($0[..<($0.lastIndex(of: ":") ?? $0.endIndex)]) } ?? "127.0.0.1"
        let group = ServiceGroup(
            configuration: .init(services: [.init(service: node)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask {
                guard let port = try? await node.listeningPort() else { return }
                try Terminal.out.line("listening \(host):\(port) node \(log.nodeKey.hex)")
                try Terminal.out.flush()
            }
            try await group.run()
            try await tasks.waitForAll()
        }
        logger.info("stopped")
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

    enum CodingKeys: String, CodingKey, CaseIterable {
        case listen, metrics, peers, allow
        case allowAny = "allow_any"
        case reconcileIntervalSeconds = "reconcile_interval_seconds"
        case idleTimeoutSeconds = "idle_timeout_seconds"
        case mergeSettleMilliseconds = "merge_settle_milliseconds"
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
            throw ServeConfigError(path: path, problem: "not valid JSON of the expected shape (\(error))")
        }
    }

    mutating func override(listen: String?, peers: [String], metrics: String?, reconcileInterval: Double?, idleTimeout: Double?) {
        if let listen { self.listen = listen }
        self.peers += peers
        if let metrics { self.metrics = metrics }
        if let reconcileInterval { reconcileIntervalSeconds = reconcileInterval }
        if let idleTimeout { idleTimeoutSeconds = idleTimeout }
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
        return configuration
    }
}

/// A config file or setting `cairn serve` cannot use.
struct ServeConfigError: Error, CustomStringConvertible {
    let path: String
    let problem: String

    var description: String { "\(path): \(problem)" }
}
