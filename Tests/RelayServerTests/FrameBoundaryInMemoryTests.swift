import Foundation
import NIOCore
import RelayTestSupport
import RelayWire
import Testing

@testable import RelayServer

/// PROTOCOL.md §2.3 in memory (InMemoryRelay): a connection's outgoing stream is always
/// whole frames, whatever the reads look like and however a connection ends. The chunking
/// and interleaving are chosen by a seeded generator, so each run is the same and nothing
/// waits on a clock. Over real TLS: FrameBoundaryEndToEndTests.
@Suite(.timeLimit(.minutes(1))) struct FrameBoundaryInMemoryTests {
    /// One side's bytes: peer frames of every size FrameBoundaryEndToEndTests uses (a full
    /// 1 MiB frame, odd sizes, small ones), each followed by a Ping to the relay.
    static func stream(side: UInt8, frames: Int) throws -> ByteBuffer {
        var bytes = ByteBuffer()
        for sequence in 0..<frames {
            bytes.writeImmutableBuffer(
                FrameBoundaryEndToEndTests.peerFrame(side: side, sequence: sequence, length: FrameBoundaryEndToEndTests.length(of: sequence)))
            bytes.writeImmutableBuffer(try Frame(.ping(Ping(nonce: UInt64(sequence + 1)))).bytes)
        }
        return bytes
    }

    /// What one side has read so far, checked frame by frame as it arrives.
    struct Reader {
        let side: UInt8
        var framesReceived = 0
        var pongsReceived = 0

        mutating func check(_ frames: [(type: UInt8, payload: ByteBuffer)]) throws {
            let other: UInt8 = self.side == 1 ? 2 : 1
            for (type, payload) in frames {
                switch type {
                case MessageType.pong.rawValue:
                    // Every Ping answered, in order: the n-th Pong answers the n-th Ping.
                    let nonce = payload.getInteger(at: payload.readerIndex, as: UInt64.self)
                    guard payload.readableBytes == 8, nonce == UInt64(self.pongsReceived + 1) else {
                        throw TestFailure("side \(self.side): Pong \(nonce.map(String.init) ?? "?") after \(self.pongsReceived) Pongs")
                    }
                    self.pongsReceived += 1
                case MessageType.tileUpdate.rawValue:
                    let sequence = self.framesReceived
                    guard FrameBoundaryEndToEndTests.check(payload, side: other, sequence: sequence, length: FrameBoundaryEndToEndTests.length(of: sequence))
                    else {
                        throw TestFailure("side \(self.side): peer frame \(sequence) arrived damaged (\(payload.readableBytes) bytes)")
                    }
                    self.framesReceived += 1
                default:
                    throw TestFailure("side \(self.side): frame of type 0x\(String(type, radix: 16)) inside the stream: the relay broke framing")
                }
            }
        }
    }

    /// The outside report that started §2.3's rule: a viewer Pinging while 1 MiB frames
    /// streamed broke after two Pings. Here both sides send large and small peer frames with
    /// a Ping after each, cut into reads of 1 byte to 96 KiB (headers split too) and
    /// interleaved at random between the two sides; every byte that arrives is checked, and
    /// every Ping is answered in order, outside the forwarded frames.
    @Test(arguments: [1, 2, 3] as [UInt64])
    func pingsAndLargeFramesInterleaveWithEveryByteInPlace(seed: UInt64) async throws {
        try await InMemoryRelay.with { relay in
            let (host, viewer) = try await relay.pairUnattended()
            let frames = 18
            var pending = [try Self.stream(side: 1, frames: frames), try Self.stream(side: 2, frames: frames)]
            let agents = [host, viewer]
            var readers = [Reader(side: 1), Reader(side: 2)]
            var random = SeededRandom(seed: seed)
            var reads = 0
            while pending[0].readableBytes + pending[1].readableBytes > 0 {
                let side = pending[0].readableBytes == 0 ? 1 : pending[1].readableBytes == 0 ? 0 : Int.random(in: 0...1, using: &random)
                let length: Int
                switch Int.random(in: 0..<4, using: &random) {
                case 0: length = Int.random(in: 1...7, using: &random)
                case 1, 2: length = Int.random(in: 8...16 * 1024, using: &random)
                default: length = Int.random(in: 16 * 1024...96 * 1024, using: &random)
                }
                let chunk = pending[side].readSlice(length: min(length, pending[side].readableBytes))!
                try await agents[side].write(chunk)
                reads += 1
                if reads % 16 == 0 {
                    // Check what has arrived as it goes (and keep the buffers small).
                    for index in 0...1 { try readers[index].check(try await agents[index].settledFrames()) }
                }
            }
            for index in 0...1 {
                try readers[index].check(try await agents[index].settledFrames())
                #expect(readers[index].framesReceived == frames, "side \(index + 1) got \(readers[index].framesReceived) of \(frames) peer frames")
                #expect(readers[index].pongsReceived == frames, "side \(index + 1) got \(readers[index].pongsReceived) Pongs for \(frames) Pings")
                #expect(agents[index].unfinishedBytes == 0)
            }
            try await viewer.send(.bye(Bye(reason: .normal, text: "done")))
            try await host.expectBye(.peerLeft, "the host after the viewer's Bye")
        }
    }

    /// A sender that leaves mid-frame: the relay completes the frame with zero bytes; the
    /// relay's own frames that waited for its end (a Pong) follow, then a whole
    /// Bye(peer_left) (PROTOCOL.md §2.3, §8.6).
    @Test func aHostLeavingMidFrameStillSendsTheHeldPongAndAWholeBye() async throws {
        try await InMemoryRelay.with { relay in
            let (host, viewer) = try await relay.pairUnattended()
            let whole = FrameBoundaryEndToEndTests.peerFrame(side: 1, sequence: 3, length: 200_000)
            try await host.write(whole.getSlice(at: 0, length: 4 + 1000)!)
            // A Ping while the frame is unfinished: its Pong waits for the boundary.
            try await viewer.send(.ping(Ping(nonce: 42)))
            #expect(try await viewer.settledFrames().isEmpty)
            #expect(viewer.unfinishedBytes == 1004, "the first 1,004 bytes are forwarded, and nothing inside them")
            try await host.close()
            let frames = try await viewer.settledFrames()
            try #require(frames.count == 3, "expected the padded frame, the Pong and a Bye, got \(frames.count) frames")
            let (type, payload) = frames[0]
            #expect(type == MessageType.tileUpdate.rawValue && payload.readableBytes == 200_000)
            #expect(payload.getSlice(at: payload.readerIndex, length: 1000) == whole.getSlice(at: 4, length: 1000))
            #expect(payload.readableBytesView.dropFirst(1000).allSatisfy { $0 == 0 })
            #expect(try InMemoryAgent.decode(frames[1]) == .pong(Pong(nonce: 42)))
            guard case .bye(let bye) = try InMemoryAgent.decode(frames[2]) else { throw TestFailure("expected Bye last") }
            #expect(bye.reason == .peerLeft)
            #expect(viewer.unfinishedBytes == 0 && !viewer.isOpen)
            #expect(relay.metric("relay_frames_padded_total") == 1)
        }
    }

    /// The relay ending a connection itself (here: shutdown) while a forwarded frame is
    /// unfinished also pads it, so its Bye is a frame of its own.
    @Test func relayShutdownMidFramePadsTheFrameAndSendsAWholeBye() async throws {
        try await InMemoryRelay.with { relay in
            let (host, viewer) = try await relay.pairUnattended()
            let whole = FrameBoundaryEndToEndTests.peerFrame(side: 1, sequence: 0, length: 100_000)
            try await host.write(whole.getSlice(at: 0, length: 50_004)!)
            relay.relay.beginShutdown()
            let frames = try await viewer.settledFrames()
            try #require(frames.count == 2, "expected the padded frame and a Bye, got \(frames.count) frames")
            let (type, payload) = frames[0]
            #expect(type == MessageType.tileUpdate.rawValue && payload.readableBytes == 100_000)
            #expect(payload.getSlice(at: payload.readerIndex, length: 50_000) == whole.getSlice(at: 4, length: 50_000))
            #expect(payload.readableBytesView.dropFirst(50_000).allSatisfy { $0 == 0 })
            guard case .bye(let bye) = try InMemoryAgent.decode(frames[1]) else { throw TestFailure("expected Bye last") }
            #expect(bye.reason == .relayShutdown)
            #expect(viewer.unfinishedBytes == 0 && !viewer.isOpen)
            try await host.expectBye(.relayShutdown, "the host at shutdown")
            #expect(relay.metric("relay_frames_padded_total") == 1)
        }
    }

    /// PROTOCOL.md §9: before authentication the relay takes only small control frames, so
    /// a stranger's header cannot make it reserve or wait for a large payload: the answer
    /// comes from the header alone, with the relay's clock standing still (not at the
    /// handshake deadline), and without the payload.
    @Test func aLargeHelloIsRefusedFromItsHeaderAlone() async throws {
        try await InMemoryRelay.with({ $0.handshakeTimeout = .seconds(60) }) { relay in
            let connectedAt = relay.loop.now
            let stranger = try await relay.connect()
            var header = ByteBuffer()
            header.writeInteger(UInt32(MessageType.hello.rawValue) << 24 | UInt32(1 << 20))
            header.writeRepeatingByte(0, count: 1000)
            try await stranger.write(header)
            let error = try await stranger.expectError(.frameTooLarge, "a Hello header announcing 1 MiB")
            #expect(error?.message.contains("4096") == true)
            #expect(relay.loop.now == connectedAt)
        }
    }
}
