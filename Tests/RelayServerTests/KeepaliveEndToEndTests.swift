import Foundation
import NIOCore
import RelayClient
import RelayScreen
import RelayTestSupport
import RelayTileCodec
import RelayWire
import Testing

@testable import RelayServer

/// The connection's keepalive end to end (PROTOCOL.md §8.4, REVIEW.md D1): the relay's
/// idle timeout never ends a session whose screen is still, nor a long wait to be paired.
/// Its schedule in virtual time and the dead-relay check are in RelayClientTests.
@Suite struct KeepaliveEndToEndTests {
    static let quick = Keepalive(interval: .milliseconds(400), silenceLimit: .seconds(30))

    /// Pairs a host serving one still frame with a viewer (the viewer waits `pairingDelay`
    /// for the host first), lets the session run `hold` after the first update, then the
    /// viewer says Bye. Returns how each side's session ended.
    static func stillSession(
        through relay: TestRelay, keepalive: Keepalive, pairingDelay: Duration = .zero, hold: Duration
    ) async throws -> (viewer: ViewerScreenSession.Outcome, host: HostScreenSession.Outcome, waited: Duration) {
        let frame = Framebuffer(width: 96, height: 64, fill: 0x33_66_99)
        let (codes, codeSink) = AsyncStream.makeStream(of: SupportCode.self)
        let clock = ContinuousClock()
        return try await withThrowingTaskGroup(of: HostScreenSession.Outcome?.self) { group in
            group.addTask {
                var iterator = codes.makeAsyncIterator()
                guard let code = await iterator.next() else { throw TestFailure("no support code") }
                try await Task.sleep(for: pairingDelay)
                return try await RelayConnection.withConnection(to: relay.address, trust: relay.trust, keepalive: keepalive) { host in
                    try await host.hello(role: .host)
                    guard case .paired = try await host.authenticate(host: .supportCode(code)) else { throw TestFailure("host not paired") }
                    return try await HostScreenSession(source: ScriptedSource([frame]), options: .init(framesPerSecond: 30)).run(on: host)
                }
            }
            let (viewerOutcome, waited) = try await RelayConnection.withConnection(to: relay.address, trust: relay.trust, keepalive: keepalive) { viewer in
                try await viewer.hello(role: .viewer)
                guard
                    case .codeIssued(let issued) = try await viewer.authenticate(viewer: ViewerAuth(token: relay.acme.engineerToken, request: .newSupportCode))
                else {
                    throw TestFailure("no code issued")
                }
                codeSink.yield(issued.code)
                let waitStart = clock.now
                _ = try await viewer.waitForPairing()
                let waited = waitStart.duration(to: clock.now)
                let sender = viewer.sender
                let session = ViewerScreenSession()
                let outcome = try await withThrowingTaskGroup(of: Void.self) { timer in
                    defer { timer.cancelAll() }
                    return try await session.run(on: viewer) { event in
                        if case .update = event {
                            // The screen never changes again: nothing but keepalives flows.
                            timer.addTask {
                                try await Task.sleep(for: hold)
                                try await sender.send(.bye(Bye(reason: .normal, text: "the engineer closed the viewer")))
                            }
                        }
                        return .continue
                    }
                }
                return (outcome, waited)
            }
            var hostOutcome: HostScreenSession.Outcome?
            for try await result in group { hostOutcome = result ?? hostOutcome }
            return (viewerOutcome, try #require(hostOutcome), waited)
        }
    }

    /// The relay's idle timeout in this end-to-end test: real seconds, since the agent's
    /// keepalive runs on the real clock. The pauses below are inputs, not waits for the
    /// relay: each is the idle timeout and half again, long enough that a session without
    /// Pings is cut off first (the test below shows it is), and the Pings every 0.4 s leave
    /// 1.6 s for a loaded machine. How Pings reset the relay's idle timeout is tested on
    /// virtual time (InMemoryConnectionTests), the keepalive's schedule in RelayClientTests.
    static let idleTimeout = TimeAmount.seconds(2)
    static let pause = Duration.seconds(3)

    @Test("a still screen outlives the idle timeout, and so does a long wait to be paired (issue 10, item 1)", .timeLimit(.minutes(1)))
    func stillScreenSurvivesTheIdleTimeout() async throws {
        try await TestRelay.with({ $0.idleTimeout = Self.idleTimeout }) { relay in
            let result = try await Self.stillSession(through: relay, keepalive: Self.quick, pairingDelay: Self.pause, hold: Self.pause)
            // The viewer's own Bye ended it (the relay then closes), not the idle timeout.
            #expect(result.viewer == .closed)
            guard case .bye(let bye) = result.host else { throw TestFailure("the host saw \(result.host)") }
            #expect(bye.reason == .peerLeft)
            #expect(result.waited >= Self.pause)
        }
    }

    @Test("without a keepalive the same still session is cut off by the idle timeout", .timeLimit(.minutes(1)))
    func withoutKeepaliveTheIdleTimeoutEndsIt() async throws {
        try await TestRelay.with({ $0.idleTimeout = Self.idleTimeout }) { relay in
            let result = try await Self.stillSession(through: relay, keepalive: .off, hold: Self.pause)
            guard case .bye(let bye) = result.viewer else { throw TestFailure("the viewer saw \(result.viewer)") }
            #expect([ByeReason.idleTimeout, .peerLeft].contains(bye.reason))
        }
    }
}
