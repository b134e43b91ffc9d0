import Logging
import NIOCore
import RelayWire

/// One agent connection, over any transport that delivers its bytes in order
/// (docs/ARCHITECTURE.md "One frame across the relay", "Adding a transport"). Thin: bytes
/// go through ``FrameScanner``; every decision is made by ``ConnectionStateMachine``
/// (messages, authentication steps, endings), ``ForwardingState`` (cut-through,
/// backpressure) and ``ConnectionDeadlines`` (on the event loop's clock). This class feeds
/// them events and carries out what they return, reaching the relay only through
/// ``ConnectionEnvironment`` (PROTOCOL.md §8). Its output goes through
/// ``FrameBoundaryHandler``, which keeps it whole frames.
final class RelayConnectionHandler: ChannelDuplexHandler, LinkEndpoint {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ConnectionOutput

    /// The connection core, to add to a transport's pipeline after the handlers that turn
    /// its bytes into the protocol's byte stream.
    /// On the cluster port (`nodeLinks`), whose TLS admits only holders of the cluster key,
    /// the core takes node links (NodeAuth) instead of agents' logins.
    static func core(environment: any ConnectionEnvironment, nodeLinks: Bool = false) -> [any ChannelHandler] {
        [
            FrameBoundaryHandler(metrics: environment.metrics, logger: environment.logger),
            RelayConnectionHandler(environment: environment, nodeLinks: nodeLinks),
        ]
    }

    private let environment: any ConnectionEnvironment
    private let limits: ConnectionLimits
    private let metrics: RelayMetrics
    private var logger: Logger
    private var stateMachine = RelayConnectionStateMachine() {
        didSet { self.hot = HotPath(self.stateMachine) }
    }
    /// What every read and every forwarded write asks of the state machine, read once per
    /// change of it (didSet) rather than on each of them: the state machine's accessors
    /// copy its stage and Hello out, retains and releases that cost about a tenth of the
    /// relay's CPU per small frame (benchmarks/RESULTS.md "Small frames").
    private var hot = HotPath()
    private var scanner: FrameScanner
    /// Cut-through both ways, and backpressure.
    private var forwarding: ForwardingState
    /// The handshake deadline and the idle timeout, on the event loop's clock.
    private var deadlines: ConnectionDeadlines?
    private var deadlineTimer: Scheduled<Void>?

    private var context: ChannelHandlerContext?
    private(set) var link: ConnectionLink?
    /// Which of a session's two links is this connection's, after `link` is released.
    private var linkIdentity: ObjectIdentifier?
    /// Whom failures and connection caps are charged to: the IPv4 address or IPv6 /64.
    private var source = SourceKey.unknown
    /// How the relay counted this connection in (nil: refused, or counted out).
    private var ticket: AdmissionTicket?
    /// A connection of the cluster port (see ``core(environment:nodeLinks:)``).
    private let nodeLinks: Bool

    init(environment: any ConnectionEnvironment, nodeLinks: Bool = false) {
        self.nodeLinks = nodeLinks
        self.environment = environment
        self.limits = environment.limits
        self.metrics = environment.metrics
        self.logger = environment.logger
        self.scanner = FrameScanner(maximumPayloadLength: self.limits.maximumPayloadLength)
        self.forwarding = ForwardingState(highWater: self.limits.writeBufferHighWater, lowWater: self.limits.writeBufferLowWater)
        environment.handlerCreated()
    }

    deinit {
        self.environment.handlerReleased()
    }

