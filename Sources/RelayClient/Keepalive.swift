import NIOCore
import RelayWire
import Synchronization

/// How a ``RelayConnection`` keeps itself alive (PROTOCOL.md §8.4).
///
/// One keepalive per connection, in every phase — waiting to be paired, the consent
/// prompt, a paired session whose screen never changes: the relay's idle timeout counts
/// frames *received* from a connection, and an agent with nothing to say would otherwise
/// be cut off after the idle limit (REVIEW.md D1).
public struct Keepalive: Sendable, Hashable {
    /// Time between Pings; nil sends none.
    public var interval: Duration?
    /// The connection is dead when nothing at all has arrived from the relay for this
    /// long (the relay answers every Ping, so a live relay is never that quiet); nil never
    /// gives up. Only what is read counts: a connection nobody reads stops being read from
    /// its socket once its inbound buffer is full, so read it (``RelayConnection/receive()``).
    public var silenceLimit: Duration?

    public init(interval: Duration?, silenceLimit: Duration?) {
        precondition(interval.map { $0 > .zero } ?? true, "a keepalive interval must be positive")
        precondition(silenceLimit.map { $0 > .zero } ?? true, "a silence limit must be positive")
        self.interval = interval
        self.silenceLimit = silenceLimit
    }

    /// A Ping every 30 s, as PROTOCOL.md §8.4 asks of agents, well inside the relay's
    /// default 120 s idle limit; dead after 150 s without a frame from the relay (five
    /// unanswered Pings).
    public static let standard = Keepalive(interval: .seconds(30), silenceLimit: .seconds(150))

    /// No Pings and no dead-connection check (tests of the relay's idle timeout).
    public static let off = Keepalive(interval: nil, silenceLimit: nil)
}

/// When to Ping and when to give up, as a pure value with time passed in.
struct KeepaliveSchedule<Instant: InstantProtocol>: Sendable where Instant.Duration == Duration {
    enum Action: Hashable, Sendable {
        /// Send a Ping now.
        case ping
        /// Nothing to do before this instant (or before something is heard).
        case wait(until: Instant)
        /// Neither Pings nor a silence limit: nothing will ever be due.
        case idle
        /// Nothing arrived for the silence limit: the connection is dead.
        case dead(silence: Duration)
    }

    let keepalive: Keepalive
    private(set) var lastHeard: Instant
    private var nextPing: Instant?

    /// Starts the schedule at `start`, the moment HelloAck arrived (Pings are allowed
    /// only after it, PROTOCOL.md §5.1.8).
    init(_ keepalive: Keepalive, start: Instant) {
        self.keepalive = keepalive
        self.lastHeard = start
        self.nextPing = keepalive.interval.map { start.advanced(by: $0) }
    }

    /// Something arrived from the relay at `instant`.
    mutating func heard(at instant: Instant) {
        if instant > self.lastHeard { self.lastHeard = instant }
    }

    mutating func next(at now: Instant) -> Action {
        var deadline: Instant?
        if let limit = self.keepalive.silenceLimit {
            let silentUntil = self.lastHeard.advanced(by: limit)
            if now >= silentUntil { return .dead(silence: self.lastHeard.duration(to: now)) }
            deadline = silentUntil
        }
        if let due = self.nextPing, let interval = self.keepalive.interval {
            if now >= due {
                // After a stall (a suspended laptop) the next Ping is an interval from
                // now, not a burst of the Pings missed meanwhile.
                let following = due.advanced(by: interval)
                self.nextPing = following > now ? following : now.advanced(by: interval)
                return .ping
            }
            deadline = deadline.map { Swift.min($0, due) } ?? due
        }
        return deadline.map { .wait(until: $0) } ?? .idle
    }
}

/// The keepalive state one connection shares between its reader, its event loop (which
/// notes arrivals) and its keepalive task.
final class KeepaliveState: Sendable {
    typealias Instant = ContinuousClock.Instant

