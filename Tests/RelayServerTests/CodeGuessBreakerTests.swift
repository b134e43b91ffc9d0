import NIOCore
import RelayTestSupport
import Testing

@testable import RelayServer

// CodeGuessBreaker: the relay-wide budget of failed code redemptions, in virtual time.
@Suite struct CodeGuessBreakerTests {
    private static let start = NIODeadline.uptimeNanoseconds(1_000_000_000_000)

    private static func at(_ seconds: Int64) -> NIODeadline { Self.start + .seconds(seconds) }

    @Test func theMinutesBudgetOpensTheBreakerForThePause() {
        var breaker = CodeGuessBreaker()
        for index in 0..<9 {
            #expect(breaker.retryAfter(now: Self.at(Int64(index))) == nil)
            #expect(breaker.recordFailure(now: Self.at(Int64(index))) == nil, "failure \(index + 1)")
        }
        // The tenth failure within a minute (at 9 s) spends the budget: paused for 60 s.
        #expect(breaker.recordFailure(now: Self.at(9)) == .seconds(60))
        #expect(breaker.retryAfter(now: Self.at(9)) == .seconds(60))
        #expect(breaker.retryAfter(now: Self.at(30)) == .seconds(39))
        #expect(breaker.retryAfter(now: Self.at(69) - .nanoseconds(1)) == .nanoseconds(1))
        // It closes after the pause: the minute window has long had room.
        #expect(breaker.retryAfter(now: Self.at(69)) == nil)
        #expect(breaker.recordFailure(now: Self.at(69)) == nil)
    }

    @Test func theBreakerStaysOpenUntilTheWindowHasRoom() {
        // A short pause: the hour's budget decides.
        var breaker = CodeGuessBreaker(policy: .init(perMinute: 1000, perHour: 5, pause: .seconds(1)))
        for minute in Int64(0)..<4 { breaker.recordFailure(now: Self.at(minute * 60)) }
        // The fifth in the hour: paused until the first (at 0 s) is an hour old.
        #expect(breaker.recordFailure(now: Self.at(240)) == .seconds(3600 - 240))
        #expect(breaker.retryAfter(now: Self.at(3599)) == .seconds(1))
        #expect(breaker.retryAfter(now: Self.at(3600)) == nil)
        // One more failure fills the window again, until the second one ages out.
        #expect(breaker.recordFailure(now: Self.at(3600)) == .seconds(60))
    }

    @Test func failuresWhileOpenExtendNothingButAreCounted() {
        var breaker = CodeGuessBreaker(policy: .init(perMinute: 2, perHour: 100, pause: .seconds(60)))
        breaker.recordFailure(now: Self.at(0))
        #expect(breaker.recordFailure(now: Self.at(1)) == .seconds(60))
        // A caller that raced the breaker: no second "pause started" report.
        #expect(breaker.recordFailure(now: Self.at(2)) == nil)
        #expect(breaker.retryAfter(now: Self.at(2)) == .seconds(59))
        #expect(breaker.failures(within: .minutes(1), now: Self.at(2)) == 3)
    }

    @Test func timesArrivingOutOfOrderAreSorted() {
        var breaker = CodeGuessBreaker(policy: .init(perMinute: 3, perHour: 100, pause: .seconds(1)))
        breaker.recordFailure(now: Self.at(50))
        breaker.recordFailure(now: Self.at(10))
        // Window [10, 50, 55]: the oldest, at 10 s, leaves it at 70 s.
        #expect(breaker.recordFailure(now: Self.at(55)) == .seconds(15))
    }

    /// Property: whatever the attack — any number of sources, failures at random times —
    /// a caller that asks before each attempt never has more failures checked than the
    /// budget in any rolling minute or hour. This is what the bound in OPERATIONS.md
    /// "Abuse resistance" rests on.
    @Test(arguments: [UInt64(1), 2, 3])
    func noRollingWindowEverHoldsMoreThanTheBudget(seed: UInt64) {
        var generator = SeededRandom(seed: seed)
        var breaker = CodeGuessBreaker()
        let policy = breaker.policy
        var checked: [NIODeadline] = []
        var now = Self.start
        var refused = 0
        while now < Self.start + .hours(6) {
            now = now + .milliseconds(Int64.random(in: 0...2000, using: &generator))
            if breaker.retryAfter(now: now) != nil {
                refused += 1
                continue
            }
            checked.append(now)
            breaker.recordFailure(now: now)
        }
        #expect(refused > 0)
        for (index, time) in checked.enumerated() {
            let inMinute = checked[index...].prefix { $0 < time + .minutes(1) }.count
            let inHour = checked[index...].prefix { $0 < time + .hours(1) }.count
            #expect(inMinute <= policy.perMinute)
            #expect(inHour <= policy.perHour)
        }
        // The attacker did use its hourly budget: about 100 an hour for six hours.
        #expect(checked.count >= 6 * policy.perHour - policy.perMinute && checked.count <= 6 * policy.perHour)
    }

    @Test func memoryIsBoundedAndPruneEmptiesIt() {
        var breaker = CodeGuessBreaker()
        for index in 0..<10_000 { breaker.recordFailure(now: Self.start + .milliseconds(Int64(index))) }
        #expect(breaker.trackedFailures <= 100)
        breaker.prune(now: Self.at(10) + .hours(1) - .seconds(1))
        #expect(breaker.trackedFailures > 0)
        breaker.prune(now: Self.at(10) + .hours(1))
        #expect(breaker.trackedFailures == 0)
    }
}
