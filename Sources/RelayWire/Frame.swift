public import NIOCore

/// One RelayWire frame: a 4-byte header and its payload, held in one contiguous buffer
/// (PROTOCOL.md §2).
///
/// ```
/// 0       8                              32
/// +-------+------------------------------+-----------------+
/// | type  | payload length (UInt24, BE)  | payload ...     |
/// +-------+------------------------------+-----------------+
/// ```
///
/// A decoded frame is a slice of the bytes that arrived: keeping the header with the
/// payload lets the relay forward a frame by writing `bytes` as it is, with no copy and
/// no new header.
public struct Frame: Sendable, Hashable {
    /// The size of the fixed header.
    public static let headerLength = 4
    /// The largest payload the header can describe (2^24 − 1 bytes).
    public static let maximumEncodablePayloadLength = 0xFF_FFFF
    /// The default receive limit for a payload: 1 MiB. Senders split larger content
    /// (a full-screen tile update) into several frames.
    public static let defaultMaximumPayloadLength = 1 << 20
    /// The smallest payload limit a relay may announce in HelloAck: 64 KiB. Every peer
    /// message fits in it (a TileUpdate body needs 32 KiB for one raw tile, PROTOCOL.md
    /// §7.6); an agent refuses a relay that announces less.
    public static let minimumPayloadLimit = 64 * 1024
    /// The largest relay-control payload a relay accepts before the connection has
    /// authenticated: 4 KiB, far more than any Hello, HostAuth or ViewerAuth needs
    /// (PROTOCOL.md §9). A stranger cannot make the relay buffer more than this.
    public static let maximumPayloadBeforeAuthentication = 4 * 1024

    /// The frame's type.
    public let type: MessageType
    /// The whole frame as it travels on the wire: header followed by payload.
    public let bytes: ByteBuffer

    /// Wraps bytes that a decoder has already validated. `bytes` starts with the header.
    @usableFromInline
    init(validatedType type: MessageType, bytes: ByteBuffer) {
        self.type = type
        self.bytes = bytes
    }

    /// The payload's length in bytes.
    @inlinable
    public var payloadLength: Int { self.bytes.readableBytes - Frame.headerLength }

    /// The payload, as a slice of ``bytes`` (no copy).
    @inlinable
    public var payload: ByteBuffer {
        self.bytes.getSlice(at: self.bytes.readerIndex + Frame.headerLength, length: self.payloadLength)!
    }

    /// Builds a frame of `type` around a copy of `payload`.
    public init(type: MessageType, payload: ByteBuffer, allocator: ByteBufferAllocator = .init()) throws(WireError) {
        var bytes = allocator.buffer(capacity: Frame.headerLength + payload.readableBytes)
        bytes.writeInteger(UInt32(0))
        bytes.writeImmutableBuffer(payload)
        try Frame.patchHeader(of: &bytes, type: type)
        self.init(validatedType: type, bytes: bytes)
    }

    /// Encodes `message` into a new frame: the header and payload are written into one
    /// buffer, so sending it is a single write.
    public init(_ message: RelayMessage, allocator: ByteBufferAllocator = .init()) throws(WireError) {
        var bytes = allocator.buffer(capacity: Frame.headerLength + message.payloadSizeHint)
        bytes.writeInteger(UInt32(0))
        try message.encodePayload(into: &bytes)
        try Frame.patchHeader(of: &bytes, type: message.type)
        self.init(validatedType: message.type, bytes: bytes)
    }

    // Error construction stays out of line so the fast path of readFrame inlines
    // (benchmarks/RESULTS.md, "wire": −36% CPU per frame).
    @usableFromInline @inline(never)
    static func unknownTypeError(_ rawType: UInt8) -> WireError {
        let hex = String(rawType, radix: 16)
        return WireError(.unknownMessageType, "frame type 0x\(rawType < 16 ? "0" + hex : hex) is not defined by RelayWire 1")
    }

    @usableFromInline @inline(never)
    static func tooLargeError(_ type: MessageType, _ length: Int, _ maximum: Int) -> WireError {
        WireError(.frameTooLarge, "\(type.name) frame announces \(length) payload bytes; the limit is \(maximum)")
    }

    private static func patchHeader(of bytes: inout ByteBuffer, type: MessageType) throws(WireError) {
        let length = bytes.readableBytes - Frame.headerLength
        guard length <= Frame.maximumEncodablePayloadLength else {
            throw WireError(
                .frameTooLarge,
                "\(type.name) payload is \(length) bytes; a frame carries at most \(Frame.maximumEncodablePayloadLength)"
            )
        }
        bytes.setInteger(UInt32(type.rawValue) << 24 | UInt32(length), at: bytes.readerIndex)
    }
}

extension ByteBuffer {
    /// Reads one frame if a whole one is buffered (PROTOCOL.md §2).
    ///
    /// The header is validated first — known type, length within `maximumPayloadLength` —
    /// so an oversized or unknown frame is rejected before its payload is waited for.
    /// Returns nil, leaving the buffer untouched, when the frame is not complete yet.
    @inlinable
    public mutating func readFrame(maximumPayloadLength: Int) throws(WireError) -> Frame? {
        guard let header = self.getInteger(at: self.readerIndex, endianness: .big, as: UInt32.self) else {
            return nil
        }
        let rawType = UInt8(truncatingIfNeeded: header >> 24)
        let length = Int(header & 0xFF_FFFF)
        guard let type = MessageType(rawValue: rawType) else {
            throw Frame.unknownTypeError(rawType)
        }
        guard length <= maximumPayloadLength else {
            throw Frame.tooLargeError(type, length, maximumPayloadLength)
        }
        guard let bytes = self.readSlice(length: Frame.headerLength &+ length) else {
            return nil
        }
        return Frame(validatedType: type, bytes: bytes)
    }
}
