import Foundation
import Cairn
import Testing

/// Two nodes of one log that wrote concurrently, then joined: A imports B's bundle and its next
/// write merges the two heads.
struct DivergedLog {
    let sandbox: Sandbox
    let a: Node
    let b: Node
    let aKey: String, bKey: String
    let mergeID: String
    /// The two concurrent writes to shared/k.
    let aWrite: String, bWrite: String

    init() throws {
        sandbox = try Sandbox()
        a = try sandbox.initLog("a")
        b = try a.replica(named: "b", in: sandbox)
        aKey = try a.publicKey()
        bKey = try b.publicKey()
        aWrite = try a.ok("put", "shared/k", "from-a").trimmingCharacters(in: .newlines)
        bWrite = try b.ok("put", "shared/k", "from-b").trimmingCharacters(in: .newlines)
        try b.ok("put", "shared/only-b", "b")
        try a.ok("put", "shared/only-a", "a")
        let bundle = sandbox.path("b.bundle")
        #expect(try b.ok("export", bundle).hasPrefix("exported "))
        #expect(try a.ok("import", bundle).contains("2 applied"))
        #expect((try a.statusJSON()["heads"] as? [Any])?.count == 2)
        try a.ok("put", "shared/after", "merged")
        let merges = try jsonLines(try a.ok("log", "--json")).filter { $0["kind"] as? String == "merge" }
        #expect(merges.count == 1)
        mergeID = merges.first?["id"] as? String ?? ""
    }
}

