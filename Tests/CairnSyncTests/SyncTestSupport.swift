import CairnCore
import CairnStore
import Cairn
import Foundation
import Logging
import Synchronization
import Prometheus
import Testing

@testable import CairnSync

/// Timings short enough for tests; every wait in the tests is a deadline on a condition, never
/// a fixed sleep that assumes how fast the machine is.
func testConfiguration() -> SyncConfiguration {
    var configuration = SyncConfiguration(listen: "127.0.0.1:0")
    configuration.reconcileInterval = .seconds(1)
    configuration.idleTimeout = .seconds(10)
    configuration.pushPollInterval = .milliseconds(5)
    configuration.mergeSettle = .milliseconds(100)
    configuration.reconnectBackoff = (.milliseconds(50), .milliseconds(500))
    // Generous: on a CI machine running every suite at once a handshake can take seconds; the
    // deadline itself is tested on a manual clock (OperationsTests).
    configuration.handshakeTimeout = .seconds(60)
    return configuration
}

/// `configuration` recording into a registry of its own: every node's metrics are read apart,
/// and no test bootstraps the process-wide `MetricsSystem`.
func withOwnMetrics(_ configuration: SyncConfiguration) -> SyncConfiguration {
    var configuration = configuration
    configuration.metricsFactory = PrometheusMetricsFactory(registry: PrometheusCollectorRegistry())
    return configuration
}

func temporaryDirectory(_ name: String) -> String {
    NSTemporaryDirectory() + "cairn-sync-\(name)-\(UUID().uuidString.prefix(8))"
}

/// Warnings and above (set CAIRN_TEST_LOG=debug to see everything a node does).
func testLogger(_ path: String) -> Logger {
    var logger = Logger(label: "node.\(path.suffix(8))")
    logger.logLevel = ProcessInfo.processInfo.environment["CAIRN_TEST_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
    return logger
}

/// A node under test: its log, its running sync node, and where it lives.
final class TestNode: @unchecked Sendable {
    let path: String
    private(set) var log: CairnLog
    private(set) var node: SyncNode
    private var task: Task<Void, any Error>?
    let configuration: SyncConfiguration
    /// The store options the log was opened with (its wall clock), kept across restarts.
    let options: StoreOptions

    init(log: CairnLog, path: String, configuration: SyncConfiguration, options: StoreOptions = StoreOptions()) throws {
        self.path = path
        self.log = log
        self.configuration = configuration
        self.options = options
        self.node = try SyncNode(log: log, configuration: withOwnMetrics(configuration), logger: testLogger(path))
        TestNodes.current?.add(self)
    }

    var port: Int { get async throws { try await node.listeningPort() } }
    var address: String { get async throws { "127.0.0.1:\(try await port)" } }

    func start() {
        let node = node
        task = Task { try await node.run() }
    }

    /// Stops the sync node and waits until it has wound down.
    func stop() async {
        task?.cancel()
        _ = await task?.result
        task = nil
    }

    /// Reopens the log from disk and starts a fresh sync node on it (a restart).
    func restart() async throws {
        await stop()
        log = try CairnLog.open(at: path, options: options)
        node = try SyncNode(log: log, configuration: withOwnMetrics(configuration), logger: testLogger(path))
        start()
    }

    func dial(_ other: TestNode) async throws {
        try await log.addPeer(PeerAddress(address: try await other.address))
    }

    /// The heads, the number of entries and the state, for comparing nodes.
    func snapshot() async throws -> NodeSnapshot {
        var state: [String] = []
        for (bucket, _) in try await log.buckets() {
            for key in try await log.list(bucket, limit: 1_000_000) {
                state.append("\(bucket)/\(key.key)=\(key.entryID.hex)")
            }
        }
        return NodeSnapshot(heads: try await log.heads().map(\.id), entries: try await log.counts().entries, state: state)
    }

    deinit { task?.cancel() }
}

struct NodeSnapshot: Equatable, CustomStringConvertible {
    var heads: [Hash32]
    var entries: Int
    var state: [String]

    var description: String { "\(entries) entries, heads \(heads.map { $0.shortHex() }), \(state.count) keys" }
}

/// A log and `count - 1` more nodes joined by invite (granted as writers), none started. Node
/// `i` reads `wallClocks[i]` when given (the system clock otherwise).
func makeCluster(
    _ name: String, count: Int, configuration: SyncConfiguration = testConfiguration(), wallClocks: [any WallClock] = []
) async throws -> [TestNode] {
    func options(_ index: Int) -> StoreOptions {
        var options = StoreOptions()
        if index < wallClocks.count { options.wallClock = wallClocks[index] }
        return options
    }
    let first = temporaryDirectory("\(name)0")
    let origin = try CairnLog.create(at: first, name: name, options: options(0))
    var nodes = [try TestNode(log: origin, path: first, configuration: configuration, options: options(0))]
    for index in 1..<count {
        let path = temporaryDirectory("\(name)\(index)")
        let invite = try await origin.invite(address: nil, role: .writer)
        nodes.append(try TestNode(
            log: try CairnLog.join(at: path, invite: invite, options: options(index)), path: path, configuration: configuration,
            options: options(index)))
    }
    return nodes
}

/// A wall clock a test sets by hand (one per node: a node's clock can run fast).
final class ManualWallClock: WallClock {
    private let now: Mutex<UInt64>
    init(_ start: UInt64) { now = Mutex(start) }
    func nowMilliseconds() -> UInt64 { now.withLock { $0 } }
    func set(_ ms: UInt64) { now.withLock { $0 = ms } }
    func advance(_ ms: UInt64) { now.withLock { $0 += ms } }
}

/// Connects every node to every other (each dials those before it, so a restarted node, which
/// gets a new port, redials the others itself) and starts them.
func connectFullMesh(_ nodes: [TestNode]) async throws {
    for node in nodes { node.start() }
    for (i, node) in nodes.enumerated() {
        for other in nodes[..<i] { try await node.dial(other) }
    }
}

/// Waits until `condition` holds, checking every 50 ms, for at most `seconds`; with a
/// `clock`, moves it forward by `step` before each check (the nodes' timers fire as if that
/// much time passed).
func eventually(
    _ seconds: Double = 60, _ what: String, advancing clock: ManualClock? = nil, by step: Duration = .seconds(1),
    _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
    while ContinuousClock.now < deadline {
        clock?.advance(by: step)
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(50))
    }
    Issue.record("timed out after \(seconds) s waiting for: \(what)")
    throw CancellationError()
}

