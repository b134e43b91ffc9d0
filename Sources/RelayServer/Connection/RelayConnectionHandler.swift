import Foundation
import Logging
import NIOCore
import NIOSSL
import NIOTLS
import RelayStore
import RelayWire

/// What a paired connection holds: the session and the other side's link.
struct SessionLink: Sendable {
    let session: RelaySession
    let peer: ConnectionLink
}

/// One agent connection, after TLS (docs/ARCHITECTURE.md "One frame across the relay").
/// Bytes go through ``FrameScanner``; relay-control messages through
/// ``ConnectionStateMachine``, which also holds what each phase of the connection owns;
/// forwarding and backpressure through ``ForwardingState``; the handshake deadline and
/// idle timeout through ``ConnectionDeadlines``. This class feeds them events with the
/// event loop's time and carries out what they return: authenticate (on the thread pool),
/// pair, forward, write, close (PROTOCOL.md §8).
final class RelayConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let relay: Relay
    private var stateMachine = ConnectionStateMachine<SessionLink>()
    private var scanner: FrameScanner
    private var logger: Logger

    private var context: ChannelHandlerContext?
    private(set) var link: ConnectionLink?
    /// The source's IP address, without port or brackets (`192.0.2.7`, `2001:db8::5`).
    private var sourceAddress = "unknown"
    /// Whom failures and connection caps are charged to: the IPv4 address or IPv6 /64.
    private var source = SourceKey.unknown
    /// Counted in by the per-source caps (``ConnectionAdmission``), and authenticated there.
    private var countedBySource = false
    private var authenticatedBySource = false
    /// Which of a session's two links is this connection's, after `link` is released.
    private var linkIdentity: ObjectIdentifier?
    private var admitted = false
    /// The handshake deadline and the idle timeout, on the event loop's clock.
    private var deadlines: ConnectionDeadlines?
    private var deadlineTimer: Scheduled<Void>?

    // What the connection holds in each phase (its Hello, a support code or registration,
    // the session) is kept by the state machine.
    private var hello: Hello? { self.stateMachine.hello }
    private var session: RelaySession? { self.stateMachine.session?.session }
    private var peer: ConnectionLink? { self.stateMachine.session?.peer }
    /// Cut-through both ways, whole frames out, and backpressure.
    private var forwarding: ForwardingState
    /// True while `scanner` is scanning (and so cannot be changed).
    private var scanning = false
    private var raiseControlLimitAfterScan = false
    private var countedFrames: UInt64 = 0

    init(relay: Relay) {
        self.relay = relay
        self.scanner = FrameScanner(maximumPayloadLength: relay.configuration.maximumPayloadLength)
        // Until the connection has authenticated, only small control frames (PROTOCOL.md §9).
        self.scanner.maximumControlPayloadLength = Frame.maximumPayloadBeforeAuthentication
        self.logger = relay.logger
        self.forwarding = ForwardingState(highWater: relay.configuration.writeBufferHighWater, lowWater: relay.configuration.writeBufferLowWater)
        relay.handlerCreated()
    }

    deinit {
        self.relay.handlerReleased()
    }

    // MARK: Lifecycle

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let address = context.channel.remoteAddress.map(Self.describe) ?? "unknown"
        self.sourceAddress = context.channel.remoteAddress?.ipAddress ?? "unknown"
        self.source = SourceKey(context.channel.remoteAddress)
        self.logger[metadataKey: "peer"] = "\(address)"
        let link = ConnectionLink(channel: context.channel, handler: self, remoteAddress: address)
        self.link = link
        self.linkIdentity = ObjectIdentifier(link)
    }

    func channelActive(context: ChannelHandlerContext) {
        self.relay.metrics.connectionsAccepted.increment()
        var generator = SystemRandomNumberGenerator()
        let decision = self.relay.admission.withLockedValue { $0.admit(self.source, using: &generator) }
        if case .refused(let refusal) = decision {
            // Closed before the TLS handshake: answering would cost the work the cap saves.
            self.relay.metrics.connectionsRejected.increment()
            self.logger.debug("connection refused", metadata: ["source": "\(self.source)", "reason": "\(refusal)"])
            self.stateMachine.close()
            context.close(promise: nil)
            return
        }
        self.countedBySource = true
        if let link = self.link { self.admitted = self.relay.admit(link) }
        let configuration = self.relay.configuration
        self.deadlines = ConnectionDeadlines(
            handshakeTimeout: configuration.handshakeTimeout, idleTimeout: configuration.idleTimeout, openedAt: context.eventLoop.now
        )
        self.armDeadlineTimer()
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.tearDown(peerReason: .peerLeft, peerText: "\(self.who) disconnected")
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        // The link holds this handler and the handler its link, its peer's link and the
        // session: drop them, or every closed connection stays in memory (issue 10, item 8).
        self.link = nil
        self.stateMachine.close()
        self.forwarding.release()
    }

    /// Releases everything this connection holds; tells the peer, once, why it ended.
    /// `recorded` is the end reason for the usage history (default: what the peer is told).
    private func tearDown(peerReason: ByeReason, peerText: String, recorded: ByeReason? = nil) {
        self.deadlineTimer?.cancel()
        self.deadlineTimer = nil
        self.deadlines = nil
        let release = self.stateMachine.close()
        guard let link = self.link else { return }
        if release.withdrawCode {
            self.relay.pairing.withLockedValue { $0.withdrawCode(of: link) }
        }
        if let hostID = release.unregisterHostID {
            self.relay.pairing.withLockedValue { $0.unregister(link, hostID: hostID) }
        }
        if let session = release.session?.session {
            if session.end(reason: recorded ?? peerReason) {
                session.peer(of: link).deliver(.peerLeft(peerReason, peerText))
            }
            self.relay.ended(session)
        }
        if self.admitted {
            self.admitted = false
            self.relay.remove(link)
        }
        if self.countedBySource {
            self.countedBySource = false
            self.relay.admission.withLockedValue { $0.closed(self.source, wasAuthenticated: self.authenticatedBySource) }
        }
    }

    // MARK: Inbound

    private struct PeerDataBeforePairing: Error {}

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // After an error the connection is closing; bytes still in flight mean nothing.
        guard !self.isClosing else { return }
        let chunk = self.unwrapInboundIn(data)
        self.deadlines?.read(at: context.eventLoop.now)
        // A Bye in this chunk may end the session mid-scan; its frames still count.
        let session = self.session
        let role = self.stateMachine.role
        self.scanning = true
        defer {
            self.scanning = false
            if self.raiseControlLimitAfterScan {
                self.raiseControlLimitAfterScan = false
                self.scanner.maximumControlPayloadLength = self.relay.configuration.maximumPayloadLength
            }
        }
        do {
            try self.scanner.scan(
                chunk,
                forward: { (run: ByteBuffer) throws(PeerDataBeforePairing) in
                    guard self.session != nil else { throw PeerDataBeforePairing() }
                    self.forwarding.collect(run)
                },
                control: { (frame: Frame) throws(PeerDataBeforePairing) in
                    // Peer bytes that came before this frame go first: a Bye must not
                    // overtake the input sent just ahead of it. A control frame starts at
                    // a boundary, so those bytes end with a whole frame.
                    self.forwardPendingRuns(owedAfter: 0)
                    self.receivedControlFrame(frame)
                }
            )
        } catch {
            switch error {
            case .wire(let error):
                self.relay.metrics.protocolErrors.increment()
                self.perform(.fail(error.kind == .frameTooLarge ? .frameTooLarge : .malformedMessage, error.description))
            case .handler:
                self.perform(self.stateMachine.receivedPeerData())
            }
        }
        self.countForwardedFrames(session: session, role: role)
    }

    /// Frames are counted once the scan is over (the scanner is busy during it).
    private func countForwardedFrames(session: RelaySession?, role: Role?) {
        let frames = self.scanner.peerFrames - self.countedFrames
        guard frames > 0, let session, let role else { return }
        self.countedFrames = self.scanner.peerFrames
        session.count(bytes: 0, frames: frames, from: role)
        (role == .host ? self.relay.metrics.framesToViewer : self.relay.metrics.framesToHost).increment(by: Int64(frames))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.forwardPendingRuns(owedAfter: self.scanner.peerBytesOwed)
    }

    private func receivedControlFrame(_ frame: Frame) {
        guard !self.isClosing else { return }
        let message: RelayMessage
        do {
            message = try RelayMessage(frame)
        } catch {
            // A Hello of another version may have another layout: its first two bytes
            // are the version in every version (PROTOCOL.md §5.1.1).
            if frame.type == .hello, let version = frame.payload.getInteger(at: frame.payload.readerIndex, as: UInt16.self),
                version != RelayProtocol.version
            {
                self.perform(self.stateMachine.receivedHello(ofVersion: version))
                return
            }
            self.relay.metrics.protocolErrors.increment()
            self.perform(.fail(.malformedMessage, error.description))
            return
        }
        self.perform(self.stateMachine.received(message))
    }

    private var isClosing: Bool { self.stateMachine.state == .closed }

    /// This side, in words for the other side's Bye (from the Hello: the state machine
    /// forgets the role once closed).
    private var who: String {
        switch self.hello?.role {
        case .viewer: "the engineer"
        case .host: "the host"
        case nil: "the other side"
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case let event as TLSUserEvent:
            if case .handshakeCompleted(let negotiated) = event {
                // Only agents that offered the protocol's ALPN token are served (PROTOCOL.md §1).
                guard negotiated == RelayProtocol.alpnToken else {
                    self.relay.metrics.tlsFailures.increment()
                    self.logger.info("TLS without the supportrelay/1 ALPN token", metadata: ["alpn": "\(negotiated ?? "none")"])
                    self.stateMachine.close()
                    context.close(promise: nil)
                    return
                }
                self.relay.metrics.tlsHandshakes.increment()
            }
            context.fireUserInboundEventTriggered(event)
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is NIOSSLError || error is BoringSSLError {
            self.relay.metrics.tlsFailures.increment()
            self.logger.info("TLS failed", metadata: ["error": "\(error)"])
        } else {
            self.logger.info("connection error", metadata: ["error": "\(error)"])
        }
        context.close(promise: nil)
    }

    // MARK: Deadlines

    /// Arms the one timer for the next deadline, unless it is armed already: reads move
    /// the idle deadline later without touching the timer, which re-arms when it fires early.
    private func armDeadlineTimer() {
        guard self.deadlineTimer == nil, let context = self.context, let next = self.deadlines?.next else { return }
        self.deadlineTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: next) {
            self.deadlineTimer = nil
            self.deadlineReached()
        }
    }

    private func deadlineReached() {
        guard let context = self.context, let deadlines = self.deadlines else { return }
        switch deadlines.expired(at: context.eventLoop.now) {
        case .handshake:
            self.perform(self.stateMachine.handshakeDeadlinePassed())
        case .idle:
            let seconds = self.relay.configuration.idleTimeout.nanoseconds / 1_000_000_000
            self.sendBye(.idleTimeout, "nothing arrived for \(seconds) s; agents send Ping every 30 s")
        case nil:
            self.armDeadlineTimer()
        }
    }

    // MARK: Actions

    private func perform(_ action: ConnectionStateMachine<SessionLink>.Action) {
        switch action {
        case .none:
            break
        case .send(let message):
            self.send(message)
        case .acceptHello(let hello):
            self.acceptHello(hello)
        case .authenticateHost(let auth):
            self.authenticateHost(auth)
        case .authenticateViewer(let auth):
            self.authenticateViewer(auth)
        case .endSession(let bye):
            // The usage history keeps why the agent ended it (`normal`, …); the peer is told `peer_left`.
            self.tearDown(
                // A customer who refused is told as such to the engineer (PROTOCOL.md §6.2).
                peerReason: bye.reason == .declined ? .declined : .peerLeft, peerText: "\(self.who) ended the session (\(bye.reason.name)): \(bye.text)",
                recorded: ByeReason.known.contains(bye.reason) && bye.reason != .relayRestart ? bye.reason : .normal
            )
            self.context?.close(promise: nil)
        case .fail(let code, let text):
            self.fail(code, text)
        case .close:
            self.tearDown(peerReason: .peerLeft, peerText: "the other side left")
            self.context?.close(promise: nil)
        }
    }

    private func acceptHello(_ hello: Hello) {
        guard self.admitted else {
            self.fail(.relayFull, "the relay is at its connection limit or shutting down; retry in a minute")
            return
        }
        self.logger[metadataKey: "role"] = "\(hello.role)"
        self.send(.helloAck(HelloAck(
            capabilities: hello.capabilities,
            maximumPayloadLength: UInt32(self.relay.configuration.maximumPayloadLength),
            relayNode: self.relay.configuration.nodeName
        )))
    }

    /// Refuses the attempt, unchecked, while the source is penalised (PROTOCOL.md §8.5);
    /// returns true when refused.
    private func refuseIfThrottled(event: AccessEvent.Kind) -> Bool {
        guard let wait = self.relay.throttle.withLockedValue({ $0.retryAfter(source: self.source, now: .now()) }) else { return false }
        self.relay.metrics.authThrottled.increment()
        self.relay.logAccess(event, .throttled, source: self.remoteAddress)
        self.fail(.rateLimited, AuthThrottle.blockedMessage(retryAfter: wait, source: self.source))
        return true
    }

    /// Charges a failed attempt to this source only; `account` (the engineer or host id it
    /// claimed) is watched for alerts, never locked (issue 10, item 11).
    private func recordFailure(account: String?) {
        self.relay.metrics.authFailures.increment()
        let verdict = self.relay.throttle.withLockedValue { $0.recordFailure(source: self.source, account: account, now: .now()) }
        if let alert = verdict.accountAlert {
            self.logger.warning("\(alert)")
        }
    }

    private var remoteAddress: String { self.link?.remoteAddress ?? self.sourceAddress }

    private func authenticateHost(_ auth: HostAuth) {
        guard let link = self.link else { return }
        let source = link.remoteAddress
        switch auth {
        case .supportCode(let code), .namedSupportCode(let code, _):
            guard !self.refuseIfThrottled(event: .supportCode) else { return }
            let attempt = self.relay.pairing.withLockedValue { $0.attemptRedemption(of: code, now: .now()) }
            switch attempt {
            case .paired(let issued):
                self.relay.logAccess(.supportCode, .accepted, source: source, companyID: issued.companyID, subject: "…" + String(code.description.suffix(2)))
                self.authenticated()
                let machineName: String? = if case .namedSupportCode(_, let name) = auth { name } else { nil }
                let name = AttendedHostName.display(machineName: machineName, address: self.sourceAddress)
                link.party = Party(name: name, companyID: issued.companyID, software: self.hello?.software ?? "", capabilities: self.hello?.capabilities ?? [])
                self.pair(host: link, viewer: issued.viewer, mode: .attended)
            case .invalid(let pausedFor):
                self.recordFailure(account: nil)
                self.relay.logAccess(.supportCode, .rejected, source: source)
                if let pausedFor {
                    // Live codes stay valid; only new attempts wait (OPERATIONS.md "Abuse resistance").
                    self.relay.metrics.codeRedemptionPauses.increment()
                    self.logger.warning(
                        "support-code redemption paused relay-wide: the guess budget is spent, a guessing attack is likely",
                        metadata: ["seconds": "\(RetryWait.seconds(pausedFor))"]
                    )
                }
                self.fail(.invalidCode, "that support code is wrong, expired or already used; ask the engineer for a new code")
            case .paused(let wait):
                self.relay.metrics.authThrottled.increment()
                self.relay.logAccess(.supportCode, .throttled, source: source, detail: "redemption paused")
                self.fail(.rateLimited, PairingBook<ConnectionLink, ConnectionLink>.pausedMessage(retryAfter: wait))
            }
        case .enrolled(let hostID, let secret):
            guard !self.refuseIfThrottled(event: .hostSecret) else { return }
            let store = self.relay.store
            self.relay.threadPool.runIfActive(eventLoop: link.channel.eventLoop) {
                try store.authenticateHost(id: hostID, secret: secret)
            }.assumeIsolated().whenComplete { result in
                self.hostAuthenticated(result, hostID: hostID)
            }
        }
    }

    /// Credentials accepted: the handshake deadline ends, and frames up to the relay's
    /// payload limit are accepted from now on (PROTOCOL.md §9).
    private func authenticated() {
        self.stateMachine.authenticationSucceeded()
        if self.countedBySource && !self.authenticatedBySource {
            self.authenticatedBySource = true
            self.relay.admission.withLockedValue { $0.authenticated(self.source) }
        }
        self.deadlines?.authenticated()
        // A support code is checked inside a scan, which has the scanner borrowed: raise
        // the limit once the scan returns (the rest of that chunk keeps the small one).
        if self.scanning {
            self.raiseControlLimitAfterScan = true
        } else {
            self.scanner.maximumControlPayloadLength = self.relay.configuration.maximumPayloadLength
        }
    }

    private func hostAuthenticated(_ result: Result<EnrolledHost?, any Error>, hostID: String) {
        guard !self.isClosing, let link = self.link else { return }
        switch result {
        case .success(let host?):
            self.relay.logAccess(.hostSecret, .accepted, source: link.remoteAddress, companyID: host.companyID, subject: host.id)
            self.authenticated()
            _ = self.stateMachine.holds(.registration(hostID: host.id))
            link.party = Party(
                name: host.name, companyID: host.companyID, software: self.hello?.software ?? "", capabilities: self.hello?.capabilities ?? [],
                hostID: host.id, credential: .init(kind: .host, id: host.id, digest: host.secretDigest)
            )
            let replaced = self.relay.pairing.withLockedValue { $0.register(link, hostID: host.id, companyID: host.companyID) }
            replaced?.deliver(.bye(.revoked, "a newer connection of host \(host.id) registered; this one is closed"))
            self.send(.hostRegistered(HostRegistered(hostName: host.name)))
        case .success(nil):
            self.recordFailure(account: "host:" + String(hostID.prefix(64)))
            self.relay.logAccess(.hostSecret, .rejected, source: link.remoteAddress, subject: String(hostID.prefix(64)))
            self.fail(.authenticationFailed, "host id or secret not accepted; use the values `relay-server host enroll` printed, or ask an admin to rotate the secret")
        case .failure(let error):
            self.logger.error("host authentication failed", metadata: ["error": "\(error)"])
            self.fail(.internalError, "the relay could not check the credentials; try again, and tell the relay operator if it persists")
        }
    }

    private func authenticateViewer(_ auth: ViewerAuth) {
        guard let link = self.link else { return }
        let engineerKey = "engineer:" + String((Secrets.splitToken(auth.token)?.id ?? "malformed").prefix(64))
        guard !self.refuseIfThrottled(event: .viewerToken) else { return }
        let store = self.relay.store
        let token = auth.token
        self.relay.threadPool.runIfActive(eventLoop: link.channel.eventLoop) {
            try store.authenticateEngineer(token: token)
        }.assumeIsolated().whenComplete { result in
            self.viewerAuthenticated(result, request: auth.request, engineerKey: engineerKey)
        }
    }

    private func viewerAuthenticated(_ result: Result<Engineer?, any Error>, request: ViewerAuth.Request, engineerKey: String) {
        guard !self.isClosing, let link = self.link else { return }
        switch result {
        case .success(let engineer?):
            self.relay.logAccess(.viewerToken, .accepted, source: link.remoteAddress, companyID: engineer.companyID, subject: engineer.login)
            self.authenticated()
            link.party = Party(
                name: engineer.login, companyID: engineer.companyID, organization: engineer.companyName, software: self.hello?.software ?? "", capabilities: self.hello?.capabilities ?? [],
                credential: .init(kind: .engineer, id: engineer.id, digest: engineer.tokenDigest)
            )
            switch request {
            case .newSupportCode:
                var generator = SystemRandomNumberGenerator()
                let issue = self.relay.pairing.withLockedValue {
                    $0.issueCode(for: link, engineerID: engineer.id, companyID: engineer.companyID, now: .now(), using: &generator)
                }
                if let withdrawn = issue.withdrawn {
                    let text = self.relay.pairing.withLockedValue { $0.withdrawnForNewerCodeMessage(withdrawn) }
                    withdrawn.viewer.deliver(.fail(.invalidCode, text))
                }
                let issued = issue.issued
                _ = self.stateMachine.holds(.supportCode)
                let seconds = self.relay.configuration.supportCodeValidity.nanoseconds / 1_000_000_000
                self.send(.codeIssued(CodeIssued(code: issued.code, validForSeconds: UInt32(seconds))))
            case .connect(let hostID):
                let claim = self.relay.pairing.withLockedValue { $0.claim(hostID: hostID, companyID: engineer.companyID) }
                switch claim {
                case .claimed(let hostLink):
                    self.pair(host: hostLink, viewer: link, mode: .unattended)
                case .noSuchHost:
                    self.fail(.noSuchHost, "no host \(hostID) is online for your company; check the id and that its agent is running")
                case .busy:
                    self.fail(.hostBusy, "host \(hostID) already has a viewer; try again when that session ends")
                }
            }
        case .success(nil):
            self.recordFailure(account: engineerKey)
            self.relay.logAccess(.viewerToken, .rejected, source: link.remoteAddress, subject: engineerKey)
            self.fail(.authenticationFailed, "engineer token not accepted; use the token `relay-server engineer add` printed, or ask an admin to rotate it")
        case .failure(let error):
            self.logger.error("viewer authentication failed", metadata: ["error": "\(error)"])
            self.fail(.internalError, "the relay could not check the token; try again, and tell the relay operator if it persists")
        }
    }

    // MARK: Pairing and forwarding

    /// Creates the session, pairs this side at once and tells the other side, whose
    /// handler pairs itself on its own event loop. Peer bytes that reach a side before it
    /// has sent Paired wait in ``ForwardingState``, so Paired always comes first.
    private func pair(host: ConnectionLink, viewer: ConnectionLink, mode: PairingMode) {
        guard let hostParty = host.party, let viewerParty = viewer.party else { return }
        let session = RelaySession(
            mode: mode, companyID: viewerParty.companyID, engineerLogin: viewerParty.name,
            hostID: hostParty.hostID, hostName: hostParty.name, host: host, viewer: viewer, startedAt: self.relay.now()
        )
        self.relay.started(session)
        let other = session.peer(of: self.link!)
        self.enterSession(session)
        other.deliver(.paired(session))
    }

    private func enterSession(_ session: RelaySession) {
        guard let link = self.link, self.stateMachine.pairedWithPeer(SessionLink(session: session, peer: session.peer(of: link))) else {
            // This side closed before the pairing reached it (its link may be gone already).
            if session.end(reason: .peerLeft) {
                let other = ObjectIdentifier(session.host) == self.linkIdentity ? session.viewer : session.host
                other.deliver(.peerLeft(.peerLeft, "the other side disconnected before the session started"))
                self.relay.ended(session)
            }
            return
        }
        let peer = session.peer(of: link)
        self.logger[metadataKey: "session"] = "\(session.id)"
        let peerParty = peer.party
        // The host learns the engineer's company from the relay's records (PROTOCOL.md
        // §5.1.7); an enrolled host belongs to the engineer's own company.
        var peerOrganization = peerParty?.organization ?? ""
        if peerOrganization.isEmpty, session.mode == .unattended, ObjectIdentifier(session.viewer) == self.linkIdentity {
            peerOrganization = link.party?.organization ?? ""
        }
        self.send(.paired(Paired(
            sessionID: session.id, mode: session.mode,
            peerCapabilities: peerParty?.capabilities ?? [],
            peerName: peerParty?.name ?? "",
            peerSoftware: peerParty?.software ?? "",
            peerOrganization: peerOrganization
        )))
        if let early = self.forwarding.takeHeldBeforePaired() {
            self.writeForwarded(early.runs, bytes: early.bytes, owedAfter: early.owedAfter)
        }
    }

    func handle(_ event: LinkEvent) {
        switch event {
        case .paired(let session):
            self.enterSession(session)
        case .peerLeft(let reason, let text):
            guard !self.isClosing else { return }
            self.stateMachine.peerEndedSession()  // the peer already ended it
            self.sendBye(reason, text)
        case .fail(let code, let text):
            guard !self.isClosing else { return }
            if code == .invalidCode || code == .timeout { self.stateMachine.lostHolding() }  // the relay withdrew the code
            self.fail(code, text)
        case .bye(let reason, let text):
            guard !self.isClosing else { return }
            self.sendBye(reason, text)
        case .resumeReading:
            self.resumeReading()
        case .forward(let runs, let bytes, let owedAfter):
            self.writeForwarded(runs, bytes: bytes, owedAfter: owedAfter)
        }
    }

    /// Sends the peer-frame bytes gathered in this read cycle to the other side.
    private func forwardPendingRuns(owedAfter: Int) {
        guard let (runs, runBytes) = self.forwarding.takeCollected() else { return }
        guard let session = self.session, let peer = self.peer, let role = self.stateMachine.role else { return }
        session.count(bytes: UInt64(runBytes), frames: 0, from: role)
        (role == .host ? self.relay.metrics.bytesToViewer : self.relay.metrics.bytesToHost).increment(by: Int64(runBytes))
        if self.forwarding.handedOver(inFlight: session.addInFlight(runBytes, to: role == .host ? .viewer : .host)) {
            self.deadlines?.pausedReading()
        }
        peer.forward(runs, bytes: runBytes, owedAfter: owedAfter)
    }

    /// Writes the other side's bytes to this connection (called on this event loop), then
    /// the relay frames that waited for the frame boundary they reach, and once they are on
    /// the socket, lets the other side read again if it was paused.
    func writeForwarded(_ runs: [ByteBuffer], bytes: Int, owedAfter: Int) {
        guard let context = self.context, !self.isClosing, !runs.isEmpty else { return }
        guard let session = self.session, let role = self.stateMachine.role, let peer = self.peer else {
            self.forwarding.holdBeforePaired(runs, bytes: bytes, owedAfter: owedAfter)
            return
        }
        let buffers = self.forwarding.outgoing(runs, bytes: bytes, owedAfter: owedAfter)
        let written = context.eventLoop.makePromise(of: Void.self)
        for buffer in buffers.dropLast() {
            context.write(self.wrapOutboundOut(buffer), promise: nil)
        }
        context.writeAndFlush(self.wrapOutboundOut(buffers[buffers.count - 1]), promise: written)
        let lowWater = self.forwarding.lowWater
        written.futureResult.whenComplete { _ in
            let remaining = session.removeInFlight(bytes, to: role)
            if ForwardingState.drained(remaining: remaining, written: bytes, lowWater: lowWater) {
                peer.deliver(.resumeReading)
            }
        }
    }

    private func resumeReading() {
        let readHeld = self.forwarding.resumed()
        guard let context = self.context else { return }
        self.deadlines?.resumedReading(at: context.eventLoop.now)
        self.armDeadlineTimer()
        if readHeld { context.read() }
    }

    func read(context: ChannelHandlerContext) {
        if self.forwarding.readRequested() { context.read() }
    }

    // MARK: Output

    /// Sends a frame of the relay's own, at the next frame boundary of this connection's
    /// output (PROTOCOL.md §2.3).
    private func send(_ message: RelayMessage) {
        guard let context = self.context, let frame = self.encode(message, context: context) else { return }
        var droppable = false
        if case .pong = message { droppable = true }
        switch self.forwarding.relayFrame(frame, droppable: droppable) {
        case .write:
            context.writeAndFlush(self.wrapOutboundOut(frame), promise: nil)
        case .held:
            break
        case .dropped:
            self.logger.debug("Pong dropped: too many relay frames wait for a peer frame to end")
        }
    }

    /// Sends the last frame before this connection closes: an unfinished forwarded frame is
    /// completed with zero bytes first, so that `message` still arrives whole (§2.3).
    private func sendLast(_ message: RelayMessage) {
        guard let context = self.context, let frame = self.encode(message, context: context) else { return }
        var (padding, held) = self.forwarding.finish()
        if padding > 0 {
            self.relay.metrics.framesPadded.increment()
            let zeros = context.channel.allocator.buffer(repeating: 0, count: min(padding, 64 * 1024))
            while padding > 0 {
                let piece = zeros.getSlice(at: zeros.readerIndex, length: min(padding, zeros.readableBytes))!
                context.write(self.wrapOutboundOut(piece), promise: nil)
                padding -= piece.readableBytes
            }
        }
        for earlier in held {
            context.write(self.wrapOutboundOut(earlier), promise: nil)
        }
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(self.wrapOutboundOut(frame), promise: written)
        self.lastWrite = written.futureResult
    }

    /// The last frame's write, once `sendLast` has run: the connection closes after it.
    private var lastWrite: EventLoopFuture<Void>?
    /// How long a last frame may take to leave before the connection is closed anyway
    /// (a receiver that stopped reading must not hold the connection open).
    private static let lastWriteGrace = TimeAmount.seconds(10)

    /// Closes once the last frame (and any padding before it) has been written, so that a
    /// Bye or Error is not cut off by the close; at the latest after ``lastWriteGrace``.
    private func closeAfterLastWrite() {
        guard let context = self.context else { return }
        guard let lastWrite = self.lastWrite else {
            context.close(promise: nil)
            return
        }
        let channel = context.channel
        let deadline = context.eventLoop.scheduleTask(in: Self.lastWriteGrace) { channel.close(promise: nil) }
        lastWrite.whenComplete { _ in
            deadline.cancel()
            channel.close(promise: nil)
        }
    }

    private func encode(_ message: RelayMessage, context: ChannelHandlerContext) -> ByteBuffer? {
        do {
            return try Frame(message, allocator: context.channel.allocator).bytes
        } catch {
            self.logger.error("cannot encode \(message.type.name)", metadata: ["error": "\(error)"])
            return nil
        }
    }

    private func fail(_ code: ErrorCode, _ text: String) {
        self.logger.info("closing with error", metadata: ["code": "\(code)", "message": "\(text)"])
        self.sendLast(.error(ErrorMessage(code: code, message: text)))
        self.tearDown(peerReason: code == .malformedMessage || code == .frameTooLarge || code == .unexpectedMessage ? .protocolError : .peerLeft, peerText: "the other side failed: \(text)")
        self.closeAfterLastWrite()
    }

    private func sendBye(_ reason: ByeReason, _ text: String) {
        self.sendLast(.bye(Bye(reason: reason, text: text)))
        self.tearDown(peerReason: reason == .relayShutdown ? .relayShutdown : .peerLeft, peerText: "the other side was disconnected: \(text)", recorded: reason)
        self.closeAfterLastWrite()
    }

    private static func describe(_ address: SocketAddress) -> String {
        if let ip = address.ipAddress, let port = address.port {
            return address.protocol == .inet6 ? "[\(ip)]:\(port)" : "\(ip):\(port)"
        }
        return "\(address)"
    }
}
