public import RelayWire

/// The host's side of viewer pacing (PROTOCOL.md §7.9): which UpdateRequests wait for an
/// answer, and when the screen may be captured next.
///
/// The host captures only while a request waits, and at most once per frame interval
/// (`--fps`). A capture that finds nothing changed leaves the request waiting, so the
/// screen changes that happen meanwhile coalesce into the one update that answers it: a
/// slow link shows a fresh frame late rather than a backlog of stale ones.
///
/// A source that says when something is drawn (X11 with DAMAGE) spares the captures that
/// would find nothing: after such a capture the host waits for the source's word
/// (``capturedNothing(at:awaitingDrawing:)``, ``drawn()``) instead of capturing again
/// at the next frame tick. The capture after it still keeps the frame interval, so an
/// update follows a change within one interval, as with polling.
///
/// Pure: time comes in as `now`, so tests drive it without sleeping.
public struct UpdatePacer<Instant: InstantProtocol>: Sendable where Instant.Duration == Duration {
    /// A request the host owes an update.
    public struct Owed: Sendable, Hashable {
        public var requestID: UInt32
        public var fullRefresh: Bool
        public init(requestID: UInt32, fullRefresh: Bool) {
            self.requestID = requestID
            self.fullRefresh = fullRefresh
        }
    }

    /// Requests a well-behaved viewer keeps in flight are few (the Swift viewer: 2); more
    /// than this many waiting is a viewer flooding the host, and the oldest are merged.
    public static var maximumWaiting: Int { 8 }

    public let frameInterval: Duration
    public private(set) var waiting: [Owed] = []
    private var lastCapture: Instant?
    /// The last capture found nothing, and the source will say when something is drawn.
    public private(set) var awaitsDrawing = false

    public init(framesPerSecond: Double) {
        precondition(framesPerSecond > 0, "the frame rate must be positive")
        self.frameInterval = .nanoseconds(Int64((1e9 / framesPerSecond).rounded()))
    }

    /// The viewer asked for an update.
    public mutating func received(_ request: UpdateRequest) {
        let owed = Owed(requestID: request.requestID, fullRefresh: request.flags.contains(.fullRefresh))
        if self.waiting.count == Self.maximumWaiting {
            // Answer the newest request id for the two oldest, keeping a full refresh asked for.
            let dropped = self.waiting.removeFirst()
            self.waiting[0].fullRefresh = self.waiting[0].fullRefresh || dropped.fullRefresh
        }
        self.waiting.append(owed)
    }

    /// What the host does next.
    public enum Step: Sendable, Hashable {
        /// No request waits: nothing to capture until one arrives.
        case idle
        /// Capture now and answer ``next``.
        case capture
        /// A request waits, but the last capture was less than a frame interval ago.
        case wait(until: Instant)
    }

    public func step(at now: Instant) -> Step {
        guard let next = self.waiting.first else { return .idle }
        // A full refresh is sent whether or not anything changed.
        if self.awaitsDrawing && !next.fullRefresh { return .idle }
        guard let lastCapture = self.lastCapture else { return .capture }
        let due = lastCapture.advanced(by: self.frameInterval)
        return due <= now ? .capture : .wait(until: due)
    }

    /// The request the next capture answers, if one waits.
    public var next: Owed? { self.waiting.first }

    /// The host captured at `now` and found nothing to send: the request keeps waiting.
    /// With `awaitingDrawing`, the source will say when something is drawn (``drawn()``),
    /// and until then there is nothing to capture.
    public mutating func capturedNothing(at now: Instant, awaitingDrawing: Bool = false) {
        self.lastCapture = now
        self.awaitsDrawing = awaitingDrawing
    }

    /// The source said that something was drawn since the last capture.
    public mutating func drawn() {
        self.awaitsDrawing = false
    }

    /// The host captured at `now` and sent the update answering the oldest request.
    public mutating func answered(at now: Instant) {
        self.lastCapture = now
        self.awaitsDrawing = false
        if !self.waiting.isEmpty { self.waiting.removeFirst() }
    }
}
