import Crypto
import Foundation
import NIOSSL
import RelayWire
import SwiftASN1
import X509

/// Certificates made in-process with swift-certificates: the relay's self-signed
/// development certificate, and the private CAs that tests use.
///
/// Leaf certificates carry DNS names only: an IP SAN would satisfy hostname checks
/// against the connected address (NOTES.md), which is never what an operator meant.
/// Every certificate has a SubjectKeyIdentifier and an AuthorityKeyIdentifier (RFC 5280
/// §4.2.1.1-2), which path building and tools such as sslyze expect.
enum CertificateFactory {
    struct Issued {
        let certificate: Certificate
        let privateKey: P256.Signing.PrivateKey

        /// The certificate as PEM, ending with a newline, so that `cat cert key > bundle.pem`
        /// (how haproxy and nginx take a certificate) gives a valid file.
        var certificatePEM: String { get throws { PEM.withFinalNewline(try self.certificate.serializeAsPEM().pemString) } }
        /// The private key as PEM (PKCS#8), ending with a newline.
        var privateKeyPEM: String { PEM.withFinalNewline(self.privateKey.pemRepresentation) }

        /// SHA-256 of the DER certificate: what `relay-agent --fingerprint` pins.
        var fingerprint: String {
            get throws {
                var serializer = DER.Serializer()
                try serializer.serialize(self.certificate)
                return Fingerprint.sha256(der: serializer.serializedBytes)
            }
        }

        func nioCertificate() throws -> NIOSSLCertificate {
            try NIOSSLCertificate(bytes: Array(try self.certificatePEM.utf8), format: .pem)
        }

        func nioPrivateKey() throws -> NIOSSLPrivateKey {
            try NIOSSLPrivateKey(bytes: Array(self.privateKeyPEM.utf8), format: .pem)
        }
    }

    /// A self-signed server certificate for `dnsNames`, valid for `days` from `now`, with
    /// `key` (a new key if nil: renewing with the same key keeps a key pin valid).
    static func selfSigned(
        commonName: String, dnsNames: [String], days: Int = 90, key: P256.Signing.PrivateKey? = nil, now: Date = Date()
    ) throws -> Issued {
        let name = try DistinguishedName { CommonName(commonName) }
        return try issue(subject: name, days: days, extensions: { try serverExtensions(dnsNames) }, key: key, now: now)
    }

    /// What a relay certificate says of itself: a leaf for TLS servers, DNS names only.
    private static func serverExtensions(_ dnsNames: [String]) throws -> Certificate.Extensions {
        try Certificate.Extensions {
            Critical(BasicConstraints.notCertificateAuthority)
            Critical(KeyUsage(digitalSignature: true))
            try ExtendedKeyUsage([.serverAuth])
            SubjectAlternativeNames(dnsNames.map { .dnsName($0) })
        }
    }

    /// A self-signed certificate for `key` (a new P-256 key if nil), valid from five minutes
    /// before `now` (clock skew) for `days`. Adds the key identifiers to `extensions`: the
    /// subject's (SHA-1 of its public key, RFC 5280 §4.2.1.2) and the issuer's, the same.
    private static func issue(
        subject: DistinguishedName, days: Int, extensions: () throws -> Certificate.Extensions, key: P256.Signing.PrivateKey? = nil, now: Date = Date()
    ) throws -> Issued {
        let key = key ?? P256.Signing.PrivateKey()
        let publicKey = Certificate.PublicKey(key.publicKey)
        let keyID = SubjectKeyIdentifier(hash: publicKey)
        var allExtensions = try extensions()
        try allExtensions.append(Certificate.Extension(keyID, critical: false))
        try allExtensions.append(Certificate.Extension(AuthorityKeyIdentifier(keyIdentifier: keyID.keyIdentifier), critical: false))
        let certificate = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: publicKey,
            notValidBefore: now.addingTimeInterval(-300),
            notValidAfter: now.addingTimeInterval(Double(days) * 86_400),
            issuer: subject,
            subject: subject,
            extensions: allExtensions,
            issuerPrivateKey: .init(key)
        )
        return Issued(certificate: certificate, privateKey: key)
    }
}

/// PEM text as the relay writes it.
enum PEM {
    /// `text` ending with exactly one newline.
    static func withFinalNewline(_ text: String) -> String {
        text.hasSuffix("\n") ? text : text + "\n"
    }
}

/// Certificate fingerprints as `relay-server` prints them and `relay-agent --fingerprint` takes them.
enum Fingerprint {
    /// `AB:CD:…`: SHA-256 of the DER certificate, written as ``CertificateFingerprint`` says.
    static func sha256(der: [UInt8]) -> String {
        CertificateFingerprint.display(sha256: SHA256.hash(data: der))
    }
}
