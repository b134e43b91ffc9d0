public import Foundation

/// How long records are kept (DESIGN.md "Usage history and the retention rule"): usage
/// history one year after the session ends, the access log three months, by default.
///
/// Periods are calendar months on the UTC calendar. A record that ended at `E` is kept
/// while `now < expiry(E)`, where `expiry(E)` is the same day and time `months` later; a
/// day that month lacks (29–31 February, 31 April, …) expires at the start of the next
/// month, so no record is ever kept less than its full period. Feb 29 2024 12:00 expires
/// on Mar 1 2025 00:00; Mar 1 2024 12:00 on Mar 1 2025 12:00.
///
/// Pure value type: the caller passes the time, and ``cutoff(months:now:)`` turns the
/// rule into the bound a database query needs.
public struct RetentionPolicy: Sendable, Hashable {
    /// Usage history, in months after the session ended (12: one year).
    public var usageMonths: Int
    /// Access-log entries, in months after the event (3).
    public var accessLogMonths: Int

    public init(usageMonths: Int = 12, accessLogMonths: Int = 3) {
        self.usageMonths = usageMonths
        self.accessLogMonths = accessLogMonths
    }

    public static let `default` = RetentionPolicy()

    /// Checks the periods; the error says what to change.
    public func validate() throws {
        guard (1...1200).contains(self.usageMonths) else {
            throw StoreError(.invalidInput, "usage_retention_months must be 1…1200 (12 is the one-year rule), got \(self.usageMonths)")
        }
        guard (1...1200).contains(self.accessLogMonths) else {
            throw StoreError(.invalidInput, "access_log_retention_months must be 1…1200 (3 is the three-month rule), got \(self.accessLogMonths)")
        }
    }

    /// Records that ended before this instant are past the usage-history retention.
    public func usageCutoff(now: Date) -> Milliseconds { Self.cutoff(months: self.usageMonths, now: now.milliseconds) }

    /// Access-log entries from before this instant are past retention.
    public func accessLogCutoff(now: Date) -> Milliseconds { Self.cutoff(months: self.accessLogMonths, now: now.milliseconds) }

    /// When a record that ended at `ended` is past a `months` retention.
    public static func expiry(of ended: Milliseconds, months: Int) -> Milliseconds {
        let parts = Civil(ended)
        let (year, month) = Self.addMonths(parts.year, parts.month, months)
        if parts.day <= Self.daysIn(year, month) {
            return Civil(year: year, month: month, day: parts.day, millisecondOfDay: parts.millisecondOfDay).milliseconds
        }
        // That day does not exist in the target month: expire when the month is over.
        let (nextYear, nextMonth) = Self.addMonths(year, month, 1)
        return Civil(year: nextYear, month: nextMonth, day: 1, millisecondOfDay: 0).milliseconds
    }

    /// The exclusive bound: a record that ended at `E` is past retention at `now` exactly
    /// when `E < cutoff(months:now:)`, i.e. when `expiry(of: E) <= now`.
    public static func cutoff(months: Int, now: Milliseconds) -> Milliseconds {
        let parts = Civil(now)
        let (year, month) = Self.addMonths(parts.year, parts.month, -months)
        if parts.day <= Self.daysIn(year, month) {
            // Everything that ended at or before the same instant `months` ago.
            return Civil(year: year, month: month, day: parts.day, millisecondOfDay: parts.millisecondOfDay).milliseconds + 1
        }
        // Today has no counterpart then (e.g. Feb 29 now, Feb 28 a year ago): the whole
        // month `months` ago has expired, and nothing after it.
        let (nextYear, nextMonth) = Self.addMonths(year, month, 1)
        return Civil(year: nextYear, month: nextMonth, day: 1, millisecondOfDay: 0).milliseconds
    }

    static func addMonths(_ year: Int, _ month: Int, _ delta: Int) -> (Int, Int) {
        let index = year * 12 + (month - 1) + delta
        let y = index >= 0 ? index / 12 : (index - 11) / 12
        return (y, index - y * 12 + 1)
    }

    static func daysIn(_ year: Int, _ month: Int) -> Int {
        switch month {
        case 2: (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }
}

/// A UTC calendar date and time of day in milliseconds, with exact integer conversion
/// (Howard Hinnant's days-from-civil algorithm): no floating point, no Foundation calendar.
struct Civil: Hashable {
    var year: Int
    var month: Int
    var day: Int
    var millisecondOfDay: Int64

    static let millisecondsPerDay: Int64 = 86_400_000

    init(year: Int, month: Int, day: Int, millisecondOfDay: Int64) {
        self.year = year
        self.month = month
        self.day = day
        self.millisecondOfDay = millisecondOfDay
    }

    init(_ milliseconds: Milliseconds) {
        var days = milliseconds / Self.millisecondsPerDay
        var rest = milliseconds % Self.millisecondsPerDay
        if rest < 0 {
            rest += Self.millisecondsPerDay
            days -= 1
        }
        let (y, m, d) = Self.civil(fromDays: days)
        self.init(year: y, month: m, day: d, millisecondOfDay: rest)
    }

    var milliseconds: Milliseconds {
        Self.days(year: self.year, month: self.month, day: self.day) * Self.millisecondsPerDay + self.millisecondOfDay
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date.
    static func days(year: Int, month: Int, day: Int) -> Int64 {
        let y = Int64(month <= 2 ? year - 1 : year)
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let m = Int64(month)
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + Int64(day) - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func civil(fromDays value: Int64) -> (Int, Int, Int) {
        let z = value + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        return (Int(y), Int(m), Int(d))
    }
}
