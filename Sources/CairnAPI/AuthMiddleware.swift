import Hummingbird

/// Refuses requests without `Authorization: Bearer TOKEN` when the server has a token.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = APIRequestContext
    let token: BearerToken

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let header = request.headers[.authorization], header.utf8.count > 7,
            header.utf8.prefix(7).elementsEqual("bearer ".utf8, by: { $0 | 0x20 == $1 }),
            token.matches(header.utf8.dropFirst(7))
        else { throw Problem.unauthorized }
        return try await next(request, context)
    }
}
