import RelayWire
import Testing

@testable import RelayClient

/// The connection's keepalive (PROTOCOL.md §8.4, REVIEW.md D1): its schedule in virtual
/// time, and that a relay which falls silent is found dead. End to end against the relay's
/// idle timeout: RelayServerTests' KeepaliveEndToEndTests.
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

/// The keepalive against a scripted relay (``FakeRelay``): what a real relay never does.
@Suite struct KeepaliveDeadRelayTests {
    @Test("a relay that falls silent is declared dead after the silence limit", .timeLimit(.minutes(1)))
    func silentRelayIsDead() async throws {
        let error = try await FakeRelay.with({ inbound, outbound in
            var frames = inbound.makeAsyncIterator()
            _ = try await frames.next()  // Hello
            try await outbound.write(try Frame(.helloAck(HelloAck(capabilities: .all, maximumPayloadLength: 1 << 20, relayNode: "mute"))))
            while try await frames.next() != nil {}  // reads Pings, answers nothing
        }) { address, trust in
            await #expect(throws: RelayClientError.self) {
                try await RelayConnection.withConnection(
                    to: address, trust: trust, keepalive: Keepalive(interval: .milliseconds(200), silenceLimit: .seconds(1))
                ) { connection in
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
