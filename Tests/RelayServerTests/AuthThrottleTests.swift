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
                #expect(
                    Self.attempt(&throttle, from: guesser, account: "engineer:en-kim", correct: true, now: now) == .rateLimited,
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
}
