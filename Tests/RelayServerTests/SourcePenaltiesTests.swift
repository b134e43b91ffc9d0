import Foundation
import NIOCore
import RelayStore
import RelayTestSupport
import Testing

@testable import RelayServer

// SourcePenalties is pure: every test drives it with explicit NIODeadline values.
@Suite struct SourcePenaltiesTests {
    private static let start = NIODeadline.uptimeNanoseconds(1_000_000_000_000)
    private static let guesser = SourceKey(ipAddress: "192.0.2.7")!
    private static let other = SourceKey(ipAddress: "198.51.100.1")!

    private static func at(_ seconds: Int64) -> NIODeadline { Self.start + .seconds(seconds) }

    /// A guesser that tries again the moment its block ends, from `from` until `until`
    /// (exclusive); returns the times of its checked (and failed) attempts.
    private static func greedyAttempts(_ penalties: inout SourcePenalties, source: SourceKey, from: NIODeadline, until: NIODeadline) -> [NIODeadline] {
        var now = from
        var attempts: [NIODeadline] = []
        while now < until {
            if let wait = penalties.retryAfter(source, now: now) {
                now = now + wait
                continue
            }
            attempts.append(now)
            penalties.recordFailure(source, now: now)
        }
        return attempts
    }

    @Test func theFreeFailuresCostNothing() {
        var penalties = SourcePenalties()
        for index in 0..<penalties.policy.freeFailures {
            #expect(penalties.recordFailure(Self.guesser, now: Self.start) == nil, "failure \(index + 1)")
            #expect(penalties.retryAfter(Self.guesser, now: Self.start) == nil)
        }
        #expect(penalties.level(of: Self.guesser, now: Self.start) == 5)
    }

    @Test func blocksDoubleFromTheFirstBlockUpToHours() {
        var penalties = SourcePenalties()
        let policy = penalties.policy
        for _ in 0..<policy.freeFailures { penalties.recordFailure(Self.guesser, now: Self.start) }
        var blocks: [TimeAmount] = []
        for _ in 0..<20 {
            // All at one instant: no failure is forgiven in between.
            blocks.append(penalties.recordFailure(Self.guesser, now: Self.start) ?? .zero)
        }
        #expect(blocks.prefix(5) == [.seconds(2), .seconds(4), .seconds(8), .seconds(16), .seconds(32)])
        #expect(blocks[12] == .seconds(8192))  // over two hours
        #expect(blocks.suffix(7).allSatisfy { $0 == .hours(4) })
        #expect(zip(blocks, blocks.dropFirst()).allSatisfy { $0 <= $1 })
        #expect(penalties.retryAfter(Self.guesser, now: Self.start) == .hours(4))
        #expect(penalties.retryAfter(Self.guesser, now: Self.start + .hours(4)) == nil)
    }

    @Test func aBlockEndsExactlyAtItsDeadlineAndTouchesNoOtherSource() {
        var penalties = SourcePenalties()
        for _ in 0...penalties.policy.freeFailures { penalties.recordFailure(Self.guesser, now: Self.at(10)) }
        #expect(penalties.retryAfter(Self.guesser, now: Self.at(10)) == .seconds(2))
        #expect(penalties.retryAfter(Self.guesser, now: Self.at(11)) == .seconds(1))
        #expect(penalties.retryAfter(Self.guesser, now: Self.at(12) - .nanoseconds(1)) == .nanoseconds(1))
        #expect(penalties.retryAfter(Self.guesser, now: Self.at(12)) == nil)
        #expect(penalties.retryAfter(Self.other, now: Self.at(10)) == nil)
        // Another address of the same IPv6 /64 is the same source; another /64 is not.
        var v6 = SourcePenalties()
        for index in 0...v6.policy.freeFailures {
            v6.recordFailure(SourceKey(ipAddress: "2001:db8:1:2::\(index + 1)")!, now: Self.start)
        }
        #expect(v6.retryAfter(SourceKey(ipAddress: "2001:db8:1:2:ffff::")!, now: Self.start) == .seconds(2))
        #expect(v6.retryAfter(SourceKey(ipAddress: "2001:db8:1:3::1")!, now: Self.start) == nil)
    }

