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
}
