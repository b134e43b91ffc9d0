import NIOCore
import NIOEmbedded
import RelayTestSupport
import Testing

@testable import RelayWire

/// Every kind of malformed input ends in a typed `WireError` of the right kind (PROTOCOL.md
/// §6) — never a trap, never a wait for bytes that a header already ruled out.
@Suite("Malformed input")
struct MalformedInputTests {
    // MARK: - Samples

    /// A few random messages of each type, plus every variant of the enum-shaped messages
    /// and one long TileUpdate, each with the seed that made it.
    static func samples(of type: MessageType, count: Int = 6) -> [(message: RelayMessage, seed: UInt64)] {
        var result: [(message: RelayMessage, seed: UInt64)] = (0..<count).map { index in
            let seed = SeededRandom.caseSeed(base: 0xBAD_1DEA ^ UInt64(type.rawValue), index: index)
            var generator = MessageGenerator(seed: seed)
            return (generator.message(type), seed)
        }
        switch type {
        case .hostAuth:
            result.append((.hostAuth(.supportCode(SupportCode(value: 42)!)), 0))
            result.append((.hostAuth(.namedSupportCode(SupportCode(value: 42)!, machineName: "회계팀 PC")), 0))
            result.append((.hostAuth(.enrolled(hostID: "h-7f3a9c2e", secret: "hs_회계팀")), 0))
        case .viewerAuth:
            result.append((.viewerAuth(ViewerAuth(token: "et_4q7Z", request: .newSupportCode)), 0))
            result.append((.viewerAuth(ViewerAuth(token: "et_4q7Z", request: .connect(hostID: "🖥️ 회계팀"))), 0))
        case .tileUpdate:
            var random = SeededRandom(seed: 0x711E)
            result.append((.tileUpdate(TileUpdate(body: ByteBuffer(bytes: random.bytes(count: 70_000)))), 0))
        default:
            break
        }
        return result
    }

    static var allSamples: [(message: RelayMessage, seed: UInt64)] {
        MessageType.allCases.flatMap { self.samples(of: $0) }
    }

    /// The frame of `message` with one field replaced.
    static func frame(_ message: RelayMessage, replacing name: String, with value: WireField.Value) -> ByteBuffer {
        var fields = WireLayout.fields(of: message)
        let index = fields.firstIndex { $0.name == name }!
        fields[index].value = value
        return WireLayout.frame(message.type, fields)
    }

    // MARK: - Truncation

    @Test("every strict prefix of a frame: decoder waits, then EOF is truncatedFrame", arguments: MessageType.allCases)
    func truncatedFrames(type: MessageType) throws {
        for (message, seed) in Self.samples(of: type) {
            let whole = try Frame(message).bytes
            var failures = 0
            for length in 0..<whole.readableBytes {
                var prefix = whole.getSlice(at: whole.readerIndex, length: length)!
                var decoder = FrameDecoder()
                // A header that arrived whole is validated before waiting (see oversizedHeader).
                if try decoder.decode(buffer: &prefix) != nil || prefix.readableBytes != length {
                    failures += 1
                    Issue.record(reproduce(seed, "prefix of \(length) of \(whole.readableBytes) bytes was not left waiting"))
                }
                if length == 0 {
                    #expect(try decoder.decodeLast(buffer: &prefix, seenEOF: true) == nil)
                } else {
                    expectWireError(.truncatedFrame, reproduce(seed, "prefix \(length)")) {
                        try decoder.decodeLast(buffer: &prefix, seenEOF: true)
                    }
                }
                if failures > 5 { return }
            }
        }
    }

