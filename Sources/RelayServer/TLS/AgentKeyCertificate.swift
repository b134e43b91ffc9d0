import Crypto
import Foundation
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

    /// Accepts a presented chain of exactly one certificate with an Ed25519 key (anything
    /// else fails the handshake); the key is then read by ``publicKey(of:)``.
    static func verify(_ certificates: [NIOSSLCertificate], _ promise: EventLoopPromise<NIOSSLVerificationResult>) {
        guard certificates.count == 1, Self.publicKey(of: certificates[0]) != nil else {
            promise.succeed(.failed)
            return
        }
        promise.succeed(.certificateVerified)
    }

    /// The raw 32-byte Ed25519 public key of `certificate`, or nil.
    static func publicKey(of certificate: NIOSSLCertificate) -> Data? {
        guard let der = try? certificate.toDERBytes(), let parsed = try? Certificate(derEncoded: der),
            let key = Curve25519.Signing.PublicKey(parsed.publicKey)
        else { return nil }
        return key.rawRepresentation
    }
}
