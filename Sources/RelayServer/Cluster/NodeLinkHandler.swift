import Logging
import NIOCore
import NIOPosix
import NIOSSL
import RelayWire

/// The dialling end of a node link (PROTOCOL.md §5.1.12, docs/ARCHITECTURE.md "Several
/// nodes"): a connection to another node's cluster port that stands for one agent of this
/// node. It says Hello and NodeAuth for the agent; once the other node answers Paired, it is
/// the agent's peer here (a ``LinkEndpoint`` behind a ``ConnectionLink``), and forwards the
/// session's peer frames both ways with the same backpressure as two local connections.
/// Thin: ``NodeLinkStateMachine`` decides, ``FrameScanner`` and ``ForwardingState`` carry the
/// bytes, ``FrameBoundaryHandler`` keeps the output whole frames.
final class NodeLinkHandler: ChannelDuplexHandler, LinkEndpoint {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ConnectionOutput

    /// What ``dial(_:)`` resolves to.
    enum Outcome: Sendable {
        /// The other node paired the agent: `link` is the agent's peer on this node.
        case paired(ConnectionLink, Paired)
        case refused(ErrorCode, String)
    }

    /// A node link to dial.
    struct Request: Sendable {
        /// `host:port` of the other node's cluster port, and its name for messages.
        var address: String
        var node: String
        var hello: Hello
        var auth: NodeAuth
        /// Who the other node's agent is here (its Paired completes it).
        var peer: Party
    }

    /// How often the link sends Ping, and how long it waits for any frame before it
    /// gives the other node up.
    static let pingInterval = TimeAmount.seconds(15)
    static let silenceLimit = TimeAmount.seconds(45)
    /// How long the other node has to answer NodeAuth.
    static let answerTimeout = TimeAmount.seconds(10)

    private let request: Request
    private let metrics: RelayMetrics
    private var logger: Logger
    private var machine = NodeLinkStateMachine()
    private var scanner: FrameScanner
    private var forwarding: ForwardingState
    private var answer: EventLoopPromise<Outcome>?
    private var context: ChannelHandlerContext?
    private var link: ConnectionLink?
    private var session: SessionLink?
    private var lastRead = NIODeadline.now()
    private var tickTask: Scheduled<Void>?

    private init(request: Request, limits: ConnectionLimits, metrics: RelayMetrics, logger: Logger, answer: EventLoopPromise<Outcome>) {
        self.request = request
        self.metrics = metrics
        self.logger = logger
        self.logger[metadataKey: "node_link"] = "\(request.node)"
        self.scanner = FrameScanner(maximumPayloadLength: limits.maximumPayloadLength)
        self.forwarding = ForwardingState(highWater: limits.writeBufferHighWater, lowWater: limits.writeBufferLowWater)
        self.answer = answer
    }

