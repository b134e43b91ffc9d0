import Logging
import NIOCore
import NIOHTTP1
import NIOSSL
import NIOTLS

/// The web port: what a relay-port connection that offered ALPN `http/1.1` gets in front of
/// the connection core (docs/ARCHITECTURE.md "The web port"). ``ALPNGate`` puts
/// ``handlers(context:maximumPayloadLength:metrics:logger:)`` in place.
///
/// Pipeline, from the socket: TLS (the web context: no client certificate request) →
/// ``WebTLSObserver`` → NIO's HTTP/1 response encoder and request decoder →
/// ``WebRequestHandler`` (which also answers the decoder's errors, with a sentence) → ``WebSocketTransport`` → the connection core. After a
/// WebSocket upgrade: TLS → ``WebTLSObserver`` → NIO's WebSocket frame encoder and decoder
/// → ``WebSocketTransport`` → the core.
///
/// Why NIO's own HTTP/1 and WebSocket codecs and not Hummingbird (which serves the admin
/// port): the core must stay a pair of handlers in this very channel, so that it reads the
/// TCP peer's address, its reads are paused by the core's own `read` control and its writes
/// complete when the socket took them. Hummingbird's WebSocket runs the connection as
/// async sequences in a task of its own, which would put a copy loop and a second buffer
/// between the socket and the core.
enum WebPort {
    /// Limits on a request head: small, since nothing here needs large headers.
    static let decoderLimits: NIOHTTPDecoderLimitConfiguration = {
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderFieldSize = 8 * 1024
        limits.maxHeaderListSize = 16 * 1024
        limits.maxHeaderFieldCount = 64
        return limits
    }()

    /// The handlers between ``ALPNGate`` and the core, for one connection. A WebSocket
    /// message holds at most one frame of the relay's `maximumPayloadLength` and its header.
    static func handlers(
        context: NIOSSLContext, application: WebApplication, maximumPayloadLength: Int, metrics: RelayMetrics, logger: Logger
    ) -> [any ChannelHandler] {
        let maximumMessageLength = maximumPayloadLength + 4
        let codec = WebRequestHandler.HTTPCodec(
            encoder: HTTPResponseEncoder(),
            decoder: ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes, limitConfiguration: Self.decoderLimits))
        )
        return [
            NIOSSLServerHandler(context: context),
            WebTLSObserver(metrics: metrics, logger: logger),
            codec.encoder,
            codec.decoder,
            WebRequestHandler(codec: codec, application: application, maximumMessageLength: maximumMessageLength, metrics: metrics, logger: logger),
            WebSocketTransport(maximumMessageLength: maximumMessageLength, metrics: metrics, logger: logger),
        ]
    }
}

/// Sits after `NIOSSLServerHandler` on a web-port connection: counts handshakes and TLS
/// failures with the agents' (`relay_tls_handshakes_total`), and closes a connection whose
/// handshake did not select `http/1.1`. Proves no key: a browser logs in another way, and
/// the core refuses key logins on this transport (PROTOCOL.md §1.2).
final class WebTLSObserver: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let accounting: TLSAccounting
    private let logger: Logger

    init(metrics: RelayMetrics, logger: Logger) {
        self.accounting = TLSAccounting(metrics: metrics, logger: logger, applicationProtocol: ClientHelloALPN.webProtocol)
        self.logger = logger
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard self.accounting.handshakeCompleted(event, context: context) != false else { return }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? NIOSSLError, case .uncleanShutdown = error {
            // Browsers close idle connections without close_notify: not a TLS failure.
            self.logger.debug("a browser closed without close_notify")
            context.close(promise: nil)
            return
        }
        if self.accounting.caught(error, context: context) { return }
        context.fireErrorCaught(error)
    }
}

@available(*, unavailable)
extension WebTLSObserver: Sendable {}
