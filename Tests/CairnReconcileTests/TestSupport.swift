import CairnTestSupport
import CairnReconcile
import Foundation

/// Locates `Fixtures/negentropy/<name>` from this file's path (Tests/CairnReconcileTests/…).
func fixtureURL(_ name: String) -> URL {
    URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()
        .deletingLastPathComponent()
        .deletingLastPathComponent()
        .appendingPathComponent("Fixtures/negentropy")
        .appendingPathComponent(name)
}

func loadFixture<T: Decodable>(_ name: String, as type: T.Type) throws -> T {
    try JSONDecoder().decode(T.self, from: Data(contentsOf: fixtureURL(name)))
}

func hexBytes(_ text: String) -> [UInt8] {
    precondition(text.count % 2 == 0, "odd hex length")
    var out: [UInt8] = []
    var index = text.startIndex
    while index < text.endIndex {
        let next = text.index(index, offsetBy: 2)
        out.append(UInt8(text[index..<next], radix: 16)!)
        index = next
    }
    return out
}

func hexString(_ bytes: some Sequence<UInt8>) -> String {
    bytes.map { String(format: "%02x", $0) }.joined()
}

/// An item as it appears in the fixture files.
struct FixtureItem: Decodable {
    let timestamp: UInt64
    let id: String

    var item: Item { Item(timestamp: timestamp, id: ItemID(hex: id)!) }
}

/// The reference-transcript fixtures were made with splitmix64 (README.md); these draw ids the same way.
extension SplitMix64 {
    /// 32 bytes: four outputs, each little-endian.
    mutating func nextID() -> ItemID {
        var bytes: [UInt8] = []
        for _ in 0..<4 {
            withUnsafeBytes(of: next().littleEndian) { bytes.append(contentsOf: $0) }
        }
        return ItemID(bytes: bytes)!
    }

    mutating func next(below bound: UInt64) -> UInt64 { next() % bound }
}


/// What one whole session did.
struct SessionTranscript {
    /// Client and server messages, alternating, starting with the client's.
    var messages: [[UInt8]] = []
    /// Every `have` / `need` reported, round by round, in order.
    var haveRounds: [[ItemID]] = []
    var needRounds: [[ItemID]] = []
    var rounds = 0

    var have: Set<ItemID> { Set(haveRounds.joined()) }
    var need: Set<ItemID> { Set(needRounds.joined()) }
    var bytesUp: Int { stride(from: 0, to: messages.count, by: 2).reduce(0) { $0 + messages[$1].count } }
    var bytesDown: Int { stride(from: 1, to: messages.count, by: 2).reduce(0) { $0 + messages[$1].count } }
}

/// Drives a full session in process.
func runSession<Client: ReconcileStorage, Server: ReconcileStorage>(
    client: Client, server: Server, clientLimit: Int = 0, serverLimit: Int = 0, maxRounds: Int? = nil
) throws -> SessionTranscript {
    let initiator = try ReconcileInitiator(storage: client, frameSizeLimit: clientLimit, maxRounds: maxRounds)
    let responder = try ReconcileResponder(storage: server, frameSizeLimit: serverLimit, maxRounds: maxRounds)
    var transcript = SessionTranscript()
    var message = try initiator.initiate()
    while true {
        transcript.rounds += 1
        transcript.messages.append(message)
        let reply = try responder.reconcile(message)
        transcript.messages.append(reply)
        let step = try initiator.reconcile(reply)
        transcript.haveRounds.append(step.have)
        transcript.needRounds.append(step.need)
        guard let next = step.next else { return transcript }
        message = next
    }
}

/// FNV-1a 64, as the reference harness computes it over transcripts.
struct FNV1a64 {
    private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    mutating func add(_ bytes: some Sequence<UInt8>) {
        for byte in bytes {
            value ^= UInt64(byte)
            value = value &* 0x100_0000_01b3
        }
    }

    var hex: String { String(format: "%016llx", value) }
}

extension SessionTranscript {
    /// Each message as direction byte (`C`/`S`), u32le length, bytes: the harness's format.
    var transcriptDigest: String {
        var hash = FNV1a64()
        for (index, message) in messages.enumerated() {
            hash.add([index % 2 == 0 ? UInt8(ascii: "C") : UInt8(ascii: "S")])
            withUnsafeBytes(of: UInt32(message.count).littleEndian) { hash.add($0) }
            hash.add(message)
        }
        return hash.hex
    }

    /// Per round: `R`, then sorted have ids each after `H`, then sorted need ids each after `N`.
    var haveNeedDigest: String {
        var hash = FNV1a64()
        for (have, need) in zip(haveRounds, needRounds) {
            hash.add([UInt8(ascii: "R")])
            for id in have.sorted() { hash.add([UInt8(ascii: "H")] + id.bytes) }
            for id in need.sorted() { hash.add([UInt8(ascii: "N")] + id.bytes) }
        }
        return hash.hex
    }
}
