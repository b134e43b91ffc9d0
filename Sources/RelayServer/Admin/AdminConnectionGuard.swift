import Logging
import NIOCore
import NIOTLS
import Synchronization

/// The admin port's connections, counted against their own cap
/// (`admin_maximum_connections`, 64 by default): the admin port never holds more file
/// descriptors than that, whatever a client does, so it cannot take those relay agents
/// need (issue 10 item 10; OPERATIONS.md "Admin port limits").
final class AdminConnectionBudget: Sendable {
    let maximum: Int
    private let open = Atomic<Int>(0)

    init(maximum: Int) {
        self.maximum = maximum
    }

    /// Takes a slot; false (and nothing taken) when all are in use.
    func admit() -> Bool {
        var current = self.open.load(ordering: .relaxed)
        while current < self.maximum {
            let (exchanged, original) = self.open.compareExchange(expected: current, desired: current + 1, ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
        return false
    }

    func release() {
        self.open.subtract(1, ordering: .relaxed)
    }

    var count: Int { self.open.load(ordering: .relaxed) }
}

/// The deadlines of one admin connection, as a value with no I/O (the handler below only
/// runs its timers and closes):
///
/// - over the connection cap it is closed at once;
/// - the TLS handshake must finish within `handshakeTimeout` of connect;
/// - then the first request head must arrive whole within `headerTimeout`;
/// - a response the client does not read (the socket stays unwritable) for
///   `stallTimeout` ends the connection.
///
/// Between requests, Hummingbird's own idle timeout (`HTTP1Channel.Configuration.idleTimeout`)
/// closes a keep-alive connection that sends nothing; it also bounds later request heads.
struct AdminConnectionDeadlines {
    struct Limits: Sendable {
        var handshakeTimeout: TimeAmount
        var headerTimeout: TimeAmount
        var stallTimeout: TimeAmount
    }

    enum Phase: Equatable {
        case connecting, handshaking, awaitingHead, serving, closed
    }

    /// Why a connection is closed early.
    enum Reason: String, Equatable {
        case connectionLimit = "connection_limit"
        case handshakeTimeout = "handshake_timeout"
        case headerTimeout = "header_timeout"
        case stalled
    }

    enum Action: Equatable {
        case none
        case close(Reason)
        /// (Re)start the one deadline timer; when it fires, call ``deadlinePassed()``.
        case startDeadline(TimeAmount)
        case cancelDeadline
        /// Start the stalled-reader timer; when it fires, call ``stallPassed()``.
        case startStallTimer(TimeAmount)
        case cancelStallTimer
    }

    let limits: Limits
    private(set) var phase = Phase.connecting
    private var stalled = false

    init(limits: Limits) {
        self.limits = limits
    }

    /// The connection is up; `admitted` says whether it got a slot under the cap.
    mutating func connected(admitted: Bool) -> Action {
        guard self.phase == .connecting else { return .none }
        guard admitted else {
            self.phase = .closed
            return .close(.connectionLimit)
        }
        self.phase = .handshaking
        return .startDeadline(self.limits.handshakeTimeout)
    }

    mutating func handshakeCompleted() -> Action {
        guard self.phase == .handshaking else { return .none }
        self.phase = .awaitingHead
        return .startDeadline(self.limits.headerTimeout)
    }

    /// A decoded request part arrived; the decoder hands on a request's head first, whole.
    mutating func requestPartArrived() -> Action {
        guard self.phase == .awaitingHead else { return .none }
        self.phase = .serving
        return .cancelDeadline
    }

    mutating func deadlinePassed() -> Action {
        switch self.phase {
        case .handshaking:
            self.phase = .closed
            return .close(.handshakeTimeout)
        case .awaitingHead:
            self.phase = .closed
            return .close(.headerTimeout)
        case .connecting, .serving, .closed:
            return .none
        }
    }

    mutating func writabilityChanged(isWritable: Bool) -> Action {
        guard self.phase != .closed, isWritable == self.stalled else { return .none }
        self.stalled = !isWritable
        return isWritable ? .cancelStallTimer : .startStallTimer(self.limits.stallTimeout)
    }

    mutating func stallPassed() -> Action {
        guard self.phase != .closed, self.stalled else { return .none }
        self.phase = .closed
        return .close(.stalled)
    }

    mutating func closed() {
        self.phase = .closed
    }
}

/// Runs ``AdminConnectionDeadlines`` for one admin connection; it sits after
/// Hummingbird's HTTP/1 decoder, so it sees the TLS handshake event and decoded request parts.
final class AdminConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = Any
    typealias InboundOut = Any
    typealias OutboundIn = Any
    typealias OutboundOut = Any

    private let budget: AdminConnectionBudget
    private let metrics: RelayMetrics
    private let logger: Logger
    private var deadlines: AdminConnectionDeadlines
    private var admitted = false
    private var deadline: Scheduled<Void>?
    private var stall: Scheduled<Void>?

    init(budget: AdminConnectionBudget, limits: AdminConnectionDeadlines.Limits, metrics: RelayMetrics, logger: Logger) {
        self.budget = budget
        self.deadlines = AdminConnectionDeadlines(limits: limits)
        self.metrics = metrics
        self.logger = logger
    }

    // Hummingbird adds this handler before the channel is registered: it starts at channelActive.
    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { self.start(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        self.start(context: context)
        context.fireChannelActive()
    }

    private func start(context: ChannelHandlerContext) {
        guard self.deadlines.phase == .connecting else { return }
        self.admitted = self.budget.admit()
        if self.admitted { self.metrics.adminConnectionsOpen.increment() }
        self.perform(self.deadlines.connected(admitted: self.admitted), context: context)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event {
            self.perform(self.deadlines.handshakeCompleted(), context: context)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.perform(self.deadlines.requestPartArrived(), context: context)
        context.fireChannelRead(data)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        self.perform(self.deadlines.writabilityChanged(isWritable: context.channel.isWritable), context: context)
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.finish()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.finish()
    }

    private func perform(_ action: AdminConnectionDeadlines.Action, context: ChannelHandlerContext) {
        switch action {
        case .none:
            break
        case .close(let reason):
            if reason == .connectionLimit {
                self.metrics.adminConnectionsRefused.increment()
            } else {
                self.metrics.adminTimeouts.increment()
            }
            self.logger.debug(
                "admin connection closed", metadata: ["reason": "\(reason.rawValue)", "remote": "\(context.channel.remoteAddress?.description ?? "?")"]
            )
            self.cancelTimers()
            context.close(promise: nil)
        case .startDeadline(let timeout):
            self.deadline?.cancel()
            self.deadline = self.schedule(in: timeout, context: context) { $0.deadlinePassed() }
        case .cancelDeadline:
            self.deadline?.cancel()
            self.deadline = nil
        case .startStallTimer(let timeout):
            self.stall?.cancel()
            self.stall = self.schedule(in: timeout, context: context) { $0.stallPassed() }
        case .cancelStallTimer:
            self.stall?.cancel()
            self.stall = nil
        }
    }

    private func schedule(
        in timeout: TimeAmount, context: ChannelHandlerContext, _ event: @escaping (inout AdminConnectionDeadlines) -> AdminConnectionDeadlines.Action
    ) -> Scheduled<Void> {
        context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            self.perform(event(&self.deadlines), context: context)
        }
    }

    private func cancelTimers() {
        self.deadline?.cancel()
        self.deadline = nil
        self.stall?.cancel()
        self.stall = nil
    }

    private func finish() {
        self.deadlines.closed()
        self.cancelTimers()
        if self.admitted {
            self.admitted = false
            self.budget.release()
            self.metrics.adminConnectionsOpen.decrement()
        }
    }
}

@available(*, unavailable)
extension AdminConnectionGuard: Sendable {}
