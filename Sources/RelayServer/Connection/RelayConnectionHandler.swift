import Logging
import NIOCore
import RelayWire

/// One agent connection, over any transport that delivers its bytes in order
/// (docs/ARCHITECTURE.md "One frame across the relay", "Adding a transport"). Thin: bytes
/// go through ``FrameScanner``; every decision is made by ``ConnectionStateMachine``
/// (messages, authentication steps, endings), ``ForwardingState`` (cut-through, frame
/// boundaries, backpressure) and ``ConnectionDeadlines`` (on the event loop's clock).
/// This class feeds them events and carries out what they return, reaching the relay
/// only through ``ConnectionEnvironment`` (PROTOCOL.md §8).
final class RelayConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let environment: any ConnectionEnvironment
    private let limits: ConnectionLimits
    private let metrics: RelayMetrics
    private var logger: Logger
    private var stateMachine = RelayConnectionStateMachine()
    private var scanner: FrameScanner
    /// Cut-through both ways, whole frames out, and backpressure.
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
    /// Counted in by the per-source caps, and authenticated there; counted in relay-wide.
    private var countedBySource = false
    private var authenticatedBySource = false
    private var opened = false
    /// True while `scanner` is scanning (and so cannot be changed).
    private var scanning = false
    private var raiseControlLimitAfterScan = false
    private var countedFrames: UInt64 = 0
    /// Frames the scanner finished whose count waits for their bytes to be counted.
    private var uncountedFrames: UInt64 = 0
    /// The last frame's write, once `sendLast` has run: the connection closes after it.
    private var lastWrite: EventLoopFuture<Void>?
    /// How long a last frame may take to leave before the connection is closed anyway
    /// (a receiver that stopped reading must not hold the connection open).
    private static let lastWriteGrace = TimeAmount.seconds(10)

    init(environment: any ConnectionEnvironment) {
        self.environment = environment
        self.limits = environment.limits
        self.metrics = environment.metrics
        self.logger = environment.logger
        self.scanner = FrameScanner(maximumPayloadLength: self.limits.maximumPayloadLength)
        // Until the connection has authenticated, only small control frames (PROTOCOL.md §9).
        self.scanner.maximumControlPayloadLength = Frame.maximumPayloadBeforeAuthentication
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
        self.logger[metadataKey: "peer"] = "\(link.remoteAddress)"
    }

    func channelActive(context: ChannelHandlerContext) {
        self.metrics.connectionsAccepted.increment()
        if case .refused(let refusal) = self.environment.admit(source: self.source) {
            // Closed before the TLS handshake: answering would cost the work the cap saves.
            self.metrics.connectionsRejected.increment()
            self.logger.debug("connection refused", metadata: ["source": "\(self.source)", "reason": "\(refusal)"])
            self.stateMachine.close()
            context.close(promise: nil)
            return
        }
        self.countedBySource = true
        if let link = self.link { self.opened = self.environment.open(link) }
        if !self.opened { self.stateMachine.relayIsFull() }
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
        let counted = self.countedBySource ? (self.source, self.authenticatedBySource) : nil
        self.environment.closed(link, release: release, opened: self.opened, counted: counted)
        self.opened = false
        self.countedBySource = false
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.logger.info("connection error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }

    // MARK: Inbound

    private struct PeerDataBeforePairing: Error {}

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // After an error the connection is closing; bytes still in flight mean nothing.
        guard !self.stateMachine.isClosed else { return }
        let chunk = self.unwrapInboundIn(data)
        self.deadlines?.read(at: context.eventLoop.now)
        // A Bye in this chunk may end the session mid-scan; its frames still count.
        let (session, role) = (self.stateMachine.session?.session, self.stateMachine.role)
        self.scanning = true
        defer {
            self.scanning = false
            if self.raiseControlLimitAfterScan {
                self.raiseControlLimitAfterScan = false
                self.scanner.maximumControlPayloadLength = self.limits.maximumPayloadLength
            }
        }
        do {
            try self.scanner.scan(
                chunk,
                forward: { (run: ByteBuffer) throws(PeerDataBeforePairing) in
                    guard self.stateMachine.isPaired else { throw PeerDataBeforePairing() }
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
                self.metrics.protocolErrors.increment()
                self.perform(self.stateMachine.receivedMalformed(error.kind == .frameTooLarge ? .frameTooLarge : .malformedMessage, error.description))
            case .handler:
                self.perform(self.stateMachine.receivedPeerData())
            }
        }
        // Frames are counted once the scan is over (the scanner is busy during it), and
        // with or after their bytes (forwardPendingRuns): a usage checkpoint read between
        // two reads never shows a frame whose bytes it does not count.
        let frames = self.scanner.peerFrames - self.countedFrames
        self.countedFrames = self.scanner.peerFrames
        if frames > 0, let session, let role {
            if self.stateMachine.isPaired {
                self.uncountedFrames += frames
            } else {
                self.count(bytes: 0, frames: frames, of: session, from: role)  // ended in this chunk, its bytes sent
            }
        }
    }

    private func count(bytes: Int, frames: UInt64, of session: RelaySession, from role: Role) {
        session.count(bytes: UInt64(bytes), frames: frames, from: role)
        (role == .host ? self.metrics.bytesToViewer : self.metrics.bytesToHost).increment(by: Int64(bytes))
        (role == .host ? self.metrics.framesToViewer : self.metrics.framesToHost).increment(by: Int64(frames))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.forwardPendingRuns(owedAfter: self.scanner.peerBytesOwed)
    }

    private func receivedControlFrame(_ frame: Frame) {
        guard !self.stateMachine.isClosed else { return }
        do {
            self.perform(self.stateMachine.received(try RelayMessage(frame)))
        } catch {
            // A Hello of another version may have another layout: its first two bytes
            // are the version in every version (PROTOCOL.md §5.1.1).
            if frame.type == .hello, let version = frame.payload.getInteger(at: frame.payload.readerIndex, as: UInt16.self), version != RelayProtocol.version {
                self.perform(self.stateMachine.receivedHello(ofVersion: version))
            } else {
                self.metrics.protocolErrors.increment()
                self.perform(self.stateMachine.receivedMalformed(.malformedMessage, error.description))
            }
        }
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
            self.send(
                .helloAck(
                    HelloAck(capabilities: hello.capabilities, maximumPayloadLength: UInt32(self.limits.maximumPayloadLength), relayNode: self.limits.nodeName))
            )
        case .checkThrottle:
            self.perform(self.stateMachine.throttleChecked(retryAfter: self.environment.retryAfter(source: self.source), source: self.source))
        case .redeem(let code):
            self.perform(self.stateMachine.redeemed(self.environment.redeem(code)))
        case .verifyHost(let id, let secret):
            self.environment.verifyHost(id: id, secret: secret, on: link.channel.eventLoop).assumeIsolated().whenComplete { result in
                self.perform(self.verified(result) { self.stateMachine.hostVerified($0) })
            }
        case .verifyEngineer(let token):
            self.environment.verifyEngineer(token: token, on: link.channel.eventLoop).assumeIsolated().whenComplete { result in
                self.perform(self.verified(result) { self.stateMachine.engineerVerified($0) })
            }
        case .authenticated(let party, let access, let next):
            self.authenticated(as: party, access: access)
            self.perform(next)
        case .registerHost(let hostID, let companyID, let announce):
            self.environment.register(link, hostID: hostID, companyID: companyID)
            self.send(.hostRegistered(announce))
        case .issueCode(let engineerID, let companyID):
            let code = self.environment.issueCode(for: link, engineerID: engineerID, companyID: companyID)
            self.perform(self.stateMachine.codeIssued(code, validFor: self.limits.supportCodeValidity))
        case .claimHost(let hostID, let companyID):
            self.perform(self.stateMachine.claimed(self.environment.claim(hostID: hostID, companyID: companyID), hostID: hostID))
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
            self.close(sending: .error(ErrorMessage(code: code, message: text)))
        case .leave(let reason, let text):
            self.close(sending: .bye(Bye(reason: reason, text: text)))
        case .close:
            self.tearDown()
            self.context?.close(promise: nil)
        }
    }

    /// A credential check's result, as the state machine's input; a store failure is logged.
    private func verified<T>(_ result: Result<T?, any Error>, _ input: (T?) -> RelayConnectionStateMachine.Action) -> RelayConnectionStateMachine.Action {
        switch result {
        case .success(let value): return input(value)
        case .failure(let error):
            self.logger.error("credential check failed", metadata: ["error": "\(error)"])
            return self.stateMachine.verificationFailed()
        }
    }

    /// Credentials accepted: the handshake deadline ends, and frames up to the relay's
    /// payload limit are accepted from now on (PROTOCOL.md §9).
    private func authenticated(as party: Party, access: RelayConnectionStateMachine.AccessNote) {
        guard let link = self.link else { return }
        link.party = party
        self.environment.accepted(access, source: self.source, address: link.remoteAddress, counted: self.countedBySource && !self.authenticatedBySource)
        self.authenticatedBySource = self.countedBySource
        self.deadlines?.authenticated()
        // A support code is checked inside a scan, which has the scanner borrowed: raise
        // the limit once the scan returns (the rest of that chunk keeps the small one).
        if self.scanning {
            self.raiseControlLimitAfterScan = true
        } else {
            self.scanner.maximumControlPayloadLength = self.limits.maximumPayloadLength
        }
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

    /// Sends the peer-frame bytes gathered in this read cycle to the other side.
    private func forwardPendingRuns(owedAfter: Int) {
        let collected = self.forwarding.takeCollected()
        guard let paired = self.stateMachine.session, let role = self.stateMachine.role else { return }
        // The frames that ended in earlier scans: their bytes went with this batch or before.
        let frames = self.uncountedFrames
        self.uncountedFrames = 0
        guard let (runs, runBytes) = collected else {
            if frames > 0 { self.count(bytes: 0, frames: frames, of: paired.session, from: role) }
            return
        }
        self.count(bytes: runBytes, frames: frames, of: paired.session, from: role)
        if self.forwarding.handedOver(inFlight: paired.session.addInFlight(runBytes, to: role == .host ? .viewer : .host)) {
            self.deadlines?.pausedReading()
        }
        paired.peer.forward(runs, bytes: runBytes, owedAfter: owedAfter)
    }

    /// Writes the other side's bytes to this connection (called on this event loop), then
    /// the relay frames that waited for the frame boundary they reach, and once they are on
    /// the socket, lets the other side read again if it was paused.
    func writeForwarded(_ runs: [ByteBuffer], bytes: Int, owedAfter: Int) {
        guard let context = self.context, !self.stateMachine.isClosed, !runs.isEmpty else { return }
        guard let paired = self.stateMachine.session, let role = self.stateMachine.role else {
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

    /// Sends a frame of the relay's own, at the next frame boundary of this connection's
    /// output (PROTOCOL.md §2.3).
    private func send(_ message: RelayMessage) {
        guard let context = self.context, let frame = self.encode(message, context: context) else { return }
        var droppable = false
        if case .pong = message { droppable = true }
        switch self.forwarding.relayFrame(frame, droppable: droppable) {
        case .write: context.writeAndFlush(self.wrapOutboundOut(frame), promise: nil)
        case .held: break
        case .dropped: self.logger.debug("Pong dropped: too many relay frames wait for a peer frame to end")
        }
    }

    /// Sends the last frame (Error or Bye), gives back what the connection holds, and
    /// closes once that frame is written (at the latest after ``lastWriteGrace``). An
    /// unfinished forwarded frame is completed with zero bytes first, so that the last
    /// frame still arrives whole (§2.3).
    private func close(sending message: RelayMessage) {
        if case .error(let error) = message {
            self.logger.info("closing with error", metadata: ["code": "\(error.code)", "message": "\(error.message)"])
        }
        if let context = self.context, let frame = self.encode(message, context: context) {
            let (before, padded) = self.forwarding.finish(allocator: context.channel.allocator)
            if padded { self.metrics.framesPadded.increment() }
            for buffer in before {
                context.write(self.wrapOutboundOut(buffer), promise: nil)
            }
            let written = context.eventLoop.makePromise(of: Void.self)
            context.writeAndFlush(self.wrapOutboundOut(frame), promise: written)
            self.lastWrite = written.futureResult
        }
        self.tearDown()
        guard let context = self.context else { return }
        let channel = context.channel
        guard let lastWrite = self.lastWrite else { return channel.close(promise: nil) }
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
}
