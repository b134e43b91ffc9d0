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
struct AuthThrottle: Sendable {
    struct Policy: Sendable {
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

    let policy: Policy
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

    /// Forgets what no longer matters — sources without a block or an unforgiven
    /// failure, accounts without a recent failure — so memory stays bounded; run every
    /// second or so.
    mutating func prune(now: NIODeadline) {
        self.sources.prune(now: now)
        self.accounts.prune(now: now)
    }

    /// Sources and accounts tracked by the source API.
    var trackedSources: Int { self.sources.trackedSources }
    var trackedAccounts: Int { self.accounts.trackedAccounts }
}
