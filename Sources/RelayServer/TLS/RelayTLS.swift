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

    /// The server configuration for relay connections (and, with other ALPN, the admin
    /// port): the protocol's TLS policy (``RelayTLSPolicy``), the same as the agents'.
    func serverConfiguration(applicationProtocols: [String] = [RelayProtocol.alpnToken]) -> TLSConfiguration {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: self.certificateChain.map { .certificate($0) },
            privateKey: .privateKey(self.privateKey)
        )
        // makeServerConfiguration defaults to TLS 1.0 (NOTES.md): the policy raises it.
        configuration.applyRelayPolicy()
        configuration.applicationProtocols = applicationProtocols
        return configuration
    }

    /// Loads PEM files given by the operator. Refuses a key file that other users can
    /// read (``DataFolder/keyFileProblem(_:)``): the key is the relay's identity.
    static func load(certificatePath: String, keyPath: String) throws -> RelayTLS {
        if let problem = DataFolder.keyFileProblem(keyPath) {
            throw ConfigurationError(.file, problem)
        }
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certificatePath)
        } catch {
            throw ConfigurationError(
                .file, "cannot read the certificate \(certificatePath): \(error); give a PEM file with the relay's certificate (and chain)")
        }
        guard let leaf = chain.first else {
            throw ConfigurationError(.file, "\(certificatePath) holds no certificate; give a PEM file starting with the relay's certificate")
        }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: keyPath, format: .pem)
        } catch {
            throw ConfigurationError(.file, "cannot read the private key \(keyPath): \(error); give the PEM key that matches \(certificatePath)")
        }
        return RelayTLS(
            certificateChain: chain,
            privateKey: key,
            fingerprint: Fingerprint.sha256(der: try leaf.toDERBytes()),
            origin: certificatePath
        )
    }
}

extension TLSConfiguration {
    /// The minimum version and TLS 1.2 cipher suites of ``RelayTLSPolicy`` (PROTOCOL.md §1).
    /// RelayClient applies the same policy to the agents' configuration.
    mutating func applyRelayPolicy() {
        switch RelayTLSPolicy.minimumVersion {
        case .tls12: self.minimumTLSVersion = .tlsv12
        case .tls13: self.minimumTLSVersion = .tlsv13
        }
        self.cipherSuites = RelayTLSPolicy.tls12CipherSuites
    }
}
