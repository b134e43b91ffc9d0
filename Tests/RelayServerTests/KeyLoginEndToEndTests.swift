import Crypto
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import RelayStore
import RelayTestSupport
import RelayWire
import Synchronization
import Testing

@testable import RelayClient
@testable import RelayServer

// Key logins over real TLS on loopback (PROTOCOL.md §1.2; docs/SECURITY.md "Logging in to
// the relay"): the agent's key is its TLS client certificate, and nothing it sends could
// log anyone in again. Includes the outside attack of issue 12: a proxy in front of the
// relay holding the relay's own certificate key.
@Suite(.serialized) struct KeyLoginEndToEndTests {
    /// Key accounts of ACME: an engineer and a host, with keys made now.
    private struct Accounts {
        let engineerKey = Curve25519.Signing.PrivateKey()
        let hostKey = Curve25519.Signing.PrivateKey()
        let engineer: Engineer
        let host: EnrolledHost

        init(_ relay: TestRelay) throws {
            self.engineer = try relay.store.addEngineer(companyID: relay.acme.id, login: "key.engineer", publicKey: self.engineerKey.publicKey, actor: "test")
            self.host = try relay.store.enrollHost(companyID: relay.acme.id, name: "키 PC", publicKey: self.hostKey.publicKey, actor: "test")
        }
    }

    @Test func anEngineerAndAHostLogInWithKeysAndPair() async throws {
        try await TestRelay.with { relay in
            let accounts = try Accounts(relay)
            try await RelayConnection.withConnection(to: relay.address, trust: relay.trust, clientKey: accounts.hostKey) { host in
                _ = try await host.hello(role: .host)
                guard case .hostRegistered(let registered) = try await host.authenticate(host: .key(hostID: accounts.host.id)) else {
                    throw TestFailure("the host did not register")
                }
                #expect(registered.hostName == "키 PC")
                try await RelayConnection.withConnection(to: relay.address, trust: relay.trust, clientKey: accounts.engineerKey) { viewer in
                    _ = try await viewer.hello(role: .viewer)
                    guard case .paired(let paired) = try await viewer.authenticate(viewer: .key(.connect(hostID: accounts.host.id))) else {
                        throw TestFailure("the viewer was not paired")
                    }
                    #expect(paired.peerName == "키 PC")
                    let hostPaired = try await host.waitForPairing()
                    #expect(hostPaired.peerName == "key.engineer")
                }
            }
            relay.node.relay.flushAccessLog()
            let log = try relay.store.accessLog(limit: 10)
            #expect(log.contains { $0.event == .hostKey && $0.outcome == .accepted && $0.subject == accounts.host.id })
            #expect(log.contains { $0.event == .engineerKey && $0.outcome == .accepted && $0.subject == "key.engineer" })
        }
    }

    /// What a key login sends can be copied byte for byte: without the key in the TLS
    /// handshake it logs nobody in.
    @Test func theSameLoginWithoutTheKeyIsRefused() async throws {
        try await TestRelay.with { relay in
            let accounts = try Accounts(relay)
            let replay = try await RawAgent.connect(to: relay)
            try await replay.send(.hello(Hello(role: .viewer, capabilities: .all, software: "replay")))
            guard case .helloAck = try await replay.readMessage() else { throw TestFailure("no HelloAck") }
            try await replay.send(.viewerAuth(.key(.connect(hostID: accounts.host.id))))
            guard case .error(let error) = try await replay.readMessage() else { throw TestFailure("the login was not refused") }
            #expect(error.code == .authenticationFailed && error.message.contains("TLS client certificate"))
        }
    }

