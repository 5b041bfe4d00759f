import Foundation
import Testing

@Suite("cairn tail")
struct TailTests {
    @Test func envelopeShapeValuesAndResume() throws {
        let sandbox = try Sandbox()
        let node = try sandbox.initLog()
        let writer = try sandbox.initLog("writer").publicKey()
        let first = try node.ok("put", "b/k", "v1").trimmingCharacters(in: .newlines)
        let second = try node.ok("put", "b/k", "v2").trimmingCharacters(in: .newlines)
        let tombstone = try node.ok("delete", "b/k").trimmingCharacters(in: .newlines)
        let binary = sandbox.path("bin")
        try Data([0xff, 0x00]).write(to: URL(fileURLWithPath: binary))
        try node.ok("put", "b/bin", "--file", binary)
        try node.ok("writers", "add", writer)
        try node.ok("writers", "revoke", writer, "--from", "2030-01-01T00:00:00Z")
        let logID = try #require(try node.statusJSON()["log"] as? String)

        let raw = try node.ok("tail")
        let lines = raw.split(separator: "\n").map(String.init)
        let changes = try jsonLines(raw)
        #expect(changes.map { $0["op"] as? String } == ["g", "c", "u", "d", "c", "wa", "wr"])
        #expect(changes.map { $0["cursor"] as? Int } == Array(1...7))
        #expect(lines.allSatisfy { $0.hasPrefix("{\"op\":") })
        #expect(changes[0]["name"] as? String == "test")

        let created = changes[1]
        #expect(created["before"] is NSNull)
        #expect((created["after"] as? [String: Any])?["entry"] as? String == first)
        #expect((created["after"] as? [String: Any])?["length"] as? Int == 2)
        #expect(created["bucket"] as? String == "b" && created["key"] as? String == "k")
        #expect(created["ts_ms"] is Int)
        let source = try #require(created["source"] as? [String: Any])
        #expect(source["log"] as? String == logID)
        #expect(source["entry"] as? String == first)
        #expect(source["kind"] as? String == "put")
        #expect((source["parents"] as? [String])?.count == 1)
        #expect(source["hlc"] is Int && source["hlc_wall_ms"] is Int)
        #expect((source["author"] as? String)?.count == 64)

        #expect((changes[2]["before"] as? [String: Any])?["entry"] as? String == first)
        #expect((changes[2]["after"] as? [String: Any])?["entry"] as? String == second)
        #expect((changes[3]["before"] as? [String: Any])?["entry"] as? String == second)
        let deleted = try #require(changes[3]["after"] as? [String: Any])
        #expect(deleted["entry"] as? String == tombstone && deleted["deleted"] as? Bool == true)
        #expect((changes[5]["writer"] as? [String: Any])?["key"] as? String == writer)
        #expect((changes[5]["writer"] as? [String: Any])?["role"] as? String == "writer")
        #expect((changes[6]["writer"] as? [String: Any])?["from_time"] as? String == "2030-01-01T00:00:00.000Z")

        // --values: UTF-8 text as value_utf8, anything else as value_base64.
        let withValues = try jsonLines(try node.ok("tail", "--values"))
        #expect((withValues[2]["after"] as? [String: Any])?["value_utf8"] as? String == "v2")
        #expect((withValues[2]["before"] as? [String: Any])?["value_utf8"] as? String == "v1")
        #expect((withValues[4]["after"] as? [String: Any])?["value_base64"] as? String == "/wA=")

        // --since resumes exactly after the cursor given.
        #expect(try node.ok("tail", "--since", "3") == lines[3...].map { $0 + "\n" }.joined())
        #expect(try node.ok("tail", "--since", "7") == "")
    }

    @Test func followSeesAPutFromAnotherProcess() throws {
        let sandbox = try Sandbox()
        let node = try sandbox.initLog()
        try node.ok("put", "b/before", "x")
        let tail = Process()
        tail.executableURL = URL(fileURLWithPath: CLI.binary)
        tail.arguments = ["--data-dir", node.dataDir, "tail", "--follow", "--since", "2"]
        let pipe = Pipe()
        tail.standardOutput = pipe
        tail.standardError = FileHandle.nullDevice
        try tail.run()
        defer { if tail.isRunning { tail.terminate() } }
        // A watchdog: if no line comes, end tail so the read below sees EOF instead of hanging.
        DispatchQueue.global().asyncAfter(deadline: .now() + 20) { if tail.isRunning { tail.terminate() } }
        Thread.sleep(forTimeInterval: 0.3)
        var received = Data()
        /// Reads from tail until it has printed `count` lines in all (or ended).
        func readLines(_ count: Int) -> [String] {
            while received.filter({ $0 == UInt8(ascii: "\n") }).count < count {
                let chunk = pipe.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                received.append(chunk)
            }
            return String(decoding: received, as: UTF8.self).split(separator: "\n").map(String.init)
        }
        let first = try node.ok("put", "b/live", "hello").trimmingCharacters(in: .newlines)
        let afterFirst = readLines(1)
        // A second write, once tail has gone back to waiting, arrives as well.
        let second = try node.ok("delete", "b/live").trimmingCharacters(in: .newlines)
        let lines = readLines(2)
        tail.terminate()
        tail.waitUntilExit()
        #expect(afterFirst.count == 1)
        try #require(lines.count == 2, "tail --follow printed: \(lines)")
        let changes = try jsonLines(lines.joined(separator: "\n"))
        #expect(changes.map { $0["op"] as? String } == ["c", "d"])
        #expect(changes.map { $0["cursor"] as? Int } == [3, 4])
        #expect(changes[0]["key"] as? String == "live")
        #expect((changes[0]["source"] as? [String: Any])?["entry"] as? String == first)
        #expect((changes[1]["source"] as? [String: Any])?["entry"] as? String == second)
    }

    @Test func closedStdoutEndsTailCleanly() throws {
        let sandbox = try Sandbox()
        let node = try sandbox.initLog()
        // One line far larger than a pipe's buffer, so tail is still writing when head exits.
        let big = sandbox.path("big")
        try Data(repeating: UInt8(ascii: "x"), count: 512 * 1024).write(to: URL(fileURLWithPath: big))
        try node.ok("put", "b/big", "--file", big)
        try node.ok("put", "b/after", "y")
        let statusFile = sandbox.path("status"), errFile = sandbox.path("stderr")
        let shell = Process()
        shell.executableURL = URL(fileURLWithPath: "/bin/sh")
        shell.arguments = [
            "-c", #"{ "$0" --data-dir "$1" tail --values 2>"$3"; echo $? >"$2"; } | head -1 >/dev/null"#,
            CLI.binary, node.dataDir, statusFile, errFile,
        ]
        try shell.run()
        shell.waitUntilExit()
        let status = try String(contentsOfFile: statusFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(status == "0")
        #expect(try String(contentsOfFile: errFile, encoding: .utf8).isEmpty)
    }
}
