import Foundation
import NIOCore
import RelayWire
import Synchronization
import Testing

@testable import RelayServer

/// OPERATIONS.md §6 "Backpressure": while the relay does not read a host because its
/// viewer reads too slowly, the host's Pings wait unread in the socket. That silence is
/// the relay's doing, not the host's: it must not end the session as `idle_timeout`.
@Suite struct BackpressureIdleTests {
    @Test(.timeLimit(.minutes(2))) func aHostHeldBackByASlowViewerIsNotIdle() async throws {
        try await TestRelay.with({ $0.idleTimeout = .seconds(2) }) { relay in
            let (host, viewer) = try await FrameBoundaryEndToEndTests.pair(relay)
            // More than every buffer between the two (kernel queues, the relay's high
            // water, the viewer's channel) holds, so the host is certainly held back.
            let frames = 600
            let length = 64 * 1024
            let sent = Atomic<Int>(0)
            let sending = Task {
                for sequence in 0..<frames {
                    try await host.write(FrameBoundaryEndToEndTests.peerFrame(side: 1, sequence: sequence, length: length))
                    sent.add(1, ordering: .relaxed)
                }
            }
            // The viewer reads nothing for three idle timeouts, and pings meanwhile.
            for nonce in 0..<12 {
                try await viewer.send(.ping(Ping(nonce: UInt64(nonce))))
                try await Task.sleep(for: .milliseconds(500))
            }
            let sentWhileHeld = sent.load(ordering: .relaxed)
            #expect(sentWhileHeld < frames, "the host was never held back; the test needs more bytes than the buffers hold")

            // Now every frame arrives, in order, with the Pongs between them and no Bye.
            var received = 0
            var pongs = 0
            while received < frames {
                let (type, payload) = try await viewer.readFrame()
                if type == MessageType.pong.rawValue {
                    pongs += 1
                    continue
                }
                guard type == MessageType.tileUpdate.rawValue else {
                    var bytes = ByteBuffer()
                    bytes.writeInteger(UInt32(type) << 24 | UInt32(payload.readableBytes))
                    bytes.writeImmutableBuffer(payload)
                    var decoder = FrameDecoder(maximumPayloadLength: Frame.maximumEncodablePayloadLength)
                    let message = try decoder.decode(buffer: &bytes).map { try RelayMessage($0) }
                    throw TestFailure("after \(received) of \(frames) frames the viewer got \(message.map { "\($0)" } ?? "frame type \(type)")")
                }
                #expect(FrameBoundaryEndToEndTests.check(payload, side: 1, sequence: received, length: length))
                received += 1
            }
            try await sending.value
            #expect(pongs > 0)
            // The host's connection is still there: its Ping is answered.
            try await host.send(.ping(Ping(nonce: 99)))
            while true {
                let message = try await host.readMessage()
                if message == .pong(Pong(nonce: 99)) { break }
                guard case .pong = message else { throw TestFailure("host got \(message)") }
            }
        }
    }
}
