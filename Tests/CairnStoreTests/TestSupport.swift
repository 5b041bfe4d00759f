import CairnTestSupport
import CairnCore
import CairnStore
import Foundation
import Synchronization

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
        try entries(afterSeq: 1, limit: .max).map { stored in
            var value: [UInt8]?
            if case .put(_, _, let ref) = stored.entry.payload, case .present(let bytes) = try self.value(ref.digest) { value = bytes }
            return RawEntry(stored.entry, value: value)
        }
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

