import NIOCore
import Testing

@testable import RelayServer

// AccountFailureWatch only ever alerts; it is pure and driven with explicit deadlines.
@Suite struct AccountFailureWatchTests {
    private static let start = NIODeadline.uptimeNanoseconds(1_000_000_000_000)

    private static func at(_ seconds: Int64) -> NIODeadline { Self.start + .seconds(seconds) }

    @Test func alertsAtTheThresholdAndAtEachDoubling() {
        var watch = AccountFailureWatch()
        var alerts: [Int] = []
        for index in 0..<45 {
            if let alert = watch.recordFailure("engineer:en-kim", now: Self.at(Int64(index))) {
                #expect(alert.account == "engineer:en-kim")
                #expect(alert.window == .hours(1))
                alerts.append(alert.failures)
            }
        }
        #expect(alerts == [10, 20, 40])
        #expect(watch.failures(of: "engineer:en-kim", now: Self.at(45)) == 40, "counted up to four times the threshold")
        #expect(watch.failures(of: "engineer:en-lee", now: Self.at(45)) == 0)
    }

    @Test func aLastingAttackIsReportedOnceAWindow() {
        var watch = AccountFailureWatch()
        var alertTimes: [Int64] = []
        // One failure a minute for five hours.
        for minute in Int64(0)..<300 {
            if watch.recordFailure("host:ho-pc17", now: Self.at(minute * 60)) != nil { alertTimes.append(minute) }
        }
        // At the 10th, 20th and 40th failure, then once an hour after the last alert.
        #expect(alertTimes.prefix(3) == [9, 19, 39])
        #expect(alertTimes.dropFirst(3) == [99, 159, 219, 279])
    }

    @Test func failuresOlderThanTheWindowDoNotCount() {
        var watch = AccountFailureWatch()
        for index in 0..<9 { watch.recordFailure("engineer:en-kim", now: Self.at(Int64(index))) }
        // The tenth comes after the first has aged out: nine in the window, no alert.
        #expect(watch.recordFailure("engineer:en-kim", now: Self.at(0) + .hours(1)) == nil)
        #expect(watch.failures(of: "engineer:en-kim", now: Self.at(0) + .hours(1)) == 9)
        // Another half a second later: failures at 1…8 s, at 1 h and now make ten.
        #expect(watch.recordFailure("engineer:en-kim", now: Self.at(0) + .hours(1) + .milliseconds(500))?.failures == 10)
    }

    @Test func longClaimedIdsAreCut() {
        var watch = AccountFailureWatch(policy: .init(alertThreshold: 1))
        let long = "engineer:" + String(repeating: "x", count: 10_000)
        #expect(watch.recordFailure(long, now: Self.start)?.account.count == 80)
        #expect(watch.failures(of: long, now: Self.start) == 1)
    }

    @Test func memoryIsBoundedAndPruneEmptiesIt() {
        var watch = AccountFailureWatch(policy: .init(maximumTrackedAccounts: 500))
        for _ in 0..<30 { watch.recordFailure("engineer:en-kim", now: Self.start) }
        for index in 0..<5000 {
            watch.recordFailure("engineer:made-up-\(index)", now: Self.start + .milliseconds(Int64(index)))
            #expect(watch.trackedAccounts <= 500)
        }
        // The account under attack is the one kept.
        #expect(watch.failures(of: "engineer:en-kim", now: Self.at(10)) == 30)
        watch.prune(now: Self.at(10) + .hours(1) - .seconds(10) - .nanoseconds(1))
        #expect(watch.trackedAccounts > 0)
        watch.prune(now: Self.at(10) + .hours(1))
        #expect(watch.trackedAccounts == 0)
    }
}
