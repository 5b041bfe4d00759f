import Cairn
import HTTPTypes
import Hummingbird

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `GET /v1/bundle` exports the whole log as a bundle (the format of `cairn export`), streamed
/// from a temporary file; `POST /v1/bundle` streams a bundle in to a temporary file (bounded by
/// ``APIConfiguration/Limits/maxBundleBytes``) and imports it as `cairn import` does: every
/// entry is checked before any is applied, so a refused bundle changes nothing.
struct BundleRoutes: Sendable {
    let log: CairnLog
    let limits: APIConfiguration.Limits

    static let mediaType = "application/vnd.cairn.bundle"
    static let chunkBytes = 1 << 16

    func register(on router: APIRouter) {
        router.get("/v1/bundle") { _, _ in try await export() }
        router.post("/v1/bundle") { request, _ in try await importBundle(request) }
    }

    func export() async throws -> Response {
        let file = try ScratchFile()
        do {
            try await log.exportBundle(to: file.path)
            let reader = try file.openForReading()
            let headers: HTTPFields = [
                .contentType: Self.mediaType,
                .contentDisposition: "attachment; filename=\"\(log.logID.shortHex()).cairn\"",
            ]
            return Response(status: .ok, headers: headers, body: ResponseBody(contentLength: reader.size) { writer in
                defer { reader.close() }
                while let chunk = try reader.next(Self.chunkBytes) { try await writer.write(ByteBuffer(bytes: chunk)) }
                try await writer.finish(nil)
            })
        } catch {
            file.remove()
            throw error
        }
    }

    func importBundle(_ request: Request) async throws -> Response {
        let file = try ScratchFile()
        defer { file.remove() }
        try await file.fill(from: request.body, limit: limits.maxBundleBytes)
        let report = try await log.importBundle(from: file.path)
        var json = JSONLine()
        json.open()
        json.key("entries"); json.int(Int64(report.entries))
        json.key("applied"); json.int(Int64(report.applied))
        json.key("duplicates"); json.int(Int64(report.duplicates))
        json.key("orphaned"); json.int(Int64(report.orphaned))
        json.key("quarantined"); json.int(Int64(report.quarantined))
        json.close()
        return .json(json)
    }
}

/// A private temporary file (mode 0600, a fresh name) for a bundle on its way in or out.
struct ScratchFile: Sendable {
    let path: String

    /// - Throws: ``Problem`` (`500`) when no temporary file can be made.
    init() throws {
        var template = Array((Self.directory + "/cairn-api-bundle-XXXXXX").utf8CString)
        let fd = mkstemp(&template)
        guard fd >= 0 else { throw Self.failure("cannot create a temporary file: \(String(cString: strerror(errno)))") }
        close(fd)
        path = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private static var directory: String {
        guard let tmp = getenv("TMPDIR").map({ String(cString: $0) }), !tmp.isEmpty else { return "/tmp" }
        return tmp
    }

    func remove() { unlink(path) }

    /// Writes the body to the file, refusing it (`413`) past `limit` bytes.
    func fill(from body: RequestBody, limit: Int) async throws {
        guard let file = fopen(path, "wb") else { throw Self.failure("cannot write \(path)") }
        defer { fclose(file) }
        var total = 0
        for try await buffer in body {
            total += buffer.readableBytes
            guard total <= limit else { throw Problem.tooLarge("the bundle is larger than \(limit) bytes") }
            let written = buffer.withUnsafeReadableBytes { fwrite($0.baseAddress, 1, $0.count, file) }
            guard written == buffer.readableBytes else { throw Self.failure("cannot write \(path): \(String(cString: strerror(errno)))") }
        }
        guard fflush(file) == 0 else { throw Self.failure("cannot write \(path): \(String(cString: strerror(errno)))") }
    }

    /// Opens the file for streaming out, and unlinks it: the open descriptor keeps the bytes
    /// until the response is done, and nothing is left behind however it ends.
    func openForReading() throws -> ChunkReader {
        guard let file = fopen(path, "rb") else { throw Self.failure("cannot read \(path)") }
        var info = stat()
        fstat(fileno(file), &info)
        remove()
        return ChunkReader(file: file, size: Int(info.st_size))
    }

    private static func failure(_ detail: String) -> Problem {
        Problem(status: .internalServerError, code: "io", title: "A file could not be read or written", detail: detail)
    }
}

/// Reads a file in chunks; closed by its one user, the response body.
final class ChunkReader: @unchecked Sendable {
    private let file: UnsafeMutablePointer<FILE>
    let size: Int

    init(file: UnsafeMutablePointer<FILE>, size: Int) {
        self.file = file
        self.size = size
    }

    func next(_ count: Int) throws -> [UInt8]? {
        var bytes = [UInt8](repeating: 0, count: count)
        let read = fread(&bytes, 1, count, file)
        if read == 0 { return nil }
        return Array(bytes.prefix(read))
    }

    func close() { fclose(file) }
}
