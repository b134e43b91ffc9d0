import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import RelayStore
import RelayWire
import ServiceLifecycle

/// A relay node as one Service, as Hummingbird's `Application` is: made by ``init``, it
/// binds the agents' port in ``run()`` and runs until a graceful shutdown (SIGTERM/SIGINT
/// in `relay-server serve`; `triggerGracefulShutdown()` in tests).
///
/// ``run()`` first closes the records a crash left open, binds the agents' port, starts
/// the housekeeping (the 1 s sweep, the credential check, heap trims, the self-signed
/// certificate's renewal), and then runs the usage recorder, the retention purge, the admin
/// API and the agents' port in a ServiceGroup of its own. A graceful shutdown stops them in
/// reverse order: the agents' port first (Bye `relay_shutdown` to every agent, up to
/// `shutdown_grace` for them to close, the housekeeping stopped), then the admin API and
/// the purge, then the usage recorder (records still open closed); last, the node writes
/// the access log's remaining entries and releases its thread pools and event loops.
///
/// The node owns its resources and nothing owns the node: no service holds it, so there is
/// no cycle to break at shutdown. Run it once; a node never run keeps its threads.
final class RelayNode: Service, Sendable {
    let relay: Relay
    let group: MultiThreadedEventLoopGroup
    /// The certificate both ports present; a renewal replaces it (``renewCertificateIfDue(now:)``).
    let certificate: ServingCertificate
    /// The browsers' sign-in, console data and WebSocket logins on the web port.
    let web: WebApplication
    /// The services that run beside the agents' port, in start order.
    private let companions: [any Service]
    /// Where the agents' port listens, from the moment ``run()`` has bound it (kept after it closes).
    private let boundRelayAddress = NIOLockedValueBox<SocketAddress?>(nil)
    private let adminChannel: NIOLockedValueBox<(any Channel)?>
    private let adminReady: AsyncStream<Void>
    private let adminReadyContinuation: AsyncStream<Void>.Continuation
    private let now: @Sendable () -> Date

    /// The address agents connect to (with the real port when 0 was asked for). The node
    /// binds it in ``run()`` before it starts the admin API, so it is there once
    /// ``adminListening()`` has returned an address; reading it earlier is a programming error.
    var relayAddress: SocketAddress {
        guard let address = self.boundRelayAddress.withLockedValue({ $0 }) else {
            preconditionFailure("RelayNode.relayAddress was read before the node listens: wait for adminListening() first")
        }
        return address
    }

    /// The admin API's address once it listens (with the real port when 0 was asked for).
    var adminAddress: SocketAddress? { self.adminChannel.withLockedValue { $0?.localAddress } }

    /// Waits until the admin API listens (the agents' port listens by then too); nil if the
    /// node stopped first, for instance because it could not bind. One caller at a time.
    func adminListening() async -> SocketAddress? {
        if let address = self.adminAddress { return address }
        for await _ in self.adminReady { break }
        return self.adminAddress
    }

