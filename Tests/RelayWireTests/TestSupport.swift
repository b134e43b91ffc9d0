import NIOCore
import RelayTestSupport
import Testing

@testable import RelayWire

// Shared by MessageRoundTripTests, MalformedInputTests and FrameDecoderTests:
// random messages of every type (from SeededRandom.swift), an independent byte-level
// encoder written from the layouts in PROTOCOL.md §5, and an assertion for WireError.
//
// Every random test derives one seed per generated case (`SeededRandom.caseSeed`), and
// names it in its failure message, so a failure is reproduced with
// `MessageGenerator(seed: …).message(…)` alone.

/// A failure message that says how to reproduce the case.
/// Seed 0 marks a hand-written sample.
func reproduce(_ seed: UInt64, _ detail: String = "") -> Comment {
    let hex = "0x" + String(seed, radix: 16)
    let origin = seed == 0 ? "a fixed sample" : "case seed \(hex) (MessageGenerator(seed: \(hex)))"
    return Comment(rawValue: origin + (detail.isEmpty ? "" : ": \(detail)"))
}

// MARK: - Random messages

/// Random values for every message field, with the values a codec gets wrong most often
/// over-represented: empty, long and non-ASCII text, unknown option bits, every enum case,
/// integer edges, support codes with leading zeros.
struct MessageGenerator {
    var random: SeededRandom

    init(seed: UInt64) { self.random = SeededRandom(seed: seed) }

    /// The longest text `text()` makes, in UTF-8 bytes.
    static let maximumTextBytes = 4000
    /// The largest TileUpdate body `message(.tileUpdate)` makes.
    static let maximumTileBodyBytes = 70_000

    mutating func message() -> RelayMessage {
        self.message(self.random.pick(MessageType.allCases))
    }

    mutating func message(_ type: MessageType) -> RelayMessage {
        switch type {
        case .hello:
            return .hello(
                Hello(version: self.version(), role: self.random.pick(Role.allCases), capabilities: self.capabilities(), software: self.text())
            )
        case .helloAck:
            return .helloAck(
                HelloAck(
                    version: self.version(),
                    capabilities: self.capabilities(),
                    maximumPayloadLength: self.random.integer(),
                    relayNode: self.text()
                )
            )
        case .hostAuth:
            switch self.random.int(0..<4) {
            case 0: return .hostAuth(.supportCode(self.supportCode()))
            case 1: return .hostAuth(.namedSupportCode(self.supportCode(), machineName: self.text()))
            case 2: return .hostAuth(.key(hostID: self.text()))
            default: break
            }
            return .hostAuth(.enrolled(hostID: self.text(), secret: self.text()))
        case .viewerAuth:
            let request: ViewerAuth.Request = self.random.oneIn(2) ? .newSupportCode : .connect(hostID: self.text())
            return .viewerAuth(ViewerAuth(token: self.text(), request: request))
        case .codeIssued:
            return .codeIssued(
                CodeIssued(code: self.supportCode(), validForSeconds: self.random.integer(), flags: CodeIssued.Flags(rawValue: self.random.bits())))
        case .hostRegistered:
            return .hostRegistered(HostRegistered(hostName: self.text()))
        case .paired:
            return .paired(
                Paired(
                    sessionID: SessionID(high: self.random.integer(), low: self.random.integer()),
                    mode: self.random.pick(PairingMode.allCases),
                    peerCapabilities: self.capabilities(),
                    peerName: self.text(),
                    peerSoftware: self.text(),
                    peerOrganization: self.text()
                )
            )
        case .ping:
            return .ping(Ping(nonce: self.random.integer()))
        case .pong:
            return .pong(Pong(nonce: self.random.integer()))
        case .bye:
            let reason = self.random.oneIn(2) ? self.random.pick(ByeReason.known) : ByeReason(rawValue: self.random.integer())
            return .bye(Bye(reason: reason, text: self.text()))
        case .error:
            let code = self.random.oneIn(2) ? self.random.pick(ErrorCode.known) : ErrorCode(rawValue: self.random.integer())
            return .error(ErrorMessage(code: code, message: self.text()))
        case .nodeAuth:
            let request: NodeAuth.Request =
                self.random.oneIn(2)
                ? .connect(hostID: self.text(), companyID: self.text(), engineer: self.text(), organization: self.text(), inBrowser: self.random.oneIn(2))
                : .redeem(code: self.supportCode(), hostName: self.text())
            return .nodeAuth(NodeAuth(node: self.text(), agentAddress: self.text(), request: request))
        case .screenInit:
            return .screenInit(ScreenInit(width: self.dimension(), height: self.dimension(), pixelFormat: .bgrx8888, name: self.text()))
        case .tileUpdate:
            return .tileUpdate(TileUpdate(body: self.tileBody()))
        case .updateRequest:
            return .updateRequest(
                UpdateRequest(requestID: self.random.integer(), flags: UpdateRequest.Flags(rawValue: self.random.bits()))
            )
        case .pointer:
            return .pointer(
                Pointer(x: self.random.integer(), y: self.random.integer(), buttons: Pointer.Buttons(rawValue: self.random.bits()))
            )
        case .key:
            let keysym: UInt32 = self.random.oneIn(2) ? self.random.pick(Self.commonKeysyms) : self.random.integer()
            return .key(Key(keysym: keysym, isDown: self.random.oneIn(2)))
        case .clipboard:
            // Clipboard text is not length-prefixed, so it may exceed a str16 now and then.
            let text = self.random.oneIn(50) ? self.longText(bytes: self.random.int(65_536...80_000)) : self.text()
            return .clipboard(Clipboard(text: text))
        case .accessGranted:
            return .accessGranted(AccessGranted(flags: AccessGranted.Flags(rawValue: self.random.bits())))
        case .keyCommit:
            return .keyCommit(KeyCommit(version: self.random.oneIn(4) ? self.random.integer() : 1, commitment: self.bytes(32)))
        case .keyShare:
            return .keyShare(
                KeyShare(
                    version: self.random.oneIn(4) ? self.random.integer() : 1, role: self.random.pick(Role.allCases), ephemeralKey: self.bytes(32),
                    identityKey: self.bytes(32)))
        case .sealed:
            var body = ByteBuffer()
            body.writeBytes(self.bytes(self.random.int(Sealed.minimumBodyLength...2000)))
            return .sealed(Sealed(body: body))
        }
    }