    @Test func aKeyNoAccountHasIsRefusedWithItsFingerprint() async throws {
        try await TestRelay.with { relay in
            let accounts = try Accounts(relay)
            let stranger = Curve25519.Signing.PrivateKey()
            for (role, auth) in [(Role.viewer, RelayMessage.viewerAuth(.key(.newSupportCode))), (.host, .hostAuth(.key(hostID: accounts.host.id)))] {
                let error = await #expect(throws: RelayClientError.self) {
                    try await RelayConnection.withConnection(to: relay.address, trust: relay.trust, clientKey: stranger) { connection in
                        _ = try await connection.hello(role: role)
                        if case .viewerAuth(let viewerAuth) = auth {
                            _ = try await connection.authenticate(viewer: viewerAuth)
                        } else if case .hostAuth(let hostAuth) = auth {
                            _ = try await connection.authenticate(host: hostAuth)
                        }
                    }
                }
                #expect(error?.code == .authenticationFailed)
                #expect(error?.description.contains(KeyFingerprint.of(stranger.publicKey)) == true)
            }
        }
    }

    /// A legacy token engineer whose key is set: the token no longer logs in, the key does,
    /// and a live connection that logged in with the token is ended.
    @Test func settingAKeyEndsTheTokenAndItsSessions() async throws {
        try await TestRelay.with({ $0.credentialCheckInterval = .milliseconds(200) }) { relay in
            let key = Curve25519.Signing.PrivateKey()
            let engineers = try relay.store.engineers(companyID: relay.acme.id)
            let engineerID = try #require(engineers.first { $0.login == relay.acme.engineerLogin }).id
            try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { token in
                _ = try await token.hello(role: .viewer)
                guard case .codeIssued = try await token.authenticate(viewer: ViewerAuth(token: relay.acme.engineerToken, request: .newSupportCode)) else {
                    throw TestFailure("the token did not log in")
                }
                _ = try relay.store.setEngineerKey(id: engineerID, publicKey: key.publicKey, actor: "test")
                let error = await #expect(throws: RelayClientError.self) { _ = try await token.waitForPairing() }
                #expect(error?.description.contains("got a new login key") == true && error?.description.contains("(revoked)") == true)
            }
            try await RelayConnection.withConnection(to: relay.address, trust: relay.trust, clientKey: key) { connection in
                _ = try await connection.hello(role: .viewer)
                guard case .codeIssued = try await connection.authenticate(viewer: .key(.newSupportCode)) else { throw TestFailure("the key did not log in") }
            }
            let error = await #expect(throws: RelayClientError.self) {
                try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { connection in
                    _ = try await connection.hello(role: .viewer)
                    _ = try await connection.authenticate(viewer: ViewerAuth(token: relay.acme.engineerToken, request: .newSupportCode))
                }
            }
            #expect(error?.code == .authenticationFailed)
        }
    }

    /// Issue 12's outside attack: a proxy in front of the relay with the relay's own
    /// certificate and key. The agent trusts it (it presents the right certificate), and the
    /// proxy sees everything the agent sends in TLS. That holds no secret, and the proxy's own
    /// connection to the relay cannot prove the engineer's key: the login fails, and the
    /// relay never logs the engineer in.
    @Test func aProxyWithTheRelaysTLSKeyHarvestsNothingThatLogsIn() async throws {
        try await TestRelay.with { relay in
            let accounts = try Accounts(relay)
            for proxyKey in [nil, Curve25519.Signing.PrivateKey()] {
                let proxy = try await InterceptingProxy.start(in: relay, presenting: proxyKey)
                let error = await #expect(throws: RelayClientError.self) {
                    try await RelayConnection.withConnection(
                        to: RelayAddress(host: "localhost", port: proxy.port), trust: relay.trust, clientKey: accounts.engineerKey
                    ) { connection in
                        _ = try await connection.hello(role: .viewer)
                        _ = try await connection.authenticate(viewer: .key(.newSupportCode))
                    }
                }
                #expect(error?.code == .authenticationFailed)
                // A proxy presenting its own key is named as such: the agent knows its own key.
                #expect((error?.description.contains("presents a key of its own") == true) == (proxyKey != nil), "\(String(describing: error))")
                // The proxy saw the engineer's public key and a ViewerAuth with no token: nothing secret.
                #expect(proxy.agentKey == accounts.engineerKey.publicKey.rawRepresentation)
                let seen = proxy.seenFromAgent
                #expect(seen.readableBytes > 0)
                #expect(!String(decoding: seen.readableBytesView, as: UTF8.self).contains(relay.acme.engineerToken))
                try await proxy.close()
            }
            relay.node.relay.flushAccessLog()
            #expect(try relay.store.accessLog(limit: 50).allSatisfy { !($0.event == .engineerKey && $0.outcome == .accepted) })
        }
    }
}