    @Test("a payload cut short, with its header length to match, is truncatedMessage", arguments: MessageType.allCases)
    func truncatedPayloads(type: MessageType) throws {
        for (message, seed) in Self.samples(of: type) {
            let payload = WireLayout.payload(of: message)
            // One buffer whose header is rewritten for each cut, so that a 70,000-byte
            // body costs 70,000 header writes rather than 70,000 copies.
            var work = WireLayout.frame(type: type.rawValue, payload: payload)
            for length in 0..<payload.count {
                work.setInteger(UInt32(type.rawValue) << 24 | UInt32(length), at: work.readerIndex)
                let frame = work.getSlice(at: work.readerIndex, length: Frame.headerLength + length)!
                switch type {
                case .tileUpdate:
                    // The body is whatever the frame holds, so any length is a valid update.
                    let expected = TileUpdate(body: frame.getSlice(at: Frame.headerLength, length: length)!)
                    #expect(try decodeSingleMessage(frame) == .tileUpdate(expected), reproduce(seed, "cut at \(length)"))
                case .sealed:
                    // Ciphertext and tag are opaque here: any length from an inner type and a tag up is valid.
                    if length >= Sealed.minimumBodyLength {
                        let expected = Sealed(body: frame.getSlice(at: Frame.headerLength, length: length)!)
                        #expect(try decodeSingleMessage(frame) == .sealed(expected), reproduce(seed, "cut at \(length)"))
                    } else {
                        expectWireError(.truncatedMessage, reproduce(seed, "cut at \(length)")) { try decodeSingleMessage(frame) }
                    }
                case .clipboard:
                    // The text is the rest of the payload: valid if cut between scalars.
                    if payload[length] & 0xC0 != 0x80 {
                        let text = String(decoding: payload[..<length], as: UTF8.self)
                        #expect(try decodeSingleMessage(frame) == .clipboard(Clipboard(text: text)), reproduce(seed, "cut at \(length)"))
                    } else {
                        expectWireError(.invalidUTF8, reproduce(seed, "cut at \(length)")) { try decodeSingleMessage(frame) }
                    }
                default:
                    expectWireError(.truncatedMessage, reproduce(seed, "payload cut to \(length) of \(payload.count) bytes")) {
                        try decodeSingleMessage(frame)
                    }
                }
            }
        }
    }

    // MARK: - Oversized frames

    @Test("a header announcing limit + 1 is refused with only its 4 bytes buffered", arguments: MessageType.allCases)
    func oversizedHeader(type: MessageType) throws {
        for limit in [0, 100, Frame.defaultMaximumPayloadLength, Frame.maximumEncodablePayloadLength - 1] {
            var header = WireLayout.frame(type: type.rawValue, payload: [], announcedLength: limit + 1)
            var decoder = FrameDecoder(maximumPayloadLength: limit)
            expectWireError(.frameTooLarge, "limit \(limit)") { try decoder.decode(buffer: &header) }
            // At the limit the same header is fine: the decoder waits for the payload.
            var atLimit = WireLayout.frame(type: type.rawValue, payload: [], announcedLength: limit)
            let waited = try decoder.decode(buffer: &atLimit)
            #expect((waited == nil) == (limit > 0))
        }
        // The largest length a header can carry, against the default limit.
        var largest = WireLayout.frame(type: type.rawValue, payload: [], announcedLength: Frame.maximumEncodablePayloadLength)
        var decoder = FrameDecoder()
        expectWireError(.frameTooLarge) { try decoder.decode(buffer: &largest) }
    }

    @Test("a decoder limited to 100 bytes takes 100 and refuses 101")
    func smallLimit() throws {
        var decoder = FrameDecoder(maximumPayloadLength: 100)
        let hundred = [UInt8](repeating: 0x5A, count: 100)
        var fits = WireLayout.frame(type: MessageType.tileUpdate.rawValue, payload: hundred)
        let frame = try #require(try decoder.decode(buffer: &fits))
        #expect(frame.payloadLength == 100)
        #expect(try RelayMessage(frame) == .tileUpdate(TileUpdate(body: ByteBuffer(bytes: hundred))))

        // Refused whether the payload is there or not.
        var tooLong = WireLayout.frame(type: MessageType.tileUpdate.rawValue, payload: hundred + [0x5A])
        expectWireError(.frameTooLarge) { try decoder.decode(buffer: &tooLong) }
        var headerOnly = WireLayout.frame(type: MessageType.clipboard.rawValue, payload: [], announcedLength: 101)
        expectWireError(.frameTooLarge) { try decoder.decode(buffer: &headerOnly) }
    }

