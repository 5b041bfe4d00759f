import Cairn
import Synchronization

/// The verify jobs of the audit view (`POST /v1/verify`, `GET /v1/verify/{job}`): one runs at a
/// time, in the background, on its own read-only handle of the log, so the other audit reads
/// (served by the API's handle) go on while it checks; its progress is read while it runs.
final class VerifyJobs: Sendable {
    /// A job as `GET /v1/verify/{job}` shows it.
    struct Job: Encodable, Sendable {
        let job: String
        /// `running`, `done` (the report is in; `problems` may be empty) or `failed` (the
        /// check could not run: `error` says why).
        var state = "running"
        var checked = 0
        var total = 0
        var entriesChecked = 0
        var valuesChecked = 0
        var problems: [Finding] = []
        var error: String?
    }

    /// One problem `verify` found.
    struct Finding: Encodable, Sendable {
        let entry: String?
        let seq: Int64?
        let message: String
    }

    /// Why a job could not start.
    enum StartError: Error {
        /// A job is still running (its id).
        case busy(String)
    }

    private struct State {
        var lastID = 0
        var jobs: [String: Job] = [:]
        var running: String?
    }

    /// How many finished jobs are kept for reading (older ones are dropped).
    private static let keptJobs = 16
    private let state = Mutex(State())
    private let directory: String

    /// - Parameter directory: the data directory of the log the jobs verify.
    init(directory: String) {
        self.directory = directory
    }

    /// Starts a job and returns its id at once.
    ///
    /// - Throws: ``StartError/busy(_:)`` while another job runs.
    func start() throws(StartError) -> String {
        let id = try state.withLock { state throws(StartError) -> String in
            if let running = state.running { throw .busy(running) }
            state.lastID += 1
            let id = String(state.lastID)
            state.jobs[id] = Job(job: id)
            state.running = id
            let finished = state.jobs.keys.compactMap(Int.init).sorted().dropLast(Self.keptJobs)
            for old in finished { state.jobs[String(old)] = nil }
            return id
        }
        let directory = directory
        Task { await self.run(id, directory: directory) }
        return id
    }

    /// The job with this id, if it is kept.
    func job(_ id: String) -> Job? { state.withLock { $0.jobs[id] } }

    private func run(_ id: String, directory: String) async {
        do {
            let log = try CairnLog.open(at: directory, readOnly: true)
            let report = try await log.verify { checked, total in
                self.update(id) { $0.checked = checked; $0.total = total }
            }
            finish(id) { job in
                job.state = "done"
                job.checked = max(job.checked, job.total)
                job.entriesChecked = report.entriesChecked
                job.valuesChecked = report.valuesChecked
                job.problems = report.problems.map { Finding(entry: $0.entryID?.hex, seq: $0.seq, message: $0.message) }
            }
        } catch {
            finish(id) { $0.state = "failed"; $0.error = "\(error)" }
        }
    }

    private func update(_ id: String, _ change: (inout Job) -> Void) {
        state.withLock { state in Self.change(id, in: &state, change) }
    }

    /// Records the job's outcome and frees the slot, in one step: a job never reads as ended
    /// while a new one would still be refused.
    private func finish(_ id: String, _ change: (inout Job) -> Void) {
        state.withLock { state in
            Self.change(id, in: &state, change)
            state.running = nil
        }
    }

    private static func change(_ id: String, in state: inout State, _ change: (inout Job) -> Void) {
        guard var job = state.jobs[id] else { return }
        change(&job)
        state.jobs[id] = job
    }
}
