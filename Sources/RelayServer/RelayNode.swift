import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import RelayStore
import RelayWire
import ServiceLifecycle

/// A running relay: the TLS listener for agents, housekeeping, and the services that run
/// beside it — the usage recorder, the retention purge, the admin API. `relay-server
/// serve` runs one in a ServiceGroup; tests start them on port 0.
///
/// ``start(configuration:tls:store:logger:clock:now:)`` binds the agents' port at once;
/// everything else runs in ``services``, which a ServiceGroup runs and shuts down in
/// reverse order: the node first (Bye to every agent), then the admin API and the purge,
/// then the usage recorder (records closed), then the thread pool and event loops.
final class RelayNode: Sendable {
    let relay: Relay
    let group: MultiThreadedEventLoopGroup
    private let relayChannel: any Channel
    /// The 1 s sweep and the credential check.
    private let housekeeping: [RepeatedTask]
    private let adminChannel: NIOLockedValueBox<(any Channel)?>
    private let adminReady: AsyncStream<Void>
    /// The services to run, in start order.
    let services: [any Service]

    /// The address agents connect to (with the real port when 0 was asked for).
    var relayAddress: SocketAddress { self.relayChannel.localAddress! }

    /// The admin API's address once it listens (with the real port when 0 was asked for).
    var adminAddress: SocketAddress? { self.adminChannel.withLockedValue { $0?.localAddress } }

    /// Waits until the admin API listens; nil if it stopped first.
    func adminListening() async -> SocketAddress? {
        for await _ in self.adminReady { break }
        return self.adminAddress
    }

    private init(
        relay: Relay, group: MultiThreadedEventLoopGroup, relayChannel: any Channel, housekeeping: [RepeatedTask],
        adminChannel: NIOLockedValueBox<(any Channel)?>, adminReady: AsyncStream<Void>, services: [any Service]
    ) {
        self.relay = relay
        self.group = group
        self.relayChannel = relayChannel
        self.housekeeping = housekeeping
        self.adminChannel = adminChannel
        self.adminReady = adminReady
        self.services = services
    }

    static func start(
        configuration: RelayConfiguration, tls: RelayTLS, store: any AccountStore & UsageStore, logger: Logger,
        clock: some Clock<Duration> = ContinuousClock(), now: @escaping @Sendable () -> Date = { Date() }
    ) async throws -> RelayNode {
        try configuration.validate()
        // Records a crash left open are closed at their last checkpoint before any new
        // session can start (DESIGN.md "Usage history"). Only this node's: in a store that
        // several nodes share, another node's open records are its live sessions.
        let recovered = try store.closeInterruptedSessions(relayNode: configuration.nodeName, reason: ByeReason.relayRestart.name, actor: "relay")
        if recovered > 0 {
            logger.notice("closed usage records left open by an earlier run", metadata: ["sessions": "\(recovered)", "reason": "relay_restart"])
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: configuration.eventLoopThreads)
        let threadPool = NIOThreadPool(numberOfThreads: 2)
        threadPool.start()
        let relay = Relay(configuration: configuration, store: store, eventLoopGroup: group, threadPool: threadPool, metrics: RelayMetrics(), logger: logger)
        do {
            let sslContext = try NIOSSLContext(configuration: tls.serverConfiguration())
            let relayChannel = try await Self.bindRelay(relay: relay, sslContext: sslContext, group: group)
            let housekeeping = group.next().scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in
                relay.sweep()
            }
            let interval = configuration.credentialCheckInterval
            let checkLoop = group.next()
            let credentialCheck = checkLoop.scheduleRepeatedAsyncTask(initialDelay: interval, delay: interval) { _ in
                threadPool.runIfActive(eventLoop: checkLoop) { relay.checkCredentials() }
            }
            let adminReady = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
            let adminBox = NIOLockedValueBox<(any Channel)?>(nil)
            let admin = try AdminServer.make(relay: relay, tls: tls.serverConfiguration(applicationProtocols: ["http/1.1"])) { channel in
                adminBox.withLockedValue { $0 = channel }
                adminReady.continuation.yield()
            }
            let lifecycle = NodeLifecycle()
            let services: [any Service] = [
                NodeResources(relay: relay, group: group),
                UsageRecorder(relay: relay, clock: clock, interval: configuration.usageCheckpointInterval),
                RetentionScheduler(
                    store: store, policy: configuration.retention, clock: clock, interval: configuration.purgeInterval, now: now,
                    threadPool: threadPool, logger: logger
                ),
                admin,
                lifecycle,
            ]
            let node = RelayNode(
                relay: relay, group: group, relayChannel: relayChannel, housekeeping: [housekeeping, credentialCheck], adminChannel: adminBox,
                adminReady: adminReady.stream, services: services
            )
            lifecycle.node.withLockedValue { $0 = node }
            return node
        } catch {
            try? await threadPool.shutdownGracefully()
            try? await group.shutdownGracefully()
            throw error
        }
    }

    private static func bindRelay(relay: Relay, sslContext: NIOSSLContext, group: MultiThreadedEventLoopGroup) async throws -> any Channel {
        let configuration = relay.configuration
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            // Input events are small and latency-bound.
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.writeBufferWaterMark, value: .init(low: configuration.writeBufferLowWater, high: configuration.writeBufferHighWater))
            // At most 2 socket reads (of up to 64 KiB) per connection each time its event loop
            // comes round, not NIO's 4: a busy connection then holds the loop half as long, and
            // a small frame on another connection waits half as long behind it. Measured
            // against 1 and 4 in benchmarks/RESULTS.md ("Latency with the probe in a process
            // of its own"): the same bytes per CPU-second as 4, a shorter latency tail.
            .childChannelOption(.maxMessagesPerRead, value: 2)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([
                        NIOSSLServerHandler(context: sslContext),
                        IdleStateHandler(readTimeout: configuration.idleTimeout),
                        RelayConnectionHandler(relay: relay),
                    ])
                }
            }
        do {
            return try await bootstrap.bind(host: configuration.listen.host, port: configuration.listen.port).get()
        } catch {
            throw StoreError("cannot listen on \(configuration.listen): \(error); is another relay running there? choose another with --listen")
        }
    }

    /// Ends every session with Bye `relay_shutdown`, waits up to `grace` for connections
    /// to close, then stops listening. The services that follow close the records.
    func shutdown(grace: TimeAmount) async {
        try? await self.relayChannel.close()
        self.relay.beginShutdown()
        let deadline = NIODeadline.now() + grace
        while self.relay.openConnections > 0, NIODeadline.now() < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        for task in self.housekeeping { task.cancel() }
    }
}