@Suite("cairn: the DAG across two nodes")
struct DAGTests {
    @Test func graphDrawsDivergenceAndMerge() throws {
        let log = try DivergedLog()
        let lines = try log.a.ok("log", "--graph", "--oneline").split(separator: "\n").map(String.init)
        // The graph cells: everything before the 12-digit entry id (or the whole connector row).
        let cells = lines.map { line -> String in
            guard let range = line.range(of: #"[0-9a-f]{12} "#, options: .regularExpression) else { return line }
            return String(line[..<range.lowerBound]).trimmingCharacters(in: .whitespaces)
        }
        // put after, merge, A's and B's branches side by side, the fork point, then history.
        #expect(Array(cells.prefix(9)) == ["*", "*", "|\\", "* |", "| *", "| *", "* |", "|/", "*"], "\(lines.joined(separator: "\n"))")
        #expect(lines[1].contains("merge of 2 parents"))
        #expect(lines[3].contains("put shared/only-a") && lines[4].contains("put shared/only-b"))
        #expect(lines[5].contains(String(log.bWrite.prefix(12))) && lines[6].contains(String(log.aWrite.prefix(12))))
        #expect(lines[8].contains("add-writer"))
        #expect(cells.filter { $0.contains("*") }.count == (try log.a.entryCount()))

        // The full format keeps the lanes on every line of an entry.
        let full = try log.a.ok("log", "--graph").split(separator: "\n").map(String.init)
        let onlyA = try #require(full.firstIndex { $0.hasPrefix("* | entry ") })
        #expect(full[onlyA + 1].hasPrefix("| | Kind:    put shared/only-a"))

        // Filtered by author: B's two entries link to each other directly.
        let byB = try log.a.ok("log", "--graph", "--oneline", "--author", String(log.bKey.prefix(8)))
        #expect(byB.split(separator: "\n").map { String($0.prefix(2)) } == ["* ", "* "], "\(byB)")
        // Filtered by key: the two concurrent writes have no shown ancestor; git draws two
        // such roots one under the other, and so does cairn.
        let byKey = try log.a.ok("log", "--graph", "--oneline", "--key", "shared/k")
        let keyRows = byKey.split(separator: "\n", omittingEmptySubsequences: false).map { String($0.prefix(14)) }
        #expect(keyRows == ["* \(log.bWrite.prefix(12))", "* \(log.aWrite.prefix(12))", ""], "\(byKey)")
    }

    @Test func historyShowsConcurrentLoserAndItsMerge() throws {
        let log = try DivergedLog()
        // B's write has the greater HLC, so it wins; the merge records A's as its loser.
        #expect(try log.a.ok("get", "shared/k") == "from-b")
        let history = try jsonLines(try log.a.ok("history", "shared/k", "--json"))[0]
        #expect(history["winner"] as? String == log.bWrite)
        let versions = try #require(history["versions"] as? [[String: Any]])
        #expect(versions.map { $0["entry"] as? String } == [log.aWrite, log.bWrite])
        let lost = try #require(versions[0]["lost"] as? [[String: Any]])
        #expect(lost.first?["merge"] as? String == log.mergeID)
        #expect(lost.first?["winner"] as? String == log.bWrite)
        #expect(versions[1]["winner"] as? Bool == true)

        let text = try log.a.ok("history", "shared/k").split(separator: "\n").map(String.init)
        #expect(text.count == 3)
        #expect(text[1].hasPrefix("x ") && text[1].contains("lost to \(log.bWrite.prefix(12)) (merge \(log.mergeID.prefix(12)))"))
        #expect(text[2].hasPrefix("* ") && text[2].hasSuffix("winner"))

        let merge = try log.a.ok("show", String(log.mergeID.prefix(8)))
        #expect(merge.contains("winner \(log.bWrite)") && merge.contains("loser  \(log.aWrite)"))
        #expect(try log.a.ok("verify").hasSuffix(": OK\n"))
    }

    /// `history` reads a key in pages of 1,000 versions (constant memory, whatever the
    /// key's length): every version of a 2,500-version key is printed once, in order, as text
    /// and as one JSON object; `-n` reads only the newest.
    @Test func historyStreamsAKeyOfManyVersions() async throws {
        let sandbox = try Sandbox()
        let node = try sandbox.initLog()
        do {
            let log = try CairnLog.open(at: node.dataDir)
            _ = try await log.write((0..<2500).map { .put(bucket: "hot", key: "k", value: Array("v\($0)".utf8)) })
        }
        let text = try node.ok("history", "hot/k").split(separator: "\n").map(String.init)
        #expect(text.count == 2501 && text[0] == "history of hot/k: 2500 versions, oldest first")
        #expect(text.dropFirst().dropLast().allSatisfy { $0.hasPrefix("  ") } && text.last?.hasPrefix("* ") == true)
        let history = try jsonLines(try node.ok("history", "hot/k", "--json"))[0]
        let versions = try #require(history["versions"] as? [[String: Any]])
        let cursors = versions.compactMap { $0["cursor"] as? Int }
        #expect(cursors.count == 2500 && cursors == cursors.sorted() && Set(cursors).count == 2500)
        #expect(versions.last?["entry"] as? String == history["winner"] as? String)
        let newest = try node.ok("history", "hot/k", "-n", "2").split(separator: "\n")
        #expect(newest.count == 3 && newest[2].hasPrefix("* "), "\(newest)")
    }

    @Test func writersAddRevokeListAndRejectedWrites() throws {
        let log = try DivergedLog()
        let listed = try jsonLines(try log.a.ok("writers", "list", "--json"))
        #expect(Set(listed.compactMap { $0["key"] as? String }) == [log.aKey, log.bKey])
        #expect(listed.first { $0["key"] as? String == log.aKey }?["role"] as? String == "admin")
        #expect(listed.first { $0["key"] as? String == log.bKey }?["role"] as? String == "writer")

        try log.a.ok("writers", "revoke", log.bKey)
        let table = try log.a.ok("writers", "list")
        let bRow = try #require(table.split(separator: "\n").first { $0.hasPrefix(log.bKey) })
        #expect(bRow.contains("writer") && bRow.contains("Z #"))

        // B has not heard of its revocation: it writes, and A keeps the write, inert, just as B
        // will once it hears of the revocation.
        try log.b.ok("put", "shared/late", "too late")
        let bundle = log.sandbox.path("late.bundle")
        try log.b.ok("export", bundle)
        try log.a.ok("import", bundle)
        #expect(try log.a.ok("log", "--oneline", "--key", "shared/late").contains("[inert]"))
        expectCleanError(try log.a.run("get", "shared/late"), containing: "not found")

        // Once B imports the revocation, its own writes are refused locally.
        let fromA = log.sandbox.path("a.bundle")
        try log.a.ok("export", fromA)
        try log.b.ok("import", fromA)
        expectCleanError(try log.b.run("put", "shared/later", "x"), containing: "may not write")
        // A non-admin cannot change the writer set.
        expectCleanError(try log.b.run("writers", "add", log.aKey), containing: "may not write")
        // The late write is now inert on B and does not count in its state.
        #expect(try log.b.ok("log", "--oneline", "--key", "shared/late").contains("[inert]"))
        expectCleanError(try log.b.run("get", "shared/late"), containing: "not found")
        #expect(try log.a.entryCount() == log.b.entryCount(), "both orders end with the same entries")
    }

    @Test func exportImportRoundTripAndCorruptBundles() throws {
        let sandbox = try Sandbox()
        let a = try sandbox.initLog("a")
        for index in 0..<5 { try a.ok("put", "bucket/key-\(index)", "value \(index)") }
        let b = try a.replica(named: "b", in: sandbox)
        try a.ok("put", "bucket/late", "late value")
        try a.ok("delete", "bucket/key-0")
        let bundle = sandbox.path("a.bundle")
        #expect(try a.ok("export", bundle) == "exported \(try a.entryCount()) entries to \(bundle)\n")

        // A corrupt bundle (one flipped byte, or cut short) is refused whole.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: bundle))
        var flipped = bytes
        flipped[bytes.count / 2] ^= 0x01
        let flippedPath = sandbox.path("flipped.bundle")
        try flipped.write(to: URL(fileURLWithPath: flippedPath))
        let truncatedPath = sandbox.path("truncated.bundle")
        try bytes.prefix(bytes.count - 40).write(to: URL(fileURLWithPath: truncatedPath))
        let before = try b.entryCount()
        expectCleanError(try b.run("import", flippedPath), containing: "corrupt bundle")
        expectCleanError(try b.run("import", truncatedPath), containing: "truncated")
        expectCleanError(try b.run("import", sandbox.path("missing.bundle")), containing: "cannot open")
        #expect(try b.entryCount() == before)
        expectCleanError(try b.run("get", "bucket/late"), containing: "not found")

        // A bundle of another log is refused.
        let other = try sandbox.initLog("other")
        expectCleanError(try other.run("import", bundle), containing: "bundle is for log")

        // The intact bundle brings B level with A.
        let report = try b.ok("import", bundle)
        #expect(report.contains("2 applied"), "\(report)")
        #expect(try b.entryCount() == (try a.entryCount()))
        #expect(try b.ok("get", "bucket/late") == "late value")
        expectCleanError(try b.run("get", "bucket/key-0"), containing: "not found")
        #expect(try b.ok("import", bundle).contains("0 applied"))
        #expect(try b.ok("verify").hasSuffix(": OK\n"))
    }
}
