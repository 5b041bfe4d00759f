import CairnCore
import CairnStore
import Cairn
import CairnReconcile
import CairnSQLite
import Foundation
import Testing

/// The facade keeps the `(hlc, id)` reconciliation index current with every write, so two
/// nodes' files reconcile to exactly the entries one has and the other lacks.
@Suite struct ReconcileIntegrationTests {
    @Test func twoNodesReconcileToExactlyTheirDifference() async throws {
        let aPath = temporaryPath("a"), bPath = temporaryPath("b")
        defer { for p in [aPath, bPath, aPath + ".bundle"] { try? FileManager.default.removeItem(atPath: p) } }
        let a = try CairnLog.create(at: aPath, name: "rbsr")
        try await a.write((0..<300).map { .put(bucket: "t", key: "k\($0)", value: [UInt8($0 % 256)]) })
        let b = try await secondNode(of: a, at: bPath)
        try await a.write((0..<40).map { .put(bucket: "t", key: "a\($0)", value: [1]) })
        for i in 0..<30 { try await b.put("t", "b\(i)", [2]) }  // one by one: each write catches the index up

        let onlyA = try await ids(of: a).subtracting(ids(of: b))
        let onlyB = try await ids(of: b).subtracting(ids(of: a))
        #expect(onlyA.count == 40 && onlyB.count == 30)

        // Reconcile over the two files through fresh connections, as a sync service would.
        let client = try SQLiteStorage(database: Database(path: a.directory.databasePath))
        let server = try SQLiteStorage(database: Database(path: b.directory.databasePath))
        #expect(try client.catchUp() == 0 && server.catchUp() == 0, "the index was already current")
        let initiator = try ReconcileInitiator(storage: client)
        let responder = try ReconcileResponder(storage: server)
        var message: [UInt8]? = try initiator.initiate()
        var have = Set<String>(), need = Set<String>()
        var rounds = 0
        while let query = message {
            rounds += 1
            let result = try initiator.reconcile(try responder.reconcile(query))
            have.formUnion(result.have.map { Hex.encode($0.bytes) })
            need.formUnion(result.need.map { Hex.encode($0.bytes) })
            message = result.next
        }
        #expect(have == Set(onlyA.map(\.hex)) && need == Set(onlyB.map(\.hex)))
        #expect(rounds <= 4)
    }

    private func ids(of log: CairnLog) async throws -> Set<Hash32> {
        Set(try await log.log(LogFilter()).map(\.entry.id))
    }
}
