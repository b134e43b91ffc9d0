import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import RelayClient
import RelayWire
import Testing

@testable import RelayServer

/// Issue 10 item 10: the admin port's connections have deadlines and a cap of their own,
/// so silent connections to it can neither pile up nor take what relay agents need.
@Suite struct AdminLimitsTests {
    static let limits = AdminConnectionDeadlines.Limits(handshakeTimeout: .seconds(10), headerTimeout: .seconds(5), stallTimeout: .seconds(60))

    // MARK: The deadlines, in memory

    @Test func aConnectionOverTheCapIsClosedAtOnce() {
        var deadlines = AdminConnectionDeadlines(limits: Self.limits)
        #expect(deadlines.connected(admitted: false) == .close(.connectionLimit))
        #expect(deadlines.handshakeCompleted() == .none)
        #expect(deadlines.deadlinePassed() == .none)
    }

    @Test func handshakeThenRequestHeadMustArriveInTime() {
        var silent = AdminConnectionDeadlines(limits: Self.limits)
        #expect(silent.connected(admitted: true) == .startDeadline(.seconds(10)))
        #expect(silent.deadlinePassed() == .close(.handshakeTimeout))

        var noRequest = AdminConnectionDeadlines(limits: Self.limits)
        _ = noRequest.connected(admitted: true)
        #expect(noRequest.handshakeCompleted() == .startDeadline(.seconds(5)))
        #expect(noRequest.deadlinePassed() == .close(.headerTimeout))

        var served = AdminConnectionDeadlines(limits: Self.limits)
        _ = served.connected(admitted: true)
        _ = served.handshakeCompleted()
        #expect(served.requestPartArrived() == .cancelDeadline)
        #expect(served.requestPartArrived() == .none)  // body parts, later requests: Hummingbird's idle timeout
        #expect(served.deadlinePassed() == .none)  // a timer that fired just as it was cancelled
        #expect(served.phase == .serving)
    }

    @Test func aReaderThatStopsReadingIsClosedAfterTheStallTimeout() {
        var deadlines = AdminConnectionDeadlines(limits: Self.limits)
        _ = deadlines.connected(admitted: true)
        _ = deadlines.handshakeCompleted()
        _ = deadlines.requestPartArrived()
        #expect(deadlines.writabilityChanged(isWritable: false) == .startStallTimer(.seconds(60)))
        #expect(deadlines.writabilityChanged(isWritable: false) == .none)
        #expect(deadlines.writabilityChanged(isWritable: true) == .cancelStallTimer)
        #expect(deadlines.stallPassed() == .none)
        _ = deadlines.writabilityChanged(isWritable: false)
        #expect(deadlines.stallPassed() == .close(.stalled))
        #expect(deadlines.phase == .closed)
    }

    @Test func theBudgetNeverAdmitsMoreThanItsMaximum() async {
        let budget = AdminConnectionBudget(maximum: 64)
        let admitted = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<500 { group.addTask { budget.admit() } }
            return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(admitted == 64)
        #expect(budget.count == 64)
        budget.release()
        #expect(budget.admit())
        #expect(!budget.admit())
    }

    @Test func theOpenFileLimitIsRaisedTowardsWhatTheConfigurationNeeds() {
        #expect(FileDescriptorBudget.plan(soft: 1024, hard: 524_288, needed: 20_200) == (20_200, 0))
        #expect(FileDescriptorBudget.plan(soft: 1024, hard: 4096, needed: 20_200) == (4096, 16_104))
        #expect(FileDescriptorBudget.plan(soft: 65_536, hard: 65_536, needed: 20_200) == (nil, 0))
        #expect(FileDescriptorBudget.plan(soft: 4096, hard: 4096, needed: 20_200) == (nil, 16_104))
        var configuration = RelayConfiguration()
        configuration.maximumConnections = 20_000
        configuration.adminMaximumConnections = 64
        configuration.eventLoopThreads = 2
        #expect(FileDescriptorBudget.needed(for: configuration) == 20_000 + 64 + FileDescriptorBudget.reserve + 6)
    }

    // MARK: Over real sockets

    /// A TCP connection to the admin port that says nothing; `closed` turns true when the
    /// relay closes it.
    final class SilentConnection: Sendable {
        let channel: any Channel
        let closed = NIOLockedValueBox(false)

        init(channel: any Channel) {
            self.channel = channel
            channel.closeFuture.whenComplete { [closed] _ in closed.withLockedValue { $0 = true } }
        }