/// A TLS-terminating proxy on loopback with the relay's certificate and key: it records
/// what agents send (plaintext) and the key of their client certificate, and forwards the
/// bytes over its own TLS connection to the relay, presenting `presenting` (or no key).
private final class InterceptingProxy: Sendable {
    private let listener: any Channel
    private let seen = Mutex(ByteBuffer())
    private let presented = Mutex<Data?>(nil)
    var port: Int { self.listener.localAddress!.port! }
    var seenFromAgent: ByteBuffer { self.seen.withLock { $0 } }
    var agentKey: Data? { self.presented.withLock { $0 } }

    private init(listener: any Channel) { self.listener = listener }

    static func start(in relay: TestRelay, presenting key: Curve25519.Signing.PrivateKey?) async throws -> InterceptingProxy {
        var serverConfiguration = TLSConfiguration.makeServerConfiguration(
            certificateChain: [.certificate(relay.server.certificate)], privateKey: .privateKey(relay.server.privateKey))
        serverConfiguration.applicationProtocols = [RelayProtocol.alpnToken]
        serverConfiguration.certificateVerification = .optionalVerification
        serverConfiguration.verifySignatureAlgorithms = [.ed25519]
        let serverContext = try NIOSSLContext(configuration: serverConfiguration)
        var clientConfiguration = TLSConfiguration.makeClientConfiguration()
        clientConfiguration.trustRoots = .certificates([relay.authority.certificate])
        clientConfiguration.applicationProtocols = [RelayProtocol.alpnToken]
        if let key {
            let (certificate, privateKey) = try ClientCertificate.material(for: key)
            clientConfiguration.certificateChain = [.certificate(certificate)]
            clientConfiguration.privateKey = .privateKey(privateKey)
        }
        let clientContext = try NIOSSLContext(configuration: clientConfiguration)
        let relayPort = relay.port
        let box = ProxyBox()
        let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { agent in
                ClientBootstrap(group: agent.eventLoop)
                    .channelInitializer { upstream in
                        upstream.eventLoop.makeCompletedFuture {
                            try upstream.pipeline.syncOperations.addHandlers([
                                try NIOSSLClientHandler(context: clientContext, serverHostname: "localhost"), Pipe(to: agent, record: nil),
                            ])
                        }
                    }
                    .connect(host: "127.0.0.1", port: relayPort)
                    .flatMapThrowing { upstream in
                        let tls = NIOSSLServerHandler(context: serverContext) { certificates, promise in
                            if let first = certificates.first { _ = box.proxy?.presented.withLock { $0 = AgentKeyCertificate.publicKey(of: first) } }
                            promise.succeed(.certificateVerified)
                        }
                        try agent.pipeline.syncOperations.addHandlers([
                            tls, Pipe(to: upstream) { bytes in _ = box.proxy?.seen.withLock { $0.writeImmutableBuffer(bytes) } },
                        ])
                    }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let proxy = InterceptingProxy(listener: listener)
        box.proxy = proxy
        return proxy
    }

    func close() async throws {
        try await self.listener.close()
    }

    /// Lets the channel initializers reach the proxy made after them.
    private final class ProxyBox: @unchecked Sendable {
        var proxy: InterceptingProxy?
    }

    /// Writes what one side reads to the other, recording it; closes the other at the end.
    private final class Pipe: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let partner: any Channel
        let record: (@Sendable (ByteBuffer) -> Void)?
        init(to partner: any Channel, record: (@Sendable (ByteBuffer) -> Void)?) {
            self.partner = partner
            self.record = record
        }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let bytes = self.unwrapInboundIn(data)
            self.record?(bytes)
            self.partner.writeAndFlush(bytes, promise: nil)
        }
        func channelInactive(context: ChannelHandlerContext) { self.partner.close(promise: nil) }
        func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
    }
}
