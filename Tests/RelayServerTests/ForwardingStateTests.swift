import NIOCore
import Testing

@testable import RelayServer

/// Cut-through forwarding and backpressure as a pure value (issue 11 item 1).
@Suite struct ForwardingStateTests {
    static func bytes(_ count: Int, _ fill: UInt8) -> ByteBuffer { ByteBuffer(repeating: fill, count: count) }

    /// Runs a mutating call outside the #expect macro's decomposition, which cannot mutate.
    static func run<T>(_ body: () -> T) -> T { body() }

    @Test func collectedRunsAreHandedOverOnceInOrder() {
        var state = ForwardingState(highWater: 512, lowWater: 128)
        #expect(Self.run { state.takeCollected() } == nil)
        state.collect(Self.bytes(3, 1))
        state.collect(Self.bytes(5, 2))
        let taken = state.takeCollected()
        #expect(taken?.runs == [Self.bytes(3, 1), Self.bytes(5, 2)] && taken?.bytes == 8)
        #expect(Self.run { state.takeCollected() } == nil)
    }

    /// Past the high-water mark reads are held, one is passed on at resume, and the
    /// sender is let go exactly when the backlog drains through the low-water mark.
    @Test func backpressurePausesPastHighWaterAndResumesOnce() {
        var state = ForwardingState(highWater: 512, lowWater: 128)
        #expect(!Self.run { state.handedOver(inFlight: 512) }, "at the mark is not past it")
        #expect(Self.run { state.readRequested() })
        #expect(Self.run { state.handedOver(inFlight: 513) })
        #expect(state.isReadingPaused)
        #expect(!Self.run { state.handedOver(inFlight: 900) }, "pausing is reported once")
        #expect(!Self.run { state.readRequested() })
        #expect(!Self.run { state.readRequested() })
        #expect(Self.run { state.resumed() }, "the held read is passed on")
        #expect(!state.isReadingPaused)
        #expect(Self.run { state.readRequested() })
        #expect(!Self.run { state.resumed() }, "no read was held this time")

        #expect(!ForwardingState.drained(remaining: 129, written: 100, lowWater: 128))
        #expect(ForwardingState.drained(remaining: 128, written: 1, lowWater: 128))
        #expect(!ForwardingState.drained(remaining: 100, written: 20, lowWater: 128), "already below before this write")
    }

    @Test func peerBytesBeforePairedWaitAndKeepTheLastOwedCount() {
        var state = ForwardingState(highWater: 512, lowWater: 128)
        #expect(Self.run { state.takeHeldBeforePaired() } == nil)
        state.holdBeforePaired([Self.bytes(4, 1)], bytes: 4, owedAfter: 96)
        state.holdBeforePaired([Self.bytes(6, 2), Self.bytes(2, 3)], bytes: 8, owedAfter: 88)
        let held = state.takeHeldBeforePaired()
        #expect(held?.runs == [Self.bytes(4, 1), Self.bytes(6, 2), Self.bytes(2, 3)])
        #expect(held?.bytes == 12 && held?.owedAfter == 88)
        #expect(Self.run { state.takeHeldBeforePaired() } == nil)
    }

    /// A Pong held while a forwarded frame is unfinished goes in exactly where that frame
    /// ends, even in the middle of a run of the next batch (PROTOCOL.md §2.3).
    @Test func heldRelayFramesGoInAtTheBoundaryInsideARun() {
        var state = ForwardingState(highWater: 1 << 20, lowWater: 1 << 18)
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
        var state = ForwardingState(highWater: 1 << 20, lowWater: 1 << 18)
        _ = state.outgoing([Self.bytes(4, 1)], bytes: 4, owedAfter: 50)
        let bye = Self.bytes(8, 0xBB)
        #expect(Self.run { state.relayFrame(bye, droppable: false) } == .held)
        #expect(Self.run { state.outgoing([Self.bytes(20, 2)], bytes: 20, owedAfter: 30) } == [Self.bytes(20, 2)])
        // Exactly the end of the batch.
        #expect(Self.run { state.outgoing([Self.bytes(30, 3)], bytes: 30, owedAfter: 0) } == [Self.bytes(30, 3), bye])
    }

    @Test func finishingPadsTheUnfinishedFrameAndReturnsTheHeldOnes() {
        var state = ForwardingState(highWater: 1 << 20, lowWater: 1 << 18)
        _ = state.outgoing([Self.bytes(4, 1)], bytes: 4, owedAfter: 70)
        let pong = Self.bytes(12, 0xEE)
        _ = state.relayFrame(pong, droppable: true)
        let (buffers, padded) = state.finish(allocator: ByteBufferAllocator())
        #expect(padded && buffers == [ByteBuffer(repeating: 0, count: 70), pong])
        #expect(Self.run { state.relayFrame(pong, droppable: true) } == .write)
    }

    /// Padding longer than the shared zero buffer comes in slices of it, in order.
    @Test func longPaddingComesInSlices() {
        var state = ForwardingState(highWater: 1 << 20, lowWater: 1 << 18)
        _ = state.outgoing([Self.bytes(4, 1)], bytes: 4, owedAfter: 150_000)
        let (buffers, padded) = state.finish(allocator: ByteBufferAllocator())
        #expect(padded && buffers.map(\.readableBytes) == [65_536, 65_536, 18_928])
        #expect(buffers.allSatisfy { $0.readableBytesView.allSatisfy { $0 == 0 } })
        var done = ForwardingState(highWater: 1 << 20, lowWater: 1 << 18)
        _ = done.outgoing([Self.bytes(4, 1)], bytes: 4, owedAfter: 0)
        let (none, notPadded) = done.finish(allocator: ByteBufferAllocator())
        #expect(none.isEmpty && !notPadded)
    }
}
