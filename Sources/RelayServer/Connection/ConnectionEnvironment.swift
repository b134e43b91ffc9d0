import Foundation
import Logging
import NIOCore
import RelayStore
import RelayWire

/// The state machine of a relay connection, with the relay's handles.
typealias RelayConnectionStateMachine = ConnectionStateMachine<ConnectionLink, SessionLink>

/// What a paired connection holds: the session and the other side's link.
struct SessionLink: Sendable {
    let session: RelaySession
    let peer: ConnectionLink
}

/// The limits one connection works within (from ``RelayConfiguration``).
struct ConnectionLimits: Sendable {
    var maximumPayloadLength: Int
    var handshakeTimeout: TimeAmount
    var idleTimeout: TimeAmount
    var writeBufferHighWater: Int
    var writeBufferLowWater: Int
    var supportCodeValidity: TimeAmount
    var nodeName: String

    init(_ configuration: RelayConfiguration) {
        self.maximumPayloadLength = configuration.maximumPayloadLength
        self.handshakeTimeout = configuration.handshakeTimeout
        self.idleTimeout = configuration.idleTimeout
        self.writeBufferHighWater = configuration.writeBufferHighWater
        self.writeBufferLowWater = configuration.writeBufferLowWater
        self.supportCodeValidity = configuration.supportCodeValidity
        self.nodeName = configuration.nodeName
    }
}

/// How a connection is counted in (``ConnectionEnvironment/admit(_:source:)``), and so
/// how it is counted out when it closes.
struct AdmissionTicket: Sendable {
    /// Whom failures and connection caps are charged to: the IPv4 address or IPv6 /64.
    let source: SourceKey
    /// Counted in relay-wide; false when the relay was full or shutting down.
    let opened: Bool
    /// Counted as authenticated by the per-source caps.
    var authenticated = false
    /// Counted by the per-source caps at all (a node link is not).
    var perSource = true
}

/// What a connection's handler may ask of the relay it belongs to: a narrow view of
/// ``Relay``. The handler reaches the store, the pools, the pairing book and other
/// connections only through these calls, and gets answers the state machine decides on
/// (docs/ARCHITECTURE.md "Where each decision lives"). Every call is safe from any event loop.
protocol ConnectionEnvironment: AnyObject, Sendable {
    var limits: ConnectionLimits { get }
    var metrics: RelayMetrics { get }
    var logger: Logger { get }

    // MARK: Lifecycle

    /// A handler was created or released (the relay watches for leaks and trims its heap).
    func handlerCreated()
    func handlerReleased()
    /// Counts a new connection in: by the per-source caps (``ConnectionAdmission``), then
    /// relay-wide. Nil: the caps refused it (counted and logged here), and it closes unanswered.
    func admit(_ link: ConnectionLink, source: SourceKey) -> AdmissionTicket?
    /// Counts a node link of the cluster port in: relay-wide only (the cluster port's TLS
    /// admitted only holders of the cluster key, so per-source caps do not apply).
    func admitNodeLink(link: ConnectionLink?) -> AdmissionTicket?
    /// Gives back what a closed connection held, ends its session and tells its peer, and
    /// counts it out as its ticket says.
    func closed(_ link: ConnectionLink, release: RelayConnectionStateMachine.Release, ticket: AdmissionTicket?)

    // MARK: Authentication

