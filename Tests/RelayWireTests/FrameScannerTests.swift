import NIOCore
import RelayTestSupport
import Testing

@testable import RelayWire

// Property tests of the relay's cut-through data plane (PROTOCOL.md §2, §8 "Forwarding").
//
// Every stream is checked twice: against the frames the test sent (what the relay must
// pass on), and chunk by chunk against `ScannedStream`, a model that walks the stream's
// headers with no chunking at all and says, for any number of bytes consumed, how many
// bytes must have been forwarded, how many frames counted, how many control frames
// delivered, and whether the stream is at a frame boundary. Failures name the seed of
// the case; `FrameScannerTests.randomStream(seed:)` rebuilds it alone.

@Suite struct FrameScannerTests {
    // MARK: (a)–(f) random valid streams

    @Test func randomStreamsArePassedOnExactlyInOrderAndWithoutCopies() {
        for index in 0..<300 {
            let seed = ScanRandom.caseSeed(base: 0xF5A3_0001, index: index)
            var random = ScanRandom(seed: seed)
            let maximumChunk = random.logUniformSize(maximum: 100_000)
            let sent = Self.randomStream(seed: seed, largestPayload: maximumChunk < 512 ? 4096 : 200_000)
            let cuts = Self.randomCuts(of: sent.bytes, frames: sent.frames, maximumChunk: maximumChunk, straddleHeaders: random.oneIn(3), random: &random)
            let context = "seed 0x\(String(seed, radix: 16)), \(sent.frames.count) frames, \(sent.bytes.readableBytes) bytes, \(cuts.count) chunks"
            let run = scanChecked(sent.bytes, chunkLengths: cuts, random: &random, context)
            #expect(run.error == nil, "\(context)")
            Self.expectDelivered(run, sent, context)
        }
    }

    /// Every way of cutting a small stream into two or three chunks: boundaries land inside
    /// every header at offsets 1, 2 and 3, inside every payload, and between frames.
    @Test func everyTwoAndThreeChunkCutOfASmallStream() {
        let sent = SentStream([
            Self.peer(.tileUpdate, payloadLength: 5),
            Self.frame(.ping(Ping(nonce: 0x0102_0304_0506_0708))),
            Self.peer(.pointer, payloadLength: 0),
            Self.peer(.key, payloadLength: 3),
            Self.frame(.bye(Bye(reason: .normal, text: "안녕"))),
            Self.controlFrame(.pong, payloadLength: 0),
            Self.peer(.clipboard, payloadLength: 1),
            Self.frame(.pong(Pong(nonce: 9))),
        ])
        let length = sent.bytes.readableBytes
        var random = ScanRandom(seed: 0xC075)
        for first in 1..<length {
            let context = "cut at \(first)"
            let run = scanChecked(sent.bytes, chunkLengths: [first, length - first], random: &random, context)
            Self.expectDelivered(run, sent, context)
            for second in (first + 1)..<length {
                let context = "cuts at \(first) and \(second)"
                let run = scanChecked(sent.bytes, chunkLengths: [first, second - first, length - second], random: &random, context)
                Self.expectDelivered(run, sent, context)
            }
        }
        let byteByByte = scanChecked(sent.bytes, chunkLengths: Array(repeating: 1, count: length), random: &random, "1-byte chunks")
        Self.expectDelivered(byteByByte, sent, "1-byte chunks")
    }

    /// A read full of peer frames is one run: the chunk itself, not one slice per frame.
    @Test func aChunkOfWholePeerFramesIsForwardedAsOneSliceOfIt() throws {
        var chunk = ByteBuffer()
        var frames = 0
        while chunk.readableBytes < 60_000 {
            chunk.writeImmutableBuffer(Self.peer(MessageType.allCases.filter(\.isPeerMessage)[frames % 6], payloadLength: frames * 37 % 1500).bytes)
            frames += 1
        }
        var scanner = FrameScanner()
        var runs: [ByteBuffer] = []
        try scanner.scan(chunk, forward: { runs.append($0) }, control: { _ = Issue.record("unexpected control frame \($0.type.name)") })
        #expect(runs.count == 1)
        #expect(runs.first == chunk)
        #expect(runs.first.map { storageRange($0) } == storageRange(chunk))
        #expect(scanner.peerFrames == UInt64(frames))
        #expect(scanner.peerBytes == UInt64(chunk.readableBytes))
        #expect(scanner.isAtFrameBoundary)
    }

