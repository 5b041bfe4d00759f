import ArgumentParser
import Cairn
import CairnAPI
import Logging
import ServiceLifecycle

/// `cairn api`: the local JSON HTTP API alone, without sync (`cairn serve --api` runs it beside
/// the sync node).
struct APICommand: CairnCommand {
    static let configuration = CommandConfiguration(
        commandName: "api",
        abstract: "Serve the local JSON HTTP API (put, get, compare-and-set, list, feed, bundles) without sync.",
        discussion: """
            Endpoints are described by docs/openapi.yaml; README.md shows a curl example of each. \
            Once bound, prints `api listening ADDRESS` on stdout. Loopback and unix: addresses \
            need no token; any other address needs --token-file (created with a random token, \
            mode 0600, if missing), and clients send `Authorization: Bearer TOKEN`. Stops cleanly \
            on SIGINT or SIGTERM. Other processes (cairn put, cairn serve) may use the log meanwhile.

            EXAMPLES:
              cairn api
              cairn api --listen unix:/run/cairn/api.sock
              cairn api --listen 0.0.0.0:7480 --token-file /etc/cairn/api.token
            """)

    @OptionGroup var global: GlobalOptions

    @Option(help: ArgumentHelp("HOST:PORT or unix:PATH (port 0 picks a free port).", valueName: "address"))
    var listen = "127.0.0.1:\(APIConfiguration.defaultPort)"

    @Option(help: ArgumentHelp("The bearer token file (created, mode 0600, if missing); required off loopback.", valueName: "path"))
    var tokenFile: String?

    func run() async throws {
        let log = try global.open()
        let logger = Logger(label: "cairn.api")
        let server = try APIServer(log: log, configuration: try APIConfiguration(listen: listen, tokenFile: tokenFile), logger: logger)
        let group = ServiceGroup(
            configuration: .init(services: [.init(service: server)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await announce(server) }
            try await group.run()
            tasks.cancelAll()
        }
    }
}

/// Prints `api listening ADDRESS` once `server` is bound (what scripts and tests wait for).
func announce(_ server: APIServer) async throws {
    let address = try await server.listeningAddress()
    try Terminal.out.line("api listening \(address)")
    try Terminal.out.flush()
}
