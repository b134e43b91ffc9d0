import Crypto
import Foundation
import NIOSSL
import SwiftASN1
import X509

/// Certificates made in-process with swift-certificates: the relay's self-signed
/// development certificate, and the private CAs that tests use.
///
/// Leaf certificates carry DNS names only: an IP SAN would satisfy hostname checks
/// against the connected address (NOTES.md), which is never what an operator meant.
enum CertificateFactory {
    struct Issued {
        let certificate: Certificate
        let privateKey: P256.Signing.PrivateKey

        var certificatePEM: String { get throws { try self.certificate.serializeAsPEM().pemString } }
        var privateKeyPEM: String { self.privateKey.pemRepresentation }

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

    /// A self-signed server certificate for `dnsNames`, valid for `days`.
    static func selfSigned(commonName: String, dnsNames: [String], days: Int = 825) throws -> Issued {
        let name = try DistinguishedName { CommonName(commonName) }
        return try issue(subject: name, days: days, extensions: try serverExtensions(dnsNames), signedBy: nil)
    }

    /// A certificate authority that can sign server certificates (tests, `certs/` alternative).
    static func certificateAuthority(commonName: String) throws -> Issued {
        let name = try DistinguishedName { CommonName(commonName) }
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
            Critical(KeyUsage(keyCertSign: true, cRLSign: true))
        }
        return try issue(subject: name, days: 3650, extensions: extensions, signedBy: nil)
    }

    /// A server certificate for `dnsNames`, signed by `authority`.
    static func serverCertificate(dnsNames: [String], signedBy authority: Issued, days: Int = 90) throws -> Issued {
        let name = try DistinguishedName { CommonName(dnsNames.first ?? "relay") }
        return try issue(subject: name, days: days, extensions: try serverExtensions(dnsNames), signedBy: authority)
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

    /// A new P-256 key and its certificate, valid from five minutes ago (clock skew) for
    /// `days`; self-signed when `authority` is nil.
    private static func issue(subject: DistinguishedName, days: Int, extensions: Certificate.Extensions, signedBy authority: Issued?) throws -> Issued {
        let key = P256.Signing.PrivateKey()
        let now = Date()
        let certificate = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: .init(key.publicKey),
            notValidBefore: now.addingTimeInterval(-300),
            notValidAfter: now.addingTimeInterval(Double(days) * 86_400),
            issuer: authority?.certificate.subject ?? subject,
            subject: subject,
            extensions: extensions,
            issuerPrivateKey: .init(authority?.privateKey ?? key)
        )
        return Issued(certificate: certificate, privateKey: key)
    }
}

/// Certificate fingerprints as `relay-server` prints them and `relay-agent --fingerprint` takes them.
enum Fingerprint {
    /// `AB:CD:…` — 32 bytes of SHA-256 as colon-separated uppercase hex.
    static func sha256(der: [UInt8]) -> String {
        SHA256.hash(data: der).map { byte in
            let hex = String(byte, radix: 16, uppercase: true)
            return byte < 16 ? "0" + hex : hex
        }.joined(separator: ":")
    }
}
