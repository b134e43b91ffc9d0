import Logging
import NIOCore
import NIOSSL
import NIOTLS

/// What the relay port's two TLS observers (agents: ``TLSHandshakeObserver``; browsers:
/// `WebTLSObserver`) do alike: count handshakes and TLS failures in
/// `relay_tls_handshakes_total`, close a connection whose handshake did not select the
/// transport's ALPN token, and close on a TLS error.
struct TLSAccounting {
    let metrics: RelayMetrics
    let logger: Logger
    /// The token the transport's handshake must select, and its name in the log.
    let applicationProtocol: String

    /// For a completed handshake: true when it selected the token (counted), false when it
    /// did not (counted as a failure, connection closed). Nil for any other event.
    func handshakeCompleted(_ event: Any, context: ChannelHandlerContext) -> Bool? {
        guard let event = event as? TLSUserEvent, case .handshakeCompleted(let negotiated) = event else { return nil }
        guard negotiated == self.applicationProtocol else {
            self.metrics.tlsFailures.increment()
            self.logger.info("TLS without the ALPN token \(self.applicationProtocol)", metadata: ["alpn": "\(negotiated ?? "none")"])
            context.close(promise: nil)
            return false
        }
        self.metrics.tlsHandshakes.increment()
        return true
    }

    /// Counts and closes on a TLS error; returns false for any other error (to pass on).
    func caught(_ error: any Error, context: ChannelHandlerContext) -> Bool {
        guard error is NIOSSLError || error is BoringSSLError else { return false }
        self.metrics.tlsFailures.increment()
        self.logger.info("TLS failed", metadata: ["error": "\(error)"])
        context.close(promise: nil)
        return true
    }
}
