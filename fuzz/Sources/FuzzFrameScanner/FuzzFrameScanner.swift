// libFuzzer entry point for RelayWire's FrameScanner (the relay's forwarding path),
// as a differential test against `ByteBuffer.readFrame`. Run with
// `FUZZ_TARGET=FuzzFrameScanner scripts/fuzz.sh`; see fuzz/README.md.
//
// Input: byte 0 picks how many chunk-size bytes follow (1…8); each gives a chunk size
// (1…256); the rest is the stream, cut into chunks of those sizes in turn and fed to
// `FrameScanner.scan`. The scanner's output — forwarded runs and control frames, in
// order — must equal the frames `readFrame` finds in the whole stream, plus, when the
// stream ends inside a peer frame whose header is complete, the bytes of that frame
// that arrived (peer bytes are passed on as they come). An invalid header must make the
// scanner throw the same WireError kind, after the same bytes.

import NIOCore
import RelayWire

private struct NoHandlerError: Error {}

@_cdecl("LLVMFuzzerTestOneInput")
public func frameScannerFuzzOneInput(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let start = start, count > 0 else { return 0 }
    let input = UnsafeBufferPointer(start: start, count: count)
    let sizeCount = min(Int(input[0] % 8) + 1, count - 1)
    let sizes = input[1..<(1 + sizeCount)].map { Int($0) + 1 }
    let stream = ByteBuffer(bytes: input[(1 + sizeCount)...])
    let limit = Frame.defaultMaximumPayloadLength

    // Reference: whole-stream reads.
    var expected = ByteBuffer()
    var expectedControl: [Frame] = []
    var expectedError: WireError?
    var peerHeaders: UInt64 = 0
    var rest = stream
    while true {
        do {
            guard let frame = try rest.readFrame(maximumPayloadLength: limit) else { break }
            expected.writeImmutableBuffer(frame.bytes)
            if frame.type.isPeerMessage { peerHeaders += 1 } else { expectedControl.append(frame) }
        } catch {
            expectedError = error
            break
        }
    }
    if expectedError == nil, rest.readableBytes >= Frame.headerLength,
       let type = rest.getInteger(at: rest.readerIndex, as: UInt8.self).flatMap(MessageType.init(rawValue:)),
       type.isPeerMessage {
        // Incomplete peer frame: the scanner passes on what has arrived.
        expected.writeImmutableBuffer(rest)
        peerHeaders += 1
    }

    // Scanner: chunk by chunk.
    var scanner = FrameScanner(maximumPayloadLength: limit)
    var output = ByteBuffer()
    var forwarded: UInt64 = 0
    var control: [Frame] = []
    var scanError: WireError?
    var chunks = stream
    var index = 0
    scanning: while chunks.readableBytes > 0 {
        let chunk = chunks.readSlice(length: min(sizes[index % sizes.count], chunks.readableBytes))!
        index += 1
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
            case .wire(let wire): scanError = wire
            case .handler: fatalError("handler error from closures that never throw")
            }
            break scanning
        }
    }

    func fail(_ what: String) -> Never {
        fatalError("""
            FrameScanner disagrees with readFrame: \(what)
              chunk sizes: \(sizes)
              stream:   \(hex(stream))
              expected: \(hex(expected))
              scanner:  \(hex(output))
            """)
    }
    if output != expected { fail("different output bytes") }
    if control != expectedControl { fail("different control frames") }
    if scanError?.kind != expectedError?.kind { fail("error \(String(describing: scanError)) vs \(String(describing: expectedError))") }
    if scanner.peerFrames != peerHeaders { fail("peerFrames \(scanner.peerFrames), expected \(peerHeaders)") }
    if scanner.peerBytes != forwarded { fail("peerBytes \(scanner.peerBytes), forwarded \(forwarded)") }
    if expectedError == nil, scanner.isAtFrameBoundary != (rest.readableBytes == 0) {
        fail("isAtFrameBoundary \(scanner.isAtFrameBoundary) with \(rest.readableBytes) bytes left")
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