    /// How long `source` must wait before a credential of it is checked (nil: now).
    func retryAfter(source: SourceKey) -> TimeAmount?
    /// The throttle's answer for `source`: this node's penalties, and in a cluster the
    /// penalties its failures earned on every node (``Relay/throttle(source:on:)``).
    func throttle(source: SourceKey, on loop: any EventLoop) -> EventLoopFuture<RelayConnectionStateMachine.Answer>
    /// Redeems a support code a host presented, wherever in the cluster it was issued
    /// (``Relay/redeem(_:host:for:)``); `host` is who the host will be.
    func redeem(_ code: SupportCode, host: Party, for link: ConnectionLink) -> EventLoopFuture<RelayConnectionStateMachine.Answer>
    /// Takes a code issued here for a host on another node (NodeAuth).
    func takeCode(_ code: SupportCode) -> RelayConnectionStateMachine.Pairing.CodeAttempt
    func verifyHost(id: String, secret: String, on eventLoop: any EventLoop) -> EventLoopFuture<EnrolledHost?>
    func verifyEngineer(token: String, on eventLoop: any EventLoop) -> EventLoopFuture<Engineer?>
    /// The enrolled host `id`, if `key` (raw Ed25519, proved by the transport) is its key.
    func verifyHost(id: String, key: Data, on eventLoop: any EventLoop) -> EventLoopFuture<EnrolledHost?>
    /// The engineer whose key `key` is (raw Ed25519, proved by the transport).
    func verifyEngineer(key: Data, on eventLoop: any EventLoop) -> EventLoopFuture<Engineer?>
    /// The engineer of a web session the transport proved (the WebSocket's sign-in
    /// cookie), nil when the session ended or the engineer was removed since.
    func verifyEngineer(id: String, session: Data, on eventLoop: any EventLoop) -> EventLoopFuture<Engineer?>
    /// The transport proved who the client is before any login (a browser's live web
    /// session): count the ticket's source as authenticated for the per-source caps, so
    /// that a signed-in browser's keep-alive connections do not use up the source's room
    /// for connections that have not logged in.
    func authenticatedByTransport(ticket: inout AdmissionTicket)
    /// Credentials were accepted: log it, and count the ticket's source as authenticated.
    func accepted(_ access: RelayConnectionStateMachine.AccessNote, address: String, ticket: inout AdmissionTicket)
    /// An attempt was refused: log it, count it, and charge its source when it was wrong.
    func refused(_ refusal: RelayConnectionStateMachine.Refusal, source: SourceKey, address: String)

    // MARK: Pairing

    /// Registers an enrolled host; an older connection of the same host is closed.
    func register(_ link: ConnectionLink, hostID: String, companyID: String)
    /// Issues a support code to `link`, unique in the cluster; an older code of the
    /// engineer may be withdrawn.
    func issueCode(for link: ConnectionLink, engineerID: String, companyID: String) -> EventLoopFuture<RelayConnectionStateMachine.Answer>
    /// Claims an enrolled host for `link`'s viewer: registered here, or with `anywhere`,
    /// on another node of the cluster (through a node link).
    func claim(hostID: String, companyID: String, anywhere: Bool, for link: ConnectionLink) -> EventLoopFuture<RelayConnectionStateMachine.Answer>
    /// Creates and records the session of `host` and `viewer`.
    func startSession(host: ConnectionLink, viewer: ConnectionLink, mode: PairingMode) -> RelaySession?
    /// `link` closed before the pairing reached it: end the session, tell the other side.
    func abandon(_ session: RelaySession, by link: ObjectIdentifier)
}

extension Relay: ConnectionEnvironment {
    var limits: ConnectionLimits { self.connectionLimits }

    func admit(_ link: ConnectionLink, source: SourceKey) -> AdmissionTicket? {
        var generator = SystemRandomNumberGenerator()
        if case .refused(let refusal) = self.admission.withLockedValue({ $0.admit(source, using: &generator) }) {
            self.metrics.connectionsRejected.increment()
            self.logger.debug("connection refused", metadata: ["source": "\(source)", "reason": "\(refusal)"])
            return nil
        }
        return AdmissionTicket(source: source, opened: self.open(link))
    }

    func admitNodeLink(link: ConnectionLink?) -> AdmissionTicket? {
        guard let link else { return nil }
        return AdmissionTicket(source: .unknown, opened: self.open(link), authenticated: true, perSource: false)
    }

    func closed(_ link: ConnectionLink, release: RelayConnectionStateMachine.Release, ticket: AdmissionTicket?) {
        if release.withdrawCode {
            self.forget(self.pairing.withLockedValue { $0.withdrawCode(of: link) })
        }
        if let hostID = release.unregisterHostID {
            let gone = self.pairing.withLockedValue { book in
                book.unregister(link, hostID: hostID)
                return !book.isRegistered(hostID: hostID)
            }
            self.markSeen(hostID: hostID)
            if gone { self.withdraw(hostID: hostID) }
        }
        if let session = release.session?.session {
            if session.end(reason: release.ending.recorded) {
                session.peer(of: link).deliver(.peerLeft(release.ending.peerReason, release.ending.peerText))
            }
            self.ended(session)
        }
        guard let ticket else { return }
        if ticket.opened { self.remove(link) }
        guard ticket.perSource else { return }
        self.admission.withLockedValue { $0.closed(ticket.source, wasAuthenticated: ticket.authenticated) }
    }

