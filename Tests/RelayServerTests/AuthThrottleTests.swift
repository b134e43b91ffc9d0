import NIOCore
import Testing

@testable import RelayServer

// AuthThrottle is pure: every test drives it with explicit NIODeadline values.
@Suite struct AuthThrottleTests {
    private static let start = NIODeadline.uptimeNanoseconds(1_000_000_000_000)

    private static func at(seconds: Int64, nanoseconds: Int64 = 0) -> NIODeadline {
        Self.start + .seconds(seconds) + .nanoseconds(nanoseconds)
    }

    // MARK: By source (issue 10 item 11)

    private static let owner = SourceKey(ipAddress: "198.51.100.20")!

    /// How the relay handles one attempt: refused unchecked while the source is blocked,
    /// else checked; a wrong credential is recorded. Returns what the agent is told.
    private enum Outcome: Equatable { case accepted, rejected, rateLimited }

    private static func attempt(_ throttle: inout AuthThrottle, from source: SourceKey, account: String, correct: Bool, now: NIODeadline) -> Outcome {
        if throttle.retryAfter(source: source, now: now) != nil { return .rateLimited }
        if correct { return .accepted }
        throttle.recordFailure(source: source, account: account, now: now)
        return .rejected
    }

    /// The lock-out of issue 10 item 11: wrong tokens for a known engineer id, sent from
    /// other addresses, kept the engineer's own right token out (`rate_limited`). Now only
    /// the sources are penalised.
    @Test(arguments: [7, 100, 5000])
    func wrongTokensForAnIdFromOtherSourcesDoNotLockTheOwnerOut(failures: Int) {
        var throttle = AuthThrottle()
        for index in 0..<failures {
            let source = SourceKey(ipAddress: "2001:db8:\(String(index, radix: 16))::1")!
            _ = Self.attempt(&throttle, from: source, account: "engineer:en-kim", correct: false, now: Self.at(seconds: 0, nanoseconds: Int64(index)))
        }
        #expect(Self.attempt(&throttle, from: Self.owner, account: "engineer:en-kim", correct: true, now: Self.at(seconds: 1)) == .accepted)
        // Host ids alike.
        for index in 0..<failures {
            let source = SourceKey(ipAddress: "10.0.\(index / 250).\(index % 250)")!
            _ = Self.attempt(&throttle, from: source, account: "host:ho-pc17", correct: false, now: Self.at(seconds: 2))
        }
        #expect(Self.attempt(&throttle, from: Self.owner, account: "host:ho-pc17", correct: true, now: Self.at(seconds: 3)) == .accepted)
    }

