import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NIOPosix
import NIOSSL
import RelayClient
import RelayTestSupport
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

    // MARK: The guard on a channel, on virtual time

    /// Admin connections with only the guard in their pipeline, on one EmbeddedEventLoop
    /// whose clock moves only when the test says.
    struct GuardedConnections {
        let loop = EmbeddedEventLoop()
        let budget: AdminConnectionBudget
        let metrics = RelayMetrics()
        let limits: AdminConnectionDeadlines.Limits

        init(maximum: Int = 64, limits: AdminConnectionDeadlines.Limits = AdminLimitsTests.limits) {
            self.budget = AdminConnectionBudget(maximum: maximum)
            self.limits = limits
        }

        func connect() throws -> EmbeddedChannel {
            var logger = Logger(label: "admin-guard-test")
            logger.logLevel = .critical
            let channel = EmbeddedChannel(
                handler: AdminConnectionGuard(budget: self.budget, limits: self.limits, metrics: self.metrics, logger: logger), loop: self.loop)
            try channel.connect(to: SocketAddress(ipAddress: "192.0.2.80", port: 443)).wait()
            return channel
        }

        var open: Double { self.metrics.value("relay_admin_connections_open") }
        var refused: Double { self.metrics.value("relay_admin_connections_refused_total") }
        var timeouts: Double { self.metrics.value("relay_admin_timeouts_total") }
    }

    @Test func theGuardClosesConnectionsOverTheCapAtOnceAndGivesSlotsBack() throws {
        let admin = GuardedConnections(maximum: 2)
        let first = try admin.connect()
        let second = try admin.connect()
        let third = try admin.connect()
        #expect(first.isActive && second.isActive)
        #expect(!third.isActive, "over the cap: closed at once")
        #expect(admin.refused == 1 && admin.open == 2 && admin.budget.count == 2)
        // A closed connection gives its slot back.
        try first.close().wait()
        #expect(admin.open == 1 && admin.budget.count == 1)
        let fourth = try admin.connect()
        #expect(fourth.isActive && admin.refused == 1)
        _ = try? second.finish()
        _ = try? fourth.finish()
    }

    /// The handshake deadline counts from connect: closed at 10 s exactly, counted as a
    /// timeout, and its slot comes back.
    @Test func theGuardClosesASilentConnectionAtTheHandshakeDeadline() throws {
        let admin = GuardedConnections()
        let silent = try admin.connect()
        // Bytes that are not a request part yet (a TLS ClientHello in the making) change nothing.
        try silent.writeInbound(ByteBuffer(bytes: [0x16, 0x03, 0x01]))
        admin.loop.advanceTime(by: .seconds(10) - .nanoseconds(1))
        #expect(silent.isActive)
        admin.loop.advanceTime(by: .nanoseconds(1))
        #expect(!silent.isActive)
        #expect(admin.timeouts == 1 && admin.open == 0 && admin.budget.count == 0)
    }

    /// A response the client does not read: the stalled-reader timer starts when the socket
    /// turns unwritable, stops when it drains (a timer left running would close a reader
    /// that stalls again too early), and closes the connection after 60 s of stall.
    @Test func theGuardClosesAReaderThatStopsReadingAfterTheStallTimeout() throws {
        var limits = Self.limits
        limits.handshakeTimeout = .hours(1)  // only the stall timer here
        let admin = GuardedConnections(limits: limits)
        let reader = try admin.connect()
        func writable(_ isWritable: Bool) {
            reader.isWritable = isWritable
            reader.pipeline.fireChannelWritabilityChanged()
        }
        writable(false)  // t = 0
        admin.loop.advanceTime(by: .seconds(30))
        writable(true)  // t = 30: the client reads again
        admin.loop.advanceTime(by: .seconds(20))
        writable(false)  // t = 50: and stalls again; the timer counts from here
        admin.loop.advanceTime(by: .seconds(60) - .nanoseconds(1))
        #expect(reader.isActive, "closed before 60 s of the second stall")
        admin.loop.advanceTime(by: .nanoseconds(1))
        #expect(!reader.isActive)
        #expect(admin.timeouts == 1 && admin.open == 0)
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

        /// TLS with the admin port's ALPN, then no request: the handshake runs, nothing more.
        /// Its socket resets instead of closing cleanly: the relay's TLS handler, closing
        /// it, would otherwise wait its 5 s shutdown timeout for a close_notify, and a
        /// relay stopping would wait with it.
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
            if let socket = channel as? any SocketOptionProvider {
                try? await socket.setSoLinger(linger(l_onoff: 1, l_linger: 0)).get()
            }
            return SilentConnection(channel: channel)
        }
    }

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

    /// Before the fix, 240 silent admin connections stayed open for good and made relay
    /// logins time out. Now at most the cap stays open, the rest are closed at once, agents
    /// log in meanwhile, and a connection that finished TLS but sends no request is closed at
    /// the request-head deadline. Over real sockets this checks that the guard sits in
    /// Hummingbird's pipeline where it sees connections and the TLS handshake; its timers are
    /// tested on virtual time above. Every wait here ends on a closed connection or a
    /// counter, never after a fixed time.
    @Test(.timeLimit(.minutes(1))) func silentAdminConnectionsAreCappedAndTimedOut() async throws {
        try await TestRelay.with({
            $0.adminMaximumConnections = 8
            // Long: the held connections must not time out during the test (the handshake
            // deadline is tested on virtual time)...
            $0.adminHandshakeTimeout = .seconds(120)
            // ...short: nothing has to happen before it, so it cannot make the test flaky.
            $0.adminHeaderTimeout = .milliseconds(300)
            $0.adminIdleTimeout = .seconds(10)
        }) { relay in
            let port = relay.adminPort
            var held: [SilentConnection] = []
            for _ in 0..<8 { held.append(try await SilentConnection.tcp(port: port)) }
            #expect(await eventually { relay.metric("relay_admin_connections_open") == 8 })

            // Beyond the cap: closed at once (long before any deadline).
            var refused: [SilentConnection] = []
            for _ in 0..<40 { refused.append(try await SilentConnection.tcp(port: port)) }
            for connection in refused { try await connection.channel.closeFuture.get() }
            #expect(relay.metric("relay_admin_connections_refused_total") == 40)
            #expect(!held.contains { $0.isClosed })

            // An agent logs in while the admin port is full.
            let issued = try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { viewer in
                _ = try await viewer.hello(role: .viewer)
                return try await viewer.authenticate(viewer: ViewerAuth(token: relay.acme.engineerToken, request: .newSupportCode))
            }
            guard case .codeIssued = issued else { throw TestFailure("no code issued: \(issued)") }

            // The slots come back when the held ones go.
            for connection in held { try await connection.channel.close() }
            #expect(await eventually { relay.metric("relay_admin_connections_open") == 0 })
            #expect(relay.metric("relay_admin_timeouts_total") == 0)

            // TLS done but no request: closed at the request-head deadline. Only the guard
            // closes it (a timeout), and only the request-head deadline can have: the
            // handshake deadline is minutes away.
            let quiet = try await SilentConnection.tls(port: port, trust: relay.authority.certificate)
            try await quiet.channel.closeFuture.get()
            #expect(relay.metric("relay_admin_timeouts_total") == 1)

            // And the admin API answers again.
            #expect(try await AdminAPITests.get(relay, "/healthz").status == .ok)
        }
    }
}
