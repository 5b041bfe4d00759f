import NIOCore

/// Splits the byte stream into Noise messages, each prefixed by its length as a big-endian
/// u16 (Noise caps a message at 65,535 bytes, so no frame can be larger).
struct NoiseFrameDecoder: NIOSingleStepByteToMessageDecoder {
    typealias InboundOut = ByteBuffer

    mutating func decode(buffer: inout ByteBuffer) throws -> ByteBuffer? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt16.self),
            buffer.readableBytes >= 2 + Int(length)
        else { return nil }
        buffer.moveReaderIndex(forwardBy: 2)
        return buffer.readSlice(length: Int(length))
    }

    mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> ByteBuffer? {
        try decode(buffer: &buffer)
    }
}

/// Prefixes each outgoing Noise message with its u16 length.
struct NoiseFrameEncoder: MessageToByteEncoder {
    typealias OutboundIn = ByteBuffer

    func encode(data: ByteBuffer, out: inout ByteBuffer) throws {
        precondition(data.readableBytes <= Int(UInt16.max), "a Noise message never exceeds 65535 bytes")
        out.writeInteger(UInt16(data.readableBytes))
        out.writeImmutableBuffer(data)
    }
}

/// Turns `IdleStateHandler`'s read-idle event into an error and closes the channel: a peer
/// that stalls (mid-handshake or later, with no ping either) is dropped.
final class StallDetector: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read {
            context.fireErrorCaught(SessionError.timedOut)
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}

/// Counts the bytes a connection hands to its socket and reads from it, in
/// `cairn_wire_bytes_total{direction}`. It sits nearest the socket, so it sees the handshake,
/// the u16 length prefixes and the Noise tags: what the network carries, not what the
/// protocol means to say.
final class WireByteCounter: ChannelDuplexHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let metrics: SyncMetrics

    init(metrics: SyncMetrics) { self.metrics = metrics }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        metrics.wireBytesReceived.increment(by: Int64(unwrapInboundIn(data).readableBytes))
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        metrics.wireBytesSent.increment(by: Int64(unwrapOutboundIn(data).readableBytes))
        context.write(data, promise: promise)
    }
}

/// Installs the byte counter (when the node passes its metrics), the frame codec and the stall
/// detector, then wraps the channel for async use.
@Sendable func configureSyncChannel(
    _ channel: any Channel, readTimeout: TimeAmount, metrics: SyncMetrics? = nil
) -> EventLoopFuture<NIOAsyncChannel<ByteBuffer, ByteBuffer>> {
    channel.eventLoop.makeCompletedFuture {
        let pipeline = channel.pipeline.syncOperations
        if let metrics { try pipeline.addHandler(WireByteCounter(metrics: metrics)) }
        try pipeline.addHandler(IdleStateHandler(readTimeout: readTimeout))
        try pipeline.addHandler(StallDetector())
        try pipeline.addHandler(ByteToMessageHandler(NoiseFrameDecoder()))
        try pipeline.addHandler(MessageToByteHandler(NoiseFrameEncoder()))
        return try NIOAsyncChannel(wrappingChannelSynchronously: channel)
    }
}
