import CairnReconcile
import CairnSQLite
import CairnTestSupport
import Testing

@Suite struct SubrangeStorageTests {
    @Test func viewMatchesFilteredItems() throws {
        var random = SplitMix64(seed: 21)
        let items = randomItems(800, spread: 1000, random: &random)
        let base = try VectorStorage(items: items)
        let lower = try Bound(timestamp: 1_300, idPrefix: [0x80])
        let upper = Bound(timestamp: 1_700)
        let view = try SubrangeStorage(base: base, lowerBound: lower, upperBound: upper)
        let expected = try VectorStorage(items: items.filter { !$0.isBelow(lower) && $0.isBelow(upper) })
        try expectSameContents(view, as: expected, random: &random)
        #expect(throws: ReconcileError.self) { try SubrangeStorage(base: base, lowerBound: upper, upperBound: lower) }
    }

    @Test func reconcilesOnlyTheWindow() throws {
        var random = SplitMix64(seed: 22)
        let common = randomItems(2000, spread: 10_000, random: &random)
        let clientOnly = randomItems(60, spread: 10_000, random: &random)
        let serverOnly = randomItems(60, spread: 10_000, random: &random)
        let window = (lower: Bound(timestamp: 6_000), upper: Bound(timestamp: 9_000))
        let serverDB = try ScratchDatabase()
        try serverDB.insert(common + serverOnly)
        let server = try SubrangeStorage(base: SQLiteStorage(database: serverDB.database, configuration: smallBuckets()),
                                         lowerBound: window.lower, upperBound: window.upper)
        let client = try SubrangeStorage(base: VectorStorage(items: common + clientOnly),
                                         lowerBound: window.lower, upperBound: window.upper)
        let transcript = try runSession(client: client, server: server)
        let inWindow = { (item: Item) in !item.isBelow(window.lower) && item.isBelow(window.upper) }
        #expect(transcript.have == Set(clientOnly.filter(inWindow).map(\.id)))
        #expect(transcript.need == Set(serverOnly.filter(inWindow).map(\.id)))
        #expect(!transcript.have.isEmpty && !transcript.need.isEmpty)
    }
}
