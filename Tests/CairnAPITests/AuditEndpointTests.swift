import Cairn
import CairnAPI
import CairnTestSupport
import Foundation
import Testing

/// The audit view's endpoints over a real socket, on a generated log with branches, merges and
/// a revoked writer (``AuditTestLog``).
@Suite("Audit view endpoints")
struct AuditEndpointTests {
    /// One generated log per test; the seed is printed so a failure can be replayed.
    private func withAuditLog<T: Sendable>(_ body: (AuditTestLog, APIConfiguration.Address) async throws -> T) async throws -> T {
        let seed = randomizedTestSeed("AuditEndpointTests")
        let root = temporaryPath("audit")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let generated = try await AuditTestLog.make(root: root, seed: seed, steps: 120)
        return try await withServedLog(generated.log) { address in try await body(generated, address) }
    }

    @Test func windowsWalkTheWholeLogNewestFirstWithParentsAndDecisions() async throws {
        try await withAuditLog { generated, address in
            var all = LogFilter()
            all.newestFirst = true
            let expected = try await generated.log.log(all)
            var rows: [[String: Any]] = []
            var target = "/v1/log?limit=25"
            while true {
                let page = try jsonObject(try await TestHTTP.send(.GET, target, to: address))
                let entries = try #require(page["entries"] as? [[String: Any]])
                rows += entries
                guard let next = page["next"] as? String else { break }
                #expect(entries.count == 25)
                target = "/v1/log?limit=25&before=\(next)"
            }
            let ids: [String] = rows.compactMap { $0["id"] as? String }
            let parents: [[String]] = rows.map { $0["parents"] as? [String] ?? [] }
            #expect(ids == expected.map { $0.entry.id.hex })
            #expect(parents == expected.map { $0.entry.parents.map(\.hex) })
            for (row, stored) in zip(rows, expected) {
                #expect(row["author"] as? String == stored.entry.author.hex)
                #expect(row["inert"] as? Bool == stored.inert)
                if case .merge(let decisions) = stored.entry.payload {
                    let documented: [[String: Any]] = row["decisions"] as? [[String: Any]] ?? []
                    let winners: [String] = documented.compactMap { $0["winner"] as? String }
                    #expect(winners == decisions.map { $0.winner.hex })
                    #expect(row["first_parent"] as? String != nil)
                } else {
                    #expect(row["decisions"] == nil)
                }
            }
        }
    }

    @Test func badWindowQueriesAreProblemDocuments() async throws {
        try await withAuditLog { _, address in
            for target in ["/v1/log?limit=0", "/v1/log?limit=1001", "/v1/log?limit=x", "/v1/log?before=12", "/v1/log?before=1-zz"] {
                let reply = try await TestHTTP.send(.GET, target, to: address)
                #expect(reply.status == 400, "\(target)")
                #expect(reply.header("content-type") == "application/problem+json", "\(target)")
                let type: String = try jsonObject(reply)["type"] as? String ?? ""
                #expect(type.hasPrefix("https://cairn.dev/problems/"))
            }
            // A cursor beyond every HLC (2^64 − 1) reads from the newest entry; it once trapped
            // the server converting the bound to SQLite's signed integer.
            let beyond = try await TestHTTP.send(.GET, "/v1/log?limit=2&before=18446744073709551615-\(String(repeating: "f", count: 64))", to: address)
            #expect(beyond.status == 200)
            #expect(try await TestHTTP.send(.GET, "/v1/status", to: address).status == 200, "still serving")
        }
    }

    @Test func anEntryInFullWithItsVerification() async throws {
        try await withAuditLog { generated, address in
            var filter = LogFilter()
            filter.limit = 50
            let stored = try #require(try await generated.log.log(filter).first { $0.entry.kind == .put })
            let reply = try await TestHTTP.send(.GET, "/v1/entries/\(stored.entry.id.hex.prefix(10))", to: address)
            #expect(reply.status == 200)
            let entry = try jsonObject(reply)
            #expect(entry["id"] as? String == stored.entry.id.hex)
            #expect(entry["signature"] as? String == stored.entry.signature.map { String(format: "%02x", $0) }.joined())
            #expect(entry["seq"] as? Int == Int(stored.seq))
            let value = try #require(entry["value"] as? [String: Any])
            #expect(value["state"] as? String == "present")
            let verification = try #require(entry["verification"] as? [String: Any])
            #expect(verification["id_matches_body"] as? Bool == true)
            #expect(verification["signature_valid"] as? Bool == true)
            #expect(verification["parents_present"] as? Bool == true)

            let missing = try await TestHTTP.send(.GET, "/v1/entries/\(String(repeating: "0", count: 64))", to: address)
            #expect(missing.status == 404)
            #expect(missing.header("content-type") == "application/problem+json")
        }
    }