    /// Even failures from one source, many of them, only block that source.
    @Test func theGuessingSourceIsBlockedGrowinglyAndOnlyIt() {
        var throttle = AuthThrottle()
        let guesser = SourceKey(ipAddress: "192.0.2.66")!
        var now = Self.start
        var blocks: [TimeAmount] = []
        for _ in 0..<15 {
            if let wait = throttle.retryAfter(source: guesser, now: now) {
                #expect(Self.attempt(&throttle, from: guesser, account: "engineer:en-kim", correct: true, now: now) == .rateLimited,
                        "a blocked source's right token is not even checked")
                now = now + wait
            }
            if let block = throttle.recordFailure(source: guesser, account: "engineer:en-kim", now: now).sourceBlockedFor {
                blocks.append(block)
            }
        }
        #expect(blocks == [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024].map { TimeAmount.seconds($0) })
        #expect(Self.attempt(&throttle, from: Self.owner, account: "engineer:en-kim", correct: true, now: now) == .accepted)
        // A success does not clear the guessing source: a valid account must not reset
        // the penalties of a source that also guesses.
        #expect(throttle.retryAfter(source: guesser, now: now) == .seconds(1024))
    }

    @Test func theBlockedMessageSaysWhoIsBlockedAndForHowLong() {
        let v4 = AuthThrottle.blockedMessage(retryAfter: .milliseconds(1500), source: Self.owner)
        #expect(v4 == "too many failed attempts from your address; the credentials were not checked: retry in 2 s")
        let v6 = AuthThrottle.blockedMessage(retryAfter: .seconds(3600), source: SourceKey(ipAddress: "2001:db8:1:2::5")!)
        #expect(v6.contains("your network (2001:db8:1:2::/64)") && v6.hasSuffix("retry in 3600 s"))
    }

    @Test func failuresForAnAccountRaiseAnAlertNotABlock() {
        var throttle = AuthThrottle()
        var alerts: [AccountFailureWatch.Alert] = []
        for index in 0..<25 {
            let source = SourceKey(ipAddress: "203.0.113.\(index)")!
            let verdict = throttle.recordFailure(source: source, account: "engineer:en-kim", now: Self.at(seconds: Int64(index)))
            #expect(verdict.sourceBlockedFor == nil, "one failure per source is free")
            if let alert = verdict.accountAlert { alerts.append(alert) }
        }
        #expect(alerts.map(\.failures) == [10, 20])
        #expect(alerts.first?.description.contains("not locked") == true)
        // A support code claims no account: no alert, however many.
        for index in 0..<25 {
            #expect(throttle.recordFailure(source: Self.owner, account: nil, now: Self.at(seconds: Int64(index))).accountAlert == nil)
        }
    }

    @Test func pruneReturnsTheSourceTablesToEmpty() {
        var throttle = AuthThrottle()
        for index in 0..<300 {
            let source = SourceKey(ipAddress: "2001:db8:\(String(index, radix: 16))::1")!
            throttle.recordFailure(source: source, account: "engineer:made-up-\(index % 40)", now: Self.at(seconds: Int64(index)))
        }
        for _ in 0..<20 { throttle.recordFailure(source: Self.owner, account: nil, now: Self.at(seconds: 300)) }
        #expect(throttle.trackedSources > 1 && throttle.trackedAccounts == 40)
        throttle.prune(now: Self.at(seconds: 300) + .hours(1))
        #expect(throttle.trackedAccounts == 0)
        #expect(throttle.trackedSources == 1, "the source with 20 failures is still remembered")
        throttle.prune(now: Self.at(seconds: 300) + .hours(20))
        #expect(throttle.trackedSources == 0)
    }

    // MARK: By key (the old API; delete these tests with it)

    /// Records `count` failures for `key`, one a second from `from`; returns the last result.
    @discardableResult
    private static func fail(_ throttle: inout AuthThrottle, _ key: String, count: Int, from: Int64 = 0) -> TimeAmount? {
        var last: TimeAmount?
        for index in 0..<count {
            last = throttle.recordFailure([key], now: Self.at(seconds: from + Int64(index)))
        }
        return last
    }

    @Test func freeFailuresWithinTheWindowAreNotBlocked() {
        var throttle = AuthThrottle()
        for index in 0..<throttle.policy.freeFailures {
            let now = Self.at(seconds: Int64(index))
            #expect(throttle.recordFailure(["ip:192.0.2.7"], now: now) == nil, "failure \(index + 1)")
            #expect(throttle.retryAfter("ip:192.0.2.7", now: now) == nil)
        }
        #expect(throttle.retryAfter("ip:198.51.100.1", now: Self.start) == nil)
    }

    @Test func theFailureAfterTheFreeOnesBlocksForTheBaseDelay() {
        var throttle = AuthThrottle()
        let policy = throttle.policy
        Self.fail(&throttle, "ip:192.0.2.7", count: policy.freeFailures)
        let now = Self.at(seconds: 10)
        #expect(throttle.recordFailure(["ip:192.0.2.7"], now: now) == policy.baseDelay)
        #expect(throttle.retryAfter("ip:192.0.2.7", now: now) == policy.baseDelay)
        #expect(throttle.retryAfter("ip:192.0.2.7", now: now + .milliseconds(500)) == policy.baseDelay - .milliseconds(500))
        #expect(throttle.retryAfter("ip:192.0.2.7", now: now + policy.baseDelay - .nanoseconds(1)) == .nanoseconds(1))
        // The block ends exactly at its deadline.
        #expect(throttle.retryAfter("ip:192.0.2.7", now: now + policy.baseDelay) == nil)
        // Other keys are not affected.
        #expect(throttle.retryAfter("ip:192.0.2.8", now: now) == nil)
    }

    @Test func furtherFailuresDoubleTheDelayUpToTheMaximum() {
        var throttle = AuthThrottle()
        let policy = throttle.policy
        Self.fail(&throttle, "engineer:kim", count: policy.freeFailures)
        var delays: [TimeAmount] = []
        // All within one window (the window is a minute; these are 1 ms apart).
        for index in 0..<40 {
            let now = Self.at(seconds: 30, nanoseconds: Int64(index) * 1_000_000)
            delays.append(throttle.recordFailure(["engineer:kim"], now: now) ?? .zero)
            #expect(throttle.retryAfter("engineer:kim", now: now) == delays.last)
        }
        var expected: [TimeAmount] = []
        var delay = policy.baseDelay
        for _ in 0..<40 {
            expected.append(min(delay, policy.maximumDelay))
            delay = min(delay * 2, policy.maximumDelay)
        }
        #expect(delays == expected)
        #expect(delays.prefix(4) == [.seconds(2), .seconds(4), .seconds(8), .seconds(16)])
        #expect(delays.last == .minutes(15))
    }

    @Test func failuresOlderThanTheWindowDoNotCount() {
        let policy = AuthThrottle.Policy()
        // A full window after the first failure, it has aged out: five still count, not six.
        var throttle = AuthThrottle(policy: policy)
        Self.fail(&throttle, "ip:192.0.2.7", count: policy.freeFailures)
        let windowLater = Self.at(seconds: 0) + policy.window
        #expect(throttle.recordFailure(["ip:192.0.2.7"], now: windowLater) == nil)
        #expect(throttle.retryAfter("ip:192.0.2.7", now: windowLater) == nil)

        // One nanosecond earlier, all six are within the window.
        var other = AuthThrottle(policy: policy)
        Self.fail(&other, "ip:192.0.2.7", count: policy.freeFailures)
        let justInside = windowLater - .nanoseconds(1)
        #expect(other.recordFailure(["ip:192.0.2.7"], now: justInside) == policy.baseDelay)

        // Failures spread out slower than the window never block.
        var slow = AuthThrottle(policy: policy)
        for index in 0..<50 {
            let now = Self.at(seconds: Int64(index) * 13)  // five per 65 s
            #expect(slow.recordFailure(["ip:192.0.2.9"], now: now) == nil, "failure \(index + 1)")
        }
    }

    @Test func successClearsTheKey() {
        var throttle = AuthThrottle()
        let policy = throttle.policy
        Self.fail(&throttle, "host:pc-17", count: policy.freeFailures + 3)
        let now = Self.at(seconds: 8)  // the last failure, at 7 s, blocked for 8 s
        #expect(throttle.retryAfter("host:pc-17", now: now) != nil)
        throttle.recordSuccess("host:pc-17")
        #expect(throttle.retryAfter("host:pc-17", now: now) == nil)
        #expect(throttle.trackedKeys == 0)
        // The free failures are available again, and the back-off starts over.
        #expect(Self.fail(&throttle, "host:pc-17", count: policy.freeFailures, from: 20) == nil)
        #expect(throttle.recordFailure(["host:pc-17"], now: Self.at(seconds: 30)) == policy.baseDelay)
    }

    @Test func severalKeysAtOnceReturnTheLongestBlock() {
        var throttle = AuthThrottle()
        let policy = throttle.policy
        Self.fail(&throttle, "ip:192.0.2.7", count: policy.freeFailures)  // next one: 2 s
        Self.fail(&throttle, "engineer:kim", count: policy.freeFailures + 2)  // next one: 8 s
        let now = Self.at(seconds: 15)
        #expect(throttle.recordFailure(["ip:192.0.2.7", "engineer:kim", "host:new"], now: now) == .seconds(8))
        #expect(throttle.retryAfter("ip:192.0.2.7", now: now) == .seconds(2))
        #expect(throttle.retryAfter("engineer:kim", now: now) == .seconds(8))
        #expect(throttle.retryAfter("host:new", now: now) == nil)
        // Order does not matter.
        #expect(throttle.recordFailure(["engineer:kim", "ip:192.0.2.7"], now: now) == .seconds(16))
        // None blocked: nil.
        #expect(throttle.recordFailure(["a", "b"], now: now) == nil)
    }

    @Test func pruneDropsQuietKeysAndKeepsBlockedAndRecentOnes() {
        var throttle = AuthThrottle()
        let policy = throttle.policy
        throttle.recordFailure(["quiet"], now: Self.at(seconds: 0))
        // Blocked for a long time: 7 failures past the free ones, the last (at t = 11) for 128 s.
        Self.fail(&throttle, "blocked", count: policy.freeFailures + 7, from: 0)
        throttle.recordFailure(["recent"], now: Self.at(seconds: 50))
        #expect(throttle.trackedKeys == 3)

        // At t = 65: "quiet" failed 65 s ago and is not blocked.
        throttle.prune(now: Self.at(seconds: 65))
        #expect(throttle.trackedKeys == 2)
        #expect(throttle.retryAfter("blocked", now: Self.at(seconds: 65)) != nil)

        // At t = 111: "recent" aged out (61 s); "blocked" failed last at t = 11, but its
        // block (until t = 11 + 128) still holds.
        throttle.prune(now: Self.at(seconds: 111))
        #expect(throttle.trackedKeys == 1)
        #expect(throttle.retryAfter("blocked", now: Self.at(seconds: 111)) == .seconds(28))

        // Once the block is over it goes too.
        throttle.prune(now: Self.at(seconds: 139))
        #expect(throttle.trackedKeys == 0)
    }

    @Test func pruneKeepsAKeyWithAFailureInsideTheWindow() {
        var throttle = AuthThrottle()
        throttle.recordFailure(["k"], now: Self.at(seconds: 0))
        throttle.prune(now: Self.at(seconds: 0) + throttle.policy.window - .nanoseconds(1))
        #expect(throttle.trackedKeys == 1)
        throttle.prune(now: Self.at(seconds: 0) + throttle.policy.window)
        #expect(throttle.trackedKeys == 0)
    }

    /// The back-off multiplies `baseDelay` by up to 2^30 before it applies the cap, so a
    /// base delay of 8.6 s or more overflows `TimeAmount` (Int64 nanoseconds) and traps
    /// once a key has 31 failures past the free ones — a guesser who keeps going crashes
    /// the relay. The cap must apply before the multiplication overflows.
    @Test func longBaseDelayIsCappedWithoutOverflow() async {
        await #expect(processExitsWith: .success) {
            var throttle = AuthThrottle(policy: .init(freeFailures: 0, window: .hours(1), baseDelay: .seconds(10), maximumDelay: .minutes(15)))
            var last: TimeAmount?
            for index in 0..<40 {
                last = throttle.recordFailure(["ip:192.0.2.7"], now: .uptimeNanoseconds(1_000_000_000 + UInt64(index)))
            }
            precondition(last == .minutes(15))
        }
    }
}