    // MARK: (g) invalid headers

    @Test(arguments: [0x00, 0x0D, 0x3F, 0x4A, 0x7F, 0x80, 0xC1, 0xFF] as [UInt8])
    func unknownTypeByteIsRejectedBeforeAnyOfItsBytes(type: UInt8) {
        let frames = [Self.peer(.tileUpdate, payloadLength: 100), Self.frame(.ping(Ping(nonce: 1))), Self.peer(.key, payloadLength: 5)]
        let before = SentStream(frames)
        var stream = before.bytes
        stream.writeBytes([type, 0, 0, 2, 0xAA, 0xBB])
        stream.writeImmutableBuffer(Self.peer(.pointer, payloadLength: 5).bytes)
        let badHeader = before.bytes.readableBytes
        var random = ScanRandom(seed: UInt64(type) + 1)
        for split in [nil, 1, 2, 3] as [Int?] {
            let cuts = split.map { [badHeader + $0, stream.readableBytes - badHeader - $0] } ?? [stream.readableBytes]
            let context = "type 0x\(String(type, radix: 16)), header split at \(split.map(String.init) ?? "none")"
            let run = scanChecked(stream, chunkLengths: cuts, random: &random, context)
            #expect(run.error?.kind == .unknownMessageType, "\(context)")
            Self.expectDelivered(run, before, context)
        }
    }

    @Test func lengthAboveTheLimitIsRejectedAndTheLimitItselfAccepted() {
        for maximum in [0, 1, 4096, Frame.defaultMaximumPayloadLength] {
            for type in [MessageType.tileUpdate, .clipboard, .ping, .bye] {
                let accepted = type.isPeerMessage ? Self.peer(type, payloadLength: maximum) : Self.controlFrame(type, payloadLength: maximum)
                let before = SentStream([Self.peer(.pointer, payloadLength: 0), accepted])
                for announced in Set([maximum + 1, maximum + 2, Frame.maximumEncodablePayloadLength]) {
                    var stream = before.bytes
                    stream.writeInteger(UInt32(type.rawValue) << 24 | UInt32(announced))
                    stream.writeBytes([1, 2, 3])
                    let badHeader = before.bytes.readableBytes
                    var random = ScanRandom(seed: UInt64(maximum &+ announced))
                    for split in [nil, 1, 2, 3] as [Int?] {
                        let cuts = split.map { [badHeader + $0, stream.readableBytes - badHeader - $0] } ?? [stream.readableBytes]
                        let context = "\(type.name), limit \(maximum), announced \(announced), split \(split.map(String.init) ?? "none")"
                        let run = scanChecked(stream, chunkLengths: cuts, maximumPayloadLength: maximum, random: &random, context)
                        #expect(run.error?.kind == .frameTooLarge, "\(context)")
                        Self.expectDelivered(run, before, context)
                    }
                }
            }
        }
    }

    @Test func invalidHeaderAfterRandomValidFramesStopsExactlyThere() {
        let unknownTypes = (0...255).map(UInt8.init).filter { MessageType(rawValue: $0) == nil }
        for index in 0..<200 {
            let seed = ScanRandom.caseSeed(base: 0xBAD0_4EAD, index: index)
            var random = ScanRandom(seed: seed)
            let maximum = random.pick([Frame.defaultMaximumPayloadLength, 65_536, 300])
            let maximumChunk = random.logUniformSize(maximum: 100_000)
            let before = Self.randomStream(seed: seed, largestPayload: min(maximum, maximumChunk < 512 ? 2000 : 20_000))
            var stream = before.bytes
            let badHeader = stream.readableBytes
            let expectedKind: WireError.Kind
            if random.oneIn(2) {
                expectedKind = .unknownMessageType
                stream.writeInteger(UInt32(random.pick(unknownTypes)) << 24 | UInt32(random.int(0...0xFF_FFFF)))
            } else {
                expectedKind = .frameTooLarge
                let type = random.pick(MessageType.allCases)
                stream.writeInteger(UInt32(type.rawValue) << 24 | UInt32(random.int((maximum + 1)...0xFF_FFFF)))
            }
            // Valid-looking frames after the bad header must not be passed on.
            stream.writeImmutableBuffer(Self.randomStream(seed: seed &+ 1, largestPayload: 1000).bytes)
            var cuts = Self.randomCuts(of: stream, frames: [], maximumChunk: maximumChunk, straddleHeaders: false, random: &random)
            if random.oneIn(2) {
                cuts = Self.cut(cuts, at: badHeader + random.int(1...3))
            }
            let context = "seed 0x\(String(seed, radix: 16)), \(expectedKind) at \(badHeader), limit \(maximum)"
            let run = scanChecked(stream, chunkLengths: cuts, maximumPayloadLength: maximum, random: &random, context)
            #expect(run.error?.kind == expectedKind, "\(context)")
            Self.expectDelivered(run, before, context)
        }
    }