    // MARK: Lifecycle

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let remote = context.channel.remoteAddress
        let link = ConnectionLink(channel: context.channel, handler: self)
        self.link = link
        self.linkIdentity = ObjectIdentifier(link)
        self.source = SourceKey(remote)
        self.stateMachine = RelayConnectionStateMachine(address: remote?.ipAddress ?? "unknown")
        if self.nodeLinks { self.stateMachine.onClusterPort() }
        self.logger[metadataKey: "peer"] = "\(link.remoteAddress)"
    }

    func channelActive(context: ChannelHandlerContext) {
        self.metrics.connectionsAccepted.increment()
        let admitted = self.nodeLinks ? self.environment.admitNodeLink(link: self.link) : self.link.flatMap { self.environment.admit($0, source: self.source) }
        guard let ticket = admitted else {
            // Closed before the TLS handshake: answering would cost the work the cap saves.
            self.stateMachine.close()
            return context.close(promise: nil)
        }
        self.ticket = ticket
        if !ticket.opened { self.stateMachine.relayIsFull() }
        self.deadlines = ConnectionDeadlines(
            handshakeTimeout: self.limits.handshakeTimeout, idleTimeout: self.limits.idleTimeout, openedAt: context.eventLoop.now
        )
        self.armDeadlineTimer()
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.tearDown()
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

    /// Gives back everything this connection holds, and tells its peer, once, why it ended.
    private func tearDown() {
        self.deadlineTimer?.cancel()
        self.deadlineTimer = nil
        self.deadlines = nil
        let release = self.stateMachine.close()
        guard let link = self.link else { return }
        self.environment.closed(link, release: release, ticket: self.ticket)
        self.ticket = nil
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.logger.info("connection error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }

    // MARK: Inbound

    /// The transport proved the agent's key (a TLS client certificate): the machine keeps it
    /// for a key login.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let proved = event as? ClientKeyProved {
            self.stateMachine.clientKeyProved(proved.publicKey)
            return
        }
        if let streaming = event as? WebResponseStreaming {
            if streaming.active {
                self.deadlines?.authenticated()
                self.deadlines?.pausedReading()
            } else {
                self.deadlines?.resumedReading(at: context.eventLoop.now)
                self.armDeadlineTimer()
            }
            return
        }
        if let proved = event as? WebSessionProved {
            self.stateMachine.webSessionProved(engineerID: proved.engineerID, sessionDigest: proved.sessionDigest)
            if var ticket = self.ticket {
                self.environment.authenticatedByTransport(ticket: &ticket)
                self.ticket = ticket
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    private struct PeerDataBeforePairing: Error {}

    /// The state machine's answers the data path needs (see `hot`).
    private struct HotPath {
        var isClosed = false
        var isHandshaking = true
        var isPaired = false
        /// The session and this side's role, exactly while paired and open.
        var paired: (session: SessionLink, role: Role)?

        init() {}

        init(_ machine: RelayConnectionStateMachine) {
            self.isClosed = machine.isClosed
            self.isHandshaking = machine.isHandshaking
            self.isPaired = machine.isPaired
            if let session = machine.session, let role = machine.role { self.paired = (session, role) }
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // After an error the connection is closing; bytes still in flight mean nothing.
        guard !self.hot.isClosed else { return }
        self.deadlines?.read(at: context.eventLoop.now)
        // Until the connection has authenticated, only small control frames (PROTOCOL.md §9).
        // A support code is redeemed during a scan: the rest of that chunk keeps the small limit.
        let authenticated = !self.hot.isHandshaking
        self.scanner.maximumControlPayloadLength = authenticated ? self.limits.maximumPayloadLength : Frame.maximumPayloadBeforeAuthentication
        // A Bye in this chunk may end the session mid-scan; its frames still count.
        let paired = self.hot.paired
        do {
            try self.scanner.scan(
                self.unwrapInboundIn(data),
                forward: { (run: ByteBuffer) throws(PeerDataBeforePairing) in
                    guard self.hot.isPaired else { throw PeerDataBeforePairing() }
                    self.forwarding.collect(run)
                },
                control: { (frame: Frame) throws(PeerDataBeforePairing) in
                    // Peer bytes that came before this frame go first: a Bye must not
                    // overtake the input sent just ahead of it. A control frame starts at
                    // a boundary, so those bytes end with a whole frame.
                    self.forwardPendingRuns(owedAfter: 0)
                    self.perform(self.stateMachine.received(frame: frame))
                }
            )
        } catch .wire(let error) {
            self.perform(self.stateMachine.receivedMalformed(error.kind == .frameTooLarge ? .frameTooLarge : .malformedMessage, error.description))
        } catch {
            self.perform(self.stateMachine.receivedPeerData())
        }
        let frames = self.forwarding.scanned(peerFrames: self.scanner.peerFrames, paired: self.hot.isPaired)
        if frames > 0, let paired { paired.session.session.count(bytes: 0, frames: frames, from: paired.role, metrics: self.metrics) }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.forwardPendingRuns(owedAfter: self.scanner.peerBytesOwed)
    }

    // MARK: Deadlines

    /// Arms the one timer for the next deadline, unless it is armed already: reads move
    /// the idle deadline later without touching the timer, which re-arms when it fires early.
    private func armDeadlineTimer() {
        guard self.deadlineTimer == nil, let context = self.context, let next = self.deadlines?.next else { return }
        self.deadlineTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: next) {
            self.deadlineTimer = nil
            guard let context = self.context, let deadlines = self.deadlines else { return }
            switch deadlines.expired(at: context.eventLoop.now) {
            case .handshake: self.perform(self.stateMachine.handshakeDeadlinePassed())
            case .idle: self.perform(self.stateMachine.idleTimeoutPassed(self.limits.idleTimeout))
            case nil: self.armDeadlineTimer()
            }
        }
    }

    // MARK: Actions

    private func perform(_ action: RelayConnectionStateMachine.Action) {
        guard let link = self.link else { return }
        switch action {
        case .none:
            break
        case .send(let message):
            self.send(message)
        case .acceptHello(let hello):
            self.logger[metadataKey: "role"] = "\(hello.role)"
            let limit = UInt32(self.limits.maximumPayloadLength)
            self.send(.helloAck(HelloAck(capabilities: hello.capabilities, maximumPayloadLength: limit, relayNode: self.limits.nodeName)))
        case .ask(let question):
            self.environment.answer(question, for: link, source: self.source).assumeIsolated().whenSuccess { answer in
                let next = self.stateMachine.answered(answer)
                // A node link dialled for this connection that it no longer pairs with (it
                // closed meanwhile) is ended, or the other node's agent would wait on it.
                if let dialled = answer.dialledLink, !next.pairs(with: dialled) {
                    dialled.deliver(.peerLeft(.peerLeft, "the other side disconnected before the session started"))
                }
                self.perform(next)
            }
        case .authenticated(let party, let access, let next):
            self.authenticated(as: party, access: access)
            self.perform(next)
        case .registerHost(let hostID, let companyID, let announce):
            self.environment.register(link, hostID: hostID, companyID: companyID)
            self.send(.hostRegistered(announce))
        case .pair(let peer, let mode):
            // This side pairs at once; the other side pairs itself on its own event loop.
            // Peer bytes that reach a side before its Paired wait in ForwardingState.
            let (host, viewer) = mode == .attended ? (link, peer) : (peer, link)
            guard let session = self.environment.startSession(host: host, viewer: viewer, mode: mode) else { return }
            self.enterSession(session)
            peer.deliver(.paired(session))
        case .refuse(let refusal):
            self.environment.refused(refusal, source: self.source, address: link.remoteAddress)
            self.close(sending: .error(ErrorMessage(code: refusal.code, message: refusal.text)))
        case .fail(let code, let text):
            if code == .malformedMessage || code == .frameTooLarge { self.metrics.protocolErrors.increment() }
            self.close(sending: .error(ErrorMessage(code: code, message: text)))
        case .leave(let reason, let text):
            self.close(sending: .bye(Bye(reason: reason, text: text)))
        case .close:
            self.tearDown()
            self.context?.close(promise: nil)
        }
    }

    /// Credentials accepted: the handshake deadline ends, and frames up to the relay's
    /// payload limit are accepted from the next read on (PROTOCOL.md §9).
    private func authenticated(as party: Party, access: RelayConnectionStateMachine.AccessNote?) {
        guard let link = self.link, var ticket = self.ticket else { return }
        link.party = party
        if let access {
            self.environment.accepted(access, address: link.remoteAddress, ticket: &ticket)
            self.ticket = ticket
        }
        self.deadlines?.authenticated()
    }

    private func enterSession(_ session: RelaySession) {
        guard let link = self.link, self.stateMachine.pairedWithPeer(SessionLink(session: session, peer: session.peer(of: link))) else {
            // This side closed before the pairing reached it (its link may be gone already).
            if let identity = self.linkIdentity { self.environment.abandon(session, by: identity) }
            return
        }
        self.logger[metadataKey: "session"] = "\(session.id)"
        self.send(.paired(session.paired(for: link)))
        if let early = self.forwarding.takeHeldBeforePaired() {
            self.writeForwarded(early.runs, bytes: early.bytes, owedAfter: early.owedAfter)
        }
    }

    func handle(_ event: LinkEvent) {
        switch event {
        case .paired(let session): self.enterSession(session)
        case .peerLeft(let reason, let text): self.perform(self.stateMachine.peerLeft(reason, text))
        case .codeWithdrawn(let code, let text): self.perform(self.stateMachine.codeWithdrawn(code, text))
        case .bye(let reason, let text): self.perform(self.stateMachine.relayEnds(reason, text))
        case .resumeReading: self.resumeReading()
        case .forward(let runs, let bytes, let owedAfter): self.writeForwarded(runs, bytes: bytes, owedAfter: owedAfter)
        }
    }

    // MARK: Forwarding

    /// Hands the peer-frame bytes gathered in this read cycle to the other side, counting
    /// them and the frames that ended in earlier scans (their bytes went with these or before).
    private func forwardPendingRuns(owedAfter: Int) {
        let batch = self.forwarding.takeCollected()
        guard let batch, let (paired, role) = self.hot.paired else { return }
        paired.session.count(bytes: UInt64(batch.bytes), frames: batch.frames, from: role, metrics: self.metrics)
        guard !batch.runs.isEmpty else { return }
        if self.forwarding.handedOver(inFlight: paired.session.addInFlight(batch.bytes, to: role == .host ? .viewer : .host)) {
            self.deadlines?.pausedReading()
        }
        paired.peer.forward(batch.runs, bytes: batch.bytes, owedAfter: owedAfter)
    }

    /// Writes the other side's bytes to this connection (called on this event loop), and
    /// once they are on the socket, lets the other side read again if it was paused.
    func writeForwarded(_ runs: [ByteBuffer], bytes: Int, owedAfter: Int) {
        guard let context = self.context, !self.hot.isClosed, !runs.isEmpty else { return }
        guard let (paired, role) = self.hot.paired else {
            return self.forwarding.holdBeforePaired(runs, bytes: bytes, owedAfter: owedAfter)
        }
        let lowWater = self.forwarding.lowWater
        context.writeAndFlush(self.wrapOutboundOut(.forwarded(runs, bytes: bytes, owedAfter: owedAfter))).whenComplete { _ in
            let remaining = paired.session.removeInFlight(bytes, to: role)
            if ForwardingState.drained(remaining: remaining, written: bytes, lowWater: lowWater) {
                paired.peer.deliver(.resumeReading)
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

    /// Sends a message of the relay's own (at the output's next frame boundary, §2.3).
    private func send(_ message: RelayMessage) {
        self.context?.writeAndFlush(self.wrapOutboundOut(.message(message)), promise: nil)
    }

    /// Sends the last message (Error or Bye) and gives back what the connection holds;
    /// ``FrameBoundaryHandler`` closes the connection once it is written.
    private func close(sending message: RelayMessage) {
        if case .error(let error) = message {
            self.logger.info("closing with error", metadata: ["code": "\(error.code)", "message": "\(error.message)"])
        }
        self.context?.writeAndFlush(self.wrapOutboundOut(.lastMessage(message)), promise: nil)
        self.tearDown()
    }
}
