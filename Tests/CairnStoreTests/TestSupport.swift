import CairnTestSupport
import CairnCore
import CairnStore
import Foundation
import Synchronization
import Testing

/// A wall clock tests move by hand.
final class ManualClock: WallClock {
    private let now: Mutex<UInt64>
    init(_ start: UInt64 = 1_763_700_000_000) { now = Mutex(start) }
    func nowMilliseconds() -> UInt64 { now.withLock { $0 } }
    func set(_ ms: UInt64) { now.withLock { $0 = ms } }
    func advance(_ ms: UInt64) { now.withLock { $0 += ms } }
}

/// Keys from fixed seeds, so failures reproduce.
func key(_ n: UInt8) -> SigningKey { SigningKey(seed: [UInt8](repeating: n, count: 32))! }

/// A fresh temporary directory, removed by the caller's `defer`.
func temporaryDirectory() -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-test-\(UUID().uuidString)")
    try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// One test log: a genesis by `admin` granting the given writers, and nodes that share it.
struct TestLog {
    let admin: SigningKey
    let genesis: SignedEntry
    let clock: ManualClock
    let directory: URL

    init(admin: SigningKey = key(1), writers: [WriterGrant] = [], clock: ManualClock = ManualClock()) {
        self.admin = admin
        self.clock = clock
        self.directory = temporaryDirectory()
        var grants = [WriterGrant(key: admin.publicKey, role: .admin)]
        grants += writers.filter { $0.key != admin.publicKey }
        let body = EntryBody(
            hlc: HLC(wallMilliseconds: clock.nowMilliseconds(), counter: 0), author: admin.publicKey, parents: [],
            payload: .genesis(name: "test", writers: grants.sorted { $0.key < $1.key }))
        genesis = try! SignedEntry(signing: body, with: admin)
    }

    var options: StoreOptions {
        var options = StoreOptions()
        options.wallClock = clock
        return options
    }

    /// A new node (store file) of this log.
    func node(_ name: String = UUID().uuidString) throws -> LogStore {
        try LogStore.create(path: directory.appendingPathComponent("\(name).db").path, genesis: genesis, options: options)
    }

    func cleanup() { try? FileManager.default.removeItem(at: directory) }
}

extension LogStore {
    /// Every applied entry after the genesis, as raw entries with values, in ingest order.
    func exportRaw() throws -> [RawEntry] {
        try rawEntries(afterSeq: 1, limit: .max).entries
    }

    /// Every applied entry id (genesis included) with its inert flag, as comparable strings.
    func entrySnapshot() throws -> [String] {
        try entries(afterSeq: 0, limit: .max).map { "\($0.entry.id.hex)\($0.inert ? " inert" : "")" }.sorted()
    }

    /// The full state as comparable strings.
    func stateSnapshot() throws -> [String] {
        var out: [String] = []
        for (bucket, _) in try buckets() {
            for state in try list(bucket: bucket, limit: .max) {
                out.append("\(bucket)/\(state.key)=\(state.entryID.hex)")
            }
        }
        return out
    }

    /// A signed entry built by hand (for entries the append path would refuse to make).
    static func sign(_ payload: Payload, by key: SigningKey, hlc: HLC, parents: [Hash32]) -> SignedEntry {
        try! SignedEntry(signing: EntryBody(hlc: hlc, author: key.publicKey, parents: parents, payload: payload), with: key)
    }

    func put(_ bucket: String, _ key: String, _ value: String, by signer: SigningKey) throws -> SignedEntry {
        try append([.put(bucket: bucket, key: key, value: Array(value.utf8))], signer: signer).last!
    }
}


/// Three writers write concurrently to a few keys, syncing now and then (which makes merge
/// entries). Returns every entry of the resulting DAG and the node that holds them all.
func randomDAG(seed: UInt64, steps: Int) throws -> (TestLog, LogStore, [RawEntry]) {
    var rng = SplitMix64(seed: seed)
    let writers = [key(1), key(2), key(3)]
    let log = TestLog(admin: writers[0], writers: writers.dropFirst().map { WriterGrant(key: $0.publicKey, role: .writer) })
    let nodes = try (0..<3).map { try log.node("n\($0)") }
    for _ in 0..<steps {
        let n = Int.random(in: 0..<3, using: &rng)
        let key = "k\(Int.random(in: 0..<4, using: &rng))"
        if Int.random(in: 0..<5, using: &rng) == 0 {
            try nodes[n].append([.delete(bucket: "b", key: key)], signer: writers[n])
        } else {
            _ = try nodes[n].put("b", key, "\(n)-\(rng.next() % 1000)", by: writers[n])
        }
        if Int.random(in: 0..<4, using: &rng) == 0 {
            let other = (n + Int.random(in: 1..<3, using: &rng)) % 3
            #expect(try nodes[other].insert(nodes[n].exportRaw()).rejected.isEmpty)
        }
        // Clocks of different nodes advance at different times: equal and crossing HLCs happen.
        if Int.random(in: 0..<3, using: &rng) == 0 { log.clock.advance(UInt64.random(in: 0..<3, using: &rng)) }
    }
    let hub = try log.node("hub")
    for node in nodes { #expect(try hub.insert(node.exportRaw()).rejected.isEmpty) }
    return (log, hub, try hub.exportRaw())
}