    func retryAfter(source: SourceKey) -> TimeAmount? {
        self.throttle.withLockedValue { $0.retryAfter(source: source, now: .now()) }
    }

    func takeCode(_ code: SupportCode) -> RelayConnectionStateMachine.Pairing.CodeAttempt {
        self.pairing.withLockedValue { $0.takeCode(code, now: .now()) }.map { .paired($0) } ?? .invalid(pausedFor: nil)
    }

    func verifyHost(id: String, secret: String, on eventLoop: any EventLoop) -> EventLoopFuture<EnrolledHost?> {
        let store = self.store
        return self.threadPool.runIfActive(eventLoop: eventLoop) { try store.authenticateHost(id: id, secret: secret) }
    }

    func verifyEngineer(token: String, on eventLoop: any EventLoop) -> EventLoopFuture<Engineer?> {
        let store = self.store
        return self.threadPool.runIfActive(eventLoop: eventLoop) { try store.authenticateEngineer(token: token) }
    }

    func verifyHost(id: String, key: Data, on eventLoop: any EventLoop) -> EventLoopFuture<EnrolledHost?> {
        let store = self.store
        return self.threadPool.runIfActive(eventLoop: eventLoop) { try store.authenticateHost(id: id, publicKey: key) }
    }

    func verifyEngineer(key: Data, on eventLoop: any EventLoop) -> EventLoopFuture<Engineer?> {
        let store = self.store
        return self.threadPool.runIfActive(eventLoop: eventLoop) { try store.authenticateEngineer(publicKey: key) }
    }

    func verifyEngineer(id: String, session: Data, on eventLoop: any EventLoop) -> EventLoopFuture<Engineer?> {
        let store = self.store
        return self.threadPool.runIfActive(eventLoop: eventLoop) {
            do {
                guard let live = try store.webSession(idDigest: session), live.engineerID == id else { return nil }
                return try store.engineer(id: id)
            } catch let error as StoreError where error.kind == .notFound {
                return nil
            }
        }
    }

    func authenticatedByTransport(ticket: inout AdmissionTicket) {
        if !ticket.authenticated { self.admission.withLockedValue { $0.authenticated(ticket.source) } }
        ticket.authenticated = true
    }

    func accepted(_ access: RelayConnectionStateMachine.AccessNote, address: String, ticket: inout AdmissionTicket) {
        if !ticket.authenticated { self.admission.withLockedValue { $0.authenticated(ticket.source) } }
        ticket.authenticated = true
        self.logAccess(access.kind, access.outcome, source: address, companyID: access.companyID, subject: access.subject, detail: access.detail)
    }

    func refused(_ refusal: RelayConnectionStateMachine.Refusal, source: SourceKey, address: String) {
        if refusal.access.outcome == .throttled { self.metrics.authThrottled.increment() }
        if refusal.chargesSource {
            self.metrics.authFailures.increment()
            self.shareFailure(of: source)
            let verdict = self.throttle.withLockedValue { $0.recordFailure(source: source, account: refusal.account, now: .now()) }
            if let alert = verdict.accountAlert { self.logger.warning("\(alert)") }
        }
        if let pausedFor = refusal.pausedRedemptionFor {
            self.metrics.codeRedemptionPauses.increment()
            self.logger.warning(
                "support-code redemption paused relay-wide: the guess budget is spent, a guessing attack is likely",
                metadata: ["seconds": "\(RetryWait.seconds(pausedFor))"]
            )
        }
        let access = refusal.access
        self.logAccess(access.kind, access.outcome, source: address, companyID: access.companyID, subject: access.subject, detail: access.detail)
    }

    /// Records when a host registered or left, for the web console's "last seen"; on the
    /// background pool, and a failure only costs that figure.
    private func markSeen(hostID: String) {
        let (store, now, logger) = (self.store, self.now(), self.logger)
        self.backgroundPool.submit { state in
            guard case .active = state else { return }
            do { try store.markHostsSeen(ids: [hostID], at: now) } catch {
                logger.warning("could not record when a host was last seen", metadata: ["host": "\(hostID)", "error": "\(error)"])
            }
        }
    }

