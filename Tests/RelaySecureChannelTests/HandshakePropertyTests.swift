import Crypto
import NIOCore
import RelayTestSupport
import RelayWire
import Testing

@testable import RelaySecureChannel

/// What a relay or a broken peer could send, at random: the handshake never crashes,
/// never accepts a changed message, and fails only with a ``SecureChannelError``.
@Suite struct HandshakePropertyTests {
    /// The frames of an honest handshake, in the order they travel, each with its receiver.
    static func honestFrames(_ random: inout SeededRandom) throws -> [(toHost: Bool, frame: Frame)] {
        var host = SecureHandshake(HandshakeTests.local(.host, seed: 1, name: "h"), sessionID: HandshakeTests.sessionID)
        var viewer = SecureHandshake(HandshakeTests.local(.viewer, seed: 2, name: "v"), sessionID: HandshakeTests.sessionID)
        var frames: [(Bool, Frame)] = []
        let commit = try viewer.start()
        frames.append((true, commit[0]))
        guard case .send(let hostShare) = try host.received(commit[0]) else { throw TestFailure("expected the host's share") }
        frames.append((false, hostShare[0]))
        guard case .send(let viewerFrames) = try viewer.received(hostShare[0]) else { throw TestFailure("expected the viewer's share") }
        frames += viewerFrames.map { (true, $0) }
        guard case .send(let hostIdentity) = try host.received(viewerFrames[0]) else { throw TestFailure("expected the host's identity") }
        frames.append((false, hostIdentity[0]))
        return frames
    }

    /// Flipping any one byte of any handshake message makes the handshake fail (it never
    /// establishes on altered input), with a SecureChannelError.
    @Test(arguments: 0..<8)
    func anyChangedByteFailsTheHandshake(seed: Int) throws {
        var random = SeededRandom(seed: UInt64(seed) + 0xE2E)
        let frames = try Self.honestFrames(&random)
        let victim = random.int(0..<frames.count)
        var host = SecureHandshake(HandshakeTests.local(.host, seed: 1, name: "h"), sessionID: HandshakeTests.sessionID)
        var viewer = SecureHandshake(HandshakeTests.local(.viewer, seed: 2, name: "v"), sessionID: HandshakeTests.sessionID)
        _ = try viewer.start()
        var failed = false
        for (index, (toHost, frame)) in frames.enumerated() {
            var payload = frame.payload
            if index == victim {
                let offset = random.int(0..<payload.readableBytes)
                payload.setInteger(payload.getInteger(at: offset, as: UInt8.self)! ^ UInt8(random.int(1...255)), at: offset)
            }
            let sent = try Frame(type: frame.type, payload: payload)
            do {
                _ = toHost ? try host.received(sent) : try viewer.received(sent)
            } catch is SecureChannelError {
                failed = true
                break
            }
        }
        #expect(failed, "seed \(seed): a changed byte in message \(victim) went unnoticed")
    }

    /// Random peer frames in every state: a SecureChannelError or an ordinary step, never a
    /// crash or another error.
    @Test(arguments: 0..<4)
    func randomFramesAreRefusedCleanly(seed: Int) throws {
        var random = SeededRandom(seed: UInt64(seed) + 0xF00D)
        for _ in 0..<300 {
            var machine = SecureHandshake(
                HandshakeTests.local(random.oneIn(2) ? .host : .viewer, seed: 3, name: "x"), sessionID: HandshakeTests.sessionID)
            _ = try machine.start()
            let type = MessageType.allCases.filter(\.isPeerMessage)[random.int(0..<10)]
            var payload = ByteBuffer()
            payload.writeBytes((0..<random.int(0...120)).map { _ in random.integer(UInt8.self) })
            do {
                _ = try machine.received(try Frame(type: type, payload: payload))
            } catch is SecureChannelError {
            } catch {
                Issue.record("seed \(seed): \(type.name) of \(payload.readableBytes) bytes threw \(error)")
            }
        }
    }
}
