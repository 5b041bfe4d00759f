import Cairn
import CairnAPI
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
        let seed = UInt64(ProcessInfo.processInfo.environment["CAIRN_SEED"] ?? "") ?? UInt64.random(in: 1...UInt64(UInt32.max))
        print("AuditViewBrowserTests seed \(seed) (set CAIRN_SEED to repeat)")
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
        let seen = try await withServedLog(log) { address in
            try await runDriver(["walk", "http://\(address)", start.entry.id.hex, screenshot], chromium: chromium)
        }

        #expect(seen["rows"] as? Int == entries.count, "seed \(seed): one row per entry")
        #expect(seen["edges"] as? Int == entries.reduce(0) { $0 + $1.entry.parents.count }, "seed \(seed): one edge per parent link")
        #expect((seen["first_window_rows"] as? Int ?? 0) < entries.count, "seed \(seed): the first window is not the whole log")
        let inDOM = seen["rows_in_dom"] as? Int ?? 0
        #expect(inDOM > 0 && inDOM < entries.count, "seed \(seed): only the rows on screen are in the page")
        #expect(seen["entry"] as? String == start.entry.id.hex)
        #expect(seen["selected_row"] as? String == start.entry.id.hex, "the entry's row is selected in the graph")
        #expect((seen["verification"] as? [String] ?? []).allSatisfy { $0.hasPrefix("✓") })
        #expect(seen["parent"] as? String == parent.entry.id.hex)
        #expect(seen["key"] as? String == "\(bucket)/\(key)")

        let history = try await log.history(bucket, key)
        let versions = seen["versions"] as? [[String: String]] ?? []
        #expect(versions.map { $0["id"] ?? "" } == history.versions.reversed().map { String($0.entry.id.hex.prefix(12)) })
        #expect(versions.first { $0["status"] == "winner" }?["id"] == history.winner.map { String($0.hex.prefix(12)) })

        let png = try Data(contentsOf: URL(fileURLWithPath: screenshot))
        #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]), "the screenshot is a PNG")
    }

    /// Runs the driver script on a thread of its own (it blocks until the browser is done);
    /// its stdout is one JSON object.
    private func runDriver(_ arguments: [String], chromium: String) async throws -> [String: Any] {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread { continuation.resume(with: Result { try runDriverBlocking(arguments, chromium: chromium) }) }
        }
    }

    private func runDriverBlocking(_ arguments: [String], chromium: String) throws -> [String: Any] {
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
        guard let object = try JSONSerialization.jsonObject(with: output) as? [String: Any] else {
            throw DriverError(message: "not one JSON object: \(String(decoding: output, as: UTF8.self))")
        }
        return object
    }

    struct DriverError: Error, CustomStringConvertible {
        let message: String
        var description: String { "the browser driver failed: \(message)" }
    }
}
