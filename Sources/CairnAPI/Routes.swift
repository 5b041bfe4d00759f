import Cairn
import Hummingbird

/// The API's own endpoints (see docs/openapi.yaml), over one log.
struct Routes: Sendable {
    let log: CairnLog
    let limits: APIConfiguration.Limits

    func register(on router: APIRouter) {
        router.get("/v1/status") { _, _ in try await status() }
    }

    /// `GET /v1/status`: the log, this node, and counts.
    func status() async throws -> Response {
        let counts = try await log.counts()
        var json = JSONLine()
        json.open()
        json.key("log"); json.string(log.logID.hex)
        json.key("name"); json.string(try await log.name)
        json.key("node_key"); log.hasNodeKey ? json.string(log.nodeKey.hex) : json.null()
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
}

extension Response {
    /// A `200 application/json` response (or `status`) with `json`'s bytes.
    static func json(_ json: JSONLine, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        var headers = headers
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: json.bytes)))
    }
}
