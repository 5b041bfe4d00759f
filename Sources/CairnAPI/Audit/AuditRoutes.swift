import Cairn
import Foundation
import Hummingbird

/// The web audit view's routes: its read endpoints and, for any other path, the page's files
/// (``WebAssets``). ``APIServer`` calls it after registering the API's own routes.
func registerAuditRoutes(on router: APIRouter, log: CairnLog) {
    AuditRoutes(log: log).register(on: router)
    if let files = WebAssets.middleware() { router.add(middleware: files) }
}

/// The audit view's read endpoints (docs/openapi.yaml, "audit view paths") and the page
/// itself at `/`. Everything here only reads the log; `POST /v1/verify` starts a check that
/// reads it on its own handle.
struct AuditRoutes: Sendable {
    /// Rows per `GET /v1/log` window unless `limit` says otherwise, and the most it may say.
    static let defaultWindow = 200
    static let maxWindow = 1000
    /// How many candidates an ambiguous id prefix lists.
    static let candidateCount = 10

    let log: CairnLog
    let jobs: VerifyJobs

    init(log: CairnLog) {
        self.log = log
        self.jobs = VerifyJobs(directory: log.directory.path)
    }

    func register(on router: APIRouter) {
        router.get("/v1/log") { request, _ in try await window(request) }
        router.get("/v1/entries/:id") { _, context in try await entry(context.parameters.require("id")) }
        router.get("/v1/keys/:bucket/**") { request, context in
            try await keyHistory(request.uri.path, bucket: context.parameters.require("bucket"))
        }
        router.get("/v1/writers/history") { _, _ in try await writerHistory() }
        router.get("/v1/sync/peers") { _, _ in try await peers() }
        router.post("/v1/verify") { _, _ in try startVerify() }
        router.get("/v1/verify/:job") { _, context in try verifyJob(context.parameters.require("job")) }
        for (path, allowed) in Self.methods { router.refuseMethods(on: path, allowing: allowed) }
    }

    /// Every audit path and its methods: the others get `405` with `Allow`, as the API's own.
    static let methods: [(RouterPath, [HTTPRequest.Method])] = [
        ("/v1/log", [.get]), ("/v1/entries/:id", [.get]), ("/v1/keys/:bucket/**", [.get]), ("/v1/writers/history", [.get]),
        ("/v1/sync/peers", [.get]), ("/v1/verify", [.post]), ("/v1/verify/:job", [.get]),
    ]

    // MARK: - Handlers

    /// A window of rows, newest first, strictly older than the `before` cursor.
    private func window(_ request: Request) async throws -> Response {
        let query = request.uri.queryParameters
        var filter = LogFilter()
        filter.limit = try Self.limit(query["limit"].map(String.init))
        filter.after = try query["before"].map { try LogCursor.parse(String($0)) }
        let page = try await log.log(filter)
        // A merge's lane continues with its author's own previous entry: read its parents' authors.
        let summaries = try await log.summaries(of: page.filter { $0.entry.parents.count > 1 }.flatMap(\.entry.parents))
        let rows = page.map { LogRowDocument($0, firstParent: Self.firstParent(of: $0.entry, summaries: summaries)) }
        let next = page.count == filter.limit ? page.last.map { LogCursor.format($0.entry) } : nil
        return try AuditJSON.response(LogWindowDocument(entries: rows, next: next))
    }

    private func entry(_ prefix: String) async throws -> Response {
        let stored: StoredEntry
        do {
            stored = try await log.entry(prefix: prefix)
        } catch {
            throw try await explained(error, prefix: prefix)
        }
        let entry = stored.entry
        var missing: [Hash32] = []
        for parent in entry.parents where try await log.entry(parent) == nil { missing.append(parent) }
        var value: ValueLookup?
        if case .put(_, _, let ref) = entry.payload { value = try await log.value(ref.digest) }
        // The row was found by its stored id; finding the same row by the hash of its body
        // shows the two agree.
        let idMatches = try await log.entry(entry.id)?.seq == stored.seq
        return try AuditJSON.response(EntryDetailDocument(stored, idMatchesBody: idMatches, value: value, missingParents: missing))
    }

