import Logging
import NIOCore
import NIOWebSocket

/// The WebSocket transport of the connection core (docs/ARCHITECTURE.md "Adding a
/// transport"): sits right in front of ``RelayConnectionHandler/core(environment:)`` on a
/// web-port connection, from the accept on.
///
/// - **Before the upgrade** (HTTPS requests) nothing reaches the core, and the core writes
///   nothing but the last frame of a connection it gives up on (the handshake deadline, a
///   relay shutdown): that frame has nowhere to go, so it is dropped and the connection
///   closed at once, as ``TLSHandshakeObserver`` does before TLS is up.
/// - **After the upgrade** (``Opened``, fired by ``WebRequestHandler`` after the 101) the
///   payload of each binary message goes to the core as bytes of the protocol's stream
///   (``WebSocketInbound`` decides on every frame), and every `ByteBuffer` the core writes
///   leaves as one binary message, with the write's promise, so the core's backpressure
///   waits for the socket as on TLS. The messages carry the byte stream, not one frame each
///   (PROTOCOL.md §1, "WebSocket").
/// - **Closing.** A client's Close is answered and ends the connection, which the core sees
///   as a disconnect. When the core closes (after its Bye or Error), a Close 1000 goes out
///   first. A frame the relay does not take gets a Close with its code (1002, 1003, 1007,
///   1009). The connection is closed once the Close is written, or after
///   ``FrameBoundaryHandler/lastWriteGrace`` if the client stopped reading.
final class WebSocketTransport: ChannelDuplexHandler {
    typealias InboundIn = WebSocketFrame
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = WebSocketFrame

    /// Fired by ``WebRequestHandler`` once the 101 is written and the WebSocket codec is in place.
    struct Opened {}

    private enum Stage {
        case http
        case open
        /// A Close went out (or is going): nothing more is written or read.
        case closing
    }

    private let metrics: RelayMetrics
    private let logger: Logger
    private var stage = Stage.http
    private var inbound: WebSocketInbound

    init(maximumMessageLength: Int, metrics: RelayMetrics, logger: Logger) {
        self.inbound = WebSocketInbound(maximumMessageLength: maximumMessageLength)
        self.metrics = metrics
        self.logger = logger
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is Opened {
            if case .http = self.stage { self.stage = .open }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .open = self.stage else { return }
        switch self.inbound.received(Self.unwrapInboundIn(data)) {
        case .stream(let bytes):
            if bytes.readableBytes > 0 { context.fireChannelRead(Self.wrapInboundOut(bytes)) }
        case .pong(let bytes):
            context.writeAndFlush(Self.wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: bytes)), promise: nil)
        case .ignore:
            break
        case .closed(let code):
            self.finish(context: context, code: code, reason: "", promise: nil)
        case .fail(let code, let reason):
            self.metrics.webSocketRefused(code: code)
            self.logger.info("WebSocket closed for a frame the relay does not take", metadata: ["code": "\(code)", "reason": "\(reason)"])
            self.finish(context: context, code: code, reason: reason, promise: nil)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        guard case .open = self.stage else { return }
        context.fireChannelReadComplete()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        switch self.stage {
        case .http, .closing:
            // HTTP errors were answered (400) by the HTTP handlers; after a Close, nothing matters.
            self.logger.debug("web connection error", metadata: ["error": "\(error)"])
            context.close(promise: nil)
        case .open:
            guard let error = error as? NIOWebSocketError else { return context.fireErrorCaught(error) }
            // The decoder checks a frame's length before buffering its payload.
            let (code, reason) =
                switch error {
                case .invalidFrameLength:
                    (WebSocketInbound.CloseCode.messageTooBig, "a message holds at most \(self.inbound.maximumMessageLength) bytes")
                case .fragmentedControlFrame, .multiByteControlFrameLength:
                    (WebSocketInbound.CloseCode.protocolError, "control frames are at most 125 bytes and not fragmented")
                }
            self.metrics.webSocketRefused(code: code)
            self.logger.info("WebSocket closed for a frame the relay does not take", metadata: ["code": "\(code)", "reason": "\(reason)"])
            self.finish(context: context, code: code, reason: reason, promise: nil)
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch self.stage {
        case .open:
            let frame = WebSocketFrame(fin: true, opcode: .binary, data: Self.unwrapOutboundIn(data))
            context.write(Self.wrapOutboundOut(frame), promise: promise)
        case .http:
            promise?.fail(ChannelError.ioOnClosedChannel)
            context.close(promise: nil)
        case .closing:
            promise?.fail(ChannelError.ioOnClosedChannel)
        }
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        guard mode == .all, case .open = self.stage else { return context.close(mode: mode, promise: promise) }
        // The core ends the connection after its Bye or Error: the WebSocket says so too.
        self.finish(context: context, code: WebSocketInbound.CloseCode.normal, reason: "", promise: promise)
    }

    /// Writes a Close (`code` nil: an empty one) and closes the connection once it is out.
    private func finish(context: ChannelHandlerContext, code: UInt16?, reason: String, promise: EventLoopPromise<Void>?) {
        guard case .open = self.stage else { return context.close(promise: promise) }
        self.stage = .closing
        var payload = context.channel.allocator.buffer(capacity: 2 + reason.utf8.count)
        if let code {
            payload.writeInteger(code)
            // RFC 6455 §5.5: a control frame's payload is at most 125 bytes.
            payload.writeString(String(decoding: reason.utf8.prefix(100), as: UTF8.self))
        }
        let channel = context.channel
        let deadline = context.eventLoop.scheduleTask(in: FrameBoundaryHandler.lastWriteGrace) { channel.close(promise: nil) }
        context.writeAndFlush(Self.wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: payload))).assumeIsolated().whenComplete { _ in
            deadline.cancel()
            context.close(promise: promise)
        }
    }
}

@available(*, unavailable)
extension WebSocketTransport: Sendable {}