    private struct Inner {
        var schedule: KeepaliveSchedule<Instant>?
        var armed: CheckedContinuation<Void, Never>?
        var isArmed = false
        var heard: Instant?
        var nextNonce: UInt64 = .random(in: 0 ... .max)
        /// Nonces of Pings sent and not yet answered, oldest first (a few at most).
        var outstanding: [UInt64] = []
        var deadAfter: Duration?
    }

    let keepalive: Keepalive
    private let inner: Mutex<Inner>

    init(_ keepalive: Keepalive) {
        self.keepalive = keepalive
        self.inner = Mutex(Inner())
    }

    /// Called when HelloAck arrives: Pings may start.
    func arm(at now: Instant) {
        let waiter: CheckedContinuation<Void, Never>? = self.inner.withLock { inner in
            guard !inner.isArmed else { return nil }
            inner.isArmed = true
            var schedule = KeepaliveSchedule(self.keepalive, start: now)
            if let heard = inner.heard { schedule.heard(at: heard) }
            inner.schedule = schedule
            defer { inner.armed = nil }
            return inner.armed
        }
        waiter?.resume()
    }

    /// Waits until ``arm(at:)``; returns at once when cancelled.
    func waitUntilArmed() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let ready = self.inner.withLock { inner in
                    if inner.isArmed || Task.isCancelled { return true }
                    inner.armed = continuation
                    return false
                }
                if ready { continuation.resume() }
            }
        } onCancel: {
            let waiter = self.inner.withLock { inner in
                defer { inner.armed = nil }
                return inner.armed
            }
            waiter?.resume()
        }
    }

    /// Something arrived from the relay (called on the event loop).
    func heard(at instant: Instant) {
        self.inner.withLock { inner in
            inner.heard = instant
            inner.schedule?.heard(at: instant)
        }
    }

    /// The next step; for `.ping`, also the nonce to send (remembered as outstanding).
    func next(at now: Instant) -> (KeepaliveSchedule<Instant>.Action, nonce: UInt64) {
        self.inner.withLock { inner in
            guard var schedule = inner.schedule else { return (.idle, 0) }
            let action = schedule.next(at: now)
            inner.schedule = schedule
            guard action == .ping else {
                if case .dead(let silence) = action { inner.deadAfter = silence }
                return (action, 0)
            }
            let nonce = inner.nextNonce
            inner.nextNonce &+= 1
            inner.outstanding.append(nonce)
            if inner.outstanding.count > 8 { inner.outstanding.removeFirst() }
            return (action, nonce)
        }
    }

    /// True, and forgotten, when `nonce` answers one of the keepalive's own Pings: such a
    /// Pong is consumed by the connection instead of reaching the caller.
    func consumePong(nonce: UInt64) -> Bool {
        self.inner.withLock { inner in
            guard let index = inner.outstanding.firstIndex(of: nonce) else { return false }
            inner.outstanding.remove(at: index)
            return true
        }
    }

    /// How long the relay had been silent when the keepalive declared the connection dead.
    var deadAfter: Duration? { self.inner.withLock { $0.deadAfter } }

    /// Sends Pings and watches for silence until cancelled or the connection fails.
    func run(sender: RelaySender) async {
        await self.waitUntilArmed()
        let clock = ContinuousClock()
        while !Task.isCancelled {
            let (action, nonce) = self.next(at: clock.now)
            switch action {
            case .ping:
                // A failed send means the connection is closing: its reader reports why.
                // A full send window means frames are flowing anyway: skip this Ping.
                do { _ = try await sender.sendIfRoom(.ping(Ping(nonce: nonce))) } catch { return }
            case .wait(let until):
                do { try await clock.sleep(until: until) } catch { return }
            case .idle:
                return
            case .dead:
                // Closing wakes the reader, which then reports the dead connection.
                sender.close()
                return
            }
        }
    }
}

/// Notes every read from the relay for the keepalive's silence check (on the event loop,
/// so a frame counts even before the agent reads it).
final class ArrivalObserver: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    private let state: KeepaliveState

    init(state: KeepaliveState) { self.state = state }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.state.heard(at: ContinuousClock.now)
        context.fireChannelReadComplete()
    }
}