    /// An ambiguous prefix's problem document lists the entries it matches; other errors are
    /// returned as they are.
    private func explained(_ error: CairnError, prefix: String) async throws -> any Error {
        guard error.code == .ambiguous else { return error }
        let candidates = try await log.entries(prefix: prefix, limit: Self.candidateCount)
        var problem = Problem(error)
        problem.extra = [("candidates", try AuditJSON.text(candidates.map(CandidateDocument.init)))]
        return problem
    }

    /// The key is the raw path between the bucket and `/history`, as the KV routes read it: it
    /// may hold `/` (as is or as `%2F`), and empty segments are kept.
    private func keyHistory(_ path: String, bucket rawBucket: String) async throws -> Response {
        let suffix = "/history"
        let rawKey = path.dropFirst("/v1/keys/".count + rawBucket.utf8.count + 1)
        guard rawKey.hasSuffix(suffix), rawKey.count > suffix.count else {
            throw Problem.notFound("no such path: a key's history is at /v1/keys/{bucket}/{key}/history")
        }
        let bucket = try KeyValueRoutes.decoded(Substring(rawBucket), what: "bucket")
        let key = try KeyValueRoutes.decoded(rawKey.dropLast(suffix.count), what: "key")
        let history = try await log.history(bucket, key)
        return try AuditJSON.response(KeyHistoryDocument(bucket: bucket, key: key, history: history))
    }

    private func writerHistory() async throws -> Response {
        try AuditJSON.response(WriterHistoryDocument(events: try await log.writerSetHistory()))
    }

    private func peers() async throws -> Response {
        let now = UInt64(Date().timeIntervalSince1970 * 1000)
        return try AuditJSON.response(PeersDocument(peers: try await log.peers(), statuses: try await log.peerStatuses(), now: now))
    }

    private func startVerify() throws -> Response {
        do {
            let id = try jobs.start()
            var response = try AuditJSON.response(["job": id, "href": "/v1/verify/\(id)"], status: .accepted)
            response.headers[.location] = "/v1/verify/\(id)"
            return response
        } catch VerifyJobs.StartError.busy(let running) {
            throw Problem(
                status: .conflict, code: "verifyRunning", title: "A verify job is already running",
                detail: "verify job \(running) is still running; follow it at /v1/verify/\(running)",
                extra: [("job", try AuditJSON.text(running))])
        }
    }

    private func verifyJob(_ id: String) throws -> Response {
        guard let job = jobs.job(id) else { throw Problem.notFound("no verify job \(id) (only the last few are kept)") }
        return try AuditJSON.response(job)
    }

    // MARK: - Parsing

    private static func limit(_ text: String?) throws -> Int {
        guard let text else { return defaultWindow }
        guard let limit = Int(text), (1...maxWindow).contains(limit) else {
            throw Problem.badRequest("limit must be a whole number from 1 to \(maxWindow), not \(text)")
        }
        return limit
    }

    /// The parent a lane continues with, as `cairn log --graph` orders them: the author's own
    /// newest parent, else the newest parent.
    static func firstParent(of entry: SignedEntry, summaries: [Hash32: EntrySummary]) -> Hash32? {
        guard entry.parents.count > 1 else { return entry.parents.first }
        let newestFirst = entry.parents.sorted { a, b in
            let x = summaries[a]?.hlc.rawValue ?? 0, y = summaries[b]?.hlc.rawValue ?? 0
            return x != y ? x > y : a > b
        }
        return newestFirst.first { summaries[$0]?.author == entry.author } ?? newestFirst.first
    }
}

/// The `before` cursor of `GET /v1/log`: an entry's `(hlc, id)` position, written `HLC-IDHEX`.
enum LogCursor {
    static func format(_ entry: SignedEntry) -> String { "\(entry.hlc.rawValue)-\(entry.id.hex)" }

    /// - Throws: ``Problem/badRequest(_:)`` for anything else.
    static func parse(_ text: String) throws -> LogPosition {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, let hlc = UInt64(parts[0]), let id = Hash32(hex: String(parts[1])) else {
            throw Problem.badRequest("before must be a cursor from a previous window (HLC-ID), not \(text)")
        }
        return LogPosition(hlc: HLC(rawValue: hlc), id: id)
    }
}
