// libFuzzer entry point for RelayWire's FrameScanner (the relay's forwarding path),
// checked against a model of the stream and, where the two apply alike, differentially
// against `ByteBuffer.readFrame`. Run with `FUZZ_TARGET=FuzzFrameScanner scripts/fuzz.sh`;
// see fuzz/README.md.
//
// Input: byte 0's low 3 bits pick how many chunk-size bytes follow (1…8); each gives a
// chunk size (1…256). Bit 3 of byte 0 adds three bytes after the sizes: the scanner's
// `maximumControlPayloadLength` at the start, the index of the chunk after whose scan it
// changes, and the value it changes to (as the relay raises it after authentication,
// between two scans, never inside one). Bit 4 adds one more byte: the scanner's
// `maximumPayloadLength` (default: Frame.defaultMaximumPayloadLength). Each of those
// bytes picks a value from `limitValues` (below 128: the table; 128 and up: the byte −
// 128, a small limit the fuzzer's short frames can cross). The rest is the stream, cut
// into chunks of those sizes in turn and fed to `FrameScanner.scan`.
//
// The model (ScannerModel) walks the whole stream once: every header is checked against
// the limit in force when its last byte arrives (the control limit of that chunk for
// relay-control types, maximumPayloadLength for peer types). After every chunk the
// scanner must have passed on exactly the stream's first `emitted` bytes (peer bytes as
// they come, a control frame once whole, a header not before it is complete), have
// counted the peer headers and delivered the control frames completed so far, owe
// exactly the rest of the peer frame in progress (`peerBytesOwed`), and report a frame
// boundary exactly when the model is at one. An invalid header must throw the same
// WireError, in the chunk holding its last byte, after all bytes before it.
// With no control limit below maximumPayloadLength the model must also agree with
// readFrame over the whole stream (a check of the model itself).

import NIOCore
import RelayWire

private struct NoHandlerError: Error {}

/// Values a limit byte below 128 picks (index modulo the count): the edges that matter
/// for the relay (4 KiB before authentication, 64 KiB the smallest configurable limit,
/// the default and largest encodable payload), and one past each.
private let limitValues: [Int] = [
    0, 1, 4, 255, 256, 4095, Frame.maximumPayloadBeforeAuthentication, 4097, 65535, Frame.minimumPayloadLimit,
    Frame.defaultMaximumPayloadLength - 1, Frame.defaultMaximumPayloadLength, Frame.defaultMaximumPayloadLength + 1,
    Frame.maximumEncodablePayloadLength, Int.max, -1,
]

private func limit(_ byte: UInt8) -> Int {
    byte >= 128 ? Int(byte) - 128 : limitValues[Int(byte) % limitValues.count]
}

/// What the scanner must have done, computed from the whole stream at once and then
/// asked about offsets in increasing order (`at(_:)`), so that a long stream of 1-byte
/// chunks stays linear.
private struct ScannerModel {
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
    /// Peer and control frames among `frames[0..<i]`.
    private var peerPrefix: [Int] = [0]
    private var controlPrefix: [Int] = [0]
    /// The first frame that ends after the last offset asked about.
    private var cursor = 0
    private let streamLength: Int