    @Test("an oversized header after valid frames: the frames come out, then the error")
    func oversizedAfterValidFrames() throws {
        var stream = try Frame(.ping(Ping(nonce: 1))).bytes
        stream.writeImmutableBuffer(try Frame(.pong(Pong(nonce: 2))).bytes)
        stream.writeImmutableBuffer(
            WireLayout.frame(type: MessageType.tileUpdate.rawValue, payload: [], announcedLength: Frame.defaultMaximumPayloadLength + 1))
        var decoder = FrameDecoder()
        #expect(try decoder.decode(buffer: &stream).map { try RelayMessage($0) } == .ping(Ping(nonce: 1)))
        #expect(try decoder.decode(buffer: &stream).map { try RelayMessage($0) } == .pong(Pong(nonce: 2)))
        expectWireError(.frameTooLarge) { try decoder.decode(buffer: &stream) }
    }

    @Test("through EmbeddedChannel an oversized header fails the read", arguments: [false, true])
    func oversizedThroughChannel(fenced: Bool) throws {
        let handler =
            fenced
            ? ByteToMessageHandler(frameDecoderWithMaximumPayloadLength: Frame.defaultMaximumPayloadLength)
            : ByteToMessageHandler(FrameDecoder())
        let channel = EmbeddedChannel(handler: handler)
        try channel.writeInbound(try Frame(.ping(Ping(nonce: 9))).bytes)
        #expect(try channel.readInbound(as: Frame.self).map { try RelayMessage($0) } == .ping(Ping(nonce: 9)))

        let header = WireLayout.frame(type: MessageType.tileUpdate.rawValue, payload: [], announcedLength: Frame.defaultMaximumPayloadLength + 1)
        expectWireError(.frameTooLarge) { try channel.writeInbound(header) }
        #expect(try channel.readInbound(as: Frame.self) == nil)
        _ = try? channel.finish()
    }

    // MARK: - Unknown types

    @Test("each of the 239 type bytes that is not a MessageType is unknownMessageType")
    func unknownTypes() throws {
        var tested = 0
        for raw in UInt8.min...UInt8.max {
            if MessageType(rawValue: raw) != nil {
                // Known types frame fine (an empty payload may still be a truncated message).
                var empty = WireLayout.frame(type: raw, payload: [])
                #expect(try empty.readFrame(maximumPayloadLength: 0)?.type.rawValue == raw)
                continue
            }
            tested += 1
            for payload in [[], [0x00, 0x01], [UInt8](repeating: 0xFF, count: 8)] as [[UInt8]] {
                var frame = WireLayout.frame(type: raw, payload: payload)
                expectWireError(.unknownMessageType, "type 0x\(String(raw, radix: 16))") {
                    try frame.readFrame(maximumPayloadLength: Frame.defaultMaximumPayloadLength)
                }
            }
            // Rejected on the header alone, without its payload.
            var header = WireLayout.frame(type: raw, payload: [], announcedLength: 10)
            var decoder = FrameDecoder()
            expectWireError(.unknownMessageType, "type 0x\(String(raw, radix: 16))") { try decoder.decode(buffer: &header) }
        }
        #expect(tested == 256 - MessageType.allCases.count)
    }

    // MARK: - Invalid UTF-8

