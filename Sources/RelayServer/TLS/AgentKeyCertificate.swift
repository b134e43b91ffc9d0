import Crypto
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import X509

/// The relay's side of key logins (PROTOCOL.md §1.2). The relay port asks every client for
/// a certificate and takes none or one: the agent's self-signed certificate of its Ed25519
/// key. TLS itself proves that the agent holds the private key (CertificateVerify signs
/// this handshake's transcript), so nothing an observer or a copy of the database holds
/// can log in again. The certificate is not a credential of its own: no CA, name or date
/// is checked; the store decides whose key it is.
enum AgentKeyCertificate {
    /// The relay port's TLS: ``RelayTLS/serverConfiguration(applicationProtocols:)`` asking
    /// for an optional client certificate, verified with Ed25519 only (what agents present).
    static func relayPortConfiguration(_ tls: RelayTLS) -> TLSConfiguration {
        var configuration = tls.serverConfiguration()
        configuration.certificateVerification = .optionalVerification
        configuration.verifySignatureAlgorithms = [.ed25519]
        return configuration
    }

    /// The key one connection's certificate carried, from the verification callback to
    /// ``TLSHandshakeObserver``, which hands it to the core once the handshake completed
    /// (and so CertificateVerify proved it). Read here rather than from the finished
    /// connection: asking BoringSSL for the peer certificate afterwards makes it keep a
    /// parsed copy for the connection's life (about 6 KiB per idle agent, measured).
    final class PresentedKey: Sendable {
        private let box = NIOLockedValueBox<Data?>(nil)
        var key: Data? { self.box.withLockedValue { $0 } }
        fileprivate func record(_ key: Data) { self.box.withLockedValue { $0 = key } }
    }

    /// A verification callback that accepts a presented chain of exactly one certificate
    /// with an Ed25519 key (anything else fails the handshake) and records the key.
    static func verifier(recording presented: PresentedKey) -> NIOSSLCustomVerificationCallback {
        { certificates, promise in
            guard certificates.count == 1, let key = Self.publicKey(of: certificates[0]) else {
                promise.succeed(.failed)
                return
            }
            presented.record(key)
            promise.succeed(.certificateVerified)
        }
    }

    /// The raw 32-byte Ed25519 public key of `certificate`, or nil.
    static func publicKey(of certificate: NIOSSLCertificate) -> Data? {
        guard let der = try? certificate.toDERBytes(), let parsed = try? Certificate(derEncoded: der),
            let key = Curve25519.Signing.PublicKey(parsed.publicKey)
        else { return nil }
        return key.rawRepresentation
    }
}