    @Test func anAmbiguousPrefixListsItsCandidates() async throws {
        let root = temporaryPath("ambiguous")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let log = try CairnLog.create(at: root, name: "ambiguous")
        // Write until two ids share their first 4 hex digits (a few hundred entries, by the
        // birthday bound on 65,536 prefixes).
        var byPrefix: [String: [Hash32]] = [:]
        var shared: String?
        for batch in 0..<50 where shared == nil {
            let writes: [LocalWrite] = (0..<100).map { (index: Int) -> LocalWrite in
                LocalWrite.put(bucket: "b", key: "k\(batch)-\(index)", value: [UInt8(index)])
            }
            let written = try await log.write(writes)
            for entry in written {
                let prefix = String(entry.id.hex.prefix(4))
                byPrefix[prefix, default: []].append(entry.id)
                if byPrefix[prefix]!.count > 1 { shared = prefix }
            }
        }
        let prefix = try #require(shared)
        try await withServedLog(log) { address in
            let reply = try await TestHTTP.send(.GET, "/v1/entries/\(prefix)", to: address)
            #expect(reply.status == 400)
            let problem = try jsonObject(reply)
            #expect(problem["type"] as? String == "https://cairn.dev/problems/ambiguous")
            let candidates = try #require(problem["candidates"] as? [[String: Any]])
            let listed: Set<String> = Set(candidates.compactMap { $0["id"] as? String })
            let sharing: [Hash32] = byPrefix[prefix] ?? []
            #expect(listed == Set(sharing.map(\.hex)))
        }
    }

    @Test func aKeyHistoryNamesTheWinnerAndTheLosers() async throws {
        try await withAuditLog { generated, address in
            // The key most merges decided about (keys hold a slash: k3/v).
            var filter = LogFilter()
            filter.newestFirst = false
            var decided: [String: Int] = [:]
            for stored in try await generated.log.log(filter) {
                guard case .merge(let decisions) = stored.entry.payload else { continue }
                for decision in decisions { decided["\(decision.bucket)\n\(decision.key)", default: 0] += 1 }
            }
            let path = try #require(decided.max { $0.value < $1.value }?.key).split(separator: "\n").map(String.init)
            let (bucket, key) = (path[0], path[1])
            let history = try await generated.log.history(bucket, key)
            for target in ["/v1/keys/\(bucket)/\(key)/history", "/v1/keys/\(bucket)/\(key.replacingOccurrences(of: "/", with: "%2F"))/history"] {
                let document = try jsonObject(try await TestHTTP.send(.GET, target, to: address))
                #expect(document["key"] as? String == key, "\(target)")
                #expect(document["winner"] as? String == history.winner?.hex)
                let versions = try #require(document["versions"] as? [[String: Any]])
                let ids: [String] = versions.compactMap { $0["id"] as? String }
                #expect(ids == history.versions.map { $0.entry.id.hex })
                let winners: [String] = versions.compactMap { $0["status"] as? String }.filter { $0 == "winner" }
                #expect(winners.count == 1)
                let losers: Set<String> = Set(versions.filter { $0["status"] as? String == "loser" }.compactMap { $0["id"] as? String })
                var recorded: Set<Hash32> = history.concurrentLosers
                if let winner = history.winner { recorded.remove(winner) }
                #expect(losers == Set(recorded.map(\.hex)))
                let merges: [Any] = document["merges"] as? [Any] ?? []
                #expect(merges.count == history.merges.count)
            }
            let never = try jsonObject(try await TestHTTP.send(.GET, "/v1/keys/\(bucket)/never-written/history", to: address))
            #expect(never["winner"] == nil)
            let noVersions: [Any] = never["versions"] as? [Any] ?? [0]
            #expect(noVersions.isEmpty)
        }
    }

