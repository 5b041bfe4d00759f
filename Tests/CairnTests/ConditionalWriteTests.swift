import Cairn
import Foundation
import Testing

@Suite struct ConditionalWriteTests {
    @Test func aPutIfCurrentWritesOnlyOverTheNamedWinner() async throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try CairnLog.create(at: path, name: "cas")
        let first = try await log.put("m", "k", [1], if: .absent)
        let error = await #expect(throws: CairnError.self) { try await log.put("m", "k", [9], if: .absent) }
        #expect(error?.code == .conditionFailed)
        let second = try await log.put("m", "k", [2], if: .current(first.id))
        let stale = await #expect(throws: CairnError.self) { try await log.put("m", "k", [9], if: .current(first.id)) }
        #expect(stale?.code == .conditionFailed)
        #expect(try await log.get("m", "k") == [2])
        let gone = try await log.delete("m", "k", if: .current(second.id))
        #expect(try await log.state("m", "k")?.entryID == gone.id)
        // Deleted counts as absent again.
        try await log.put("m", "k", [3], if: .absent)
        #expect(try await log.get("m", "k") == [3])
    }

    /// Many writers race to advance one key from the same version: exactly one wins each round,
    /// also when the writers are separate connections (as separate processes would be).
    @Test func racingCompareAndSetsHaveOneWinnerPerVersion() async throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try CairnLog.create(at: path, name: "race")
        let others = try (0..<3).map { _ in try CairnLog.open(at: path) }
        let writers = [log] + others
        var current = try await log.put("m", "counter", Array("0".utf8)).id
        for round in 1...10 {
            let expected = current
            let winners = try await withThrowingTaskGroup(of: Hash32?.self) { group in
                for (index, writer) in writers.enumerated() {
                    group.addTask {
                        do {
                            return try await writer.put("m", "counter", Array("\(round)/\(index)".utf8), if: .current(expected)).id
                        } catch let error as CairnError where error.code == .conditionFailed {
                            return nil
                        }
                    }
                }
                return try await group.reduce(into: [Hash32]()) { if let id = $1 { $0.append(id) } }
            }
            #expect(winners.count == 1, "round \(round): \(winners.count) writers succeeded")
            current = try #require(winners.first)
            #expect(try await log.state("m", "counter")?.entryID == current)
        }
        #expect(try await log.history("m", "counter").versions.count == 11)
    }
}
