import Crypto
import NIOCore
public import NIOSSL
import NIOTLS
import RelayWire
import Synchronization

/// How an agent decides that it is talking to the right relay. There is no "accept
/// anything" option: an unknown certificate always fails the connection.
public enum RelayTrust: Sendable {
    /// Trust certificates issued by the CA(s) in this PEM file, for the relay's DNS name.
    case certificateAuthorityFile(String)
    /// Trust these CA certificates (tests, embedding).
    case certificateAuthorities([NIOSSLCertificate])
    /// Trust exactly the certificate with this SHA-256 fingerprint (as `relay-server` prints it).
    case fingerprint(String)

    /// Parses a fingerprint: 64 hex digits, colons and spaces allowed, any case
    /// (``CertificateFingerprint/normalized(_:)``). Returns the 64 uppercase digits.
    public static func normalizedFingerprint(_ text: String) -> String? {
        CertificateFingerprint.normalized(text)
    }

    /// SHA-256 of the certificate's DER bytes as 64 uppercase hex digits, the form
    /// ``normalizedFingerprint(_:)`` returns; "" if the certificate cannot be serialized.
    static func fingerprint(of certificate: NIOSSLCertificate) -> String {
        guard let der = try? certificate.toDERBytes() else { return "" }
        return CertificateFingerprint.hex(SHA256.hash(data: der))
    }
}

/// What the TLS layer saw, for error messages.
final class TrustObservation: Sendable {
    private let presented = Mutex<String?>(nil)
    private let completed = Atomic<Bool>(false)
    private let handshakeFailure = Mutex<String?>(nil)
    var presentedFingerprint: String? { self.presented.withLock { $0 } }
    func record(_ fingerprint: String) { self.presented.withLock { $0 = fingerprint } }
    /// The TLS handshake's own failure (this side refused the certificate, or the relay
    /// sent an alert), as TLS reported it. What the agent's task sees afterwards may be
    /// only the closed channel, depending on which reaches it first.
    var handshakeFailed: String? { self.handshakeFailure.withLock { $0 } }
    func recordHandshakeFailure(_ error: any Error) { self.handshakeFailure.withLock { $0 = $0 ?? "\(error)" } }
    /// True once the TLS handshake finished: failures before it are trust failures.
    var handshakeCompleted: Bool { self.completed.load(ordering: .acquiring) }
    func recordHandshakeCompleted() { self.completed.store(true, ordering: .releasing) }
}

/// Notes when the TLS handshake completes, so errors can be told apart.
final class HandshakeObserver: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    private let observation: TrustObservation

    init(observation: TrustObservation) { self.observation = observation }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent {
            self.observation.recordHandshakeCompleted()
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // NIOSSLError.handshakeFailed (a certificate chain this side refused, an alert),
        // NIOSSLExtraError (a name the certificate does not list), …; not the other end
        // going away, which says nothing about trust.
        if !self.observation.handshakeCompleted, !RelayConnection.isDroppedConnection(error) {
            self.observation.recordHandshakeFailure(error)
        }
        context.fireErrorCaught(error)
    }
}

extension RelayTrust {
    /// The TLS client configuration: the protocol's TLS policy (``RelayTLSPolicy``: TLS 1.2
    /// minimum, AEAD ciphers, the protocol's ALPN), the same as the relay's.
    func clientConfiguration() throws(RelayClientError) -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        switch RelayTLSPolicy.minimumVersion {
        case .tls12: configuration.minimumTLSVersion = .tlsv12
        case .tls13: configuration.minimumTLSVersion = .tlsv13
        }
        configuration.cipherSuites = RelayTLSPolicy.tls12CipherSuites
        configuration.applicationProtocols = [RelayTLSPolicy.alpnToken]
        switch self {
        case .certificateAuthorityFile(let path):
            do {
                configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(path))
            } catch {
                throw RelayClientError(
                    .configuration, "cannot read the CA file \(path): \(error); give the PEM file of the CA that issued the relay's certificate")
            }
            configuration.certificateVerification = .fullVerification
        case .certificateAuthorities(let certificates):
            configuration.trustRoots = .certificates(certificates)
            configuration.certificateVerification = .fullVerification
        case .fingerprint(let text):
            guard Self.normalizedFingerprint(text) != nil else {
                throw RelayClientError(.configuration, "\"\(text)\" is not a SHA-256 fingerprint; copy the 64 hex digits relay-server printed at start")
            }
            // Checked by the custom verification callback instead of a CA.
            configuration.certificateVerification = .noHostnameVerification
        }
        return configuration
    }

    /// A custom verification callback for fingerprint pinning, nil for CA trust.
    func verificationCallback(observing observation: TrustObservation) -> NIOSSLCustomVerificationCallback? {
        guard case .fingerprint(let text) = self, let expected = Self.normalizedFingerprint(text) else { return nil }
        return { certificates, promise in
            guard let leaf = certificates.first else {
                promise.succeed(.failed)
                return
            }
            let presented = Self.fingerprint(of: leaf)
            observation.record(presented)
            promise.succeed(presented == expected ? .certificateVerified : .failed)
        }
    }
}
