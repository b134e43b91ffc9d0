import NIOCore
import NIOWebSocket

/// What the relay does with each WebSocket frame a browser sends (RFC 6455 §5, §7), pure:
/// a frame in, an action out; ``WebSocketTransport`` carries it out.
///
/// The messages carry the protocol's byte stream (PROTOCOL.md §1, "WebSocket"): the
/// payload of every binary message, fragments included, goes to the connection core in
/// order, and the core's ``FrameScanner`` finds the frames whatever the split. The relay
/// refuses, with the close code RFC 6455 §7.4.1 gives:
/// - a text message: 1003 (unsupported data);
/// - a message longer than `maximumMessageLength` (the relay's maximum payload plus the
///   4-byte frame header), over all its fragments: 1009 (message too big);
/// - an unmasked frame, reserved bits or opcodes, a continuation without a message or a
///   message inside another, a fragmented control frame, a bad close payload: 1002
///   (protocol error); close text that is not UTF-8: 1007.
///
/// Ping is answered with Pong, Pong ignored; a Close is answered with a Close of the same
/// code and ends the connection, like a TCP close does for agents.
struct WebSocketInbound {
    enum Action: Equatable {
        /// Bytes of the protocol's stream, for the core (may be empty).
        case stream(ByteBuffer)
        /// Answer a Ping with these bytes.
        case pong(ByteBuffer)
        /// Nothing to do (a Pong).
        case ignore
        /// The client closed: answer with a Close of `code` (nil: no code, as received) and end.
        case closed(code: UInt16?)
        /// A frame the relay does not take: close with `code` and `reason`, and end.
        case fail(code: UInt16, reason: String)
    }

    enum CloseCode {
        static let normal: UInt16 = 1000
        static let protocolError: UInt16 = 1002
        static let unsupportedData: UInt16 = 1003
        static let invalidPayload: UInt16 = 1007
        static let messageTooBig: UInt16 = 1009
    }

    let maximumMessageLength: Int
    /// Bytes of the binary message in progress so far; nil between messages.
    private var messageLength: Int?
    private var ended = false

    init(maximumMessageLength: Int) {
        self.maximumMessageLength = maximumMessageLength
    }

    mutating func received(_ frame: WebSocketFrame) -> Action {
        let action = self.decide(frame)
        switch action {
        case .closed, .fail: self.ended = true
        case .stream, .pong, .ignore: break
        }
        return action
    }

    private mutating func decide(_ frame: WebSocketFrame) -> Action {
        guard !self.ended else { return .ignore }
        guard frame.maskKey != nil else { return .fail(code: CloseCode.protocolError, reason: "client frames must be masked (RFC 6455 section 5.1)") }
        guard !frame.rsv1, !frame.rsv2, !frame.rsv3 else {
            return .fail(code: CloseCode.protocolError, reason: "no extension was negotiated: reserved bits must be 0")
        }
        switch frame.opcode {
        case .binary:
            guard self.messageLength == nil else { return .fail(code: CloseCode.protocolError, reason: "a message began before the previous one ended") }
            return self.append(frame)
        case .continuation:
            guard self.messageLength != nil else { return .fail(code: CloseCode.protocolError, reason: "a continuation frame without a message") }
            return self.append(frame)
        case .text:
            return .fail(code: CloseCode.unsupportedData, reason: "binary messages only: they carry the relay protocol's frames")
        case .ping:
            guard frame.fin else { return .fail(code: CloseCode.protocolError, reason: "control frames are not fragmented") }
            return .pong(frame.unmaskedData)
        case .pong:
            guard frame.fin else { return .fail(code: CloseCode.protocolError, reason: "control frames are not fragmented") }
            return .ignore
        case .connectionClose:
            guard frame.fin else { return .fail(code: CloseCode.protocolError, reason: "control frames are not fragmented") }
            return Self.close(frame.unmaskedData)
        default:
            return .fail(code: CloseCode.protocolError, reason: "unknown opcode \(frame.opcode)")
        }
    }

    private mutating func append(_ frame: WebSocketFrame) -> Action {
        let length = (self.messageLength ?? 0) + frame.length
        guard length <= self.maximumMessageLength else {
            return .fail(
                code: CloseCode.messageTooBig, reason: "a message holds at most \(self.maximumMessageLength) bytes: one frame of the relay's maximum size")
        }
        self.messageLength = frame.fin ? nil : length
        return .stream(frame.unmaskedData)
    }

    /// A Close frame's payload: nothing, or a code and UTF-8 text (RFC 6455 §5.5.1, §7.4).
    private static func close(_ payload: ByteBuffer) -> Action {
        var payload = payload
        guard payload.readableBytes > 0 else { return .closed(code: nil) }
        guard let code = payload.readInteger(as: UInt16.self), Self.isValidReceivedCode(code) else {
            return .fail(code: CloseCode.protocolError, reason: "the Close frame's status code is missing or reserved")
        }
        guard String(validatingUTF8Bytes: payload.readableBytesView) != nil else {
            return .fail(code: CloseCode.invalidPayload, reason: "the Close frame's reason is not UTF-8")
        }
        return .closed(code: code)
    }

    /// Codes an endpoint may send (RFC 6455 §7.4.1 and the IANA registry; 3000–4999 for
    /// libraries and applications).
    static func isValidReceivedCode(_ code: UInt16) -> Bool {
        (1000...1003).contains(code) || (1007...1014).contains(code) || (3000...4999).contains(code)
    }
}

extension String {
    /// The UTF-8 text of `bytes`, or nil if they are not well-formed UTF-8.
    fileprivate init?(validatingUTF8Bytes bytes: ByteBufferView) {
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        var text = ""
        loop: while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar): text.unicodeScalars.append(scalar)
            case .emptyInput: break loop
            case .error: return nil
            }
        }
        self = text
    }
}
