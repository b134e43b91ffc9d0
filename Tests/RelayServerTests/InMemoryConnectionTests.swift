import Crypto
import Foundation
import NIOCore
import RelayTestSupport
import RelayWire
import Testing

@testable import RelayServer

/// The relay's connection handling in memory (InMemoryRelay): deadlines on the relay's
/// own clock, the order of frames, the frame-boundary rule, backpressure, revocation and
/// teardown, with no socket, no TLS and no sleeping.
@Suite(.timeLimit(.minutes(1))) struct InMemoryConnectionTests {
    static func tileUpdate(length: Int, fill: UInt8) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(MessageType.tileUpdate.rawValue) << 24 | UInt32(length))
        buffer.writeRepeatingByte(fill, count: length)
        return buffer
    }

    // MARK: Deadlines (PROTOCOL.md §8.4)

    @Test func theHandshakeDeadlineRunsOnTheRelaysClock() async throws {
        try await InMemoryRelay.with({ $0.handshakeTimeout = .seconds(10) }) { relay in
            let agent = try await relay.connect()
            await relay.advance(by: .seconds(10) - .nanoseconds(1))
            #expect(try await agent.writtenFrames().isEmpty)
            #expect(agent.isOpen)
            await relay.advance(by: .nanoseconds(1))
            guard case .error(let error) = try await agent.nextMessage() else { throw TestFailure("expected Error") }
            #expect(error.code == .timeout)
            #expect(!agent.isOpen)
        }
    }

    /// A receiver that stopped reading does not hold a connection open: its last frame
    /// waits at most FrameBoundaryHandler.lastWriteGrace, then the connection closes.
    @Test func aLastFrameThatCannotLeaveClosesTheConnectionAfterTheGrace() async throws {
        try await InMemoryRelay.with({ $0.handshakeTimeout = .seconds(10) }) { relay in
            let agent = try await relay.connect()
            agent.gate.close()
            await relay.advance(by: .seconds(10))
            #expect(agent.gate.heldBytes > 0, "the Error is written, but cannot leave")
            await relay.advance(by: FrameBoundaryHandler.lastWriteGrace - .nanoseconds(1))
            #expect(agent.isOpen)
            await relay.advance(by: .nanoseconds(1))
            #expect(!agent.isOpen)
        }
    }

    /// Authentication ends the handshake deadline; the idle timeout counts from the last
    /// bytes that arrived, and a Ping is enough.
    @Test func theIdleTimeoutCountsFromTheLastRead() async throws {
        try await InMemoryRelay.with({ $0.idleTimeout = .seconds(120) }) { relay in
            let (host, viewer) = try await relay.pairUnattended()
            await relay.advance(by: .seconds(100))
            try await host.send(.ping(Ping(nonce: 1)))
            #expect(try await host.nextMessage() == .pong(Pong(nonce: 1)))
            // The viewer said nothing for 120 s: it goes, and the host is told.
            await relay.advance(by: .seconds(20))
            guard case .bye(let viewerBye) = try await viewer.nextMessage() else { throw TestFailure("viewer: expected Bye") }
            #expect(viewerBye.reason == .idleTimeout)
            #expect(!viewer.isOpen)
            guard case .bye(let hostBye) = try await host.nextMessage() else { throw TestFailure("host: expected Bye") }
            #expect(hostBye.reason == .peerLeft)
        }
    }

    // MARK: Order (PROTOCOL.md §2.3, §5.1.10)

    /// A Bye right behind input in the same read: the input reaches the viewer first.
    @Test func aByeDoesNotOvertakeTheInputBeforeIt() async throws {
        try await InMemoryRelay.with { relay in
            let (host, viewer) = try await relay.pairUnattended()
            var chunk = Self.tileUpdate(length: 1000, fill: 0x33)
            chunk.writeImmutableBuffer(try Frame(.bye(Bye(reason: .normal, text: "done"))).bytes)
            try await host.write(chunk)
            let update = try await viewer.nextFrame()
            #expect(update.type == MessageType.tileUpdate.rawValue && update.payload.readableBytes == 1000)
            guard case .bye(let bye) = try await viewer.nextMessage() else { throw TestFailure("expected Bye") }
            #expect(bye.reason == .peerLeft)
            #expect(!host.isOpen)
        }
    }

    /// The relay's own Pong waits for the end of the forwarded frame it would cut.
    @Test func aPongWaitsForTheFrameBoundary() async throws {
        try await InMemoryRelay.with { relay in
            let (host, viewer) = try await relay.pairUnattended()
            let whole = Self.tileUpdate(length: 5000, fill: 0x44)
            try await host.write(whole.getSlice(at: 0, length: 1004)!)
            try await viewer.send(.ping(Ping(nonce: 7)))
            #expect(try await viewer.writtenFrames().isEmpty)
            #expect(viewer.unfinishedBytes == 1004, "the first 1,004 bytes are forwarded, and nothing inside them")
            try await host.write(whole.getSlice(at: 1004, length: whole.readableBytes - 1004)!)
            let update = try await viewer.nextFrame()
            #expect(update.type == MessageType.tileUpdate.rawValue && update.payload.readableBytes == 5000)
            #expect(update.payload.readableBytesView.allSatisfy { $0 == 0x44 })
            #expect(try await viewer.nextMessage() == .pong(Pong(nonce: 7)))
        }
    }

    // MARK: Backpressure (OPERATIONS.md §6)

    /// A viewer that does not read: past the high-water mark the relay stops reading the
    /// host, which is then not idle however long it lasts; once the viewer reads, every
    /// byte arrives in order and the host is read again.
    @Test func aSlowViewerPausesTheHostWithoutEndingIt() async throws {
        try await InMemoryRelay.with({ $0.idleTimeout = .seconds(120) }) { relay in
            let (host, viewer) = try await relay.pairUnattended()
            try await relay.loop.submit { viewer.gate.close() }.get()
            let readsBefore = try await relay.loop.submit { host.reads.reads }.get()
            for index in 0..<10 {
                try await host.write(Self.tileUpdate(length: 64 * 1024, fill: UInt8(index)))
            }
            host.channel.read()
            #expect(try await relay.loop.submit { host.reads.reads }.get() == readsBefore, "10 × 64 KiB is past the 512 KiB high-water mark")
            // The viewer pings (it is not idle); the host is silent but held back.
            for _ in 0..<10 {
                try await viewer.send(.ping(Ping(nonce: 9)))
                await relay.advance(by: .seconds(60))
            }
            #expect(host.isOpen && viewer.isOpen)
            #expect(try await host.writtenFrames().isEmpty, "no Bye for the host")

            try await relay.loop.submit { viewer.gate.open() }.get()
            var updates = 0
            var pongs = 0
            for frame in try await viewer.writtenFrames() {
                if frame.type == MessageType.pong.rawValue {
                    pongs += 1
                    continue
                }
                #expect(frame.type == MessageType.tileUpdate.rawValue)
                #expect(frame.payload.readableBytes == 64 * 1024 && frame.payload.readableBytesView.first == UInt8(updates))
                updates += 1
            }
            #expect(updates == 10 && pongs == 10)
            #expect(try await relay.loop.submit { host.reads.reads }.get() == readsBefore + 1, "the withheld read is passed on")
            // From here the host's silence counts again (the viewer keeps pinging).
            try await viewer.send(.ping(Ping(nonce: 10)))
            await relay.advance(by: .seconds(60))
            try await viewer.send(.ping(Ping(nonce: 11)))
            await relay.advance(by: .seconds(60))
            guard case .bye(let bye) = try await host.nextMessage() else { throw TestFailure("host: expected Bye") }
            #expect(bye.reason == .idleTimeout)
        }
    }

    // MARK: Resources (issue 11 item 7)

    /// Logins and long store work (purge, export pages, usage writes) run on pools of
    /// their own: with the background pool held up, a host still logs in.
    @Test func aLongPurgeDoesNotHoldUpLogins() async throws {
        try await InMemoryRelay.with { relay in
            let busy = DispatchSemaphore(value: 0)
            relay.relay.backgroundPool.submit { _ in busy.wait() }
            defer { busy.signal() }
            let host = try await relay.connect()
            try await host.send(.hello(Hello(role: .host, capabilities: .all, software: "memory-host")))
            guard case .helloAck = try await host.nextMessage() else { throw TestFailure("expected HelloAck") }
            try await host.send(.hostAuth(.enrolled(hostID: relay.acme.hostID, secret: relay.acme.hostSecret)))
            guard case .hostRegistered = try await host.nextMessage() else { throw TestFailure("expected HostRegistered") }
        }
    }

    /// The dates in the usage history and the access log come from the relay's clock
    /// (injected), not from the machine's.
    @Test func recordsCarryTheRelaysDate() async throws {
        try await InMemoryRelay.with { relay in
            let pairedAt = Date(timeIntervalSince1970: 1_772_355_600)  // 2026-03-01 09:00 UTC
            relay.date.set(pairedAt)
            let (host, viewer) = try await relay.pairUnattended()
            let opened = relay.relay.usage.take().0.opened
            #expect(opened.count == 1 && opened.first?.startedAt == pairedAt.milliseconds)
            relay.date.set(pairedAt.addingTimeInterval(65))
            try await viewer.send(.bye(Bye(reason: .normal, text: "done")))
            guard case .bye = try await host.nextMessage() else { throw TestFailure("host: expected Bye") }
            let closed = relay.relay.usage.take().0.closed
            #expect(closed.count == 1 && closed.first?.endedAt == pairedAt.addingTimeInterval(65).milliseconds && closed.first?.reason == .normal)
            relay.relay.flushAccessLog()
            let logins = try relay.store.accessLog(limit: 10)
            #expect(logins.count == 2 && logins.allSatisfy { $0.at == pairedAt })
        }
    }

    // MARK: Revocation and teardown

    @Test func aHostGivenAKeyEndsItsSecretsSession() async throws {
        try await InMemoryRelay.with { relay in
            let (host, viewer) = try await relay.pairUnattended()
            _ = try relay.store.setHostKey(id: relay.acme.hostID, publicKey: Curve25519.Signing.PrivateKey().publicKey)
            relay.relay.checkCredentials()
            guard case .bye(let hostBye) = try await host.nextMessage() else { throw TestFailure("host: expected Bye") }
            #expect(hostBye.reason == .revoked)
            guard case .bye(let viewerBye) = try await viewer.nextMessage() else { throw TestFailure("viewer: expected Bye") }
            #expect(viewerBye.reason == .peerLeft)
            #expect(!host.isOpen && !viewer.isOpen)
        }
    }

    /// The host going away mid-frame: the viewer's frame is completed with zeros, then a
    /// whole Bye; nothing of either connection stays in memory.
    @Test func aHostLeavingMidFrameIsTornDownCleanly() async throws {
        try await InMemoryRelay.with { relay in
            let before = relay.relay.liveConnectionHandlers
            do {
                let (host, viewer) = try await relay.pairUnattended()
                try await host.write(Self.tileUpdate(length: 3000, fill: 0x55).getSlice(at: 0, length: 2004)!)
                try await host.close()
                let update = try await viewer.nextFrame()
                #expect(update.payload.readableBytes == 3000)
                #expect(update.payload.readableBytesView.dropFirst(2000).allSatisfy { $0 == 0 })
                guard case .bye(let bye) = try await viewer.nextMessage() else { throw TestFailure("expected Bye") }
                #expect(bye.reason == .peerLeft)
                #expect(!viewer.isOpen)
            }
            await relay.loop.run()
            #expect(relay.relay.liveConnectionHandlers == before)
        }
    }

    /// The harness: waiting for a frame the relay never writes ends when the wait is
    /// cancelled (as a test's time limit does), so a silent relay fails a test instead of
    /// hanging the whole run.
    @Test func aWaitForAFrameThatNeverComesEndsWhenCancelled() async throws {
        try await InMemoryRelay.with { relay in
            let agent = try await relay.connect()
            let waiting = Task { try await agent.nextMessage() }
            await relay.loop.run()
            waiting.cancel()
            await #expect(throws: (any Error).self) { try await waiting.value }
        }
    }
}
