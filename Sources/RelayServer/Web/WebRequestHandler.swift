import Logging
import NIOCore
import NIOHTTP1
import NIOWebSocket
import RelaySignIn

/// The HTTPS side of a web-port connection: answers each request as ``WebResponder``
/// decides, one at a time, and on an accepted `GET /ws` switches the connection to
/// WebSocket. Sits after NIO's HTTP/1 codec and before ``WebSocketTransport``.
///
/// - **One request at a time.** A request is answered when it has fully arrived; the next
///   is parsed after that, so pipelined requests are answered in order. While the socket
///   cannot take more (the channel is not writable: a client that sends requests and does
///   not read the answers), and while the web application works on a request, no more is read.
/// - **The web application.** A request under `/api/` is collected with its body (at most
///   ``WebApplication/maximumBodyLength`` bytes) and answered by ``WebApplication`` off the
///   event loop; so is the session check of a WebSocket upgrade.
/// - **Closing.** After a response to HTTP/1.0 or `Connection: close`, to a request with a
///   body (only the web application's routes read one), to a 400, or to an upgrade request the relay refuses
///   (NIO's decoder stops parsing at any upgrade request), the connection is closed. A
///   connection without a request for ``keepAliveIdle`` (before its first one too: browsers
///   open spare connections) is closed; every connection, busy or not, is also bounded by
///   the core's handshake deadline until its WebSocket logs in.
/// - **The upgrade.** The 101 goes out through the HTTP encoder; then NIO's WebSocket codec
///   takes the HTTP codec's place (the decoder hands on any bytes that followed the
///   request), ``WebSocketTransport`` is told, the core learns the signed-in engineer
///   (``WebSessionProved``), and this handler leaves the pipeline.
final class WebRequestHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// How long a connection may wait for a request: its first one, or the next after a response.
    static let keepAliveIdle = TimeAmount.seconds(5)

    /// The HTTP handlers in front of this one, which the upgrade removes.
    struct HTTPCodec {
        let encoder: HTTPResponseEncoder
        let decoder: ByteToMessageHandler<HTTPRequestDecoder>
    }

    private enum State {
        case idle
        /// A request's head came; answered at its end.
        case receiving(WebResponder.Answer, close: Bool)
        /// A request for the web application: its body so far.
        case collecting(HTTPRequestHead, body: ByteBuffer, close: Bool)
        /// The web application works on the request (or the upgrade's session check).
        case working
        /// Answered, and the connection closes: the rest is dropped.
        case closing
        /// Switched to WebSocket.
        case upgraded
    }

    private let codec: HTTPCodec
    private let application: WebApplication
    private let maximumMessageLength: Int
    private let metrics: RelayMetrics
    private let logger: Logger
    private var state = State.idle
    private var readPending = false
    /// The request of an upgrade, kept for the session check at its end.
    private var upgradeHead: HTTPRequestHead?
    /// Whether this connection's session cookie was checked (once per connection).
    private var sessionChecked = false
    private var idleTimer: Scheduled<Void>?

    init(codec: HTTPCodec, application: WebApplication, maximumMessageLength: Int, metrics: RelayMetrics, logger: Logger) {
        self.codec = codec
        self.application = application
        self.maximumMessageLength = maximumMessageLength
        self.metrics = metrics
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        // Browsers open spare connections that may never carry a request.
        self.armIdleTimer(context: context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.idleTimer?.cancel()
        self.idleTimer = nil
        if self.readPending {
            self.readPending = false
            context.read()
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch (Self.unwrapInboundIn(data), self.state) {
        case (.head(let head), .idle):
            self.idleTimer?.cancel()
            self.idleTimer = nil
            let hasBody = head.headers["Transfer-Encoding"].count > 0 || head.headers["Content-Length"].contains { $0 != "0" }
            let answer = WebResponder.answer(to: head, hasBody: hasBody)
            if case .upgrade = answer { self.upgradeHead = head } else { self.checkSession(head, context: context) }
            // NIO's decoder parses nothing after a request that asks for any upgrade.
            let asksUpgrade = head.headers["Upgrade"].count > 0 || head.method == .CONNECT
            let close = !head.isKeepAlive || hasBody || asksUpgrade
            if answer == .application {
                self.state = .collecting(head, body: context.channel.allocator.buffer(capacity: 0), close: !head.isKeepAlive || asksUpgrade)
            } else if hasBody {
                // Answered at once: nothing here reads a body.
                self.respond(answer, close: true, context: context)
            } else {
                self.state = .receiving(answer, close: close)
            }
        case (.body, .receiving):
            self.respond(.refuse(WebRefusal(.payloadTooLarge, "requests here carry no body")), close: true, context: context)
        case (.body(var part), .collecting(let head, var body, let close)):
            guard body.readableBytes + part.readableBytes <= WebApplication.maximumBodyLength else {
                self.respond(
                    .refuse(WebRefusal(.payloadTooLarge, "a request here carries at most \(WebApplication.maximumBodyLength) bytes")), close: true,
                    context: context)
                return
            }
            body.writeBuffer(&part)
            self.state = .collecting(head, body: body, close: close)
        case (.end, .collecting(let head, let body, let close)):
            self.state = .working
            let request = WebRequest(
                method: head.method, path: WebResponder.path(of: head.uri), query: WebResponder.query(of: head.uri), headers: head.headers, body: body,
                source: SourceKey(context.channel.remoteAddress), address: context.channel.remoteAddress?.ipAddress ?? "unknown")
            let application = self.application
            context.eventLoop.makeFutureWithTask { await application.respond(to: request) }.assumeIsolated().whenSuccess { reply in
                guard case .working = self.state else { return }
                self.respond(reply, close: close, context: context)
            }
        case (.end, .receiving(.upgrade(let value), _)):
            guard let head = self.upgradeHead else { return }
            self.state = .working
            self.authorizeUpgrade(head, acceptValue: value, context: context)
        case (.end, .receiving(let answer, let close)):
            self.respond(answer, close: close, context: context)
        case (_, .closing), (_, .upgraded), (_, .working):
            break
        case (.head, _), (.body, _), (.end, _):
            // Out of order: the decoder never does this.
            self.state = .closing
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? HTTPParserError {
            self.logger.debug("malformed HTTP request", metadata: ["error": "\(error)"])
            switch self.state {
            case .idle, .receiving, .collecting:
                // No response is under way: say what was wrong, then close.
                self.respond(.refuse(Self.refusal(for: error)), close: true, context: context)
            case .working, .closing, .upgraded:
                self.state = .closing
                context.close(promise: nil)
            }
            return
        }
        context.fireErrorCaught(error)
    }

    /// The answer to a request NIO's parser refused: what was wrong and what to do.
    static func refusal(for error: HTTPParserError) -> WebRefusal {
        switch error {
        case .headerOverflow:
            return WebRefusal(
                .requestHeaderFieldsTooLarge,
                "the request's head is larger than this relay takes (16 KiB in all, 8 KiB per header, 64 headers); send a shorter request")
        case .invalidContentLength, .unexpectedContentLength:
            return WebRefusal(.badRequest, "the request's Content-Length is not valid (or comes with Transfer-Encoding); send one length, or chunks")
        default:
            return WebRefusal(.badRequest, "the request is not valid HTTP/1.1 (\(error)); send a well-formed request")
        }
    }

    // MARK: Reading

    func read(context: ChannelHandlerContext) {
        switch self.state {
        case .closing:
            return
        case .working:
            self.readPending = true
        case .idle, .receiving, .collecting, .upgraded:
            if context.channel.isWritable {
                context.read()
            } else {
                self.readPending = true
            }
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, self.readPending {
            self.readPending = false
            context.read()
        }
        context.fireChannelWritabilityChanged()
    }

    // MARK: Answers

    private func respond(_ answer: WebResponder.Answer, close: Bool, context: ChannelHandlerContext) {
        let closes = close || answer.status == .badRequest
        let (head, body) = WebResponder.response(to: answer, close: closes)
        self.send(head, body, closes: closes, context: context)
    }

    private func respond(_ reply: WebReply, close: Bool, context: ChannelHandlerContext) {
        let (head, body) = WebResponder.response(to: reply, close: close)
        if let stream = reply.stream {
            self.stream(head, stream, closes: close, context: context)
        } else {
            self.send(head, body, closes: close, context: context)
        }
    }

    /// Sends a streamed reply: the head, then the chunks `stream` writes, each written
    /// when the socket took the one before; then the end, or, if `stream` failed, a close.
    /// Nothing more is read meanwhile. The core's deadlines pause for the stream
    /// (``WebResponseStreaming``): a long export is not a connection that never logged in.
    private func stream(
        _ head: HTTPResponseHead, _ stream: @escaping @Sendable (WebBodyWriter) async throws -> Void, closes: Bool, context: ChannelHandlerContext
    ) {
        self.metrics.webResponse(status: Int(head.status.code))
        context.fireUserInboundEventTriggered(WebResponseStreaming(active: true))
        context.writeAndFlush(Self.wrapOutboundOut(.head(head)), promise: nil)
        let eventLoop = context.eventLoop
        let bound = NIOLoopBound(context, eventLoop: eventLoop)
        let writer = WebBodyWriter { chunk in
            try await eventLoop.flatSubmit {
                let context = bound.value
                guard context.channel.isActive else { return eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel) }
                let written = context.writeAndFlush(Self.wrapOutboundOut(.body(.byteBuffer(chunk))))
                // Back pressure by the channel's write buffer: the producer goes on while
                // the buffer is under its high-water mark, and waits for this chunk's write
                // once it is over (a slow client), so memory stays bounded without a
                // round trip through the event loop per chunk.
                return context.channel.isWritable ? eventLoop.makeSucceededVoidFuture() : written
            }.get()
        }
        eventLoop.makeFutureWithTask { try await stream(writer) }.assumeIsolated().whenComplete { result in
            guard case .working = self.state else { return }
            context.fireUserInboundEventTriggered(WebResponseStreaming(active: false))
            switch result {
            case .success:
                self.finish(context.writeAndFlush(Self.wrapOutboundOut(.end(nil))), closes: closes, context: context)
            case .failure(let error):
                self.logger.info("a streamed web response broke off", metadata: ["error": "\(error)"])
                self.state = .closing
                context.close(promise: nil)
            }
        }
    }

    private func send(_ head: HTTPResponseHead, _ body: ByteBuffer?, closes: Bool, context: ChannelHandlerContext) {
        self.metrics.webResponse(status: Int(head.status.code))
        context.write(Self.wrapOutboundOut(.head(head)), promise: nil)
        if let body { context.write(Self.wrapOutboundOut(.body(.byteBuffer(body))), promise: nil) }
        self.finish(context.writeAndFlush(Self.wrapOutboundOut(.end(nil))), closes: closes, context: context)
    }

    /// After a response's end: closes, or waits for the next request.
    private func finish(_ written: EventLoopFuture<Void>, closes: Bool, context: ChannelHandlerContext) {
        if closes {
            self.state = .closing
            written.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        } else {
            self.state = .idle
            self.armIdleTimer(context: context)
            if self.readPending, context.channel.isWritable {
                self.readPending = false
                context.read()
            }
        }
    }

    /// Closes the connection if no request has begun ``keepAliveIdle`` from now.
    private func armIdleTimer(context: ChannelHandlerContext) {
        self.idleTimer?.cancel()
        self.idleTimer = context.eventLoop.assumeIsolated().scheduleTask(in: Self.keepAliveIdle) {
            self.idleTimer = nil
            guard case .idle = self.state else { return }
            self.state = .closing
            context.close(promise: nil)
        }
    }

    /// A signed-in browser's connection counts as authenticated for the per-source caps
    /// (``WebSessionProved``): the first request that carries a live session cookie proves
    /// it, checked beside the answer, once per connection.
    private func checkSession(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        guard !self.sessionChecked, head.headers["Cookie"].contains(where: { WebSessionPolicy.sessionID(cookieHeader: $0) != nil }) else { return }
        self.sessionChecked = true
        let (application, headers) = (self.application, head.headers)
        context.eventLoop.makeFutureWithTask { await application.engineerOfSession(headers) }.assumeIsolated().whenSuccess { proved in
            guard let proved, context.channel.isActive else { return }
            context.fireUserInboundEventTriggered(proved)
        }
    }

    /// Upgrades once the web application finds the request's session live and its CSRF
    /// token right; refuses (and closes) otherwise.
    private func authorizeUpgrade(_ head: HTTPRequestHead, acceptValue: String, context: ChannelHandlerContext) {
        let application = self.application
        let (headers, uri) = (head.headers, head.uri)
        context.eventLoop.makeFutureWithTask { await application.authorizeWebSocket(headers: headers, uri: uri) }.assumeIsolated().whenSuccess {
            outcome in
            guard case .working = self.state else { return }
            switch outcome {
            case .success(let proved):
                self.upgrade(acceptValue: acceptValue, session: proved, context: context)
            case .failure(let refusal):
                self.respond(.refuse(refusal), close: true, context: context)
            }
        }
    }

    private func upgrade(acceptValue: String, session: WebSessionProved?, context: ChannelHandlerContext) {
        self.state = .upgraded
        self.metrics.webResponse(status: 101)
        self.metrics.webSocketUpgrades.increment()
        context.writeAndFlush(Self.wrapOutboundOut(.head(WebResponder.upgradeHead(acceptValue: acceptValue))), promise: nil)
        let pipeline = context.pipeline.syncOperations
        do {
            // Right after the request decoder, so that bytes the client sent after the
            // request (the decoder hands them on when it leaves) reach the WebSocket decoder.
            try pipeline.addHandlers(
                [WebSocketFrameEncoder(), ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: self.maximumMessageLength))],
                position: .after(self.codec.decoder)
            )
        } catch {
            self.logger.error("cannot switch a web connection to WebSocket", metadata: ["error": "\(error)"])
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(WebSocketTransport.Opened())
        if let session { context.fireUserInboundEventTriggered(session) }
        pipeline.removeHandler(self.codec.encoder, promise: nil)
        pipeline.removeHandler(self.codec.decoder, promise: nil)
        pipeline.removeHandler(context: context, promise: nil)
    }
}

extension WebResponder.Answer {
    fileprivate var status: HTTPResponseStatus {
        switch self {
        case .asset(_, let status, _): status
        case .upgrade: .switchingProtocols
        case .application: .ok
        case .refuse(let refusal): refusal.status
        }
    }
}

@available(*, unavailable)
extension WebRequestHandler: Sendable {}