    @Test func oneFailureIsForgivenPerPeriodSoPenaltiesLastHours() {
        var penalties = SourcePenalties()
        let period = penalties.policy.forgiveOneFailureEvery
        for _ in 0..<12 { penalties.recordFailure(Self.guesser, now: Self.start) }
        #expect(penalties.level(of: Self.guesser, now: Self.start) == 12)
        #expect(penalties.level(of: Self.guesser, now: Self.start + period - .nanoseconds(1)) == 12)
        #expect(penalties.level(of: Self.guesser, now: Self.start + period) == 11)
        #expect(penalties.level(of: Self.guesser, now: Self.start + period * 7) == 5)
        // Seven periods later the level is 5, so the next failure (6) is the first blocked
        // one again; after eight periods one more failure is free.
        var afterSeven = penalties
        #expect(afterSeven.recordFailure(Self.guesser, now: Self.start + period * 7) == .seconds(2))
        var afterEight = penalties
        #expect(afterEight.recordFailure(Self.guesser, now: Self.start + period * 8) == nil)
        // Twelve periods forget it entirely.
        #expect(penalties.level(of: Self.guesser, now: Self.start + period * 12) == 0)
    }

    /// Querying often must not slow the decay: the part of a period already waited counts.
    @Test func decayKeepsTheRemainderOfAPeriod() {
        var penalties = SourcePenalties()
        let period = penalties.policy.forgiveOneFailureEvery
        for _ in 0..<3 { penalties.recordFailure(Self.guesser, now: Self.start) }
        // A failure at 1.5 periods: one forgiven (level 2 + 1 = 3); the half period carries.
        penalties.recordFailure(Self.guesser, now: Self.start + period + .nanoseconds(period.nanoseconds / 2))
        #expect(penalties.level(of: Self.guesser, now: Self.start + period * 2 - .nanoseconds(1)) == 3)
        #expect(penalties.level(of: Self.guesser, now: Self.start + period * 2) == 2)
    }

    /// Property: a single source that tries whenever it may gets 17 checked guesses in
    /// its first hour, at most 90 in its first day, and then about one per forgiveness
    /// period (3 an hour), never more (the numbers in OPERATIONS.md "Abuse resistance").
    @Test func aGreedyGuesserFromOneSourceGetsFewGuesses() {
        var penalties = SourcePenalties()
        let attempts = Self.greedyAttempts(&penalties, source: Self.guesser, from: Self.start, until: Self.start + .hours(24 * 7))
        let firstHour = attempts.count(where: { $0 < Self.start + .hours(1) })
        let firstDay = attempts.count(where: { $0 < Self.start + .hours(24) })
        #expect(firstHour == 17)
        #expect(firstDay <= 90)
        // In any later day, no more than one guess per forgiveness period (72).
        for day in 1..<7 {
            let from = Self.start + .hours(24 * Int64(day))
            let inDay = attempts.count(where: { $0 >= from && $0 < from + .hours(24) })
            #expect(inDay <= 75, "day \(day + 1): \(inDay)")
        }
    }

    /// Property: honest users behind one address who mistype about once an hour, at
    /// random, for months, are never blocked for more than a few seconds.
    @Test(arguments: [UInt64(11), 12, 13])
    func occasionalTyposNeverBlockLong(seed: UInt64) {
        var generator = SeededRandom(seed: seed)
        var penalties = SourcePenalties()
        var now = Self.start
        var longest = TimeAmount.zero
        for _ in 0..<3000 {
            now = now + .seconds(Int64.random(in: 1...7200, using: &generator))
            longest = max(longest, penalties.recordFailure(Self.guesser, now: now) ?? .zero)
        }
        #expect(longest <= .seconds(4))
    }

    /// The trade-off, shown: a shared address whose users fail far more often than one
    /// failure is forgiven (here 6 an hour) does climb to blocks of a quarter hour.
    @Test func failingFasterThanForgivenClimbs() {
        var penalties = SourcePenalties()
        var longest = TimeAmount.zero
        for index in 0..<60 {
            let now = Self.start + .minutes(Int64(index) * 10)
            if penalties.retryAfter(Self.guesser, now: now) == nil {
                longest = max(longest, penalties.recordFailure(Self.guesser, now: now) ?? .zero)
            }
        }
        #expect(longest >= .minutes(15))
    }

