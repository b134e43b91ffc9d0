import NIOCore

/// The two clocks a relay connection runs on (PROTOCOL.md §8.4, OPERATIONS.md §2):
/// Hello and authentication must finish `handshakeTimeout` after the connection opened,
/// and a connection from which nothing arrived for `idleTimeout` is ended.
///
/// Pure: the handler passes the event loop's time (`EventLoop.now`, which a test's
/// event loop moves only when told) and arms one timer for ``next``. Nothing counts as
/// idle while the relay itself has stopped reading the connection (its peer reads too
/// slowly, OPERATIONS.md §6 "Backpressure"): the agent's Pings then wait unread in the
/// socket, and the silence is the relay's doing.
struct ConnectionDeadlines: Sendable, Equatable {
    enum Expiry: Sendable, Equatable {
        /// Hello and authentication did not finish in time.
        case handshake
        /// Nothing arrived for the idle timeout.
        case idle
    }

    let handshakeTimeout: TimeAmount
    let idleTimeout: TimeAmount
    private var handshakeEnds: NIODeadline?
    private var lastRead: NIODeadline
    private var readingPaused = false

    /// A connection that opened at `now`.
    init(handshakeTimeout: TimeAmount, idleTimeout: TimeAmount, openedAt now: NIODeadline) {
        self.handshakeTimeout = handshakeTimeout
        self.idleTimeout = idleTimeout
        self.handshakeEnds = now + handshakeTimeout
        self.lastRead = now
    }

    /// The connection authenticated: only the idle timeout applies from now on.
    mutating func authenticated() {
        self.handshakeEnds = nil
    }

    /// Bytes arrived at `now`.
    mutating func read(at now: NIODeadline) {
        self.lastRead = now
    }

    /// The relay stopped reading this connection (backpressure): it cannot be idle.
    mutating func pausedReading() {
        self.readingPaused = true
    }

    /// The relay reads again at `now`: the idle time counts from here.
    mutating func resumedReading(at now: NIODeadline) {
        self.readingPaused = false
        self.lastRead = now
    }

    /// When the next deadline falls, if any: arm a timer for it, then call ``expired(at:)``.
    var next: NIODeadline? {
        let idleEnds = self.readingPaused ? nil : self.lastRead + self.idleTimeout
        switch (self.handshakeEnds, idleEnds) {
        case (let handshake?, let idle?): return min(handshake, idle)
        case (let handshake?, nil): return handshake
        case (nil, let idle?): return idle
        case (nil, nil): return nil
        }
    }

    /// What has run out at `now`, if anything (the handshake first: it is the earlier
    /// promise to the agent, and its error says more).
    func expired(at now: NIODeadline) -> Expiry? {
        if let handshake = self.handshakeEnds, now >= handshake { return .handshake }
        if !self.readingPaused, now >= self.lastRead + self.idleTimeout { return .idle }
        return nil
    }
}