    // MARK: (h) errors from the caller's closures

    @Test func errorsFromForwardAndControlSurfaceAsHandlerErrors() {
        let sent = SentStream([
            Self.peer(.tileUpdate, payloadLength: 10),
            Self.controlFrame(.ping, payloadLength: 0),
            Self.peer(.key, payloadLength: 5),
            Self.frame(.pong(Pong(nonce: 3))),
            Self.peer(.clipboard, payloadLength: 0),
            Self.frame(.bye(Bye(reason: .peerLeft, text: "상대방이 나갔습니다"))),
            Self.peer(.pointer, payloadLength: 5),
        ])
        let length = sent.bytes.readableBytes
        // Whole; byte by byte; and cut one byte into every header (the path that sends a
        // held-back header on its own).
        let cutPlans: [(String, [Int])] = [
            ("whole", [length]),
            ("1-byte chunks", Array(repeating: 1, count: length)),
            ("headers split", sent.frameStarts.reduce([length]) { Self.cut($0, at: $1 + 1) }),
        ]
        for (plan, cuts) in cutPlans {
            for failing in [HandlerFailure.Closure.forward, .control] {
                var call = 1
                while true {
                    let outcome = Self.scan(sent.bytes, cuts: cuts, failing: HandlerFailure(closure: failing, call: call))
                    if case .finished = outcome { break }
                    guard case .threw(let error) = outcome else {
                        Issue.record("\(plan): failing \(failing) call \(call) gave \(outcome)")
                        break
                    }
                    #expect(error == HandlerFailure(closure: failing, call: call), "\(plan)")
                    call += 1
                }
                // Every call of the closure was made to fail once.
                #expect(call > 1, "\(plan): \(failing) was never called")
            }
        }
    }

    // MARK: (i) zero-length payloads

    @Test func zeroLengthFramesOfBothKinds() {
        var frames: [Frame] = []
        for type in MessageType.allCases {
            frames.append(type.isPeerMessage ? Self.peer(type, payloadLength: 0) : Self.controlFrame(type, payloadLength: 0))
        }
        frames += frames.reversed()
        let sent = SentStream(frames)
        var random = ScanRandom(seed: 0x2E80)
        for chunk in [1, 2, 3, 4, 5, 7, sent.bytes.readableBytes] {
            let cuts = Array(repeating: chunk, count: sent.bytes.readableBytes / chunk) + [sent.bytes.readableBytes % chunk].filter { $0 > 0 }
            let context = "\(chunk)-byte chunks"
            let run = scanChecked(sent.bytes, chunkLengths: cuts, random: &random, context)
            #expect(run.error == nil, "\(context)")
            #expect(run.controls.allSatisfy { $0.payloadLength == 0 }, "\(context)")
            Self.expectDelivered(run, sent, context)
        }
    }

    @Test func emptyChunkChangesNothing() throws {
        var scanner = FrameScanner()
        let header = Self.peer(.tileUpdate, payloadLength: 8).bytes
        try scanner.scan(
            header.getSlice(at: 0, length: 2)!, forward: { _ = Issue.record("forwarded \($0.readableBytes) bytes of a partial header") }, control: { _ in })
        try scanner.scan(ByteBuffer(), forward: { _ = Issue.record("forwarded \($0.readableBytes) bytes from an empty chunk") }, control: { _ in })
        #expect(!scanner.isAtFrameBoundary)
        var forwarded = ByteBuffer()
        try scanner.scan(header.getSlice(at: 2, length: header.readableBytes - 2)!, forward: { forwarded.writeImmutableBuffer($0) }, control: { _ in })
        #expect(forwarded == header)
        #expect(scanner.isAtFrameBoundary)
    }

    // MARK: (j) garbage

