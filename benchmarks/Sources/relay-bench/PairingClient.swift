// The pairing load's agent connections: the protocol steps of PROTOCOL.md §8 (Hello, then
// HostAuth or ViewerAuth, then Paired) as RelayClient takes them, over TLS contexts made
// once per key.
//
// Why not RelayClient: `RelayConnection.withConnection` makes a new NIOSSLContext for every
// connection, and NIOSSL loads the system's CA bundle into each one (PEM parsing of every
// root, about 7 ms of CPU here) even when the relay is pinned by fingerprint. A pairing
// opens two connections, so on 2 cores the load generator, not the relay, set the pace
// (RESULTS.md, "Cluster (issue 15)"). The sessions that stay open (forwarding, idle)
// still use RelayClient.

import Crypto
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import RelayClient
import RelayWire

/// TLS client contexts: one per agent key (the key login's client certificate), and one
/// without a key (a support-code host); each trusts only the relay's certificate.
final class AgentTLS: Sendable {
    private let relayCertificate: NIOSSLCertificate
    private let contexts = NIOLockedValueBox<[Data: NIOSSLContext]>([:])
    private let anonymous: NIOSSLContext

    init(tls: TLSMaterial) throws {
        self.relayCertificate = try NIOSSLCertificate.fromPEMFile(tls.certificatePath)[0]
        self.anonymous = try NIOSSLContext(configuration: Self.configuration(relay: self.relayCertificate))
    }

    private static func configuration(relay: NIOSSLCertificate) -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.cipherSuites = RelayTLSPolicy.tls12CipherSuites
        configuration.applicationProtocols = [RelayProtocol.alpnToken]
        // The relay's own certificate is the only root: no system bundle to load, and the
        // connection is by IP address, so no name to check.
        configuration.trustRoots = .certificates([relay])
        configuration.certificateVerification = .noHostnameVerification
        return configuration
    }

    /// The context that presents `key` (nil: none), made on first use.
    func context(for key: Curve25519.Signing.PrivateKey?) throws -> NIOSSLContext {
        guard let key else { return self.anonymous }
        let id = key.publicKey.rawRepresentation
        if let known = self.contexts.withLockedValue({ $0[id] }) { return known }
        var configuration = Self.configuration(relay: self.relayCertificate)
        let (certificate, privateKey) = try ClientCertificate.material(for: key)
        configuration.certificateChain = [.certificate(certificate)]
        configuration.privateKey = .privateKey(privateKey)
        let context = try NIOSSLContext(configuration: configuration)
        self.contexts.withLockedValue { $0[id] = context }
        return context
    }
}

/// The relay refused a request (Error) or ended the connection (Bye).
struct AgentRefusal: Error, CustomStringConvertible {
    var code: ErrorCode?
    var description: String
}

/// One agent connection: frames in and out, and the control steps an agent takes.
struct AgentLink {
    private var inbound: NIOAsyncChannelInboundStream<Frame>.AsyncIterator
    private let outbound: NIOAsyncChannelOutboundWriter<Frame>

    /// Connects (TCP, then TLS with `context`), runs `body`, and closes.
    static func withLink<Result: Sendable>(
        to address: RelayAddress, context: NIOSSLContext, _ body: (inout AgentLink) async throws -> Result
    ) async throws -> Result {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(10))
            .connect(host: address.host, port: address.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: nil))
                    try channel.pipeline.syncOperations.addHandler(
                        ByteToMessageHandler(frameDecoderWithMaximumPayloadLength: Frame.maximumEncodablePayloadLength))
                    try channel.pipeline.syncOperations.addHandler(FrameEncoder())
                    return try NIOAsyncChannel<Frame, Frame>(wrappingChannelSynchronously: channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            var link = AgentLink(inbound: inbound.makeAsyncIterator(), outbound: outbound)
            return try await body(&link)
        }
    }

    func send(_ message: RelayMessage) async throws {
        try await self.outbound.write(try Frame(message))
    }

    /// The next message; nil when the relay closed the connection.
    mutating func receive() async throws -> RelayMessage? {
        guard let frame = try await self.inbound.next() else { return nil }
        return try RelayMessage(frame)
    }

    /// The next control message, which must be `expected`; Error and Bye are thrown.
    mutating func expect(_ expected: String, _ accept: (RelayMessage) -> Bool) async throws -> RelayMessage {
        guard let message = try await self.receive() else {
            throw AgentRefusal(code: nil, description: "the relay closed while the agent waited for \(expected)")
        }
        switch message {
        case .error(let error): throw AgentRefusal(code: error.code, description: "the relay refused: \(error.message) (\(error.code.name))")
        case .bye(let bye): throw AgentRefusal(code: nil, description: "the relay ended the connection: \(bye.text) (\(bye.reason.name))")
        default:
            guard accept(message) else { throw AgentRefusal(code: nil, description: "expected \(expected), got \(message.type.name)") }
            return message
        }
    }

    mutating func hello(role: Role) async throws {
        try await self.send(.hello(Hello(role: role, capabilities: .all, software: "relay-bench/cluster")))
        _ = try await self.expect("HelloAck") { if case .helloAck = $0 { true } else { false } }
    }

    /// Reads until the relay's Bye or the end of the connection.
    mutating func waitForEnd() async throws {
        while let message = try await self.receive() {
            if case .bye = message { return }
        }
    }
}