    private static let commonKeysyms: [UInt32] = [0x0020, 0x0041, 0x007A, 0xFF0D, 0xFF1B, 0xFFE1, 0xFFFF, 0x1000_AC00]

    mutating func bytes(_ count: Int) -> [UInt8] {
        (0..<count).map { _ in self.random.integer() }
    }

    mutating func version() -> UInt16 {
        self.random.oneIn(4) ? self.random.integer() : RelayProtocol.version
    }

    mutating func capabilities() -> Capabilities {
        switch self.random.int(0..<4) {
        case 0: return .all
        case 1: return Capabilities(rawValue: self.random.bits(UInt32.self) & Capabilities.all.rawValue)
        default: return Capabilities(rawValue: self.random.integer())  // unknown bits too
        }
    }

    /// A support code; a quarter of them below 1000 so that leading zeros (`000042`) are common.
    mutating func supportCode() -> SupportCode {
        switch self.random.int(0..<8) {
        case 0: return SupportCode(value: self.random.pick([0, 1, 42, 99_999, 100_000, 999_999]))!
        case 1, 2: return SupportCode(value: UInt32(self.random.int(0..<1000)))!
        default: return SupportCode.random(using: &self.random)
        }
    }

    mutating func dimension() -> UInt16 {
        if self.random.oneIn(4) {
            return self.random.pick([1, 2, 64, 1080, 1920, 3840, ScreenInit.maximumDimension - 1, ScreenInit.maximumDimension])
        }
        return UInt16(self.random.int(1...Int(ScreenInit.maximumDimension)))
    }

    /// Mostly small bodies, some of several KiB, and one in ten up to 70,000 bytes
    /// (larger than a str16 could hold). Sometimes a slice at an offset of a larger buffer.
    mutating func tileBody() -> ByteBuffer {
        let count: Int
        switch self.random.int(0..<10) {
        case 0: count = self.random.pick([0, 1, 65_535, 65_536, Self.maximumTileBodyBytes])
        case 1: count = self.random.int(8_193...Self.maximumTileBodyBytes)
        case 2, 3: count = self.random.int(513...8_192)
        default: count = self.random.int(0...512)
        }
        if self.random.oneIn(4) {
            let offset = self.random.int(1...64)
            let whole = ByteBuffer(bytes: self.random.bytes(count: offset + count + self.random.int(0...64)))
            return whole.getSlice(at: offset, length: count)!
        }
        return ByteBuffer(bytes: self.random.bytes(count: count))
    }