    func register(_ link: ConnectionLink, hostID: String, companyID: String) {
        self.markSeen(hostID: hostID)
        let replaced = self.pairing.withLockedValue { $0.register(link, hostID: hostID, companyID: companyID) }
        self.announce(hostID: hostID, companyID: companyID)
        replaced?.deliver(.bye(.revoked, "a newer connection of host \(hostID) registered; this one is closed"))
    }

    func startSession(host: ConnectionLink, viewer: ConnectionLink, mode: PairingMode) -> RelaySession? {
        guard let hostParty = host.party, let viewerParty = viewer.party else { return nil }
        // A node link this node dialled: the other node records the session, under its id.
        let remote = host.remoteSession ?? viewer.remoteSession
        let session = RelaySession(
            id: remote, mode: mode, companyID: viewerParty.companyID, engineerLogin: viewerParty.name,
            hostID: hostParty.hostID, hostName: hostParty.name, host: host, viewer: viewer,
            viewerInBrowser: viewerParty.inBrowser, startedAt: self.now(), recorded: remote == nil
        )
        self.started(session)
        return session
    }

    func abandon(_ session: RelaySession, by link: ObjectIdentifier) {
        guard session.end(reason: .peerLeft) else { return }
        let other = ObjectIdentifier(session.host) == link ? session.viewer : session.host
        other.deliver(.peerLeft(.peerLeft, "the other side disconnected before the session started"))
        self.ended(session)
    }
}

extension ConnectionEnvironment {
    /// Carries out a step the state machine asked for, answering on `link`'s event loop
    /// (at once where the step needs no store). A store failure is logged and answered
    /// as ``RelayConnectionStateMachine/Answer/verificationFailed``.
    func answer(
        _ question: RelayConnectionStateMachine.Question, for link: ConnectionLink, source: SourceKey
    ) -> EventLoopFuture<
        RelayConnectionStateMachine.Answer
    > {
        let loop = link.channel.eventLoop
        let answer: RelayConnectionStateMachine.Answer
        switch question {
        case .throttle: return self.throttle(source: source, on: loop)
        case .redeem(let code, let host): return self.redeem(code, host: host, for: link)
        case .takeCode(let code): answer = .redeemed(self.takeCode(code))
        case .verifyHost(let id, let secret): return self.checked(self.verifyHost(id: id, secret: secret, on: loop).map { .host($0) })
        case .verifyEngineer(let token): return self.checked(self.verifyEngineer(token: token, on: loop).map { .engineer($0) })
        case .verifyHostKey(let id, let key): return self.checked(self.verifyHost(id: id, key: key, on: loop).map { .host($0) })
        case .verifyEngineerKey(let key): return self.checked(self.verifyEngineer(key: key, on: loop).map { .engineer($0) })
        case .verifyEngineerSession(let engineerID, let session):
            return self.checked(self.verifyEngineer(id: engineerID, session: session, on: loop).map { .engineer($0) })
        case .issueCode(let engineerID, let companyID): return self.issueCode(for: link, engineerID: engineerID, companyID: companyID)
        case .claimHost(let hostID, let companyID, let anywhere): return self.claim(hostID: hostID, companyID: companyID, anywhere: anywhere, for: link)
        }
        return loop.makeSucceededFuture(answer)
    }

    private func checked(_ check: EventLoopFuture<RelayConnectionStateMachine.Answer>) -> EventLoopFuture<RelayConnectionStateMachine.Answer> {
        let logger = self.logger
        return check.recover { error in
            logger.error("credential check failed", metadata: ["error": "\(error)"])
            return .verificationFailed
        }
    }
}

extension RelayConnectionStateMachine.Answer {
    /// The node link this answer dialled (a host or viewer on another node), if any.
    var dialledLink: ConnectionLink? {
        switch self {
        case .redeemed(.paired(let issued)) where issued.viewer.remoteSession != nil: issued.viewer
        case .claimed(.claimed(let host), _) where host.remoteSession != nil: host
        default: nil
        }
    }
}

extension RelayConnectionStateMachine.Action {
    /// Whether this action pairs the connection with `peer` (now or after authenticating).
    func pairs(with peer: ConnectionLink) -> Bool {
        switch self {
        case .pair(let other, _): other === peer
        case .authenticated(_, _, let next): next.pairs(with: peer)
        default: false
        }
    }
}
