import NIOCore
import NIOEmbedded
import NIOTestUtils
import RelayTestSupport
import Testing

@testable import RelayWire

/// Random messages of every type survive encode → frame → decode unchanged, byte for byte,
/// alone, in one stream cut at random points, and through a NIO pipeline.
@Suite("Message round trips")
struct MessageRoundTripTests {
    static let seeds: [UInt64] = [0x5EED_0001, 0xC0FF_EE00_0000_0042, 0x000D_15EA_5E00_0000]
    /// Messages per type and seed: 500 × 3 seeds = 1,500 per type, 25,500 in all.
    static let messagesPerSeed = 500

    @Test("the generator is deterministic for a seed")
    func generatorIsDeterministic() throws {
        // The SplitMix64 reference output for seed 0 (Vigna's splitmix64.c).
        var reference = SeededRandom(seed: 0)
        #expect(reference.next() == 0xE220_A839_7B1D_CDAF)
        #expect(reference.next() == 0x6E78_9E6A_A1B9_65F4)

        var first = MessageGenerator(seed: 7)
        var second = MessageGenerator(seed: 7)
        for _ in 0..<200 {
            #expect(first.message() == second.message())
        }
        var other = MessageGenerator(seed: 8)
        let a = (0..<20).map { _ in first.message() }
        let b = (0..<20).map { _ in other.message() }
        #expect(a != b)
    }

    @Test("encode, read the frame, decode: same message and same bytes", arguments: MessageType.allCases, Self.seeds)
    func singleFrameRoundTrip(type: MessageType, seed: UInt64) throws {
        for index in 0..<Self.messagesPerSeed {
            let caseSeed = SeededRandom.caseSeed(base: seed, index: index)
            var generator = MessageGenerator(seed: caseSeed)
            let message = generator.message(type)
            try Self.checkRoundTrip(message, caseSeed)
        }
    }

    /// Messages at the edges that random values rarely hit exactly.
    @Test("edge values round-trip")
    func edgeValues() throws {
        let longest = String(repeating: "a", count: Int(UInt16.max))
        let longestKorean = String(repeating: "회", count: Int(UInt16.max) / 3)  // 65,535 bytes
        let edges: [RelayMessage] = [
            .hello(Hello(version: 0, role: .host, capabilities: [], software: "")),
            .hello(Hello(version: .max, role: .viewer, capabilities: Capabilities(rawValue: .max), software: longest)),
            .helloAck(HelloAck(capabilities: .all, maximumPayloadLength: .max, relayNode: longestKorean)),
            .hostAuth(.supportCode(SupportCode(value: 0)!)),
            .hostAuth(.supportCode(SupportCode(value: 42)!)),
            .hostAuth(.supportCode(SupportCode(value: 999_999)!)),
            .hostAuth(.enrolled(hostID: "", secret: "")),
            .viewerAuth(ViewerAuth(token: "", request: .connect(hostID: ""))),
            .viewerAuth(ViewerAuth(token: longest, request: .newSupportCode)),
            .codeIssued(CodeIssued(code: SupportCode(value: 7)!, validForSeconds: 0)),
            .hostRegistered(HostRegistered(hostName: "회계팀 PC")),
            .paired(Paired(sessionID: SessionID(high: 0, low: 0), mode: .attended, peerCapabilities: [], peerName: "", peerSoftware: "")),
            .paired(Paired(sessionID: SessionID(high: .max, low: .max), mode: .unattended, peerCapabilities: .all, peerName: "👩‍💻", peerSoftware: longest)),
            .ping(Ping(nonce: 0)), .pong(Pong(nonce: .max)),
            .bye(Bye(reason: ByeReason(rawValue: 0), text: "")), .bye(Bye(reason: ByeReason(rawValue: .max), text: "\u{0}")),
            .error(ErrorMessage(code: ErrorCode(rawValue: 0), message: "")),
            .screenInit(ScreenInit(width: 1, height: 1, name: "")),
            .screenInit(ScreenInit(width: ScreenInit.maximumDimension, height: ScreenInit.maximumDimension, name: ":0")),
            .tileUpdate(TileUpdate(body: ByteBuffer())),
            .updateRequest(UpdateRequest(requestID: .max, flags: UpdateRequest.Flags(rawValue: 0xFF))),
            .pointer(Pointer(x: .max, y: 0, buttons: Pointer.Buttons(rawValue: 0xE0))),
            .key(Key(keysym: 0, isDown: false)), .key(Key(keysym: .max, isDown: true)),
            .clipboard(Clipboard(text: "")),
            .clipboard(Clipboard(text: String(repeating: "클립보드", count: 20_000))),  // 240,000 bytes, beyond any str16
        ]
        for message in edges {
            try Self.checkRoundTrip(message, 0)
        }
    }

