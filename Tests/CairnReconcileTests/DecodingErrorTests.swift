import CairnReconcile
import CairnTestSupport
import Testing

/// Every strict-decoding rule, for both roles, plus hostile input that must neither crash nor loop.
@Suite struct DecodingErrorTests {
    struct BadMessage: CustomTestStringConvertible, Sendable {
        let name: String
        let bytes: [UInt8]
        let error: ReconcileError
        var testDescription: String { name }
    }

    static let badMessages: [BadMessage] = {
        let id32 = [UInt8](repeating: 0xab, count: 32)
        return [
            BadMessage(name: "empty", bytes: [], error: .truncated(.versionByte)),
            BadMessage(name: "varint over 10 bytes", bytes: [0x61] + [UInt8](repeating: 0x80, count: 10) + [0x00], error: .varintTooLong),
            BadMessage(name: "varint above 2^64-1", bytes: [0x61, 0x82] + [UInt8](repeating: 0x80, count: 8) + [0x00], error: .varintOverflow),
            BadMessage(name: "id prefix of 33 bytes", bytes: [0x61, 0x01, 0x21] + [UInt8](repeating: 1, count: 33) + [0x00], error: .idPrefixTooLong(33)),
            BadMessage(name: "huge id prefix length", bytes: [0x61, 0x01, 0x81, 0x00], error: .idPrefixTooLong(128)),
            BadMessage(name: "unknown mode", bytes: [0x61, 0x01, 0x00, 0x03], error: .unknownMode(3)),
            BadMessage(name: "bound going backwards",
                       bytes: [0x61, 0x05, 0x01, 0xff, 0x00, 0x01, 0x01, 0x00, 0x00],
                       error: .boundWentBackwards(previous: try! Bound(timestamp: 4, idPrefix: [0xff]),
                                                  current: try! Bound(timestamp: 4, idPrefix: [0x00]))),
            BadMessage(name: "IdList count beyond the bytes left", bytes: [0x61, 0x00, 0x00, 0x02, 0x05] + id32,
                       error: .idListTooLong(count: 5, bytesLeft: 32)),
            BadMessage(name: "IdList count of 2^64-1", bytes: [0x61, 0x00, 0x00, 0x02, 0x81] + [UInt8](repeating: 0xff, count: 8) + [0x7f],
                       error: .idListTooLong(count: .max, bytesLeft: 0)),
            BadMessage(name: "truncated fingerprint", bytes: [0x61, 0x00, 0x00, 0x01] + [UInt8](repeating: 7, count: 15),
                       error: .truncated(.fingerprint)),
            BadMessage(name: "truncated id prefix", bytes: [0x61, 0x01, 0x05, 0xaa, 0xbb], error: .truncated(.idPrefix)),
            BadMessage(name: "truncated varint", bytes: [0x61, 0x81], error: .truncated(.varint)),
            BadMessage(name: "missing mode", bytes: [0x61, 0x00, 0x00], error: .truncated(.varint)),
            BadMessage(name: "missing IdList count", bytes: [0x61, 0x00, 0x00, 0x02], error: .truncated(.varint)),
            BadMessage(name: "version below range", bytes: [0x5f], error: .invalidProtocolVersion(0x5f)),
            BadMessage(name: "version above range", bytes: [0x70, 0x00, 0x00, 0x00], error: .invalidProtocolVersion(0x70)),
        ]
    }()

    private static func storage() throws -> VectorStorage {
        var random = SplitMix64(seed: 99)
        return try VectorStorage(items: (0..<300).map { _ in Item(timestamp: random.next(below: 50), id: random.nextID()) })
    }

    @Test(arguments: badMessages)
    func responderRejects(_ bad: BadMessage) throws {
        let responder = try ReconcileResponder(storage: Self.storage())
        #expect(throws: bad.error) { try responder.reconcile(bad.bytes) }
    }

    @Test(arguments: badMessages)
    func initiatorRejects(_ bad: BadMessage) throws {
        let initiator = try ReconcileInitiator(storage: Self.storage())
        _ = try initiator.initiate()
        #expect(throws: bad.error) { try initiator.reconcile(bad.bytes) }
    }

    @Test func equalConsecutiveBoundsAreAnEmptyRange() throws {
        // (4, ff) Skip, then (4, ff) again with an IdList: not backwards, just an empty range.
        // The responder flushes the skip and answers the empty IdList with its own (empty) one.
        let message: [UInt8] = [0x61, 0x05, 0x01, 0xff, 0x00, 0x01, 0x01, 0xff, 0x02, 0x00]
        let responder = try ReconcileResponder(storage: VectorStorage(items: []))
        #expect(try responder.reconcile(message) == message)
    }

