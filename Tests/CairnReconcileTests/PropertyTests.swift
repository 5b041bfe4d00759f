import CairnReconcile
import CairnTestSupport
import Testing

/// Randomized sessions: the union of have and need must be exactly the symmetric difference.
@Suite struct PropertyTests {
    /// One generated scenario.
    struct Scenario: CustomStringConvertible {
        var client: [Item]
        var server: [Item]
        var limit: Int
        var label: String
        var description: String { "\(label) client=\(client.count) server=\(server.count) limit=\(limit)" }
    }

    static func makeScenario(_ random: inout SplitMix64, index: Int) -> Scenario {
        let size = Int(random.next(below: index % 4 == 0 ? 4000 : 600))
        let limit = [0, 4096, 16384][index % 3]
        // Narrow timestamp spreads force equal timestamps, hence id-prefix bounds.
        let spread = [1, 3, 1000, 1 << 40][Int(random.next(below: 4))]
        let base = random.next(below: 1 << 50)
        var common: [Item] = []
        for _ in 0..<size { common.append(Item(timestamp: base + random.next(below: UInt64(spread)), id: random.nextID())) }
        var client = common
        var server = common
        let clustered = random.next(below: 2) == 0
        let differences = Int(random.next(below: UInt64(max(size / 4, 1)) + 1))
        for _ in 0..<differences {
            let timestamp = clustered ? base + UInt64(spread) + random.next(below: 8) : base + random.next(below: UInt64(spread))
            let item = Item(timestamp: timestamp, id: random.nextID())
            switch random.next(below: 3) {
            case 0: client.append(item)
            case 1: server.append(item)
            default:
                // Drop a common item from one side instead of adding a new one.
                if !common.isEmpty {
                    let victim = common[Int(random.next(below: UInt64(common.count)))]
                    if random.next(below: 2) == 0 { client.removeAll { $0 == victim } } else { server.removeAll { $0 == victim } }
                }
            }
        }
        return Scenario(client: client, server: server, limit: limit,
                        label: "\(clustered ? "clustered" : "scattered") spread=\(spread)")
    }

    @Test func haveAndNeedAreTheSymmetricDifference() throws {
        let seed = randomizedTestSeed("PropertyTests.haveAndNeedAreTheSymmetricDifference")
        var random = SplitMix64(seed: seed)
        for index in 0..<24 {
            let scenario = Self.makeScenario(&random, index: index)
            let transcript = try runSession(
                client: try VectorStorage(items: scenario.client), server: try VectorStorage(items: scenario.server),
                clientLimit: scenario.limit, serverLimit: scenario.limit)
            let clientIDs = Set(scenario.client.map(\.id))
            let serverIDs = Set(scenario.server.map(\.id))
            #expect(transcript.have == clientIDs.subtracting(serverIDs), "seed=\(seed) #\(index) \(scenario)")
            #expect(transcript.need == serverIDs.subtracting(clientIDs), "seed=\(seed) #\(index) \(scenario)")
            #expect(transcript.rounds <= RoundLimit.default(frameSizeLimit: scenario.limit))
            if scenario.limit > 0 {
                #expect(transcript.messages.dropFirst().allSatisfy { $0.count <= scenario.limit }, "seed=\(seed) #\(index)")
            }
        }
    }
}