    @Test func theWriterSetOverTimeShowsTheRevocation() async throws {
        try await withAuditLog { _, address in
            let document = try jsonObject(try await TestHTTP.send(.GET, "/v1/writers/history", to: address))
            let events = try #require(document["events"] as? [[String: Any]])
            let kinds: [String] = events.compactMap { $0["kind"] as? String }
            #expect(kinds == ["genesis", "add-writer", "add-writer", "revoke-writer"])
            #expect(events.allSatisfy { $0["took_effect"] as? Bool == true })
            let now = try jsonObject(try await TestHTTP.send(.GET, "/v1/writers", to: address))
            let writers = try #require(now["writers"] as? [[String: Any]])
            let revoked = writers.filter { !($0["revoked_from"] is NSNull) }
            #expect(revoked.count == 1)
            let changes = try #require(events.last?["changes"] as? [[String: Any]])
            let revokedKey: String? = revoked.first?["key"] as? String
            #expect(changes.first?["key"] as? String == revokedKey)
        }
    }

    @Test func peersShowWhatSyncRecorded() async throws {
        let root = temporaryPath("peers")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let log = try CairnLog.create(at: root, name: "peers")
        let known = SigningKey.generate().publicKey, dialledIn = SigningKey.generate().publicKey
        try await log.addPeer(PeerAddress(address: "10.0.0.2:7470"))
        var status = PeerStatus(identity: known, address: "10.0.0.2:7470", state: "synced")
        status.lastSyncMilliseconds = 1_764_000_000_000
        status.lagEntries = 12
        try await log.savePeerStatus(status)
        try await log.savePeerStatus(PeerStatus(identity: dialledIn, address: "10.0.0.3:40000", state: "connected"))
        try await withServedLog(log) { address in
            let peers = try #require(try jsonObject(try await TestHTTP.send(.GET, "/v1/sync/peers", to: address))["peers"] as? [[String: Any]])
            let addresses: [String] = peers.compactMap { $0["address"] as? String }
            #expect(addresses == ["10.0.0.2:7470", "10.0.0.3:40000"], "listed peers first, then peers that only dialled in")
            #expect(peers.first?["identity"] as? String == known.hex)
            #expect(peers.first?["state"] as? String == "synced")
            #expect(peers.first?["lag_entries"] as? Int == 12)
            #expect(peers.first?["last_sync"] as? String == "2025-11-24T16:00:00.000Z")
            #expect(peers.last?["identity"] as? String == dialledIn.hex)
        }
    }

    @Test func verifyRunsAsAJobWithProgress() async throws {
        try await withAuditLog { generated, address in
            let started = try await TestHTTP.send(.POST, "/v1/verify", to: address)
            #expect(started.status == 202)
            let job = try #require(try jsonObject(started)["job"] as? String)
            #expect(started.header("location") == "/v1/verify/\(job)")
            // Follow the job until it ends, as the page does (bounded: a check of a few hundred
            // entries takes milliseconds).
            var document: [String: Any] = [:]
            for _ in 0..<2000 {
                document = try jsonObject(try await TestHTTP.send(.GET, "/v1/verify/\(job)", to: address))
                if document["state"] as? String != "running" { break }
                try await Task.sleep(for: .milliseconds(10))
            }
            let entryCount: Int = try await generated.log.counts().entries
            let problems: [Any] = document["problems"] as? [Any] ?? [0]
            let checked: Int = document["checked"] as? Int ?? -1
            let total: Int = document["total"] as? Int ?? -2
            #expect(document["state"] as? String == "done")
            #expect(document["entries_checked"] as? Int == entryCount)
            #expect(problems.isEmpty)
            #expect(checked == total)

            let unknown = try await TestHTTP.send(.GET, "/v1/verify/999", to: address)
            #expect(unknown.status == 404)
        }
    }

    @Test func thePageIsServedAtTheRootWithContentTypes() async throws {
        try await withAuditLog { _, address in
            let files: [(path: String, type: String)] = [
                ("/", "text/html"), ("/index.html", "text/html"), ("/app.js", "javascript"), ("/style.css", "text/css"),
            ]
            for (path, type) in files {
                let reply = try await TestHTTP.send(.GET, path, to: address)
                #expect(reply.status == 200, "\(path)")
                #expect(reply.header("content-type")?.contains(type) == true, "\(path): \(reply.header("content-type") ?? "none")")
                #expect(reply.header("cache-control") == "no-cache", "\(path)")
                #expect(reply.header("etag") != nil, "\(path)")
            }
            #expect(try await TestHTTP.send(.GET, "/", to: address).text.contains("<script src=\"app.js\">"))
            let missing = try await TestHTTP.send(.GET, "/no-such-file.js", to: address)
            #expect(missing.status == 404)
            #expect(missing.header("content-type") == "application/problem+json")
        }
    }
}