    static let invalidUTF8: [(name: String, bytes: [UInt8])] = [
        ("overlong '/' C0 AF", [0xC0, 0xAF]),
        ("overlong NUL C0 80", [0xC0, 0x80]),
        ("overlong C1 BF", [0xC1, 0xBF]),
        ("overlong 3-byte E0 80 AF", [0xE0, 0x80, 0xAF]),
        ("overlong 4-byte F0 80 80 AF", [0xF0, 0x80, 0x80, 0xAF]),
        ("lone continuation 80", [0x80]),
        ("lone continuation BF", [0xBF]),
        ("continuation between ASCII", Array("ab".utf8) + [0x80] + Array("cd".utf8)),
        ("surrogate U+D800 as ED A0 80", [0xED, 0xA0, 0x80]),
        ("surrogate U+DFFF as ED BF BF", [0xED, 0xBF, 0xBF]),
        ("surrogate pair as CESU-8", [0xED, 0xA0, 0xBD, 0xED, 0xB8, 0x80]),
        ("truncated 회 EC 9A", [0xEC, 0x9A]),
        ("회계 then truncated 팀", Array("회계".utf8) + [0xED, 0x8C]),
        ("truncated emoji F0 9F 98", [0xF0, 0x9F, 0x98]),
        ("lead byte then ASCII", [0xC3, 0x41]),
        ("above U+10FFFF F4 90 80 80", [0xF4, 0x90, 0x80, 0x80]),
        ("F5 lead byte", [0xF5, 0x80, 0x80, 0x80]),
        ("FE", [0xFE]),
        ("FF", [0xFF]),
    ]

    static let textFields: Set<String> = [
        "Hello.software", "HelloAck.relayNode", "HostAuth.hostID", "HostAuth.secret", "HostAuth.machineName", "ViewerAuth.token",
        "ViewerAuth.hostID", "HostRegistered.hostName", "Paired.peerName", "Paired.peerSoftware", "Paired.peerOrganization", "Bye.text",
        "Error.message", "ScreenInit.name", "Clipboard.text",
        "NodeAuth.node", "NodeAuth.agentAddress", "NodeAuth.hostID", "NodeAuth.companyID", "NodeAuth.engineer", "NodeAuth.organization",
        "NodeAuth.hostName",
    ]

    @Test("invalid UTF-8 in each text field is invalidUTF8")
    func invalidUTF8InEveryTextField() throws {
        var covered: Set<String> = []
        let surroundings: [([UInt8], [UInt8])] = [([], []), (Array("회계팀 ".utf8), []), ([], Array(" 👍🏽".utf8)), (Array("a".utf8), Array("z".utf8))]
        for (message, seed) in Self.allSamples {
            let fields = WireLayout.fields(of: message)
            for (index, field) in fields.enumerated() where field.isText {
                covered.insert(field.name)
                for (caseIndex, bad) in Self.invalidUTF8.enumerated() {
                    let (before, after) = surroundings[caseIndex % surroundings.count]
                    let bytes = before + bad.bytes + after
                    var mutated = fields
                    if case .rest = field.value {
                        mutated[index].value = .rest(bytes)
                    } else {
                        mutated[index].value = .str16(lengthPrefix: UInt16(bytes.count), bytes)
                    }
                    expectWireError(.invalidUTF8, reproduce(seed, "\(field.name): \(bad.name)")) {
                        try decodeSingleMessage(WireLayout.frame(message.type, mutated))
                    }
                }
                // The same construction with valid text decodes, so the errors above are the bytes' fault.
                var valid = fields
                let text = "회계팀 👩‍💻"
                if case .rest = field.value {
                    valid[index].value = .rest(Array(text.utf8))
                } else {
                    valid[index] = .string(field.name, text)
                }
                let decoded = try decodeSingleMessage(WireLayout.frame(message.type, valid))
                #expect(WireLayout.fields(of: decoded) == valid, reproduce(seed, field.name))
            }
        }
        #expect(covered == Self.textFields)
    }

    // MARK: - Trailing bytes

