import Cairn
import CairnCore
import CairnStore
import Foundation
import Testing

/// A small seeded generator (SplitMix64), so a failing DAG can be rebuilt from its seed.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Runs a program to completion and returns its stdout (stderr is kept for the failure message).
@discardableResult
func runProgram(_ path: String, _ arguments: [String], in directory: String, environment: [String: String] = [:]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    process.currentDirectoryURL = URL(fileURLWithPath: directory)
    var env = ProcessInfo.processInfo.environment
    env.merge(environment) { $1 }
    process.environment = env
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    let errors = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw CLIError("\(path) \(arguments.joined(separator: " ")) failed: \(String(decoding: errors, as: UTF8.self))")
    }
    return String(decoding: data, as: UTF8.self)
}

struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

@Suite("cairn log --graph draws what git log --graph draws")
struct GraphGitTests {
    static let git = ["/usr/bin/git", "/usr/local/bin/git"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// Several nodes write and exchange entries at random (seeded); every merge, including
    /// several merges of the same parents, ends up in node 0's DAG. The same DAG is made as a
    /// git repository (same parent order, committer dates in HLC order) and both graphs are
    /// compared line by line.
    @Test(arguments: 1...30 as ClosedRange<UInt64>)
    func randomDAGsMatchGit(seed: UInt64) async throws {
        let git = try #require(Self.git, "git is needed for this test (.ci/run installs it)")
        let sandbox = try Sandbox()
        var random = SeededGenerator(state: seed &* 7919)

        // The nodes: node 0 creates the log and grants the others.
        let first = try CairnLog.create(at: sandbox.path("n0"), name: "graph")
        var genesisFilter = LogFilter()
        genesisFilter.newestFirst = false
        genesisFilter.limit = 1
        let genesis = try #require(try await first.log(genesisFilter).first).entry
        var nodes = [first]
        let nodeCount = Int.random(in: 2...5, using: &random)
        for index in 1..<nodeCount {
            let node = try CairnLog.join(at: sandbox.path("n\(index)"), genesis: genesis)
            _ = try await first.addWriter(node.nodeKey)
            nodes.append(node)
        }
        for node in nodes.dropFirst() { try await sync(from: first, to: node) }

        let steps = Int.random(in: 15...60, using: &random)
        for step in 0..<steps {
            let actor = Int.random(in: 0..<nodeCount, using: &random)
            if Bool.random(using: &random) {
                _ = try await nodes[actor].put("b", "k\(step % 5)", Array("v\(step)".utf8))
            } else {
                let source = Int.random(in: 0..<nodeCount, using: &random)
                if source != actor { try await sync(from: nodes[source], to: nodes[actor]) }
            }
        }
        for node in nodes.dropFirst() { try await sync(from: node, to: first) }

        // The DAG as cairn sees it.
        let node = Node(dataDir: sandbox.path("n0"))
        let entries = try jsonLines(try node.ok("log", "--json")).reversed()  // oldest first
        struct Item { let id: String, hlc: Int, author: String, parents: [String] }
        let items = entries.map {
            Item(id: $0["id"] as! String, hlc: $0["hlc"] as! Int, author: $0["author"] as! String, parents: $0["parents"] as! [String])
        }
        let byID = Dictionary(uniqueKeysWithValues: items.map { ($0.id, $0) })
        func greater(_ a: String, _ b: String) -> Bool {
            let x = byID[a]!, y = byID[b]!
            return x.hlc != y.hlc ? x.hlc > y.hlc : a > b
        }
        // The parent order cairn documents: the author's own previous entry first (else the
        // greatest parent), then the others by (hlc, id), greatest first.
        func ordered(_ item: Item) -> [String] {
            var rest = item.parents.sorted(by: greater)
            guard let firstParent = rest.first(where: { byID[$0]!.author == item.author }) ?? rest.first else { return [] }
            rest.removeAll { $0 == firstParent }
            return [firstParent] + rest
        }

        // The same DAG in git.
        let repo = sandbox.path("git")
        try FileManager.default.createDirectory(atPath: repo, withIntermediateDirectories: true)
        try runProgram(git, ["init", "-q", "."], in: repo)
        let tree = try runProgram(git, ["mktree"], in: repo).trimmingCharacters(in: .whitespacesAndNewlines)
        var commits: [String: String] = [:]
        for (rank, item) in items.enumerated() {
            let date = "@\(1_700_000_000 + rank) +0000"
            var arguments = ["commit-tree", tree, "-m", String(item.id.prefix(12))]
            for parent in ordered(item) { arguments += ["-p", commits[parent]!] }
            commits[item.id] = try runProgram(git, arguments, in: repo, environment: [
                "GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@example.com", "GIT_AUTHOR_DATE": date,
                "GIT_COMMITTER_NAME": "a", "GIT_COMMITTER_EMAIL": "a@example.com", "GIT_COMMITTER_DATE": date,
            ]).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let withChildren = Set(items.flatMap(\.parents))
        let heads = items.filter { !withChildren.contains($0.id) }.map { commits[$0.id]! }
        let expected = try runProgram(git, ["log", "--graph", "--date-order", "--format=%s"] + heads, in: repo)
            .split(separator: "\n", omittingEmptySubsequences: false).map(rstrip)

        // cairn's rows, each entry's text cut after its id.
        let drawn = try node.ok("log", "--graph", "--oneline").split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            guard let range = line.range(of: #"[0-9a-f]{12} "#, options: .regularExpression) else { return rstrip(line) }
            return rstrip(line[..<line.index(before: range.upperBound)])
        }
        let merges = items.filter { $0.parents.count > 1 }.count
        print("GraphGitTests seed \(seed): \(items.count) entries, \(merges) merges, \(items.filter { $0.parents.count > 2 }.count) octopus")
        #expect(drawn == expected, "seed \(seed), \(items.count) entries, \(merges) merges\ncairn:\n\(drawn.joined(separator: "\n"))\ngit:\n\(expected.joined(separator: "\n"))")
    }

    /// Copies every entry (and value) of `source` into `target` through a bundle, as two nodes
    /// exchanging files would (entries `target` holds are duplicates, which change nothing).
    private func sync(from source: CairnLog, to target: CairnLog) async throws {
        let bundle = NSTemporaryDirectory() + "cairn-copy-\(UUID().uuidString).bundle"
        defer { try? FileManager.default.removeItem(atPath: bundle) }
        _ = try await source.exportBundle(to: bundle)
        _ = try await target.importBundle(from: bundle)
    }
}

private func rstrip<S: StringProtocol>(_ text: S) -> String {
    var text = Substring(text)
    while text.last == " " { text.removeLast() }
    return String(text)
}
