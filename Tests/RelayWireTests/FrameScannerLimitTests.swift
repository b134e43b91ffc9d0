import NIOCore
import Testing

@testable import RelayWire

/// The scanner's two additions for the relay: a smaller limit for relay-control frames
/// (PROTOCOL.md §9, before authentication) and the bytes a forwarded frame still owes its
/// receiver (§2.3, the frame-boundary rule).
@Suite struct FrameScannerLimitTests {
    func header(_ type: MessageType, _ length: Int) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(type.rawValue) << 24 | UInt32(length))
        return buffer
    }

    @Test func aControlHeaderOverTheControlLimitIsRefusedBeforeItsPayload() {
        var scanner = FrameScanner(maximumPayloadLength: 1 << 20)
        scanner.maximumControlPayloadLength = Frame.maximumPayloadBeforeAuthentication
        var controls = 0
        do {
            try scanner.scan(self.header(.hello, Frame.maximumPayloadBeforeAuthentication + 1), forward: { _ in }, control: { _ in controls += 1 })
            Issue.record("a Hello over 4 KiB was accepted")
        } catch {
            guard case .wire(let wire) = error else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect(wire.kind == .frameTooLarge)
        }
        #expect(controls == 0)
    }

    @Test func theControlLimitLeavesPeerFramesAtTheFullLimit() throws {
        var scanner = FrameScanner(maximumPayloadLength: 1 << 20)
        scanner.maximumControlPayloadLength = 16
        var forwarded = 0
        try scanner.scan(self.header(.tileUpdate, 1 << 20), forward: { forwarded += $0.readableBytes }, control: { _ in })
        #expect(forwarded == 4)
        #expect(scanner.peerBytesOwed == 1 << 20)
        // A control frame of exactly the limit is fine.
        var scanner2 = FrameScanner(maximumPayloadLength: 1 << 20)
        scanner2.maximumControlPayloadLength = 16
        var bye = self.header(.bye, 16)
        bye.writeRepeatingByte(0, count: 16)
        var controls = 0
        try scanner2.scan(bye, forward: { _ in }, control: { _ in controls += 1 })
        #expect(controls == 1)
    }

    @Test func peerBytesOwedFollowsTheForwardedFrame() throws {
        var scanner = FrameScanner(maximumPayloadLength: 1 << 20)
        var frame = self.header(.tileUpdate, 10)
        frame.writeRepeatingByte(7, count: 10)
        try scanner.scan(frame.getSlice(at: 0, length: 6)!, forward: { _ in }, control: { _ in })
        #expect(scanner.peerBytesOwed == 8)
        try scanner.scan(frame.getSlice(at: 6, length: 8)!, forward: { _ in }, control: { _ in })
        #expect(scanner.peerBytesOwed == 0)
        // A header cut after 2 bytes is held back, not passed on: nothing is owed yet.
        let next = self.header(.tileUpdate, 5)
        try scanner.scan(next.getSlice(at: 0, length: 2)!, forward: { _ in Issue.record("half a header was passed on") }, control: { _ in })
        #expect(scanner.peerBytesOwed == 0)
        #expect(!scanner.isAtFrameBoundary)
    }
}