    /// 100,000 chunks of random bytes — biased towards headers the scanner accepts, so it
    /// gets deep into streams — never trap, and agree with the model chunk by chunk.
    @Test func randomGarbageNeverTrapsAndMatchesTheModel() {
        var random = ScanRandom(seed: 0x6A2B_A6E0)
        var chunks = 0
        var sessions = 0
        var rejected = 0
        while chunks < 100_000 {
            let maximum = random.pick([64, 1000, Frame.defaultMaximumPayloadLength])
            var stream = ByteBuffer()
            for _ in 0..<random.int(1...10) {
                switch random.int(0..<4) {
                case 0:
                    stream.writeImmutableBuffer(Self.payload(length: random.int(1...24), offset: random.int(0...200_000)))
                case 1:
                    stream.writeInteger(UInt32(random.bits(UInt8.self)) << 24 | UInt32(random.int(0...80)))
                default:
                    let length = random.oneIn(8) ? random.int(0...0xFF_FFFF) : random.int(0...80)
                    stream.writeInteger(UInt32(random.pick(MessageType.allCases).rawValue) << 24 | UInt32(length))
                    stream.writeImmutableBuffer(Self.payload(length: min(length, random.int(0...96)), offset: random.int(0...200_000)))
                }
            }
            var cuts: [Int] = []
            var left = stream.readableBytes
            while left > 0 {
                let length = min(left, random.logUniformSize(maximum: 64))
                cuts.append(length)
                left -= length
            }
            let run = scanChecked(stream, chunkLengths: cuts, maximumPayloadLength: maximum, random: &random, "garbage session \(sessions)")
            chunks += run.chunksFed
            sessions += 1
            if run.error != nil { rejected += 1 }
        }
        // The bias works: some sessions end in an error, some do not.
        #expect(rejected > 0 && rejected < sessions)
    }
}

// MARK: - Streams the tests send

private struct SentStream {
    let frames: [Frame]
    let bytes: ByteBuffer

    init(_ frames: [Frame]) {
        self.frames = frames
        var bytes = ByteBuffer()
        for frame in frames { bytes.writeImmutableBuffer(frame.bytes) }
        self.bytes = bytes
    }

    var frameStarts: [Int] {
        var starts: [Int] = []
        var offset = 0
        for frame in self.frames {
            starts.append(offset)
            offset += frame.bytes.readableBytes
        }
        return starts
    }

    /// All peer frames' bytes, in order: what the relay must write to the other side.
    var peerBytes: ByteBuffer {
        var bytes = ByteBuffer()
        for frame in self.frames where frame.type.isPeerMessage { bytes.writeImmutableBuffer(frame.bytes) }
        return bytes
    }

    var controls: [Frame] { self.frames.filter { !$0.type.isPeerMessage } }

    /// For each control frame, the bytes of the peer frames sent before it.
    var peerBytesBeforeEachControl: [Int] {
        var counts: [Int] = []
        var peer = 0
        for frame in self.frames {
            if frame.type.isPeerMessage { peer += frame.bytes.readableBytes } else { counts.append(peer) }
        }
        return counts
    }
}

/// Random bytes for payloads: a misplaced or repeated byte shows in a comparison.
private let payloadPool: ByteBuffer = {
    var random = ScanRandom(seed: 0x9A71_0AD5)
    var pool = ByteBuffer()
    pool.reserveCapacity(256 * 1024)
    for _ in 0..<(256 * 1024 / 8) { pool.writeInteger(random.next()) }
    return pool
}()

extension FrameScannerTests {
    static func frame(_ message: RelayMessage) -> Frame {
        try! Frame(message)
    }

    /// A peer frame of `type` with `payloadLength` random bytes (the relay does not parse them).
    static func peer(_ type: MessageType, payloadLength: Int, offset: Int = 0) -> Frame {
        precondition(type.isPeerMessage)
        return try! Frame(type: type, payload: Self.payload(length: payloadLength, offset: offset))
    }

    /// A control frame with an arbitrary payload: the scanner assembles it without decoding.
    static func controlFrame(_ type: MessageType, payloadLength: Int) -> Frame {
        precondition(!type.isPeerMessage)
        return try! Frame(type: type, payload: Self.payload(length: payloadLength, offset: 7))
    }

    static func payload(length: Int, offset: Int) -> ByteBuffer {
        let pool = payloadPool.readableBytes
        if length <= pool {
            return payloadPool.getSlice(at: offset % (pool - length + 1), length: length)!
        }
        var bytes = ByteBuffer()
        while bytes.readableBytes < length {
            bytes.writeImmutableBuffer(payloadPool.getSlice(at: 0, length: min(pool, length - bytes.readableBytes))!)
        }
        return bytes
    }

