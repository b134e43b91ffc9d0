public import Foundation

/// The time zone an export reads its dates in and prints its times in: an IANA name
/// (`Asia/Seoul`), `UTC`, or a fixed offset (`+09:00`).
public struct ExportTimeZone: Sendable, Hashable, CustomStringConvertible {
    public let timeZone: TimeZone
    public let description: String

    public static let utc = ExportTimeZone(timeZone: TimeZone(identifier: "UTC")!, description: "UTC")

    init(timeZone: TimeZone, description: String) {
        self.timeZone = timeZone
        self.description = description
    }

    /// Parses `UTC`, `Z`, `±HH:MM`, `±HHMM`, `±HH` or an IANA name such as `Asia/Seoul`.
    public init(parsing text: String) throws {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if trimmed == "UTC" || trimmed == "Z" || trimmed == "utc" {
            self = .utc
            return
        }
        if let first = trimmed.first, first == "+" || first == "-" {
            guard let seconds = Self.offsetSeconds(Substring(trimmed)), let zone = TimeZone(secondsFromGMT: seconds) else {
                throw StoreError(
                    .invalidInput, "time zone \"\(text)\" is not a valid offset; write it as +09:00 or -05:00 (hours 00–18), or use a name such as Asia/Seoul")
            }
            self.init(timeZone: zone, description: trimmed)
            return
        }
        // TimeZone(identifier:) also accepts abbreviations like "KST"; only names with a
        // region are unambiguous, but UTC-like names are fine too.
        guard !trimmed.isEmpty, let zone = TimeZone(identifier: trimmed) else {
            throw StoreError(
                .invalidInput, "unknown time zone \"\(text)\"; use an IANA name such as Asia/Seoul or Europe/Berlin, UTC, or an offset such as +09:00")
        }
        self.init(timeZone: zone, description: trimmed)
    }

    /// `+09:00` → 32400; nil when malformed.
    static func offsetSeconds(_ text: Substring) -> Int? {
        guard let sign = text.first, sign == "+" || sign == "-" else { return nil }
        let digits = text.dropFirst().filter { $0 != ":" }
        guard digits.count == 2 || digits.count == 4, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        // With a colon, it must sit between hours and minutes.
        if text.contains(":") && !(text.count == 6 && text[text.index(text.startIndex, offsetBy: 3)] == ":") { return nil }
        let hours = Int(digits.prefix(2))!
        let minutes = digits.count == 4 ? Int(digits.suffix(2))! : 0
        guard hours <= 18, minutes < 60 else { return nil }
        let seconds = hours * 3600 + minutes * 60
        return sign == "-" ? -seconds : seconds
    }

    /// The offset from UTC in force at `instant`, in seconds.
    public func offset(at instant: Milliseconds) -> Int {
        self.timeZone.secondsFromGMT(for: Date(milliseconds: instant))
    }
}

/// The sessions an export covers: those that started at or after `from` and before `to`.
public struct ExportRange: Sendable, Hashable {
    /// Inclusive.
    public var from: Milliseconds
    /// Exclusive.
    public var to: Milliseconds

    public init(from: Milliseconds, to: Milliseconds) {
        self.from = from
        self.to = to
    }

    /// `from=2026-11-01T00:00:00Z to=2026-12-01T00:00:00Z`: the range as an audit entry's
    /// detail gives it, in UTC, readable by a person (an unbounded end stays a number).
    public var auditText: String {
        var formatter = TimestampFormatter(timeZone: .utc)
        func text(_ instant: Milliseconds) -> String {
            // Years 1…9999 only; the command line's "everything" range is Int64's bounds.
            (-62_135_596_800_000...253_402_300_799_999).contains(instant) ? formatter.format(instant) : String(instant)
        }
        return "from=\(text(self.from)) to=\(text(self.to))"
    }

    /// Parses the two ends as an admin writes them (OPERATIONS.md "Export"):
    ///
    /// - a date, `2026-11-01`: midnight at the start of that day in `timeZone`; as the end
    ///   of the range a date is inclusive (`--to 2026-11-30` covers all of 30 November);
    /// - a date and time, `2026-11-01T09:30[:00[.000]]`, in `timeZone`, or with its own
    ///   offset (`Z`, `+09:00`); as the end of the range it is exclusive.
    ///
    /// `fromName`/`toName` name the parameters in error messages (`--from` or `from`).
    public static func parse(from: String, to: String, timeZone: ExportTimeZone, fromName: String = "--from", toName: String = "--to") throws -> ExportRange {
        let start = try Self.instant(from, timeZone: timeZone, name: fromName, endOfRange: false)
        let end = try Self.instant(to, timeZone: timeZone, name: toName, endOfRange: true)
        guard start < end else {
            throw StoreError(
                .invalidInput,
                "\(fromName) \(from) is not before \(toName) \(to): the range is empty; give an earlier \(fromName) or a later \(toName) (a date as \(toName) includes that whole day)"
            )
        }
        return ExportRange(from: start, to: end)
    }

