import Foundation
import Logging
import NIOCore
import NIOPosix
import RelayStore
import ServiceLifecycle
import Testing

@testable import RelayServer

/// `RelayNode` is itself the Service (issue 11 item 7): it binds in `run()`, stops on a
/// graceful shutdown, and then releases its pools and event loops. Nothing holds the node
/// (before, the `NodeLifecycle` service held the node that held it, and the cycle was cut
/// by hand at shutdown).
@Suite struct RelayNodeServiceTests {
    @Test(.timeLimit(.minutes(1))) func theNodeBindsInRunAndIsReleasedWhenItStops() async throws {
        try await Self.withFolder { data in
            weak var released: RelayNode?
            let relay: Relay
            do {
                let node = try Self.node(data: data)
                released = node
                relay = node.relay
                // Made, not run: nothing listens yet.
                #expect(node.adminAddress == nil)
                let group = ServiceGroup(configuration: .init(services: [.init(service: node)], logger: Self.logger))
                try await withThrowingTaskGroup(of: Void.self) { tasks in
                    tasks.addTask { try await group.run() }
                    let admin = await node.adminListening()
                    #expect(admin?.port.map { $0 > 0 } == true)
                    // The agents' port is bound before the admin API starts.
                    #expect(node.relayAddress.port.map { $0 > 0 } == true)
                    await group.triggerGracefulShutdown()
                    try await tasks.waitForAll()
                }
            }
            // Freed once the service group's finished tasks are: the runtime may let go of
            // a finished child task's closure a moment after the group returns, on a loaded
            // machine (seen in the full suite). A cycle would never free it.
            #expect(await eventually(within: .seconds(5)) { released == nil })
            // Its pools are shut down with it.
            await #expect(throws: (any Error).self) { try await relay.backgroundPool.runIfActive {} }
            await #expect(throws: (any Error).self) { try await relay.threadPool.runIfActive {} }
        }
    }

    @Test(.timeLimit(.minutes(1))) func aPortInUseEndsRunWithAConfigurationErrorAndReleasesTheThreads() async throws {
        try await Self.withTakenPort { port, _ in
            try await Self.withFolder { data in
                let node = try Self.node(data: data) { $0.listen = ListenAddress(host: "127.0.0.1", port: port) }
                let error = await #expect(throws: ConfigurationError.self) { try await node.run() }
                #expect(error?.kind == .listen)
                #expect(error?.message.contains("cannot listen on 127.0.0.1:\(port)") == true)
                #expect(error?.message.contains("--listen") == true)
                // Whoever waits for the ports hears that they will not listen.
                #expect(await node.adminListening() == nil)
                await #expect(throws: (any Error).self) { try await node.relay.backgroundPool.runIfActive {} }
            }
        }
    }

    /// The admin port is bound after the agents' port: when it fails, the node's group is
    /// cancelled, the agents' port closes again, and the node still releases its threads.
    @Test(.timeLimit(.minutes(1))) func anAdminPortInUseClosesTheAgentsPortAndEndsRun() async throws {
        try await Self.withTakenPort { port, loops in
            try await Self.withFolder { data in
                let node = try Self.node(data: data) { $0.adminListen = ListenAddress(host: "127.0.0.1", port: port) }
                let error = await #expect(throws: ConfigurationError.self) { try await node.run() }
                #expect(error?.kind == .listen)
                #expect(error?.message.contains("--admin-listen") == true)
                let agents = try #require(node.relayAddress.port)
                let refused = await #expect(throws: (any Error).self) {
                    try await ClientBootstrap(group: loops).connect(host: "127.0.0.1", port: agents).get().close()
                }
                #expect(refused != nil)
                await #expect(throws: (any Error).self) { try await node.relay.threadPool.runIfActive {} }
            }
        }
    }

    /// Runs `body` with a loopback port that something else listens on, and the event
    /// loops of that listener; closes both afterwards.
    static func withTakenPort(_ body: (Int, MultiThreadedEventLoopGroup) async throws -> Void) async throws {
        let loops = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let taken = try await ServerBootstrap(group: loops).bind(host: "127.0.0.1", port: 0).get()
        let port = try #require(taken.localAddress?.port)
        try await withStopping(
            port,
            stop: { _ in
                try? await taken.close()
                try? await loops.shutdownGracefully()
            }
        ) { port in try await body(port, loops) }
    }

    static var logger: Logger {
        var logger = Logger(label: "relay-node-test")
        logger.logLevel = .critical
        return logger
    }

    /// A node on loopback with the self-signed certificate (so the renewal task runs too).
    static func node(data: String, _ configure: (inout RelayConfiguration) -> Void = { _ in }) throws -> RelayNode {
        let store = try SQLStore(dataDirectory: data)
        let (tls, _, _) = try DevelopmentCertificate(dataDirectory: data).loadOrRenew()
        var configuration = RelayConfiguration()
        configuration.listen = ListenAddress(host: "127.0.0.1", port: 0)
        configuration.adminListen = ListenAddress(host: "127.0.0.1", port: 0)
        configuration.dataDirectory = data
        configuration.nodeName = "service-test"
        configuration.eventLoopThreads = 1
        configuration.shutdownGrace = .seconds(1)
        configure(&configuration)
        return try RelayNode(configuration: configuration, tls: tls, store: store, logger: Self.logger)
    }

    static func withFolder<T>(_ body: (String) async throws -> T) async throws -> T {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("relay-node-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try await body(path)
    }
}
