import CairnReconcile
import Testing

private struct Vectors: Decodable {
    struct FingerprintVector: Decodable { let description: String; let ids: [String]; let fingerprint: String }
    struct VarintVector: Decodable { let value: String; let hex: String }
    struct VersionVector: Decodable { let description: String; let storage: [FixtureItem]; let message: String; let reply: String }
    let fingerprints: [FingerprintVector]
    let varints: [VarintVector]
    let protocolVersion: [VersionVector]
    let emptyStorageInitiate: String
}

@Suite struct VectorTests {
    private let vectors: Vectors

    init() throws { vectors = try loadFixture("vectors.json", as: Vectors.self) }

    @Test func varintEncodingMatchesSpec() throws {
        for vector in vectors.varints {
            let value = try #require(UInt64(vector.value))
            #expect(hexString(Varint.encode(value)) == vector.hex, "encode \(value)")
            #expect(Varint.encodedLength(value) == vector.hex.count / 2)
            var position = 0
            #expect(try Varint.decode(hexBytes(vector.hex), at: &position) == value)
            #expect(position == vector.hex.count / 2)
        }
    }

    @Test func varintRoundTripsAtEveryLength() throws {
        for shift in 0..<64 {
            for value in [UInt64(1) << shift, (UInt64(1) << shift) - 1, (UInt64(1) << shift) + 1] {
                let encoded = Varint.encode(value)
                var position = 0
                #expect(try Varint.decode(encoded, at: &position) == value)
                #expect(position == encoded.count)
            }
        }
    }

    @Test func fingerprintsMatchSpec() throws {
        for vector in vectors.fingerprints {
            var sum = IDSum.zero
            for id in vector.ids { sum.add(try #require(ItemID(hex: id))) }
            #expect(sum.fingerprint(count: vector.ids.count).description == vector.fingerprint, "\(vector.description)")
        }
    }

    @Test func idSumWrapsModulo2To256() throws {
        let allOnes = try #require(ItemID(hex: String(repeating: "ff", count: 32)))
        let one = try #require(ItemID(hex: "01" + String(repeating: "00", count: 31)))
        var sum = IDSum(allOnes)
        sum.add(one)
        #expect(sum == .zero)
        #expect(IDSum.zero - IDSum(one) == IDSum(allOnes))
        // A carry must ripple through every limb.
        let lowLimbFull = try #require(ItemID(hex: String(repeating: "ff", count: 8) + String(repeating: "00", count: 24)))
        let carried = IDSum(lowLimbFull) + IDSum(one)
        #expect(carried.bytes == [0, 0, 0, 0, 0, 0, 0, 0, 1] + [UInt8](repeating: 0, count: 23))
    }

    @Test func protocolVersionVectors() throws {
        for vector in vectors.protocolVersion {
            let storage = try VectorStorage(items: vector.storage.map(\.item))
            let responder = try ReconcileResponder(storage: storage)
            #expect(hexString(try responder.reconcile(hexBytes(vector.message))) == vector.reply, "\(vector.description)")
        }
    }

    @Test func emptyStorageInitiates() throws {
        let initiator = try ReconcileInitiator(storage: try VectorStorage(items: []))
        #expect(hexString(try initiator.initiate()) == vectors.emptyStorageInitiate)
    }

    @Test func initiatorRejectsOtherVersions() throws {
        let initiator = try ReconcileInitiator(storage: try VectorStorage(items: []))
        _ = try initiator.initiate()
        #expect(throws: ReconcileError.unsupportedProtocolVersion(0x62)) { try initiator.reconcile([0x62]) }
        #expect(throws: ReconcileError.invalidProtocolVersion(0x70)) { try initiator.reconcile([0x70]) }
    }

    @Test func responderRejectsNonNegentropyVersions() throws {
        let responder = try ReconcileResponder(storage: try VectorStorage(items: []))
        #expect(throws: ReconcileError.invalidProtocolVersion(0x5f)) { try responder.reconcile([0x5f]) }
        #expect(throws: ReconcileError.invalidProtocolVersion(0x70)) { try responder.reconcile([0x70, 0x00]) }
        #expect(try responder.reconcile([0x60]) == [0x61])
        #expect(try responder.reconcile([0x6f, 0xff, 0xff]) == [0x61])
    }

    @Test func minimalBounds() throws {
        let a = try #require(ItemID(hex: "abcd01" + String(repeating: "00", count: 29)))
        let b = try #require(ItemID(hex: "abcd02" + String(repeating: "00", count: 29)))
        let sameTime = Bound.minimal(between: Item(timestamp: 5, id: a), and: Item(timestamp: 5, id: b))
        #expect(sameTime.timestamp == 5 && sameTime.idPrefix == [0xab, 0xcd, 0x02])
        let laterTime = Bound.minimal(between: Item(timestamp: 5, id: b), and: Item(timestamp: 6, id: a))
        #expect(laterTime.timestamp == 6 && laterTime.prefixLength == 0)
        let last = try #require(ItemID(hex: String(repeating: "00", count: 31) + "01"))
        let full = Bound.minimal(between: Item(timestamp: 1, id: .zero), and: Item(timestamp: 1, id: last))
        #expect(full.prefixLength == 32 && full.paddedID == last)
        #expect(Item(timestamp: 5, id: a).isBelow(sameTime))
        #expect(!Item(timestamp: 5, id: b).isBelow(sameTime))
    }

    @Test func frameSizeLimitValidation() throws {
        let storage = try VectorStorage(items: [])
        #expect(throws: ReconcileError.frameSizeLimitTooSmall(4095)) { try ReconcileInitiator(storage: storage, frameSizeLimit: 4095) }
        #expect(throws: ReconcileError.frameSizeLimitTooSmall(1)) { try ReconcileResponder(storage: storage, frameSizeLimit: 1) }
        #expect(throws: ReconcileError.frameSizeLimitTooSmall(-5)) { try ReconcileResponder(storage: storage, frameSizeLimit: -5) }
        _ = try ReconcileInitiator(storage: storage, frameSizeLimit: 4096)
        _ = try ReconcileResponder(storage: storage, frameSizeLimit: 0)
        #expect(throws: ReconcileError.invalidRoundLimit(0)) { try ReconcileResponder(storage: storage, maxRounds: 0) }
    }
}
