import CairnCore
import CairnStore
import Cairn
import Foundation
import Testing

/// A storage engine's manifest store, built on Cairn the way an embedder would: table name →
/// manifest (a small JSON listing object ids). Exercises the public API end to end.
actor ManifestStore {
    struct Manifest: Codable, Equatable {
        var version: Int
        var objects: [String]
    }

    let log: CairnLog
    init(log: CairnLog) { self.log = log }

    func commit(_ table: String, _ manifest: Manifest) async throws {
        try await log.put("manifests", table, Array(try JSONEncoder().encode(manifest)))
    }

    func manifest(_ table: String) async throws -> Manifest? {
        guard let bytes = try await log.get("manifests", table) else { return nil }
        return try JSONDecoder().decode(Manifest.self, from: Data(bytes))
    }

    func drop(_ table: String) async throws { try await log.delete("manifests", table) }

    func tables(prefix: String = "") async throws -> [String] {
        try await log.list("manifests", prefix: prefix).map(\.key)
    }
}

func temporaryPath(_ name: String = "log") -> String {
    NSTemporaryDirectory() + "cairn-lib-\(name)-\(UUID().uuidString)"
}

@Suite struct ManifestStoreTests {
    @Test func aManifestStoreEndToEnd() async throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = ManifestStore(log: try CairnLog.create(at: path, name: "manifests"))
        try await store.commit("orders", .init(version: 1, objects: ["obj-1"]))
        try await store.commit("orders", .init(version: 2, objects: ["obj-1", "obj-2"]))
        try await store.commit("order_lines", .init(version: 1, objects: ["obj-9"]))
        try await store.commit("users", .init(version: 1, objects: []))
        try await store.drop("users")
        #expect(try await store.manifest("orders") == .init(version: 2, objects: ["obj-1", "obj-2"]))
        #expect(try await store.manifest("users") == nil)
        #expect(try await store.tables() == ["order_lines", "orders"])
        #expect(try await store.tables(prefix: "order_") == ["order_lines"])

        let history = try await store.log.history("manifests", "orders")
        #expect(history.versions.count == 2 && history.winner == history.versions.last?.entry.id)
        #expect(try await store.log.verify().isClean)

        // Reopen from disk: same state, nothing replayed.
        let reopened = ManifestStore(log: try CairnLog.open(at: path))
        #expect(try await reopened.manifest("orders")?.version == 2)
        #expect(try await reopened.log.heads().count == 1)
    }

    @Test func largeValuesWork() async throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try CairnLog.create(at: path, name: "big")
        var rng = SystemRandomNumberGenerator()
        let value = (0..<(1 << 20)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let entry = try await log.put("blobs", "one-mib", value)
        #expect(try await log.get("blobs", "one-mib") == value)
        guard case .put(_, _, let ref) = entry.payload else { Issue.record("not a put"); return }
        #expect(ref.length == 1 << 20 && entry.bodyBytes.count < 200)
    }

    @Test func theNodeKeyIsPrivateAndTheDirectoryIsChecked() async throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try CairnLog.create(at: path, name: "k")
        let attributes = try FileManager.default.attributesOfItem(atPath: log.directory.keyPath)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        expectFailure(DataDirectoryError.alreadyInitialized(path: path)) { try CairnLog.create(at: path, name: "again") }
        let missing = temporaryPath("missing")
        expectFailure(DataDirectoryError.missing(path: missing)) { try CairnLog.open(at: missing) }
        chmod(log.directory.keyPath, 0o644)
        expectFailure(of: DataDirectoryError.self) { try CairnLog.open(at: path) }
    }

    @Test func purgedValuesReportPurgedAndTheLogStillVerifies() async throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try CairnLog.create(at: path, name: "p")
        try await log.put("secrets", "api-key", Array("hunter2".utf8))
        let digest = try await log.purge("secrets", "api-key")
        await expectFailure(ValueError.purged(digest)) { try await log.get("secrets", "api-key") }
        #expect(try await log.verify().isClean)
    }
}
