import NIOCore
import Testing

@testable import RelayServer

@Suite struct OutboundFramingTests {
    let pong = ByteBuffer(bytes: [0x09, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1])
    let bye = ByteBuffer(bytes: [0x0A, 0, 0, 4, 0, 2, 0, 0])

    @Test func atABoundaryRelayFramesGoAtOnce() {
        var framing = OutboundFraming()
        #expect(framing.relayFrame(self.pong, droppable: true) == .write)
        #expect(framing.forwarded(owedAfter: 0).isEmpty)
        #expect(framing.relayFrame(self.pong, droppable: true) == .write)
    }

    @Test func relayFramesWaitForTheForwardedFrameToEnd() {
        var framing = OutboundFraming()
        #expect(framing.forwarded(owedAfter: 1000).isEmpty)
        #expect(framing.relayFrame(self.pong, droppable: true) == .held)
        #expect(framing.relayFrame(self.bye, droppable: false) == .held)
        // More of the same frame: still inside it.
        #expect(framing.forwarded(owedAfter: 10).isEmpty)
        #expect(!framing.isAtFrameBoundary)
        // The frame ends (and the next one may have begun and ended in the same batch).
        #expect(framing.forwarded(owedAfter: 0) == [self.pong, self.bye])
        #expect(framing.isAtFrameBoundary)
        #expect(framing.heldFrames == 0)
        #expect(framing.relayFrame(self.pong, droppable: true) == .write)
    }

    @Test func aPingFloodDuringALongFrameHoldsABoundedNumberOfPongs() {
        var framing = OutboundFraming()
        _ = framing.forwarded(owedAfter: 1 << 20)
        for _ in 0..<OutboundFraming.maximumHeldFrames {
            #expect(framing.relayFrame(self.pong, droppable: true) == .held)
        }
        #expect(framing.relayFrame(self.pong, droppable: true) == .dropped)
        // A frame that must not be lost is still held.
        #expect(framing.relayFrame(self.bye, droppable: false) == .held)
        #expect(framing.forwarded(owedAfter: 0).count == OutboundFraming.maximumHeldFrames + 1)
    }

    @Test func closingMidFramePadsItAndReleasesWhatWaited() {
        var framing = OutboundFraming()
        _ = framing.forwarded(owedAfter: 777)
        _ = framing.relayFrame(self.pong, droppable: true)
        let (padding, held) = framing.finish()
        #expect(padding == 777)
        #expect(held == [self.pong])
        #expect(framing.isAtFrameBoundary && framing.heldFrames == 0)
        #expect(framing.finish().padding == 0)
    }
}
