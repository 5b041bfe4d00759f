import CairnTestSupport
import CSodium
import CairnReconcile
import CairnSQLite
import Foundation

/// Reconcile-only benchmark of CairnReconcile: two sets of N items (HLC-like timestamps,
/// BLAKE2b-256 ids) reconciled in process, on the in-memory and on the SQLite backend, next to
/// the C++ reference's figures from `negentropy-v1.md` §2.
///
/// `--items N` (default 1,000,000), `--backend memory|sqlite|both`, `--scenario a,b,…`
/// (identical, scattered-1000, tail-1000, scattered-10000), `--frame-limit L` (0 = unlimited),
/// `--repeat R` (best and median of R sessions), `--seed S`, `--db-dir D` (keep and reuse the
/// generated databases there), `--help`.
enum ReconcileBenchmark {
    static func run(arguments: [String]) throws {
        let options = try Options(arguments)
        if options.showHelp {
            print(Options.usage)
            return
        }
        print("reconcile benchmark: \(options.items) items per side, frame limit \(options.frameLimit == 0 ? "unlimited" : String(options.frameLimit)), \(options.repeats) run(s) per cell, seed \(options.seed)")
        var rows: [ResultRow] = []
        // SQLite first, so that its peak RSS is not the in-memory sets'. Generating its databases
        // (large bulk-load cache) raises the peak too: reuse them with --db-dir for a clean figure.
        for backend in options.backends {
            for scenario in options.scenarios {
                let row = try measure(scenario, on: backend, options: options)
                rows.append(row)
                print(row.progressLine)
            }
        }
        print()
        print(ResultRow.table(rows))
        print(ReferenceFigures.note(items: options.items))
    }

    // MARK: One cell of the table

    private static func measure(_ scenario: Scenario, on backend: Backend, options: Options) throws -> ResultRow {
        let sets = SetGenerator(items: options.items, scenario: scenario, seed: options.seed)
        switch backend {
        case .memory:
            let start = Date()
            let (client, server) = try sets.vectorStorages()
            let setup = Date().timeIntervalSince(start)
            let sessions = try (0..<options.repeats).map { _ in
                try Session.run(client: client, server: server, frameLimit: options.frameLimit)
            }
            return ResultRow(scenario: scenario, backend: backend, sessions: sessions, setupSeconds: setup,
                             peakRSSKiB: Int(peakMemoryMiB() * 1024), verified: sets.verify(sessions[0]))
        case .sqlite:
            let start = Date()
            let databases = TemporaryDatabases(directory: options.databaseDirectory, sets: sets)
            if !databases.exist { try sets.fill(databases) }
            defer { if options.databaseDirectory == nil { databases.remove() } }
            let setup = Date().timeIntervalSince(start)
            let sessions = try (0..<options.repeats).map { _ in
                // A fresh storage each time: cold bucket cache, aggregates loaded in O(buckets).
                let client = try SQLiteStorage(database: Database(path: databases.client))
                let server = try SQLiteStorage(database: Database(path: databases.server))
                return try Session.run(client: client, server: server, frameLimit: options.frameLimit)
            }
            return ResultRow(scenario: scenario, backend: backend, sessions: sessions, setupSeconds: setup,
                             peakRSSKiB: Int(peakMemoryMiB() * 1024), verified: sets.verify(sessions[0]))
        }
    }

}

// MARK: - Options

private enum Backend: String, CaseIterable {
    case sqlite, memory
}

private enum Scenario: String, CaseIterable {
    case identical
    case scattered1000 = "scattered-1000"
    case tail1000 = "tail-1000"
    case scattered10000 = "scattered-10000"

    var differences: Int {
        switch self {
        case .identical: return 0
        case .scattered1000, .tail1000: return 1000
        case .scattered10000: return 10_000
        }
    }

    var isTail: Bool { self == .tail1000 }
}

private struct Options {
    var items = 1_000_000
    var backends = Backend.allCases
    var scenarios = Scenario.allCases
    var frameLimit = 0
    var repeats = 1
    var seed: UInt64 = 1
    var databaseDirectory: String?
    var showHelp = false

