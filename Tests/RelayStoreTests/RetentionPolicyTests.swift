import Foundation
import RelayStore
import RelayTestSupport
import Testing

/// The retention rule (DESIGN.md): exact one-year boundaries, leap days, months of
/// different lengths, and time zones — pure arithmetic on milliseconds since 1970 UTC.
@Suite struct RetentionPolicyTests {
    /// Milliseconds of an ISO 8601 time with an offset (short, for the tables below).
    static func ms(_ text: String) -> Milliseconds { StoreFixture.milliseconds(text) }

    static func expired(ended: String, now: String, months: Int = 12) -> Bool {
        Self.ms(ended) < RetentionPolicy.cutoff(months: months, now: Self.ms(now))
    }

    @Test func exactlyOneYearAfterTheEnd() {
        // Kept until the very millisecond one year later; gone at it.
        #expect(!Self.expired(ended: "2025-06-15T10:20:30.000Z", now: "2026-06-15T10:20:29.999Z"))
        #expect(Self.expired(ended: "2025-06-15T10:20:30.000Z", now: "2026-06-15T10:20:30.000Z"))
        #expect(RetentionPolicy.expiry(of: Self.ms("2025-06-15T10:20:30.000Z"), months: 12) == Self.ms("2026-06-15T10:20:30.000Z"))
        // A leap year in between does not shorten or lengthen the calendar year.
        #expect(RetentionPolicy.expiry(of: Self.ms("2023-03-01T00:00:00Z"), months: 12) == Self.ms("2024-03-01T00:00:00Z"))
        #expect(!Self.expired(ended: "2023-03-01T00:00:00Z", now: "2024-02-29T23:59:59.999Z"))
    }

    @Test func leapDayRecordsAreKeptAFullYear() {
        // Feb 29 has no counterpart in 2025: the record goes when 28 February 2025 is over.
        let ended = Self.ms("2024-02-29T12:00:00Z")
        #expect(RetentionPolicy.expiry(of: ended, months: 12) == Self.ms("2025-03-01T00:00:00Z"))
        #expect(!Self.expired(ended: "2024-02-29T12:00:00Z", now: "2025-02-28T23:59:59.999Z"))
        #expect(Self.expired(ended: "2024-02-29T12:00:00Z", now: "2025-03-01T00:00:00Z"))
        // On Feb 29 itself, everything up to the end of Feb 28 a year before has expired.
        #expect(RetentionPolicy.cutoff(months: 12, now: Self.ms("2028-02-29T06:00:00Z")) == Self.ms("2027-03-01T00:00:00Z"))
        #expect(Self.expired(ended: "2027-02-28T23:59:59.999Z", now: "2028-02-29T00:00:00Z"))
        #expect(!Self.expired(ended: "2027-03-01T00:00:00Z", now: "2028-02-29T23:59:59.999Z"))
        // Four years on, Feb 29 exists again.
        #expect(RetentionPolicy.expiry(of: ended, months: 48) == Self.ms("2028-02-29T12:00:00Z"))
    }

    @Test func threeMonthsForTheAccessLog() {
        #expect(RetentionPolicy.expiry(of: Self.ms("2026-05-31T08:00:00Z"), months: 3) == Self.ms("2026-08-31T08:00:00Z"))
        // 30 November + 3 months: there is no 30 February.
        #expect(RetentionPolicy.expiry(of: Self.ms("2025-11-30T08:00:00Z"), months: 3) == Self.ms("2026-03-01T00:00:00Z"))
        let policy = RetentionPolicy()
        let now = Date(milliseconds: Self.ms("2026-05-31T10:00:00Z"))
        #expect(policy.accessLogCutoff(now: now) == Self.ms("2026-03-01T00:00:00Z"))
        #expect(policy.usageCutoff(now: now) == Self.ms("2025-05-31T10:00:00.001Z"))
    }

    @Test func theSameInstantWhateverTheZoneItWasWrittenIn() {
        // 23:30 on New Year's Eve in Seoul is 14:30 UTC: the year runs from the instant.
        let seoul = Self.ms("2025-12-31T23:30:00+09:00")
        #expect(seoul == Self.ms("2025-12-31T14:30:00Z"))
        #expect(RetentionPolicy.expiry(of: seoul, months: 12) == Self.ms("2026-12-31T14:30:00Z"))
        #expect(!Self.expired(ended: "2025-12-31T23:30:00+09:00", now: "2026-12-31T23:29:59+09:00"))
        #expect(Self.expired(ended: "2025-12-31T23:30:00+09:00", now: "2026-12-31T23:30:00+09:00"))
        // New York's clocks change in between; the rule does not move with them.
        #expect(!Self.expired(ended: "2025-07-01T12:00:00-04:00", now: "2026-07-01T11:59:59-04:00"))
        #expect(Self.expired(ended: "2025-07-01T12:00:00-04:00", now: "2026-07-01T12:00:00-04:00"))
    }

    /// For any end time and any now, "before the cutoff" is exactly "expiry has passed":
    /// the query bound and the rule never disagree, leap days and month ends included.
    @Test(arguments: [1, 3, 12, 13, 24])
    func cutoffAgreesWithExpiry(months: Int) {
        var generator = SeededRandom(seed: UInt64(months) * 7919)
        let start = Self.ms("2023-01-01T00:00:00Z")
        let span: Milliseconds = 6 * 366 * 86_400_000
        for _ in 0..<20_000 {
            let ended = start + Milliseconds.random(in: 0..<span, using: &generator)
            // Near the expiry often, to hit the boundary.
            let expiry = RetentionPolicy.expiry(of: ended, months: months)
            let now =
                Bool.random(using: &generator)
                ? expiry + Milliseconds.random(in: -2...2, using: &generator)
                : start + Milliseconds.random(in: 0..<span, using: &generator)
            let cutoff = RetentionPolicy.cutoff(months: months, now: now)
            #expect((ended < cutoff) == (expiry <= now), "ended \(ended) now \(now) months \(months)")
            // Never kept less than the period's shortest possible length.
            #expect(expiry - ended >= Milliseconds(months) * 28 * 86_400_000)
        }
    }

    @Test func rejectsNonsenseSettings() {
        #expect(storeErrorKind { try RetentionPolicy(usageMonths: 0).validate() } == .invalidInput)
        #expect(storeErrorKind { try RetentionPolicy(accessLogMonths: -3).validate() } == .invalidInput)
        #expect(throws: Never.self) { try RetentionPolicy.default.validate() }
    }
}
