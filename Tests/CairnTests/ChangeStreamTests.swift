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
        #expect(changes.map(\.operation.rawValue) == ["g", "c", "u", "d"])
        #expect(changes.map(\.cursor) == [1, 2, 3, 4])
        #expect(changes.map(\.cause) == [.entry, .entry, .entry, .entry])
        #expect(changes[1].bucket == "t" && changes[1].key == "k" && changes[1].before == nil)
        #expect(changes[2].before?.entryID == v1.id && changes[2].after?.entryID == v2.id)
        #expect(changes[3].before?.entryID == v2.id && changes[3].after?.entryID == gone.id)
        #expect(changes[3].after?.isDeleted == true)

        // Resuming after a cursor yields exactly what follows it.
        var resumed: [Cursor] = []
        for try await change in log.changes(after: Cursor(2)) { resumed.append(change.cursor) }
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
        #expect(last?.after?.entryID == late.id, "the early write lost; the key still shows the late one")
        #expect(last?.before?.entryID == late.id && last?.operation == .update)
    }

    /// The stream never rewrites history: a revocation that makes a write inert later shows up
    /// as its own change, and a replay from 0 shows at every cursor what the live stream showed.
    @Test func aRevocationIsItsOwnChangeAndTheReplayMatchesTheLiveStream() async throws {
        let a = temporaryPath("a"), b = temporaryPath("b")
        defer { for p in [a, b] { try? FileManager.default.removeItem(atPath: p) } }
        let first = try CairnLog.create(at: a, name: "revoke")
        let second = try await secondNode(of: first, at: b)
        try await first.put("t", "k", [1])
        try await Task.sleep(nanoseconds: 2_000_000)
        let written = try await second.put("t", "k", [2])
        let bundle = b + ".bundle"
        defer { try? FileManager.default.removeItem(atPath: bundle) }
        try await second.exportBundle(to: bundle)
        _ = try await first.importBundle(from: bundle)

        var live: [Change] = []
        for try await change in first.changes(values: true) { live.append(change) }
        #expect(live.last?.entry.id == written.id && live.last?.operation == .update && live.last?.inert == false)

        // Revoke the second node from before its write: the write becomes inert.
        let revocation = try await first.revokeWriter(second.nodeKey, from: HLC(rawValue: written.hlc.rawValue - 1))
        var replay: [Change] = []
        for try await change in first.changes(values: true) { replay.append(change) }
        // The revocation is written after a merge of the two heads: merge, revocation, its effect.
        try #require(replay.count == live.count + 3)
        for (old, new) in zip(live, replay) { #expect(Snapshot(old) == Snapshot(new), "cursor \(old.cursor) changed") }
        #expect(replay[live.count].operation == .merge)
        let own = replay[live.count + 1], flipped = replay[live.count + 2]
        #expect(own.operation == .writerRevoked && own.cause == .entry && own.entry.id == revocation.id)
        #expect(flipped.cause == .writerSet && flipped.entry.id == revocation.id)
        #expect(flipped.bucket == "t" && flipped.key == "k" && flipped.operation == .update)
        #expect(flipped.before?.entryID == written.id && flipped.after?.entryID != written.id)
        #expect(flipped.value == [1], "the first node's write wins again")
        #expect(try await first.get("t", "k") == [1])
        #expect(own.transaction?.id == flipped.transaction?.id && flipped.transaction?.totalOrder == 3 && flipped.transaction?.eventCount == 3)
    }

    @Test func aLocalBatchIsOneTransaction() async throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try CairnLog.create(at: path, name: "txn")
        try await log.write([.put(bucket: "a", key: "1", value: [1]), .put(bucket: "b", key: "1", value: [2]), .put(bucket: "a", key: "2", value: [3])])
        try await log.put("a", "3", [4])
        var changes: [Change] = []
        for try await change in log.changes(after: 1) { changes.append(change) }
        let transactions = changes.compactMap(\.transaction)
        try #require(transactions.count == 4)
        #expect(transactions.map(\.id) == [2, 2, 2, 5])
        #expect(transactions.map(\.totalOrder) == [1, 2, 3, 1])
        #expect(transactions.map(\.dataCollectionOrder) == [1, 1, 2, 1])
        #expect(transactions.map(\.eventCount) == [3, 3, 3, 1])
    }

    @Test func aSnapshotReadsTheStateThenContinuesFromItsCursor() async throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try CairnLog.create(at: path, name: "snap")
        try await log.put("t", "a", [1])
        try await log.put("t", "b", [2])
        try await log.put("t", "c", [3])
        try await log.delete("t", "c")
        let stream = log.changes(follow: true, snapshot: true, values: true, pollMilliseconds: 5)
        let reader = Task {
            var seen: [Change] = []
            for try await change in stream {
                seen.append(change)
                if seen.count == 3 { break }
            }
            return seen
        }
        try await Task.sleep(nanoseconds: 100_000_000)
        let writer = try CairnLog.open(at: path)
        try await writer.put("t", "d", [4])
        let seen = try await reader.value
        #expect(seen.map(\.operation) == [.read, .read, .create])
        #expect(seen.map(\.key) == ["a", "b", "d"])
        #expect(seen.map(\.isLastSnapshotRow) == [false, true, false])
        #expect(seen[0].cursor == 5 && seen[0].value == [1] && seen[2].cursor == 6)
    }

    @Test func failoverResumesAfterAnEntryOnAnotherNode() async throws {
        let a = temporaryPath("a"), b = temporaryPath("b")
        defer { for p in [a, b] { try? FileManager.default.removeItem(atPath: p) } }
        let first = try CairnLog.create(at: a, name: "failover")
        try await first.put("t", "x", [0])
        let second = try await secondNode(of: first, at: b)
        let seen = try await first.put("t", "y", [1])
        let next = try await first.put("t", "z", [2])
        let bundle = b + ".bundle"
        defer { try? FileManager.default.removeItem(atPath: bundle) }
        try await first.exportBundle(to: bundle)
        _ = try await second.importBundle(from: bundle)
        var resumed: [Change] = []
        for try await change in second.changes(after: try await second.cursor(afterEntry: seen.id)) { resumed.append(change) }
        #expect(resumed.map(\.entry.id) == [next.id])
        await expectFailure(of: StoreError.self) { try await second.cursor(afterEntry: Hash32(bytes: [UInt8](repeating: 7, count: 32))!) }
    }
}

