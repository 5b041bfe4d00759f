import Cairn
import CairnAPI
import CairnTestSupport
import Foundation
import Testing

/// The web audit view in a real browser: the server runs in-process on a generated log, and
/// headless Chromium (Debian's `chromium`, which `.ci/run` installs) loads the page and is
/// driven over the DevTools protocol by `Tests/interop/audit_view_browser.py`.
@Suite("Web audit view in headless Chromium")
struct AuditViewBrowserTests {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let driver = packageRoot.appendingPathComponent("Tests/interop/audit_view_browser.py").path
    static let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// Renders the DAG (every window loaded on scroll: one row per entry and one edge per parent
    /// link), then goes entry → its first parent → that parent's key history by clicking, and
    /// saves a screenshot (to `docs/audit-view.png` when `CAIRN_UPDATE_SCREENSHOT=1`).
    @Test func rendersTheDAGAndNavigatesEntryParentKeyHistory() async throws {
        let chromium = try #require(Self.chromium, "chromium is needed for this test (.ci/run installs it)")
        let seed = randomizedTestSeed("AuditViewBrowserTests")
        let root = temporaryPath("audit-view")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let generated = try await AuditTestLog.make(root: root, seed: seed)
        let log = generated.log

        var all = LogFilter()
        all.newestFirst = true
        let entries = try await log.log(all)
        let byID = Dictionary(uniqueKeysWithValues: entries.map { ($0.entry.id, $0) })
        #expect(entries.contains { $0.entry.kind == .merge }, "seed \(seed): the generated log has merges")
        #expect(entries.contains { $0.inert }, "seed \(seed): the revoked writer left inert entries")
        // The newest put whose first parent is a put: its parent has a key to follow.
        let start = try #require(entries.first { stored in
            guard stored.entry.kind == .put, let parent = stored.entry.parents.first else { return false }
            return byID[parent]?.entry.kind == .put
        })
        let parent = try #require(byID[start.entry.parents[0]])
        let (bucket, key) = try #require(parent.entry.payload.target)

        let update = ProcessInfo.processInfo.environment["CAIRN_UPDATE_SCREENSHOT"] == "1"
        let screenshot = update ? Self.packageRoot.appendingPathComponent("docs/audit-view.png").path : root + "/audit-view.png"
        let output = try await withServedLog(log) { address in
            try await runDriver(["walk", "http://\(address)", start.entry.id.hex, screenshot], chromium: chromium)
        }
        let seen = try #require(try JSONSerialization.jsonObject(with: output) as? [String: Any], "the driver prints one JSON object")

        let parentLinks: Int = entries.map(\.entry.parents.count).reduce(0, +)
        let rows: Int = seen["rows"] as? Int ?? -1
        let edges: Int = seen["edges"] as? Int ?? -1
        let firstWindow: Int = seen["first_window_rows"] as? Int ?? 0
        let inDOM: Int = seen["rows_in_dom"] as? Int ?? 0
        #expect(rows == entries.count, "seed \(seed): one row per entry")
        #expect(edges == parentLinks, "seed \(seed): one edge per parent link")
        #expect(firstWindow > 0 && firstWindow < entries.count, "seed \(seed): the first window is not the whole log")
        #expect(inDOM > 0 && inDOM < entries.count, "seed \(seed): only the rows on screen are in the page")
        #expect(seen["entry"] as? String == start.entry.id.hex)
        #expect(seen["selected_row"] as? String == start.entry.id.hex, "the entry's row is selected in the graph")
        let verification: [String] = seen["verification"] as? [String] ?? []
        #expect(!verification.isEmpty && verification.allSatisfy { $0.hasPrefix("✓") })
        #expect(seen["parent"] as? String == parent.entry.id.hex)
        #expect(seen["key"] as? String == "\(bucket)/\(key)")

        let history = try await log.history(bucket, key)
        let versions: [[String: String]] = seen["versions"] as? [[String: String]] ?? []
        let shown: [String] = versions.map { $0["id"] ?? "" }
        let newestFirst: [String] = history.versions.reversed().map { String($0.entry.id.hex.prefix(12)) }
        #expect(shown == newestFirst)
        let shownWinner: String? = versions.first { $0["status"] == "winner" }?["id"]
        let winner: String? = history.winner.map { String($0.hex.prefix(12)) }
        #expect(shownWinner == winner)

        let png = try Data(contentsOf: URL(fileURLWithPath: screenshot))
        #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]), "the screenshot is a PNG")
    }

    /// Runs the driver script on a thread of its own (it blocks until the browser is done);
    /// returns its stdout.
    private func runDriver(_ arguments: [String], chromium: String) async throws -> Data {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread { continuation.resume(with: Result { try runDriverBlocking(arguments, chromium: chromium) }) }
        }
    }

    private func runDriverBlocking(_ arguments: [String], chromium: String) throws -> Data {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", Self.driver] + arguments
        process.environment = ProcessInfo.processInfo.environment.merging(["CHROMIUM": chromium]) { $1 }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let output = out.fileHandleForReading.readDataToEndOfFile()
        let errors = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw DriverError(message: String(decoding: errors, as: UTF8.self))
        }
        return output
    }

    struct DriverError: Error, CustomStringConvertible {
        let message: String
        var description: String { "the browser driver failed: \(message)" }
    }
}