    /// A node ready to run: checks the configuration, makes the thread pools, event loops
    /// and certificate, and the services that run beside the agents' port. Binds nothing:
    /// ``run()`` does. `clock` paces the usage checkpoints and the purge; `now` is the wall
    /// clock of every record the node writes and of the retention rule.
    init(
        configuration: RelayConfiguration, tls: RelayTLS, store: any AccountStore & UsageStore & AdminStore, logger: Logger,
        clock: some Clock<Duration> = ContinuousClock(), now: @escaping @Sendable () -> Date = { Date() }
    ) throws {
        try configuration.validate()
        let cluster = try Self.membership(configuration: configuration, store: store, logger: logger, now: now())
        FileDescriptorBudget.apply(configuration: configuration, logger: logger)
        let certificate = try ServingCertificate(tls)
        var adminTLS = tls.serverConfiguration(applicationProtocols: ["http/1.1"])
        if tls.development != nil {
            // The self-signed certificate is renewed while the node runs (DevelopmentCertificate).
            adminTLS.sslContextCallback = { _, promise in promise.succeed(certificate.adminOverride()) }
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
            metrics: RelayMetrics(), logger: logger, cluster: cluster, now: now
        )
        let (adminReady, adminReadyContinuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let adminChannel = NIOLockedValueBox<(any Channel)?>(nil)
        do {
            let admin = try AdminServer.make(relay: relay, tls: adminTLS) { channel in
                adminChannel.withLockedValue { $0 = channel }
                adminReadyContinuation.yield()
            }
            self.companions = [
                UsageRecorder(relay: relay, clock: clock, interval: configuration.usageCheckpointInterval),
                RetentionScheduler(
                    store: store, policy: configuration.retention, clock: clock, interval: configuration.purgeInterval, now: now,
                    threadPool: backgroundPool, logger: logger
                ),
                admin,
            ]
        } catch {
            try? threadPool.syncShutdownGracefully()
            try? backgroundPool.syncShutdownGracefully()
            try? group.syncShutdownGracefully()
            throw error
        }
        self.relay = relay
        self.group = group
        self.certificate = certificate
        self.web = WebApplication(relay: relay, sessions: configuration.webSessions, fingerprint: { certificate.fingerprint })
        // Workbooks of exports a stopped relay was building hold personal data: gone.
        XLSXExport.removeLeftovers(dataDirectory: configuration.dataDirectory)
        self.adminChannel = adminChannel
        self.adminReady = adminReady
        self.adminReadyContinuation = adminReadyContinuation
        self.now = now
    }

    /// This node's membership among the nodes of its store: on PostgreSQL, which several
    /// nodes may share, a lease on its name, and cross-node pairing when the configuration
    /// has the cluster settings. A SQLite file belongs to one node (its data folder's lock).
    private static func membership(
        configuration: RelayConfiguration, store: any AccountStore & UsageStore & AdminStore, logger: Logger, now: Date
    ) throws -> ClusterMembership? {
        guard let sql = store as? SQLStore, sql.isPostgres, let clusterStore = store as? any ClusterStore else {
            guard configuration.cluster == nil else {
                throw ConfigurationError(
                    .invalidValue,
                    "cross-node pairing (cluster_listen) needs a database the nodes share, and this node's store is its own SQLite file; "
                        + "set store to the cluster's PostgreSQL address (OPERATIONS.md \"Several nodes\"), or remove the cluster_ keys"
                )
            }
            return nil
        }
        let identity = try configuration.cluster.map { try ClusterIdentity(secretFile: $0.secretFile) }
        return ClusterMembership(
            node: configuration.nodeName, settings: configuration.cluster, identity: identity, store: clusterStore, lease: configuration.nodeLease,
            logger: logger, now: now)
    }

    /// Runs the node until a graceful shutdown, then releases its resources (see the type's
    /// documentation). Throws a ``ConfigurationError`` of kind `listen` if a port cannot be
    /// bound, or the store's error if the start-up recovery cannot be written.
    func run() async throws {
        // Tells adminListening() that the admin API will not listen any more.
        defer { self.adminReadyContinuation.finish() }
        do {
            try await self.runServices()
        } catch {
            await self.release()
            throw error
        }
        await self.release()
    }

    private func runServices() async throws {
        let relay = self.relay
        let store = relay.store
        let nodeName = relay.configuration.nodeName
        // The name first: a second process with this node's name must not close its records.
        if let cluster = relay.cluster {
            let now = self.now
            try await relay.backgroundPool.runIfActive { try cluster.acquire(now: now) }
        }
        // Records a crash left open are closed at their last checkpoint before any new
        // session can start (DESIGN.md "Usage history"). Only this node's: in a store that
        // several nodes share, another node's open records are its live sessions.
        let recovered = try await relay.backgroundPool.runIfActive {
            try store.closeInterruptedSessions(relayNode: nodeName, reason: .relayRestart, actor: "relay")
        }
        if recovered > 0 {
            relay.logger.notice("closed usage records left open by an earlier run", metadata: ["sessions": "\(recovered)", "reason": "relay_restart"])
        }
        let channel = try await Self.bindRelay(relay: relay, certificate: self.certificate, application: self.web, group: self.group)
        self.boundRelayAddress.withLockedValue { $0 = channel.localAddress }
        var listeners = [channel]
        if let cluster = relay.cluster, let settings = cluster.settings, let identity = cluster.identity {
            do {
                listeners.append(try await Self.bindCluster(relay: relay, settings: settings, identity: identity, group: self.group))
            } catch {
                try? await channel.close()
                throw error
            }
        }
        let port = AgentPort(relay: relay, channel: channel, clusterChannel: listeners.count > 1 ? listeners[1] : nil, housekeeping: self.startHousekeeping())
        // The agents' port last: the first to stop at a graceful shutdown (see the type's documentation).
        let services = ServiceGroup(configuration: .init(services: (self.companions + [port]).map { .init(service: $0) }, logger: relay.logger))
        // A service that fails (the admin port cannot be bound) cancels the group; the
        // agents' port then still says Bye (``AgentPort``), and the error ends the node.
        try await services.run()
    }

    /// The node's repeating work, on its event loops; ``AgentPort`` stops it.
    private func startHousekeeping() -> [RepeatedTask] {
        let relay = self.relay
        let threadPool = relay.threadPool
        var tasks = [
            self.group.next().scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in relay.sweep() }
        ]
        if let cluster = relay.cluster {
            // The lease is renewed three times per term, so one late renewal loses nothing.
            let every = TimeAmount.nanoseconds(max(cluster.lease.nanoseconds / 3, 1_000_000_000))
            let leaseLoop = self.group.next()
            let now = self.now
            tasks.append(
                leaseLoop.scheduleRepeatedAsyncTask(initialDelay: every, delay: every) { _ in
                    relay.backgroundPool.runIfActive(eventLoop: leaseLoop) {
                        if cluster.renew(now: now()) { relay.announceAgain() }
                        relay.endRegistrationsMovedElsewhere()
                    }
                })
        }
        let interval = relay.configuration.credentialCheckInterval
        let checkLoop = self.group.next()
        tasks.append(
            checkLoop.scheduleRepeatedAsyncTask(initialDelay: interval, delay: interval) { _ in
                threadPool.runIfActive(eventLoop: checkLoop) { relay.checkCredentials() }
            })
        if let trim = Self.heapTrimming(relay: relay, threadPool: relay.backgroundPool, loop: self.group.next()) { tasks.append(trim) }
        // Ended web sessions, used or expired sign-in links and stale pending sign-ins.
        let web = self.web
        let cleanupLoop = self.group.next()
        tasks.append(
            cleanupLoop.scheduleRepeatedAsyncTask(initialDelay: .minutes(1), delay: .minutes(10)) { _ in
                relay.backgroundPool.runIfActive(eventLoop: cleanupLoop) { web.removeExpired() }
            })
        if self.certificate.tls.development != nil {
            let every = relay.configuration.certificateCheckInterval
            let renewalLoop = self.group.next()
            let now = self.now
            // Holds the node only while it runs: the task is cancelled when the node stops.
            tasks.append(
                renewalLoop.scheduleRepeatedAsyncTask(initialDelay: every, delay: every) { _ in
                    relay.backgroundPool.runIfActive(eventLoop: renewalLoop) {
                        do {
                            _ = try self.renewCertificateIfDue(now: now())
                        } catch {
                            relay.logger.error("cannot renew the self-signed certificate; it is tried again later", metadata: ["error": "\(error)"])
                        }
                    }
                })
        }
        return tasks
    }

