import CairnCore
import CairnStore
import Cairn
import Foundation
import Testing

@Suite("cairn: network secret, invite, join, peers, peer status")
struct PeerCommandTests {
    @Test func initCreatesAPrivateNetworkKey() throws {
        let sandbox = try Sandbox()
        let node = try sandbox.initLog()
        var info = stat()
        #expect(stat(node.dataDir + "/network.key", &info) == 0 && info.st_mode & 0o777 == 0o600)
        let text = try String(contentsOfFile: node.dataDir + "/network.key", encoding: .utf8)
        #expect(text.count == 65 && text.hasSuffix("\n"))
        #expect(try node.statusJSON()["network_secret"] as? String == "present")
        let secret = text.trimmingCharacters(in: .newlines)
        for output in [try node.ok("status"), try node.ok("status", "--json"), try node.ok("log"), try node.ok("writers")] {
            #expect(!output.contains(secret))
        }
    }

    @Test func inviteThenJoinMakesAWriterThatDialsTheInviter() throws {
        let sandbox = try Sandbox()
        let a = try sandbox.initLog("a")
        let invite = try a.run("invite", "--address", "127.0.0.1:7401")
        #expect(invite.status == 0, "\(invite)")
        #expect(invite.stderr.contains("trusted channel") && invite.stderr.split(separator: "\n").count == 1)
        #expect(invite.lines.count == 1)
        let token = invite.stdout.trimmingCharacters(in: .newlines)
        #expect(token.hasPrefix("cairn-invite-v1:"))

        let b = Node(dataDir: sandbox.path("nested/b"))
        let joined = try b.ok("join", token)
        let bKey = try b.publicKey()
        #expect(joined.contains("joined Cairn log in") && joined.contains("node key:") && joined.contains(bKey))
        #expect(joined.contains("peer:") && joined.contains("127.0.0.1:7401"))
        #expect(!joined.contains(try b.secretSeed()))
        #expect(try b.ok("peers", "list").contains("127.0.0.1:7401"))
        #expect(try jsonLines(try b.ok("peers", "list", "--json")).map { $0["address"] as? String } == ["127.0.0.1:7401"])
        #expect(try b.statusJSON()["log"] as? String == a.statusJSON()["log"] as? String)
        let secretA = try String(contentsOfFile: a.dataDir + "/network.key", encoding: .utf8)
        #expect(try String(contentsOfFile: b.dataDir + "/network.key", encoding: .utf8) == secretA)
        #expect(!joined.contains(secretA.trimmingCharacters(in: .newlines)))
        // The inviter granted b's key; once the grant reaches b (here by bundle), b may write.
        let writers = try jsonLines(try a.ok("writers", "list", "--json"))
        #expect(writers.contains { $0["key"] as? String == bKey && $0["role"] as? String == "writer" })
        expectCleanError(try b.run("put", "b/k", "early"), containing: "may not write")
        let bundle = sandbox.path("a.bundle")
        try a.ok("export", bundle)
        try b.ok("import", bundle)
        try b.ok("put", "b/k", "from b")
        expectCleanError(try b.run("join", token), containing: "already exists")
    }

    @Test func aReadOnlyInviteReadFromStdin() throws {
        let sandbox = try Sandbox()
        let a = try sandbox.initLog("a")
        let invite = try a.run("invite", "--read-only")
        #expect(invite.status == 0, "\(invite)")
        let c = Node(dataDir: sandbox.path("c"))
        let joined = try c.run("join", "-", stdin: Data(invite.stdout.utf8))
        #expect(joined.status == 0, "\(joined)")
        #expect(joined.stdout.contains("read-only") && joined.stdout.contains("peer:"))
        #expect(try c.ok("peers", "list").isEmpty)
        let cKey = try c.publicKey()
        #expect(try !jsonLines(try a.ok("writers", "list", "--json")).contains { $0["key"] as? String == cKey })
        // Only an admin can make a writer invite.
        expectCleanError(try c.run("invite"), containing: "may not write")
    }