        var isClosed: Bool { self.closed.withLockedValue { $0 } }

        /// Plain TCP, no TLS.
        static func tcp(port: Int) async throws -> SilentConnection {
            SilentConnection(channel: try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port).get())
        }

        /// TLS with the admin port's ALPN, handshake finished, then no request.
        static func tls(port: Int, trust: NIOSSLCertificate) async throws -> SilentConnection {
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.trustRoots = .certificates([trust])
            configuration.applicationProtocols = ["http/1.1"]
            let context = try NIOSSLContext(configuration: configuration)
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: "localhost"))
                    }
                }
                .connect(host: "127.0.0.1", port: port).get()
            // The negotiated version is known once the handshake is done.
            let done = await eventually(within: .seconds(5)) { (try? await channel.nioSSL_tlsVersion().get()) != nil }
            guard done else { throw TestFailure("the admin port did not finish the TLS handshake") }
            return SilentConnection(channel: channel)
        }
    }

    /// Before the fix, 240 silent admin connections stayed open for good and made relay
    /// logins time out. Now: at most the cap stays open, each only until its deadline, the
    /// rest are closed at once, and agents log in meanwhile.
    /// Issue 11 item 5: an admin port already taken ended `serve` with Hummingbird's bare
    /// socket error; now it is a ConfigurationError that names the address and the flag.
    @Test(.timeLimit(.minutes(1))) func anAdminAddressInUseIsAConfigurationError() async throws {
        try await TestRelay.with { relay in
            let tls = relay.node.certificate.tls.serverConfiguration(applicationProtocols: ["http/1.1"])
            // The relay port is taken: by the relay itself.
            let taken = ListenAddress(host: "127.0.0.1", port: relay.port)
            let admin = try AdminServer.make(relay: relay.node.relay, tls: tls, address: taken) { _ in }
            let error = await #expect(throws: ConfigurationError.self) { try await admin.run() }
            #expect(error?.kind == .listen)
            #expect(error?.message.contains("cannot listen for the admin API on 127.0.0.1:\(relay.port)") == true)
            #expect(error?.message.contains("--admin-listen") == true)
        }
    }

    @Test(.timeLimit(.minutes(1))) func silentAdminConnectionsAreCappedAndTimedOut() async throws {
        try await TestRelay.with({
            $0.adminMaximumConnections = 8
            $0.adminHandshakeTimeout = .seconds(3)
            $0.adminHeaderTimeout = .seconds(3)
            $0.adminIdleTimeout = .seconds(10)
        }) { relay in
            let port = relay.adminPort
            var held: [SilentConnection] = []
            for _ in 0..<8 { held.append(try await SilentConnection.tcp(port: port)) }
            #expect(await eventually { relay.metric("relay_admin_connections_open") == 8 })

            // Beyond the cap: closed at once, long before the handshake deadline.
            let clock = ContinuousClock()
            let started = clock.now
            var refused: [SilentConnection] = []
            for _ in 0..<40 { refused.append(try await SilentConnection.tcp(port: port)) }
            #expect(await eventually(within: .seconds(2)) { refused.allSatisfy(\.isClosed) })
            #expect(clock.now - started < .seconds(3))
            #expect(relay.metric("relay_admin_connections_refused_total") == 40)
            #expect(!held.contains { $0.isClosed })

            // An agent logs in while the admin port is full.
            let issued = try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { viewer in
                _ = try await viewer.hello(role: .viewer)
                return try await viewer.authenticate(viewer: ViewerAuth(token: relay.acme.engineerToken, request: .newSupportCode))
            }
            guard case .codeIssued = issued else { throw TestFailure("no code issued: \(issued)") }

            // The silent ones meet the handshake deadline; the slots come back.
            #expect(await eventually(within: .seconds(10)) { held.allSatisfy(\.isClosed) })
            #expect(await eventually { relay.metric("relay_admin_connections_open") == 0 })
            #expect(relay.metric("relay_admin_timeouts_total") == 8)

            // TLS done but no request: closed at the request-head deadline.
            let quiet = try await SilentConnection.tls(port: port, trust: try relay.authority.nioCertificate())
            #expect(!quiet.isClosed)
            #expect(await eventually(within: .seconds(10)) { quiet.isClosed })
            #expect(relay.metric("relay_admin_timeouts_total") == 9)

            // And the admin API answers again.
            #expect(try await AdminAPITests.get(relay, "/healthz").status == .ok)
            for connection in held + refused + [quiet] { try? await connection.channel.close() }
        }
    }
}
