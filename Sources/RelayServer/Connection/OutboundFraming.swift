import NIOCore

/// Keeps one connection's outgoing stream made of whole frames (PROTOCOL.md §2.3).
///
/// Two writers share a connection's output: cut-through forwarding, which passes a peer
/// frame's bytes on as they arrive, and the relay itself (Pong, Bye, Error). A frame of the
/// relay's written while a forwarded frame is unfinished would land inside it, so it waits
/// here until the forwarded bytes reach a frame boundary. When the connection must close
/// while a forwarded frame is unfinished (its sender left mid-frame, or this connection is
/// ended), the relay completes that frame with zero bytes first, so that its Bye or Error
/// still arrives as a frame of its own.
///
/// Pure value type: ``FrameBoundaryHandler`` reports what is written and writes what comes back.
struct OutboundFraming: Sendable {
    /// Relay frames held at most while a forwarded frame is unfinished. A Ping flood
    /// during a long frame must not grow the relay's memory: past this, Pongs are dropped
    /// (the peer frame ahead of them proves the connection is alive anyway).
    static let maximumHeldFrames = 64

    /// Bytes still to come before the forwarded stream is at a frame boundary again.
    private(set) var peerBytesOwed = 0
    /// Relay frames waiting for that boundary, oldest first.
    private var held: [ByteBuffer] = []

    /// What to do with a frame of the relay's own.
    enum Decision: Equatable, Sendable {
        /// The stream is at a boundary: write it now.
        case write
        /// Held until the forwarded frame in progress is complete.
        case held
        /// Dropped: too many frames are held already, and this one may be dropped.
        case dropped
    }

    var isAtFrameBoundary: Bool { self.peerBytesOwed == 0 }
    var heldFrames: Int { self.held.count }

    /// A frame of the relay's own is ready to go. `droppable` frames (Pong) may be dropped
    /// rather than held past ``maximumHeldFrames``.
    mutating func relayFrame(_ frame: ByteBuffer, droppable: Bool) -> Decision {
        if self.peerBytesOwed == 0 && self.held.isEmpty { return .write }
        if droppable && self.held.count >= Self.maximumHeldFrames { return .dropped }
        self.held.append(frame)
        return .held
    }

    /// Where the relay frames held so far go in a batch of forwarded bytes.
    struct Placement: Equatable, Sendable {
        /// Offset in the batch of the first frame boundary, where `frames` are written
        /// (equal to the batch's length when the batch ends exactly there).
        var offset: Int
        var frames: [ByteBuffer]
    }

    /// A batch of `batchBytes` forwarded bytes is about to be written; `owedAfter` is how
    /// many bytes of the peer frame it ends in are still to come (0 at a boundary).
    /// Returns where the held relay frames go in it, if the batch reaches a boundary:
    /// at the end of the frame in progress, which may be anywhere in the batch. (Waiting
    /// for a batch that ends on a boundary would starve them while frames stream back to
    /// back: reads rarely end where a frame does.)
    mutating func forwarding(batchBytes: Int, owedAfter: Int) -> Placement? {
        defer { self.peerBytesOwed = owedAfter }
        guard !self.held.isEmpty, self.peerBytesOwed <= batchBytes else { return nil }
        defer { self.held.removeAll() }
        return Placement(offset: self.peerBytesOwed, frames: self.held)
    }

    /// The connection is about to close with a last frame of the relay's: returns how many
    /// zero bytes complete the unfinished forwarded frame, and the held frames to write
    /// after them (before that last frame). Forwarding ends here.
    mutating func finish() -> (padding: Int, held: [ByteBuffer]) {
        defer {
            self.peerBytesOwed = 0
            self.held.removeAll()
        }
        return (self.peerBytesOwed, self.held)
    }

    /// The buffers to write, in order, for a batch of the peer's runs (`bytes` in all,
    /// `owedAfter` bytes of its last frame still to come): the runs, with the relay frames
    /// that waited put in at the first frame boundary, which may fall inside a run.
    mutating func outgoing(_ runs: [ByteBuffer], bytes: Int, owedAfter: Int) -> [ByteBuffer] {
        guard let placement = self.forwarding(batchBytes: bytes, owedAfter: owedAfter) else { return runs }
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

    /// ``finish()`` as buffers: zero bytes that complete an unfinished forwarded frame
    /// (slices of one shared zero buffer), then the relay frames that waited for that
    /// frame's end, all to go before the last frame. `padded` is true when a frame was completed.
    mutating func finish(allocator: ByteBufferAllocator) -> (buffers: [ByteBuffer], padded: Bool) {
        var (padding, held) = self.finish()
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
}