    @Test func storageRejectsReservedTimestampAndDuplicates() throws {
        let id = try #require(ItemID(hex: String(repeating: "11", count: 32)))
        #expect(throws: ReconcileError.reservedTimestamp(id)) { try VectorStorage(items: [Item(timestamp: .max, id: id)]) }
        #expect(throws: ReconcileError.duplicateItem(Item(timestamp: 3, id: id))) {
            try VectorStorage(items: [Item(timestamp: 3, id: id), Item(timestamp: 3, id: id)])
        }
        // The same id under two timestamps is two records (identity is the pair).
        #expect(try VectorStorage(items: [Item(timestamp: 3, id: id), Item(timestamp: 4, id: id)]).count == 2)
    }

    @Test func sessionMisuse() throws {
        let initiator = try ReconcileInitiator(storage: VectorStorage(items: []))
        #expect(throws: ReconcileError.notInitiated) { try initiator.reconcile([0x61]) }
        _ = try initiator.initiate()
        #expect(throws: ReconcileError.alreadyInitiated) { try initiator.initiate() }
        #expect(try initiator.reconcile([0x61]).next == nil)
        #expect(throws: ReconcileError.sessionFinished) { try initiator.reconcile([0x61]) }
    }

    @Test func hostileResponderHitsTheRoundLimit() throws {
        // A peer whose fingerprint never matches keeps the session alive forever without a bound.
        var random = SplitMix64(seed: 7)
        let storage = try VectorStorage(items: (0..<1000).map { _ in Item(timestamp: random.next(), id: random.nextID()) })
        let initiator = try ReconcileInitiator(storage: storage, maxRounds: 10)
        _ = try initiator.initiate()
        let garbage: [UInt8] = [0x61, 0x00, 0x00, 0x01] + [UInt8](repeating: 0x5a, count: 16)
        for _ in 1..<10 { #expect(try initiator.reconcile(garbage).next != nil) }
        #expect(throws: ReconcileError.roundLimitExceeded(10)) { try initiator.reconcile(garbage) }
        let responder = try ReconcileResponder(storage: storage, maxRounds: 3)
        for _ in 0..<3 { _ = try responder.reconcile(garbage) }
        #expect(throws: ReconcileError.roundLimitExceeded(3)) { try responder.reconcile(garbage) }
    }

    @Test func replayedRepliesAreCutOffByTheProgressRuleWithoutARoundCap() throws {
        // No round cap: a responder that replays one reply stops making progress, and the
        // session ends after `stallRounds` such rounds; what the first reply taught was returned.
        var random = SplitMix64(seed: 11)
        let storage = try VectorStorage(items: (0..<1000).map { _ in Item(timestamp: random.next() >> 1 + 2, id: random.nextID()) })
        let budget = ReconcileBudget(stallRounds: 5)
        let initiator = try ReconcileInitiator(storage: storage, frameSizeLimit: 4096, budget: budget)
        _ = try initiator.initiate()
        let disclosed = random.nextID()
        // [0, 1) lists `disclosed`; the rest gets a fingerprint that never matches.
        let replay: [UInt8] = [0x61, 0x02, 0x00, 0x02, 0x01] + disclosed.bytes + [0x00, 0x00, 0x01] + [UInt8](repeating: 0x5a, count: 16)
        let first = try initiator.reconcile(replay)
        #expect(first.need == [disclosed] && first.next != nil)
        for _ in 1..<5 { #expect(try initiator.reconcile(replay).next != nil) }
        #expect(throws: ReconcileError.noProgress(rounds: 5)) { try initiator.reconcile(replay) }

        // A responder fed the same message again and again stops the same way.
        let responder = try ReconcileResponder(storage: storage, frameSizeLimit: 4096, budget: budget)
        let query = try ReconcileInitiator(storage: storage).initiate()
        for _ in 0..<5 { _ = try responder.reconcile(query) }
        #expect(throws: ReconcileError.noProgress(rounds: 5)) { try responder.reconcile(query) }
    }

    @Test func aByteBudgetEndsASessionThatKeepsInventingWork() throws {
        var random = SplitMix64(seed: 12)
        let storage = try VectorStorage(items: (0..<1000).map { _ in Item(timestamp: random.next() >> 1, id: random.nextID()) })
        let budget = ReconcileBudget(stallRounds: 1_000_000, baseBytes: 0, bytesPerItem: 16, maxBytes: 1 << 20)
        let initiator = try ReconcileInitiator(storage: storage, budget: budget)
        _ = try initiator.initiate()
        // Its own message repeats, but the stall rule is off here: the bytes run out.
        var thrown: ReconcileError?
        for round in 0..<10_000 {
            var fingerprint = [UInt8](repeating: 0, count: 16)
            withUnsafeBytes(of: UInt64(round).littleEndian) { fingerprint.replaceSubrange(0..<8, with: $0) }
            do { _ = try initiator.reconcile([0x61, 0x00, 0x00, 0x01] + fingerprint) } catch let error as ReconcileError {
                thrown = error
                break
            }
        }
        #expect(thrown == .byteBudgetExceeded(16_000))
    }

    @Test func randomBytesNeverCrashOrHang() throws {
        let seed = randomizedTestSeed("DecodingErrorTests.randomBytesNeverCrashOrHang")
        var random = SplitMix64(seed: seed)
        let storage = try Self.storage()
        for iteration in 0..<3000 {
            var message: [UInt8] = [iteration % 5 == 0 ? UInt8(0x60 + random.next(below: 16)) : 0x61]
            let length = Int(random.next(below: 64))
            // Bias towards small values so that bounds, modes and counts often parse.
            for _ in 0..<length {
                message.append(random.next(below: 3) == 0 ? UInt8(truncatingIfNeeded: random.next()) : UInt8(random.next(below: 4)))
            }
            let responder = try ReconcileResponder(storage: storage, frameSizeLimit: iteration % 2 == 0 ? 0 : 4096)
            do { _ = try responder.reconcile(message) } catch is ReconcileError {}
            let initiator = try ReconcileInitiator(storage: storage)
            _ = try initiator.initiate()
            do { _ = try initiator.reconcile(message) } catch is ReconcileError {}
        }
    }
}
