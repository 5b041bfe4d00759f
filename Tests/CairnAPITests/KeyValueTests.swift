import Cairn
import CairnAPI
import Foundation
import NIOHTTP1
import Testing

@Suite struct KeyValueTests {
    @Test func putThenGetReturnsTheBytesWithDigestETagAndEntry() async throws {
        try await withServedLog { log, address in
            let value = Array("s3://bucket/orders-42.parquet".utf8)
            let put = try await TestHTTP.send(.PUT, "/v1/kv/tables/orders", to: address, body: value)
            #expect(put.status == 200)
            let entry = try #require(put.header("Cairn-Entry"))
            let got = try await TestHTTP.send(.GET, "/v1/kv/tables/orders", to: address)
            #expect(got.status == 200)
            #expect(got.body == value)
            #expect(got.header("Content-Type") == "application/octet-stream")
            #expect(got.header("Cairn-Entry") == entry)
            let state = try #require(try await log.state("tables", "orders"))
            #expect(got.header("ETag") == "\"\(try #require(state.value).digest.hex)\"")
            #expect(state.entryID.hex == entry)

            let unchanged = try await TestHTTP.send(.GET, "/v1/kv/tables/orders", to: address, headers: [("If-None-Match", try #require(got.header("ETag")))])
            #expect(unchanged.status == 304)
            #expect(unchanged.body.isEmpty)
            let changed = try await TestHTTP.send(.GET, "/v1/kv/tables/orders", to: address, headers: [("If-None-Match", "\"00\"")])
            #expect(changed.status == 200)
        }
    }

    @Test func keysMayHoldSlashesRawOrPercentEncoded() async throws {
        try await withServedLog { log, address in
            #expect(try await TestHTTP.send(.PUT, "/v1/kv/t/a/b%2Fc%20d", to: address, body: [1]).status == 200)
            #expect(try await log.get("t", "a/b/c d") == [1])
            let got = try await TestHTTP.send(.GET, "/v1/kv/t/a%2Fb/c%20d", to: address)
            #expect(got.body == [1])
        }
    }

    @Test func compareAndSetWritesOnlyOverTheEntryNamed() async throws {
        try await withServedLog { log, address in
            let created = try await TestHTTP.send(.PUT, "/v1/kv/m/manifest", to: address, headers: [("If-None-Match", "*")], body: [1])
            #expect(created.status == 201)
            let first = try #require(created.header("Cairn-Entry"))
            let again = try await TestHTTP.send(.PUT, "/v1/kv/m/manifest", to: address, headers: [("If-None-Match", "*")], body: [9])
            #expect(again.status == 412)

            let next = try await TestHTTP.send(.PUT, "/v1/kv/m/manifest", to: address, headers: [("If-Match", "\"\(first)\"")], body: [2])
            #expect(next.status == 200)
            let second = try #require(next.header("Cairn-Entry"))

            let stale = try await TestHTTP.send(.PUT, "/v1/kv/m/manifest", to: address, headers: [("If-Match", first)], body: [9])
            #expect(stale.status == 412)
            #expect(stale.header("Content-Type") == "application/problem+json")
            let problem = try jsonObject(stale)
            #expect(problem["type"] as? String == "https://cairn.dev/problems/conditionFailed")
            #expect(problem["current_entry"] as? String == second)
            #expect(try await log.get("m", "manifest") == [2])
            #expect(try await log.history("m", "manifest").versions.count == 2)

            let deleted = try await TestHTTP.send(.DELETE, "/v1/kv/m/manifest", to: address, headers: [("If-Match", second)])
            #expect(deleted.status == 200)
            #expect(try await TestHTTP.send(.GET, "/v1/kv/m/manifest", to: address).status == 404)
        }
    }

    /// Engines racing to advance one manifest over HTTP: exactly one write wins per version.
    @Test func concurrentCompareAndSetsOverHTTPHaveOneWinner() async throws {
        try await withServedLog { log, address in
            let base = try await log.put("m", "manifest", [0]).id.hex
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for client in 0..<8 {
                    group.addTask {
                        try await TestHTTP.send(.PUT, "/v1/kv/m/manifest", to: address, headers: [("If-Match", base)], body: [UInt8(client + 1)]).status
                    }
                }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(statuses.sorted() == [200] + Array(repeating: 412, count: 7))
            #expect(try await log.history("m", "manifest").versions.count == 2)
        }
    }

    @Test func listPagesThroughKeysWithPrefixAndCursor() async throws {
        try await withServedLog { log, address in
            let keys = (0..<25).map { String(format: "orders/%02d", $0) }
            try await log.write(keys.map { .put(bucket: "t", key: $0, value: [1]) } + [.put(bucket: "t", key: "other", value: [2])])
            var seen: [String] = []
            var cursor: String?
            repeat {
                let target = "/v1/kv/t?prefix=orders/&limit=10" + (cursor.map { "&cursor=" + ($0.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "") } ?? "")
                let page = try jsonObject(try await TestHTTP.send(.GET, target, to: address))
                let entries = try #require(page["keys"] as? [[String: Any]])
                #expect(entries.count <= 10)
                seen += entries.compactMap { $0["key"] as? String }
                cursor = page["next_cursor"] as? String
            } while cursor != nil
            #expect(seen == keys)
        }
    }

    @Test func badRequestsAreProblemDocumentsAndChangeNothing() async throws {
        try await withServedLog { log, address in
            let before = try await log.counts().entries
            let cases: [(HTTPMethod, String, [(String, String)], Int, String)] = [
                (.PUT, "/v1/kv/t/k", [("If-Match", "not-an-entry")], 400, "invalidRequest"),
                (.PUT, "/v1/kv/t/k", [("If-None-Match", "\"abc\"")], 400, "invalidRequest"),
                (.GET, "/v1/kv/t?limit=0", [], 400, "invalidRequest"),
                (.GET, "/v1/kv/t/%ZZ", [], 400, "invalidRequest"),
                (.DELETE, "/v1/kv/t/never-written", [], 404, "notFound"),
                (.GET, "/v1/kv/t/never-written", [], 404, "notFound"),
                (.GET, "/v1/changes?follow=maybe", [], 400, "invalidRequest"),
            ]
            for (method, target, headers, status, code) in cases {
                let reply = try await TestHTTP.send(method, target, to: address, headers: headers, body: method == .PUT ? [1] : [])
                #expect(reply.status == status, "\(method) \(target)")
                #expect(reply.header("Content-Type") == "application/problem+json", "\(method) \(target)")
                #expect(try jsonObject(reply)["type"] as? String == "https://cairn.dev/problems/" + code, "\(method) \(target)")
            }
            #expect(try await log.counts().entries == before)
        }
    }

    @Test func oversizedValuesAreRefusedWithoutWriting() async throws {
        var limits = APIConfiguration.Limits()
        limits.maxValueBytes = 1024
        try await withServedLog(configuration: try APIConfiguration(listen: "127.0.0.1:0", limits: limits)) { log, address in
            let reply = try await TestHTTP.send(.PUT, "/v1/kv/t/big", to: address, body: Array(repeating: 7, count: 4096))
            #expect(reply.status == 413)
            #expect(try jsonObject(reply)["type"] as? String == "https://cairn.dev/problems/tooLarge")
            #expect(try await log.state("t", "big") == nil)
            #expect(try await TestHTTP.send(.PUT, "/v1/kv/t/small", to: address, body: Array(repeating: 7, count: 1024)).status == 200)
        }
    }

    @Test func headsWritersAndStatusDescribeTheLog() async throws {
        try await withServedLog { log, address in
            let entry = try await log.put("t", "k", [1])
            let heads = try #require(try jsonObject(try await TestHTTP.send(.GET, "/v1/heads", to: address))["heads"] as? [[String: Any]])
            #expect(heads.map { $0["id"] as? String } == [entry.id.hex])
            let writers = try #require(try jsonObject(try await TestHTTP.send(.GET, "/v1/writers", to: address))["writers"] as? [[String: Any]])
            #expect(writers.map { $0["key"] as? String } == [log.nodeKey.hex])
            #expect(writers.first?["role"] as? String == "admin")
            #expect(try jsonObject(try await TestHTTP.send(.GET, "/v1/status", to: address))["last_cursor"] as? Int == 2)
        }
    }
}
