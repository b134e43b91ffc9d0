import NIOCore

/// Cut-through forwarding for one connection, both ways, and its backpressure
/// (PROTOCOL.md §2.3, OPERATIONS.md §6 "Backpressure").
///
/// - **Outbound to the peer**: the peer-frame bytes this connection sent in one read cycle
///   are collected (``collect(_:)``) and handed over once (``takeCollected()``), at the end
///   of the cycle or before a control frame that must not overtake them. Handing them over
///   decides backpressure: past the high-water mark of bytes in flight towards the peer,
///   this connection is no longer read (``handedOver(inFlight:)``, ``readRequested()``).
///   The frames among those bytes are counted with or after them
///   (``scanned(peerFrames:paired:)``): a usage checkpoint read between two reads never
///   shows a frame whose bytes it does not count.
/// - **Inbound from the peer**: its bytes that arrive before this side has sent Paired wait
///   (``holdBeforePaired(_:bytes:owedAfter:)``). Laying the peer's bytes out with the
///   relay's own frames is ``OutboundFraming``'s work, in ``FrameBoundaryHandler``.
///
/// Pure value type: the handler reports what happened and carries out what comes back.
struct ForwardingState: Sendable {
    /// Bytes in flight towards the peer above which this side is no longer read…
    let highWater: Int
    /// …until they drain to this.
    let lowWater: Int

    private var collected: [ByteBuffer] = []
    private var collectedBytes = 0
    /// The scanner's count of finished peer frames, as far as it was taken in.
    private var scannedFrames: UInt64 = 0
    /// Frames finished while paired whose count waits for their bytes to be handed over.
    private var uncountedFrames: UInt64 = 0
    private(set) var isReadingPaused = false
    /// A read was asked for while paused: it is passed on at resume.
    private var readPending = false

    private var early: [ByteBuffer] = []
    private var earlyBytes = 0
    private var earlyOwed = 0

    init(highWater: Int, lowWater: Int) {
        self.highWater = highWater
        self.lowWater = lowWater
    }

    // MARK: This side's bytes, to the peer

    /// A run of peer-frame bytes this connection sent, found by the scanner.
    mutating func collect(_ run: ByteBuffer) {
        self.collected.append(run)
        self.collectedBytes += run.readableBytes
    }

    /// A scan ended; the scanner has finished `peerFrames` peer frames in all. Returns how
    /// many of the new ones to count now: none while `paired` (they are counted with the
    /// next hand-over, with or after their bytes), all of them once the session ended in
    /// this scan (their bytes went before its end).
    mutating func scanned(peerFrames: UInt64, paired: Bool) -> UInt64 {
        let frames = peerFrames - self.scannedFrames
        self.scannedFrames = peerFrames
        guard paired else { return frames }
        self.uncountedFrames += frames
        return 0
    }

    /// What to hand over to the peer: the runs collected since the last call, their bytes,
    /// and the frames of earlier scans to count with them. Nil when there is nothing.
    mutating func takeCollected() -> (runs: [ByteBuffer], bytes: Int, frames: UInt64)? {
        guard !self.collected.isEmpty || self.uncountedFrames > 0 else { return nil }
        defer {
            self.collected.removeAll(keepingCapacity: true)
            self.collectedBytes = 0
            self.uncountedFrames = 0
        }
        return (self.collected, self.collectedBytes, self.uncountedFrames)
    }

    /// The collected bytes were handed over; `inFlight` bytes towards the peer are now
    /// not yet written to it. Returns true when this pauses reading (decided here, on this
    /// side's loop: at most one read cycle passes the mark, however far the peer's loop is).
    mutating func handedOver(inFlight: Int) -> Bool {
        guard inFlight > self.highWater, !self.isReadingPaused else { return false }
        self.isReadingPaused = true
        return true
    }

    /// The channel asks to read: true to pass the read on now, false to hold it.
    mutating func readRequested() -> Bool {
        guard self.isReadingPaused else { return true }
        self.readPending = true
        return false
    }

    /// The peer drained below the low-water mark: reading resumes. True when a read was
    /// held and must be passed on now.
    mutating func resumed() -> Bool {
        self.isReadingPaused = false
        defer { self.readPending = false }
        return self.readPending
    }

    /// Whether writing `written` bytes, leaving `remaining` in flight, crossed the
    /// low-water mark downwards: the moment to let the sender read again (once).
    static func drained(remaining: Int, written: Int, lowWater: Int) -> Bool {
        remaining <= lowWater && remaining + written > lowWater
    }

    // MARK: The peer's bytes, to this side

    /// Peer bytes that reached this side before it sent Paired: they follow Paired.
    mutating func holdBeforePaired(_ runs: [ByteBuffer], bytes: Int, owedAfter: Int) {
        self.early.append(contentsOf: runs)
        self.earlyBytes += bytes
        self.earlyOwed = owedAfter
    }

    /// The bytes held before Paired, to write now; nil if none.
    mutating func takeHeldBeforePaired() -> (runs: [ByteBuffer], bytes: Int, owedAfter: Int)? {
        guard !self.early.isEmpty else { return nil }
        defer {
            self.early = []
            self.earlyBytes = 0
        }
        return (self.early, self.earlyBytes, self.earlyOwed)
    }

    /// Lets go of every buffer (the connection is gone).
    mutating func release() {
        self.collected = []
        self.collectedBytes = 0
        self.early = []
        self.earlyBytes = 0
    }
}
