import Crypto
import Foundation
import Logging
import NIOCore
import NIOSSL
import NIOTLS
import RelayStore
import RelayWire
import SwiftASN1
import X509

/// How a node takes part in cross-node pairing (OPERATIONS.md "Several nodes"): where its
/// cluster port listens, the address other nodes dial, and the cluster's shared secret.
struct ClusterSettings: Sendable, Hashable {
    var listen: ListenAddress
    /// `host:port` other nodes dial to reach this node's cluster port.
    var address: String
    var secretFile: String

    init(listen: ListenAddress, address: String, secretFile: String) {
        self.listen = listen
        self.address = address
        self.secretFile = secretFile
    }

    /// From the config file's `cluster_listen`, `cluster_address` and `cluster_secret_file`.
    init(listen: String?, address: String?, secretFile: String?, configFile: String) throws {
        guard let listen, let secretFile else {
            throw ConfigurationError(
                .invalidValue,
                "the config file \(configFile) sets part of a cluster: cross-node pairing needs cluster_listen (e.g. \"0.0.0.0:7445\") "
                    + "and cluster_secret_file (the file every node shares, OPERATIONS.md \"Several nodes\"), and cluster_address when "
                    + "cluster_listen is a wildcard address"
            )
        }
        let parsed = try ListenAddress(parsing: listen)
        let wildcard = ["0.0.0.0", "::", ""].contains(parsed.host)
        let dialed: String
        if let address {
            do {
                let hostPort = try HostPort(parsing: address)
                guard hostPort.port != nil, !hostPort.host.isEmpty, !["0.0.0.0", "::"].contains(hostPort.host) else {
                    throw ConfigurationError(.invalidValue, "")
                }
                dialed = hostPort.description
            } catch {
                throw ConfigurationError(
                    .invalidValue,
                    "cluster_address \"\(address)\" is not an address other nodes can dial: give this node's own HOST:PORT on the "
                        + "nodes' network, e.g. \"10.0.0.11:7445\""
                )
            }
        } else if wildcard {
            throw ConfigurationError(
                .invalidValue,
                "cluster_listen \(parsed) listens on every interface, so other nodes cannot learn from it where to dial this node: "
                    + "set cluster_address to this node's HOST:PORT on the nodes' network, e.g. \"10.0.0.11:\(parsed.port)\""
            )
        } else if parsed.port == 0 {
            throw ConfigurationError(
                .invalidValue,
                "cluster_listen \(parsed) takes a free port at random, which other nodes cannot know: give the port (e.g. \"\(parsed.host):7445\")")
        } else {
            dialed = parsed.description
        }
        self.init(listen: parsed, address: dialed, secretFile: secretFile)
    }
}

/// The cluster's credential, made from the shared secret file: one Ed25519 key that every
/// node derives alike, and a self-signed certificate of it. Node links are TLS 1.3 with
/// that certificate on both sides, and each side accepts only a peer that proves the same
/// key (TLS's CertificateVerify signs the handshake), so a node link is possible only
/// between holders of the secret (docs/SECURITY.md "Between nodes").
struct ClusterIdentity: Sendable {
    /// The ALPN token of node links: a cluster port takes nothing else.
    static let alpnToken = "supportrelay-cluster/1"
    /// The shortest secret accepted, in bytes of the file (after trimming white space).
    static let minimumSecretLength = 32

    let publicKey: Data
    private let certificate: NIOSSLCertificate
    private let privateKey: NIOSSLPrivateKey
    /// The dialling side's TLS context, made once: every node link shares it. (A context per
    /// link held its own parsed copy of its trust store for the link's life, about 1 MiB,
    /// and cost milliseconds of CPU to make: relay-bench cluster's idle sessions showed it.)
    let clientContext: NIOSSLContext

    /// Reads the secret file; refuses one that other users can read, or a short one.
    init(secretFile path: String) throws {
        if let problem = DataFolder.keyFileProblem(path) {
            throw ConfigurationError(.file, problem.replacingOccurrences(of: "the private key", with: "the cluster secret"))
        }
        let contents: Data
        do {
            contents = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ConfigurationError(
                .file,
                "cannot read the cluster secret \(path): \(error.localizedDescription); make it once with "
                    + "`openssl rand -base64 48 > \(path); chmod 600 \(path)` and copy the same file to every node"
            )
        }
        let secret = Data(String(decoding: contents, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines).utf8)
        guard secret.count >= Self.minimumSecretLength else {
            throw ConfigurationError(
                .file,
                "the cluster secret \(path) holds \(secret.count) bytes; it needs at least \(Self.minimumSecretLength) random ones: "
                    + "`openssl rand -base64 48 > \(path)`, the same file on every node"
            )
        }
        try self.init(secret: secret)
    }

