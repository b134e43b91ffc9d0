import Foundation
import NIOSSL
import RelayStore
import RelayWire

/// The relay's TLS material: the operator's certificate and key, or a self-signed
/// development certificate made on first run in the data folder.
struct RelayTLS {
    let certificateChain: [NIOSSLCertificate]
    let privateKey: NIOSSLPrivateKey
    /// SHA-256 fingerprint of the leaf certificate.
    let fingerprint: String
    /// Where the certificate came from, for the start-up banner.
    let origin: String

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

    /// Loads the development certificate from `dataDirectory/tls`, making it on first run.
    static func loadOrCreateDevelopmentCertificate(dataDirectory: String, dnsNames: [String]) throws -> (RelayTLS, created: Bool) {
        let folder = URL(fileURLWithPath: dataDirectory).appendingPathComponent("tls")
        let certificatePath = folder.appendingPathComponent("relay-cert.pem").path
        let keyPath = folder.appendingPathComponent("relay-key.pem").path
        let files = FileManager.default
        if files.fileExists(atPath: certificatePath), files.fileExists(atPath: keyPath) {
            return (try load(certificatePath: certificatePath, keyPath: keyPath), false)
        }
        try files.createDirectory(at: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let issued = try CertificateFactory.selfSigned(commonName: "SupportRelay development relay", dnsNames: dnsNames)
        guard files.createFile(atPath: keyPath, contents: Data(issued.privateKeyPEM.utf8), attributes: [.posixPermissions: 0o600]) else {
            throw StoreError("cannot write \(keyPath); check that the data folder is writable")
        }
        try Data(try issued.certificatePEM.utf8).write(to: URL(fileURLWithPath: certificatePath))
        return (try load(certificatePath: certificatePath, keyPath: keyPath), true)
    }
}
