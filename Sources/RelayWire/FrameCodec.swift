public import NIOCore

/// Splits a byte stream into ``Frame``s (PROTOCOL.md §2).
///
/// The length in each header is checked against `maximumPayloadLength` before the
/// payload is buffered, so a peer cannot make the receiver hold more than one maximum
/// frame. Payloads are handed out as slices of the receive buffer.
public struct FrameDecoder: NIOSingleStepByteToMessageDecoder {
    public typealias InboundOut = Frame

    /// The largest payload accepted; at most ``Frame/maximumEncodablePayloadLength``.
    public let maximumPayloadLength: Int

    public init(maximumPayloadLength: Int = Frame.defaultMaximumPayloadLength) {
        precondition(
            (0...Frame.maximumEncodablePayloadLength).contains(maximumPayloadLength),
            "maximumPayloadLength must be 0...\(Frame.maximumEncodablePayloadLength)"
        )
        self.maximumPayloadLength = maximumPayloadLength
    }

    @inlinable
    public mutating func decode(buffer: inout ByteBuffer) throws -> Frame? {
        try buffer.readFrame(maximumPayloadLength: self.maximumPayloadLength)
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> Frame? {
        if let frame = try self.decode(buffer: &buffer) {
            return frame
        }
        if buffer.readableBytes > 0 {
            throw WireError(
                .truncatedFrame,
                "the connection ended \(buffer.readableBytes) bytes into a frame"
            )
        }
        return nil
    }
}

extension ByteToMessageHandler where Decoder == FrameDecoder {
    /// A frame-decoding handler whose buffer is additionally fenced at one maximum frame.
    public convenience init(frameDecoderWithMaximumPayloadLength maximum: Int) {
        self.init(
            FrameDecoder(maximumPayloadLength: maximum),
            maximumBufferSize: maximum + Frame.headerLength + 64 * 1024
        )
    }
}

/// Writes ``Frame``s: the frame already holds its header, so this only unwraps it.
public final class FrameEncoder: ChannelOutboundHandler {
    public typealias OutboundIn = Frame
    public typealias OutboundOut = ByteBuffer

    public init() {}

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        context.write(self.wrapOutboundOut(self.unwrapOutboundIn(data).bytes), promise: promise)
    }
}

@available(*, unavailable)
extension FrameEncoder: Sendable {}
