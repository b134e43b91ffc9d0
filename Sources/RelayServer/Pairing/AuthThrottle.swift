import NIOCore

/// Throttles failed authentication — engineer tokens, host secrets, support codes — by
/// penalising the source, never the account (DESIGN.md "Pairing", OPERATIONS.md "Abuse
/// resistance", PROTOCOL.md §8.5).
///
/// Before checking a credential, the relay asks ``retryAfter(source:now:)``; after a
/// wrong one it calls ``recordFailure(source:account:now:)``. Sources (an IPv4 address or
/// an IPv6 /64) get growing, lasting blocks (``SourcePenalties``). The account an attempt
/// claims only feeds an alert (``AccountFailureWatch``): wrong tokens for an engineer id
/// from other addresses never keep its owner's right token, from a clean source, out.
/// Pure value type: the caller passes the time.
///
/// The String-keyed API below (`retryAfter(_:now:)`, `recordFailure(_:now:)`,
/// `recordSuccess(_:)`, `trackedKeys` and the policy's first four fields) is the old
/// per-key throttle, kept only until its callers move to the source API.
struct AuthThrottle: Sendable {
    struct Policy: Sendable {
        /// Old per-key API only.
        var freeFailures = 5
        /// Old per-key API only.
        var window = TimeAmount.minutes(1)
        /// Old per-key API only.
        var baseDelay = TimeAmount.seconds(2)
        /// Old per-key API only.
        var maximumDelay = TimeAmount.minutes(15)
        /// Penalties per source.
        var sources = SourcePenalties.Policy()
        /// Alerts per claimed account.
        var accounts = AccountFailureWatch.Policy()
    }

    /// What a failure led to.
    struct Verdict: Sendable, Equatable {
        /// The block the failure imposed on its source, if any.
        var sourceBlockedFor: TimeAmount?
        /// Set when the claimed account's failures reached an alerting level: log it.
        var accountAlert: AccountFailureWatch.Alert?
    }

    private struct Entry: Sendable {
        var recentFailures: [NIODeadline] = []
        var blockedUntil: NIODeadline = .uptimeNanoseconds(0)
        var excessFailures = 0
    }

    let policy: Policy
    private var entries: [String: Entry] = [:]
    private(set) var sources: SourcePenalties
    private(set) var accounts: AccountFailureWatch

    init(policy: Policy = Policy()) {
        self.policy = policy
        self.sources = SourcePenalties(policy: policy.sources)
        self.accounts = AccountFailureWatch(policy: policy.accounts)
    }

    // MARK: By source

    /// How long `source` must still wait, or nil when its credential may be checked now.
    /// Only the source counts: the account an attempt names can never be locked.
    func retryAfter(source: SourceKey, now: NIODeadline) -> TimeAmount? {
        self.sources.retryAfter(source, now: now)
    }

    /// Records a wrong credential from `source`. `account` is the account it claimed
    /// (`engineer:ID`, `host:ID`; nil for a support code): it is only counted for alerts.
    @discardableResult
    mutating func recordFailure(source: SourceKey, account: String?, now: NIODeadline) -> Verdict {
        Verdict(
            sourceBlockedFor: self.sources.recordFailure(source, now: now),
            accountAlert: account.flatMap { self.accounts.recordFailure($0, now: now) }
        )
    }

    /// The `Error(rate_limited)` text for an attempt from a blocked source.
    static func blockedMessage(retryAfter wait: TimeAmount, source: SourceKey) -> String {
        let whose = source.isIPv6Prefix ? "your network (\(source))" : "your address"
        return "too many failed attempts from \(whose); the credentials were not checked: retry in \(RetryWait.seconds(wait)) s"
    }

    // MARK: By key (old API)

    /// How long `key` must still wait, or nil when it may try now.
    func retryAfter(_ key: String, now: NIODeadline) -> TimeAmount? {
        guard let entry = self.entries[key], entry.blockedUntil > now else { return nil }
        return entry.blockedUntil - now
    }

    /// Records a failure for each key; returns the longest block now in force, if any.
    @discardableResult
    mutating func recordFailure(_ keys: [String], now: NIODeadline) -> TimeAmount? {
        var longest: TimeAmount?
        for key in keys {
            var entry = self.entries[key] ?? Entry()
            entry.recentFailures.removeAll { now - $0 >= self.policy.window }
            entry.recentFailures.append(now)
            if entry.recentFailures.count > self.policy.freeFailures {
                // Double up to the cap; stop before the multiplication could overflow.
                var delay = self.policy.baseDelay
                for _ in 0..<entry.excessFailures where delay < self.policy.maximumDelay {
                    delay = delay * 2
                }
                delay = min(delay, self.policy.maximumDelay)
                entry.excessFailures += 1
                entry.blockedUntil = now + delay
                longest = max(longest ?? delay, delay)
            }
            self.entries[key] = entry
        }
        return longest
    }

    /// Forgets a key after a success.
    mutating func recordSuccess(_ key: String) {
        self.entries[key] = nil
    }

    /// Forgets what no longer matters — sources without a block or an unforgiven
    /// failure, accounts without a recent failure, old keys quiet for a window and not
    /// blocked — so memory stays bounded; run every second or so.
    mutating func prune(now: NIODeadline) {
        self.entries = self.entries.filter { _, entry in
            entry.blockedUntil > now || entry.recentFailures.contains { now - $0 < self.policy.window }
        }
        self.sources.prune(now: now)
        self.accounts.prune(now: now)
    }

    /// Keys of the old API tracked.
    var trackedKeys: Int { self.entries.count }

    /// Sources and accounts tracked by the source API.
    var trackedSources: Int { self.sources.trackedSources }
    var trackedAccounts: Int { self.accounts.trackedAccounts }
}
