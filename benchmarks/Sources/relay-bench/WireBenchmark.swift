// `relay-bench wire`: RelayWire frame decode and encode throughput on one thread.
//
// Decode cases walk a large ByteBuffer of back-to-back frames (the shape of a busy
// receive buffer) and start again from a saved copy of it (reader index reset) until the
// time per case has passed. Encode cases build frames from a payload buffer. Every
// case feeds what it produced into a sink so that the optimizer cannot drop the work.

import ArgumentParser
import NIOCore
import RelayWire

struct WireBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wire",
        abstract: "Frame decode/encode throughput on one thread (64 B, 1 KiB, 64 KiB payloads).",
        discussion: """
            decode: ByteBuffer.readFrame(maximumPayloadLength:) and FrameDecoder.decode(buffer:) \
            over a 64 MiB buffer of back-to-back frames and over a cache-resident 4 MiB one; \
            RelayMessage(frame) for small input \
            messages (Pointer, Key). encode: Frame(.tileUpdate(...)) and Frame(type:payload:), \
            which write header and payload into one new buffer (a copy of the payload, by design). \
            Also checks once, outside timing, that decoded payloads are slices of the receive \
            buffer (zero-copy), and prints the issue's targets with PASS/FAIL.
            """
    )

    @OptionGroup var common: CommonOptions

    @Option(name: .customLong("buffer-mib"), help: "MiB of back-to-back frames in the large decode buffer (the cache-resident one is 4 MiB).")
    var bufferMiB: Int = 64

    @Option(name: .long, help: "Run only the cases whose \"group/name/payload\" contains this text (e.g. \"readFrame/64 B\").")
    var filter: String?

    static let payloadLengths = [64, 1024, 64 * 1024]
    /// The cache-resident decode buffer: 4 MiB, within this machine's L3.
    static let hotBufferBytes = 4 << 20
    static let maximumPayloadLength = Frame.defaultMaximumPayloadLength

    func selected(_ group: String, _ name: String, _ payloadBytes: Int) -> Bool {
        guard let filter else { return true }
        return "\(group)/\(name)/\(formatBytes(payloadBytes))".contains(filter)
    }

    func validate() throws {
        guard (1...4096).contains(self.bufferMiB) else { throw ValidationError("--buffer-mib must be 1...4096") }
    }

    func run() throws {
        let seconds = self.common.seconds
        let allocator = ByteBufferAllocator()
        var report = Report(benchmark: "wire")
        report.settings = [
            ("seconds_per_case", .double(seconds)),
            ("decode_buffer_bytes", .int(self.bufferMiB << 20)),
            ("cache_resident_buffer_bytes", .int(Self.hotBufferBytes)),
            ("maximum_payload_length", .int(Self.maximumPayloadLength)),
            ("threads", .int(1)),
        ]

        // Decode: once over a large buffer (frames come from DRAM, the worst case) and once
        // over a cache-sized one (like a receive buffer the kernel has just written).
        var zeroCopy = true
        var zeroCopyChecks = 0
        var zeroCopyDetails: [String] = []
        let decodeBuffers = [
            ("decode", self.bufferMiB << 20),
            ("decode, cache-resident", Self.hotBufferBytes),
        ]
        for (group, totalBytes) in decodeBuffers {
            for length in Self.payloadLengths {
                let names = ["ByteBuffer.readFrame", "FrameDecoder.decode"].filter { self.selected(group, $0, length) }
                guard !names.isEmpty else { continue }
                let (source, _) = try Self.frameStream(payloadLength: length, totalBytes: totalBytes, allocator: allocator)
                let (ok, detail) = Self.checkZeroCopy(source: source, payloadLength: length)
                zeroCopy = zeroCopy && ok
                zeroCopyChecks += 1
                if !ok { zeroCopyDetails.append("\(formatBytes(length)): \(detail)") }

                for name in names {
                    let round: () -> (operations: Int, sink: Int) =
                        name == "ByteBuffer.readFrame"
                        ? { decodeWithReadFrame(source, maximumPayloadLength: Self.maximumPayloadLength) }
                        : { decodeWithFrameDecoder(source, maximumPayloadLength: Self.maximumPayloadLength) }
                    report.measurements.append(
                        measure(
                            group: group, name: name, payloadBytes: length, unit: "frames",
                            bytesPerOperation: Frame.headerLength + length, seconds: seconds, round
                        )
                    )
                }
            }
            if self.selected(group, "readFrame + RelayMessage", 5) {
                let (source, _) = try Self.inputMessageStream(totalBytes: totalBytes, allocator: allocator)
                var messages = measure(
                    group: group, name: "readFrame + RelayMessage", payloadBytes: 5, unit: "msgs",
                    bytesPerOperation: Frame.headerLength + 5, seconds: seconds
                ) {
                    decodeInputMessages(source, maximumPayloadLength: Self.maximumPayloadLength)
                }
                messages.note = "Pointer and Key, alternating"
                report.measurements.append(messages)
            }
        }

        // Encode.
        var encodeCopies = true
        var encodeChecks = 0
        for length in Self.payloadLengths
        where self.selected("encode", "Frame(.tileUpdate(...))", length) || self.selected("encode", "Frame(type:payload:)", length) {
            let payload = Self.payload(length: length, allocator: allocator)
            encodeCopies = encodeCopies && Self.encodeCopiesPayload(payload)
            encodeChecks += 1
            // About 4 MiB of frames per batch, so the clock is read rarely.
            let batch = max(16, (4 << 20) / (Frame.headerLength + length))
            let encoders: [(String, () -> (operations: Int, sink: Int))] = [
                ("Frame(.tileUpdate(...))", { encodeTileUpdates(payload, count: batch, allocator: allocator) }),
                ("Frame(type:payload:)", { encodeTypePayload(payload, count: batch, allocator: allocator) }),
            ]
            for (name, round) in encoders where self.selected("encode", name, length) {
                var measurement = measure(
                    group: "encode", name: name, payloadBytes: length, unit: "frames",
                    bytesPerOperation: Frame.headerLength + length, seconds: seconds, round
                )
                measurement.note = "new buffer, payload copied"
                report.measurements.append(measurement)
            }
        }

        if zeroCopyChecks > 0 {
            report.checks.append(
                (
                    "zero-copy", zeroCopy,
                    zeroCopy
                        ? "payloads from readFrame, FrameDecoder and RelayMessage(.tileUpdate) lie inside the receive buffer's storage at the frame's offset"
                        : zeroCopyDetails.joined(separator: "; ")
                ))
        }
        if encodeChecks > 0 {
            report.checks.append(
                (
                    "encode copies payload (by design)", encodeCopies,
                    "Frame(.tileUpdate(...)) and Frame(type:payload:) write header + payload into one new buffer"
                ))
        }

        for name in ["ByteBuffer.readFrame", "FrameDecoder.decode"] {
            report.targets.append(
                Target(
                    description: "decode 64 B frames on one core, \(name), ≥ 10 M frames/s",
                    group: "decode", name: name, payloadBytes: 64, metric: .operationsPerSecond, minimum: 10e6
                ))
            report.targets.append(
                Target(
                    description: "decode 64 KiB frames on one core, \(name), ≥ 5 GB/s",
                    group: "decode", name: name, payloadBytes: 64 * 1024, metric: .gigabytesPerSecond, minimum: 5
                ))
        }
        report.notes = [
            "GB/s counts header + payload bytes, 1 GB = 10^9 B; rate and ns/op are per frame (or message).",
            "decode walks \(self.bufferMiB) MiB of back-to-back frames (mostly from DRAM); decode, cache-resident walks \(Self.hotBufferBytes >> 20) MiB that stays in cache. Targets are checked on the first (worst case), per busy core (per CPU-s).",
            "Decoding reads the 4-byte header and slices the payload without touching it, so decode cost is per frame and its GB/s grows with payload size.",
            "cpu/wall is getrusage CPU time over ContinuousClock time for the case; well below 1.00 means the thread waited for a CPU (loaded machine): then trust 'per CPU-s' (operations per CPU-second, i.e. per fully busy core) rather than the wall-clock rate.",
        ]
        report.emit(json: self.common.json)
    }

    // MARK: - Inputs

    static func payload(length: Int, allocator: ByteBufferAllocator) -> ByteBuffer {
        var payload = allocator.buffer(capacity: length)
        for index in 0..<length { payload.writeInteger(UInt8(truncatingIfNeeded: index &* 31 &+ 7)) }
        return payload
    }

    /// As many TileUpdate frames of `payloadLength` bytes as fit in `totalBytes` (at least one).
    static func frameStream(payloadLength: Int, totalBytes: Int, allocator: ByteBufferAllocator) throws -> (ByteBuffer, Int) {
        let frame = try Frame(type: .tileUpdate, payload: Self.payload(length: payloadLength, allocator: allocator))
        let count = max(1, totalBytes / frame.bytes.readableBytes)
        var buffer = allocator.buffer(capacity: count * frame.bytes.readableBytes)
        for _ in 0..<count { buffer.writeImmutableBuffer(frame.bytes) }
        return (buffer, count)
    }

    /// Alternating Pointer and Key frames (5-byte payloads each), filling `totalBytes`.
    static func inputMessageStream(totalBytes: Int, allocator: ByteBufferAllocator) throws -> (ByteBuffer, Int) {
        let count = totalBytes / (Frame.headerLength + 5)
        var buffer = allocator.buffer(capacity: count * (Frame.headerLength + 5))
        for index in 0..<count {
            let message: RelayMessage =
                index % 2 == 0
                ? .pointer(Pointer(x: UInt16(truncatingIfNeeded: index), y: UInt16(truncatingIfNeeded: index >> 16), buttons: .left))
                : .key(Key(keysym: 0x61 + UInt32(index % 26), isDown: index % 4 == 1))
            buffer.writeImmutableBuffer(try Frame(message, allocator: allocator).bytes)
        }
        return (buffer, count)
    }

    // MARK: - Checks (outside timing)

    /// True if the second frame's payload, decoded three ways, is the receive buffer's own
    /// bytes at the frame's offset (no copy).
    static func checkZeroCopy(source: ByteBuffer, payloadLength: Int) -> (Bool, String) {
        guard source.readableBytes >= 2 * (Frame.headerLength + payloadLength) else {
            return (false, "source holds fewer than two frames")
        }
        let base = source.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        let expected = base + UInt(Frame.headerLength + payloadLength + Frame.headerLength)
        func address(_ buffer: ByteBuffer) -> UInt { buffer.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) } }

        do {
            var viaReadFrame = source
            _ = try viaReadFrame.readFrame(maximumPayloadLength: Self.maximumPayloadLength)
            guard let frame = try viaReadFrame.readFrame(maximumPayloadLength: Self.maximumPayloadLength) else {
                return (false, "readFrame returned nil")
            }
            var viaDecoder = source
            var decoder = FrameDecoder(maximumPayloadLength: Self.maximumPayloadLength)
            _ = try decoder.decode(buffer: &viaDecoder)
            guard let decoded = try decoder.decode(buffer: &viaDecoder) else { return (false, "FrameDecoder returned nil") }
            guard case .tileUpdate(let update) = try RelayMessage(frame) else { return (false, "not a TileUpdate") }

            var failures: [String] = []
            if address(frame.payload) != expected { failures.append("readFrame payload is a copy") }
            if address(decoded.payload) != expected { failures.append("FrameDecoder payload is a copy") }
            if address(update.body) != expected { failures.append("TileUpdate body is a copy") }
            if frame.payload != source.getSlice(at: source.readerIndex + Frame.headerLength * 2 + payloadLength, length: payloadLength) {
                failures.append("payload bytes differ")
            }
            return (failures.isEmpty, failures.joined(separator: ", "))
        } catch {
            return (false, "decode failed: \(error)")
        }
    }

    /// True if encoding a frame put the payload into a new buffer (expected: it does).
    static func encodeCopiesPayload(_ payload: ByteBuffer) -> Bool {
        guard let tile = try? Frame(.tileUpdate(TileUpdate(body: payload))),
            let typed = try? Frame(type: .tileUpdate, payload: payload)
        else { return false }
        let original = payload.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        return [tile, typed].allSatisfy { frame in
            frame.payload == payload && frame.payload.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) } != original
        }
    }
}