/// Waits until every node holds one and the same head, the same entries and the same state
/// (moving `clock` forward a second before each check, if given).
func awaitConvergence(_ nodes: [TestNode], seconds: Double = 60, advancing clock: ManualClock? = nil) async throws -> NodeSnapshot {
    var last: [NodeSnapshot] = []
    do {
        try await eventually(seconds, "convergence", advancing: clock) {
            last = []
            for node in nodes { last.append(try await node.snapshot()) }
            return last[0].heads.count == 1 && last.allSatisfy { $0 == last[0] }
        }
    } catch {
        Issue.record("nodes did not converge: \(last)")
        throw error
    }
    return last[0]
}

/// A metric's value from the Prometheus text (0 when absent), e.g.
/// `metric(node, "cairn_entries_rejected_total{reason=\"bad_signature\"}")`.
func metric(_ node: SyncNode, _ series: String) -> Double { node.metrics.value(of: series) }

/// Counts the merge entries in a log.
func mergeCount(_ log: CairnLog) async throws -> Int {
    try await log.log(LogFilter()).filter { if case .merge = $0.entry.payload { true } else { false } }.count
}

func removeAll(_ nodes: [TestNode]) async {
    for node in nodes {
        await node.stop()
        try? FileManager.default.removeItem(atPath: node.path)
    }
}

/// The nodes a test made (``TestNode`` registers itself while a test runs under
/// ``NodeCleanup``).
final class TestNodes: Sendable {
    @TaskLocal static var current: TestNodes?
    private let nodes = Mutex<[TestNode]>([])

    func add(_ node: TestNode) { nodes.withLock { $0.append(node) } }

    /// Stops every node and removes its files, newest first: later nodes dial earlier ones, and
    /// a listener cancelled with a dial in its accept queue traps in NIO (apple/swift-nio#3481).
    func removeAll() async { await CairnSyncTests.removeAll(nodes.withLock { $0 }.reversed()) }
}

/// Stops every node a test made, and waits until each has wound down, when the test ends —
/// passed, failed or threw — so no node outlives its test (`defer` cannot await).
struct NodeCleanup: SuiteTrait, TestTrait, TestScoping {
    var isRecursive: Bool { true }

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        guard !test.isSuite else { return try await function() }
        let made = TestNodes()
        do {
            try await TestNodes.$current.withValue(made) { try await function() }
        } catch {
            await made.removeAll()
            throw error
        }
        await made.removeAll()
    }
}

extension Trait where Self == NodeCleanup {
    /// Every node a test makes is stopped (and awaited) when the test ends.
    static var stopsNodes: NodeCleanup { NodeCleanup() }
}

/// A monotonic clock a test advances by hand (``SyncConfiguration/clock``): timers of 10–60 s
/// fire when the test says, not after waiting them out.
final class ManualClock: Clock, Sendable {
    struct Instant: InstantProtocol {
        var offset: Duration
        func advanced(by duration: Duration) -> Instant { Instant(offset: offset + duration) }
        func duration(to other: Instant) -> Duration { other.offset - offset }
        static func < (a: Instant, b: Instant) -> Bool { a.offset < b.offset }
    }

    private struct Sleeper {
        let deadline: Instant
        let continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var now = Instant(offset: .zero)
        var nextID = 0
        var sleepers: [Int: Sleeper] = [:]
    }

    private let state = Mutex(State())

    var now: Instant { state.withLock { $0.now } }
    var minimumResolution: Duration { .zero }

    /// When each pending sleep ends, soonest first.
    var deadlines: [Duration] { state.withLock { $0.sleepers.values.map(\.deadline.offset).sorted() } }

    func sleep(until deadline: Instant, tolerance: Duration?) async throws {
        let id = state.withLock { state in
            defer { state.nextID += 1 }
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let outcome: Result<Void, any Error>? = state.withLock { state in
                    if Task.isCancelled { return .failure(CancellationError()) }
                    if deadline <= state.now { return .success(()) }
                    state.sleepers[id] = Sleeper(deadline: deadline, continuation: continuation)
                    return nil
                }
                if let outcome { continuation.resume(with: outcome) }
            }
        } onCancel: {
            state.withLock { $0.sleepers.removeValue(forKey: id) }?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Moves time forward and wakes every sleep that is due.
    func advance(by duration: Duration) {
        let due = state.withLock { state in
            state.now = state.now.advanced(by: duration)
            let now = state.now
            let due = state.sleepers.filter { $0.value.deadline <= now }
            for id in due.keys { state.sleepers[id] = nil }
            return due.values.map(\.continuation)
        }
        for continuation in due { continuation.resume() }
    }
}
