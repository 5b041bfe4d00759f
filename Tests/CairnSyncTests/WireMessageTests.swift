import CairnCore
import CairnStore
import Cairn
import CairnTestSupport
import Testing

@testable import CairnSync

/// The session messages round-trip, and every malformed, truncated, oversized or padded message
/// is refused with a typed error instead of trapping or allocating without bound.
@Suite struct WireMessageTests {
    static let id = Hash32(bytes: [UInt8](repeating: 7, count: 32))!
    static let key = PublicKey(bytes: [UInt8](repeating: 9, count: 32))!
    static let entry = RawEntry(body: [1, 2, 3], signature: [UInt8](repeating: 5, count: 64), claimedID: id, value: [8, 8])

    static let samples: [SyncMessage] = [
        .hello(.init(minVersion: 1, maxVersion: 3, logID: id, nodeKey: key, capabilities: ["delta-fetch/1", "future/9"])),
        .heads([.init(id: id, hlc: HLC(rawValue: 42))]),
        .fetch(request: 7, wants: [id], haves: [id, id]),
        .entries(stream: 3, batch: 1, [entry, RawEntry(body: [9], signature: entry.signature, claimedID: id)]),
        .ack(stream: 3, batch: 1),
        .done(request: 7, outcome: .tooLarge),
        .need(request: 8, [id]),
        .reconcile(session: 2, fromInitiator: true, [0x61, 0x00]),
        .reconcileRequest,
        .ping(99), .pong(99),
        .bye("shutting down"),
        .entries(stream: 0, batch: 0, [entry, RawEntry(body: [9], signature: entry.signature, claimedID: id)], chunked: .init(index: 1, length: 3 << 20)),
        .valueChunk(stream: 5, digest: id, offset: 1 << 20, [1, 2, 3, 4]),
    ]

    @Test(arguments: samples) func roundTrips(_ message: SyncMessage) throws {
        #expect(try SyncMessage(decoding: message.encoded()) == message)
    }

    @Test(arguments: samples) func everyTruncationIsRefused(_ message: SyncMessage) {
        let bytes = message.encoded()
        for length in 0..<bytes.count {
            #expect(throws: WireError.self) { try SyncMessage(decoding: Array(bytes.prefix(length))) }
        }
    }

    @Test(arguments: samples) func trailingBytesAreRefused(_ message: SyncMessage) {
        #expect(throws: WireError.trailingBytes(1)) { try SyncMessage(decoding: message.encoded() + [0]) }
    }

    @Test func unknownTypeAndBadFieldsAreRefused() {
        #expect(throws: WireError.unknownMessageType(200)) { try SyncMessage(decoding: [200]) }
        #expect(throws: WireError.unknownMessageType(0)) { try SyncMessage(decoding: [0]) }
        var done = SyncMessage.done(request: 1, outcome: .complete).encoded()
        done[done.count - 1] = 9
        #expect(throws: WireError.badField("fetch outcome")) { try SyncMessage(decoding: done) }
    }

    @Test func hostileCountsAreRefusedBeforeAllocating() {
        // "4 billion ids follow" in a 9-byte message.
        #expect(throws: WireError.tooMany(field: "ids", count: Int(UInt32.max), limit: WireLimits.ids)) {
            try SyncMessage(decoding: [7, 0, 0, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF])
        }
        // A count within the limit but beyond the bytes present is a truncation.
        #expect(throws: WireError.truncated(field: "ids")) { try SyncMessage(decoding: [7, 0, 0, 0, 1, 0, 0, 0, 50]) }
        // An entry body claiming 2 GiB.
        var w = ByteWriter()
        w.u8(4); w.u32(0); w.u32(1); w.u32(1); w.raw(Self.id.bytes); w.u32(0x7FFF_FFFF)
        #expect(throws: WireError.messageTooLarge(0x7FFF_FFFF, limit: WireLimits.entryBody)) { try SyncMessage(decoding: w.bytes) }
    }

    @Test func randomMutationsNeverTrap() {
        let seed = randomizedTestSeed("WireMessageTests.randomMutationsNeverTrap")
        var random = SplitMix64(seed: seed)
        for _ in 0..<5000 {
            var bytes = Self.samples[Int(random.next() % UInt64(Self.samples.count))].encoded()
            for _ in 0..<(1 + random.next() % 4) {
                bytes[Int(random.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: random.next())
            }
            _ = try? SyncMessage(decoding: bytes)  // must return or throw, never crash
        }
    }
}
