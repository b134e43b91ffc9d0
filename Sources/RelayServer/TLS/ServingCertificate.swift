import NIOConcurrencyHelpers
import NIOSSL

/// The certificate a running node presents. Renewing the self-signed certificate
/// replaces it here, and new connections get the new one at once, on both ports and to
/// agents and browsers alike; open connections keep the one they were made with.
///
/// The relay port makes each connection's TLS handler from one of two contexts of the same
/// certificate, chosen by the ALPN offer (``ALPNGate``): ``relayContext`` for agents, which
/// asks for an optional client certificate (key login, PROTOCOL.md §1.2), and
/// ``webContext`` for browsers, which asks for none (a browser would show a certificate
/// prompt). ``replace(with:)`` renews both together. The admin port's context belongs to
/// Hummingbird and is made once, so its TLS configuration asks ``adminOverride()`` at each
/// handshake (swift-nio-ssl's `sslContextCallback`).
final class ServingCertificate: Sendable {
    private struct Current {
        var tls: RelayTLS
        var relayContext: NIOSSLContext
        var webContext: NIOSSLContext
        /// 0 for the certificate the node started with; +1 per renewal.
        var generation: Int

        init(_ tls: RelayTLS, generation: Int) throws {
            self.tls = tls
            self.relayContext = try NIOSSLContext(configuration: AgentKeyCertificate.relayPortConfiguration(tls))
            self.webContext = try NIOSSLContext(configuration: Self.webConfiguration(tls))
            self.generation = generation
        }

        /// The relay's TLS policy with ALPN `http/1.1` only and no client certificate request.
        static func webConfiguration(_ tls: RelayTLS) -> TLSConfiguration {
            var configuration = tls.serverConfiguration(applicationProtocols: [ClientHelloALPN.webProtocol])
            configuration.certificateVerification = .none
            return configuration
        }
    }

    private let current: NIOLockedValueBox<Current>

    init(_ tls: RelayTLS) throws {
        self.current = NIOLockedValueBox(try Current(tls, generation: 0))
    }

    var tls: RelayTLS { self.current.withLockedValue { $0.tls } }
    /// The agents' TLS on the relay port (ALPN `supportrelay/1`, optional client certificate).
    var relayContext: NIOSSLContext { self.current.withLockedValue { $0.relayContext } }
    /// The browsers' TLS on the relay port (ALPN `http/1.1`, no client certificate request).
    var webContext: NIOSSLContext { self.current.withLockedValue { $0.webContext } }
    var fingerprint: String { self.tls.fingerprint }

    /// Serves `tls` from now on, to agents and browsers.
    func replace(with tls: RelayTLS) throws {
        var renewed = try Current(tls, generation: 0)
        self.current.withLockedValue { current in
            renewed.generation = current.generation + 1
            current = renewed
        }
    }

    /// What the admin port's handshake presents: no change while the starting certificate
    /// is current, else the current one.
    func adminOverride() -> NIOSSLContextConfigurationOverride {
        self.current.withLockedValue { current in
            guard current.generation > 0 else { return .noChanges }
            var override = NIOSSLContextConfigurationOverride()
            override.certificateChain = current.tls.certificateChain.map { .certificate($0) }
            override.privateKey = .privateKey(current.tls.privateKey)
            return override
        }
    }
}