    static let format = "write YYYY-MM-DD, or YYYY-MM-DDTHH:MM[:SS] with an optional Z or ±HH:MM offset"

    static func instant(_ text: String, timeZone: ExportTimeZone, name: String, endOfRange: Bool) throws -> Milliseconds {
        let bytes = Array(text.trimmingCharacters(in: .whitespaces).utf8)
        func number(_ range: Range<Int>) -> Int? {
            guard range.upperBound <= bytes.count else { return nil }
            var value = 0
            for byte in bytes[range] {
                guard (0x30...0x39).contains(byte) else { return nil }
                value = value * 10 + Int(byte - 0x30)
            }
            return value
        }
        func invalid(_ why: String = "") -> StoreError {
            StoreError(.invalidInput, "\(name) \"\(text)\" is not a valid date\(why); \(Self.format)")
        }
        guard bytes.count >= 10, let year = number(0..<4), bytes[4] == 0x2D, let month = number(5..<7), bytes[7] == 0x2D, let day = number(8..<10) else {
            throw invalid()
        }
        guard (1970...9999).contains(year), (1...12).contains(month), (1...RetentionPolicy.daysIn(year, month)).contains(day) else {
            throw invalid(" (no such day)")
        }
        if bytes.count == 10 {
            // A date: its midnight, or as the end of a range the next day's midnight.
            var (y, m, d) = (year, month, day)
            if endOfRange { (y, m, d) = Civil.civil(fromDays: Civil.days(year: year, month: month, day: day) + 1) }
            return Self.localMidnight(year: y, month: m, day: d, timeZone: timeZone)
        }
        guard bytes[10] == 0x54 || bytes[10] == 0x74 || bytes[10] == 0x20, let hour = number(11..<13), bytes.count >= 16, bytes[13] == 0x3A,
            let minute = number(14..<16)
        else {
            throw invalid()
        }
        var index = 16
        var second = 0
        var millisecond = 0
        if index < bytes.count, bytes[index] == 0x3A {
            guard let value = number(17..<19) else { throw invalid() }
            second = value
            index = 19
            if index < bytes.count, bytes[index] == 0x2E {
                var end = index + 1
                while end < bytes.count, (0x30...0x39).contains(bytes[end]) { end += 1 }
                guard end > index + 1, let fraction = number(index + 1..<min(end, index + 4)) else { throw invalid() }
                millisecond = fraction * [100, 10, 1][min(end, index + 4) - index - 2]
                index = end
            }
        }
        guard hour < 24, minute < 60, second < 60 else { throw invalid(" (no such time)") }
        let rest = String(decoding: bytes[index...], as: UTF8.self)
        let offset: Int?
        if rest.isEmpty {
            offset = nil
        } else if rest == "Z" || rest == "z" {
            offset = 0
        } else if let seconds = ExportTimeZone.offsetSeconds(Substring(rest)) {
            offset = seconds
        } else {
            throw invalid(" (bad offset \"\(rest)\")")
        }
        let millisecondOfDay = Int64(((hour * 60 + minute) * 60 + second) * 1000 + millisecond)
        let wall = Civil(year: year, month: month, day: day, millisecondOfDay: millisecondOfDay).milliseconds
        if let offset { return wall - Int64(offset) * 1000 }
        return Self.local(wall: wall, timeZone: timeZone)
    }

    static func localMidnight(year: Int, month: Int, day: Int, timeZone: ExportTimeZone) -> Milliseconds {
        Self.local(wall: Civil(year: year, month: month, day: day, millisecondOfDay: 0).milliseconds, timeZone: timeZone)
    }

    /// The instant whose wall-clock time in `timeZone` is `wall` (wall time written as if
    /// UTC). A wall time that occurs twice (clocks turned back) is the earlier instant; one
    /// that never occurs (clocks turned forward) is read with the offset before the gap,
    /// which lands just after the gap (02:30 in New York's March gap is 03:30 EDT).
    static func local(wall: Milliseconds, timeZone: ExportTimeZone) -> Milliseconds {
        // Try both offsets around the instant; keep the earliest that maps back to `wall`.
        let first = wall - Int64(timeZone.offset(at: wall)) * 1000
        let candidates = [
            wall - Int64(timeZone.offset(at: first - 86_400_000)) * 1000,
            first,
            wall - Int64(timeZone.offset(at: first)) * 1000,
            wall - Int64(timeZone.offset(at: first + 86_400_000)) * 1000,
        ]
        let exact = candidates.filter { $0 + Int64(timeZone.offset(at: $0)) * 1000 == wall }
        if let earliest = exact.min() { return earliest }
        // A gap: no instant shows this wall time.
        return candidates.max()!
    }
}
