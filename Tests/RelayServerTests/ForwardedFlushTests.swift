import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import Testing

@testable import RelayServer

/// Forwarded bytes reach the TLS layer 48 KiB at a time, which keeps NIOSSL's outbound
/// buffer of a busy-then-still session at 64 KiB instead of 256 (benchmarks/RESULTS.md
/// "Sessions that carried a screen before going still").
struct ForwardedFlushTests {
    @Test("a forwarded batch reaches the TLS layer in flushes of at most 48 KiB, bytes in order, its promise completed once at the end")
    func forwardedBytesAreFlushedInPieces() throws {
        let recorder = WriteRecorder()
        let channel = EmbeddedChannel()
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9)).wait()
        try channel.pipeline.syncOperations.addHandler(recorder)
        try channel.pipeline.syncOperations.addHandler(FrameBoundaryHandler(metrics: RelayMetrics(), logger: Logger(label: "forwarded-flush-test")))

        // 200 KiB, 10 bytes and 60 KiB of one peer frame's bytes, in three runs.
        let lengths = [200 * 1024, 10, 60 * 1024]
        var runs: [ByteBuffer] = []
        var expected: [UInt8] = []
        for (index, length) in lengths.enumerated() {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ index) }
            expected += bytes
            runs.append(ByteBuffer(bytes: bytes))
        }
        let completions = NIOLockedValueBox(0)
        let promise = channel.eventLoop.makePromise(of: Void.self)
        promise.futureResult.whenSuccess { completions.withLockedValue { $0 += 1 } }
        // Owed bytes: the frame goes on after these, so no relay frame may be placed.
        channel.write(ConnectionOutput.forwarded(runs, bytes: expected.count, owedAfter: 5), promise: promise)
        let before = completions.withLockedValue { $0 }
        #expect(before == 0, "nothing is written before the caller's flush")
        channel.flush()

        #expect(recorder.bytes == expected)
        #expect(recorder.flushed.allSatisfy { $0 <= FrameBoundaryHandler.flushBytes }, "\(recorder.flushed)")
        #expect(recorder.flushed.reduce(0, +) == expected.count)
        #expect(recorder.flushed.count == (expected.count + FrameBoundaryHandler.flushBytes - 1) / FrameBoundaryHandler.flushBytes)
        let after = completions.withLockedValue { $0 }
        #expect(after == 1)
        _ = try channel.finish()
    }
}

/// Records the bytes written towards the socket and how many went out with each flush.
private final class WriteRecorder: ChannelOutboundHandler {
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    var bytes: [UInt8] = []
    var flushed: [Int] = []
    private var sinceFlush = 0

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let buffer = self.unwrapOutboundIn(data)
        self.bytes += buffer.readableBytesView
        self.sinceFlush += buffer.readableBytes
        context.write(data, promise: promise)
    }

    func flush(context: ChannelHandlerContext) {
        if self.sinceFlush > 0 { self.flushed.append(self.sinceFlush) }
        self.sinceFlush = 0
        context.flush()
    }
}