    @Test func pruneForgetsSourcesOnceBlocksEndAndLevelsDecay() {
        var penalties = SourcePenalties()
        let period = penalties.policy.forgiveOneFailureEvery
        penalties.recordFailure(Self.other, now: Self.start)
        for _ in 0..<30 { penalties.recordFailure(Self.guesser, now: Self.start) }
        #expect(penalties.trackedSources == 2)
        penalties.prune(now: Self.start + period - .nanoseconds(1))
        #expect(penalties.trackedSources == 2)
        penalties.prune(now: Self.start + period)
        #expect(penalties.trackedSources == 1, "one failure is forgotten after one period")
        // The guesser's level decays to zero after 30 periods; its 4 h block ended long before.
        penalties.prune(now: Self.start + period * 30 - .nanoseconds(1))
        #expect(penalties.trackedSources == 1)
        penalties.prune(now: Self.start + period * 30)
        #expect(penalties.trackedSources == 0)
        #expect(penalties.retryAfter(Self.guesser, now: Self.start + period * 30) == nil)
    }

    /// A block outlasting the decay keeps the entry until the block ends.
    @Test func pruneKeepsABlockedSource() {
        var penalties = SourcePenalties(policy: .init(freeFailures: 0, firstBlock: .hours(3), forgiveOneFailureEvery: .minutes(1)))
        penalties.recordFailure(Self.guesser, now: Self.start)
        penalties.prune(now: Self.start + .hours(2))
        #expect(penalties.trackedSources == 1)
        #expect(penalties.retryAfter(Self.guesser, now: Self.start + .hours(2)) == .hours(1))
        penalties.prune(now: Self.start + .hours(3))
        #expect(penalties.trackedSources == 0)
    }

    /// Flooding the table with fresh sources cannot wash out the penalty of a source that
    /// is blocked: the least penalised are forgotten first.
    @Test func theTableIsBoundedAndKeepsTheWorstSources() {
        var penalties = SourcePenalties(policy: .init(maximumTrackedSources: 100))
        for _ in 0..<20 { penalties.recordFailure(Self.guesser, now: Self.start) }
        for index in 0..<1000 {
            let source = SourceKey(ipAddress: "2001:db8:\(String(index, radix: 16))::1")!
            penalties.recordFailure(source, now: Self.start + .seconds(Int64(index)))
            #expect(penalties.trackedSources <= 100)
        }
        #expect(penalties.retryAfter(Self.guesser, now: Self.start + .seconds(1000)) != nil)
        #expect(penalties.level(of: Self.guesser, now: Self.start + .seconds(1000)) == 20)
    }

    /// A first block long enough to overflow TimeAmount when doubled 40 times is capped
    /// before it is multiplied (the same trap the old throttle had).
    @Test func longBlocksAreCappedWithoutOverflow() {
        var penalties = SourcePenalties(policy: .init(freeFailures: 0, firstBlock: .hours(1), maximumBlock: .hours(24 * 365)))
        var last: TimeAmount?
        for _ in 0..<200 { last = penalties.recordFailure(Self.guesser, now: Self.start) }
        #expect(last == .hours(24 * 365))
    }
}

/// The cluster's shared record of a source follows the same rule as one node's memory of
/// it (``SourcePenalties/afterFailure(_:now:policy:)``), on the wall clock.
@Suite struct SharedSourcePenaltyTests {
    @Test(arguments: [UInt64(1), 2, 3, 4]) func theSharedRecordBlocksAsOneNodeWould(seed: UInt64) {
        var random = SeededRandom(seed: seed)
        let policy = SourcePenalties.Policy()
        var local = SourcePenalties(policy: policy)
        let startDeadline = NIODeadline.uptimeNanoseconds(1_000_000_000_000)
        let startDate = Date(timeIntervalSince1970: 1_800_000_000)
        var record: SourcePenaltyRecord?
        var elapsed: Int64 = 0
        let source = SourceKey(nil)
        for _ in 0..<60 {
            // Bursts and pauses: from a second to two hours between failures.
            elapsed += Int64(random.int(1...7200))
            let deadline = startDeadline + .seconds(elapsed)
            let date = startDate.addingTimeInterval(TimeInterval(elapsed))
            local.recordFailure(source, now: deadline)
            record = SourcePenalties.afterFailure(record, now: date, policy: policy)
            #expect(record?.level == local.level(of: source, now: deadline))
            let localWait = local.retryAfter(source, now: deadline).map { $0.nanoseconds / 1_000_000_000 } ?? 0
            let sharedWait = Int64(max(0, (record?.blockedUntil.timeIntervalSince(date) ?? 0).rounded()))
            #expect(localWait == sharedWait)
        }
    }
}
