import CairnCore
import CairnStore
import Cairn
import Foundation
import Testing

@Suite struct ChangeStreamTests {
    @Test func changesComeInIngestOrderWithBeforeAndAfterImages() async throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try CairnLog.create(at: path, name: "cdc")
        let v1 = try await log.put("t", "k", [1])
        let v2 = try await log.put("t", "k", [2])
        let gone = try await log.delete("t", "k")
        var changes: [Change] = []
        for try await change in log.changes(after: 0) { changes.append(change) }
        #expect(changes.map(\.operation) == ["g", "c", "u", "d"])
        #expect(changes.map(\.cursor) == [1, 2, 3, 4])
        #expect(changes[2].before?.entry.id == v1.id && changes[2].after?.entry.id == v2.id)
        #expect(changes[3].before?.entry.id == v2.id && changes[3].after?.entry.id == gone.id)

        // Resuming after a cursor yields exactly what follows it.
        var resumed: [Int64] = []
        for try await change in log.changes(after: 2) { resumed.append(change.cursor) }
        #expect(resumed == [3, 4])
    }

    @Test func followingSeesWritesOfAnotherConnection() async throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try CairnLog.create(at: path, name: "follow")
        let stream = log.changes(after: 1, follow: true, pollMilliseconds: 5)
        let reader = Task {
            var seen: [String] = []
            for try await change in stream {
                seen.append(change.entry.payload.target?.key ?? "")
                if seen.count == 3 { break }
            }
            return seen
        }
        // A second, independent handle on the same directory, as another process would have.
        let writer = try CairnLog.open(at: path)
        for key in ["a", "b", "c"] { try await writer.put("t", key, [0]) }
        #expect(try await reader.value == ["a", "b", "c"])
    }

    @Test func aLosingLateWriteReportsTheWinnerAsItsAfterImage() async throws {
        let a = temporaryPath("a"), b = temporaryPath("b")
        defer { for p in [a, b] { try? FileManager.default.removeItem(atPath: p) } }
        let first = try CairnLog.create(at: a, name: "lww")
        let second = try await secondNode(of: first, at: b)
        let early = try await second.put("t", "k", [1])     // older HLC…
        try await Task.sleep(nanoseconds: 5_000_000)
        let late = try await first.put("t", "k", [2])       // …newer HLC, lands first on `first`
        let bundle = b + ".bundle"
        defer { try? FileManager.default.removeItem(atPath: bundle) }
        try await second.exportBundle(to: bundle)
        _ = try await first.importBundle(from: bundle)
        var last: Change?
        for try await change in first.changes(after: 0) { last = change }
        #expect(last?.entry.id == early.id)
        #expect(last?.after?.entry.id == late.id, "the early write lost; the key still shows the late one")
    }
}

/// A second node of `log`: another data directory holding the same genesis, with its own key,
/// granted as a writer by `log`.
func secondNode(of log: CairnLog, at path: String) async throws -> CairnLog {
    let node = try CairnLog.join(at: path, genesis: try await log.genesis)
    try await log.addWriter(node.nodeKey)
    // The grant must reach the new node before it can write.
    let bundle = path + ".grant"
    defer { try? FileManager.default.removeItem(atPath: bundle) }
    try await log.exportBundle(to: bundle)
    _ = try await node.importBundle(from: bundle)
    return node
}