    static let usage = """
        reconcile benchmark options:
          --items N           items per side (default 1000000)
          --backend B         memory, sqlite or both (default both)
          --scenario A,B      identical, scattered-1000, tail-1000, scattered-10000 (default all)
          --frame-limit L     frame size limit in bytes, 0 = unlimited (default 0)
          --repeat R          sessions per cell; CPU is reported as best / median (default 1)
          --seed S            generator seed (default 1)
          --db-dir D          keep the generated SQLite databases in D and reuse them next time
                              (default: temporary files, deleted after each cell)
        """

    struct BadArgument: Error, CustomStringConvertible {
        let text: String
        var description: String { "bad argument: \(text)\n\(Options.usage)" }
    }

    init(_ arguments: [String]) throws {
        var iterator = arguments.makeIterator()
        while let flag = iterator.next() {
            if flag == "--help" || flag == "-h" {
                showHelp = true
                continue
            }
            guard let value = iterator.next() else { throw BadArgument(text: flag) }
            try apply(flag, value)
        }
    }

    private mutating func apply(_ flag: String, _ value: String) throws {
        switch flag {
        case "--items": items = try Self.integer(value, flag, minimum: 1)
        case "--frame-limit": frameLimit = try Self.integer(value, flag, minimum: 0)
        case "--repeat": repeats = try Self.integer(value, flag, minimum: 1)
        case "--seed": seed = UInt64(try Self.integer(value, flag, minimum: 0))
        case "--db-dir": databaseDirectory = value
        case "--backend":
            guard value == "both" || Backend(rawValue: value) != nil else { throw BadArgument(text: "\(flag) \(value)") }
            backends = value == "both" ? Backend.allCases : [Backend(rawValue: value)!]
        case "--scenario":
            scenarios = try value.split(separator: ",").map {
                guard let scenario = Scenario(rawValue: String($0)) else { throw BadArgument(text: "\(flag) \(value)") }
                return scenario
            }
        default: throw BadArgument(text: flag)
        }
    }

    private static func integer(_ text: String, _ flag: String, minimum: Int) throws -> Int {
        guard let value = Int(text.replacingOccurrences(of: "_", with: "")), value >= minimum else {
            throw BadArgument(text: "\(flag) \(text)")
        }
        return value
    }
}

// MARK: - Data generation

/// Deterministic sets: a universe of `items + d/2` records in time order, of which `d` are
/// differences (alternately client-only and server-only), so each side holds `items` records.
private struct SetGenerator {
    let items: Int
    let scenario: Scenario
    let seed: UInt64

    private var universe: Int { items + scenario.differences / 2 }

    /// Universe positions that are differences: random ones, or the newest `d` for "tail".
    private var differencePositions: [Int: Bool] {
        let count = min(scenario.differences, universe)
        var positions: [Int: Bool] = [:]
        if scenario.isTail {
            for (order, position) in ((universe - count)..<universe).enumerated() { positions[position] = order % 2 == 0 }
            return positions
        }
        var random = SplitMix64(seed: seed ^ 0xD1FF)
        while positions.count < count {
            positions[Int(random.next() % UInt64(universe))] = positions.count % 2 == 0
        }
        return positions
    }

    /// Calls `body(item, onClient, onServer)` for every universe record in time order.
    func forEachRecord(_ body: (Item, Bool, Bool) throws -> Void) rethrows {
        let differences = differencePositions
        var random = SplitMix64(seed: seed)
        // HLC-like: wall-clock milliseconds << 16 | a logical counter, a few records per ms.
        var milliseconds: UInt64 = 1_763_700_000_000
        var counter: UInt64 = 0
        for position in 0..<universe {
            if random.next() % 3 == 0 {
                counter += 1
            } else {
                milliseconds += 1 + random.next() % 2
                counter = 0
            }
            let item = Item(timestamp: milliseconds << 16 | counter, id: Self.blake2bID(seed: seed, position: position))
            let clientOnly = differences[position]
            try body(item, clientOnly != false, clientOnly != true)
        }
    }

    /// BLAKE2b-256 of (seed, position): ids that look like Cairn's entry hashes.
    private static func blake2bID(seed: UInt64, position: Int) -> ItemID {
        var input = (seed.littleEndian, UInt64(position).littleEndian)
        var digest = [UInt8](repeating: 0, count: 32)
        withUnsafeBytes(of: &input) { raw in
            _ = crypto_generichash(&digest, 32, raw.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(raw.count), nil, 0)
        }
        return ItemID(bytes: digest)!
    }

