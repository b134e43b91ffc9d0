import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import RelayStore
import RelayWire
import Synchronization

/// State shared by every connection of one relay node: who waits to be paired, live
/// sessions, throttling, the store, the usage journal and metrics.
final class Relay: Sendable {
    let configuration: RelayConfiguration
    /// What each connection works within (``ConnectionEnvironment/limits``).
    let connectionLimits: ConnectionLimits
    let store: any AccountStore & UsageStore & AdminStore
    let eventLoopGroup: any EventLoopGroup
    /// Where the blocking store calls of logins run, off the event loops: credential
    /// checks of agents and admins. Nothing long runs here, so a login never waits
    /// behind a purge or an export (issue 11 item 7).
    let threadPool: NIOThreadPool
    /// Where long or batched store work runs: usage writes, the access log, the retention
    /// purge, export pages, certificate renewal, heap trims.
    let backgroundPool: NIOThreadPool
    let metrics: RelayMetrics
    let logger: Logger
    /// The wall clock of the records the relay writes (sessions, access log); tests pass
    /// their own.
    let now: @Sendable () -> Date
    /// Sessions paired and ended, waiting for the ``UsageRecorder`` to write them.
    let usage = UsageJournal()
    let adminRateLimiter: NIOLockedValueBox<AdminRateLimiter>
    /// Security alerts for companies' admins (issue 14 item 7).
    let alerts: SecurityAlerts
    /// This node among the nodes sharing its store: lease, host directory, node links.
    let cluster: ClusterMembership?

    let pairing: NIOLockedValueBox<PairingBook<ConnectionLink, ConnectionLink>>
    let throttle: NIOLockedValueBox<AuthThrottle>
    /// Connection caps per source and before authentication (OPERATIONS.md "Abuse resistance").
    let admission: NIOLockedValueBox<ConnectionAdmission>
    private let connections = NIOLockedValueBox<[ObjectIdentifier: ConnectionLink]>([:])
    private let sessions = NIOLockedValueBox<[SessionID: RelaySession]>([:])
    private let pendingAccessEvents = NIOLockedValueBox<[AccessEvent]>([])
    private let shuttingDown = NIOLockedValueBox(false)
    /// Connection handlers in memory; back to its old value once connections have closed
    /// (a handler that outlives its connection is a leak: tests watch this).
    private let handlers = Atomic<Int>(0)

    /// The highest `handlers` reached since ``takeConnectionPeak()`` last read it: bursts
    /// shorter than the heap trimmer's 1 s sampling still count (``HeapTrimPolicy``).
    private let handlersPeak = Atomic<Int>(0)

    var liveConnectionHandlers: Int { self.handlers.load(ordering: .relaxed) }
    func handlerCreated() {
        let live = self.handlers.add(1, ordering: .relaxed).newValue
        var peak = self.handlersPeak.load(ordering: .relaxed)
        while live > peak {
            let (exchanged, original) = self.handlersPeak.compareExchange(expected: peak, desired: live, ordering: .relaxed)
            if exchanged { break }
            peak = original
        }
    }
    /// The highest number of live connection handlers since the last call, and the number now.
    func takeConnectionPeak() -> (peak: Int, live: Int) {
        let live = self.liveConnectionHandlers
        return (max(self.handlersPeak.exchange(live, ordering: .relaxed), live), live)
    }
    func handlerReleased() { self.handlers.subtract(1, ordering: .relaxed) }

    init(
        configuration: RelayConfiguration, store: any AccountStore & UsageStore & AdminStore, eventLoopGroup: any EventLoopGroup, threadPool: NIOThreadPool,
        backgroundPool: NIOThreadPool, metrics: RelayMetrics, logger: Logger, cluster: ClusterMembership? = nil,
        now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.now = now
        self.cluster = cluster
        self.configuration = configuration
        self.connectionLimits = ConnectionLimits(configuration)
        self.store = store
        self.eventLoopGroup = eventLoopGroup
        self.threadPool = threadPool
        self.backgroundPool = backgroundPool
        self.adminRateLimiter = NIOLockedValueBox(
            AdminRateLimiter(policy: .init(burst: configuration.adminRequestBurst, perMinute: configuration.adminRequestsPerMinute)))
        self.metrics = metrics
        self.logger = logger
        self.alerts = SecurityAlerts(
            store: store, pool: backgroundPool, eventLoopGroup: eventLoopGroup, logger: logger, allowLoopback: configuration.webhookAllowLoopback, now: now)
        self.pairing = NIOLockedValueBox(
            PairingBook(
                policy: .init(
                    codeValidity: configuration.supportCodeValidity,
                    maximumCodesPerEngineer: configuration.supportCodesPerEngineer,
                    guessBudget: configuration.codeGuessBudget
                ))
        )
        self.throttle = NIOLockedValueBox(AuthThrottle(policy: .init(sources: configuration.sourcePenalties)))
        self.admission = NIOLockedValueBox(ConnectionAdmission(policy: configuration.admission))
    }

