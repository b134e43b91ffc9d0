import NIOConcurrencyHelpers
import NIOSSL

/// The certificate a running node presents. Renewing the self-signed certificate
/// replaces it here, and new connections get the new one at once, on both ports; open
/// connections keep the one they were made with.
///
/// The relay port makes each connection's TLS handler from ``relayContext``. The admin
/// port's context belongs to Hummingbird and is made once, so its TLS configuration asks
/// ``adminOverride()`` at each handshake (swift-nio-ssl's `sslContextCallback`).
final class ServingCertificate: Sendable {
    private struct Current {
        var tls: RelayTLS
        var relayContext: NIOSSLContext
        /// 0 for the certificate the node started with; +1 per renewal.
        var generation: Int
    }

    private let current: NIOLockedValueBox<Current>

    init(_ tls: RelayTLS) throws {
        self.current = NIOLockedValueBox(
            Current(tls: tls, relayContext: try NIOSSLContext(configuration: AgentKeyCertificate.relayPortConfiguration(tls)), generation: 0))
    }

    var tls: RelayTLS { self.current.withLockedValue { $0.tls } }
    var relayContext: NIOSSLContext { self.current.withLockedValue { $0.relayContext } }
    var fingerprint: String { self.tls.fingerprint }

    /// Serves `tls` from now on.
    func replace(with tls: RelayTLS) throws {
        let context = try NIOSSLContext(configuration: AgentKeyCertificate.relayPortConfiguration(tls))
        self.current.withLockedValue { current in
            current = Current(tls: tls, relayContext: context, generation: current.generation + 1)
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