    @Test("bytes after the last field are trailingBytes, for every type with a last field", arguments: MessageType.allCases)
    func trailingBytes(type: MessageType) throws {
        var random = SeededRandom(seed: 0x7A11 ^ UInt64(type.rawValue))
        for (message, seed) in Self.samples(of: type) {
            let payload = WireLayout.payload(of: message)
            for extra in [[0x00], [0x41], random.bytes(count: random.int(2...64))] as [[UInt8]] {
                let frame = WireLayout.frame(type: type.rawValue, payload: payload + extra)
                switch type {
                case .tileUpdate:
                    // A TileUpdate body fills its frame (PROTOCOL.md §5.2): extra bytes are body.
                    #expect(try decodeSingleMessage(frame) == .tileUpdate(TileUpdate(body: ByteBuffer(bytes: payload + extra))), reproduce(seed))
                case .sealed:
                    // So does a Sealed body (PROTOCOL.md §5.3): extra bytes are ciphertext to the relay.
                    #expect(try decodeSingleMessage(frame) == .sealed(Sealed(body: ByteBuffer(bytes: payload + extra))), reproduce(seed))
                case .clipboard:
                    // So does Clipboard text: extra bytes are text, or invalid UTF-8.
                    if let text = String(validating: payload + extra, as: UTF8.self) {
                        #expect(try decodeSingleMessage(frame) == .clipboard(Clipboard(text: text)), reproduce(seed))
                    } else {
                        expectWireError(.invalidUTF8, reproduce(seed)) { try decodeSingleMessage(frame) }
                    }
                default:
                    expectWireError(.trailingBytes, reproduce(seed, "\(extra.count) extra bytes")) { try decodeSingleMessage(frame) }
                }
            }
        }
    }

    // MARK: - Length prefixes that lie

    @Test("a str16 prefix longer than what is left is truncatedMessage")
    func absurdLengthPrefixes() throws {
        var covered: Set<String> = []
        for (message, seed) in Self.allSamples {
            let fields = WireLayout.fields(of: message)
            for (index, field) in fields.enumerated() {
                guard case .str16(let length, let bytes) = field.value else { continue }
                covered.insert(field.name)
                var absurd = fields
                absurd[index].value = .str16(lengthPrefix: 0xFFFF, Array(bytes.prefix(3)))
                let frame = WireLayout.frame(message.type, absurd)
                precondition(frame.readableBytes < 0xFFFF, "the sample is too long for this test")
                expectWireError(.truncatedMessage, reproduce(seed, "\(field.name) prefix 0xFFFF")) { try decodeSingleMessage(frame) }

                // One byte too many, in the last field (earlier ones would borrow the next field's bytes).
                if index == fields.count - 1 {
                    var offByOne = fields
                    offByOne[index].value = .str16(lengthPrefix: length + 1, bytes)
                    expectWireError(.truncatedMessage, reproduce(seed, "\(field.name) prefix + 1")) {
                        try decodeSingleMessage(WireLayout.frame(message.type, offByOne))
                    }
                }
            }
        }
        #expect(covered == Self.textFields.subtracting(["Clipboard.text"]))
    }

    // MARK: - Values outside their set

    static let hello = RelayMessage.hello(Hello(role: .host, capabilities: .all, software: "relay-agent/0.1.0"))
    static let paired = RelayMessage.paired(
        Paired(sessionID: SessionID(high: 1, low: 2), mode: .attended, peerCapabilities: .all, peerName: "kim.minji", peerSoftware: "relay-agent")
    )
    static let hostAuthCode = RelayMessage.hostAuth(.supportCode(SupportCode(value: 42)!))
    static let hostAuthEnrolled = RelayMessage.hostAuth(.enrolled(hostID: "h-1", secret: "s"))
    static let hostAuthNamedCode = RelayMessage.hostAuth(.namedSupportCode(SupportCode(value: 42)!, machineName: "PC-1"))
    static let viewerAuth = RelayMessage.viewerAuth(ViewerAuth(token: "et_1", request: .connect(hostID: "h-1")))
    static let key = RelayMessage.key(Key(keysym: 0xFF0D, isDown: true))
    static let screenInit = RelayMessage.screenInit(ScreenInit(width: 1920, height: 1080, name: ":0"))
    static let codeIssued = RelayMessage.codeIssued(CodeIssued(code: SupportCode(value: 42)!, validForSeconds: 600))

