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
    /// The certificate both ports present; a renewal replaces it (``renewCertificateIfDue(now:)``).
    let certificate: ServingCertificate
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
        relay: Relay, group: MultiThreadedEventLoopGroup, certificate: ServingCertificate, relayChannel: any Channel, housekeeping: [RepeatedTask],
        adminChannel: NIOLockedValueBox<(any Channel)?>, adminReady: AsyncStream<Void>, services: [any Service]
    ) {
        self.relay = relay
        self.group = group
        self.certificate = certificate
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
        FileDescriptorBudget.apply(configuration: configuration, logger: logger)
        // Records a crash left open are closed at their last checkpoint before any new
        // session can start (DESIGN.md "Usage history"). Only this node's: in a store that
        // several nodes share, another node's open records are its live sessions.
        let recovered = try store.closeInterruptedSessions(relayNode: configuration.nodeName, reason: .relayRestart, actor: "relay")
        if recovered > 0 {
            logger.notice("closed usage records left open by an earlier run", metadata: ["sessions": "\(recovered)", "reason": "relay_restart"])
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: configuration.eventLoopThreads)
        // Logins on one pool, long and batched store work on another: a purge or an
        // export never holds up a credential check (docs/ARCHITECTURE.md).
        let threadPool = NIOThreadPool(numberOfThreads: 2)
        threadPool.start()
        let backgroundPool = NIOThreadPool(numberOfThreads: 2)
        backgroundPool.start()
        let relay = Relay(
            configuration: configuration, store: store, eventLoopGroup: group, threadPool: threadPool, backgroundPool: backgroundPool,
            metrics: RelayMetrics(), logger: logger, now: now
        )
        do {
            let certificate = try ServingCertificate(tls)
            let relayChannel = try await Self.bindRelay(relay: relay, certificate: certificate, group: group)
            let housekeeping = group.next().scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in
                relay.sweep()
            }
            let interval = configuration.credentialCheckInterval
            let checkLoop = group.next()
            let credentialCheck = checkLoop.scheduleRepeatedAsyncTask(initialDelay: interval, delay: interval) { _ in
                threadPool.runIfActive(eventLoop: checkLoop) { relay.checkCredentials() }
            }
            var tasks = [housekeeping, credentialCheck]
            if let trim = Self.heapTrimming(relay: relay, threadPool: backgroundPool, loop: group.next()) { tasks.append(trim) }
            var adminTLS = tls.serverConfiguration(applicationProtocols: ["http/1.1"])
            if tls.development != nil {
                // The self-signed certificate is renewed while the node runs (DevelopmentCertificate).
                adminTLS.sslContextCallback = { _, promise in promise.succeed(certificate.adminOverride()) }
            }
            let adminReady = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
            let adminBox = NIOLockedValueBox<(any Channel)?>(nil)
            let admin = try AdminServer.make(relay: relay, tls: adminTLS) { channel in
                adminBox.withLockedValue { $0 = channel }
                adminReady.continuation.yield()
            }
            let lifecycle = NodeLifecycle()
            let services: [any Service] = [
                NodeResources(relay: relay, group: group),
                UsageRecorder(relay: relay, clock: clock, interval: configuration.usageCheckpointInterval),
                RetentionScheduler(
                    store: store, policy: configuration.retention, clock: clock, interval: configuration.purgeInterval, now: now,
                    threadPool: backgroundPool, logger: logger
                ),
                admin,
                lifecycle,
            ]
            let nodeBox = NIOLockedValueBox<RelayNode?>(nil)
            if tls.development != nil {
                let every = configuration.certificateCheckInterval
                let renewalLoop = group.next()
                tasks.append(
                    renewalLoop.scheduleRepeatedAsyncTask(initialDelay: every, delay: every) { _ in
                        backgroundPool.runIfActive(eventLoop: renewalLoop) {
                            do {
                                _ = try nodeBox.withLockedValue { $0 }?.renewCertificateIfDue(now: now())
                            } catch {
                                logger.error("cannot renew the self-signed certificate; it is tried again later", metadata: ["error": "\(error)"])
                            }
                        }
                    })
            }
            let node = RelayNode(
                relay: relay, group: group, certificate: certificate, relayChannel: relayChannel, housekeeping: tasks, adminChannel: adminBox,
                adminReady: adminReady.stream, services: services
            )
            lifecycle.node.withLockedValue { $0 = node }
            nodeBox.withLockedValue { $0 = node }
            return node
        } catch {
            try? await threadPool.shutdownGracefully()
            try? await backgroundPool.shutdownGracefully()
            try? await group.shutdownGracefully()
            throw error
        }
    }

    /// Gives freed memory back to the kernel after the live connection count fell
    /// (``HeapTrimPolicy``), on the thread pool: a trim walks the whole heap.
    private static func heapTrimming(relay: Relay, threadPool: NIOThreadPool, loop: any EventLoop) -> RepeatedTask? {
        guard relay.configuration.heapTrim.interval != nil, HeapTrim.isAvailable else { return nil }
        let policy = NIOLockedValueBox(relay.configuration.heapTrim)
        return loop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in
            let now = NIODeadline.now()
            let (peak, live) = relay.takeConnectionPeak()
            let due = policy.withLockedValue { policy in
                guard policy.observe(live: live, peak: peak, now: now) else { return false }
                policy.trimmed(live: live, now: now)
                return true
            }
            guard due else { return }
            threadPool.submit { state in
                guard state == .active else { return }
                let started = NIODeadline.now()
                let released = HeapTrim.trim()
                relay.metrics.heapTrims.increment()
                relay.logger.debug(
                    "gave free heap memory back to the kernel",
                    metadata: ["released": "\(released)", "milliseconds": "\((NIODeadline.now() - started).nanoseconds / 1_000_000)"]
                )
            }
        }
    }

    private static func bindRelay(relay: Relay, certificate: ServingCertificate, group: MultiThreadedEventLoopGroup) async throws -> any Channel {
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
                        // A client that offers no supportrelay/1 gets the TLS alert
                        // no_application_protocol (PROTOCOL.md §1; see ClientHelloALPN).
                        ALPNGate(accepting: RelayProtocol.alpnToken) { offer in
                            relay.logger.info("TLS refused: the client did not offer ALPN supportrelay/1", metadata: ["offered": "\(offer)"])
                        },
                        NIOSSLServerHandler(context: certificate.relayContext),
                        TLSHandshakeObserver(metrics: relay.metrics, logger: relay.logger),
                        // The transport-independent connection core (docs/ARCHITECTURE.md).
                        RelayConnectionHandler(environment: relay),
                    ])
                }
            }
        do {
            return try await bootstrap.bind(host: configuration.listen.host, port: configuration.listen.port).get()
        } catch {
            throw ConfigurationError(.listen, "cannot listen on \(configuration.listen): \(error); is another relay running there? choose another with --listen")
        }
    }

    /// Renews the self-signed certificate if it is due (``DevelopmentCertificate``) and
    /// serves the new one to new connections; logs the new fingerprint loudly, since agents
    /// that pin the old one cannot connect until they are given it. Returns whether it did.
    /// Blocking (files, key generation): the node calls it on its thread pool.
    @discardableResult
    func renewCertificateIfDue(now: Date) throws -> Bool {
        guard let development = self.certificate.tls.development,
            let (renewed, previous, reason) = try development.renewIfDue(now: now)
        else { return false }
        try self.certificate.replace(with: renewed)
        self.relay.logger.critical(
            "RENEWED the self-signed certificate: agents that pin the old fingerprint must be given the NEW one",
            metadata: ["reason": "\(reason)", "new_fingerprint": "\(renewed.fingerprint)", "old_fingerprint": "\(previous ?? "unknown")"]
        )
        return true
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

/// The relay's file descriptors: one per agent connection (`maximum_connections`), one per
/// admin connection (`admin_maximum_connections`, a budget of its own), and a reserve for
/// the database, the listeners and the event loops. At start the soft limit is raised
/// towards the hard one when it is lower than that sum (systemd's default soft limit is
/// 1024), and a limit that is still too low is logged with what to change.
enum FileDescriptorBudget {
    /// The database (a writer and readers, each with its `-wal`), listeners, standard streams, logs.
    static let reserve = 64

    /// Descriptors the configuration needs at most.
    static func needed(for configuration: RelayConfiguration) -> Int {
        configuration.maximumConnections + configuration.adminMaximumConnections + Self.reserve + 3 * configuration.eventLoopThreads
    }

    /// The soft limit to set for `needed` descriptors (nil: keep it), and how many would still be missing.
    static func plan(soft: Int, hard: Int, needed: Int) -> (raiseTo: Int?, shortfall: Int) {
        guard soft < needed else { return (nil, 0) }
        let target = min(hard, needed)
        return (target > soft ? target : nil, max(0, needed - max(soft, target)))
    }

    static func apply(configuration: RelayConfiguration, logger: Logger) {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return }
        let clamp = { (value: rlim_t) in value >= rlim_t(Int.max) ? Int.max : Int(value) }
        let needed = Self.needed(for: configuration)
        let (raiseTo, shortfall) = Self.plan(soft: clamp(limit.rlim_cur), hard: clamp(limit.rlim_max), needed: needed)
        if let raiseTo {
            var raised = limit
            raised.rlim_cur = rlim_t(raiseTo)
            if setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &raised) == 0 {
                logger.info("raised the open-file limit", metadata: ["from": "\(limit.rlim_cur)", "to": "\(raiseTo)"])
            }
        }
        if shortfall > 0 {
            logger.warning(
                "the open-file limit is below what the configuration needs: agents may fail to connect before maximum_connections is reached; raise LimitNOFILE (ulimit -n) or lower maximum_connections",
                metadata: [
                    "limit": "\(clamp(limit.rlim_max))", "needed": "\(needed)", "maximum_connections": "\(configuration.maximumConnections)",
                    "admin_maximum_connections": "\(configuration.adminMaximumConnections)", "reserve": "\(Self.reserve + 3 * configuration.eventLoopThreads)",
                ]
            )
        }
    }
}