    /// Text mixing ASCII, Korean, emoji, combining marks and control characters: one in
    /// ten is empty, one in ten is long (256…4000 bytes of UTF-8), the rest short.
    mutating func text() -> String {
        switch self.random.int(0..<10) {
        case 0: return ""
        case 1: return self.longText(bytes: self.random.int(256...Self.maximumTextBytes))
        default:
            var text = ""
            for _ in 0..<self.random.int(1...24) { text += self.textPiece() }
            return text
        }
    }

    /// Text of at most `bytes` UTF-8 bytes, and at least `bytes` − 16.
    mutating func longText(bytes: Int) -> String {
        var text = ""
        while true {
            let piece = self.textPiece()
            if text.utf8.count + piece.utf8.count > bytes {
                if text.utf8.count + 16 >= bytes { return text }
                continue
            }
            text += piece
        }
    }

    private static let words = ["회계팀", "김민지", "서울 본사 3층", "고객지원", "relay-agent/0.1.0", "DESKTOP-7F3A", "h-7f3a9c2e"]
    private static let emoji = ["😀", "👩‍💻", "🇰🇷", "👍🏽", "🔐", "🖥️", "🧑🏿‍🤝‍🧑🏻"]
    private static let oddities = ["é", "e\u{301}", "ß", "日本語", "Ω", "\u{0}", "\t", "\r\n", "\u{FEFF}", "\u{200D}", "\u{10FFFF}", "\u{7F}", "\u{FFFD}"]

    private mutating func textPiece() -> String {
        switch self.random.int(0..<10) {
        case 0, 1, 2, 3:
            var ascii = ""
            for _ in 0..<self.random.int(1...8) { ascii.unicodeScalars.append(Unicode.Scalar(UInt8(self.random.int(0x20...0x7E)))) }
            return ascii
        case 4: return String(Unicode.Scalar(UInt32(self.random.int(0xAC00...0xD7A3)))!)  // a Hangul syllable
        case 5: return self.random.pick(Self.words)
        case 6: return self.random.pick(Self.emoji)
        case 7: return self.random.pick(Self.oddities)
        default:
            // Any scalar of any plane except the surrogate range, which UTF-8 cannot carry.
            var value = UInt32(self.random.int(0...0x10_FFFF))
            if (0xD800...0xDFFF).contains(value) { value -= 0x800 }
            return String(Unicode.Scalar(value)!)
        }
    }
}

// MARK: - Reference layout

/// One field of a message payload as PROTOCOL.md §5 lays it out, written independently of
/// RelayWire's encoder so that the tests compare the codec against the document, and so
/// that malformed payloads can be built by replacing one field.
struct WireField: Hashable, CustomStringConvertible {
    enum Value: Hashable {
        case u8(UInt8)
        case u16(UInt16)
        case u32(UInt32)
        case u64(UInt64)
        /// Fixed-size bytes with no prefix (the six digits of a support code).
        case raw([UInt8])
        /// A `str16`: the UInt16 prefix as sent (normally the byte count), then the bytes.
        case str16(lengthPrefix: UInt16, [UInt8])
        /// Text filling the rest of the payload (Clipboard) or an opaque body (TileUpdate).
        case rest([UInt8])
    }

    var name: String
    var value: Value

    init(_ name: String, _ value: Value) {
        self.name = name
        self.value = value
    }

    static func string(_ name: String, _ text: String) -> WireField {
        WireField(name, .str16(lengthPrefix: UInt16(text.utf8.count), Array(text.utf8)))
    }

    /// True for fields that carry UTF-8 text.
    var isText: Bool {
        switch self.value {
        case .str16: true
        case .rest: self.name == "Clipboard.text"
        default: false
        }
    }

    var bytes: [UInt8] {
        switch self.value {
        case .u8(let value): [value]
        case .u16(let value): bigEndianBytes(value)
        case .u32(let value): bigEndianBytes(value)
        case .u64(let value): bigEndianBytes(value)
        case .raw(let bytes), .rest(let bytes): bytes
        case .str16(let prefix, let bytes): bigEndianBytes(prefix) + bytes
        }
    }

    var description: String { self.name }
}

private func bigEndianBytes<T: FixedWidthInteger & UnsignedInteger>(_ value: T) -> [UInt8] {
    (0..<(T.bitWidth / 8)).reversed().map { UInt8(truncatingIfNeeded: value >> ($0 * 8)) }
}

/// Six ASCII digits, zero-padded, computed without `SupportCode.description`.
private func digits(of code: SupportCode) -> [UInt8] {
    let plain = Array(String(code.value).utf8)
    return [UInt8](repeating: 0x30, count: 6 - plain.count) + plain
}