    fileprivate static func randomStream(seed: UInt64, largestPayload: Int) -> SentStream {
        var random = ScanRandom(seed: seed ^ 0x5_7EA4)
        let peerTypes = MessageType.allCases.filter(\.isPeerMessage)
        let korean = ["안녕하세요", "원격 지원을 종료합니다. 감사합니다.", "회계팀 김민준", "화면 공유가 끝났습니다"]
        var frames: [Frame] = []
        for _ in 0..<random.int(1...40) {
            switch random.int(0..<10) {
            case 0..<4:
                let length = random.oneIn(8) ? 0 : random.logUniformSize(maximum: largestPayload)
                frames.append(Self.peer(random.pick(peerTypes), payloadLength: length, offset: random.int(0...200_000)))
            case 4:
                let message: RelayMessage = random.pick([
                    .pointer(Pointer(x: UInt16(random.int(0...1919)), y: 480, buttons: .left)),
                    .key(Key(keysym: 0xFF0D, isDown: random.oneIn(2))),
                    .clipboard(Clipboard(text: random.pick(korean))),
                    .updateRequest(UpdateRequest(requestID: UInt32(random.int(0...1000)), flags: .fullRefresh)),
                    .screenInit(ScreenInit(width: 1920, height: 1080, name: ":0")),
                ])
                frames.append(Self.frame(message))
            case 5:
                frames.append(Self.frame(.ping(Ping(nonce: random.next()))))
            case 6:
                frames.append(Self.frame(.pong(Pong(nonce: random.next()))))
            case 7:
                // Sometimes long, so that it is assembled across many chunks.
                let text = String(repeating: random.pick(korean) + " ", count: random.oneIn(4) && largestPayload >= 65_536 ? random.int(100...1000) : 1)
                frames.append(Self.frame(.bye(Bye(reason: random.pick(ByeReason.known), text: text))))
            case 8:
                let message: RelayMessage = random.pick([
                    .hello(Hello(role: .viewer, capabilities: .all, software: "relay-agent/0.1.0")),
                    .error(ErrorMessage(code: .hostBusy, message: "호스트가 사용 중입니다")),
                    .hostAuth(.supportCode(SupportCode(value: UInt32(random.int(0..<1_000_000)))!)),
                    .viewerAuth(ViewerAuth(token: "tok", request: .connect(hostID: "pc-17"))),
                    .paired(
                        Paired(
                            sessionID: SessionID(high: 1, low: 2), mode: .attended, peerCapabilities: .all, peerName: "김민준", peerSoftware: "relay-agent/0.1.0")),
                ])
                frames.append(Self.frame(message))
            default:
                frames.append(Self.controlFrame(random.pick(MessageType.allCases.filter { !$0.isPeerMessage }), payloadLength: 0))
            }
        }
        return SentStream(frames)
    }

    /// Chunk lengths covering `stream`; with `straddleHeaders`, a cut is also made 1, 2 or 3
    /// bytes into most frame headers.
    fileprivate static func randomCuts(
        of stream: ByteBuffer,
        frames: [Frame],
        maximumChunk: Int,
        straddleHeaders: Bool,
        random: inout ScanRandom
    ) -> [Int] {
        var cuts: [Int] = []
        var left = stream.readableBytes
        while left > 0 {
            let length = min(left, random.logUniformSize(maximum: maximumChunk))
            cuts.append(length)
            left -= length
        }
        if straddleHeaders {
            var offset = 0
            for frame in frames {
                if !random.oneIn(4) { cuts = Self.cut(cuts, at: offset + random.int(1...3)) }
                offset += frame.bytes.readableBytes
            }
        }
        return cuts
    }

    /// `cuts` with an extra cut at stream offset `position` (no-op when already cut there).
    static func cut(_ cuts: [Int], at position: Int) -> [Int] {
        var result: [Int] = []
        var offset = 0
        for length in cuts {
            if position > offset && position < offset + length {
                result += [position - offset, offset + length - position]
            } else {
                result.append(length)
            }
            offset += length
        }
        return result
    }

