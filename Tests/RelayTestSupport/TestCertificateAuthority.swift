import Crypto
import Foundation
public import NIOSSL
import SwiftASN1
import X509

/// A private certificate authority made in the test process (STYLE.md rule 8), and the
/// relay certificates it signs. A client that trusts ``certificate`` accepts the relay's
/// certificate with the full check of chain and host name, as agents do against a relay
/// with a CA-issued certificate.
///
/// Shared by the test targets through RelayTestSupport: the client's tests serve a
/// scripted relay with it; no test needs the relay's own certificate code for this.
public struct TestCertificateAuthority: Sendable {
    /// The authority's certificate: what a client trusts.
    public let certificate: NIOSSLCertificate
    /// The same certificate as PEM text, for a file a client is pointed at (`--ca-file`).
    public var certificatePEM: String {
        get throws { try self.issuer.serializeAsPEM().pemString + "\n" }
    }
    private let issuer: Certificate
    private let key: P256.Signing.PrivateKey

    /// A new authority with a new P-256 key, valid from an hour ago for ten years.
    public init(commonName: String = "SupportRelay Test CA") throws {
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName { CommonName(commonName) }
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
            Critical(KeyUsage(keyCertSign: true, cRLSign: true))
        }
        let issuer = try Self.sign(
            subject: name, publicKey: Certificate.PublicKey(key.publicKey), days: 3650, extensions: extensions, issuer: name, issuerKey: key)
        self.issuer = issuer
        self.key = key
        self.certificate = try Self.nioCertificate(issuer)
    }

    /// A server certificate for `dnsNames` with a new P-256 key, signed by this authority.
    /// It names DNS names only: an IP address in it would satisfy a host-name check
    /// against the connected address (NOTES.md), which would hide a wrong host name.
    public func serverCertificate(dnsNames: [String], days: Int = 90) throws -> TestServerCertificate {
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName { CommonName(dnsNames.first ?? "relay") }
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.notCertificateAuthority)
            Critical(KeyUsage(digitalSignature: true))
            try ExtendedKeyUsage([.serverAuth])
            SubjectAlternativeNames(dnsNames.map { .dnsName($0) })
        }
        let leaf = try Self.sign(
            subject: name, publicKey: Certificate.PublicKey(key.publicKey), days: days, extensions: extensions, issuer: self.issuer.subject, issuerKey: self.key
        )
        return TestServerCertificate(
            certificate: try Self.nioCertificate(leaf),
            privateKey: try NIOSSLPrivateKey(bytes: Array(key.pemRepresentation.utf8), format: .pem)
        )
    }

    /// Valid from an hour ago (clock skew between the test and the TLS library) for `days`.
    private static func sign(
        subject: DistinguishedName, publicKey: Certificate.PublicKey, days: Int, extensions: Certificate.Extensions, issuer: DistinguishedName,
        issuerKey: P256.Signing.PrivateKey
    ) throws -> Certificate {
        let now = Date()
        return try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: publicKey,
            notValidBefore: now.addingTimeInterval(-3600),
            notValidAfter: now.addingTimeInterval(Double(days) * 86_400),
            issuer: issuer,
            subject: subject,
            extensions: extensions,
            issuerPrivateKey: Certificate.PrivateKey(issuerKey)
        )
    }

    private static func nioCertificate(_ certificate: Certificate) throws -> NIOSSLCertificate {
        var serializer = DER.Serializer()
        try serializer.serialize(certificate)
        return try NIOSSLCertificate(bytes: serializer.serializedBytes, format: .der)
    }
}

/// A server certificate that a ``TestCertificateAuthority`` signed, with its key.
public struct TestServerCertificate: Sendable {
    public let certificate: NIOSSLCertificate
    public let privateKey: NIOSSLPrivateKey
}
