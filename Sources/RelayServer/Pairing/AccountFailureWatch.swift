import NIOCore

/// Counts failed authentications per account an attempt claims (`engineer:ID`,
/// `host:ID`), to raise an alert, never to block (issue 10 item 11).
///
/// Blocking by account would let anyone who knows an engineer id or host id lock its
/// owner out with wrong secrets; the penalties fall on the sources instead
/// (``SourcePenalties``). What stays per account is a signal for the operator: when an
/// account's failures within `window` reach `alertThreshold`, and again each time they
/// double, and at least once a window while they stay at the threshold,
/// ``recordFailure(_:now:)`` returns an ``Alert`` to log.
///
/// Memory: at most `maximumTrackedAccounts` entries (a guesser can claim any number of
/// made-up ids); ``prune(now:)`` drops accounts without a failure in the last `window`.
/// Pure value type, time passed in.
struct AccountFailureWatch: Sendable {
    struct Policy: Sendable, Equatable {
        /// Failures of one account within `window` that raise the first alert.
        var alertThreshold = 10
        /// How far back failures count.
        var window = TimeAmount.hours(1)
        /// The most accounts tracked at once; past it the quietest are forgotten.
        var maximumTrackedAccounts = 10_000
        /// Claimed ids are cut to this many characters: ids on the wire are untrusted.
        var maximumKeyLength = 80
    }

    /// An account reached a number of failures worth telling the operator about.
    struct Alert: Sendable, Equatable, CustomStringConvertible {
        let account: String
        /// Failures within the window, this one included (counted up to four times the
        /// threshold).
        let failures: Int
        let window: TimeAmount

        var description: String {
            "\(self.account): \(self.failures) failed authentications in the last \(self.window.nanoseconds / 60_000_000_000) min "
                + "from any source; the account is not locked (its sources are throttled), see the access log"
        }
    }

    private struct Entry: Sendable {
        /// Failures in the current window, oldest first; at most four times the threshold
        /// are kept (see ``recordFailure(_:now:)``).
        var failures: [NIODeadline]
        /// The count at which the next alert is due.
        var nextAlert: Int
        /// When the last alert was raised: a lasting attack is reported once a window.
        var lastAlert: NIODeadline?
    }

    let policy: Policy
    private var entries: [String: Entry] = [:]

    init(policy: Policy = Policy()) {
        self.policy = policy
    }

    /// Records a failure claimed for `account`; returns an alert when it reaches the
    /// threshold or a doubling of it within the window.
    @discardableResult
    mutating func recordFailure(_ account: String, now: NIODeadline) -> Alert? {
        let key = String(account.prefix(self.policy.maximumKeyLength))
        let threshold = max(1, self.policy.alertThreshold)
        var entry = self.entries[key] ?? Entry(failures: [], nextAlert: threshold)
        entry.failures.removeAll { now - $0 >= self.policy.window }
        if entry.failures.isEmpty {
            entry.nextAlert = threshold
        }
        entry.failures.append(now)
        var alert: Alert?
        let rearmed = entry.failures.count >= threshold && entry.lastAlert.map { now - $0 >= self.policy.window } ?? false
        if entry.failures.count >= entry.nextAlert || rearmed {
            alert = Alert(account: key, failures: entry.failures.count, window: self.policy.window)
            entry.nextAlert = entry.failures.count * 2
            entry.lastAlert = now
        }
        // Keep the timestamps bounded: past this many, dropping the oldest only makes the
        // count (for alerts, not blocks) an undercount of an already loud account.
        let cap = 4 * threshold
        if entry.failures.count > cap {
            entry.failures.removeFirst(entry.failures.count - cap)
        }
        if self.entries[key] == nil, self.entries.count >= self.policy.maximumTrackedAccounts {
            self.makeRoom(now: now)
        }
        self.entries[key] = entry
        return alert
    }

    /// Failures of `account` within the window.
    func failures(of account: String, now: NIODeadline) -> Int {
        self.entries[String(account.prefix(self.policy.maximumKeyLength))]?.failures.count(where: { now - $0 < self.policy.window }) ?? 0
    }

    /// Forgets accounts without a failure in the last window.
    mutating func prune(now: NIODeadline) {
        self.entries = self.entries.filter { _, entry in
            entry.failures.contains { now - $0 < self.policy.window }
        }
    }

    var trackedAccounts: Int { self.entries.count }

    /// The table is full: prune, then forget the tenth with the fewest recent failures.
    private mutating func makeRoom(now: NIODeadline) {
        self.prune(now: now)
        let limit = self.policy.maximumTrackedAccounts
        guard self.entries.count >= limit else { return }
        let keep = max(0, limit - max(1, limit / 10))
        let ranked = self.entries.sorted { $0.value.failures.count > $1.value.failures.count }
        self.entries = Dictionary(uniqueKeysWithValues: ranked.prefix(keep).map { ($0.key, $0.value) })
    }
}