    /// (message, field, invalid values, valid values): each invalid value must be
    /// invalidField, each valid one must decode (so the construction itself is sound).
    static let enumeratedFields: [(RelayMessage, String, invalid: [WireField.Value], valid: [WireField.Value])] = [
        (hello, "Hello.role", [.u8(0), .u8(3), .u8(255)], [.u8(1), .u8(2)]),
        (paired, "Paired.mode", [.u8(0), .u8(3), .u8(255)], [.u8(1), .u8(2)]),
        (hostAuthCode, "HostAuth.method", [.u8(0), .u8(5), .u8(255)], []),
        (hostAuthEnrolled, "HostAuth.method", [.u8(0), .u8(5), .u8(255)], []),
        (hostAuthNamedCode, "HostAuth.method", [.u8(0), .u8(5), .u8(255)], []),
        (viewerAuth, "ViewerAuth.request", [.u8(0), .u8(3), .u8(255)], []),
        (key, "Key.down", [.u8(2), .u8(255)], [.u8(0), .u8(1)]),
        (screenInit, "ScreenInit.width", [.u16(0), .u16(16_385), .u16(.max)], [.u16(1), .u16(16_384)]),
        (screenInit, "ScreenInit.height", [.u16(0), .u16(16_385), .u16(.max)], [.u16(1), .u16(16_384)]),
        (screenInit, "ScreenInit.pixelFormat", [.u8(0), .u8(2), .u8(255)], [.u8(1)]),
    ]

    static let nonDigitCodes: [[UInt8]] = [
        Array("12a456".utf8), Array("12345/".utf8), Array("12345:".utf8), Array("12 456".utf8), Array("-12345".utf8),
        Array("+12345".utf8), [0, 0, 0, 0, 0, 0], [0xEF, 0xBC, 0x91, 0x32, 0x33, 0x34],  // "１234": a fullwidth digit
    ]

    @Test("values outside a field's set are invalidField")
    func invalidFields() throws {
        for (message, name, invalid, valid) in Self.enumeratedFields {
            for value in invalid {
                expectWireError(.invalidField, "\(name) = \(value)") {
                    try decodeSingleMessage(Self.frame(message, replacing: name, with: value))
                }
            }
            for value in valid {
                let decoded = try decodeSingleMessage(Self.frame(message, replacing: name, with: value))
                #expect(WireLayout.fields(of: decoded).first { $0.name == name }?.value == value)
            }
        }
        for (message, name) in [(Self.hostAuthCode, "HostAuth.code"), (Self.hostAuthNamedCode, "HostAuth.code"), (Self.codeIssued, "CodeIssued.code")] {
            for code in Self.nonDigitCodes {
                expectWireError(.invalidField, "\(name) = \(code)") {
                    try decodeSingleMessage(Self.frame(message, replacing: name, with: .raw(code)))
                }
            }
            let decoded = try decodeSingleMessage(Self.frame(message, replacing: name, with: .raw(Array("000042".utf8))))
            #expect(decoded == message)
        }
    }

    // MARK: - Random garbage

    /// 8 × 25,000 = 200,000 inputs.
    static let garbageSeeds: [UInt64] = (1...8).map { 0x6A5B_A6E0_0000 + UInt64($0) }

    @Test("random bytes give a frame, a message or a WireError — and never anything else", arguments: Self.garbageSeeds)
    func randomGarbage(seed: UInt64) throws {
        var random = SeededRandom(seed: seed)
        // Small valid frames to mutate.
        var generator = MessageGenerator(seed: seed)
        var pool: [[UInt8]] = []
        while pool.count < 300 {
            let bytes = Array(try Frame(generator.message()).bytes.readableBytesView)
            if bytes.count <= 400 { pool.append(bytes) }
        }

        var outcomes: [String: Int] = [:]
        for _ in 0..<25_000 {
            let input = Self.garbage(&random, pool: pool)
            let outcome = Self.checkGarbage(input)
            outcomes[outcome, default: 0] += 1
            if outcome.hasPrefix("violation") {
                Issue.record(Comment(rawValue: "\(outcome) for input \(ByteBuffer(bytes: input).hexPrefix)"))
                return
            }
        }
        // The inputs reach every check, so the test is not vacuously passing on one path.
        let expected: Set<String> = [
            "waiting", "message", "frame too large", "unknown message type", "truncated message", "trailing bytes",
            "invalid UTF-8", "invalid field",
        ]
        #expect(Set(outcomes.keys) == expected, "outcomes: \(outcomes)")
        #expect(outcomes["message", default: 0] > 1000, "outcomes: \(outcomes)")
    }

