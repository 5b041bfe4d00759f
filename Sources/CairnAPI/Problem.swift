import Cairn
import Hummingbird

/// A failed request as an RFC 9457 problem document (`application/problem+json`): `type` is
/// `https://cairn.dev/problems/CODE` with a stable code (a ``CairnError/Code`` or one of the
/// API's own, below), `title` is fixed per code, `detail` says what happened this time.
struct Problem: Error, Sendable {
    let status: HTTPResponse.Status
    let code: String
    let title: String
    let detail: String
    /// Extra members of the document (e.g. the cursor to resume a feed from).
    var extra: [(String, String)] = []

    static let typeBase = "https://cairn.dev/problems/"

    static func badRequest(_ detail: String) -> Problem {
        Problem(status: .badRequest, code: "invalidRequest", title: "The request is malformed", detail: detail)
    }

    static func notFound(_ detail: String) -> Problem {
        Problem(status: .notFound, code: "notFound", title: "Not found", detail: detail)
    }

    static let unauthorized = Problem(
        status: .unauthorized, code: "unauthorized", title: "A valid bearer token is required",
        detail: "send Authorization: Bearer TOKEN, the token in the server's token file")

    static func tooLarge(_ detail: String) -> Problem {
        Problem(status: .contentTooLarge, code: "tooLarge", title: "The request body is too large", detail: detail)
    }

    /// The document for a library error: its code names the type; the status follows it. A
    /// failed compare-and-set also names the key's current winner (`current_entry`, or null).
    init(_ error: CairnError) {
        self.code = error.code.description
        self.detail = error.message
        if let failed = error.underlying as? ConditionFailed {
            extra = [("current_entry", failed.current.map { "\"\($0.hex)\"" } ?? "null")]
        }
        (self.status, self.title) =
            switch error.code {
            case .conditionFailed: (.preconditionFailed, "The key changed since it was read; nothing was written")
            case .notFound: (.notFound, "Not found")
            case .ambiguous: (.badRequest, "The entry id prefix matches more than one entry")
            case .invalidInput: (.badRequest, "The input does not parse")
            case .refused: (.unprocessableContent, "Refused: nothing was applied")
            case .notAuthorized: (.forbidden, "This node may not make that write")
            case .readOnly: (.conflict, "The log is read-only")
            case .busy: (.serviceUnavailable, "The log is busy; try again")
            case .corrupt: (.internalServerError, "Stored data is damaged")
            default: (.internalServerError, "The log failed")
            }
    }

    init(status: HTTPResponse.Status, code: String, title: String, detail: String, extra: [(String, String)] = []) {
        (self.status, self.code, self.title, self.detail, self.extra) = (status, code, title, detail, extra)
    }

    /// The problem document as a response.
    var response: Response {
        var json = JSONLine()
        json.open()
        json.key("type"); json.string(Problem.typeBase + code)
        json.key("title"); json.string(title)
        json.key("status"); json.int(Int64(status.code))
        json.key("detail"); json.string(detail)
        for (key, value) in extra { json.key(key); json.raw(value) }
        json.close()
        var headers: HTTPFields = [.contentType: "application/problem+json"]
        if status == .unauthorized { headers[.wwwAuthenticate] = "Bearer" }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: json.bytes)))
    }
}

/// Turns every error a handler or Hummingbird throws into a problem document, so a client
/// never sees an empty 500 or an HTML page.
struct ProblemMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let problem as Problem {
            return problem.response
        } catch let error as CairnError {
            return Problem(error).response
        } catch let error as HTTPError {
            return Problem(httpError: error).response
        } catch {
            context.logger.error("request failed", metadata: ["error": "\(error)"])
            return Problem(status: .internalServerError, code: "internal", title: "The server failed", detail: "\(error)").response
        }
    }
}

extension Problem {
    /// Hummingbird's own errors: an unknown route, a body over the upload limit.
    init(httpError error: HTTPError) {
        switch error.status {
        case .notFound: self = .notFound(error.body ?? "no such endpoint")
        case .contentTooLarge: self = .tooLarge(error.body ?? "the body exceeds the server's limit")
        case .methodNotAllowed: self.init(status: .methodNotAllowed, code: "methodNotAllowed", title: "Method not allowed", detail: error.body ?? "")
        default: self.init(status: error.status, code: "invalidRequest", title: error.status.reasonPhrase, detail: error.body ?? error.status.reasonPhrase)
        }
    }
}
