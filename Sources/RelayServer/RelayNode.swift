import Logging
import NIOCore
import NIOPosix
import NIOSSL
import RelayWire

/// A running relay: the TLS listener for agents, the admin endpoint, and housekeeping.
/// `relay-server serve` runs one; tests start them on port 0.
final class RelayNode: Sendable {
    let relay: Relay
    let group: MultiThreadedEventLoopGroup
    private let relayChannel: any Channel
    private let adminChannel: any Channel
    private let housekeeping: RepeatedTask

    /// The address agents connect to (with the real port when 0 was asked for).
    var relayAddress: SocketAddress { self.relayChannel.localAddress! }
    var adminAddress: SocketAddress { self.adminChannel.localAddress! }

    private init(relay: Relay, group: MultiThreadedEventLoopGroup, relayChannel: any Channel, adminChannel: any Channel, housekeeping: RepeatedTask) {
        self.relay = relay
        self.group = group
        self.relayChannel = relayChannel
        self.adminChannel = adminChannel
        self.housekeeping = housekeeping
    }

    static func start(configuration: RelayConfiguration, tls: RelayTLS, store: AccountStore, logger: Logger) async throws -> RelayNode {
        try configuration.validate()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: configuration.eventLoopThreads)
        let threadPool = NIOThreadPool(numberOfThreads: 2)
        threadPool.start()
        let relay = Relay(configuration: configuration, store: store, threadPool: threadPool, metrics: RelayMetrics(), logger: logger)
        do {
            let sslContext = try NIOSSLContext(configuration: tls.serverConfiguration())
            let relayChannel = try await Self.bindRelay(relay: relay, sslContext: sslContext, group: group)
            let adminContext = try NIOSSLContext(configuration: tls.serverConfiguration(applicationProtocols: ["http/1.1"]))
            let adminChannel = try await AdminEndpoint.bind(relay: relay, sslContext: adminContext, group: group)
            let housekeeping = group.next().scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in
                relay.sweep()
            }
            return RelayNode(relay: relay, group: group, relayChannel: relayChannel, adminChannel: adminChannel, housekeeping: housekeeping)
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
    /// to close, then stops listening and releases the event loops.
    func shutdown(grace: TimeAmount = .seconds(5)) async {
        try? await self.relayChannel.close()
        self.relay.beginShutdown()
        let deadline = NIODeadline.now() + grace
        while self.relay.openConnections > 0, NIODeadline.now() < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        self.housekeeping.cancel()
        try? await self.adminChannel.close()
        self.relay.flushAccessLog()
        try? await self.relay.threadPool.shutdownGracefully()
        try? await self.group.shutdownGracefully()
    }
}
