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
        #expect((created["after"] as? [String: Any])?["value"] == nil, "no value without --value-encoding")
        #expect(created["bucket"] as? String == "b" && created["key"] as? String == "k")
        #expect(created["ts_ms"] is Int)
        let source = try #require(created["source"] as? [String: Any])
        #expect(source["connector"] as? String == "cairn" && source["name"] as? String == "test")
        #expect(source["version"] is String && source["ts_ms"] is Int && source["snapshot"] as? Bool == false)
        #expect(source["log"] as? String == logID)
        #expect(source["entry"] as? String == first)
        #expect(source["kind"] as? String == "put")
        #expect(source["cause"] as? String == "entry" && source["cursor"] as? Int == 2 && source["entry_seq"] as? Int == 2)
        #expect((source["parents"] as? [String])?.count == 1)
        #expect(source["hlc"] is Int && source["hlc_wall_ms"] is Int)
        #expect((source["author"] as? String)?.count == 64)
        let transaction = try #require(created["transaction"] as? [String: Any])
        #expect(transaction["id"] as? String == "2" && transaction["total_order"] as? Int == 1 && transaction["data_collection_order"] as? Int == 1)

        #expect((changes[2]["before"] as? [String: Any])?["entry"] as? String == first)
        #expect((changes[2]["after"] as? [String: Any])?["entry"] as? String == second)
        #expect((changes[3]["before"] as? [String: Any])?["entry"] as? String == second)
        #expect(changes[3]["after"] is NSNull, "a delete's after image is null")
        #expect((changes[3]["source"] as? [String: Any])?["entry"] as? String == tombstone)
        #expect((changes[5]["writer"] as? [String: Any])?["key"] as? String == writer)
        #expect((changes[5]["writer"] as? [String: Any])?["role"] as? String == "writer")
        #expect((changes[6]["writer"] as? [String: Any])?["from_time"] as? String == "2030-01-01T00:00:00.000Z")

        // One value encoding per stream, always under "value", with "value_state".
        let base64 = try jsonLines(try node.ok("tail", "--values"))
        #expect((base64[2]["after"] as? [String: Any])?["value"] as? String == "djI=")
        #expect((base64[2]["before"] as? [String: Any])?["value"] as? String == "djE=")
        #expect((base64[4]["after"] as? [String: Any])?["value"] as? String == "/wA=")
        let utf8 = try node.ok("tail", "--value-encoding", "utf8")
        let text = try jsonLines(utf8)
        #expect((text[2]["after"] as? [String: Any])?["value"] as? String == "v2")
        #expect((text[4]["after"] as? [String: Any])?["value"] is NSNull)
        #expect((text[4]["after"] as? [String: Any])?["value_state"] as? String == "not_utf8")
        let hex = try node.ok("tail", "--value-encoding", "hex")
        #expect((try jsonLines(hex)[4]["after"] as? [String: Any])?["value"] as? String == "ff00")

        // --since resumes exactly after the cursor given; --after-entry after an entry's change.
        #expect(try node.ok("tail", "--since", "3") == lines[3...].map { $0 + "\n" }.joined())
        #expect(try node.ok("tail", "--since", "7") == "")
        #expect(try node.ok("tail", "--after-entry", second) == lines[3...].map { $0 + "\n" }.joined())

        // Tombstones and transaction markers.
        let extra = try node.ok("tail", "--tombstones", "--transactions")
        let marked = try jsonLines(extra)
        #expect(marked.map { ($0["op"] ?? $0["status"] ?? "tombstone") as? String } == [
            "g", "BEGIN", "c", "END", "BEGIN", "u", "END", "BEGIN", "d", "tombstone", "END", "BEGIN", "c", "END",
            "BEGIN", "wa", "END", "BEGIN", "wr", "END",
        ])
        #expect(marked[9]["bucket"] as? String == "b" && marked[9]["key"] as? String == "k" && marked[9]["value"] is NSNull)
        #expect(marked[10]["event_count"] as? Int == 1 && marked[1]["event_count"] is NSNull)

        // A snapshot: the live keys as op r, then what follows its cursor (nothing here).
        let snapshot = try node.ok("tail", "--snapshot", "--values")
        let read = try jsonLines(snapshot)
        #expect(read.map { $0["op"] as? String } == ["r"])
        #expect(read.first?["key"] as? String == "bin" && read.first?["cursor"] as? Int == 7)
        #expect((read.first?["source"] as? [String: Any])?["snapshot"] as? String == "last")

        try validateAgainstSchema(raw + base64Text(node) + utf8 + hex + extra + snapshot)
    }

    /// A revocation that makes a received write inert is its own event (op d, cause
    /// writer_set), and every line streamed before it is streamed the same after it.
    @Test func aRevocationIsItsOwnEventAndHistoryStaysTheSame() throws {
        let sandbox = try Sandbox()
        let node = try sandbox.initLog()
        let other = try node.replica(named: "other", in: sandbox)
        let written = try other.ok("put", "b/k", "theirs").trimmingCharacters(in: .newlines)
        let back = sandbox.path("back.bundle")
        try other.ok("export", back)
        try node.ok("import", back)
        let before = try node.ok("tail")
        try node.ok("writers", "revoke", try other.publicKey(), "--from", "2000-01-01T00:00:00Z")
        let after = try node.ok("tail", "--transactions", "--tombstones")
        let events = try jsonLines(try node.ok("tail")).filter { ($0["source"] as? [String: Any])?["cause"] as? String == "writer_set" }
        try #require(events.count == 1)
        #expect(events[0]["op"] as? String == "d" && events[0]["key"] as? String == "k")
        #expect((events[0]["before"] as? [String: Any])?["entry"] as? String == written)
        #expect(events[0]["after"] is NSNull)
        #expect(try node.ok("tail") .hasPrefix(before), "what was streamed before the revocation is streamed the same after it")
        try validateAgainstSchema(before + after)
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
        try validateAgainstSchema(lines.map { $0 + "\n" }.joined())
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

/// `tail --values` of `node` (kept apart: the envelope test reads it twice).
private func base64Text(_ node: Node) throws -> String { try node.ok("tail", "--values") }

/// Validates every line against docs/cairn-change-event.schema.json with Python's
/// `jsonschema` (an independent validator; CI installs it).
func validateAgainstSchema(_ lines: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let schema = root.appendingPathComponent("docs/cairn-change-event.schema.json").path
    let input = FileManager.default.temporaryDirectory.appendingPathComponent("tail-lines-\(UUID().uuidString).jsonl")
    try Data(lines.utf8).write(to: input)
    defer { try? FileManager.default.removeItem(at: input) }
    let script = """
        import json, sys, jsonschema
        schema = json.load(open(sys.argv[1]))
        jsonschema.Draft202012Validator.check_schema(schema)
        validator = jsonschema.Draft202012Validator(schema)
        bad = 0
        count = 0
        for number, line in enumerate(open(sys.argv[2]), 1):
            count += 1
            for error in validator.iter_errors(json.loads(line)):
                bad += 1
                print(f"line {number}: {error.message} at {list(error.absolute_path)}")
        print(f"{count} lines")
        sys.exit(1 if bad or count == 0 else 0)
        """
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", "-c", script, schema, input.path]
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    #expect(process.terminationStatus == 0, "schema validation: \(output)", sourceLocation: sourceLocation)
}