// MARK: - Measured loops
//
// Top-level and @inline(never), so each case's loop is compiled on its own and shows up
// by name in a profile.

@inline(never)
func decodeWithReadFrame(_ source: ByteBuffer, maximumPayloadLength: Int) -> (operations: Int, sink: Int) {
    var buffer = source  // a fresh reader index over the same storage: no copy
    var frames = 0
    var sink = 0
    do {
        while let frame = try buffer.readFrame(maximumPayloadLength: maximumPayloadLength) {
            frames &+= 1
            sink &+= frame.payloadLength &+ Int(frame.type.rawValue)
        }
    } catch {
        fatalError("decode failed: \(error)")
    }
    return (frames, sink)
}

@inline(never)
func decodeWithFrameDecoder(_ source: ByteBuffer, maximumPayloadLength: Int) -> (operations: Int, sink: Int) {
    var buffer = source
    var decoder = FrameDecoder(maximumPayloadLength: maximumPayloadLength)
    var frames = 0
    var sink = 0
    do {
        while let frame = try decoder.decode(buffer: &buffer) {
            frames &+= 1
            sink &+= frame.payloadLength &+ Int(frame.type.rawValue)
        }
    } catch {
        fatalError("decode failed: \(error)")
    }
    return (frames, sink)
}

@inline(never)
func decodeInputMessages(_ source: ByteBuffer, maximumPayloadLength: Int) -> (operations: Int, sink: Int) {
    var buffer = source
    var messages = 0
    var sink = 0
    do {
        while let frame = try buffer.readFrame(maximumPayloadLength: maximumPayloadLength) {
            switch try RelayMessage(frame) {
            case .pointer(let pointer):
                sink &+= Int(pointer.x) &+ Int(pointer.y) &+ Int(pointer.buttons.rawValue)
            case .key(let key):
                sink &+= Int(key.keysym) &+ (key.isDown ? 1 : 0)
            default:
                fatalError("unexpected message type \(frame.type)")
            }
            messages &+= 1
        }
    } catch {
        fatalError("decode failed: \(error)")
    }
    return (messages, sink)
}

@inline(never)
func encodeTileUpdates(_ payload: ByteBuffer, count: Int, allocator: ByteBufferAllocator) -> (operations: Int, sink: Int) {
    var sink = 0
    do {
        for _ in 0..<count {
            let frame = try Frame(.tileUpdate(TileUpdate(body: payload)), allocator: allocator)
            sink &+= frame.bytes.readableBytes
        }
    } catch {
        fatalError("encode failed: \(error)")
    }
    return (count, sink)
}

@inline(never)
func encodeTypePayload(_ payload: ByteBuffer, count: Int, allocator: ByteBufferAllocator) -> (operations: Int, sink: Int) {
    var sink = 0
    do {
        for _ in 0..<count {
            let frame = try Frame(type: .tileUpdate, payload: payload, allocator: allocator)
            sink &+= frame.bytes.readableBytes
        }
    } catch {
        fatalError("encode failed: \(error)")
    }
    return (count, sink)
}
