public import NIOCore

/// Finds frame boundaries in a forwarded byte stream without reassembling peer frames
/// (PROTOCOL.md §2, §8 "Forwarding").
///
/// The relay hands each received chunk to ``scan(_:forward:control:)``. Bytes that belong
/// to peer messages (types `0x40…0x7F`) come back as slices of that chunk, in order, as
/// long runs — a 64 KiB read full of tile updates is one slice, however many frames it
/// holds — so the relay writes them on with no copy and no per-frame work beyond
/// reading a 4-byte header. Relay-control frames (Ping, Bye, …) are assembled and handed
/// to `control` whole. Every header is validated (known type, length within the limit)
/// before any byte of its frame is passed on.
public struct FrameScanner: Sendable {
    /// The largest payload accepted in any frame.
    public let maximumPayloadLength: Int

    /// Peer frames whose header has been passed on.
    public private(set) var peerFrames: UInt64 = 0
    /// Bytes of peer frames (headers included) passed on.
    public private(set) var peerBytes: UInt64 = 0

    /// Header bytes seen so far of a header that straddles two chunks (at most 3).
    private var partialHeader: UInt32 = 0
    private var partialHeaderCount = 0
    /// Payload bytes of the current peer frame still to pass on.
    private var peerPayloadRemaining = 0
    /// The relay-control frame being assembled, and how many bytes it still needs.
    private var control: ByteBuffer?
    private var controlRemaining = 0
    private var controlType: MessageType = .ping

    public init(maximumPayloadLength: Int = Frame.defaultMaximumPayloadLength) {
        self.maximumPayloadLength = maximumPayloadLength
        self.maximumControlPayloadLength = maximumPayloadLength
    }

    /// Payload bytes of the peer frame in progress that have not been passed on yet: what
    /// the receiving side's stream is owed before it is at a frame boundary again (0 when
    /// the runs passed on so far end with a whole frame; a header held back across chunks
    /// has not been passed on, so it owes nothing).
    public var peerBytesOwed: Int { self.peerPayloadRemaining }

    /// The largest relay-control payload accepted; at most ``maximumPayloadLength``. The
    /// relay keeps it small before authentication (PROTOCOL.md §9), so that a header
    /// announcing a large Hello cannot make it buffer more than a few KiB per connection.
    public var maximumControlPayloadLength: Int

    /// True when the stream is between frames: ending the connection here loses nothing.
    public var isAtFrameBoundary: Bool {
        self.partialHeaderCount == 0 && self.peerPayloadRemaining == 0 && self.control == nil
    }

    /// Consumes `chunk`, calling `forward` with runs of peer-frame bytes and `control`
    /// with each complete relay-control frame, in stream order.
    ///
    /// Throws on the first invalid header; bytes before it have been delivered, nothing
    /// after it has.
    public mutating func scan<E: Error>(
        _ chunk: ByteBuffer,
        forward: (ByteBuffer) throws(E) -> Void,
        control: (Frame) throws(E) -> Void
    ) throws(ScanError<E>) {
        // `original` keeps the chunk's reader index at its start, so runs can be sliced
        // from it (getSlice only hands out readable bytes) while `chunk` is consumed.
        let original = chunk
        var chunk = chunk
        // Start of the current run of peer bytes within `chunk`.
        var runStart = chunk.readerIndex

        func flushRun(upTo end: Int, _: ByteBuffer) throws(ScanError<E>) {
            guard end > runStart else { return }
            let run = original.getSlice(at: runStart, length: end - runStart)!
            do { try forward(run) } catch { throw .handler(error) }
            self.peerBytes &+= UInt64(run.readableBytes)
        }

        while chunk.readableBytes > 0 {
            if self.peerPayloadRemaining > 0 {
                let step = min(self.peerPayloadRemaining, chunk.readableBytes)
                chunk.moveReaderIndex(forwardBy: step)
                self.peerPayloadRemaining -= step
                continue
            }
            if var assembling = self.control {
                let step = min(self.controlRemaining, chunk.readableBytes)
                var piece = chunk.readSlice(length: step)!
                assembling.writeBuffer(&piece)
                runStart = chunk.readerIndex
                self.controlRemaining -= step
                if self.controlRemaining == 0 {
                    self.control = nil
                    do { try control(Frame(validatedType: self.controlType, bytes: assembling)) } catch { throw .handler(error) }
                } else {
                    self.control = assembling
                }
                continue
            }

            // At a header. Complete it from this chunk, possibly after a straddling start.
            let headerStart = chunk.readerIndex
            let header: UInt32
            if self.partialHeaderCount == 0, let whole = chunk.readInteger(as: UInt32.self) {
                header = whole
            } else {
                while self.partialHeaderCount < Frame.headerLength, let byte = chunk.readInteger(as: UInt8.self) {
                    self.partialHeader = self.partialHeader << 8 | UInt32(byte)
                    self.partialHeaderCount += 1
                }
                guard self.partialHeaderCount == Frame.headerLength else {
                    // Chunk ended inside a header: pass on what came before it, keep the rest.
                    try flushRun(upTo: headerStart, chunk)
                    return
                }
                header = self.partialHeader
                self.partialHeader = 0
                self.partialHeaderCount = 0
            }

            let length = Int(header & 0xFF_FFFF)
            let rawType = UInt8(truncatingIfNeeded: header >> 24)
            guard let type = MessageType(rawValue: rawType) else {
                try flushRun(upTo: headerStart, chunk)
                throw .wire(Frame.unknownTypeError(rawType))
            }
            let limit = type.isPeerMessage ? self.maximumPayloadLength : min(self.maximumControlPayloadLength, self.maximumPayloadLength)
            guard length <= limit else {
                try flushRun(upTo: headerStart, chunk)
                throw .wire(Frame.tooLargeError(type, length, limit))
            }

            let headerBytesInChunk = chunk.readerIndex - headerStart
            if type.isPeerMessage {
                self.peerFrames &+= 1
                self.peerPayloadRemaining = length
                if headerBytesInChunk < Frame.headerLength {
                    // The header began in an earlier chunk: its first bytes were held back,
                    // so send the whole header now, ahead of this chunk's run.
                    var header4 = ByteBuffer()
                    header4.writeInteger(header)
                    do { try forward(header4) } catch { throw .handler(error) }
                    self.peerBytes &+= UInt64(Frame.headerLength)
                    runStart = chunk.readerIndex
                }
            } else {
                try flushRun(upTo: headerStart, chunk)
                runStart = chunk.readerIndex
                // Grown as bytes arrive: a header alone must not make the relay reserve
                // a maximum-size buffer.
                var assembling = ByteBuffer()
                assembling.writeInteger(header)
                self.controlType = type
                if length == 0 {
                    do { try control(Frame(validatedType: type, bytes: assembling)) } catch { throw .handler(error) }
                } else {
                    self.control = assembling
                    self.controlRemaining = length
                }
            }
        }
        try flushRun(upTo: chunk.readerIndex, chunk)
    }
}

/// An error from ``FrameScanner/scan(_:forward:control:)``: invalid input, or an error
/// thrown by one of the caller's closures.
public enum ScanError<Handler: Error>: Error {
    case wire(WireError)
    case handler(Handler)
}