enum WireLayout {
    /// The fields of `message`'s payload, in wire order.
    static func fields(of message: RelayMessage) -> [WireField] {
        switch message {
        case .hello(let hello):
            return [
                WireField("Hello.version", .u16(hello.version)),
                WireField("Hello.role", .u8(hello.role.rawValue)),
                WireField("Hello.capabilities", .u32(hello.capabilities.rawValue)),
                .string("Hello.software", hello.software),
            ]
        case .helloAck(let ack):
            return [
                WireField("HelloAck.version", .u16(ack.version)),
                WireField("HelloAck.capabilities", .u32(ack.capabilities.rawValue)),
                WireField("HelloAck.maximumPayloadLength", .u32(ack.maximumPayloadLength)),
                .string("HelloAck.relayNode", ack.relayNode),
            ]
        case .hostAuth(.supportCode(let code)):
            return [WireField("HostAuth.method", .u8(1)), WireField("HostAuth.code", .raw(digits(of: code)))]
        case .hostAuth(.namedSupportCode(let code, let machineName)):
            return [WireField("HostAuth.method", .u8(3)), WireField("HostAuth.code", .raw(digits(of: code))), .string("HostAuth.machineName", machineName)]
        case .hostAuth(.enrolled(let hostID, let secret)):
            return [WireField("HostAuth.method", .u8(2)), .string("HostAuth.hostID", hostID), .string("HostAuth.secret", secret)]
        case .hostAuth(.key(let hostID)):
            return [WireField("HostAuth.method", .u8(4)), .string("HostAuth.hostID", hostID)]
        case .viewerAuth(let auth):
            switch auth.request {
            case .newSupportCode:
                return [.string("ViewerAuth.token", auth.token), WireField("ViewerAuth.request", .u8(1))]
            case .connect(let hostID):
                return [
                    .string("ViewerAuth.token", auth.token), WireField("ViewerAuth.request", .u8(2)),
                    .string("ViewerAuth.hostID", hostID),
                ]
            }
        case .codeIssued(let issued):
            return [
                WireField("CodeIssued.code", .raw(digits(of: issued.code))), WireField("CodeIssued.validForSeconds", .u32(issued.validForSeconds)),
                WireField("CodeIssued.flags", .u8(issued.flags.rawValue)),
            ]
        case .hostRegistered(let registered):
            return [.string("HostRegistered.hostName", registered.hostName)]
        case .paired(let paired):
            return [
                WireField("Paired.sessionID.high", .u64(paired.sessionID.high)),
                WireField("Paired.sessionID.low", .u64(paired.sessionID.low)),
                WireField("Paired.mode", .u8(paired.mode.rawValue)),
                WireField("Paired.peerCapabilities", .u32(paired.peerCapabilities.rawValue)),
                .string("Paired.peerName", paired.peerName),
                .string("Paired.peerSoftware", paired.peerSoftware),
                .string("Paired.peerOrganization", paired.peerOrganization),
            ]
        case .ping(let ping):
            return [WireField("Ping.nonce", .u64(ping.nonce))]
        case .pong(let pong):
            return [WireField("Pong.nonce", .u64(pong.nonce))]
        case .bye(let bye):
            return [WireField("Bye.reason", .u16(bye.reason.rawValue)), .string("Bye.text", bye.text)]
        case .error(let error):
            return [WireField("Error.code", .u16(error.code.rawValue)), .string("Error.message", error.message)]
        case .nodeAuth(let auth):
            switch auth.request {
            case .connect(let hostID, let companyID, let engineer, let organization, let inBrowser):
                return [
                    WireField("NodeAuth.request", .u8(1)), .string("NodeAuth.node", auth.node), .string("NodeAuth.agentAddress", auth.agentAddress),
                    .string("NodeAuth.hostID", hostID), .string("NodeAuth.companyID", companyID), .string("NodeAuth.engineer", engineer),
                    .string("NodeAuth.organization", organization), WireField("NodeAuth.flags", .u8(inBrowser ? 1 : 0)),
                ]
            case .redeem(let code, let hostName):
                return [
                    WireField("NodeAuth.request", .u8(2)), .string("NodeAuth.node", auth.node), .string("NodeAuth.agentAddress", auth.agentAddress),
                    WireField("NodeAuth.code", .raw(digits(of: code))), .string("NodeAuth.hostName", hostName),
                ]
            }
        case .screenInit(let screen):
            return [
                WireField("ScreenInit.width", .u16(screen.width)),
                WireField("ScreenInit.height", .u16(screen.height)),
                WireField("ScreenInit.pixelFormat", .u8(screen.pixelFormat.rawValue)),
                .string("ScreenInit.name", screen.name),
            ]
        case .tileUpdate(let update):
            return [WireField("TileUpdate.body", .rest(Array(update.body.readableBytesView)))]
        case .updateRequest(let request):
            return [WireField("UpdateRequest.requestID", .u32(request.requestID)), WireField("UpdateRequest.flags", .u8(request.flags.rawValue))]
        case .pointer(let pointer):
            return [
                WireField("Pointer.x", .u16(pointer.x)), WireField("Pointer.y", .u16(pointer.y)),
                WireField("Pointer.buttons", .u8(pointer.buttons.rawValue)),
            ]
        case .key(let key):
            return [WireField("Key.keysym", .u32(key.keysym)), WireField("Key.down", .u8(key.isDown ? 1 : 0))]
        case .clipboard(let clipboard):
            return [WireField("Clipboard.text", .rest(Array(clipboard.text.utf8)))]
        case .accessGranted(let granted):
            return [WireField("AccessGranted.flags", .u8(granted.flags.rawValue))]
        case .keyCommit(let commit):
            return [WireField("KeyCommit.version", .u8(commit.version)), WireField("KeyCommit.commitment", .raw(commit.commitment))]
        case .keyShare(let share):
            return [
                WireField("KeyShare.version", .u8(share.version)), WireField("KeyShare.role", .u8(share.role.rawValue)),
                WireField("KeyShare.ephemeralKey", .raw(share.ephemeralKey)), WireField("KeyShare.identityKey", .raw(share.identityKey)),
            ]
        case .sealed(let sealed):
            return [WireField("Sealed.body", .rest(Array(sealed.body.readableBytesView)))]
        }
    }

