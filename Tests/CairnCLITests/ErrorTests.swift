import Foundation
import Testing

@Suite("cairn: errors are one clean line and a non-zero status")
struct ErrorTests {
    @Test func missingAndForeignDataDirectories() throws {
        let sandbox = try Sandbox()
        let missing = Node(dataDir: sandbox.path("nowhere"))
        for command in [["status"], ["log"], ["get", "b/k"], ["put", "b/k", "v"], ["tail"], ["verify"]] {
            let result = try CLI.run(["--data-dir", missing.dataDir] + command)
            expectCleanError(result, containing: "no Cairn log at")
            #expect(result.stderr.split(separator: "\n").count == 1, "\(result)")
        }
        let foreign = sandbox.path("foreign")
        try FileManager.default.createDirectory(atPath: foreign, withIntermediateDirectories: true)
        try Data("this is not a database, just some text that is long enough".utf8).write(to: URL(fileURLWithPath: foreign + "/cairn.db"))
        expectCleanError(try Node(dataDir: foreign).run("status"), containing: "not a Cairn log")
    }

    @Test func unknownKeysIdsAndBadArguments() throws {
        let sandbox = try Sandbox()
        let node = try sandbox.initLog()
        try node.ok("put", "b/k", "v")
        expectCleanError(try node.run("get", "b/absent"), containing: "not found")
        expectCleanError(try node.run("history", "b/absent"), containing: "not found")
        expectCleanError(try node.run("delete", "b/absent"), containing: "not found")
        expectCleanError(try node.run("show", "0000000000"), containing: "not found")
        expectCleanError(try node.run("show", "zz"), containing: "not found")
        expectCleanError(try node.run("log", "--author", "ffffffff"), containing: "not found")
        expectCleanError(try node.run("writers", "revoke", String(repeating: "cd", count: 32)), containing: "not found")

        // Usage errors: ArgumentParser's message with our prefix, status 64.
        expectCleanError(try node.run("get", "no-slash"), status: 64, containing: "BUCKET/KEY")
        expectCleanError(try node.run("put", "b/k"), status: 64)
        expectCleanError(try node.run("log", "--since", "yesterday-ish"), status: 64, containing: "ISO-8601")
        expectCleanError(try node.run("writers", "add", "not-a-key"), status: 64, containing: "64 hex digits")
        expectCleanError(try node.run("frobnicate"), status: 64)
        expectCleanError(try node.run("log", "--json", "--graph"), status: 64)

        // Help is not an error.
        let help = try CLI.run(["--help"])
        #expect(help.status == 0 && help.stdout.contains("SUBCOMMANDS"))
        // Time filters accept ISO-8601, raw HLC and wall.counter alike.
        let newest = try jsonLines(try node.ok("log", "--json", "--limit", "1"))[0]
        let hlc = try #require(newest["hlc"] as? Int), wall = try #require(newest["hlc_wall_ms"] as? Int)
        #expect(try node.ok("log", "--oneline", "--since", String(hlc)).split(separator: "\n").count == 1)
        #expect(try node.ok("log", "--oneline", "--since", "\(wall).0").split(separator: "\n").count == 1)
        #expect(try node.ok("log", "--oneline", "--until", "\(wall).0").split(separator: "\n").count == 2)
        #expect(try node.ok("log", "--oneline", "--since", "2000-01-01T00:00:00Z", "--until", "2000-01-02").isEmpty)
    }
}