    // MARK: Connections

    /// Counts a new connection in; false when the relay is full or shutting down.
    func open(_ link: ConnectionLink) -> Bool {
        guard !self.shuttingDown.withLockedValue({ $0 }) else { return false }
        let admitted = self.connections.withLockedValue { connections in
            guard connections.count < self.configuration.maximumConnections else { return false }
            connections[ObjectIdentifier(link)] = link
            return true
        }
        if admitted { self.metrics.connectionsOpen.increment() } else { self.metrics.connectionsRejected.increment() }
        return admitted
    }

    func remove(_ link: ConnectionLink) {
        let removed = self.connections.withLockedValue { $0.removeValue(forKey: ObjectIdentifier(link)) != nil }
        if removed { self.metrics.connectionsOpen.decrement() }
    }

    var openConnections: Int { self.connections.withLockedValue { $0.count } }

    /// Bytes queued for sending on all connections: what slow readers cost the relay.
    func bufferedOutboundBytes() async -> Int {
        let links = self.connections.withLockedValue { Array($0.values) }
        var total = 0
        for link in links {
            total += (try? await link.channel.getOption(ChannelOptions.bufferedWritableBytes).get()) ?? 0
        }
        return total
    }

    // MARK: Sessions

    /// A session paired: its usage record is written at the recorder's next turn.
    func started(_ session: RelaySession) {
        guard session.recorded else {
            self.logger.info(
                "session paired through a node link; the other node records it",
                metadata: ["session": "\(session.id)", "mode": "\(session.mode)", "company": "\(session.companyID)"])
            return
        }
        self.sessions.withLockedValue { $0[session.id] = session }
        self.usage.opened(session.usageRecord(relayNode: self.configuration.nodeName))
        self.metrics.sessionsPaired.increment()
        self.metrics.sessionsTotal.increment()
        if session.mode == .unattended {
            self.alerts.raise(
                SecurityAlert(
                    companyID: session.companyID, at: self.now(), kind: .unattendedSession, subject: "\(session.hostName) (\(session.hostID ?? "-"))",
                    detail: "\(session.engineerLogin) started an unattended session with \(session.hostName) from \(session.viewer.agentAddress)"))
        }
        self.logger.info(
            "session paired",
            metadata: [
                "session": "\(session.id)", "mode": "\(session.mode)", "company": "\(session.companyID)",
                "engineer": "\(session.engineerLogin)", "host": "\(session.hostID ?? session.hostName)",
                "viewer_addr": "\(session.viewer.agentAddress)", "host_addr": "\(session.host.agentAddress)",
            ]
        )
    }

    /// A session ended: its record is closed with the reason and final counters.
    func ended(_ session: RelaySession) {
        guard self.sessions.withLockedValue({ $0.removeValue(forKey: session.id) }) != nil else { return }
        self.usage.closed(session.usageClosure(endedAt: self.now().milliseconds, reason: session.reason ?? .peerLeft))
        self.metrics.sessionsPaired.decrement()
        self.logger.info(
            "session ended",
            metadata: [
                "session": "\(session.id)", "reason": "\(session.reason?.name ?? "unknown")",
                "seconds": "\(Int(self.now().timeIntervalSince(session.startedAt)))",
                "bytes_to_viewer": "\(session.bytesToViewer.load(ordering: .relaxed))",
                "bytes_to_host": "\(session.bytesToHost.load(ordering: .relaxed))",
            ]
        )
    }

    var pairedSessions: [RelaySession] { self.sessions.withLockedValue { Array($0.values) } }

    // MARK: Access log

