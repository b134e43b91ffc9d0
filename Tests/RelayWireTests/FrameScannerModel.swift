import NIOCore
import RelayWire

/// What FrameScanner must have done with a stream, computed from the whole stream at once
/// and then asked about offsets in increasing order (`at(_:)`), so that a long stream of
/// 1-byte chunks stays linear.
///
/// One file for both users: FuzzResultTests replays saved inputs with it, and the fuzz
/// target fuzz/Sources/FuzzFrameScanner links this same file (a symbolic link), so the
/// replay and the fuzzer check the scanner against one model. Public API of RelayWire only.
struct ScannerModel {
    /// Values a limit byte below 128 picks (index modulo the count): the edges that matter
    /// for the relay (4 KiB before authentication, 64 KiB the smallest configurable limit,
    /// the default and largest encodable payload), and one past each; 128 and up: the
    /// byte − 128, a small limit that short frames cross.
    static let limitValues: [Int] = [
        0, 1, 4, 255, 256, 4095, Frame.maximumPayloadBeforeAuthentication, 4097, 65535, Frame.minimumPayloadLimit,
        Frame.defaultMaximumPayloadLength - 1, Frame.defaultMaximumPayloadLength, Frame.defaultMaximumPayloadLength + 1,
        Frame.maximumEncodablePayloadLength, Int.max, -1,
    ]

    static func limit(_ byte: UInt8) -> Int {
        byte >= 128 ? Int(byte) - 128 : Self.limitValues[Int(byte) % Self.limitValues.count]
    }

    /// One frame of the stream, by offsets.
    struct Span {
        var start: Int
        var headerEnd: Int
        /// May lie past the stream's end: a frame the stream stops inside.
        var end: Int
        var isPeer: Bool
    }

    /// Every frame whose header is whole and valid, in order.
    private(set) var frames: [Span] = []
    /// The first invalid header: where it starts, where its last byte is, the error.
    private(set) var error: (start: Int, headerEnd: Int, error: WireError)?
    private var peerPrefix: [Int] = [0]
    private var controlPrefix: [Int] = [0]
    private var cursor = 0

    /// `chunkEnds[i]`: the stream offset at which chunk `i` ends. A header is checked
    /// against the control limit of the chunk holding its last byte.
    init(stream: ByteBuffer, chunkEnds: [Int], controlLimit: (_ chunk: Int) -> Int, maximumPayloadLength: Int) {
        let streamLength = stream.readableBytes
        var chunk = 0
        var position = 0
        while position + RelayWire.Frame.headerLength <= streamLength {
            let headerEnd = position + RelayWire.Frame.headerLength
            while chunkEnds[chunk] < headerEnd { chunk += 1 }
            let header = stream.getInteger(at: stream.readerIndex + position, as: UInt32.self)!
            let isPeer = MessageType(rawValue: UInt8(truncatingIfNeeded: header >> 24))?.isPeerMessage ?? false
            let limit = isPeer ? maximumPayloadLength : min(controlLimit(chunk), maximumPayloadLength)
            var alone = stream.getSlice(at: stream.readerIndex + position, length: RelayWire.Frame.headerLength)!
            do {
                _ = try alone.readFrame(maximumPayloadLength: limit)
            } catch {
                self.error = (position, headerEnd, error)
                break
            }
            let end = headerEnd + Int(header & 0xFF_FFFF)
            self.frames.append(Span(start: position, headerEnd: headerEnd, end: end, isPeer: isPeer))
            self.peerPrefix.append(self.peerPrefix.last! + (isPeer ? 1 : 0))
            self.controlPrefix.append(self.controlPrefix.last! + (isPeer ? 0 : 1))
            position = end
        }
    }

    struct Expectation {
        var emitted: Int
        var peerHeaders: UInt64
        var controlFrames: Int
        var owed: Int
        var offset: Int
        var isAtFrameBoundary: Bool { self.owed == 0 && self.emitted == self.offset }
    }

    /// What the scanner reports once it has scanned up to `offset` (offsets must not decrease).
    mutating func at(_ offset: Int) -> Expectation {
        while self.cursor < self.frames.count, self.frames[self.cursor].end <= offset { self.cursor += 1 }
        var result = Expectation(
            emitted: offset, peerHeaders: UInt64(self.peerPrefix[self.cursor]), controlFrames: self.controlPrefix[self.cursor],
            owed: 0, offset: offset
        )
        if self.cursor < self.frames.count {
            let frame = self.frames[self.cursor]
            if frame.start < offset {
                if frame.isPeer, frame.headerEnd <= offset {
                    result.peerHeaders += 1
                    result.owed = frame.end - offset
                } else {
                    result.emitted = frame.start
                }
            }
        } else {
            let start = self.error?.start ?? (self.frames.last?.end ?? 0)
            if start < offset { result.emitted = start }
        }
        return result
    }

    func controlFrames(before offset: Int) -> Int {
        self.frames.filter { !$0.isPeer && $0.end <= offset }.count
    }
}