/// What a change shows, for comparing a replay with the live stream.
private struct Snapshot: Equatable {
    let cursor: Cursor, cause: ChangeCause, operation: ChangeOperation, bucket: String?, key: String?
    let entry: Hash32, inert: Bool, recorded: UInt64, before: ChangeImage?, after: ChangeImage?
    let transaction: ChangeTransaction?, value: [UInt8]?
    init(_ c: Change) {
        (cursor, cause, operation, bucket, key) = (c.cursor, c.cause, c.operation, c.bucket, c.key)
        (entry, inert, recorded, before, after) = (c.entry.id, c.inert, c.recordedMilliseconds, c.before, c.after)
        (transaction, value) = (c.transaction, c.value)
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

@Suite struct LibraryFrictionTests {
    @Test func listPagesInsteadOfStopping() async throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try CairnLog.create(at: path, name: "pages")
        try await log.write((0..<25).map { .put(bucket: "b", key: String(format: "k%02d", $0), value: [UInt8($0)]) })
        var keys: [String] = []
        var page = try await log.list("b", limit: 10)
        keys += page.map(\.key)
        while let next = page.next {
            page = try await log.list("b", after: next, limit: 10)
            keys += page.map(\.key)
        }
        #expect(keys == (0..<25).map { String(format: "k%02d", $0) })
        #expect(try await log.list("b", limit: 25).next == nil)
        #expect(try await log.list("b", limit: 24).next == "k23")
    }

    @Test func dataOverloadsAndDeleteRefusal() async throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try CairnLog.create(at: path, name: "data")
        try await log.put("b", "k", Data([1, 2, 3]))
        #expect(try await log.get("b", "k", as: Data.self) == Data([1, 2, 3]))
        #expect(try await log.get("b", "k") == [1, 2, 3])
        await expectFailure(StoreError.notFound("b/never (no live value to delete)")) { try await log.delete("b", "never") }
        try await log.delete("b", "k")
        await expectFailure(of: StoreError.self) { try await log.delete("b", "k") }
        let cursor = try JSONDecoder().decode(Cursor.self, from: JSONEncoder().encode(Cursor(42)))
        let encoded = String(decoding: try JSONEncoder().encode(cursor), as: UTF8.self)
        #expect(cursor == 42 && encoded == "42")
    }
}
