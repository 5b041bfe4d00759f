import CairnCore
import CairnStore
import Cairn
import Foundation
import Testing

@Suite("cairn verify and purge")
struct VerifyTests {
    @Test func verifyCleanThenDetectsAFlippedByte() async throws {
        let sandbox = try Sandbox()
        let node = try sandbox.initLog()
        let target = try node.ok("put", "b/one", "1").trimmingCharacters(in: .newlines)
        try node.ok("put", "b/two", "2")
        #expect(try node.ok("verify") == "verified 3 entries, 2 values: OK\n")
        let clean = try jsonLines(try node.ok("verify", "--json"))[0]
        #expect(clean["ok"] as? Bool == true && (clean["problems"] as? [Any])?.isEmpty == true)

        // Flip one bit of the stored signature of b/one's entry, behind the CLI's back.
        let log = try CairnLog.open(at: node.dataDir)
        try await log.withStore { store in
            let read = try store.database.prepare("SELECT sig FROM entries WHERE seq = 2")
            guard try read.step(), var signature = read.blob(0) else { Issue.record("no entry at seq 2"); return }
            signature[10] ^= 0x01
            try store.database.prepare("UPDATE entries SET sig = ?1 WHERE seq = 2").bind(.blob(signature)).run()
        }

        let result = try node.run("verify")
        #expect(result.status == 1, "\(result)")
        #expect(result.stderr.isEmpty)
        #expect(result.lines.count == 2, "\(result)")
        #expect(result.lines[0].contains("entry \(target.prefix(12))") && result.lines[0].contains("bad signature"))
        #expect(result.lines[1] == "verified 3 entries, 2 values: 1 problem")
        let json = try CLI.run(["--data-dir", node.dataDir, "verify", "--json"])
        #expect(json.status == 1)
        let report = try jsonLines(json.stdout)[0]
        #expect(report["ok"] as? Bool == false)
        #expect((report["problems"] as? [[String: Any]])?.first?["entry"] as? String == target)
    }

    @Test func purgeErasesBytesAndKeepsVerifyClean() throws {
        let sandbox = try Sandbox()
        let node = try sandbox.initLog()
        let entry = try node.ok("put", "secrets/token", "hunter2").trimmingCharacters(in: .newlines)
        try node.ok("put", "other/x", "keep me")
        let digest = try #require(try jsonLines(try node.ok("get", "other/x", "--json"))[0]["digest"] as? String)

        #expect(try node.ok("purge", "secrets/token").hasPrefix("purged value "))
        expectCleanError(try node.run("get", "secrets/token"), containing: "purged")
        #expect(try jsonLines(try node.ok("get", "secrets/token", "--json"))[0]["value_state"] as? String == "purged")
        #expect(try node.ok("show", entry).contains("purged"))
        #expect(!(try node.ok("show", entry)).contains("hunter2"))

        try node.ok("purge", "--digest", digest)
        #expect(try node.ok("purge", "--digest", digest).contains("already purged"))
        expectCleanError(try node.run("purge", "--digest", String(repeating: "ab", count: 32)), containing: "not found")
        expectCleanError(try node.run("purge"), status: 64)
        #expect(try node.ok("verify") == "verified 3 entries, 0 values: OK\n")
    }
}
