import Foundation
import NIOCore
import Synchronization
import Testing

@testable import RelayClient
import RelayScreen
@testable import RelayServer
import RelayWire

/// The connection's keepalive (PROTOCOL.md §8.4, REVIEW.md D1): its schedule in virtual
/// time, and end to end that the relay's idle timeout never ends a session whose screen
/// is still, nor a long wait to be paired.
@Suite struct KeepaliveScheduleTests {
    typealias Schedule = KeepaliveSchedule<ContinuousClock.Instant>
    // Instants are plain values here: nothing sleeps.
    static let start = ContinuousClock.now

    static func at(_ seconds: Double) -> ContinuousClock.Instant {
        start.advanced(by: .milliseconds(Int64(seconds * 1000)))
    }

    @Test("a Ping every interval after HelloAck, none in a burst after a stall")
    func pingsEveryInterval() {
        var schedule = Schedule(Keepalive(interval: .seconds(30), silenceLimit: nil), start: Self.start)
        #expect(schedule.next(at: Self.at(0)) == .wait(until: Self.at(30)))
        #expect(schedule.next(at: Self.at(29.9)) == .wait(until: Self.at(30)))
        #expect(schedule.next(at: Self.at(30)) == .ping)
        #expect(schedule.next(at: Self.at(30)) == .wait(until: Self.at(60)))
        #expect(schedule.next(at: Self.at(61)) == .ping)
        #expect(schedule.next(at: Self.at(61)) == .wait(until: Self.at(90)))
        // Suspended for five minutes: one Ping, then the next an interval later.
        #expect(schedule.next(at: Self.at(400)) == .ping)
        #expect(schedule.next(at: Self.at(400)) == .wait(until: Self.at(430)))
    }

    @Test("silence from the relay for the limit means the connection is dead; anything heard resets it")
    func silenceLimit() {
        var schedule = Schedule(Keepalive(interval: .seconds(30), silenceLimit: .seconds(150)), start: Self.start)
        #expect(schedule.next(at: Self.at(30)) == .ping)
        schedule.heard(at: Self.at(30.05))  // the Pong
        #expect(schedule.next(at: Self.at(31)) == .wait(until: Self.at(60)))
        for second in stride(from: 60.0, through: 150, by: 30) {
            #expect(schedule.next(at: Self.at(second)) == .ping)
        }
        // Unanswered since 30.05 s: the wait ends at the silence limit, then it is dead.
        #expect(schedule.next(at: Self.at(170)) == .wait(until: Self.at(180)))
        #expect(schedule.next(at: Self.at(180.05)) == .dead(silence: .seconds(150)))
        // An earlier arrival never moves the mark back.
        schedule.heard(at: Self.at(10))
        #expect(schedule.lastHeard == Self.at(30.05))
    }

    @Test("off: nothing is ever due")
    func off() {
        var schedule = Schedule(.off, start: Self.start)
        #expect(schedule.next(at: Self.at(1_000_000)) == .idle)
    }

    @Test("a Pong is consumed only when it answers one of the keepalive's own Pings")
    func ownPongsOnly() {
        let state = KeepaliveState(Keepalive(interval: .seconds(1), silenceLimit: nil))
        #expect(state.next(at: Self.at(5)) == (.idle, 0))  // not armed before HelloAck
        state.arm(at: Self.start)
        let (action, nonce) = state.next(at: Self.at(1))
        #expect(action == .ping)
        #expect(!state.consumePong(nonce: nonce &+ 1000))
        #expect(state.consumePong(nonce: nonce))
        #expect(!state.consumePong(nonce: nonce))
    }
}

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
                guard case .codeIssued(let issued) = try await viewer.authenticate(viewer: ViewerAuth(token: relay.acme.engineerToken, request: .newSupportCode)) else {
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

    @Test("a still screen outlives three idle timeouts, and so does a long wait to be paired (issue 10, item 1)", .timeLimit(.minutes(2)))
    func stillScreenSurvivesTheIdleTimeout() async throws {
        try await TestRelay.with({ $0.idleTimeout = .seconds(2) }) { relay in
            let result = try await Self.stillSession(through: relay, keepalive: Self.quick, pairingDelay: .seconds(5), hold: .seconds(7))
            // The viewer's own Bye ended it (the relay then closes), not the idle timeout.
            #expect(result.viewer == .closed)
            guard case .bye(let bye) = result.host else { throw TestFailure("the host saw \(result.host)") }
            #expect(bye.reason == .peerLeft)
            #expect(result.waited >= .seconds(5))
        }
    }

    @Test("without a keepalive the same still session is cut off by the idle timeout", .timeLimit(.minutes(2)))
    func withoutKeepaliveTheIdleTimeoutEndsIt() async throws {
        try await TestRelay.with({ $0.idleTimeout = .seconds(2) }) { relay in
            let result = try await Self.stillSession(through: relay, keepalive: .off, hold: .seconds(7))
            guard case .bye(let bye) = result.viewer else { throw TestFailure("the viewer saw \(result.viewer)") }
            #expect([ByeReason.idleTimeout, .peerLeft].contains(bye.reason))
        }
    }

    @Test("a relay that falls silent is declared dead after the silence limit", .timeLimit(.minutes(1)))
    func silentRelayIsDead() async throws {
        let error = try await FakeRelay.with({ inbound, outbound in
            var frames = inbound.makeAsyncIterator()
            _ = try await frames.next()  // Hello
            try await outbound.write(try Frame(.helloAck(HelloAck(capabilities: .all, maximumPayloadLength: 1 << 20, relayNode: "mute"))))
            while try await frames.next() != nil {}  // reads Pings, answers nothing
        }) { address, trust in
            await relayError {
                try await RelayConnection.withConnection(to: address, trust: trust, keepalive: Keepalive(interval: .milliseconds(200), silenceLimit: .seconds(1))) { connection in
                    _ = try await connection.hello(role: .host)
                    _ = try await connection.receive()
                }
            }
        }
        let failure = try #require(error)
        #expect(failure.kind == .closed)
        #expect(failure.message.contains("connection is dead"), "\(failure.message)")
    }
}
