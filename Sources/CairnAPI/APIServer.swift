import Cairn
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// Cairn's local JSON HTTP API over one log, on Hummingbird 2: key-value reads and writes with
/// ETags and compare-and-set, listing, heads, status, writers, bundles, and the change feed.
/// A swift-service-lifecycle `Service`: run it alone or in the same `ServiceGroup` as a
/// `SyncNode` (as `cairn serve --api` does).
///
/// ```swift
/// let server = try APIServer(log: log, configuration: try APIConfiguration(listen: "127.0.0.1:0"))
/// let group = ServiceGroup(services: [server], logger: logger)
/// Task { try await group.run() }
/// let address = try await server.listeningAddress()   // the port picked
/// ```
///
/// Endpoints and their documents: `docs/openapi.yaml`.
public struct APIServer: Service {
    let log: CairnLog
    let configuration: APIConfiguration
    let token: BearerToken?
    let logger: Logger
    private let bound = ListeningLatch()

    /// Checks the configuration and loads (or creates) the token file; binds nothing yet.
    ///
    /// - Throws: ``APIConfigurationError/tokenRequired(_:)`` when the address is not local and
    ///   no token file is given; ``APIConfigurationError/badTokenFile(path:problem:)``.
    public init(log: CairnLog, configuration: APIConfiguration, logger: Logger = Logger(label: "cairn.api")) throws(APIConfigurationError) {
        if configuration.tokenFile == nil, !configuration.address.isLocal {
            throw .tokenRequired(configuration.address.description)
        }
        self.token = try configuration.tokenFile.map { path throws(APIConfigurationError) in try BearerToken.loadOrCreate(path: path) }
        self.log = log
        self.configuration = configuration
        self.logger = logger
    }

    /// Serves until graceful shutdown (or cancellation).
    ///
    /// - Throws: what binding the address throws (in use, no permission).
    public func run() async throws {
        let bound = self.bound
        let application = Application(
            router: makeRouter(),
            server: .http1(configuration: .init(httpDecoderConfiguration: .init(
                maxHeaderFieldSize: configuration.limits.maxHeaderBytes, maxHeaderListSize: configuration.limits.maxHeaderBytes,
                maxHeaderFieldCount: configuration.limits.maxHeaderCount))),
            configuration: .init(address: bindAddress, serverName: "cairn/\(CairnVersion.string)"),
            onServerRunning: { channel in bound.open(with: Self.address(of: channel, configured: self.configuration.address)) },
            logger: logger)
        do {
            try await application.run()
            bound.fail(with: CancellationError())
        } catch {
            bound.fail(with: error)
            throw error
        }
    }

    /// The address the server listens on (with the port the system picked for port 0), once
    /// it does.
    ///
    /// - Throws: the error the server stopped with if it could not bind, `CancellationError`
    ///   if it stopped first.
    public func listeningAddress() async throws -> APIConfiguration.Address {
        try await bound.wait()
    }

    private var bindAddress: BindAddress {
        switch configuration.address {
        case .tcp(let host, let port): .hostname(host, port: port)
        case .unix(let path): .unixDomainSocket(path: path)
        }
    }

    private static func address(of channel: any Channel, configured: APIConfiguration.Address) -> APIConfiguration.Address {
        guard case .tcp(let host, _) = configured, let port = channel.localAddress?.port else { return configured }
        return .tcp(host: host, port: port)
    }

    /// The API's routes, then the audit view's, behind the problem-document and token checks.
    func makeRouter() -> APIRouter {
        let router = APIRouter(context: APIRequestContext.self)
        router.add(middleware: ProblemMiddleware<APIRequestContext>())
        if let token { router.add(middleware: AuthMiddleware(token: token)) }
        let routes = Routes(log: log, limits: configuration.limits)
        routes.register(on: router)
        registerAuditRoutes(on: router, log: log)
        return router
    }
}

/// Holds the server's address once it is bound, for whoever asks before or after.
private final class ListeningLatch: Sendable {
    private enum State {
        case waiting([CheckedContinuation<APIConfiguration.Address, any Error>])
        case open(APIConfiguration.Address)
        case failed(any Error)
    }

    private let state = Mutex(State.waiting([]))

    func open(with address: APIConfiguration.Address) { settle(.open(address)) }
    func fail(with error: any Error) { settle(.failed(error)) }

    private func settle(_ outcome: State) {
        let waiters = state.withLock { state -> [CheckedContinuation<APIConfiguration.Address, any Error>] in
            guard case .waiting(let waiters) = state else { return [] }
            state = outcome
            return waiters
        }
        for waiter in waiters {
            switch outcome {
            case .open(let address): waiter.resume(returning: address)
            case .failed(let error): waiter.resume(throwing: error)
            case .waiting: break
            }
        }
    }

    func wait() async throws -> APIConfiguration.Address {
        try await withCheckedThrowingContinuation { continuation in
            let outcome = state.withLock { state -> State? in
                guard case .waiting(let waiters) = state else { return state }
                state = .waiting(waiters + [continuation])
                return nil
            }
            switch outcome {
            case .open(let address)?: continuation.resume(returning: address)
            case .failed(let error)?: continuation.resume(throwing: error)
            case .waiting?, nil: break
            }
        }
    }
}
