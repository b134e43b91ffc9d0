import Foundation
import NIOSSL
import RelayStore
import RelayWire

/// The relay's TLS material: the operator's certificate and key, or a self-signed
/// development certificate made in the data folder (``DevelopmentCertificate``).
struct RelayTLS: Sendable {
    let certificateChain: [NIOSSLCertificate]
    let privateKey: NIOSSLPrivateKey
    /// SHA-256 fingerprint of the leaf certificate.
    let fingerprint: String
    /// Where the certificate came from, for the start-up banner.
    let origin: String
    /// The self-signed certificate's files and names, when the relay made it: the running
    /// relay renews it (``DevelopmentCertificate/renewIfDue(now:)``). Nil for the operator's.
    var development: DevelopmentCertificate? = nil

    /// Cipher suites for TLS 1.2: ECDHE with AEAD only. TLS 1.3 suites are all AEAD.
    static let tls12CipherSuites = [
        "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
    ].joined(separator: ":")

    /// The server configuration for relay connections (and, with other ALPN, the admin port).
    func serverConfiguration(applicationProtocols: [String] = [RelayProtocol.alpnToken]) -> TLSConfiguration {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: self.certificateChain.map { .certificate($0) },
            privateKey: .privateKey(self.privateKey)
        )
        // makeServerConfiguration defaults to TLS 1.0 (NOTES.md).
        configuration.minimumTLSVersion = .tlsv12
        configuration.cipherSuites = Self.tls12CipherSuites
        configuration.applicationProtocols = applicationProtocols
        return configuration
    }

    /// Loads PEM files given by the operator. Refuses a key file that other users can
    /// read (``DataFolder/keyFileProblem(_:)``): the key is the relay's identity.
    static func load(certificatePath: String, keyPath: String) throws -> RelayTLS {
        if let problem = DataFolder.keyFileProblem(keyPath) {
            throw StoreError(problem)
        }
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certificatePath)
        } catch {
            throw StoreError("cannot read the certificate \(certificatePath): \(error); give a PEM file with the relay's certificate (and chain)")
        }
        guard let leaf = chain.first else {
            throw StoreError("\(certificatePath) holds no certificate; give a PEM file starting with the relay's certificate")
        }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: keyPath, format: .pem)
        } catch {
            throw StoreError("cannot read the private key \(keyPath): \(error); give the PEM key that matches \(certificatePath)")
        }
        return RelayTLS(
            certificateChain: chain,
            privateKey: key,
            fingerprint: Fingerprint.sha256(der: try leaf.toDERBytes()),
            origin: certificatePath
        )
    }
}