    /// What the relay passed on equals what was sent: (a) peer bytes, (b) control frames in
    /// order, (c) each control frame delivered after exactly the peer bytes before it.
    fileprivate static func expectDelivered(_ run: ScanRun, _ sent: SentStream, _ context: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(run.forwarded == sent.peerBytes, "\(context): forwarded bytes differ", sourceLocation: sourceLocation)
        #expect(run.controls == sent.controls, "\(context): control frames differ", sourceLocation: sourceLocation)
        #expect(run.forwardedAtControl == sent.peerBytesBeforeEachControl, "\(context): interleaving differs", sourceLocation: sourceLocation)
    }

    fileprivate enum HandlerOutcome: CustomStringConvertible {
        case finished
        case threw(HandlerFailure)
        case wire(WireError)

        var description: String {
            switch self {
            case .finished: "finished"
            case .threw(let failure): "threw \(failure)"
            case .wire(let error): "wire error \(error)"
            }
        }
    }

    /// Scans `stream` with closures that throw on the `failing` call.
    fileprivate static func scan(_ stream: ByteBuffer, cuts: [Int], failing: HandlerFailure) -> HandlerOutcome {
        var scanner = FrameScanner()
        var forwardCalls = 0
        var controlCalls = 0
        var offset = 0
        for length in cuts {
            let chunk = stream.getSlice(at: offset, length: length)!
            offset += length
            do throws(ScanError<HandlerFailure>) {
                try scanner.scan(
                    chunk,
                    forward: { (_: ByteBuffer) throws(HandlerFailure) in
                        forwardCalls += 1
                        if failing.closure == .forward && forwardCalls == failing.call { throw failing }
                    },
                    control: { (_: Frame) throws(HandlerFailure) in
                        controlCalls += 1
                        if failing.closure == .control && controlCalls == failing.call { throw failing }
                    }
                )
            } catch {
                switch error {
                case .handler(let failure): return .threw(failure)
                case .wire(let error): return .wire(error)
                }
            }
        }
        return .finished
    }
}

private struct HandlerFailure: Error, Equatable, CustomStringConvertible {
    enum Closure: Equatable { case forward, control }
    let closure: Closure
    let call: Int
    var description: String { "\(self.closure) call \(self.call)" }
}

// MARK: - The model and the checked scan

/// The headers of a stream as a reader with the whole stream at hand sees them.
private struct ScannedStream {
    struct Layout {
        let start: Int
        let end: Int
        let isPeer: Bool
        var headerEnd: Int { self.start + Frame.headerLength }
    }

    struct Expectation: Equatable, CustomStringConvertible {
        var forwarded: Int
        var peerFrames: Int
        var controls: Int
        var atBoundary: Bool
        var description: String { "forwarded \(forwarded), peerFrames \(peerFrames), controls \(controls), boundary \(atBoundary)" }
    }

    let stream: ByteBuffer
    private(set) var frames: [Layout] = []
    /// The first invalid header: its offset and the error it must raise.
    private(set) var invalidHeader: (offset: Int, kind: WireError.Kind)?
    private var peerBytesBefore: [Int] = [0]
    private var peerFramesBefore: [Int] = [0]
    private var controlsBefore: [Int] = [0]

    init(_ stream: ByteBuffer, maximumPayloadLength: Int) {
        self.stream = stream
        let bytes = Array(stream.readableBytesView)
        var offset = 0
        while offset + Frame.headerLength <= bytes.count {
            let length = Int(bytes[offset + 1]) << 16 | Int(bytes[offset + 2]) << 8 | Int(bytes[offset + 3])
            guard let type = MessageType(rawValue: bytes[offset]) else {
                self.invalidHeader = (offset, .unknownMessageType)
                break
            }
            guard length <= maximumPayloadLength else {
                self.invalidHeader = (offset, .frameTooLarge)
                break
            }
            let layout = Layout(start: offset, end: offset + Frame.headerLength + length, isPeer: type.rawValue >= 0x40)
            self.frames.append(layout)
            self.peerBytesBefore.append(self.peerBytesBefore.last! + (layout.isPeer ? layout.end - layout.start : 0))
            self.peerFramesBefore.append(self.peerFramesBefore.last! + (layout.isPeer ? 1 : 0))
            self.controlsBefore.append(self.controlsBefore.last! + (layout.isPeer ? 0 : 1))
            offset = layout.end
        }
    }