    /// After every service has stopped: the access log's last entries, then the pools and
    /// event loops. Not cancellable: it runs when the node's task is cancelled too.
    private func release() async {
        let relay = self.relay
        _ = try? await relay.backgroundPool.runToCompletion { relay.flushAccessLog() }
        if let cluster = relay.cluster {
            // The directory's pending writes, then the lease: this node's hosts and codes go.
            // Bounded: a database that died at this moment must not keep the process alive.
            let ended = await BoundedWork.run(within: .seconds(10)) {
                try? cluster.writer.syncShutdownGracefully()
                cluster.release()
            }
            if !ended {
                relay.logger.warning(
                    "the database did not answer while this node ended its lease; the lease runs out by itself within node_lease_seconds")
            }
        }
        await self.web.shutdown()
        try? await relay.threadPool.shutdownGracefully()
        try? await relay.backgroundPool.shutdownGracefully()
        try? await self.group.shutdownGracefully()
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

    /// The socket options of the agents' port and the cluster port.
    private static func serverBootstrap(group: MultiThreadedEventLoopGroup, configuration: RelayConfiguration, backlog: Int32) -> ServerBootstrap {
        ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: backlog)
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
    }

    private static func bindRelay(
        relay: Relay, certificate: ServingCertificate, application: WebApplication, group: MultiThreadedEventLoopGroup
    ) async throws -> any Channel {
        let configuration = relay.configuration
        let bootstrap = Self.serverBootstrap(group: group, configuration: configuration, backlog: 1024)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // The ALPN offer picks the transport: agents (supportrelay/1) get TLS with
                    // the key-login context, browsers (http/1.1) the web port; a client that
                    // offers neither gets the TLS alert no_application_protocol (PROTOCOL.md §1;
                    // see ClientHelloALPN). The gate puts the transport's handlers in front of
                    // the core, which is there from the accept on: admission, per-source caps
                    // and the handshake deadline count every connection of the port alike.
                    let transports = ALPNGate.Transports(
                        agent: {
                            let presented = AgentKeyCertificate.PresentedKey()
                            return [
                                NIOSSLServerHandler(
                                    context: certificate.relayContext, customVerificationCallback: AgentKeyCertificate.verifier(recording: presented)),
                                TLSHandshakeObserver(metrics: relay.metrics, logger: relay.logger, presentedKey: presented),
                            ]
                        },
                        web: {
                            WebPort.handlers(
                                context: certificate.webContext, application: application, maximumPayloadLength: configuration.maximumPayloadLength,
                                metrics: relay.metrics,
                                logger: relay.logger)
                        }
                    )
                    try channel.pipeline.syncOperations.addHandler(
                        ALPNGate(transports: transports) { offer in
                            // The alert fails the handshake: counted with the other TLS failures.
                            relay.metrics.tlsFailures.increment()
                            relay.logger.info("TLS refused: the client offered neither ALPN supportrelay/1 nor http/1.1", metadata: ["offered": "\(offer)"])
                        })
                    // The transport-independent connection core (docs/ARCHITECTURE.md).
                    try channel.pipeline.syncOperations.addHandlers(RelayConnectionHandler.core(environment: relay))
                }
            }
        do {
            return try await bootstrap.bind(host: configuration.listen.host, port: configuration.listen.port).get()
        } catch {
            throw ConfigurationError(
                .listen, "cannot listen on \(configuration.listen): \(error); is another relay running there? choose another with --listen")
        }
    }

    /// The cluster port (OPERATIONS.md "Several nodes"): TLS 1.3 with the cluster
    /// certificate on both sides, so only nodes holding the cluster secret get past the
    /// handshake, then the connection core taking node links (NodeAuth) only.
    private static func bindCluster(
        relay: Relay, settings: ClusterSettings, identity: ClusterIdentity, group: MultiThreadedEventLoopGroup
    ) async throws -> any Channel {
        let configuration = relay.configuration
        let context: NIOSSLContext
        do {
            context = try NIOSSLContext(configuration: identity.serverConfiguration())
        } catch {
            throw ConfigurationError(.file, "cannot make the cluster port's TLS context from \(settings.secretFile): \(error)")
        }
        let bootstrap = Self.serverBootstrap(group: group, configuration: configuration, backlog: 256)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context, customVerificationCallback: identity.verifier()))
                    try channel.pipeline.syncOperations.addHandler(ClusterALPNCheck(logger: relay.logger))
                    try channel.pipeline.syncOperations.addHandlers(RelayConnectionHandler.core(environment: relay, nodeLinks: true))
                }
            }
        do {
            return try await bootstrap.bind(host: settings.listen.host, port: settings.listen.port).get()
        } catch {
            throw ConfigurationError(
                .listen, "cannot listen on the cluster port \(settings.listen): \(error); is another relay running there? choose another with cluster_listen")
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
}

