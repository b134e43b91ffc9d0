public import Crypto
import Foundation
public import NIOSSL
import RelayWire
import SwiftASN1
import X509

/// How an agent proves its key to the relay (PROTOCOL.md §1.2): the TLS handshake carries
/// a self-signed client certificate of the agent's Ed25519 key, and TLS's CertificateVerify
/// signs this handshake's transcript with it. The signature is bound to this TLS session:
/// a proxy that sees it, or a copy of the relay's database, holds nothing that logs in
/// again. The relay reads only the certificate's public key; names, dates and the
/// self-signature are not checked and carry nothing.
public enum ClientCertificate {
    /// The certificate and the key in the form NIOSSL takes them.
    public static func material(for key: Curve25519.Signing.PrivateKey) throws(RelayClientError) -> (NIOSSLCertificate, NIOSSLPrivateKey) {
        do {
            let certificateKey = Certificate.PrivateKey(key)
            let name = try DistinguishedName { CommonName("SupportRelay agent key " + KeyFingerprint.of(key.publicKey)) }
            let certificate = try Certificate(
                version: .v3,
                serialNumber: Certificate.SerialNumber(),
                publicKey: certificateKey.publicKey,
                // The relay ignores the dates: a wrong clock on a customer's PC must not stop it.
                notValidBefore: Date(timeIntervalSince1970: 946_684_800),
                notValidAfter: Date(timeIntervalSince1970: 253_402_300_799),
                issuer: name,
                subject: name,
                signatureAlgorithm: .ed25519,
                extensions: try Certificate.Extensions {
                    Critical(BasicConstraints.notCertificateAuthority)
                    Critical(KeyUsage(digitalSignature: true))
                    try ExtendedKeyUsage([.clientAuth])
                },
                issuerPrivateKey: certificateKey
            )
            var serializer = DER.Serializer()
            try serializer.serialize(certificate)
            // PKCS#8 of an Ed25519 key (RFC 8410 §7): a fixed prefix, then the 32-byte seed.
            let pkcs8: [UInt8] =
                [0x30, 0x2E, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20] + Array(key.rawRepresentation)
            return (try NIOSSLCertificate(bytes: serializer.serializedBytes, format: .der), try NIOSSLPrivateKey(bytes: pkcs8, format: .der))
        } catch {
            throw RelayClientError(.configuration, "cannot present your key to the relay: \(error)")
        }
    }
}
