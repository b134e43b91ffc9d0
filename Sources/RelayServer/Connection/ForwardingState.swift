import NIOCore

/// Cut-through forwarding for one connection, both ways, and its backpressure
/// (PROTOCOL.md §2.3, OPERATIONS.md §6 "Backpressure").
///
/// - **Outbound to the peer**: the peer-frame bytes this connection sent in one read cycle
///   are collected (``collect(_:)``) and handed over once (``takeCollected()``), at the end
///   of the cycle or before a control frame that must not overtake them. Handing them over
///   decides backpressure: past the high-water mark of bytes in flight towards the peer,
///   this connection is no longer read (``handedOver(inFlight:)``, ``readRequested()``).
/// - **Inbound from the peer**: its bytes that arrive before this side has sent Paired wait
///   (``holdBeforePaired(_:bytes:owedAfter:)``); a batch is laid out with the relay's own
///   frames that waited for a frame boundary (``outgoing(_:bytes:owedAfter:)``, through
///   ``OutboundFraming``).
///
/// Pure value type: the handler reports what happened and carries out what comes back.
struct ForwardingState: Sendable {
    /// Bytes in flight towards the peer above which this side is no longer read…
    let highWater: Int
    /// …until they drain to this.
    let lowWater: Int

    private var collected: [ByteBuffer] = []
    private var collectedBytes = 0
    private(set) var isReadingPaused = false
    /// A read was asked for while paused: it is passed on at resume.
    private var readPending = false

    /// Keeps this connection's output whole frames.
    private(set) var outbound = OutboundFraming()
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

    /// The runs collected since the last call, and their bytes; nil if none.
    mutating func takeCollected() -> (runs: [ByteBuffer], bytes: Int)? {
        guard !self.collected.isEmpty else { return nil }
        defer {
            self.collected.removeAll(keepingCapacity: true)
            self.collectedBytes = 0
        }
        return (self.collected, self.collectedBytes)
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

    /// The buffers to write, in order, for a batch of the peer's runs (`bytes` in all,
    /// `owedAfter` bytes of its last frame still to come): the runs, with the relay frames
    /// that waited put in at the first frame boundary, which may fall inside a run.
    mutating func outgoing(_ runs: [ByteBuffer], bytes: Int, owedAfter: Int) -> [ByteBuffer] {
        guard let placement = self.outbound.forwarding(batchBytes: bytes, owedAfter: owedAfter) else { return runs }
        var buffers: [ByteBuffer] = []
        buffers.reserveCapacity(runs.count + placement.frames.count + 1)
        var before = placement.offset
        var inserted = false
        for run in runs {
            if !inserted, before < run.readableBytes {
                if before > 0 { buffers.append(run.getSlice(at: run.readerIndex, length: before)!) }
                buffers.append(contentsOf: placement.frames)
                inserted = true
                buffers.append(run.getSlice(at: run.readerIndex + before, length: run.readableBytes - before)!)
            } else {
                if !inserted { before -= run.readableBytes }
                buffers.append(run)
            }
        }
        if !inserted { buffers.append(contentsOf: placement.frames) }
        return buffers
    }

    /// A frame of the relay's own is ready (see ``OutboundFraming/relayFrame(_:droppable:)``).
    mutating func relayFrame(_ frame: ByteBuffer, droppable: Bool) -> OutboundFraming.Decision {
        self.outbound.relayFrame(frame, droppable: droppable)
    }

    /// The connection ends with a last relay frame (``OutboundFraming/finish()``). What to
    /// write before it: zero bytes that complete an unfinished forwarded frame (slices of
    /// one shared zero buffer), then the relay frames that waited for that frame's end
    /// (PROTOCOL.md §2.3). `padded` is true when a frame was completed.
    mutating func finish(allocator: ByteBufferAllocator) -> (buffers: [ByteBuffer], padded: Bool) {
        var (padding, held) = self.outbound.finish()
        var buffers: [ByteBuffer] = []
        if padding > 0 {
            let zeros = allocator.buffer(repeating: 0, count: min(padding, 64 * 1024))
            while padding > 0 {
                let piece = zeros.getSlice(at: zeros.readerIndex, length: min(padding, zeros.readableBytes))!
                buffers.append(piece)
                padding -= piece.readableBytes
            }
        }
        return (buffers + held, !buffers.isEmpty)
    }

    /// Lets go of every buffer (the connection is gone).
    mutating func release() {
        self.collected = []
        self.collectedBytes = 0
        self.early = []
        self.earlyBytes = 0
    }
}
