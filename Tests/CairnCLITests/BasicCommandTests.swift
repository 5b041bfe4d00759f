import Foundation
import Testing

@Suite("cairn: init, put, get, ls, log, show, status")
struct BasicCommandTests {
    @Test func initPutGetListLogShow() throws {
        let sandbox = try Sandbox()
        let node = Node(dataDir: sandbox.path("a"))
        let initOut = try node.ok("init", "--name", "manifests")
        #expect(initOut.contains("log id:"))
        #expect(initOut.contains("node key:"))
        var info = stat()
        #expect(stat(node.dataDir + "/node.key", &info) == 0 && info.st_mode & 0o777 == 0o600)
        #expect(FileManager.default.fileExists(atPath: node.dataDir + "/cairn.db"))

        let putID = try node.ok("put", "tables/orders/v42", "s3://bucket/orders-42").trimmingCharacters(in: .newlines)
        #expect(putID.count == 64)
        try node.ok("put", "tables/orders/v43", "second")
        let file = sandbox.path("value.bin")
        try Data([0, 1, 2, 255]).write(to: URL(fileURLWithPath: file))
        try node.ok("put", "blobs/raw", "--file", file)
        let stdinPut = try node.run("put", "notes/today", "-", stdin: Data("from stdin\n".utf8))
        #expect(stdinPut.status == 0, "\(stdinPut)")

        // get: raw bytes, exactly.
        #expect(try node.ok("get", "tables/orders/v42") == "s3://bucket/orders-42")
        #expect(try node.run("get", "blobs/raw").stdoutData == Data([0, 1, 2, 255]))
        #expect(try node.ok("get", "notes/today") == "from stdin\n")
        let meta = try jsonLines(try node.ok("get", "tables/orders/v42", "--json"))[0]
        #expect(meta["entry"] as? String == putID)
        #expect(meta["length"] as? Int == 21)
        #expect(meta["value_state"] as? String == "present")

        // ls: buckets with counts, keys, prefixes, --long.
        let buckets = try node.ok("ls")
        #expect(buckets.contains("tables  2 keys"))
        #expect(buckets.contains("blobs   1 key"))
        #expect(try node.ok("ls", "tables") == "orders/v42\norders/v43\n")
        #expect(try node.ok("ls", "tables/orders/v43") == "orders/v43\n")
        #expect(try node.ok("ls", "tables", "--limit", "1") == "orders/v42\n")
        let long = try node.ok("ls", "tables", "--long")
        #expect(long.contains(String(putID.prefix(12))) && long.contains("21 B"))

        // log: newest first.
        let oneline = try node.ok("log", "--oneline").split(separator: "\n")
        #expect(oneline.count == 5)
        #expect(oneline[0].contains("put notes/today"))
        #expect(oneline[4].contains("genesis \"manifests\""))
        let full = try node.ok("log", "--limit", "1", "--key", "tables/orders/v42")
        #expect(full.hasPrefix("entry \(putID)\n"))
        #expect(full.contains("Author:") && full.contains("Date:") && full.contains("Parents:"))
        let json = try jsonLines(try node.ok("log", "--json"))
        #expect(json.count == 5)
        #expect(json.map { $0["kind"] as? String } == ["put", "put", "put", "put", "genesis"])

        // show by prefix.
        let shown = try node.ok("show", String(putID.prefix(8)))
        #expect(shown.contains("entry      \(putID)"))
        #expect(shown.contains("signature"))
        #expect(shown.hasSuffix("\ns3://bucket/orders-42\n"))
        let shownJSON = try jsonLines(try node.ok("show", String(putID.prefix(10)), "--json"))[0]
        #expect(shownJSON["id"] as? String == putID)
        #expect(shownJSON["value_utf8"] as? String == "s3://bucket/orders-42")
        #expect((shownJSON["signature"] as? String)?.count == 128)
        #expect(try node.run("show", String(putID.prefix(6)), "--value").stdoutData == Data("s3://bucket/orders-42".utf8))

        // delete, then get says not found.
        try node.ok("delete", "tables/orders/v43")
        expectCleanError(try node.run("get", "tables/orders/v43"), containing: "not found")
        #expect(try node.ok("ls", "tables") == "orders/v42\n")

        // status.
        let status = try node.statusJSON()
        #expect(status["entries"] as? Int == 6)
        #expect((status["heads"] as? [Any])?.count == 1)
        #expect(status["name"] as? String == "manifests")

        // The secret seed never appears in anything the CLI prints.
        let seed = try node.secretSeed()
        for output in [initOut, buckets, long, shown, try node.ok("status"), try node.ok("log")] {
            #expect(!output.contains(seed))
        }
    }

    @Test func dataDirFromEnvironmentAndOptionPlacement() throws {
        let sandbox = try Sandbox()
        let node = try sandbox.initLog("env")
        let viaEnv = try CLI.run(["put", "b/k", "v"], environment: ["CAIRN_DIR": node.dataDir])
        #expect(viaEnv.status == 0, "\(viaEnv)")
        // --data-dir after the subcommand works as well as before it.
        let after = try CLI.run(["get", "b/k", "--data-dir", node.dataDir])
        #expect(after.stdout == "v")
        expectCleanError(try node.run("init"), containing: "already exists")
    }
}