    /// One random input: pure noise, a valid header over noise, or a mutated valid frame.
    static func garbage(_ random: inout SeededRandom, pool: [[UInt8]]) -> [UInt8] {
        switch random.int(0..<4) {
        case 0:
            return random.bytes(count: random.oneIn(16) ? 0 : random.logUniformSize(maximum: 2048))
        case 1:
            let payload = random.bytes(count: random.int(0...48))
            return Array(WireLayout.frame(type: random.pick(MessageType.allCases).rawValue, payload: payload).readableBytesView)
        default:
            var bytes = random.pick(pool)
            for _ in 0..<random.int(1...3) {
                switch random.int(0..<5) {
                case 0:
                    let index = random.int(0..<bytes.count)
                    bytes[index] ^= UInt8(truncatingIfNeeded: 1 << random.int(0..<8))
                case 1:
                    bytes[random.int(0..<bytes.count)] = random.pick([0x00, 0x01, 0x02, 0x03, 0x7F, 0x80, 0xBF, 0xC0, 0xED, 0xF4, 0xFF])
                case 2:
                    bytes.insert(contentsOf: random.bytes(count: random.int(1...4)), at: random.int(4...bytes.count))
                case 3:
                    if bytes.count > 4 {
                        let start = random.int(4..<bytes.count)
                        bytes.removeSubrange(start..<random.int(start...bytes.count))
                    }
                default:
                    bytes.append(contentsOf: random.bytes(count: random.int(1...4)))
                }
            }
            // Usually keep the header's length consistent, so the message decoders see the damage.
            if random.int(0..<4) != 0 {
                let length = bytes.count - 4
                bytes[1] = UInt8(length >> 16)
                bytes[2] = UInt8((length >> 8) & 0xFF)
                bytes[3] = UInt8(length & 0xFF)
            }
            return bytes
        }
    }

    /// Decodes `input` and checks the invariants; returns the outcome's name, or a
    /// description starting with "violation".
    static func checkGarbage(_ input: [UInt8]) -> String {
        var buffer = ByteBuffer(bytes: input)
        let frame: Frame?
        // readFrame and RelayMessage.init throw WireError only (typed throws), so reaching
        // a catch is the whole "nothing else" check; a trap would end the test process.
        do throws(WireError) {
            frame = try buffer.readFrame(maximumPayloadLength: Frame.defaultMaximumPayloadLength)
        } catch {
            guard buffer.readerIndex == 0 else { return "violation: a header error moved the reader" }
            return error.kind.description
        }
        guard let frame else {
            guard buffer.readerIndex == 0, buffer.readableBytes == input.count else { return "violation: waiting moved the reader" }
            return "waiting"
        }
        let consumed = input.count - buffer.readableBytes
        let announced = Int(input[1]) << 16 | Int(input[2]) << 8 | Int(input[3])
        guard consumed == 4 + announced, Array(frame.bytes.readableBytesView) == Array(input[..<consumed]) else {
            return "violation: the frame is not the announced prefix of the input"
        }
        do throws(WireError) {
            let message = try RelayMessage(frame)
            // Every accepted payload has exactly one encoding: the decoder accepts nothing it would not write.
            guard let reencoded = try? Frame(message), reencoded.bytes == frame.bytes else {
                return "violation: \(message) re-encodes differently"
            }
            return "message"
        } catch {
            return error.kind.description
        }
    }
}
