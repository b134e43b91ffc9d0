// Inputs found by the libFuzzer targets in fuzz/ (fuzz/README.md), replayed through the
// same checks as the harnesses, so that a finding fixed once stays fixed without a fuzz
// build: the literal findings below, and every file under fuzz/regressions/<Target>/
// (what scripts/fuzz.sh saved and a person minimised and kept).
//
// The checks are the harnesses' (fuzz/Sources/<Target>/<Target>.swift), restated with
// #expect: a harness traps, a test records a failure and goes on to the next input.
// FuzzTileDecoder's findings replay in RelayTileCodecTests (TileDecoderFuzzResultTests).

import Foundation
import NIOCore
import Testing

@testable import RelayWire

@Suite struct FuzzResultTests {
    /// Findings kept inline: (what went wrong, the minimised input). Empty while the fuzz
    /// runs have found nothing (see fuzz/README.md "Long runs").
    static let relayWireFindings: [(name: String, bytes: [UInt8])] = []
    static let frameScannerFindings: [(name: String, bytes: [UInt8])] = []

    // MARK: fuzz/regressions

    /// fuzz/regressions/ in this checkout, found from this file's path.
    static let regressionsFolder = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("fuzz/regressions")

    /// Every file in fuzz/regressions/<target>/ (not README.md), sorted by name.
    static func regressionFiles(_ target: String) -> [String] {
        let folder = Self.regressionsFolder.appendingPathComponent(target)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return names.filter { !$0.hasPrefix(".") && $0 != "README.md" }.sorted().map { folder.appendingPathComponent($0).path }
    }