    @Test("a str16 longer than 65,535 bytes is refused when encoding")
    func overlongStringIsRefused() throws {
        let tooLong = String(repeating: "회", count: 21_846)  // 65,538 bytes
        expectWireError(.fieldTooLong) { try Frame(.hello(Hello(role: .host, capabilities: .all, software: tooLong))) }
        expectWireError(.fieldTooLong) { try Frame(.bye(Bye(reason: .normal, text: String(repeating: "x", count: 65_536)))) }
        expectWireError(.fieldTooLong) {
            try Frame(.paired(Paired(sessionID: SessionID(high: 1, low: 2), mode: .attended, peerCapabilities: [], peerName: "", peerSoftware: tooLong)))
        }
        _ = try Frame(.bye(Bye(reason: .normal, text: String(repeating: "x", count: 65_535))))
    }

    @Test("a payload beyond the UInt24 length field is refused when encoding")
    func overlongPayloadIsRefused() {
        let body = ByteBuffer(repeating: 0xAB, count: Frame.maximumEncodablePayloadLength + 1)
        expectWireError(.frameTooLarge) { try Frame(.tileUpdate(TileUpdate(body: body))) }
        expectWireError(.frameTooLarge) { try Frame(type: .tileUpdate, payload: body) }
    }

    @Test("Frame(type:payload:) and Frame(message) agree")
    func frameFromPayload() throws {
        var generator = MessageGenerator(seed: 0xF4A3E)
        for _ in 0..<500 {
            let message = generator.message()
            var payload = ByteBuffer()
            try message.encodePayload(into: &payload)
            let frame = try Frame(type: message.type, payload: payload)
            #expect(frame == (try Frame(message)))
            #expect(try RelayMessage(frame) == message)
        }
    }

    /// All the per-message checks; `seed` is printed on failure.
    static func checkRoundTrip(_ message: RelayMessage, _ seed: UInt64) throws {
        let frame = try Frame(message)
        let reference = WireLayout.payload(of: message)

        // Header: type byte, then the payload length as UInt24 big-endian.
        #expect(frame.type == message.type, reproduce(seed))
        #expect(frame.bytes.getInteger(at: frame.bytes.readerIndex, as: UInt8.self) == message.type.rawValue, reproduce(seed))
        let announced = frame.bytes.getInteger(at: frame.bytes.readerIndex, as: UInt32.self)! & 0xFF_FFFF
        #expect(Int(announced) == reference.count, reproduce(seed))
        #expect(frame.payloadLength == reference.count, reproduce(seed))
        // Payload: byte for byte what PROTOCOL.md §5 lays out.
        #expect(Array(frame.payload.readableBytesView) == reference, reproduce(seed, "payload differs from the reference layout"))

        var wire = frame.bytes
        let read = try wire.readFrame(maximumPayloadLength: Frame.maximumEncodablePayloadLength)
        #expect(wire.readableBytes == 0, reproduce(seed))
        guard let read else {
            Issue.record(reproduce(seed, "readFrame returned nil for a whole frame"))
            return
        }
        #expect(read == frame, reproduce(seed))
        let decoded = try RelayMessage(read)
        #expect(decoded == message, reproduce(seed))
        let reencoded = try Frame(decoded)
        #expect(reencoded.bytes == frame.bytes, reproduce(seed, "re-encoding changed the bytes"))
    }

    // MARK: - Streams

