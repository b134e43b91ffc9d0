import Crypto
import NIOCore
import RelayTestSupport
import RelayWire
import Synchronization
import Testing

@testable import RelaySecureChannel

/// What PROTOCOL.md §2.3, §5.1.9 and §5.3.5/§5.3.8 promise of the record layer and the
/// handshake in the cases an outside review found (issue 12).
@Suite(.timeLimit(.minutes(1))) struct RecordLayerEdgeTests {
    /// A transport whose next send, once armed, suspends the way NIOAsyncWriter does on an
    /// unwritable channel: a cancellation then ends it with the frames unwritten.
    final class HoldingTransport: FrameTransport, @unchecked Sendable {
        final class Gate: Sendable {
            let armed = Atomic(false)
            let holding = Atomic(false)
        }

        struct Sender: FrameSender {
            let base: MemoryTransport.Sender
            let gate: Gate

            func send(frames: [Frame]) async throws {
                if self.gate.armed.exchange(false, ordering: .acquiringAndReleasing) {
                    self.gate.holding.store(true, ordering: .releasing)
                    try await Task.sleep(for: .seconds(50))  // cancelled: throws, nothing written
                }
                try await self.base.send(frames: frames)
            }

            func close() { self.base.close() }
        }

        let base: MemoryTransport
        let sender: Sender
        let gate = Gate()
        var maximumPayloadLength: Int { self.base.maximumPayloadLength }

        init(_ base: MemoryTransport) {
            self.base = base
            self.sender = Sender(base: base.sender, gate: self.gate)
        }

        func receiveFrame() async throws -> Frame? { try await self.base.receiveFrame() }
    }

    static func establish<H: FrameTransport & Sendable, V: FrameTransport & Sendable>(
        _ host: H, _ viewer: V
    ) async throws -> (SecureTransport<H>, SecureTransport<V>) {
        async let hostSide = SecureTransport.establish(
            over: host, local: .init(role: .host, identity: SecureTransportTests.hostKey, name: "FRONT-DESK", organization: ""),
            sessionID: SecureTransportTests.sessionID)
        async let viewerSide = SecureTransport.establish(
            over: viewer, local: .init(role: .viewer, identity: SecureTransportTests.engineerKey, name: "kim.minji", organization: "ACME"),
            sessionID: SecureTransportTests.sessionID)
        guard case .established(let h) = try await hostSide, case .established(let v) = try await viewerSide else {
            throw TestFailure("the handshake did not complete")
        }
        return (h, v)
    }

    /// SecureTransport.swift SealingQueue.seal: a batch whose second frame cannot be sealed
    /// (too large) throws, but the first frame's sequence number stays used. Nothing was sent,
    /// yet every later record is sealed one number ahead, and the peer reports tampering.
    @Test func aBatchThatFailsToSealUsesNoSequenceNumber() async throws {
        let (hostEnd, viewerEnd) = MemoryTransport.pair()
        let (h, v) = try await Self.establish(hostEnd, viewerEnd)
        let tooLarge = try Frame(type: .clipboard, payload: ByteBuffer(repeating: 0x61, count: Frame.maximumEncodablePayloadLength - 8))
        await #expect(throws: (any Error).self) {
            try await h.sender.send(frames: [try Frame(.clipboard(Clipboard(text: "first"))), tooLarge])
        }
        try await h.sender.send(.clipboard(Clipboard(text: "second")))
        do {
            let message = try await v.receiveFrame().map { try RelayMessage($0) }
            #expect(message == .clipboard(Clipboard(text: "second")))
        } catch let error as SecureChannelError {
            Issue.record("a send that failed locally desynchronised the record numbers; the viewer blames the relay: \(error)")
        }
        hostEnd.sender.close()
    }

    /// SecureTransport.swift SecureSender.send: the record is sealed (its number used) before
    /// the base write; a write that is cancelled leaves a gap, and the peer then rejects the
    /// next record as "altered, replayed, reordered or dropped … by the relay". Either the
    /// later send must fail locally, or the later record must open.
    @Test func aCancelledSendDoesNotMakeThePeerBlameTheRelay() async throws {
        let (hostEnd, viewerEnd) = MemoryTransport.pair()
        let holding = HoldingTransport(hostEnd)
        let (h, v) = try await Self.establish(holding, viewerEnd)
        holding.gate.armed.store(true, ordering: .releasing)
        let sender = h.sender
        let first = Task { try await sender.send(.clipboard(Clipboard(text: "first"))) }
        while !holding.gate.holding.load(ordering: .acquiring) { try await Task.sleep(for: .milliseconds(2)) }
        first.cancel()
        _ = await first.result
        var laterSendFailedLocally = false
        do {
            try await h.sender.send(.clipboard(Clipboard(text: "second")))
        } catch {
            laterSendFailedLocally = true
        }
        if !laterSendFailedLocally {
            do {
                let message = try await v.receiveFrame().map { try RelayMessage($0) }
                #expect(message == .clipboard(Clipboard(text: "second")))
            } catch let error as SecureChannelError {
                Issue.record("a send cancelled on this side made the peer report tampering by the relay: \(error)")
            }
        }
        hostEnd.sender.close()
    }

    /// PROTOCOL.md §2.3: the relay completes a frame whose sender left "with zero bytes up to
    /// the length its header announced": a cut inside the 16-byte tag leaves fewer than 16
    /// zero bytes. SecureTransport.wasCutShort needs all 16, so this honest end of a session
    /// is reported as tampering instead of the relay's Bye.
    @Test func aRecordCutInsideItsTagEndsWithTheRelaysBye() async throws {
        let result = Mutex<Result<Frame?, any Error>?>(nil)
        let sealed = Mutex(0)
        try await SecureTransportTests.relay(tamper: { direction, _, frame in
            guard direction == .toViewer, frame.type == .sealed else { return [frame] }
            let isRecordOne = sealed.withLock { count in
                defer { count += 1 }
                return count == 1
            }
            guard isRecordOne else { return [frame] }
            var padded = frame.payload
            padded.setBytes([UInt8](repeating: 0, count: 8), at: padded.writerIndex - 8)  // the host left 8 bytes before the end
            return [try! Frame(type: .sealed, payload: padded), try! Frame(.bye(Bye(reason: .peerLeft, text: "the host disconnected")))]
        }) { host, viewer in
            let (h, v) = try await SecureTransportTests.establish(host, viewer)
            try await h.sender.send(.clipboard(Clipboard(text: String(repeating: "x", count: 100))))
            let outcome: Result<Frame?, any Error>
            do { outcome = .success(try await v.receiveFrame()) } catch { outcome = .failure(error) }
            result.withLock { $0 = outcome }
        }
        switch result.withLock({ $0 }) {
        case .success(let frame):
            #expect(try frame.map { try RelayMessage($0) } == .bye(Bye(reason: .peerLeft, text: "the host disconnected")))
        case .failure(let error):
            Issue.record("a record the relay completed after the host left was reported as an attack: \(error)")
        case nil:
            Issue.record("the viewer read nothing")
        }
    }

    /// PROTOCOL.md §5.1.9: "a Pong whose nonce matches no Ping it sent is ignored". During the
    /// handshake SecureTransport.handshake ends the session on any control frame but Bye.
    @Test func aStrayPongDuringTheHandshakeIsIgnored() async throws {
        let established = Mutex(false)
        let failure = Mutex<(any Error)?>(nil)
        try await SecureTransportTests.relay(tamper: { direction, index, frame in
            // Before the viewer's KeyCommit reaches the host: a late Pong, as §5.1.9 allows.
            direction == .toHost && index == 0 ? [try! Frame(.pong(Pong(nonce: 0x5EED))), frame] : [frame]
        }) { host, viewer in
            do {
                _ = try await SecureTransportTests.establish(host, viewer)
                established.withLock { $0 = true }
            } catch {
                failure.withLock { $0 = error }
            }
        }
        #expect(established.withLock { $0 }, "a stray Pong ended the handshake: \(String(describing: failure.withLock { $0 }))")
    }

    /// A relay Error during the handshake (e.g. `Error(frame_too_large)`, which a paired
    /// relay sends) comes back with its code and words, for the agent to show as it shows
    /// any relay Error; the agent does not answer it with Bye(protocol_error).
    @Test func aRelayErrorDuringTheHandshakeIsReportedWithItsMessage() async throws {
        let outcome = Mutex<String>("")
        let relayText = "the relay's own explanation, with what to do"
        try await SecureTransportTests.relay(tamper: { direction, index, frame in
            direction == .toHost && index == 0 ? [try! Frame(.error(ErrorMessage(code: .internalError, message: relayText)))] : [frame]
        }) { host, viewer in
            async let viewerSide = SecureTransport.establish(
                over: viewer, local: .init(role: .viewer, identity: SecureTransportTests.engineerKey, name: "v", organization: ""),
                sessionID: SecureTransportTests.sessionID, deadline: .milliseconds(300))
            let result = try await SecureTransport.establish(
                over: host, local: .init(role: .host, identity: SecureTransportTests.hostKey, name: "h", organization: ""),
                sessionID: SecureTransportTests.sessionID, deadline: .milliseconds(300))
            if case .relayError(let error) = result {
                outcome.withLock { $0 = "\(error.code.name): \(error.message)" }
            } else {
                outcome.withLock { $0 = "\(result)" }
            }
            host.sender.close()
            _ = try? await viewerSide
        }
        #expect(outcome.withLock { $0 } == "internal_error: \(relayText)")
    }
}