    func vectorStorages() throws -> (VectorStorage, VectorStorage) {
        var client: [Item] = []
        var server: [Item] = []
        client.reserveCapacity(items)
        server.reserveCapacity(items)
        forEachRecord { item, onClient, onServer in
            if onClient { client.append(item) }
            if onServer { server.append(item) }
        }
        return (try VectorStorage(items: client), try VectorStorage(items: server))
    }

    /// Fills two WAL databases with Cairn's entries table in time order and builds aggregates.
    func fill(_ paths: TemporaryDatabases) throws {
        paths.remove()
        let client = try Database(path: paths.client)
        let server = try Database(path: paths.server)
        for database in [client, server] {
            // Bulk-load settings for the benchmark's own setup only.
            try database.execute("""
                PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF; PRAGMA cache_size=-262144;
                CREATE TABLE entries(seq INTEGER PRIMARY KEY AUTOINCREMENT, id BLOB NOT NULL UNIQUE,
                                     hlc INTEGER NOT NULL, body BLOB);
                CREATE INDEX entries_hlc_id ON entries(hlc, id);
                BEGIN;
                """)
        }
        try forEachRecord { item, onClient, onServer in
            if onClient { try Self.insert(item, into: client) }
            if onServer { try Self.insert(item, into: server) }
        }
        for database in [client, server] {
            try database.execute("COMMIT")
            _ = try SQLiteStorage(database: database)
            try database.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        }
    }

    private static func insert(_ item: Item, into database: Database) throws {
        try database.prepare("INSERT INTO entries(id, hlc) VALUES (?1, ?2)")
            .bind(.blob(item.id.bytes), .int(Int64(bitPattern: item.timestamp))).run()
    }

    /// Whether have/need came out as exactly the generated differences.
    func verify(_ session: Session.Result) -> Bool {
        var clientOnly = Set<ItemID>()
        var serverOnly = Set<ItemID>()
        forEachRecord { item, onClient, onServer in
            if onClient && !onServer { clientOnly.insert(item.id) }
            if onServer && !onClient { serverOnly.insert(item.id) }
        }
        return session.have == clientOnly && session.need == serverOnly
    }
}


/// The two database files of one cell: temporary, or named after the cell in `--db-dir`.
private struct TemporaryDatabases {
    let client: String
    let server: String

    init(directory: String?, sets: SetGenerator) {
        let base: String
        if let directory {
            base = URL(fileURLWithPath: directory)
                .appendingPathComponent("\(sets.scenario.rawValue)-\(sets.items)-\(sets.seed)").path
        } else {
            base = FileManager.default.temporaryDirectory.appendingPathComponent("reconcile-bench-\(UUID().uuidString)").path
        }
        client = base + "-client.sqlite"
        server = base + "-server.sqlite"
    }

    var exist: Bool { [client, server].allSatisfy { FileManager.default.fileExists(atPath: $0) } }

    func remove() {
        for path in [client, server] {
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
        }
    }
}

// MARK: - Measured session

private enum Session {
    struct Result {
        var rounds = 0
        var bytesUp = 0
        var bytesDown = 0
        var largestMessage = 0
        var clientCPU: Double = 0
        var serverCPU: Double = 0
        var have = Set<ItemID>()
        var need = Set<ItemID>()
    }

    /// Runs one session, timing each side's calls with its thread CPU clock.
    static func run<C: ReconcileStorage, S: ReconcileStorage>(client: C, server: S, frameLimit: Int) throws -> Result {
        var result = Result()
        let initiator = try ReconcileInitiator(storage: client, frameSizeLimit: frameLimit)
        let responder = try ReconcileResponder(storage: server, frameSizeLimit: frameLimit)
        var message = try timed(&result.clientCPU) { try initiator.initiate() }
        while true {
            result.rounds += 1
            result.bytesUp += message.count
            let reply = try timed(&result.serverCPU) { try responder.reconcile(message) }
            result.bytesDown += reply.count
            result.largestMessage = max(result.largestMessage, message.count, reply.count)
            let step = try timed(&result.clientCPU) { try initiator.reconcile(reply) }
            result.have.formUnion(step.have)
            result.need.formUnion(step.need)
            guard let next = step.next else { return result }
            message = next
        }
    }