/// The agents' port as the last service of the node's group, so the first to stop: on a
/// graceful shutdown it stops accepting, ends every session with Bye `relay_shutdown`,
/// waits up to `shutdown_grace` for the connections to close, and stops the housekeeping.
/// The services that stop after it close the records.
private struct AgentPort: Service {
    let relay: Relay
    let channel: any Channel
    /// The cluster port, closed with the agents' port.
    let clusterChannel: (any Channel)?
    let housekeeping: [RepeatedTask]

    func run() async {
        // Returns when a graceful shutdown starts (or the task is cancelled).
        try? await gracefulShutdown()
        await self.stop()
    }

    func stop() async {
        try? await self.channel.close()
        try? await self.clusterChannel?.close()
        self.relay.beginShutdown()
        let deadline = NIODeadline.now() + self.relay.configuration.shutdownGrace
        // Cancelled (another service failed), it does not wait: the Byes are sent.
        while self.relay.openConnections > 0, NIODeadline.now() < deadline, !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(20))
        }
        // Wait for each task's run in progress, so none uses a thread pool after the node releases it.
        for task in self.housekeeping {
            let stopped = self.channel.eventLoop.makePromise(of: Void.self)
            task.cancel(promise: stopped)
            try? await stopped.futureResult.get()
        }
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
