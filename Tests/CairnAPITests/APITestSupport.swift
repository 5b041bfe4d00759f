import Cairn
import CairnAPI
import Foundation
import Logging
import ServiceLifecycle
import Testing

func temporaryPath(_ name: String = "api") -> String {
    NSTemporaryDirectory() + "cairn-api-\(name)-\(UUID().uuidString)"
}

/// A fresh log served on an ephemeral loopback port (or as `configuration` says) for the
/// duration of `body`; its directory is removed afterwards.
func withServedLog<T: Sendable>(
    name: String = "api", configuration: APIConfiguration = try! APIConfiguration(listen: "127.0.0.1:0"),
    _ body: (CairnLog, APIConfiguration.Address) async throws -> T
) async throws -> T {
    let path = temporaryPath(name)
    defer { try? FileManager.default.removeItem(atPath: path) }
    let log = try CairnLog.create(at: path, name: name)
    return try await withServedLog(log, configuration: configuration) { address in try await body(log, address) }
}

/// `log` served on an ephemeral loopback port (or `address`) for the duration of `body`; the
/// server is shut down gracefully before returning.
func withServedLog<T: Sendable>(
    _ log: CairnLog, configuration: APIConfiguration = try! APIConfiguration(listen: "127.0.0.1:0"),
    _ body: (APIConfiguration.Address) async throws -> T
) async throws -> T {
    let server = try APIServer(log: log, configuration: configuration)
    let group = ServiceGroup(services: [server], logger: Logger(label: "test"))
    return try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        defer { tasks.cancelAll() }
        let address = try await server.listeningAddress()
        let result = try await body(address)
        await group.triggerGracefulShutdown()
        try await tasks.next()
        return result
    }
}

/// The JSON object of a response body.
func jsonObject(_ reply: HTTPReply) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(reply.body)) as? [String: Any])
}
