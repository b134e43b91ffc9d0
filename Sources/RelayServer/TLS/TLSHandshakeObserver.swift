import Logging
import NIOCore
import NIOSSL
import NIOTLS
import RelayWire

/// Sits after `NIOSSLServerHandler` in the relay's TLS pipeline: counts handshakes and
/// TLS failures, and closes a connection that completed TLS without the protocol's ALPN
/// token (PROTOCOL.md §1; ``ALPNGate`` refuses most of them before TLS). The connection
/// core behind it never sees TLS (docs/ARCHITECTURE.md "Adding a transport").
final class TLSHandshakeObserver: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let metrics: RelayMetrics
    private let logger: Logger

    init(metrics: RelayMetrics, logger: Logger) {
        self.metrics = metrics
        self.logger = logger
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted(let negotiated) = event {
            guard negotiated == RelayProtocol.alpnToken else {
                self.metrics.tlsFailures.increment()
                self.logger.info("TLS without the supportrelay/1 ALPN token", metadata: ["alpn": "\(negotiated ?? "none")"])
                context.close(promise: nil)
                return
            }
            self.metrics.tlsHandshakes.increment()
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is NIOSSLError || error is BoringSSLError {
            self.metrics.tlsFailures.increment()
            self.logger.info("TLS failed", metadata: ["error": "\(error)"])
            context.close(promise: nil)
            return
        }
        context.fireErrorCaught(error)
    }
}
