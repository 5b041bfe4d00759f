import Cairn
import CairnAPI
import Foundation
import Testing

@Suite struct APIBundleTests {
    @Test func aBundleExportedFromOneServerImportsIntoAnother() async throws {
        let (bundle, genesis) = try await withServedLog(name: "source") { log, address in
            try await log.write((0..<100).map { .put(bucket: "t", key: "k\($0)", value: Array("v\($0)".utf8)) })
            let reply = try await TestHTTP.send(.GET, "/v1/bundle", to: address)
            #expect(reply.status == 200)
            #expect(reply.header("Content-Type") == "application/vnd.cairn.bundle")
            return (reply.body, try await log.genesis)
        }
        // A new node of the same log, holding only the genesis; the rest comes through the API.
        let path = temporaryPath("replica")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let replica = try CairnLog.join(at: path, genesis: genesis)
        let imported = try await withServedLog(replica) { address in
            let reply = try await TestHTTP.send(.POST, "/v1/bundle", to: address, body: bundle)
            #expect(reply.status == 200)
            return try jsonObject(reply)["entries"] as? Int
        }
        #expect(imported == 101)
        #expect(try await replica.get("t", "k42") == Array("v42".utf8))
    }

    @Test func aDamagedBundleIsRefusedAndNothingChanges() async throws {
        try await withServedLog { log, address in
            try await log.put("t", "k", [1])
            var bundle = try await TestHTTP.send(.GET, "/v1/bundle", to: address).body
            let entries = try await log.counts().entries
            bundle[bundle.count - 40] ^= 0xff
            let reply = try await TestHTTP.send(.POST, "/v1/bundle", to: address, body: bundle)
            #expect(reply.status == 422)
            #expect(try jsonObject(reply)["type"] as? String == "https://cairn.dev/problems/refused")
            #expect(try await log.counts().entries == entries)
        }
    }
}