    /// Dials the other node on `eventLoop` (the local agent's, so forwarding between the two
    /// stays on one loop) and asks it to pair; resolves once it answers, refuses, or cannot
    /// be reached.
    static func dial(
        _ request: Request, identity: ClusterIdentity, limits: ConnectionLimits, metrics: RelayMetrics, logger: Logger, on eventLoop: any EventLoop
    ) -> EventLoopFuture<Outcome> {
        let answer = eventLoop.makePromise(of: Outcome.self)
        let context = identity.clientContext
        let parsed = try? HostPort(parsing: request.address)
        guard let parsed, let port = parsed.port else {
            answer.succeed(.refused(.internalError, "relay node \(request.node) announced the cluster address \"\(request.address)\", which is not HOST:PORT"))
            return answer.futureResult
        }
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(.seconds(5))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.writeBufferWaterMark, value: .init(low: limits.writeBufferLowWater, high: limits.writeBufferHighWater))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = NodeLinkHandler(request: request, limits: limits, metrics: metrics, logger: logger, answer: answer)
                    try channel.pipeline.syncOperations.addHandlers([
                        try NIOSSLClientHandler(context: context, serverHostname: nil, customVerificationCallback: identity.verifier()),
                        FrameBoundaryHandler(metrics: metrics, logger: logger),
                        handler,
                    ])
                }
            }
        bootstrap.connect(host: parsed.host, port: port).whenFailure { error in
            answer.succeed(.refused(.internalError, "relay node \(request.node) at \(request.address) does not answer (\(error)); try again in a minute"))
        }
        return answer.futureResult
    }

    // MARK: Lifecycle

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func channelActive(context: ChannelHandlerContext) {
        self.lastRead = context.eventLoop.now
        context.write(self.wrapOutboundOut(.message(.hello(self.request.hello))), promise: nil)
        context.writeAndFlush(self.wrapOutboundOut(.message(.nodeAuth(self.request.auth))), promise: nil)
        // The other node must answer within its deadline, or the agent is told so.
        context.eventLoop.assumeIsolated().scheduleTask(in: Self.answerTimeout) {
            guard self.answer != nil else { return }
            self.perform(self.machine.silent(for: Self.answerTimeout))
            self.context?.close(promise: nil)
        }
        self.scheduleTick()
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.tickTask?.cancel()
        self.tickTask = nil
        self.perform(self.machine.disconnected())
        self.forwarding.release()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        self.link = nil
        self.session = nil
        // A TLS failure can close the channel before it was ever active.
        self.answer?.succeed(.refused(.internalError, "the link to relay node \(self.request.node) closed before it answered"))
        self.answer = nil
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.logger.info("node link error", metadata: ["error": "\(error)"])
        if self.answer != nil {
            self.answered(
                .refused(
                    .internalError,
                    "the link to relay node \(self.request.node) at \(self.request.address) failed (\(error)); check that every node has the same cluster secret"
                ))
        }
        context.close(promise: nil)
    }

    private func scheduleTick() {
        guard let context = self.context else { return }
        self.tickTask = context.eventLoop.assumeIsolated().scheduleTask(in: Self.pingInterval) { self.tick() }
    }

    /// Pings the other node, and gives it up after ``silenceLimit`` without a frame.
    private func tick() {
        guard let context = self.context else { return }
        self.scheduleTick()
        if context.eventLoop.now - self.lastRead > Self.silenceLimit {
            self.perform(self.machine.silent(for: Self.silenceLimit))
            context.close(promise: nil)
            return
        }
        context.writeAndFlush(self.wrapOutboundOut(.message(.ping(Ping(nonce: UInt64.random(in: 0...UInt64.max))))), promise: nil)
    }

    // MARK: Inbound (from the other node)

    private struct Refused: Error {}

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.machine.isClosed else { return }
        self.lastRead = context.eventLoop.now
        do {
            try self.scanner.scan(
                self.unwrapInboundIn(data),
                forward: { (run: ByteBuffer) throws(Refused) in
                    guard self.machine.acceptsPeerFrames else { throw Refused() }
                    self.forwarding.collect(run)
                },
                control: { (frame: Frame) throws(Refused) in
                    self.forwardCollected(owedAfter: 0)
                    switch Result(catching: { () throws(WireError) in try RelayMessage(frame) }) {
                    case .success(let message): self.perform(self.machine.received(message))
                    case .failure(let error): self.perform(self.machine.receivedMalformed(error.description))
                    }
                }
            )
        } catch .wire(let error) {
            self.perform(self.machine.receivedMalformed(error.description))
        } catch {
            self.perform(self.machine.receivedMalformed("peer frames before Paired"))
        }
        let frames = self.forwarding.scanned(peerFrames: self.scanner.peerFrames, paired: self.machine.acceptsPeerFrames)
        if frames > 0, let session = self.session { session.session.count(bytes: 0, frames: frames, from: self.remoteRole, metrics: self.metrics) }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.forwardCollected(owedAfter: self.scanner.peerBytesOwed)
    }

    /// The local agent's role: the link says its Hello to the other node.
    private var localRole: Role { self.request.hello.role }
    /// The role of the other node's agent, which this link is on this node.
    private var remoteRole: Role { self.request.hello.role == .viewer ? .host : .viewer }

    /// Hands the other node's peer bytes to the local agent once the session exists; until
    /// then they wait in ``ForwardingState``. Past the high-water mark of bytes in flight
    /// towards the local agent, the link is no longer read until they drain.
    private func forwardCollected(owedAfter: Int) {
        guard let paired = self.session, self.machine.isPaired, let batch = self.forwarding.takeCollected() else { return }
        paired.session.count(bytes: UInt64(batch.bytes), frames: batch.frames, from: self.remoteRole, metrics: self.metrics)
        guard !batch.runs.isEmpty else { return }
        _ = self.forwarding.handedOver(inFlight: paired.session.addInFlight(batch.bytes, to: self.localRole))
        paired.peer.forward(batch.runs, bytes: batch.bytes, owedAfter: owedAfter)
    }

    func read(context: ChannelHandlerContext) {
        if self.forwarding.readRequested() { context.read() }
    }

    // MARK: Local events

    func handle(_ event: LinkEvent) {
        switch event {
        case .paired(let session):
            guard let link = self.link else { return }
            self.session = SessionLink(session: session, peer: session.peer(of: link))
            self.perform(self.machine.sessionStarted())
        case .peerLeft(let reason, let text), .bye(let reason, let text):
            // The other node's usage history keeps why the session ended here.
            self.perform(self.machine.localSideEnded(self.session?.session.reason ?? reason, text))
        case .codeWithdrawn:
            break
        case .resumeReading:
            if self.forwarding.resumed() { self.context?.read() }
        case .forward(let runs, let bytes, let owedAfter):
            self.writeForwarded(runs, bytes: bytes, owedAfter: owedAfter)
        }
    }

    /// The local agent's peer bytes, to the other node; held until the session exists here.
    func writeForwarded(_ runs: [ByteBuffer], bytes: Int, owedAfter: Int) {
        guard let context = self.context, !self.machine.isClosed, !runs.isEmpty else { return }
        guard let paired = self.session, self.machine.isPaired else {
            return self.forwarding.holdBeforePaired(runs, bytes: bytes, owedAfter: owedAfter)
        }
        let (lowWater, role) = (self.forwarding.lowWater, self.remoteRole)
        context.writeAndFlush(self.wrapOutboundOut(.forwarded(runs, bytes: bytes, owedAfter: owedAfter))).whenComplete { _ in
            let remaining = paired.session.removeInFlight(bytes, to: role)
            if ForwardingState.drained(remaining: remaining, written: bytes, lowWater: lowWater) {
                paired.peer.deliver(.resumeReading)
            }
        }
    }

    // MARK: Actions

    private func perform(_ action: NodeLinkStateMachine.Action) {
        switch action {
        case .none:
            break
        case .answer(let outcome):
            switch outcome {
            case .paired(let paired):
                guard let context = self.context else { return }
                let link = ConnectionLink(channel: context.channel, handler: self, remoteSession: paired.sessionID)
                var party = self.request.peer
                party.name = paired.peerName
                party.software = paired.peerSoftware
                party.capabilities = paired.peerCapabilities
                if !paired.peerOrganization.isEmpty { party.organization = paired.peerOrganization }
                link.party = party
                self.link = link
                self.logger[metadataKey: "session"] = "\(paired.sessionID)"
                self.answered(.paired(link, paired))
            case .refused(let code, let text):
                self.answered(.refused(code, text))
                self.context?.close(promise: nil)
            }
        case .send(let message):
            self.context?.writeAndFlush(self.wrapOutboundOut(.message(message)), promise: nil)
        case .enterSession:
            if let held = self.forwarding.takeHeldBeforePaired() {
                self.writeForwarded(held.runs, bytes: held.bytes, owedAfter: held.owedAfter)
            }
            self.forwardCollected(owedAfter: self.scanner.peerBytesOwed)
        case .peerLeft(let reason, let text):
            if let session = self.session?.session, session.end(reason: reason) {
                self.session?.peer.deliver(.peerLeft(reason, text))
            }
            self.context?.close(promise: nil)
        case .leave(let reason, let text):
            self.context?.writeAndFlush(self.wrapOutboundOut(.lastMessage(.bye(Bye(reason: reason, text: text)))), promise: nil)
        case .close:
            self.context?.close(promise: nil)
        }
    }

    private func answered(_ outcome: Outcome) {
        let answer = self.answer
        self.answer = nil
        answer?.succeed(outcome)
    }
}
