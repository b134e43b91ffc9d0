import NIOCore
import Testing

@testable import RelayServer

@Suite struct OutboundFramingTests {
    let pong = ByteBuffer(bytes: [0x09, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1])
    let bye = ByteBuffer(bytes: [0x0A, 0, 0, 4, 0, 2, 0, 0])

    @Test func atABoundaryRelayFramesGoAtOnce() {
        var framing = OutboundFraming()
        #expect(framing.relayFrame(self.pong, droppable: true) == .write)
        #expect(framing.forwarding(batchBytes: 100, owedAfter: 0) == nil)
        #expect(framing.relayFrame(self.pong, droppable: true) == .write)
    }

    @Test func relayFramesWaitForTheForwardedFrameToEnd() {
        var framing = OutboundFraming()
        #expect(framing.forwarding(batchBytes: 24, owedAfter: 1000) == nil)
        #expect(framing.relayFrame(self.pong, droppable: true) == .held)
        #expect(framing.relayFrame(self.bye, droppable: false) == .held)
        // More of the same frame: still inside it.
        #expect(framing.forwarding(batchBytes: 990, owedAfter: 10) == nil)
        #expect(!framing.isAtFrameBoundary)
        // The frame ends exactly with the next batch.
        #expect(framing.forwarding(batchBytes: 10, owedAfter: 0) == .init(offset: 10, frames: [self.pong, self.bye]))
        #expect(framing.isAtFrameBoundary)
        #expect(framing.heldFrames == 0)
        #expect(framing.relayFrame(self.pong, droppable: true) == .write)
    }

    /// Frames streamed back to back: reads rarely end on a boundary, so the held frames go
    /// in where the frame in progress ends, inside the batch.
    @Test func heldFramesGoInAtTheBoundaryInsideABatch() {
        var framing = OutboundFraming()
        _ = framing.forwarding(batchBytes: 5000, owedAfter: 300)
        #expect(framing.relayFrame(self.pong, droppable: true) == .held)
        // 300 bytes finish that frame; the next one starts in the same batch and is unfinished.
        #expect(framing.forwarding(batchBytes: 65536, owedAfter: 777) == .init(offset: 300, frames: [self.pong]))
        #expect(framing.peerBytesOwed == 777)
        // Inside the new frame, a new Pong waits again.
        #expect(framing.relayFrame(self.pong, droppable: true) == .held)
    }

    @Test func aPingFloodDuringALongFrameHoldsABoundedNumberOfPongs() {
        var framing = OutboundFraming()
        _ = framing.forwarding(batchBytes: 4, owedAfter: 1 << 20)
        for _ in 0..<OutboundFraming.maximumHeldFrames {
            #expect(framing.relayFrame(self.pong, droppable: true) == .held)
        }
        #expect(framing.relayFrame(self.pong, droppable: true) == .dropped)
        // A frame that must not be lost is still held.
        #expect(framing.relayFrame(self.bye, droppable: false) == .held)
        #expect(framing.forwarding(batchBytes: 1 << 20, owedAfter: 0)?.frames.count == OutboundFraming.maximumHeldFrames + 1)
    }

    @Test func closingMidFramePadsItAndReleasesWhatWaited() {
        var framing = OutboundFraming()
        _ = framing.forwarding(batchBytes: 10, owedAfter: 777)
        _ = framing.relayFrame(self.pong, droppable: true)
        let (padding, held) = framing.finish()
        #expect(padding == 777)
        #expect(held == [self.pong])
        #expect(framing.isAtFrameBoundary && framing.heldFrames == 0)
        #expect(framing.finish().padding == 0)
    }

    static func bytes(_ count: Int, _ fill: UInt8) -> ByteBuffer { ByteBuffer(repeating: fill, count: count) }

    /// Runs a mutating call outside the #expect macro's decomposition, which cannot mutate.
    static func run<T>(_ body: () -> T) -> T { body() }

    /// A Pong held while a forwarded frame is unfinished goes in exactly where that frame
    /// ends, even in the middle of a run of the next batch (PROTOCOL.md §2.3).
    @Test func heldRelayFramesGoInAtTheBoundaryInsideARun() {
        var state = OutboundFraming()
        // 10 bytes of a 30-byte frame forwarded: 20 owed.
        #expect(Self.run { state.outgoing([Self.bytes(10, 1)], bytes: 10, owedAfter: 20) } == [Self.bytes(10, 1)])
        let pong = Self.bytes(12, 0xEE)
        #expect(Self.run { state.relayFrame(pong, droppable: true) } == .held)
        // The next batch: runs of 15 and 15 bytes; the frame ends 5 bytes into the second.
        let out = state.outgoing([Self.bytes(15, 2), Self.bytes(15, 3)], bytes: 30, owedAfter: 0)
        #expect(out == [Self.bytes(15, 2), Self.bytes(5, 3), pong, Self.bytes(10, 3)])
        // At a boundary now: the next relay frame goes at once.
        #expect(Self.run { state.relayFrame(pong, droppable: true) } == .write)
    }

    @Test func heldFramesWaitForABatchThatReachesTheBoundary() {
        var state = OutboundFraming()
        _ = state.outgoing([Self.bytes(4, 1)], bytes: 4, owedAfter: 50)
        let bye = Self.bytes(8, 0xBB)
        #expect(Self.run { state.relayFrame(bye, droppable: false) } == .held)
        #expect(Self.run { state.outgoing([Self.bytes(20, 2)], bytes: 20, owedAfter: 30) } == [Self.bytes(20, 2)])
        // Exactly the end of the batch.
        #expect(Self.run { state.outgoing([Self.bytes(30, 3)], bytes: 30, owedAfter: 0) } == [Self.bytes(30, 3), bye])
    }

    @Test func finishingPadsTheUnfinishedFrameAndReturnsTheHeldOnes() {
        var state = OutboundFraming()
        _ = state.outgoing([Self.bytes(4, 1)], bytes: 4, owedAfter: 70)
        let pong = Self.bytes(12, 0xEE)
        _ = state.relayFrame(pong, droppable: true)
        let (buffers, padded) = state.finish(allocator: ByteBufferAllocator())
        #expect(padded && buffers == [ByteBuffer(repeating: 0, count: 70), pong])
        #expect(Self.run { state.relayFrame(pong, droppable: true) } == .write)
    }

    /// Padding longer than the shared zero buffer comes in slices of it, in order.
    @Test func longPaddingComesInSlices() {
        var state = OutboundFraming()
        _ = state.outgoing([Self.bytes(4, 1)], bytes: 4, owedAfter: 150_000)
        let (buffers, padded) = state.finish(allocator: ByteBufferAllocator())
        #expect(padded && buffers.map(\.readableBytes) == [65_536, 65_536, 18_928])
        #expect(buffers.allSatisfy { $0.readableBytesView.allSatisfy { $0 == 0 } })
        var done = OutboundFraming()
        _ = done.outgoing([Self.bytes(4, 1)], bytes: 4, owedAfter: 0)
        let (none, notPadded) = done.finish(allocator: ByteBufferAllocator())
        #expect(none.isEmpty && !notPadded)
    }
}
