import Hummingbird

/// The request context of every API route (the audit view's too).
struct APIRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
    }

    /// The bound of bodies collected or decoded whole through Hummingbird (small JSON bodies).
    /// Values and bundles are streamed and bounded by their own routes
    /// (``APIConfiguration/Limits``) instead.
    var maxUploadSize: Int { 1 << 20 }
}

/// The router every route registers on.
typealias APIRouter = Router<APIRequestContext>
