import Cairn
import Hummingbird

/// The API's own endpoints (see docs/openapi.yaml), over one log.
struct Routes: Sendable {
    let log: CairnLog
    let limits: APIConfiguration.Limits

    func register(on router: APIRouter) {
        router.get("/v1/status") { _, _ in try await status() }
        router.get("/v1/heads") { _, _ in try await heads() }
        router.get("/v1/writers") { _, _ in try await writers() }
        KeyValueRoutes(log: log, limits: limits).register(on: router)
        FeedRoutes(log: log, limits: limits).register(on: router)
        BundleRoutes(log: log, limits: limits).register(on: router)
    }

    /// `GET /v1/status`: the log, this node, and counts.
    func status() async throws -> Response {
        let counts = try await log.counts()
        var json = JSONLine()
        json.open()
        json.key("log"); json.string(log.logID.hex)
        json.key("name"); json.string(try await log.name)
        json.key("node_key"); json.optional(log.hasNodeKey ? log.nodeKey.hex : nil)
        json.key("read_only"); json.bool(log.isReadOnly)
        json.key("version"); json.string(CairnVersion.string)
        json.key("entries"); json.int(Int64(counts.entries))
        json.key("heads"); json.int(Int64(counts.heads))
        json.key("orphans"); json.int(Int64(counts.orphans))
        json.key("quarantined"); json.int(Int64(counts.quarantined))
        json.key("last_cursor"); json.int(counts.lastCursor)
        json.close()
        return .json(json)
    }

    /// `GET /v1/heads`: the DAG's heads (more than one: diverged, merged by the next write).
    func heads() async throws -> Response {
        let heads = try await log.heads()
        var json = JSONLine()
        json.open()
        json.key("heads")
        json.array(heads) { json, head in
            json.open()
            json.key("id"); json.hex(head.id.bytes)
            json.key("hlc"); json.int(Int64(clamping: head.hlc.rawValue))
            json.key("hlc_wall_ms"); json.int(Int64(clamping: head.hlc.wallMilliseconds))
            json.close()
        }
        json.close()
        return .json(json)
    }

    /// `GET /v1/writers`: the current writer set (as `cairn writers list --json`).
    func writers() async throws -> Response {
        let writers = try await log.writers()
        var json = JSONLine()
        json.open()
        json.key("writers")
        json.array(writers) { json, writer in
            json.open()
            json.key("key"); json.hex(writer.key.bytes)
            json.key("role"); json.optional(writer.status.role?.description)
            json.key("revoked_from")
            if let from = writer.status.revokedFrom { json.int(Int64(clamping: from.rawValue)) } else { json.null() }
            json.key("this_node"); json.bool(writer.key == log.nodeKey)
            json.close()
        }
        json.close()
        return .json(json)
    }
}

extension Response {
    /// A `200 application/json` response (or `status`) with `json`'s bytes.
    static func json(_ json: JSONLine, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        var headers = headers
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: json.bytes)))
    }
}