    @Test func badInvitesAndInviteOptions() throws {
        let sandbox = try Sandbox()
        let a = try sandbox.initLog("a")
        let token = try a.run("invite", "--read-only").stdout.trimmingCharacters(in: .newlines)
        let d = Node(dataDir: sandbox.path("d"))
        expectCleanError(try d.run("join", String(token.dropLast(6))), containing: "truncated")
        expectCleanError(try d.run("join", "hello"), containing: "not a Cairn invite")
        var typo = Array(token)
        typo[40] = typo[40] == "0" ? "1" : "0"
        expectCleanError(try d.run("join", String(typo)), containing: "checksum")
        #expect(!FileManager.default.fileExists(atPath: d.dataDir), "a refused invite creates nothing")
        expectCleanError(try a.run("invite", "--read-only", "--admin"), status: 64)
        expectCleanError(try a.run("invite", "--address", "nowhere"), status: 64, containing: "HOST:PORT")
        try FileManager.default.removeItem(atPath: a.dataDir + "/network.key")
        expectCleanError(try a.run("invite"), containing: "no network secret")
    }

    @Test func initFromABundleCopiesTheSecretFile() throws {
        let sandbox = try Sandbox()
        let a = try sandbox.initLog("a")
        let bundle = sandbox.path("a.bundle")
        try a.ok("export", bundle)
        let secretFile = a.dataDir + "/network.key"
        let b = Node(dataDir: sandbox.path("b"))
        try b.ok("init", "--from", bundle, "--secret-file", secretFile)
        #expect(try String(contentsOfFile: b.dataDir + "/network.key", encoding: .utf8) == String(contentsOfFile: secretFile, encoding: .utf8))
        #expect(try b.statusJSON()["network_secret"] as? String == "present")
        let c = Node(dataDir: sandbox.path("c"))
        #expect(try c.ok("init", "--from", bundle).contains("network secret:  missing"))
        #expect(try c.statusJSON()["network_secret"] as? String == "missing")

        expectCleanError(try Node(dataDir: sandbox.path("d")).run("init", "--secret-file", secretFile), status: 64, containing: "--from")
        let loose = sandbox.path("loose.key")
        try FileManager.default.copyItem(atPath: secretFile, toPath: loose)
        chmod(loose, 0o644)
        expectCleanError(try Node(dataDir: sandbox.path("e")).run("init", "--from", bundle, "--secret-file", loose), containing: "chmod 600")
        expectCleanError(try Node(dataDir: sandbox.path("e")).run("init", "--from", bundle, "--secret-file", sandbox.path("absent")), containing: "absent")
        #expect(!FileManager.default.fileExists(atPath: sandbox.path("e")))
    }

