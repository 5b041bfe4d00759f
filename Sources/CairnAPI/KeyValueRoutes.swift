import Cairn
import HTTPTypes
import Hummingbird

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `/v1/kv/{bucket}/{key}` and `/v1/kv/{bucket}`: values as raw bytes, with the value digest as
/// the ETag and the winning entry id in `Cairn-Entry` (what `If-Match` names for a
/// compare-and-set).
struct KeyValueRoutes: Sendable {
    let log: CairnLog
    let limits: APIConfiguration.Limits

    static let entryHeader = HTTPField.Name("Cairn-Entry")!

    func register(on router: APIRouter) {
        router.get("/v1/kv/:bucket") { request, context in try await list(request, context) }
        router.get("/v1/kv/:bucket/**") { request, context in try await get(request, context) }
        router.put("/v1/kv/:bucket/**") { request, context in try await put(request, context) }
        router.delete("/v1/kv/:bucket/**") { request, context in try await delete(request, context) }
    }

    /// `GET`: the value's bytes; `304` when `If-None-Match` names its digest.
    func get(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let (bucket, key) = try target(request, context)
        guard let state = try await log.state(bucket, key), let ref = state.value else {
            throw Problem.notFound("\(bucket)/\(key) has no value")
        }
        var headers: HTTPFields = [.eTag: Self.tag(ref.digest), Self.entryHeader: state.entryID.hex]
        if let tags = request.headers[.ifNoneMatch], Self.matches(tags, ref.digest) {
            return Response(status: .notModified, headers: headers)
        }
        guard case .present(let bytes) = try await log.value(ref.digest) else {
            throw Problem(status: .gone, code: "valueUnavailable", title: "The value's bytes are not here",
                          detail: "\(bucket)/\(key): value \(ref.digest.hex) was purged or never arrived on this node")
        }
        headers[.contentType] = "application/octet-stream"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    /// `PUT`: the body becomes the value. `If-Match: ENTRY` writes only over that winner,
    /// `If-None-Match: *` only when the key has no live value (`412` otherwise, nothing written).
    func put(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let (bucket, key) = try target(request, context)
        let condition = try Self.condition(request.headers)
        let value = try await collect(request.body, limit: limits.maxValueBytes)
        let entry =
            if let condition { try await log.put(bucket, key, value, if: condition) } else { try await log.put(bucket, key, value) }
        return written(entry, status: condition == .absent ? .created : .ok, digest: ValueRef(of: value).digest)
    }

    /// `DELETE`: writes a tombstone (`404` when the key has no live value); `If-Match` as for `PUT`.
    func delete(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let (bucket, key) = try target(request, context)
        let entry =
            if let condition = try Self.condition(request.headers) {
                try await log.delete(bucket, key, if: condition)
            } else {
                try await log.delete(bucket, key)
            }
        return written(entry, status: .ok, digest: nil)
    }

    /// `GET /v1/kv/{bucket}?prefix=&cursor=&limit=`: a page of live keys in byte order.
    func list(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let bucket = try Self.decoded(Substring(context.parameters.get("bucket") ?? ""), what: "bucket")
        let query = request.uri.queryParameters
        let limit = try Self.pageLimit(query["limit"], maximum: limits.maxPageSize)
        let page = try await log.list(bucket, prefix: query["prefix"].map(String.init) ?? "", after: query["cursor"].map(String.init), limit: limit)
        var json = JSONLine()
        json.open()
        json.key("bucket"); json.string(bucket)
        json.key("keys")
        json.array(page.keys) { json, state in
            json.open()
            json.key("key"); json.string(state.key)
            json.key("entry"); json.hex(state.entryID.bytes)
            json.key("digest"); json.optional(state.value?.digest.hex)
            json.key("length"); json.int(Int64(state.value?.length ?? 0))
            json.key("hlc"); json.int(Int64(clamping: state.hlc.rawValue))
            json.key("author"); json.hex(state.author.bytes)
            json.close()
        }
        json.key("next_cursor"); json.optional(page.next)
        json.close()
        return .json(json)
    }

    private func written(_ entry: SignedEntry, status: HTTPResponse.Status, digest: Hash32?) -> Response {
        var json = JSONLine()
        json.open()
        json.key("entry"); json.hex(entry.id.bytes)
        json.key("hlc"); json.int(Int64(clamping: entry.hlc.rawValue))
        json.key("digest"); json.optional(digest?.hex)
        json.close()
        var headers: HTTPFields = [Self.entryHeader: entry.id.hex]
        if let digest { headers[.eTag] = Self.tag(digest) }
        return .json(json, status: status, headers: headers)
    }

    /// The bucket and key a request names: the key is the rest of the path after the bucket,
    /// percent-decoded as a whole, so it may hold `/` (sent raw or as `%2F`).
    private func target(_ request: Request, _ context: APIRequestContext) throws -> (String, String) {
        let rawBucket = context.parameters.get("bucket") ?? ""
        let rawKey = request.uri.path.dropFirst("/v1/kv/".count + rawBucket.utf8.count + 1)
        let key = try Self.decoded(Substring(rawKey), what: "key")
        guard !key.isEmpty else { throw Problem.badRequest("the key is empty") }
        return (try Self.decoded(Substring(rawBucket), what: "bucket"), key)
    }

    static func decoded(_ text: Substring, what: String) throws -> String {
        guard let decoded = String(text).removingPercentEncoding else {
            throw Problem.badRequest("the \(what) is not valid percent-encoded UTF-8")
        }
        guard !decoded.isEmpty else { throw Problem.badRequest("the \(what) is empty") }
        return decoded
    }

    /// `limit` as given (1…maximum; larger values are clamped), or 100.
    static func pageLimit(_ text: Substring?, maximum: Int) throws -> Int {
        guard let text else { return min(100, maximum) }
        guard let limit = Int(text), limit >= 1 else { throw Problem.badRequest("limit must be a whole number of 1 or more") }
        return min(limit, maximum)
    }

    /// The write condition of `If-Match` (an entry id) or `If-None-Match: *`.
    static func condition(_ headers: HTTPFields) throws -> WriteCondition? {
        if let match = headers[.ifMatch] {
            guard let id = Hash32(hex: unquoted(match)) else {
                throw Problem.badRequest("If-Match must name the key's current entry id (64 hex digits, from Cairn-Entry)")
            }
            return .current(id)
        }
        if let noneMatch = headers[.ifNoneMatch] {
            guard noneMatch.trimmingCharacters(in: .whitespaces) == "*" else {
                throw Problem.badRequest("on a write, If-None-Match may only be * (write only if the key has no value)")
            }
            return .absent
        }
        return nil
    }

    static func tag(_ digest: Hash32) -> String { "\"\(digest.hex)\"" }

    /// Whether an `If-None-Match` list names `digest` (or is `*`).
    static func matches(_ tags: String, _ digest: Hash32) -> Bool {
        tags.split(separator: ",").contains { tag in
            let tag = tag.trimmingCharacters(in: .whitespaces)
            return tag == "*" || unquoted(tag.hasPrefix("W/") ? String(tag.dropFirst(2)) : tag) == digest.hex
        }
    }

    private static func unquoted(_ text: String) -> String {
        let text = text.trimmingCharacters(in: .whitespaces)
        guard text.count >= 2, text.hasPrefix("\""), text.hasSuffix("\"") else { return text }
        return String(text.dropFirst().dropLast())
    }
}

/// The whole body, refused with `413` past `limit` bytes (without reading further).
func collect(_ body: RequestBody, limit: Int) async throws -> [UInt8] {
    var bytes: [UInt8] = []
    for try await buffer in body {
        guard bytes.count + buffer.readableBytes <= limit else {
            throw Problem.tooLarge("the body is larger than \(limit) bytes")
        }
        bytes.append(contentsOf: buffer.readableBytesView)
    }
    return bytes
}
