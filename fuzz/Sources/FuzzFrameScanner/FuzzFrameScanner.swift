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

// ScannerModel (what the scanner must have done, and the limit-byte table) is in
// FrameScannerModel.swift, a symbolic link to the file FuzzResultTests uses.

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
        initialControlLimit = ScannerModel.limit(a)
        changeAfterChunk = Int(b)
        changedControlLimit = ScannerModel.limit(c)
    }
    if input[0] & 0x10 != 0, let d = take() {
        maximumPayloadLength = max(0, ScannerModel.limit(d))
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
        fatalError(
            """
            FrameScanner disagrees with the model: \(what)
              chunk sizes: \(sizes), maximumPayloadLength \(maximumPayloadLength), control limit \(initialControlLimit) \
            then \(changedControlLimit) after chunk \(changeAfterChunk)
              stream:   \(hex(stream))
              scanner:  \(output.map { hex($0) } ?? "-")
            """)
    }

    // The model against readFrame, where both apply: one limit for every frame.
    if min(initialControlLimit, maximumPayloadLength) == maximumPayloadLength,
        min(changedControlLimit, maximumPayloadLength) == maximumPayloadLength
    {
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
            fail(
                "after chunk \(index) (offset \(position)): passed on \(output.readableBytes) bytes, expected the stream's first \(expected.emitted)",
                output: output)
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
