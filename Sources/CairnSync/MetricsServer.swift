import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// Serves `GET /metrics` in the Prometheus text format and `GET /healthz` (a tiny JSON object,
/// 200 while the node serves) over HTTP/1.1; anything else is a 404.
enum MetricsServer {
    /// Metrics connections open at once.
    static let maxConnections = 16
    private static let open = Atomic<Int>(0)

    /// Binds; the caller runs ``serve(_:)`` on the channel it gets.
    static func bind(
        at address: HostPort, metrics: SyncMetrics, health: @escaping @Sendable () -> String
    ) async throws -> any Channel {
        try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                // Scrapers are few: more connections than that are closed at once, so the
                // metrics port cannot eat the node's descriptors.
                guard MetricsServer.open.add(1, ordering: .relaxed).newValue <= MetricsServer.maxConnections else {
                    MetricsServer.open.subtract(1, ordering: .relaxed)
                    return channel.close()
                }
                channel.closeFuture.whenComplete { _ in MetricsServer.open.subtract(1, ordering: .relaxed) }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(MetricsHandler(metrics: metrics, health: health))
                }
            }
            .bind(host: address.host, port: address.port).get()
    }

    /// Serves until the task is cancelled.
    static func serve(_ channel: any Channel) async throws {
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
    let health: @Sendable () -> String
    private var path = ""
    private var method = HTTPMethod.GET
    private var keepAlive = true

    init(metrics: SyncMetrics, health: @escaping @Sendable () -> String) {
        self.metrics = metrics
        self.health = health
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            path = head.uri
            method = head.method
            keepAlive = head.isKeepAlive
        case .body:
            break
        case .end:
            let route = path.split(separator: "?", maxSplits: 1).first.map(String.init) ?? path
            let status: HTTPResponseStatus
            let body: String
            let type: String
            switch (method, route) {
            case (.GET, "/metrics"):
                (status, body, type) = (.ok, metrics.text(), "text/plain; version=0.0.4; charset=utf-8")
            case (.GET, "/healthz"):
                (status, body, type) = (.ok, health() + "\n", "application/json")
            default:
                (status, body, type) = (.notFound, "not found; try /metrics or /healthz\n", "text/plain")
            }
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: type)
            headers.add(name: "Content-Length", value: "\(body.utf8.count)")
            let head = HTTPResponseHead(version: .http1_1, status: status, headers: headers)
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
            let closeAfter = !keepAlive
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
                if closeAfter { channel.close(promise: nil) }
            }
        }
    }
}
