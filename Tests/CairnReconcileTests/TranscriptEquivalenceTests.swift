import CairnReconcile
import CairnSQLite
import CairnTestSupport
import Testing

/// The SQLite backend must produce the very same messages as the in-memory one (and so as the
/// C++ reference).
@Suite struct TranscriptEquivalenceTests {
    @Test(arguments: try referenceCases())
    func sqliteTranscriptMatchesReference(_ referenceCase: ReferenceCase) throws {
        let (clientItems, serverItems) = referenceCase.makeItems()
        // The reference's near-max timestamps do not fit Cairn's HLC range (< 2^63).
        guard (clientItems + serverItems).allSatisfy({ $0.timestamp < 1 << 63 }) else { return }
        let clientDB = try ScratchDatabase()
        let serverDB = try ScratchDatabase()
        try clientDB.insert(clientItems)
        try serverDB.insert(serverItems)
        let transcript = try runSession(
            client: try SQLiteStorage(database: clientDB.database, configuration: smallBuckets()),
            server: try SQLiteStorage(database: serverDB.database, configuration: smallBuckets()),
            clientLimit: referenceCase.parameters.clientFrameLimit, serverLimit: referenceCase.parameters.serverFrameLimit)
        referenceCase.check(transcript)
    }

    @Test func randomSetsGiveIdenticalTranscriptsOnBothBackends() throws {
        let seed = randomizedTestSeed("TranscriptEquivalenceTests.randomSetsGiveIdenticalTranscriptsOnBothBackends")
        var random = SplitMix64(seed: seed)
        for index in 0..<10 {
            let scenario = PropertyTests.makeScenario(&random, index: index)
            let clientDB = try ScratchDatabase()
            let serverDB = try ScratchDatabase()
            // Insert in two batches so that the aggregates are built, then caught up with splits.
            let half = scenario.client.count / 2
            try clientDB.insert(scenario.client[..<half])
            let sqliteClient = try SQLiteStorage(database: clientDB.database, configuration: smallBuckets())
            try clientDB.insert(scenario.client[half...])
            try serverDB.insert(scenario.server)
            let sqliteServer = try SQLiteStorage(database: serverDB.database, configuration: smallBuckets())

            let onSQLite = try runSession(client: sqliteClient, server: sqliteServer,
                                          clientLimit: scenario.limit, serverLimit: scenario.limit)
            let inMemory = try runSession(client: try VectorStorage(items: scenario.client),
                                          server: try VectorStorage(items: scenario.server),
                                          clientLimit: scenario.limit, serverLimit: scenario.limit)
            #expect(onSQLite.messages == inMemory.messages, "seed=\(seed) #\(index) \(scenario)")
            #expect(onSQLite.haveRounds == inMemory.haveRounds, "seed=\(seed) #\(index)")
            #expect(onSQLite.needRounds == inMemory.needRounds, "seed=\(seed) #\(index)")
            let clientIDs = Set(scenario.client.map(\.id))
            let serverIDs = Set(scenario.server.map(\.id))
            #expect(onSQLite.have.union(onSQLite.need) == clientIDs.symmetricDifference(serverIDs), "seed=\(seed) #\(index)")
        }
    }
}