    /// `chunkEnds[i]`: the stream offset at which chunk `i` ends.
    init(stream: ByteBuffer, chunkEnds: [Int], controlLimit: (_ chunk: Int) -> Int, maximumPayloadLength: Int) {
        self.streamLength = stream.readableBytes
        var chunk = 0
        var position = 0
        while position + RelayWire.Frame.headerLength <= self.streamLength {
            let headerEnd = position + RelayWire.Frame.headerLength
            while chunkEnds[chunk] < headerEnd { chunk += 1 }  // the chunk holding the header's last byte
            let header = stream.getInteger(at: stream.readerIndex + position, as: UInt32.self)!
            let isPeer = MessageType(rawValue: UInt8(truncatingIfNeeded: header >> 24))?.isPeerMessage ?? false
            let limit = isPeer ? maximumPayloadLength : min(controlLimit(chunk), maximumPayloadLength)
            // readFrame on the header alone throws what the scanner must throw for it.
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

    /// What the scanner must report once it has scanned the stream up to `offset`.
    struct Expectation {
        /// The stream's first `emitted` bytes have been passed on, and nothing else.
        var emitted: Int
        var peerHeaders: UInt64
        var controlFrames: Int
        var owed: Int
        var isAtFrameBoundary: Bool { self.owed == 0 && self.emitted == self.offset }
        var offset: Int
    }

    /// Offsets must not decrease from one call to the next.
    mutating func at(_ offset: Int) -> Expectation {
        while self.cursor < self.frames.count, self.frames[self.cursor].end <= offset { self.cursor += 1 }
        var result = Expectation(
            emitted: offset, peerHeaders: UInt64(self.peerPrefix[self.cursor]), controlFrames: self.controlPrefix[self.cursor],
            owed: 0, offset: offset
        )
        if self.cursor < self.frames.count {
            // Inside a frame, if not at its start: a peer frame's bytes go on as they come
            // once its header is whole; a control frame's once it is whole.
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
            // Past every frame: inside an invalid header or a trailing partial one, if anywhere.
            let start = self.error?.start ?? (self.frames.last?.end ?? 0)
            if start < offset { result.emitted = start }
        }
        return result
    }

    /// Control frames that end at or before `offset` (for the error case: any offset).
    func controlFrames(before offset: Int) -> Int {
        self.frames.filter { !$0.isPeer && $0.end <= offset }.count
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func frameScannerFuzzOneInput(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let start = start, count > 0 else { return 0 }
    let input = UnsafeBufferPointer(start: start, count: count)
    var offset = 1
    func take() -> UInt8? {
        guard offset < input.count else { return nil }
        defer { offset += 1 }
        return input[offset]
    }
    let sizeCount = min(Int(input[0] % 8) + 1, count - 1)
    let sizes = input[1..<(1 + sizeCount)].map { Int($0) + 1 }
    offset = 1 + sizeCount
    var maximumPayloadLength = Frame.defaultMaximumPayloadLength
    var initialControlLimit = maximumPayloadLength
    var changeAfterChunk = Int.max
    var changedControlLimit = maximumPayloadLength
    if input[0] & 0x08 != 0, let a = take(), let b = take(), let c = take() {
        initialControlLimit = limit(a)
        changeAfterChunk = Int(b)
        changedControlLimit = limit(c)
    }
    if input[0] & 0x10 != 0, let d = take() {
        maximumPayloadLength = max(0, limit(d))
        if input[0] & 0x08 == 0 {
            initialControlLimit = maximumPayloadLength
            changedControlLimit = maximumPayloadLength
        }
    }
    let stream = ByteBuffer(bytes: input[offset...])
    let streamLength = stream.readableBytes

    var chunkEnds: [Int] = []
    var end = 0
    while end < streamLength {
        end = min(end + sizes[chunkEnds.count % sizes.count], streamLength)
        chunkEnds.append(end)
    }
    let controlLimit = { (chunk: Int) in chunk <= changeAfterChunk ? initialControlLimit : changedControlLimit }
    var model = ScannerModel(stream: stream, chunkEnds: chunkEnds, controlLimit: controlLimit, maximumPayloadLength: maximumPayloadLength)

    func fail(_ what: String, output: ByteBuffer? = nil) -> Never {
        fatalError("""
            FrameScanner disagrees with the model: \(what)
              chunk sizes: \(sizes), maximumPayloadLength \(maximumPayloadLength), control limit \(initialControlLimit) \
            then \(changedControlLimit) after chunk \(changeAfterChunk)
              stream:   \(hex(stream))
              scanner:  \(output.map { hex($0) } ?? "-")
            """)
    }

    // The model against readFrame, where both apply: one limit for every frame.
    if min(initialControlLimit, maximumPayloadLength) == maximumPayloadLength,
       min(changedControlLimit, maximumPayloadLength) == maximumPayloadLength {
        var rest = stream
        var frames = 0
        var readError: WireError?
        while true {
            do {
                guard try rest.readFrame(maximumPayloadLength: maximumPayloadLength) != nil else { break }
                frames += 1
            } catch {
                readError = error
                break
            }
        }
        let modelComplete = model.frames.filter { $0.end <= streamLength }.count
        if readError != model.error?.error { fail("model error \(String(describing: model.error?.error)), readFrame \(String(describing: readError))") }
        if frames != modelComplete { fail("model has \(modelComplete) whole frames, readFrame \(frames)") }
    }

    // Scanner: chunk by chunk, the control limit changed between two scans.
    var scanner = FrameScanner(maximumPayloadLength: maximumPayloadLength)
    scanner.maximumControlPayloadLength = initialControlLimit
    var output = ByteBuffer()
    var forwarded: UInt64 = 0
    var control: [Frame] = []
    var position = 0
    /// Output bytes already compared with the stream (the output only ever grows).
    var checked = 0
    func outputIsStreamPrefix(_ length: Int) -> Bool {
        guard output.readableBytes == length else { return false }
        defer { checked = length }
        return output.getSlice(at: output.readerIndex + checked, length: length - checked)
            == stream.getSlice(at: stream.readerIndex + checked, length: length - checked)
    }
    for (index, chunkEnd) in chunkEnds.enumerated() {
        let chunk = stream.getSlice(at: stream.readerIndex + position, length: chunkEnd - position)!
        var thrown: WireError?
        do {
            try scanner.scan(
                chunk,
                forward: { (run: ByteBuffer) throws(NoHandlerError) in
                    if run.readableBytes == 0 { fatalError("FrameScanner forwarded an empty run") }
                    forwarded += UInt64(run.readableBytes)
                    output.writeImmutableBuffer(run)
                },
                control: { (frame: Frame) throws(NoHandlerError) in
                    if frame.type.isPeerMessage { fatalError("FrameScanner handed a peer frame to control: \(frame.type.name)") }
                    control.append(frame)
                    output.writeImmutableBuffer(frame.bytes)
                }
            )
        } catch {
            switch error {
            case .wire(let wire): thrown = wire
            case .handler: fatalError("handler error from closures that never throw")
            }
        }
        position = chunkEnd
        if scanner.peerBytes != forwarded { fail("peerBytes \(scanner.peerBytes), forwarded \(forwarded)", output: output) }

        if let thrown {
            guard let expected = model.error else { fail("threw \(thrown) in chunk \(index), the model has no error", output: output) }
            if thrown != expected.error { fail("threw \(thrown), the model \(expected.error)", output: output) }
            if !(position - chunk.readableBytes < expected.headerEnd && expected.headerEnd <= position) {
                fail("threw in chunk \(index) (ending at \(position)); the bad header ends at \(expected.headerEnd)", output: output)
            }
            if !outputIsStreamPrefix(expected.start) {
                fail("passed on \(output.readableBytes) bytes before the bad header at \(expected.start)", output: output)
            }
            if control.count != model.controlFrames(before: expected.start) { fail("control frames before the error", output: output) }
            return 0
        }
        if let expected = model.error, expected.headerEnd <= position {
            fail("no error by offset \(position); the model's bad header ends at \(expected.headerEnd)", output: output)
        }

        let expected = model.at(position)
        if !outputIsStreamPrefix(expected.emitted) {
            fail("after chunk \(index) (offset \(position)): passed on \(output.readableBytes) bytes, expected the stream's first \(expected.emitted)", output: output)
        }
        if control.count != expected.controlFrames {
            fail("after chunk \(index): \(control.count) control frames, expected \(expected.controlFrames)", output: output)
        }
        if scanner.peerFrames != expected.peerHeaders {
            fail("after chunk \(index): peerFrames \(scanner.peerFrames), expected \(expected.peerHeaders)", output: output)
        }
        if scanner.peerBytesOwed != expected.owed {
            fail("after chunk \(index): peerBytesOwed \(scanner.peerBytesOwed), expected \(expected.owed)", output: output)
        }
        if scanner.isAtFrameBoundary != expected.isAtFrameBoundary {
            fail("after chunk \(index): isAtFrameBoundary \(scanner.isAtFrameBoundary), expected \(expected.isAtFrameBoundary)", output: output)
        }

        // Between two scans, as the relay does once a connection has authenticated.
        if index == changeAfterChunk { scanner.maximumControlPayloadLength = changedControlLimit }
    }
    return 0
}

private func hex(_ buffer: ByteBuffer, limit: Int = 200) -> String {
    let shown = buffer.getBytes(at: buffer.readerIndex, length: min(buffer.readableBytes, limit)) ?? []
    let text = shown.map { byte -> String in
        let digits = String(byte, radix: 16)
        return digits.count == 1 ? "0" + digits : digits
    }.joined(separator: " ")
    return buffer.readableBytes > limit ? text + " … (\(buffer.readableBytes) bytes)" : text
}
