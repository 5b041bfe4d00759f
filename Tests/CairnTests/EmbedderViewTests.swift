import Cairn
import Foundation
import Testing

/// What an embedder sees with `import Cairn` alone: the log and the value types of its API,
/// no store, no SQLite.
@Suite struct EmbedderViewTests {
    @Test func theLibraryIsUsableWithImportCairnAlone() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-embed-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try CairnLog.create(at: path, name: "embedded")
        let entry: SignedEntry = try await log.put("tables", "orders", Array("v1".utf8))
        let state: KeyState? = try await log.state("tables", "orders")
        #expect(state?.entryID == entry.id)
        let heads: [Head] = try await log.heads()
        let writers: [WriterInfo] = try await log.writers()
        let key: PublicKey = log.nodeKey
        #expect(heads.count == 1 && writers.map(\.key) == [key])
        let report: VerifyReport = try await log.verify()
        #expect(report.isClean)
    }
}
