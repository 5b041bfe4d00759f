import CairnReconcile
import Testing

private struct WorkedExample: Decodable {
    struct Initiate: Decodable {
        let length: Int
        let hex: String
        let specRangePrefixes: [String]
        let specFirstFingerprint: String
        let specLastFingerprint: String
    }
    struct Reply: Decodable { let length: Int; let hex: String; let specPrefix: String; let specIDPrefixes: [String] }
    let client: [FixtureItem]
    let server: [FixtureItem]
    let initiate: Initiate
    let reply: Reply
    let have: [String]
    let need: [String]
    let specHavePrefix: String
    let specNeedPrefix: String
}

/// Spec §1.11, byte for byte.
@Suite struct WorkedExampleTests {
    private let example: WorkedExample
    private let client: VectorStorage
    private let server: VectorStorage

    init() throws {
        example = try loadFixture("worked-example.json", as: WorkedExample.self)
        client = try VectorStorage(items: example.client.map(\.item))
        server = try VectorStorage(items: example.server.map(\.item))
    }

    @Test func initiateMatchesSpecPrefixesAndReference() throws {
        let message = try ReconcileInitiator(storage: client).initiate()
        #expect(message.count == example.initiate.length)
        #expect(hexString(message) == example.initiate.hex)
        // Walk the 16 ranges: each starts with the spec's bytes and carries a 16-byte fingerprint.
        var offset = 1
        for (index, prefix) in example.initiate.specRangePrefixes.enumerated() {
            let head = hexBytes(prefix)
            #expect(Array(message[offset..<offset + head.count]) == head, "range \(index)")
            let fingerprint = hexString(message[offset + head.count..<offset + head.count + 16])
            if index == 0 { #expect(fingerprint == example.initiate.specFirstFingerprint) }
            if index == 15 { #expect(fingerprint == example.initiate.specLastFingerprint) }
            offset += head.count + 16
        }
        #expect(offset == message.count)
    }

    @Test func replyMatchesSpec() throws {
        let message = try ReconcileInitiator(storage: client).initiate()
        let reply = try ReconcileResponder(storage: server).reconcile(message)
        #expect(reply.count == example.reply.length)
        #expect(hexString(reply).hasPrefix(example.reply.specPrefix))
        #expect(hexString(reply) == example.reply.hex)
        let prefixLength = example.reply.specPrefix.count / 2
        for (index, idPrefix) in example.reply.specIDPrefixes.enumerated() {
            let start = prefixLength + 32 * index
            #expect(hexString(reply[start..<start + 32]).hasPrefix(idPrefix))
        }
    }

    @Test func sessionFindsHaveAndNeedThenStops() throws {
        let transcript = try runSession(client: client, server: server)
        #expect(transcript.rounds == 1)
        #expect(transcript.haveRounds == [[try #require(ItemID(hex: example.have[0]))]])
        #expect(transcript.needRounds == [[try #require(ItemID(hex: example.need[0]))]])
        #expect(example.have[0].hasPrefix(example.specHavePrefix))
        #expect(example.need[0].hasPrefix(example.specNeedPrefix))
    }
}
