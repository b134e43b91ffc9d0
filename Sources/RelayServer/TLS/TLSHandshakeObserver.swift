import Logging
import NIOCore
import NIOSSL
import NIOTLS
import RelayWire

/// Sits after `NIOSSLServerHandler` in the relay's TLS pipeline: counts handshakes and
/// TLS failures, closes a connection that completed TLS without the protocol's ALPN
/// token (PROTOCOL.md §1; ``ALPNGate`` refuses most of them before TLS), and tells the
/// core the key of the agent's client certificate (``ClientKeyProved``). The connection
/// core behind it never sees TLS (docs/ARCHITECTURE.md "Adding a transport").
///
/// The core writes nothing before an agent's Hello, which needs TLS, except the last
/// frame of a connection it gives up on (the handshake deadline). Before TLS is up that
/// frame cannot be sent, and would wait for the core's last-write grace (10 s): it is
/// dropped and the connection closed at once instead.
final class TLSHandshakeObserver: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let accounting: TLSAccounting
    private var handshakeCompleted = false
    /// What the verification callback recorded of the client certificate.
    private let presentedKey: AgentKeyCertificate.PresentedKey

    init(metrics: RelayMetrics, logger: Logger, presentedKey: AgentKeyCertificate.PresentedKey) {
        self.accounting = TLSAccounting(metrics: metrics, logger: logger, applicationProtocol: RelayProtocol.alpnToken)
        self.presentedKey = presentedKey
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch self.accounting.handshakeCompleted(event, context: context) {
        case false?:
            return
        case true?:
            self.handshakeCompleted = true
            context.fireUserInboundEventTriggered(event)
            // A key login's proof (PROTOCOL.md §1.2): the key of the client certificate that
            // TLS verified, for the connection core.
            if let key = self.presentedKey.key {
                context.fireUserInboundEventTriggered(ClientKeyProved(publicKey: key))
            }
        case nil:
            context.fireUserInboundEventTriggered(event)
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard self.handshakeCompleted else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            context.close(promise: nil)
            return
        }
        context.write(data, promise: promise)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if self.accounting.caught(error, context: context) { return }
        context.fireErrorCaught(error)
    }
}
