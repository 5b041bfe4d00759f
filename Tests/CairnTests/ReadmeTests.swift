import Foundation
import Testing

/// README's library block is `ReadmeSnippet.swift`, verbatim: compiled with the tests, and run here.
@Suite struct ReadmeTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func theLibrarySnippetIsTheOneInTheReadme() throws {
        let readme = try String(contentsOf: Self.root.appendingPathComponent("README.md"), encoding: .utf8)
        let snippet = try String(contentsOf: Self.root.appendingPathComponent("Tests/CairnTests/ReadmeSnippet.swift"), encoding: .utf8)
        let blocks = readme.components(separatedBy: "```swift\n").dropFirst().map { $0.components(separatedBy: "```")[0] }
        #expect(blocks.contains(snippet), "README's library block and Tests/CairnTests/ReadmeSnippet.swift differ: copy one to the other")
    }

    @Test func theLibrarySnippetRuns() async throws {
        // A directory whose parents do not exist yet: create(at:) makes them.
        let base = temporaryPath("readme")
        defer { try? FileManager.default.removeItem(atPath: base) }
        try await runEngine(in: base + "/deeper/still")
        #expect(FileManager.default.fileExists(atPath: base + "/deeper/still/manifests/cairn.db"))
    }
}
