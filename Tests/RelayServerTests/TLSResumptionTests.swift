import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import RelayTestSupport
import RelayWire
import Testing

@testable import RelayServer

/// Issue 16 item 3: the relay port resumes TLS 1.3 sessions from its own tickets (PSK with
/// ECDHE, docs/SECURITY.md "TLS session resumption"), for agents and browsers, over real
/// TLS on loopback. RelayClient cannot offer a session (swift-nio-ssl 2.37 has no API for
/// it), so OpenSSL's `s_client` plays the client that reconnects.
@Suite struct TLSResumptionTests {
    /// BoringSSL holds a server's TLS 1.3 tickets until the server's first write
    /// (tls13_server.cc, do_send_new_session_ticket): an agent gets them with HelloAck.
    @Test(.timeLimit(.minutes(1))) func anAgentThatReconnectsResumesItsTLSSession() async throws {
        try await TestRelay.with { relay in
            let hello = try Frame(.hello(Hello(role: .viewer, capabilities: .all, software: "resumption-test")))
            let (first, second) = try await Self.connectTwice(port: relay.port, alpn: RelayProtocol.alpnToken, firstSends: Data(hello.bytes.readableBytesView))
            #expect(first.contains("New, TLSv1.3"), "\(first)")
            #expect(second.contains("Reused, TLSv1.3"), "\(second)")
            // The resumed connection is a TLS handshake like any other in the metrics.
            #expect(await eventually { relay.metric(#"relay_tls_handshakes_total{outcome="ok"}"#) == 2 })
            #expect(relay.metric(#"relay_tls_handshakes_total{outcome="failed"}"#) == 0)
        }
    }

    /// A browser's reconnect resumes too; its tickets come with the first HTTP response.
    @Test(.timeLimit(.minutes(1))) func aBrowserThatReconnectsResumesItsTLSSession() async throws {
        try await TestRelay.with { relay in
            let request = Data("GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".utf8)
            let (first, second) = try await Self.connectTwice(port: relay.port, alpn: "http/1.1", firstSends: request)
            #expect(first.contains("New, TLSv1.3"), "\(first)")
            #expect(second.contains("Reused, TLSv1.3"), "\(second)")
        }
    }

    /// A resumed handshake has no CertificateVerify, so it proves no key: the relay's TLS
    /// tells the core of no key, and a key login there is refused (docs/SECURITY.md §4.3a).
    /// The agents' TLS of the relay port, with OpenSSL presenting an Ed25519 certificate
    /// both times.
    @Test(.timeLimit(.minutes(1))) func aResumedConnectionProvesNoKey() async throws {
        let issued = try CertificateFactory.selfSigned(commonName: "relay", dnsNames: ["localhost"])
        let tls = RelayTLS(
            certificateChain: [try issued.nioCertificate()], privateKey: try issued.nioPrivateKey(), fingerprint: try issued.fingerprint, origin: "test")
        let context = try NIOSSLContext(configuration: AgentKeyCertificate.relayPortConfiguration(tls))
        let connections = NIOLockedValueBox<[ProofRecorder.Seen]>([])
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let presented = AgentKeyCertificate.PresentedKey()
                    try channel.pipeline.syncOperations.addHandlers(
                        NIOSSLServerHandler(context: context, customVerificationCallback: AgentKeyCertificate.verifier(recording: presented)),
                        TLSHandshakeObserver(metrics: RelayMetrics(), logger: Logger(label: "resumption-test"), presentedKey: presented),
                        ProofRecorder(connections: connections)
                    )
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let port = try #require(server.localAddress?.port)
        try await CertificateTests.withFolder { folder in
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            _ = try await CertificateTests.shell(
                "openssl req -x509 -newkey ed25519 -nodes -keyout \(folder)/agent.key -out \(folder)/agent.pem -subj /CN=agent -days 1 2>&1")
            let agentKey = try #require(AgentKeyCertificate.publicKey(of: try NIOSSLCertificate.fromPEMFile("\(folder)/agent.pem")[0]))
            let connect =
                "openssl s_client -connect 127.0.0.1:\(port) -servername localhost -tls1_3 -alpn supportrelay/1 -nocommands -cert \(folder)/agent.pem -key \(folder)/agent.key"
            let first = try await CertificateTests.shell("(sleep 1) | \(connect) -sess_out \(folder)/session.pem")
            #expect(first.output.contains("New, TLSv1.3"), "\(first)")
            let second = try await CertificateTests.shell("(sleep 0.5) | \(connect) -sess_in \(folder)/session.pem")
            #expect(second.output.contains("Reused, TLSv1.3"), "\(second)")
            #expect(await eventually { connections.withLockedValue { $0.count } == 2 })
            let seen = connections.withLockedValue { $0 }
            #expect(seen.allSatisfy { $0.handshakeCompleted })
            #expect(seen.first?.provedKey == agentKey, "the full handshake proves the key")
            #expect(seen.last?.provedKey == nil, "the resumed one proves none")
        }
        try await server.close()
    }

    /// Two `s_client` connections: the first sends `firstSends` (so the relay writes and the
    /// tickets come) and keeps the session; the second offers it. Returns both outputs.
    static func connectTwice(port: Int, alpn: String, firstSends: Data) async throws -> (first: String, second: String) {
        try await CertificateTests.withFolder { folder in
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            try firstSends.write(to: URL(fileURLWithPath: "\(folder)/request"))
            let connect = "openssl s_client -connect 127.0.0.1:\(port) -servername localhost -tls1_3 -alpn \(alpn) -nocommands"
            // Standard input stays open a second, so s_client reads the answer and the tickets.
            let first = try await CertificateTests.shell("(cat \(folder)/request; sleep 1) | \(connect) -sess_out \(folder)/session.pem")
            guard FileManager.default.fileExists(atPath: "\(folder)/session.pem") else {
                throw TestFailure("the relay sent no session ticket: \(first.output)\n\(first.errors)")
            }
            let second = try await CertificateTests.shell("(sleep 0.5) | \(connect) -sess_in \(folder)/session.pem")
            return (first.output, second.output)
        }
    }
}

/// Notes what the relay's TLS handlers told the core on one connection, and writes a byte
/// once TLS is up, so that BoringSSL sends its tickets (they go with the first write).
private final class ProofRecorder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    struct Seen: Sendable {
        var handshakeCompleted = false
        var provedKey: Data?
    }

    private let connections: NIOLockedValueBox<[Seen]>
    private var seen = Seen()

    init(connections: NIOLockedValueBox<[Seen]>) { self.connections = connections }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent {
            self.seen.handshakeCompleted = true
            context.writeAndFlush(Self.wrapOutboundOut(ByteBuffer(string: "ok")), promise: nil)
        } else if let proved = event as? ClientKeyProved {
            self.seen.provedKey = proved.publicKey
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        let seen = self.seen
        self.connections.withLockedValue { $0.append(seen) }
    }
}
