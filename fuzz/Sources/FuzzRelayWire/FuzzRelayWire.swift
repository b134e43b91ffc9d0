// libFuzzer entry point for the RelayWire decoder. Build and run with scripts/fuzz.sh;
// see fuzz/README.md.
//
// Per input:
//  1. Wrap the bytes in a ByteBuffer and read frames with `readFrame(maximumPayloadLength:)`
//     until it returns nil (incomplete frame) or throws a WireError.
//  2. Decode each frame with `RelayMessage(frame)`. When that succeeds, re-encode with
//     `Frame(message)` and require the bytes to be identical to the input frame: every
//     field is carried bit-exactly, so decode → encode is the identity on valid frames.
//  3. Run `FrameDecoder().decodeLast(buffer:seenEOF:)` on what is left.
// Anything else — a non-WireError error, an encode failure, a byte mismatch, a trap or a
// memory error inside RelayWire — ends in a crash that libFuzzer reports and saves.

import NIOCore
import RelayWire

private let maximumPayloadLength = Frame.defaultMaximumPayloadLength

@_cdecl("LLVMFuzzerTestOneInput")
public func relayWireFuzzOneInput(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    var buffer = ByteBufferAllocator().buffer(capacity: count)
    if let start = start, count > 0 {
        buffer.writeBytes(UnsafeRawBufferPointer(start: start, count: count))
    }

    // 1 + 2: frames and messages.
    while true {
        let before = buffer.readerIndex
        let frame: Frame
        do {
            guard let next = try buffer.readFrame(maximumPayloadLength: maximumPayloadLength) else {
                check(buffer.readerIndex == before, "readFrame returned nil but moved the reader index", buffer)
                break
            }
            frame = next
        } catch {
            // Typed throws: `error` is a WireError here by construction.
            check(buffer.readerIndex == before, "readFrame threw \(error) but moved the reader index", buffer)
            break
        }
        checkFrameShape(frame, consumed: buffer.readerIndex - before)
        checkRoundTrip(frame)
    }

    // 3: end of stream on whatever is left.
    var decoder = FrameDecoder()
    var leftover = buffer
    for _ in 0..<(count / Frame.headerLength + 2) {
        do {
            guard let frame = try decoder.decodeLast(buffer: &leftover, seenEOF: true) else { break }
            checkFrameShape(frame, consumed: frame.bytes.readableBytes)
            checkRoundTrip(frame)
        } catch is WireError {
            break
        } catch {
            fatalError("FrameDecoder.decodeLast threw a non-WireError: \(type(of: error)): \(error)")
        }
    }
    return 0
}

/// A frame's header agrees with its bytes.
private func checkFrameShape(_ frame: Frame, consumed: Int) {
    let bytes = frame.bytes
    check(bytes.readableBytes >= Frame.headerLength, "frame shorter than its header", bytes)
    check(consumed == bytes.readableBytes, "frame is \(bytes.readableBytes) bytes but \(consumed) were consumed", bytes)
    let header = bytes.getInteger(at: bytes.readerIndex, endianness: .big, as: UInt32.self)!
    check(UInt8(truncatingIfNeeded: header >> 24) == frame.type.rawValue, "frame.type disagrees with the type byte", bytes)
    check(Int(header & 0xFF_FFFF) == frame.payloadLength, "payloadLength disagrees with the header", bytes)
    check(frame.payloadLength <= maximumPayloadLength, "payload over the limit was accepted", bytes)
    check(frame.payload.readableBytes == frame.payloadLength, "payload slice has the wrong length", bytes)
}

/// decode → encode is the identity for every frame that decodes.
private func checkRoundTrip(_ frame: Frame) {
    let message: RelayMessage
    do {
        message = try RelayMessage(frame)
    } catch {
        return  // a WireError (typed throws): a correctly rejected payload
    }
    check(message.type == frame.type, "decoded \(message.type.name) from a \(frame.type.name) frame", frame.bytes)
    let encoded: Frame
    do {
        encoded = try Frame(message)
    } catch {
        fatalError("re-encoding a decoded \(frame.type.name) failed: \(error)\n  input: \(hex(frame.bytes))")
    }
    guard encoded.bytes == frame.bytes else {
        fatalError(
            """
            canonical encoding violated for \(frame.type.name): decode → encode changed the bytes
              input:     \(hex(frame.bytes))
              re-encoded: \(hex(encoded.bytes))
              message:   \(message)
            """
        )
    }
    check(encoded.type == frame.type, "re-encoded frame has another type", frame.bytes)
    // And the re-encoded frame decodes to the same value.
    do {
        let again = try RelayMessage(encoded)
        check(again == message, "re-decoding the re-encoded frame gave another message", frame.bytes)
    } catch {
        fatalError("re-encoded \(frame.type.name) does not decode: \(error)\n  input: \(hex(frame.bytes))")
    }
}

@inline(__always)
private func check(_ condition: Bool, _ what: @autoclosure () -> String, _ bytes: ByteBuffer) {
    if !condition {
        fatalError("\(what())\n  bytes: \(hex(bytes))")
    }
}

private func hex(_ buffer: ByteBuffer, limit: Int = 256) -> String {
    let shown = buffer.getBytes(at: buffer.readerIndex, length: min(buffer.readableBytes, limit)) ?? []
    let text = shown.map { byte -> String in
        let digits = String(byte, radix: 16)
        return digits.count == 1 ? "0" + digits : digits
    }.joined(separator: " ")
    return buffer.readableBytes > limit ? text + " … (\(buffer.readableBytes) bytes)" : text
}
