import Logging
import NIOCore
import RelayWire

/// What the connection core writes: forwarded peer bytes and messages of the relay's
/// own, which ``FrameBoundaryHandler`` turns into one stream of whole frames.
enum ConnectionOutput {
    /// Bytes of the peer's frames (`bytes` in all); `owedAfter` bytes of the frame they
    /// end in are still to come (0: they end on a frame boundary).
    case forwarded([ByteBuffer], bytes: Int, owedAfter: Int)
    /// A message of the relay's own (Pong, Paired, …). A Pong may be dropped while too
    /// many frames wait for a forwarded frame to end.
    case message(RelayMessage)
    /// The connection's last message (Bye or Error): the connection closes once it is written.
    case lastMessage(RelayMessage)
}

/// Keeps a connection's output made of whole frames (PROTOCOL.md §2.3), between the
/// connection core and its transport. It encodes the relay's messages; their frames wait for the forwarded frame in
/// progress to end (``OutboundFraming`` decides where they go); the last frame completes
/// an unfinished forwarded frame with zero bytes first, and the connection closes once it
/// is written, or after ``lastWriteGrace`` if the receiver stopped reading.
///
/// A relay message's promise completes when its frame is accepted (written, held or
/// dropped): nothing waits for one. A forwarded batch's completes when its bytes are
/// written, which backpressure waits for.
final class FrameBoundaryHandler: ChannelOutboundHandler {
    typealias OutboundIn = ConnectionOutput
    typealias OutboundOut = ByteBuffer

    /// How long a last frame may take to leave before the connection is closed anyway.
    static let lastWriteGrace = TimeAmount.seconds(10)

    /// Forwarded bytes reach the TLS layer in flushes of at most this much. NIOSSL
    /// encrypts a flush into one buffer that it keeps at its largest until the connection
    /// closes: a read round (up to 2 × 64 KiB) in one flush grew it to 256 KiB on every
    /// connection that once received a burst; 48 KiB of records fit 64 KiB. The extra
    /// socket writes cost no throughput that the benchmark could see (benchmarks/RESULTS.md
    /// "Sessions that carried a screen before going still").
    static let flushBytes = 48 * 1024

    private let metrics: RelayMetrics
    private let logger: Logger
    private var framing = OutboundFraming()
    /// The last frame was written: the stream is over.
    private var finished = false

    init(metrics: RelayMetrics, logger: Logger) {
        self.metrics = metrics
        self.logger = logger
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard !self.finished else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        switch self.unwrapOutboundIn(data) {
        case .forwarded(let runs, let bytes, let owedAfter):
            let buffers = self.framing.outgoing(runs, bytes: bytes, owedAfter: owedAfter)
            self.write(buffers, context: context, promise: promise, flushingEvery: Self.flushBytes)
        case .message(let message):
            guard let frame = self.encode(message, context: context) else {
                promise?.fail(ChannelError.ioOnClosedChannel)
                return
            }
            var droppable = false
            if case .pong = message { droppable = true }
            switch self.framing.relayFrame(frame, droppable: droppable) {
            case .write:
                context.write(self.wrapOutboundOut(frame), promise: promise)
            case .held:
                promise?.succeed(())
            case .dropped:
                self.logger.debug("Pong dropped: too many relay frames wait for a peer frame to end")
                promise?.succeed(())
            }
        case .lastMessage(let message):
            self.finished = true
            guard let frame = self.encode(message, context: context) else {
                promise?.fail(ChannelError.ioOnClosedChannel)
                return context.close(promise: nil)
            }
            let (before, padded) = self.framing.finish(allocator: context.channel.allocator)
            if padded { self.metrics.framesPadded.increment() }
            let written = promise ?? context.eventLoop.makePromise()
            self.write(before + [frame], context: context, promise: written)
            context.flush()
            let channel = context.channel
            let deadline = context.eventLoop.scheduleTask(in: Self.lastWriteGrace) { channel.close(promise: nil) }
            written.futureResult.whenComplete { _ in
                deadline.cancel()
                channel.close(promise: nil)
            }
        }
    }

    /// Writes `buffers` in order; `promise` completes with the last one. With
    /// `flushingEvery`, flushes whenever that many bytes were written since the last
    /// flush, cutting a buffer where it falls (slices, no copy); the caller flushes the rest.
    private func write(_ buffers: [ByteBuffer], context: ChannelHandlerContext, promise: EventLoopPromise<Void>?, flushingEvery limit: Int = .max) {
        guard !buffers.isEmpty else {
            promise?.succeed(())
            return
        }
        var unflushed = 0
        for (index, buffer) in buffers.enumerated() {
            var rest = buffer
            while unflushed + rest.readableBytes > limit {
                let room = limit - unflushed
                if room > 0, let piece = rest.readSlice(length: room) {
                    context.write(self.wrapOutboundOut(piece), promise: nil)
                }
                context.flush()
                unflushed = 0
            }
            unflushed += rest.readableBytes
            context.write(self.wrapOutboundOut(rest), promise: index == buffers.count - 1 ? promise : nil)
        }
    }

    private func encode(_ message: RelayMessage, context: ChannelHandlerContext) -> ByteBuffer? {
        do {
            return try Frame(message, allocator: context.channel.allocator).bytes
        } catch {
            self.logger.error("cannot encode \(message.type.name)", metadata: ["error": "\(error)"])
            return nil
        }
    }
}
