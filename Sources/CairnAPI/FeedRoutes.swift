import Cairn
import HTTPTypes
import Hummingbird

/// `GET /v1/changes`: the change stream of `cairn tail` — the same lines, from the same encoder
/// — as newline-delimited JSON or, with `Accept: text/event-stream`, as Server-Sent Events whose
/// ids are cursors (a reconnecting `EventSource` resumes with `Last-Event-ID`).
///
/// Each consumer reads the change log on its own read-only connection, at the pace its socket
/// drains: writers and sync never wait for it. One that falls more than
/// ``APIConfiguration/Limits/feedBuffer`` changes behind the log gets a final `LAGGED` line (or
/// `lagged` event) with the cursor to resume from, and the response ends.
struct FeedRoutes: Sendable {
    let log: CairnLog
    let limits: APIConfiguration.Limits

    func register(on router: APIRouter) {
        router.get("/v1/changes") { request, _ in try await feed(request) }
    }

    /// What a feed request asks for.
    struct Query {
        var cursor = Cursor.start
        var follow = true
        var snapshot = false
        var encoding = ChangeValueEncoding.none
        var events = false

        init(_ request: Request) throws {
            let query = request.uri.queryParameters
            events = request.headers[.accept]?.contains("text/event-stream") ?? false
            let resumed = request.headers[HTTPField.Name("Last-Event-ID")!]
            if let text = resumed ?? query["cursor"].map(String.init) {
                guard let raw = Int64(text), raw >= 0 else { throw Problem.badRequest("cursor (or Last-Event-ID) must be a cursor of 0 or more") }
                cursor = Cursor(raw)
            }
            follow = try Self.flag(query["follow"], name: "follow") ?? true
            // A reconnecting EventSource repeats the URL: its snapshot was already delivered.
            snapshot = resumed == nil ? try Self.flag(query["snapshot"], name: "snapshot") ?? false : false
            if let text = query["values"] {
                guard let encoding = ChangeValueEncoding(rawValue: String(text)) else {
                    throw Problem.badRequest("values must be one of \(ChangeValueEncoding.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                self.encoding = encoding
            }
            if snapshot && cursor != .start { throw Problem.badRequest("snapshot=true starts from the snapshot's own cursor: give no cursor") }
        }

        private static func flag(_ text: Substring?, name: String) throws -> Bool? {
            switch text {
            case nil: nil
            case "true"?: true
            case "false"?: false
            default: throw Problem.badRequest("\(name) must be true or false")
            }
        }
    }

    func feed(_ request: Request) async throws -> Response {
        let query = try Query(request)
        let name = try await log.name
        let stream = log.changes(after: query.cursor, follow: query.follow, snapshot: query.snapshot, values: query.encoding != .none)
        let renderer = ChangeEventJSON(logID: log.logID.hex, name: name, encoding: query.encoding, tombstones: false, transactions: false)
        let pump = FeedPump(stream: stream, renderer: renderer, events: query.events, buffer: limits.feedBuffer)
        let headers: HTTPFields = [
            .contentType: query.events ? "text/event-stream" : "application/x-ndjson",
            .cacheControl: "no-store",
        ]
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in try await pump.run(into: &writer) })
    }
}

/// Moves one consumer's changes from the change log to its response.
struct FeedPump: Sendable {
    let stream: ChangeStream
    let renderer: ChangeEventJSON
    let events: Bool
    let buffer: Int

    /// Bytes gathered before a write (a batch read is written at once when smaller).
    static let writeThreshold = 1 << 16

    func run(into writer: inout any ResponseBodyWriter) async throws {
        var changes = stream.makeAsyncIterator()
        var renderer = renderer
        var out: [UInt8] = []
        while let change = try await changes.next() {
            renderer.render(change)
            append(renderer.line.bytes, cursor: change.cause == .snapshot ? nil : change.cursor, to: &out)
            renderer.line.bytes.removeAll(keepingCapacity: true)
            guard out.count >= Self.writeThreshold || !changes.hasBufferedChanges else { continue }
            try await writer.write(ByteBuffer(bytes: out))
            out.removeAll(keepingCapacity: true)
            // Checked once the socket took the batch: how far the log has run ahead meanwhile.
            guard change.cause != .snapshot else { continue }
            let newest = try changes.newestCursor()
            if newest.rawValue - change.cursor.rawValue > buffer {
                try await writer.write(ByteBuffer(bytes: lagged(at: change.cursor, newest: newest)))
                break
            }
        }
        if !out.isEmpty { try await writer.write(ByteBuffer(bytes: out)) }
        try await writer.finish(nil)
    }

    /// A rendered line as NDJSON (as it is) or as an SSE event whose id is its cursor.
    private func append(_ line: [UInt8], cursor: Cursor?, to out: inout [UInt8]) {
        guard events else { return out.append(contentsOf: line) }
        if let cursor { out.append(contentsOf: Array("id: \(cursor.rawValue)\n".utf8)) }
        out.append(contentsOf: Array("event: change\ndata: ".utf8))
        out.append(contentsOf: line.dropLast())  // the line's newline ends the data field
        out.append(contentsOf: Array("\n\n".utf8))
    }

    /// The final line of a consumer that fell behind: resume after `cursor`.
    private func lagged(at cursor: Cursor, newest: Cursor) -> [UInt8] {
        var json = JSONLine()
        json.open()
        json.key("status"); json.string("LAGGED")
        json.key("cursor"); json.int(cursor.rawValue)
        json.key("newest_cursor"); json.int(newest.rawValue)
        json.key("detail"); json.string("this consumer fell more than \(buffer) changes behind the log; resume with cursor=\(cursor.rawValue)")
        json.close()
        guard events else { json.newline(); return json.bytes }
        return Array("event: lagged\ndata: ".utf8) + json.bytes + Array("\n\n".utf8)
    }
}
