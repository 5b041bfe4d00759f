import CairnAPI
import NIOCore
import NIOHTTP1
import NIOPosix

/// A response as a test sees it.
struct HTTPReply: Sendable {
    let status: Int
    let headers: HTTPHeaders
    let body: [UInt8]

    var text: String { String(decoding: body, as: UTF8.self) }
    func header(_ name: String) -> String? { headers.first(name: name) }
}

/// A small HTTP/1.1 client on SwiftNIO's own codec (TCP or Unix socket), one connection per
/// request, so tests drive the server over a real socket as any client would.
enum TestHTTP {
    typealias Connection = NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>

    /// Sends one request and reads the whole response.
    static func send(
        _ method: HTTPMethod, _ target: String, to address: APIConfiguration.Address,
        headers: [(String, String)] = [], body: [UInt8] = []
    ) async throws -> HTTPReply {
        try await exchange(method, target, to: address, headers: headers, body: body) { head, chunks in
            var bytes: [UInt8] = []
            for try await chunk in chunks { bytes += chunk }
            return HTTPReply(status: Int(head.status.code), headers: head.headers, body: bytes)
        }
    }

    /// Sends one request and hands the response head and its body chunks (as they arrive) to
    /// `read`; the connection closes when `read` returns.
    static func exchange<T: Sendable>(
        _ method: HTTPMethod, _ target: String, to address: APIConfiguration.Address,
        headers: [(String, String)] = [], body: [UInt8] = [],
        read: (HTTPResponseHead, BodyChunks) async throws -> T
    ) async throws -> T {
        let connection = try await connect(to: address)
        return try await connection.executeThenClose { inbound, outbound in
            var head = HTTPRequestHead(version: .http1_1, method: method, uri: target)
            head.headers.add(name: "Host", value: "localhost")
            head.headers.add(name: "Connection", value: "close")
            for (name, value) in headers { head.headers.add(name: name, value: value) }
            if !body.isEmpty || method == .PUT || method == .POST { head.headers.add(name: "Content-Length", value: "\(body.count)") }
            // One write (one flush): the server may answer and close as soon as it has the head
            // (`Connection: close`), and a separate write of the end would then fail.
            var request: [HTTPClientRequestPart] = [.head(head)]
            if !body.isEmpty { request.append(.body(.byteBuffer(ByteBuffer(bytes: body)))) }
            request.append(.end(nil))
            try await outbound.write(contentsOf: request)
            var parts = inbound.makeAsyncIterator()
            guard case .head(let responseHead)? = try await parts.next() else { throw TestHTTPError.noResponse }
            return try await read(responseHead, BodyChunks(parts: parts))
        }
    }

    private static func connect(to address: APIConfiguration.Address) async throws -> Connection {
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        let initialize: @Sendable (any Channel) -> EventLoopFuture<Connection> = { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHTTPClientHandlers()
                return try Connection(wrappingChannelSynchronously: channel)
            }
        }
        switch address {
        case .tcp(let host, let port): return try await bootstrap.connect(host: host, port: port, channelInitializer: initialize)
        case .unix(let path): return try await bootstrap.connect(unixDomainSocketPath: path, channelInitializer: initialize)
        }
    }

    /// The body of a response, chunk by chunk as the server sends it.
    struct BodyChunks: AsyncSequence {
        typealias Element = [UInt8]
        var parts: NIOAsyncChannelInboundStream<HTTPClientResponsePart>.AsyncIterator

        func makeAsyncIterator() -> Iterator { Iterator(parts: parts) }

        struct Iterator: AsyncIteratorProtocol {
            var parts: NIOAsyncChannelInboundStream<HTTPClientResponsePart>.AsyncIterator
            var ended = false

            mutating func next() async throws -> [UInt8]? {
                while !ended {
                    switch try await parts.next() {
                    case .body(let buffer)?: return Array(buffer.readableBytesView)
                    case .end?, nil: ended = true
                    case .head?: throw TestHTTPError.noResponse
                    }
                }
                return nil
            }
        }
    }
}

enum TestHTTPError: Error { case noResponse }