    @Test func peersAddListRemove() throws {
        let sandbox = try Sandbox()
        let node = try sandbox.initLog()
        #expect(try node.ok("peers").isEmpty)
        #expect(try node.ok("peers", "add", "Node-B:07401") == "node-b:7401\n")
        let identity = String(repeating: "ab", count: 32)
        try node.ok("peers", "add", "[::1]:7402", "--identity", identity)
        #expect(try node.ok("peers", "list") == """
            ADDRESS      IDENTITY
            [::1]:7402   \(identity)
            node-b:7401  any

            """)
        let json = try jsonLines(try node.ok("peers", "list", "--json"))
        #expect(json.map { $0["address"] as? String } == ["[::1]:7402", "node-b:7401"])
        #expect(json[0]["identity"] as? String == identity && json[1]["identity"] is NSNull)

        #expect(try node.ok("peers", "remove", "NODE-B:7401").isEmpty)
        expectCleanError(try node.run("peers", "remove", "node-b:7401"), containing: "not in the peer list")
        #expect(try node.ok("peers", "list").split(separator: "\n").count == 2)
        expectCleanError(try node.run("peers", "add", "node-b"), status: 64, containing: "no port")
        expectCleanError(try node.run("peers", "add", "node-b:70000"), status: 64, containing: "bad port")
        expectCleanError(try node.run("peers", "add", "::1:7401"), status: 64, containing: "bad host")
        expectCleanError(try node.run("peers", "add", "node:1", "--identity", "abc"), status: 64, containing: "64 hex digits")
        expectCleanError(try Node(dataDir: sandbox.path("none")).run("peers", "list"), containing: "no Cairn log at")
    }

    @Test func statusShowsTheSecretPeersAndWhatTheSyncServiceRecorded() async throws {
        let sandbox = try Sandbox()
        let node = try sandbox.initLog()
        try node.ok("peers", "add", "10.0.0.2:7401")
        let before = try node.statusJSON()
        #expect((before["peers"] as? [[String: Any]])?.map { $0["address"] as? String } == ["10.0.0.2:7401"])
        #expect((before["peer_status"] as? [Any])?.isEmpty == true)
        let headHLC = try #require(((before["heads"] as? [[String: Any]])?.first?["hlc"] as? Int).map { HLC(rawValue: UInt64($0)) })

        // What `cairn serve` records about a peer.
        let peerKey = PublicKey(bytes: [UInt8](repeating: 0x9a, count: 32))!
        var recorded = PeerStatus(identity: peerKey, address: "10.0.0.2:7401", state: "connected")
        recorded.lastSyncMilliseconds = 1_763_700_000_000
        recorded.headsHLC = HLC(wallMilliseconds: headHLC.wallMilliseconds - 90_500, counter: 0)
        recorded.entriesSent = 12
        recorded.entriesReceived = 34
        recorded.entriesRejected = 5
        recorded.lastError = "entry rejected:\nunknown author"
        // This node lacks 53,012 entries the peer holds, the oldest for 90.5 s.
        recorded.lagEntries = 53_012
        recorded.lagOldestMilliseconds = UInt64(Date().timeIntervalSince1970 * 1000) - 10_830_000  // 3 h 30 s: shown as "3h…" however slow the run
        try await CairnLog.open(at: node.dataDir).savePeerStatus(recorded)

        let text = try node.ok("status")
        #expect(text.contains("network secret:  present"))
        #expect(text.contains("peers:           1\n                 10.0.0.2:7401\n"))
        #expect(text.contains("PEER") && text.contains("LAG") && text.contains("LAST ERROR"))
        let row = try #require(text.split(separator: "\n").first { $0.hasPrefix("9a9a9a9a9a9a ") })
        for part in ["10.0.0.2:7401", "connected", "2025-11-21T04:40:00.000Z", "53012 entries, 3h", "12", "34", "5", "entry rejected: unknown author"] {
            #expect(row.contains(part), "\(part) in \(row)")
        }

        let peer = try #require((try node.statusJSON()["peer_status"] as? [[String: Any]])?.first)
        #expect(peer["identity"] as? String == peerKey.hex)
        #expect(peer["state"] as? String == "connected")
        #expect(peer["last_sync"] as? String == "2025-11-21T04:40:00.000Z")
        #expect(peer["last_sync_ms"] as? Int == 1_763_700_000_000)
        #expect(peer["last_connected"] is NSNull && peer["last_connected_ms"] is NSNull)
        #expect(peer["heads_hlc"] as? Int == Int(recorded.headsHLC!.rawValue))
        #expect(peer["lag_entries"] as? Int == 53_012)
        #expect((10_830_000..<11_430_000).contains(peer["lag_ms"] as? Int ?? 0), "\(peer)")  // at least the 3 h 30 s recorded, however slow the machine
        #expect(peer["entries_sent"] as? Int == 12 && peer["entries_received"] as? Int == 34 && peer["entries_rejected"] as? Int == 5)
        #expect(peer["last_error"] as? String == "entry rejected:\nunknown author")

        // Without network.key, status says so (and still works).
        try FileManager.default.removeItem(atPath: node.dataDir + "/network.key")
        #expect(try node.statusJSON()["network_secret"] as? String == "missing")
        #expect(try node.ok("status").contains("network secret:  missing"))
    }
}