    private static func timed<T>(_ total: inout Double, _ body: () throws -> T) rethrows -> T {
        let start = threadCPUSeconds()
        defer { total += threadCPUSeconds() - start }
        return try body()
    }

    private static func threadCPUSeconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }
}

// MARK: - Report

private struct ResultRow {
    let scenario: Scenario
    let backend: Backend
    let sessions: [Session.Result]
    let setupSeconds: Double
    let peakRSSKiB: Int
    let verified: Bool

    private var first: Session.Result { sessions[0] }

    private func cpu(_ value: KeyPath<Session.Result, Double>) -> String {
        let sorted = sessions.map { $0[keyPath: value] * 1000 }.sorted()
        let best = Self.milliseconds(sorted[0])
        return sessions.count == 1 ? best : "\(best) / \(Self.milliseconds(sorted[sorted.count / 2]))"
    }

    var progressLine: String {
        "  done: \(backend.rawValue) \(scenario.rawValue): setup \(String(format: "%.1f", setupSeconds)) s, "
            + "\(first.rounds) rt, client \(cpu(\.clientCPU)) ms, server \(cpu(\.serverCPU)) ms"
    }

    static func table(_ rows: [ResultRow]) -> String {
        let header = ["scenario", "backend", "rt", "up", "down", "total", "largest msg", "client CPU ms", "server CPU ms",
                      "peak RSS", "ok", "reference (BTreeMem, 1M)"]
        let body = rows.map { row in
            [row.scenario.rawValue, row.backend.rawValue, String(row.first.rounds), bytes(row.first.bytesUp),
             bytes(row.first.bytesDown), bytes(row.first.bytesUp + row.first.bytesDown), bytes(row.first.largestMessage),
             row.cpu(\.clientCPU), row.cpu(\.serverCPU), "\(row.peakRSSKiB / 1024) MiB", row.verified ? "yes" : "NO",
             ReferenceFigures.figures(for: row.scenario)]
        }
        let widths = header.indices.map { column in ([header] + body).map { $0[column].count }.max()! }
        func line(_ cells: [String]) -> String {
            "| " + zip(cells, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: " | ") + " |"
        }
        let rule = "|" + widths.map { String(repeating: "-", count: $0 + 2) }.joined(separator: "|") + "|"
        return ([line(header), rule] + body.map(line)).joined(separator: "\n")
    }

    private static func milliseconds(_ value: Double) -> String {
        String(format: value < 10 ? "%.2f" : "%.0f", value)
    }

    private static func bytes(_ count: Int) -> String {
        if count < 10_000 { return "\(count) B" }
        if count < 10_000_000 { return String(format: "%.1f KB", Double(count) / 1000) }
        return String(format: "%.2f MB", Double(count) / 1_000_000)
    }
}

/// The C++ reference's figures (negentropy-v1.md §2), for 1M vs 1M, unlimited frames.
private enum ReferenceFigures {
    static func figures(for scenario: Scenario) -> String {
        switch scenario {
        case .identical: return "369 B + 1 B, 1 rt; CPU 1.8 / 0.1 ms"
        case .scattered1000: return "1.41 MB, 3 rt; CPU 55–180 / 60–175 ms"
        case .tail1000: return "34.8 KB, 3 rt; CPU 1.5–6 / 0.4–0.5 ms"
        case .scattered10000: return "10.7 MB, 3 rt; CPU n/a"
        }
    }

    static func note(items: Int) -> String {
        var text = """

            CPU is thread CPU time summed over all rounds per side (best / median when --repeat > 1).
            "up" is client→server. Reference CPU is the C++ in-memory B-tree on a 2-core VM
            (client / server); goals: in-memory ≤ reference, SQLite ≤ 3× reference,
            identical sets on SQLite < 10 ms per side. Peak RSS is the process's high-water mark so
            far: it includes generating the sets unless the databases were reused (--db-dir).
            """
        if items != 1_000_000 { text += "\nNote: reference figures are for 1,000,000 items per side; this run used \(items)." }
        return text
    }
}
