import Crypto
import NIOCore
import RelayTestSupport
import RelayWire
import Synchronization
import Testing

@testable import RelaySecureChannel

/// Host and viewer over ``SecureTransport`` through a relay in memory that forwards, or
/// tampers with, what passes: what a relay (or anyone holding its TLS key) could do.
@Suite(.timeLimit(.minutes(1))) struct SecureTransportTests {
    enum Direction: Sendable { case toViewer, toHost }

    /// The frames the relay passed on, for checking that it saw no plaintext.
    final class Seen: Sendable {
        let frames = Mutex<[Frame]>([])
        var bytes: [UInt8] { self.frames.withLock { $0.flatMap { Array($0.bytes.readableBytesView) } } }
    }

    /// A relay in memory: `tamper` sees the n-th frame of each direction and says what
    /// goes on instead (the frame itself when honest).
    static func relay(
        seen: Seen = Seen(), tamper: @escaping @Sendable (Direction, Int, Frame) -> [Frame] = { _, _, frame in [frame] },
        _ body: @escaping @Sendable (MemoryTransport, MemoryTransport) async throws -> Void
    ) async throws {
        let (host, relayHostSide) = MemoryTransport.pair()
        let (viewer, relayViewerSide) = MemoryTransport.pair()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (direction, from, to) in [(Direction.toViewer, relayHostSide, relayViewerSide), (.toHost, relayViewerSide, relayHostSide)] {
                group.addTask {
                    var index = 0
                    while let frame = try await from.receiveFrame() {
                        for out in tamper(direction, index, frame) {
                            seen.frames.withLock { $0.append(out) }
                            try? await to.sender.send(frames: [out])
                        }
                        index += 1
                    }
                    to.sender.close()
                }
            }
            try await body(host, viewer)
            host.sender.close()
            viewer.sender.close()
            try await group.waitForAll()
        }
    }

    static let sessionID = SessionID(high: 7, low: 9)
    static let hostKey = Curve25519.Signing.PrivateKey()
    static let engineerKey = Curve25519.Signing.PrivateKey()

    /// Both sides' handshakes, concurrently; the host's and the viewer's transports.
    static func establish(
        _ host: MemoryTransport, _ viewer: MemoryTransport
    ) async throws -> (SecureTransport<MemoryTransport>, SecureTransport<MemoryTransport>) {
        async let hostSide = SecureTransport.establish(
            over: host, local: .init(role: .host, identity: Self.hostKey, name: "FRONT-DESK", organization: ""), sessionID: Self.sessionID)
        async let viewerSide = SecureTransport.establish(
            over: viewer, local: .init(role: .viewer, identity: Self.engineerKey, name: "kim.minji", organization: "ACME"), sessionID: Self.sessionID)
        guard case .established(let h) = try await hostSide, case .established(let v) = try await viewerSide else {
            throw TestFailure("the handshake did not complete")
        }
        return (h, v)
    }

    @Test func anHonestRelayCarriesEverythingAndSeesNoPlaintext() async throws {
        let seen = Seen()
        try await Self.relay(seen: seen) { host, viewer in
            let (h, v) = try await Self.establish(host, viewer)
            #expect(h.shortAuthenticationString == v.shortAuthenticationString)
            #expect(h.peer.name == "kim.minji" && h.peer.organization == "ACME")
            #expect(v.peer.identityKey == Array(Self.hostKey.publicKey.rawRepresentation))
            #expect(h.maximumPayloadLength == host.maximumPayloadLength - 17)
            try await h.sender.send(.clipboard(Clipboard(text: "host clipboard: hunter2")))
            try await v.sender.send(.clipboard(Clipboard(text: "viewer clipboard: correct horse")))
            #expect(try await v.receiveFrame().map { try RelayMessage($0) } == .clipboard(Clipboard(text: "host clipboard: hunter2")))
            #expect(try await h.receiveFrame().map { try RelayMessage($0) } == .clipboard(Clipboard(text: "viewer clipboard: correct horse")))
            // A Bye passes in clear: the relay must read it.
            try await v.sender.send(.bye(Bye(reason: .normal, text: "done")))
            #expect(try await h.receiveFrame().map { try RelayMessage($0) } == .bye(Bye(reason: .normal, text: "done")))
        }
        let bytes = seen.bytes
        for secret in ["hunter2", "correct horse", "kim.minji", "FRONT-DESK"] {
            #expect(!bytes.contains(subsequence: Array(secret.utf8)), "the relay saw \(secret)")
        }
        #expect(seen.frames.withLock { $0.allSatisfy { !$0.type.isPeerMessage || $0.type.rawValue >= MessageType.keyCommit.rawValue } })
    }

    /// Sends three clipboards host → viewer through a relay that tampers with the given
    /// sealed record (0 is the host's Identity); returns what the viewer got and what
    /// the host heard back.
    static func tampered(
        _ tamper: @escaping @Sendable (Int, Frame) -> [Frame]
    ) async throws -> (viewerError: SecureChannelError?, received: [RelayMessage], hostHeard: RelayMessage?) {
        let sealedIndex = Mutex(0)
        let outcome = Mutex<(SecureChannelError?, [RelayMessage], RelayMessage?)>((nil, [], nil))
        try await Self.relay(tamper: { direction, _, frame in
            guard direction == .toViewer, frame.type == .sealed else { return [frame] }
            let index = sealedIndex.withLock { index in
                defer { index += 1 }
                return index
            }
            return tamper(index, frame)
        }) { host, viewer in
            let (h, v) = try await Self.establish(host, viewer)
            for index in 1...3 { try await h.sender.send(.clipboard(Clipboard(text: "clipboard \(index)"))) }
            do {
                while let frame = try await v.receiveFrame() {
                    let message = try RelayMessage(frame)
                    outcome.withLock { $0.1.append(message) }
                    if outcome.withLock({ $0.1.count }) == 3 { break }
                }
            } catch let error as SecureChannelError {
                outcome.withLock { $0.0 = error }
                let heard = try await h.receiveFrame().map { try RelayMessage($0) }
                outcome.withLock { $0.2 = heard }
            }
        }
        return outcome.withLock { $0 }
    }

    static func expectEnded(_ result: (viewerError: SecureChannelError?, received: [RelayMessage], hostHeard: RelayMessage?), _ what: String) {
        #expect(result.viewerError?.kind == .recordRejected, "\(what): \(String(describing: result.viewerError))")
        #expect(result.received.count < 3, "\(what): the session went on")
        guard case .bye(let bye) = result.hostHeard else {
            Issue.record("\(what): the host was not told, got \(String(describing: result.hostHeard))")
            return
        }
        #expect(bye.reason == .protocolError && bye.text.contains("end-to-end check failed"), "\(what)")
    }

    @Test func aFlippedBitEndsTheSession() async throws {
        Self.expectEnded(
            try await Self.tampered { index, frame in
                guard index == 2 else { return [frame] }
                var payload = frame.payload
                payload.setInteger(payload.getInteger(at: 0, as: UInt8.self)! ^ 0x20, at: 0)
                return [try! Frame(type: .sealed, payload: payload)]
            }, "flip")
    }

    @Test func aReplayEndsTheSession() async throws {
        Self.expectEnded(try await Self.tampered { index, frame in index == 1 ? [frame, frame] : [frame] }, "replay")
    }

    @Test func aReorderEndsTheSession() async throws {
        let held = Mutex<Frame?>(nil)
        Self.expectEnded(
            try await Self.tampered { index, frame in
                if index == 1 {
                    held.withLock { $0 = frame }
                    return []
                }
                if index == 2 { return [frame, held.withLock { $0! }] }
                return [frame]
            }, "reorder")
    }

    @Test func aDropEndsTheSession() async throws {
        Self.expectEnded(try await Self.tampered { index, frame in index == 1 ? [] : [frame] }, "drop")
    }

    /// A host that left mid-frame: the relay completes its record with zero bytes and says
    /// Bye (§2.3). The viewer reports the Bye, not an attack.
    @Test func aRecordCutShortByTheRelayEndsWithItsBye() async throws {
        let result = Mutex<Frame?>(nil)
        let sealed = Mutex(0)
        try await Self.relay(tamper: { direction, _, frame in
            guard direction == .toViewer, frame.type == .sealed else { return [frame] }
            // Record 0 is the host's Identity; cut record 1.
            guard
                sealed.withLock({ count in
                    defer { count += 1 }
                    return count == 1
                })
            else { return [frame] }
            var padded = frame.payload
            padded.setBytes([UInt8](repeating: 0, count: 30), at: padded.writerIndex - 30)
            return [try! Frame(type: .sealed, payload: padded), try! Frame(.bye(Bye(reason: .peerLeft, text: "the host disconnected")))]
        }) { host, viewer in
            let (h, v) = try await Self.establish(host, viewer)
            try await h.sender.send(.clipboard(Clipboard(text: String(repeating: "x", count: 100))))
            let frame = try await v.receiveFrame()
            result.withLock { $0 = frame }
        }
        #expect(try result.withLock { $0 }.map { try RelayMessage($0) } == .bye(Bye(reason: .peerLeft, text: "the host disconnected")))
    }

    /// A viewer that never starts the handshake (an old relay-agent): the host gives up
    /// after its deadline and tells it why.
    @Test func aPeerThatNeverHandshakesIsGivenUpOn() async throws {
        let heard = Mutex<RelayMessage?>(nil)
        try await Self.relay { host, viewer in
            let error = await #expect(throws: SecureChannelError.self) {
                _ = try await SecureTransport.establish(
                    over: host, local: .init(role: .host, identity: Self.hostKey, name: "h", organization: ""), sessionID: Self.sessionID,
                    deadline: .milliseconds(50))
            }
            #expect(error?.kind == .endedDuringHandshake && error?.description.contains("Update relay-agent") == true)
            let message = try await viewer.receiveFrame().map { try RelayMessage($0) }
            heard.withLock { $0 = message }
        }
        guard case .bye(let bye) = heard.withLock({ $0 }) else { throw TestFailure("the viewer was not told") }
        #expect(bye.reason == .protocolError && bye.text.contains("did not complete the end-to-end handshake"))
    }

    /// A forged Clipboard the relay writes to the host as if the engineer sent it, in clear
    /// and as a Sealed record of its own making: neither reaches the customer's PC.
    @Test func anInjectedClipboardNeverReachesTheHost() async throws {
        for forged in [
            try Frame(.clipboard(Clipboard(text: "rm -rf ~"))),
            try Frame(type: .sealed, payload: ByteBuffer(bytes: [UInt8](repeating: 0x41, count: 40))),
        ] {
            let injected = Mutex(false)
            let result = Mutex<((any Error)?, [RelayMessage])>((nil, []))
            try await Self.relay(tamper: { direction, _, frame in
                // Once the handshake is over (the viewer's first sealed record), slip it in.
                guard direction == .toHost, frame.type == .sealed, !injected.withLock({ $0 }) else { return [frame] }
                injected.withLock { $0 = true }
                return [frame, forged]
            }) { host, viewer in
                let (h, v) = try await Self.establish(host, viewer)
                try await v.sender.send(.key(Key(keysym: 0x61, isDown: true)))
                do {
                    while let frame = try await h.receiveFrame() { result.withLock { $0.1.append(try! RelayMessage(frame)) } }
                } catch {
                    result.withLock { $0.0 = error }
                }
            }
            let (error, messages) = result.withLock { $0 }
            #expect(!messages.contains { if case .clipboard = $0 { true } else { false } }, "\(forged.type.name) reached the host")
            let kind = (error as? SecureChannelError)?.kind
            #expect(kind == .recordRejected, "\(forged.type.name): \(String(describing: error))")
        }
    }

    /// A relay that runs a handshake of its own with each side (holding its own keys) gets
    /// through only unnoticed if the two short codes match and the viewer does not pin
    /// the host's key: the codes differ, and the viewer sees another key than the host's.
    @Test func aRelayInTheMiddleShowsOtherCodesAndAnotherKey() throws {
        let relayKey = Curve25519.Signing.PrivateKey()
        func run(
            host: Curve25519.Signing.PrivateKey, viewer: Curve25519.Signing.PrivateKey, ephemerals: (UInt8, UInt8)
        ) throws -> (
            host: SecureHandshake.Established, viewer: SecureHandshake.Established
        ) {
            var h = SecureHandshake(
                .init(role: .host, identity: host, name: "h", organization: ""), sessionID: Self.sessionID, ephemeral: HandshakeTests.ephemeral(ephemerals.0))
            var v = SecureHandshake(
                .init(role: .viewer, identity: viewer, name: "v", organization: ""), sessionID: Self.sessionID,
                ephemeral: HandshakeTests.ephemeral(ephemerals.1))
            return try HandshakeTests.run(host: &h, viewer: &v)
        }
        let viewerSide = try run(host: relayKey, viewer: Self.engineerKey, ephemerals: (3, 4)).viewer  // the relay plays the host
        let hostSide = try run(host: Self.hostKey, viewer: relayKey, ephemerals: (5, 6)).host  // and the viewer
        #expect(viewerSide.secrets.shortAuthenticationString != hostSide.secrets.shortAuthenticationString)
        #expect(viewerSide.peer.identityKey != Array(Self.hostKey.publicKey.rawRepresentation), "a pin would catch it")
    }
}

extension Array where Element == UInt8 {
    func contains(subsequence: [UInt8]) -> Bool {
        guard !subsequence.isEmpty, subsequence.count <= self.count else { return false }
        return (0...(self.count - subsequence.count)).contains { Array(self[$0..<($0 + subsequence.count)]) == subsequence }
    }
}
