import NIOCore
import NIOEmbedded
import RelayTestSupport
import Testing

@testable import RelayWire

/// FrameDecoder's promises beyond round trips (PROTOCOL.md §2), and the small vocabulary
/// types (§3, §6).
@Suite("Frame decoder and vocabulary")
struct FrameDecoderTests {
    // MARK: - No copies

    /// The address of the first readable byte.
    static func address(of buffer: ByteBuffer) -> UInt {
        buffer.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
    }

    @Test("decoded frames and their payloads point into the receive buffer's storage")
    func payloadsAreSlices() throws {
        var generator = MessageGenerator(seed: 0x511CE)
        var receive = ByteBuffer()
        // Start at a non-zero reader index, as a receive buffer does after earlier reads.
        receive.writeBytes([0xEE, 0xEE, 0xEE])
        receive.moveReaderIndex(forwardBy: 3)

        var expected: [(offset: Int, frame: Frame)] = []
        for index in 0..<60 {
            // Every type, and never an empty payload (an empty slice has no address to compare).
            var message = generator.message(MessageType.allCases[index % MessageType.allCases.count])
            while try Frame(message).payloadLength == 0 { message = generator.message(message.type) }
            let frame = try Frame(message)
            expected.append((receive.writerIndex, frame))
            receive.writeImmutableBuffer(frame.bytes)
        }
        let storage = Self.address(of: receive) - UInt(receive.readerIndex)

        var decoder = FrameDecoder()
        for (offset, original) in expected {
            let frame = try #require(try decoder.decode(buffer: &receive))
            #expect(frame == original)
            #expect(Self.address(of: frame.bytes) == storage + UInt(offset))
            #expect(Self.address(of: frame.payload) == storage + UInt(offset + Frame.headerLength))
            // A TileUpdate's body is the payload itself, still not copied.
            if case .tileUpdate(let update) = try RelayMessage(frame) {
                #expect(Self.address(of: update.body) == storage + UInt(offset + Frame.headerLength))
            }
        }
        #expect(receive.readableBytes == 0)
        // Still the same storage: decoding never copied or moved the receive buffer.
        #expect(Self.address(of: receive) - UInt(receive.readerIndex) == storage)
    }

    // MARK: - Header validation

    @Test("an oversized header is refused the moment its fourth byte arrives", arguments: [0, 100, Frame.defaultMaximumPayloadLength])
    func headerOnlyValidation(limit: Int) throws {
        let header = Array(WireLayout.frame(type: MessageType.tileUpdate.rawValue, payload: [], announcedLength: limit + 1).readableBytesView)
        var decoder = FrameDecoder(maximumPayloadLength: limit)
        var receive = ByteBuffer()
        for byte in header.prefix(3) {
            receive.writeInteger(byte)
            #expect(try decoder.decode(buffer: &receive) == nil)
        }
        receive.writeInteger(header[3])
        expectWireError(.frameTooLarge, "limit \(limit)") { try decoder.decode(buffer: &receive) }
        // Nothing was consumed, so a caller that inspects the buffer sees the bad header.
        #expect(receive.readableBytes == 4)
    }

    // MARK: - End of stream

    @Test("decodeLast on an empty buffer returns nil")
    func decodeLastEmpty() throws {
        var decoder = FrameDecoder()
        var empty = ByteBuffer()
        #expect(try decoder.decodeLast(buffer: &empty, seenEOF: true) == nil)
        #expect(try decoder.decodeLast(buffer: &empty, seenEOF: false) == nil)
        // Also once everything has been read.
        var consumed = try Frame(.ping(Ping(nonce: 3))).bytes
        #expect(try decoder.decode(buffer: &consumed) != nil)
        #expect(try decoder.decodeLast(buffer: &consumed, seenEOF: true) == nil)
    }

