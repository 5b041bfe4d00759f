import Cairn
import CairnAPI
import Foundation
import Testing

@Suite struct ServerTests {
    @Test func statusReportsTheLogOnAnEphemeralPort() async throws {
        try await withServedLog(name: "status") { log, address in
            guard case .tcp(_, let port) = address else { Issue.record("not TCP: \(address)"); return }
            #expect(port > 0)
            let reply = try await TestHTTP.send(.GET, "/v1/status", to: address)
            #expect(reply.status == 200)
            #expect(reply.header("Content-Type") == "application/json")
            let status = try jsonObject(reply)
            #expect(status["log"] as? String == log.logID.hex)
            #expect(status["name"] as? String == "status")
            #expect(status["entries"] as? Int == 1)
        }
    }

    @Test func unknownPathIsAProblemDocument() async throws {
        try await withServedLog { _, address in
            let reply = try await TestHTTP.send(.GET, "/v1/nothing-here", to: address)
            #expect(reply.status == 404)
            #expect(reply.header("Content-Type") == "application/problem+json")
            let problem = try jsonObject(reply)
            #expect(problem["type"] as? String == "https://cairn.dev/problems/notFound")
            #expect(problem["status"] as? Int == 404)
        }
    }

    @Test func servesOnAUnixSocket() async throws {
        let socket = temporaryPath("sock")
        defer { try? FileManager.default.removeItem(atPath: socket) }
        try await withServedLog(configuration: try APIConfiguration(listen: "unix:" + socket)) { _, address in
            #expect(address == .unix(path: socket))
            let reply = try await TestHTTP.send(.GET, "/v1/status", to: address)
            #expect(reply.status == 200)
        }
    }

    @Test func aNonLoopbackAddressNeedsAToken() async throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try CairnLog.create(at: path, name: "token")
        #expect(throws: APIConfigurationError.tokenRequired("0.0.0.0:7480")) {
            try APIServer(log: log, configuration: try APIConfiguration(listen: "0.0.0.0:7480"))
        }
    }

    @Test func aTokenFileIsCreatedPrivateAndRequired() async throws {
        let tokenFile = temporaryPath("token")
        defer { try? FileManager.default.removeItem(atPath: tokenFile) }
        try await withServedLog(configuration: try APIConfiguration(listen: "127.0.0.1:0", tokenFile: tokenFile)) { _, address in
            let mode = try #require(try FileManager.default.attributesOfItem(atPath: tokenFile)[.posixPermissions] as? Int)
            #expect(mode == 0o600)
            let token = try String(contentsOfFile: tokenFile, encoding: .utf8)
            let refused = try await TestHTTP.send(.GET, "/v1/status", to: address)
            #expect(refused.status == 401)
            #expect(try jsonObject(refused)["type"] as? String == "https://cairn.dev/problems/unauthorized")
            let wrong = try await TestHTTP.send(.GET, "/v1/status", to: address, headers: [("Authorization", "Bearer x" + token.dropFirst())])
            #expect(wrong.status == 401)
            let admitted = try await TestHTTP.send(.GET, "/v1/status", to: address, headers: [("Authorization", "Bearer " + token)])
            #expect(admitted.status == 200)
        }
    }
}