    static func bytes(of path: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    @Test func regressionsFolderHasOneFolderPerTarget() {
        for target in ["FuzzRelayWire", "FuzzFrameScanner"] {
            var isDirectory: ObjCBool = false
            let path = Self.regressionsFolder.appendingPathComponent(target).path
            #expect(FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue, "missing \(path)")
        }
    }

    @Test(arguments: Self.regressionFiles("FuzzRelayWire"))
    func relayWireRegression(path: String) throws {
        Self.checkRelayWire(try Self.bytes(of: path))
    }

    @Test(arguments: Self.regressionFiles("FuzzFrameScanner"))
    func frameScannerRegression(path: String) throws {
        Self.checkFrameScanner(try Self.bytes(of: path))
    }

    // MARK: Inline findings

    @Test(arguments: Self.relayWireFindings.map(\.bytes))
    func relayWireFinding(bytes: [UInt8]) {
        Self.checkRelayWire(bytes)
    }

    @Test(arguments: Self.frameScannerFindings.map(\.bytes))
    func frameScannerFinding(bytes: [UInt8]) {
        Self.checkFrameScanner(bytes)
    }

    /// The checks themselves must catch what they are for: a frame whose message does not
    /// re-encode to the same bytes is reported (a decoder that dropped a bit would be).
    @Test func checksRunOnValidInput() throws {
        // A valid Ping frame, then an incomplete header: decodes, round-trips, rest ignored.
        let ping = try Frame(.ping(Ping(nonce: 0x0102_0304_0506_0708))).bytes
        Self.checkRelayWire(Array(ping.readableBytesView) + [0x08, 0x00])
        // The same bytes cut in 1-byte chunks through the scanner (size byte 0 → 1 size, 0 → 1 byte).
        Self.checkFrameScanner([0x00, 0x00] + Array(ping.readableBytesView))
        // Limits (byte 0 bit 3; 4-byte chunks; control limit 4 KiB (index 6), changed to
        // 1 MiB (index 11) after chunk 0 or after chunk 5): a Ping, then the header of a
        // 5,000-byte Hello in chunk 3 — accepted after the raise, refused before it.
        var hello = ByteBuffer()
        hello.writeInteger(UInt32(MessageType.hello.rawValue) << 24 | 5_000)
        let limited = Array(ping.readableBytesView) + Array(hello.readableBytesView) + [0x00, 0x01]
        Self.checkFrameScanner([0x08, 0x03, 6, 0, 11] + limited)
        Self.checkFrameScanner([0x08, 0x03, 6, 5, 11] + limited)
        // A peer frame cut in 3-byte chunks: peerBytesOwed after each.
        var tile = ByteBuffer()
        tile.writeInteger(UInt32(MessageType.tileUpdate.rawValue) << 24 | 10)
        Self.checkFrameScanner([0x00, 0x02] + Array(tile.readableBytesView) + [1, 2, 3, 4, 5])
    }

    // MARK: The harnesses' checks

    /// FuzzRelayWire: readFrame leaves the reader index alone on nil and on a throw; a
    /// frame agrees with its header; decode → encode is the identity; decodeLast on the
    /// rest throws only WireError.
    static func checkRelayWire(_ input: [UInt8]) {
        let limit = Frame.defaultMaximumPayloadLength
        var buffer = ByteBuffer(bytes: input)
        while true {
            let before = buffer.readerIndex
            let frame: Frame
            do {
                guard let next = try buffer.readFrame(maximumPayloadLength: limit) else {
                    #expect(buffer.readerIndex == before, "readFrame returned nil but moved the reader index")
                    break
                }
                frame = next
            } catch {
                #expect(buffer.readerIndex == before, "readFrame threw \(error) but moved the reader index")
                break
            }
            #expect(frame.bytes.readableBytes == buffer.readerIndex - before)
            #expect(frame.payload.readableBytes == frame.payloadLength)
            #expect(frame.payloadLength <= limit)
            Self.checkRoundTrip(frame)
        }
        var decoder = FrameDecoder()
        var leftover = buffer
        for _ in 0..<(input.count / Frame.headerLength + 2) {
            do {
                guard let frame = try decoder.decodeLast(buffer: &leftover, seenEOF: true) else { break }
                Self.checkRoundTrip(frame)
            } catch is WireError {
                break
            } catch {
                Issue.record("FrameDecoder.decodeLast threw a non-WireError: \(type(of: error)): \(error)")
                break
            }
        }
    }

    static func checkRoundTrip(_ frame: Frame) {
        guard let message = try? RelayMessage(frame) else { return }  // a WireError: rejected
        #expect(message.type == frame.type)
        do {
            let encoded = try Frame(message)
            #expect(encoded.bytes == frame.bytes, "decode → encode changed the bytes of a \(frame.type.name)")
            #expect(try RelayMessage(encoded) == message)
        } catch {
            Issue.record("re-encoding a decoded \(frame.type.name) failed: \(error)")
        }
    }

    /// FuzzFrameScanner: byte 0's low 3 bits pick 1…8 chunk sizes (the next bytes, each
    /// + 1); bit 3 adds three limit bytes (the control limit, the chunk after whose scan it
    /// changes, its new value), bit 4 one more (maximumPayloadLength); the rest is a stream
    /// fed to FrameScanner in chunks of those sizes. After every chunk its output, counts,
    /// peerBytesOwed and isAtFrameBoundary must match ScannerModel; an invalid header must
    /// throw the model's WireError in the chunk holding its last byte. Where one limit
    /// applies to every frame, the model must agree with readFrame over the whole stream.
    static func checkFrameScanner(_ input: [UInt8]) {
        guard !input.isEmpty else { return }
        var offset = 1
        func take() -> UInt8? {
            guard offset < input.count else { return nil }
            defer { offset += 1 }
            return input[offset]
        }
        let sizeCount = min(Int(input[0] % 8) + 1, input.count - 1)
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
        let settings =
            "chunk sizes \(sizes), maximumPayloadLength \(maximumPayloadLength), control limit \(initialControlLimit) then \(changedControlLimit) after chunk \(changeAfterChunk)"
        var model = ScannerModel(
            stream: stream, chunkEnds: chunkEnds,
            controlLimit: { $0 <= changeAfterChunk ? initialControlLimit : changedControlLimit },
            maximumPayloadLength: maximumPayloadLength
        )

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
            #expect(readError == model.error?.error, "the model's error differs from readFrame's (\(settings))")
            #expect(frames == model.frames.filter { $0.end <= streamLength }.count, "the model's whole frames differ from readFrame's")
        }

        struct NoHandlerError: Error {}
        var scanner = FrameScanner(maximumPayloadLength: maximumPayloadLength)
        scanner.maximumControlPayloadLength = initialControlLimit
        var output = ByteBuffer()
        var forwarded: UInt64 = 0
        var control: [Frame] = []
        var position = 0
        func outputIsStreamPrefix(_ length: Int) -> Bool {
            output.readableBytes == length && output == stream.getSlice(at: stream.readerIndex, length: length)
        }
        for (index, chunkEnd) in chunkEnds.enumerated() {
            let chunk = stream.getSlice(at: stream.readerIndex + position, length: chunkEnd - position)!
            var thrown: WireError?
            do {
                try scanner.scan(
                    chunk,
                    forward: { (run: ByteBuffer) throws(NoHandlerError) in
                        #expect(run.readableBytes > 0, "FrameScanner forwarded an empty run")
                        forwarded += UInt64(run.readableBytes)
                        output.writeImmutableBuffer(run)
                    },
                    control: { (frame: Frame) throws(NoHandlerError) in
                        #expect(!frame.type.isPeerMessage, "FrameScanner handed a peer frame to control")
                        control.append(frame)
                        output.writeImmutableBuffer(frame.bytes)
                    }
                )
            } catch {
                guard case .wire(let wire) = error else {
                    Issue.record("handler error from closures that never throw")
                    return
                }
                thrown = wire
            }
            position = chunkEnd
            #expect(scanner.peerBytes == forwarded)

            if let thrown {
                guard let expected = model.error else {
                    Issue.record("threw \(thrown) in chunk \(index); the model has no error (\(settings))")
                    return
                }
                #expect(thrown == expected.error, "\(settings)")
                #expect(
                    position - chunk.readableBytes < expected.headerEnd && expected.headerEnd <= position,
                    "threw in chunk \(index), not the one holding the bad header's last byte")
                #expect(outputIsStreamPrefix(expected.start), "passed on \(output.readableBytes) bytes before a bad header at \(expected.start)")
                #expect(control.count == model.controlFrames(before: expected.start))
                return
            }
            if let expected = model.error, expected.headerEnd <= position {
                Issue.record("no error by offset \(position); the bad header ends at \(expected.headerEnd) (\(settings))")
                return
            }
            let expected = model.at(position)
            guard outputIsStreamPrefix(expected.emitted), control.count == expected.controlFrames, scanner.peerFrames == expected.peerHeaders,
                scanner.peerBytesOwed == expected.owed, scanner.isAtFrameBoundary == expected.isAtFrameBoundary
            else {
                Issue.record(
                    """
                    after chunk \(index) (offset \(position)), \(settings): passed on \(output.readableBytes) bytes (expected \(expected.emitted)), \
                    \(control.count) control frames (\(expected.controlFrames)), peerFrames \(scanner.peerFrames) (\(expected.peerHeaders)), \
                    peerBytesOwed \(scanner.peerBytesOwed) (\(expected.owed)), isAtFrameBoundary \(scanner.isAtFrameBoundary) (\(expected.isAtFrameBoundary))
                    """)
                return
            }
            if index == changeAfterChunk { scanner.maximumControlPayloadLength = changedControlLimit }
        }
    }
}