    @Test("decodeLast hands out the whole frames, then throws truncatedFrame for the rest", arguments: [true, false])
    func decodeLastLeftovers(seenEOF: Bool) throws {
        let first = try Frame(.hostRegistered(HostRegistered(hostName: "회계팀 PC")))
        let second = try Frame(.key(Key(keysym: 0xFF0D, isDown: true)))
        var receive = first.bytes
        receive.writeImmutableBuffer(second.bytes.getSlice(at: 0, length: 7)!)
        var decoder = FrameDecoder()
        #expect(try decoder.decodeLast(buffer: &receive, seenEOF: seenEOF) == first)
        expectWireError(.truncatedFrame) { try decoder.decodeLast(buffer: &receive, seenEOF: seenEOF) }
        #expect(receive.readableBytes == 7)

        // Header bytes alone are truncated too.
        var partialHeader = ByteBuffer(bytes: [MessageType.ping.rawValue, 0x00])
        expectWireError(.truncatedFrame) { try decoder.decodeLast(buffer: &partialHeader, seenEOF: seenEOF) }
    }

    @Test("a channel closed mid-frame reports truncatedFrame")
    func channelClosedMidFrame() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder()))
        let frame = try Frame(.clipboard(Clipboard(text: "회계팀")))
        var bytes = frame.bytes
        bytes.writeImmutableBuffer(frame.bytes.getSlice(at: 0, length: 5)!)
        try channel.writeInbound(bytes)
        #expect(try channel.readInbound(as: Frame.self) == frame)
        expectWireError(.truncatedFrame) { try channel.finish() }
    }

    // MARK: - The fenced handler

    @Test("ByteToMessageHandler(frameDecoderWithMaximumPayloadLength:) in an EmbeddedChannel")
    func fencedHandler() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(frameDecoderWithMaximumPayloadLength: 100))
        var random = SeededRandom(seed: 0xFE4CE)
        var sent: [Frame] = []
        var wire = ByteBuffer()
        for length in [0, 1, 50, 99, 100, 100, 3, 100] {
            let frame = try Frame(type: .tileUpdate, payload: ByteBuffer(bytes: random.bytes(count: length)))
            sent.append(frame)
            wire.writeImmutableBuffer(frame.bytes)
        }
        // In pieces that straddle frame boundaries.
        var received: [Frame] = []
        while wire.readableBytes > 0 {
            try channel.writeInbound(wire.readSlice(length: min(wire.readableBytes, random.int(1...150)))!)
            while let frame = try channel.readInbound(as: Frame.self) { received.append(frame) }
        }
        #expect(received == sent)

        let tooLarge = WireLayout.frame(type: MessageType.tileUpdate.rawValue, payload: [], announcedLength: 101)
        expectWireError(.frameTooLarge) { try channel.writeInbound(tooLarge) }
        _ = try? channel.finish()
    }

    // MARK: - SupportCode

    @Test(
        "SupportCode parses what people type",
        arguments: [("000042", 42), ("123 456", 123_456), ("12-34-56", 123_456), ("000000", 0), ("999999", 999_999), (" 042 917 ", 42_917)]
            as [(String, UInt32)]
    )
    func supportCodeAccepted(text: String, value: UInt32) throws {
        let code = try #require(SupportCode(text))
        #expect(code.value == value)
        #expect(code == SupportCode(value: value))
    }

    @Test(
        "SupportCode rejects what is not six digits",
        arguments: ["12345", "1234567", "12a456", "", "      ", "------", "+12345", "12.456", "１２３４５６", "12345६", "12\t3456"]
    )
    func supportCodeRejected(text: String) {
        #expect(SupportCode(text) == nil)
    }

    @Test("SupportCode values and their zero-padded description")
    func supportCodeDescription() {
        #expect(SupportCode(value: 42)?.description == "000042")
        #expect(SupportCode(value: 0)?.description == "000000")
        #expect(SupportCode(value: 999_999)?.description == "999999")
        #expect(SupportCode(value: 1_000_000) == nil)
        #expect(SupportCode(value: .max) == nil)
        var generator = MessageGenerator(seed: 0xC0DE)
        for _ in 0..<2_000 {
            let code = generator.supportCode()
            #expect(code.description.utf8.count == 6)
            #expect(SupportCode(code.description) == code)
        }
    }

    // MARK: - SessionID

    @Test("SessionID description is 32 lowercase hex digits and parses back")
    func sessionIDRoundTrip() throws {
        var random = SeededRandom(seed: 0x5E55_1010)
        var ids = [SessionID(high: 0, low: 0), SessionID(high: .max, low: .max), SessionID(high: 1, low: 0)]
        for _ in 0..<1_000 { ids.append(SessionID.random(using: &random)) }
        for id in ids {
            let text = id.description
            #expect(text.utf8.count == 32)
            #expect(text.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }, "\(text)")
            #expect(SessionID(text) == id)
            #expect(SessionID(text.uppercased()) == id)
            // The UUID layout 8-4-4-4-12.
            let utf8 = Array(text.utf8)
            let dashed = [0..<8, 8..<12, 12..<16, 16..<20, 20..<32].map { String(decoding: utf8[$0], as: UTF8.self) }.joined(separator: "-")
            #expect(SessionID(dashed) == id)
        }
        #expect(SessionID(high: 0x3f2a_9c41_7be0_4d15, low: 0x8a6e_02d7_c913_5b48).description == "3f2a9c417be04d158a6e02d7c9135b48")
        #expect(SessionID(high: 0, low: 1).description == "00000000000000000000000000000001")
    }

    @Test(
        "SessionID rejects what is not 32 hex digits",
        arguments: [
            "", "0", String(repeating: "a", count: 31), String(repeating: "a", count: 33), String(repeating: "g", count: 32),
            "3f2a9c417be04d158a6e02d7c9135b4 ", " 3f2a9c417be04d158a6e02d7c9135b4", "3f2a9c417be04d158a6e02d7c9135b4é",
            "0x2a9c417be04d158a6e02d7c9135b48",
        ]
    )
    func sessionIDRejected(text: String) {
        #expect(SessionID(text) == nil)
    }

    @Test("SessionID rejects a sign in either half")
    func sessionIDRejectsSigns() {
        // UInt64(_:radix:) alone would accept a leading "+" or "-" in either half.
        #expect(SessionID("+000000000000001" + "0000000000000001") == nil)
        #expect(SessionID("0000000000000001" + "-000000000000000") == nil)
    }

    // MARK: - Reason and error codes

    static let byeNames: [(UInt16, String)] = [
        (1, "normal"), (2, "peer_left"), (3, "relay_shutdown"), (4, "idle_timeout"), (5, "handshake_timeout"),
        (6, "protocol_error"), (7, "revoked"), (8, "relay_restart"), (9, "declined"),
    ]
    static let errorNames: [(UInt16, String)] = [
        (1, "unsupported_version"), (2, "malformed_message"), (3, "frame_too_large"), (4, "unexpected_message"),
        (5, "authentication_failed"), (6, "invalid_code"), (7, "no_such_host"), (8, "host_busy"), (9, "rate_limited"),
        (10, "relay_full"), (11, "timeout"), (12, "internal_error"),
    ]

    @Test("ByeReason names, known and unknown")
    func byeReasonNames() {
        for (raw, name) in Self.byeNames {
            #expect(ByeReason(rawValue: raw).name == name)
            #expect(ByeReason(rawValue: raw).description == name)
        }
        #expect(ByeReason.known.map(\.rawValue) == Self.byeNames.map(\.0))
        #expect(ByeReason.normal.name == "normal")
        #expect(ByeReason.relayRestart.name == "relay_restart")
        for raw: UInt16 in [0, 10, 1000, .max] {
            #expect(ByeReason(rawValue: raw).name == "unknown_\(raw)")
        }
    }

    @Test("ErrorCode names, known and unknown")
    func errorCodeNames() {
        for (raw, name) in Self.errorNames {
            #expect(ErrorCode(rawValue: raw).name == name)
            #expect(ErrorCode(rawValue: raw).description == name)
        }
        #expect(ErrorCode.known.map(\.rawValue) == Self.errorNames.map(\.0))
        #expect(ErrorCode.frameTooLarge.name == "frame_too_large")
        for raw: UInt16 in [0, 13, 0x8000, .max] {
            #expect(ErrorCode(rawValue: raw).name == "unknown_\(raw)")
        }
    }

    @Test("message types: control below 0x40, peer 0x40…0x7F, distinct names")
    func messageTypeRanges() {
        for type in MessageType.allCases {
            #expect(type.isPeerMessage == (0x40...0x7F).contains(type.rawValue), "\(type.name)")
            #expect(type.rawValue != 0)
        }
        #expect(MessageType.allCases.filter(\.isPeerMessage).count == 10)
        #expect(Set(MessageType.allCases.map(\.name)).count == MessageType.allCases.count)
    }
}
