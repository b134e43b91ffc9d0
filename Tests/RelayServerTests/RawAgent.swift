import NIOCore
import NIOPosix
import NIOSSL
import RelayTestSupport
import RelayWire

@testable import RelayServer

/// A byte-level agent for tests that must see exactly what the relay writes: TLS with the
/// protocol's ALPN token (PROTOCOL.md §1), then raw bytes both ways. It reads frames with
/// its own strict parser (§2), so a relay frame inside a forwarded one shows up as a bad
/// type or a wrong payload instead of being smoothed over by the agent library.
///
/// One task reads while another may write: reads (`readFrame`, `readMessage`, `drain…`)
/// must not run concurrently with each other.
final class RawAgent: @unchecked Sendable {
    private let channel: any Channel
    private var inbound: AsyncThrowingStream<ByteBuffer, any Error>.AsyncIterator
    private var buffer = ByteBuffer()

    struct StreamEnded: Error, CustomStringConvertible {
        let bufferedBytes: Int
        var description: String { "the relay closed the connection with \(bufferedBytes) bytes of an unfinished frame buffered" }
    }

    private init(channel: any Channel, inbound: AsyncThrowingStream<ByteBuffer, any Error>) {
        self.channel = channel
        self.inbound = inbound.makeAsyncIterator()
    }

    /// Connects to `relay` at `host` (the relay's listen address; `"::1"` for a relay that
    /// listens on IPv6), checking the certificate for the name `localhost`.
    static func connect(to relay: TestRelay, host: String = "localhost", alpn: [String] = [RelayProtocol.alpnToken]) async throws -> RawAgent {
        let (channel, inbound) = try await ByteStreamCollector.connect(to: relay, host: host, alpn: alpn, noDelay: true)
        return RawAgent(channel: channel, inbound: inbound)
    }

    deinit {
        self.channel.close(promise: nil)
    }

    func write(_ bytes: ByteBuffer) async throws {
        try await self.channel.writeAndFlush(bytes).get()
    }

    func send(_ message: RelayMessage) async throws {
        try await self.write(try Frame(message).bytes)
    }

    /// The next whole frame: its type byte and payload. Throws ``StreamEnded`` when the
    /// connection ends, with the bytes of an unfinished frame that were buffered.
    func readFrame() async throws -> (type: UInt8, payload: ByteBuffer) {
        while true {
            if let header = self.buffer.getInteger(at: self.buffer.readerIndex, as: UInt32.self) {
                let length = Int(header & 0xFF_FFFF)
                if self.buffer.readableBytes >= 4 + length {
                    self.buffer.moveReaderIndex(forwardBy: 4)
                    let payload = self.buffer.readSlice(length: length)!
                    self.buffer.discardReadBytes()
                    return (UInt8(header >> 24), payload)
                }
            }
            guard var chunk = try await self.inbound.next() else { throw StreamEnded(bufferedBytes: self.buffer.readableBytes) }
            self.buffer.writeBuffer(&chunk)
        }
    }

    /// The next frame as a relay-control message (decoded by RelayWire).
    func readMessage() async throws -> RelayMessage {
        let (type, payload) = try await self.readFrame()
        var bytes = ByteBuffer()
        bytes.writeInteger(UInt32(type) << 24 | UInt32(payload.readableBytes))
        bytes.writeImmutableBuffer(payload)
        var decoder = FrameDecoder(maximumPayloadLength: Frame.maximumEncodablePayloadLength)
        guard let frame = try decoder.decode(buffer: &bytes) else { throw TestFailure("incomplete frame") }
        return try RelayMessage(frame)
    }

    /// Waits until the relay closes the connection; returns the bytes that came meanwhile.
    func drainUntilClosed() async throws -> Int {
        var bytes = self.buffer.readableBytes
        self.buffer.clear()
        while let chunk = try await self.inbound.next() { bytes += chunk.readableBytes }
        return bytes
    }

    func close() async {
        try? await self.channel.close()
    }

    /// Closes the TCP connection at once, without TLS close_notify: a crash or a cut cable.
    func reset() async {
        if let provider = self.channel as? any SocketOptionProvider {
            try? await provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).get()
        }
        try? await self.channel.close()
    }
}

/// Hands every decrypted chunk of a test client's connection to its stream, in order;
/// ends the stream at close, or with the error that closed it (RawAgent, WebClient).
final class ByteStreamCollector: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let continuation: AsyncThrowingStream<ByteBuffer, any Error>.Continuation
    init(_ continuation: AsyncThrowingStream<ByteBuffer, any Error>.Continuation) { self.continuation = continuation }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) { self.continuation.yield(self.unwrapInboundIn(data)) }
    func channelInactive(context: ChannelHandlerContext) { self.continuation.finish() }
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.continuation.finish(throwing: error)
        context.close(promise: nil)
    }

    /// A TLS connection to `relay` at `host` with `alpn`, checking the certificate for the
    /// name `localhost`, whose decrypted bytes arrive on the returned stream.
    static func connect(
        to relay: TestRelay, host: String, alpn: [String], noDelay: Bool = false
    ) async throws -> (any Channel, AsyncThrowingStream<ByteBuffer, any Error>) {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .certificates([relay.authority.certificate])
        configuration.applicationProtocols = alpn
        let context = try NIOSSLContext(configuration: configuration)
        let (inbound, continuation) = AsyncThrowingStream.makeStream(of: ByteBuffer.self, throwing: (any Error).self)
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.socketOption(.tcp_nodelay), value: noDelay ? 1 : 0)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([
                        NIOSSLClientHandler(context: context, serverHostname: "localhost"), ByteStreamCollector(continuation),
                    ])
                }
            }
            .connect(host: host, port: relay.port).get()
        return (channel, inbound)
    }
}