    /// What the scanner must have done once it has consumed `consumed` bytes.
    func expectation(after consumed: Int) -> Expectation {
        // Frames wholly consumed form a prefix of `frames`.
        var low = 0
        var high = self.frames.count
        while low < high {
            let middle = (low + high) / 2
            if self.frames[middle].end <= consumed { low = middle + 1 } else { high = middle }
        }
        var result = Expectation(
            forwarded: self.peerBytesBefore[low],
            peerFrames: self.peerFramesBefore[low],
            controls: self.controlsBefore[low],
            atBoundary: consumed == 0 || (low > 0 && self.frames[low - 1].end == consumed)
        )
        if low < self.frames.count, self.frames[low].isPeer, self.frames[low].headerEnd <= consumed {
            // A peer frame in flight: its header and the payload so far are passed on.
            result.forwarded += consumed - self.frames[low].start
            result.peerFrames += 1
        }
        return result
    }

    /// The peer frame whose header `offset` lies strictly inside, if any.
    func peerHeader(strictlyContaining offset: Int) -> Layout? {
        self.frames.first { $0.isPeer && $0.start < offset && offset < $0.headerEnd }
    }

    /// The bytes the scanner must forward in all, once it has consumed `consumed` bytes.
    func forwardedBytes(after consumed: Int) -> ByteBuffer {
        var bytes = ByteBuffer()
        for layout in self.frames where layout.isPeer && layout.headerEnd <= consumed {
            bytes.writeImmutableBuffer(self.stream.getSlice(at: layout.start, length: min(layout.end, consumed) - layout.start)!)
        }
        return bytes
    }

    /// The control frames the scanner must deliver in all, once it has consumed `consumed` bytes.
    func controls(after consumed: Int) -> [Frame] {
        self.frames.filter { !$0.isPeer && $0.end <= consumed }.map { layout in
            let bytes = self.stream.getSlice(at: layout.start, length: layout.end - layout.start)!
            return Frame(validatedType: MessageType(rawValue: bytes.getInteger(at: bytes.readerIndex)!)!, bytes: bytes)
        }
    }

    /// Peer bytes that precede each control frame.
    var peerBytesBeforeEachControl: [Int] {
        self.frames.indices.filter { !self.frames[$0].isPeer }.map { self.peerBytesBefore[$0] }
    }
}

private struct ScanRun {
    var forwarded = ByteBuffer()
    var controls: [Frame] = []
    /// Forwarded byte count at the moment each control frame was delivered.
    var forwardedAtControl: [Int] = []
    var error: WireError?
    var chunksFed = 0
}

/// The readable bytes' addresses.
private func storageRange(_ buffer: ByteBuffer) -> Range<UInt> {
    buffer.withUnsafeReadableBytes { bytes in
        let base = UInt(bitPattern: bytes.baseAddress)
        return base..<(base + UInt(bytes.count))
    }
}