    @Test("one stream of many frames, fed in random chunks of 1 byte … 64 KiB", arguments: Self.seeds)
    func chunkedStream(seed: UInt64) throws {
        var random = SeededRandom(seed: seed)
        var messages: [RelayMessage] = []
        var frames: [Frame] = []
        var stream = ByteBuffer()
        var frameEnds: [Int] = []
        for index in 0..<2_000 {
            var generator = MessageGenerator(seed: SeededRandom.caseSeed(base: seed, index: index))
            let message = generator.message()
            let frame = try Frame(message)
            messages.append(message)
            frames.append(frame)
            stream.writeImmutableBuffer(frame.bytes)
            frameEnds.append(stream.writerIndex)
        }

        var decoder = FrameDecoder()
        var receive = ByteBuffer()
        var decoded: [Frame] = []
        var cutsInsideHeaders = 0
        var chunksWithSeveralFrames = 0
        while stream.readableBytes > 0 {
            // Half the cuts land at, in or right after the next frame's header, the rest
            // are log-uniform from 1 byte to 64 KiB.
            let size: Int
            if random.oneIn(2), let end = frameEnds.first(where: { $0 > stream.readerIndex }) {
                size = max(1, end - stream.readerIndex + random.int(0...4))
            } else {
                size = random.logUniformSize(maximum: 64 * 1024)
            }
            var chunk = stream.readSlice(length: min(size, stream.readableBytes))!
            receive.writeBuffer(&chunk)
            let before = decoded.count
            while let frame = try decoder.decode(buffer: &receive) {
                decoded.append(frame)
            }
            if decoded.count - before >= 2 { chunksWithSeveralFrames += 1 }
            if (1...3).contains(receive.readableBytes) { cutsInsideHeaders += 1 }
            if random.oneIn(4) { receive.discardReadBytes() }
        }
        #expect(try decoder.decodeLast(buffer: &receive, seenEOF: true) == nil)
        // The cuts are varied enough to mean something.
        #expect(cutsInsideHeaders >= 20, "\(cutsInsideHeaders) cuts inside headers, \(reproduce(seed))")
        #expect(chunksWithSeveralFrames >= 20, "\(chunksWithSeveralFrames) chunks with several frames, \(reproduce(seed))")

        #expect(decoded.count == frames.count, reproduce(seed))
        for (index, (frame, message)) in zip(decoded, messages).enumerated() {
            let caseSeed = SeededRandom.caseSeed(base: seed, index: index)
            #expect(frame == frames[index], reproduce(caseSeed, "frame \(index) of the stream"))
            #expect(try RelayMessage(frame) == message, reproduce(caseSeed, "frame \(index) of the stream"))
        }
    }

    @Test("through EmbeddedChannel: FrameEncoder out, ByteToMessageHandler(FrameDecoder) in", arguments: Self.seeds)
    func embeddedPipeline(seed: UInt64) throws {
        let channel = EmbeddedChannel(handlers: [ByteToMessageHandler(FrameDecoder()), FrameEncoder()])
        var random = SeededRandom(seed: seed ^ 0xE3BE)
        var messages: [RelayMessage] = []
        var wire = ByteBuffer()
        for index in 0..<300 {
            let caseSeed = SeededRandom.caseSeed(base: seed, index: index)
            var generator = MessageGenerator(seed: caseSeed)
            let message = generator.message()
            messages.append(message)
            let frame = try Frame(message)
            try channel.writeOutbound(frame)
            // The encoder writes the frame's own buffer: header and payload, nothing added.
            while var written = try channel.readOutbound(as: ByteBuffer.self) {
                #expect(written == frame.bytes, reproduce(caseSeed))
                wire.writeBuffer(&written)
            }
        }

        var received: [RelayMessage] = []
        while wire.readableBytes > 0 {
            let chunk = wire.readSlice(length: random.logUniformSize(maximum: min(64 * 1024, wire.readableBytes)))!
            try channel.writeInbound(chunk)
            while let frame = try channel.readInbound(as: Frame.self) {
                received.append(try RelayMessage(frame))
            }
        }
        #expect(received == messages, reproduce(seed))
        #expect(try channel.finish().isClean)
    }

    @Test("ByteToMessageDecoderVerifier accepts FrameDecoder")
    func decoderVerifier() throws {
        var generator = MessageGenerator(seed: 0xB2D_0000)
        var pairs: [(ByteBuffer, [Frame])] = []
        // One frame per input, every type, including empty payloads.
        for type in MessageType.allCases {
            for _ in 0..<3 {
                // Keep the verifier's byte-at-a-time drip feed quick: small messages only.
                var message = generator.message(type)
                while try Frame(message).bytes.readableBytes > 600 { message = generator.message(type) }
                let frame = try Frame(message)
                pairs.append((frame.bytes, [frame]))
            }
            let empty = try Frame(type: type, payload: ByteBuffer())
            pairs.append((empty.bytes, [empty]))
        }
        // Several frames in one input.
        for _ in 0..<5 {
            var input = ByteBuffer()
            var expected: [Frame] = []
            for _ in 0..<generator.random.int(2...6) {
                var message = generator.message()
                while try Frame(message).bytes.readableBytes > 300 { message = generator.message() }
                let frame = try Frame(message)
                input.writeImmutableBuffer(frame.bytes)
                expected.append(frame)
            }
            pairs.append((input, expected))
        }
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs) { FrameDecoder() }
    }
}