    /// Queues an access-log entry; entries are written in batches off the event loops.
    func logAccess(
        _ event: AccessEvent.Kind, _ outcome: AccessEvent.Outcome, source: String, companyID: String? = nil, subject: String? = nil, detail: String? = nil
    ) {
        let entry = AccessEvent(
            id: nil, at: self.now(), event: event, outcome: outcome, sourceAddress: source, companyID: companyID, subject: subject, detail: detail)
        let first = self.pendingAccessEvents.withLockedValue { pending in
            pending.append(entry)
            return pending.count == 1
        }
        if first {
            self.backgroundPool.submit { _ in self.flushAccessLog() }
        }
        if outcome != .accepted {
            self.logger.notice(
                "authentication \(outcome.rawValue)", metadata: ["event": "\(event.rawValue)", "source": "\(source)", "subject": "\(subject ?? "-")"])
        }
    }

    /// Writes queued access-log entries now.
    func flushAccessLog() {
        let batch = self.pendingAccessEvents.withLockedValue { pending in
            defer { pending.removeAll() }
            return pending
        }
        do {
            try self.store.record(batch)
        } catch {
            self.logger.error("cannot write the access log", metadata: ["error": "\(error)", "entries": "\(batch.count)"])
        }
    }

    // MARK: Housekeeping

    /// Expires support codes and prunes throttling state; run every second or so.
    func sweep(now: NIODeadline = .now()) {
        let expired = self.pairing.withLockedValue { $0.expireCodes(now: now) }
        self.forget(expired.map(\.code))
        for issued in expired {
            issued.viewer.deliver(.codeWithdrawn(.timeout, "support code \(issued.code) expired unused; ask the relay for a new code"))
        }
        self.throttle.withLockedValue { $0.prune(now: now) }
        self.adminRateLimiter.withLockedValue { $0.prune(now: now) }
    }

    /// Ends the connections whose engineer or host was removed, or whose token or secret
    /// was rotated, since they authenticated (`relay-server engineer|host remove|rotate`
    /// and `company remove` work on the database, from another process): Bye `revoked`.
    /// Runs on the thread pool every `credentialCheckInterval`.
    func checkCredentials() {
        let links = self.connections.withLockedValue { Array($0.values) }
        let checked = links.compactMap { link in link.party?.credential.map { (link, $0) } }
        guard !checked.isEmpty else { return }
        let current: [String: Data]
        do {
            current = try self.store.credentialDigests(
                engineerIDs: checked.filter { $0.1.kind == .engineer }.map(\.1.id),
                hostIDs: checked.filter { $0.1.kind == .host }.map(\.1.id)
            )
        } catch {
            self.logger.error("cannot check live connections' credentials", metadata: ["error": "\(error)"])
            return
        }
        self.checkWebSessions(links)
        for (link, credential) in checked where current[credential.id] != credential.digest {
            let what = credential.kind == .engineer ? "engineer \(credential.id)" : "host \(credential.id)"
            let why = current[credential.id] == nil ? "was removed" : "got a new login key"
            self.logger.notice("ending a connection whose account changed", metadata: ["account": "\(credential.id)", "change": "\(why)"])
            link.deliver(
                .bye(.revoked, "\(what) \(why) on the relay; log in with the key your admin set (`relay-agent keygen --show` prints yours), or ask them"))
        }
    }

    /// Browser viewers live as long as their web session: one that was ended (sign-out,
    /// `engineer reset-totp`, a new password) or is past its absolute limit ends the
    /// connection with Bye `revoked`; one that is in use is kept from idling out (the
    /// viewer's WebSocket is its use).
    private func checkWebSessions(_ links: [ConnectionLink]) {
        let browsers = links.compactMap { link in link.party?.webSession.map { (link, $0) } }
        guard !browsers.isEmpty else { return }
        let now = self.now()
        let policy = self.configuration.webSessions
        for (link, digest) in browsers {
            do {
                guard let session = try self.store.webSession(idDigest: digest) else {
                    link.deliver(.bye(.revoked, "your web session ended (signed out, or your password or two-factor was reset); sign in again"))
                    continue
                }
                if now.timeIntervalSince(session.createdAt) >= policy.absoluteLimit {
                    link.deliver(.bye(.revoked, "your web session reached its \(Int(policy.absoluteLimit / 3600)) hours; sign in again"))
                    continue
                }
                try self.store.touchWebSession(idDigest: digest, at: now)
            } catch {
                self.logger.error("cannot check a browser's web session", metadata: ["error": "\(error)"])
                return
            }
        }
    }

    /// Ends every connection with Bye `relay_shutdown`; new connections are refused.
    func beginShutdown() {
        self.shuttingDown.withLockedValue { $0 = true }
        let links = self.connections.withLockedValue { Array($0.values) }
        for link in links {
            link.deliver(.bye(.relayShutdown, "the relay is shutting down; reconnect in a moment"))
        }
    }
}