    init(secret: Data) throws {
        let seed = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: secret), salt: Data("supportrelay cluster".utf8), info: Data("node link key v1".utf8),
            outputByteCount: 32)
        let key = try Curve25519.Signing.PrivateKey(rawRepresentation: seed.withUnsafeBytes { Data($0) })
        let publicKey = key.publicKey.rawRepresentation
        self.publicKey = publicKey
        let certificateKey = Certificate.PrivateKey(key)
        let name = try DistinguishedName { CommonName("SupportRelay cluster " + KeyFingerprint.of(rawPublicKey: publicKey)) }
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: certificateKey.publicKey,
            // Nodes compare keys, not dates or names.
            notValidBefore: Date(timeIntervalSince1970: 946_684_800), notValidAfter: Date(timeIntervalSince1970: 253_402_300_799),
            issuer: name, subject: name, signatureAlgorithm: .ed25519,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.clientAuth, .serverAuth])
            },
            issuerPrivateKey: certificateKey
        )
        var serializer = DER.Serializer()
        try serializer.serialize(certificate)
        // PKCS#8 of an Ed25519 key (RFC 8410 §7): a fixed prefix, then the 32-byte seed.
        let pkcs8: [UInt8] = [0x30, 0x2E, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20] + Array(key.rawRepresentation)
        self.certificate = try NIOSSLCertificate(bytes: serializer.serializedBytes, format: .der)
        self.privateKey = try NIOSSLPrivateKey(bytes: pkcs8, format: .der)
        self.clientContext = try NIOSSLContext(configuration: Self.clientConfiguration(certificate: self.certificate, privateKey: self.privateKey))
    }

    /// The cluster port's TLS: the cluster certificate, and a client certificate required.
    func serverConfiguration() -> TLSConfiguration {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: [.certificate(self.certificate)], privateKey: .privateKey(self.privateKey))
        Self.applyLinkPolicy(&configuration)
        return configuration
    }

    /// A node link's TLS, as the dialling node (``clientContext``).
    private static func clientConfiguration(certificate: NIOSSLCertificate, privateKey: NIOSSLPrivateKey) -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateChain = [.certificate(certificate)]
        configuration.privateKey = .privateKey(privateKey)
        Self.applyLinkPolicy(&configuration)
        return configuration
    }

    private static func applyLinkPolicy(_ configuration: inout TLSConfiguration) {
        // No certificate authority vouches for a node: ``verifier()`` compares keys, so the
        // system's trust store is not loaded.
        configuration.trustRoots = .certificates([])
        configuration.minimumTLSVersion = .tlsv13
        // Required both ways; the verification callback decides (``verifier()``).
        configuration.certificateVerification = .noHostnameVerification
        configuration.verifySignatureAlgorithms = [.ed25519]
        configuration.signingSignatureAlgorithms = [.ed25519]
        configuration.applicationProtocols = [Self.alpnToken]
    }

    /// Accepts exactly one certificate, of the cluster key: the other side holds the secret.
    func verifier() -> NIOSSLCustomVerificationCallback {
        let expected = self.publicKey
        return { certificates, promise in
            guard certificates.count == 1, let key = AgentKeyCertificate.publicKey(of: certificates[0]),
                key.count == expected.count, zip(key, expected).reduce(0, { $0 | ($1.0 ^ $1.1) }) == 0
            else {
                promise.succeed(.failed)
                return
            }
            promise.succeed(.certificateVerified)
        }
    }
}

/// Closes a cluster-port connection whose TLS handshake did not agree on the node links'
/// ALPN token: the cluster key alone admits a peer, and the token says it speaks node links
/// (a client that offered none or another one is not a node of this version).
final class ClusterALPNCheck: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let logger: Logger

    init(logger: Logger) {
        self.logger = logger
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted(let negotiated) = event {
            guard negotiated == ClusterIdentity.alpnToken else {
                self.logger.warning(
                    "a cluster-port connection with the cluster key did not offer ALPN \(ClusterIdentity.alpnToken); closed",
                    metadata: ["offered": "\(negotiated ?? "none")"])
                context.close(promise: nil)
                return
            }
            context.pipeline.syncOperations.removeHandler(self, promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }
}
