import Crypto
import Foundation
import NIOTLS
import NIOCore
public import NIOSSL
import RelayWire

/// How an agent decides that it is talking to the right relay. There is no "accept
/// anything" option: an unknown certificate always fails the connection.
public enum RelayTrust: Sendable {
    /// Trust certificates issued by the CA(s) in this PEM file, for the relay's DNS name.
    case certificateAuthorityFile(String)
    /// Trust these CA certificates (tests, embedding).
    case certificateAuthorities([NIOSSLCertificate])
    /// Trust exactly the certificate with this SHA-256 fingerprint (as `relay-server` prints it).
    case fingerprint(String)

    /// Parses a fingerprint: 64 hex digits, colons and spaces allowed, any case.
    public static func normalizedFingerprint(_ text: String) -> String? {
        let hex = text.filter { $0 != ":" && $0 != " " }.uppercased()
        guard hex.count == 64, hex.allSatisfy({ $0.isHexDigit }) else { return nil }
        return hex
    }

    static func fingerprint(of certificate: NIOSSLCertificate) -> String {
        guard let der = try? certificate.toDERBytes() else { return "" }
        return SHA256.hash(data: der).map { String(format: "%02X", $0) }.joined()
    }
}

/// What the TLS layer saw, for error messages.
final class TrustObservation: Sendable {
    private let presented = NIOLockedValueBoxCompat<String?>(nil)
    private let completed = NIOLockedValueBoxCompat(false)
    var presentedFingerprint: String? { self.presented.value }
    func record(_ fingerprint: String) { self.presented.value = fingerprint }
    /// True once the TLS handshake finished: failures before it are trust failures.
    var handshakeCompleted: Bool { self.completed.value }
    func recordHandshakeCompleted() { self.completed.value = true }
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
}

/// A tiny lock box (RelayClient avoids a NIOConcurrencyHelpers dependency for one use).
final class NIOLockedValueBoxCompat<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Value
    init(_ value: Value) { self.stored = value }
    var value: Value {
        get { self.lock.withLock { self.stored } }
        set { self.lock.withLock { self.stored = newValue } }
    }
}

extension RelayTrust {
    /// The TLS client configuration: TLS 1.2 minimum, AEAD ciphers, the protocol's ALPN.
    func clientConfiguration() throws(RelayClientError) -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.cipherSuites = [
            "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
            "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
            "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
        ].joined(separator: ":")
        configuration.applicationProtocols = [RelayProtocol.alpnToken]
        switch self {
        case .certificateAuthorityFile(let path):
            do {
                configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(path))
            } catch {
                throw RelayClientError(.configuration, "cannot read the CA file \(path): \(error); give the PEM file of the CA that issued the relay's certificate")
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
