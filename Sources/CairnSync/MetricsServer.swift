import NIOCore
import NIOHTTP1
import NIOPosix

/// Serves `GET /metrics` in the Prometheus text format over HTTP/1.1; anything else is a 404.
enum MetricsServer {
    /// Binds, then serves until the task is cancelled.
    static func run(at address: HostPort, metrics: SyncMetrics, bound: @Sendable (Int) async -> Void) async throws {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(MetricsHandler(metrics: metrics))
                }
            }
            .bind(host: address.host, port: address.port).get()
        await bound(channel.localAddress?.port ?? address.port)
        try await withTaskCancellationHandler {
            try await channel.closeFuture.get()
        } onCancel: {
            channel.close(promise: nil)
        }
    }
}

private final class MetricsHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let metrics: SyncMetrics
    private var path = ""
    private var method = HTTPMethod.GET
    private var keepAlive = true

    init(metrics: SyncMetrics) { self.metrics = metrics }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            path = head.uri
            method = head.method
            keepAlive = head.isKeepAlive
        case .body:
            break
        case .end:
            let found = method == .GET && (path == "/metrics" || path.hasPrefix("/metrics?"))
            let body = found ? metrics.text() : "not found; try /metrics\n"
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: found ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain")
            headers.add(name: "Content-Length", value: "\(body.utf8.count)")
            let head = HTTPResponseHead(version: .http1_1, status: found ? .ok : .notFound, headers: headers)
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
            let closeAfter = !keepAlive
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { [context] _ in
                if closeAfter { context.close(promise: nil) }
            }
        }
    }
}