    static func payload(_ fields: [WireField]) -> [UInt8] {
        fields.flatMap(\.bytes)
    }

    static func payload(of message: RelayMessage) -> [UInt8] {
        self.payload(self.fields(of: message))
    }

    /// A frame built byte by byte: type, UInt24 big-endian length (by default the payload's), payload.
    static func frame(type: UInt8, payload: [UInt8], announcedLength: Int? = nil) -> ByteBuffer {
        let length = announcedLength ?? payload.count
        precondition((0...0xFF_FFFF).contains(length))
        var bytes: [UInt8] = [type, UInt8(length >> 16), UInt8((length >> 8) & 0xFF), UInt8(length & 0xFF)]
        bytes += payload
        return ByteBuffer(bytes: bytes)
    }

    static func frame(_ type: MessageType, _ fields: [WireField]) -> ByteBuffer {
        self.frame(type: type.rawValue, payload: self.payload(fields))
    }
}

// MARK: - Decoding shortcuts and assertions

/// Reads one frame (with the largest possible limit) and decodes its message; the frame
/// must be the whole buffer.
func decodeSingleMessage(_ bytes: ByteBuffer) throws(WireError) -> RelayMessage {
    var buffer = bytes
    guard let frame = try buffer.readFrame(maximumPayloadLength: Frame.maximumEncodablePayloadLength) else {
        throw WireError(.truncatedFrame, "test input holds no whole frame")
    }
    precondition(buffer.readableBytes == 0, "test input holds more than one frame")
    return try RelayMessage(frame)
}

/// Expects `body` to throw a `WireError` of `kind`; records an issue naming what happened
/// instead (a value, another kind, another error type).
func expectWireError<Result>(
    _ kind: WireError.Kind,
    _ comment: @autoclosure () -> Comment? = nil,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> Result
) {
    let context = comment().map { " — \($0.rawValue)" } ?? ""
    do {
        let value = try body()
        Issue.record(Comment(rawValue: "expected \(kind), got \(value)\(context)"), sourceLocation: sourceLocation)
    } catch let error as WireError {
        if error.kind != kind {
            Issue.record(Comment(rawValue: "expected \(kind), got \(error)\(context)"), sourceLocation: sourceLocation)
        }
    } catch {
        Issue.record(Comment(rawValue: "expected WireError \(kind), got \(type(of: error)): \(error)\(context)"), sourceLocation: sourceLocation)
    }
}

extension ByteBuffer {
    /// Bytes as hex, for failure messages (at most the first 64).
    var hexPrefix: String {
        let shown = self.readableBytesView.prefix(64).map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined(separator: " ")
        return self.readableBytes > 64 ? shown + " … (\(self.readableBytes) bytes)" : shown
    }
}