/// Feeds `stream` to a new scanner in chunks of `chunkLengths` and checks every step
/// against `ScannedStream`. Each chunk is a fresh buffer — sometimes with junk before its
/// reader index and after its writer index — so that where a run's bytes live tells
/// which chunk, if any, it is a slice of.
private func scanChecked(
    _ stream: ByteBuffer,
    chunkLengths: [Int],
    maximumPayloadLength: Int = Frame.defaultMaximumPayloadLength,
    random: inout ScanRandom,
    _ context: String,
    sourceLocation: SourceLocation = #_sourceLocation
) -> ScanRun {
    precondition(chunkLengths.reduce(0, +) == stream.readableBytes && chunkLengths.allSatisfy { $0 > 0 })
    let model = ScannedStream(stream, maximumPayloadLength: maximumPayloadLength)
    var scanner = FrameScanner(maximumPayloadLength: maximumPayloadLength)
    var run = ScanRun()
    var consumed = 0
    var failed = false

    func fail(_ message: String) {
        Issue.record(Comment(rawValue: "\(context): \(message)"), sourceLocation: sourceLocation)
        failed = true
    }

    func checkContent(after consumed: Int) {
        if run.forwarded != model.forwardedBytes(after: consumed) {
            fail("forwarded bytes differ from the stream's peer frames")
        }
        if run.controls != model.controls(after: consumed) {
            fail("control frames differ from the stream's")
        }
        let expectedInterleaving = Array(model.peerBytesBeforeEachControl.prefix(run.controls.count))
        if run.forwardedAtControl != expectedInterleaving {
            fail("forwarded byte counts at control frames \(run.forwardedAtControl.prefix(8)), expected \(expectedInterleaving.prefix(8))")
        }
    }

    for length in chunkLengths {
        let chunkStart = consumed
        let junkBefore = random.oneIn(4) ? random.int(1...16) : 0
        let junkAfter = random.oneIn(4) ? random.int(1...16) : 0
        var chunk = ByteBufferAllocator().buffer(capacity: junkBefore + length + junkAfter)
        chunk.writeRepeatingByte(0x41, count: junkBefore)
        chunk.writeImmutableBuffer(stream.getSlice(at: chunkStart, length: length)!)
        chunk.writeRepeatingByte(0x41, count: junkAfter)
        chunk.moveReaderIndex(forwardBy: junkBefore)
        chunk.moveWriterIndex(to: junkBefore + length)
        let chunkMemory = storageRange(chunk)
        var forwardCalls = 0
        var previousSliceEnd: UInt?
        run.chunksFed += 1

        do throws(ScanError<Never>) {
            try scanner.scan(
                chunk,
                forward: { piece in
                    defer { forwardCalls += 1 }
                    run.forwarded.writeImmutableBuffer(piece)
                    let memory = storageRange(piece)
                    guard !memory.isEmpty else {
                        fail("chunk at \(chunkStart): forwarded an empty run")
                        return
                    }
                    if chunkMemory.contains(memory.lowerBound) && memory.upperBound <= chunkMemory.upperBound {
                        // (f) A slice of this chunk. Runs within one chunk are maximal: two
                        // of them are never adjacent.
                        if previousSliceEnd == memory.lowerBound {
                            fail("chunk at \(chunkStart): two adjacent runs instead of one")
                        }
                        previousSliceEnd = memory.upperBound
                    } else if forwardCalls == 0, piece.readableBytes == Frame.headerLength,
                        let header = model.peerHeader(strictlyContaining: chunkStart),
                        piece == stream.getSlice(at: header.start, length: Frame.headerLength)
                    {
                        // The one allowed copy: a peer header that began in an earlier chunk.
                    } else {
                        fail("chunk at \(chunkStart) (\(length) bytes): forwarded \(piece.readableBytes) bytes that are not a slice of the chunk")
                    }
                },
                control: { frame in
                    run.controls.append(frame)
                    run.forwardedAtControl.append(run.forwarded.readableBytes)
                }
            )
        } catch {
            switch error {
            case .handler(let never): switch never {}
            case .wire(let wireError):
                run.error = wireError
                guard let invalid = model.invalidHeader else {
                    fail("threw \(wireError) on a valid stream, chunk at \(chunkStart)")
                    return run
                }
                if wireError.kind != invalid.kind {
                    fail("threw \(wireError.kind), expected \(invalid.kind)")
                }
                // Thrown by the chunk that completes the bad header, not earlier or later.
                let headerEnd = invalid.offset + Frame.headerLength
                if !(chunkStart < headerEnd && headerEnd <= chunkStart + length) {
                    fail("threw in the chunk at \(chunkStart)…\(chunkStart + length), the bad header ends at \(headerEnd)")
                }
                // (g) Everything before the bad header delivered, nothing after it.
                let expected = model.expectation(after: invalid.offset)
                if run.forwarded.readableBytes != expected.forwarded || run.controls.count != expected.controls {
                    fail("at the error: forwarded \(run.forwarded.readableBytes), controls \(run.controls.count); expected \(expected)")
                }
                if !failed { checkContent(after: invalid.offset) }
                return run
            }
        }
        consumed += length

        if let invalid = model.invalidHeader, invalid.offset + Frame.headerLength <= consumed {
            fail("no error after the bad header at \(invalid.offset) was complete (consumed \(consumed))")
            return run
        }
        // (d), (e) Counters and boundary after every chunk.
        let expected = model.expectation(after: consumed)
        let actual = ScannedStream.Expectation(
            forwarded: run.forwarded.readableBytes,
            peerFrames: Int(scanner.peerFrames),
            controls: run.controls.count,
            atBoundary: scanner.isAtFrameBoundary
        )
        if actual != expected || scanner.peerBytes != UInt64(expected.forwarded) {
            fail("after \(consumed) bytes: \(actual), peerBytes \(scanner.peerBytes); expected \(expected)")
        }
        if failed { return run }
    }
    checkContent(after: consumed)
    return run
}

// MARK: - Seeded randomness

/// The suite's seeded generator (TestSupport.swift).
private typealias ScanRandom = SeededRandom
