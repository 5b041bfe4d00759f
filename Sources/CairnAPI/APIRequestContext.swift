import Hummingbird

/// The request context of every API route (the audit view's too).
struct APIRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
    }

    /// Bodies are streamed and bounded by each route (``APIConfiguration/Limits``), not
    /// collected up to a global size.
    var maxUploadSize: Int { 0 }
}

/// The router every route registers on.
typealias APIRouter = Router<APIRequestContext>
