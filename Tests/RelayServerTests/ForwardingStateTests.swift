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
        #expect(taken?.runs == [Self.bytes(3, 1), Self.bytes(5, 2)] && taken?.bytes == 8 && taken?.frames == 0)
        #expect(Self.run { state.takeCollected() } == nil)
    }

    /// While paired, frames are counted with the next hand-over (with or after their
    /// bytes); once the session ended in a scan, its last frames are counted at once.
    @Test func framesAreCountedWithOrAfterTheirBytes() {
        var state = ForwardingState(highWater: 512, lowWater: 128)
        state.collect(Self.bytes(3, 1))
        #expect(Self.run { state.scanned(peerFrames: 2, paired: true) } == 0)
        #expect(Self.run { state.scanned(peerFrames: 5, paired: true) } == 0)
        let taken = state.takeCollected()
        #expect(taken?.bytes == 3 && taken?.frames == 5)
        // Frames whose bytes were handed over already still come back, with no runs.
        #expect(Self.run { state.scanned(peerFrames: 6, paired: true) } == 0)
        let framesOnly = state.takeCollected()
        #expect(framesOnly?.runs.isEmpty == true && framesOnly?.frames == 1)
        // The session ended in this scan: count now.
        #expect(Self.run { state.scanned(peerFrames: 9, paired: false) } == 3)
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
}
