import NIOCore

/// The relay-wide budget of failed support-code redemptions, and the circuit breaker it
/// trips (OPERATIONS.md "Abuse resistance").
///
/// Per-source penalties (``SourcePenalties``) slow one guesser, but an attacker with many
/// addresses (one IPv6 /48 holds 65,536 /64s) gets each source's free failures. What
/// bounds the chance of hitting a live code is this budget: at most `perMinute` failed
/// redemptions in any minute and `perHour` in any hour, from all sources together. The
/// failure that fills either window opens the breaker: for at least `pause`, and until
/// both windows have room again, redemption attempts are refused unchecked
/// (`Error(rate_limited)`, "try again in N s"). Live codes stay valid, paired sessions
/// go on, and a refused attempt reveals nothing, so at most `perHour` codes are ever
/// checked and found wrong in an hour, however many addresses guess.
///
/// Memory: at most `max(perMinute, perHour)` timestamps. Pure value type, time passed in.
struct CodeGuessBreaker: Sendable {
    struct Policy: Sendable, Equatable {
        /// Failed redemptions, relay-wide, in any rolling minute before redemption pauses.
        var perMinute = 10
        /// Failed redemptions, relay-wide, in any rolling hour before redemption pauses.
        var perHour = 100
        /// The shortest pause once the breaker opens.
        var pause = TimeAmount.seconds(60)
    }

    let policy: Policy
    /// Recent failures, oldest first.
    private var failures: [NIODeadline] = []
    /// Redemption is paused until then.
    private(set) var pausedUntil = NIODeadline.uptimeNanoseconds(0)

    init(policy: Policy = Policy()) {
        self.policy = policy
    }

    /// How long redemption stays paused, or nil when a code may be checked now.
    func retryAfter(now: NIODeadline) -> TimeAmount? {
        self.pausedUntil > now ? self.pausedUntil - now : nil
    }

    /// Records a failed redemption; returns the pause it started when it used up the
    /// minute's or the hour's budget (log it: a guessing attack is likely under way).
    @discardableResult
    mutating func recordFailure(now: NIODeadline) -> TimeAmount? {
        // Callers take `now` before they take the lock, so times can arrive a little out
        // of order; keep the list sorted.
        let index = self.failures.lastIndex { $0 <= now }.map { $0 + 1 } ?? 0
        self.failures.insert(now, at: index)
        let kept = max(1, self.policy.perMinute, self.policy.perHour)
        if self.failures.count > kept {
            // Only the newest `kept` failures can decide whether a window is full.
            self.failures.removeFirst(self.failures.count - kept)
        }
        let room = max(self.room(in: .minutes(1), limit: self.policy.perMinute), self.room(in: .hours(1), limit: self.policy.perHour))
        guard room > now else { return nil }
        if self.pausedUntil > now {
            // Already paused (a caller raced the breaker): keep it shut until there is
            // room, but this is not a new pause to report.
            self.pausedUntil = max(self.pausedUntil, room)
            return nil
        }
        self.pausedUntil = max(now + self.policy.pause, room)
        return self.pausedUntil - now
    }

    /// Records a failed redemption that the cluster's shared budget counted (several
    /// nodes on one store, OPERATIONS.md "Several nodes"): `clusterMinute` and
    /// `clusterHour` are the cluster's failures in the minute and the hour up to now, this
    /// one included. A full window pauses this node for `pause`; the other nodes pause at
    /// their own next failure, so the cluster checks at most `perHour` + N − 1 wrong codes
    /// an hour with N nodes. Returns the pause it started, as ``recordFailure(now:)``.
    @discardableResult
    mutating func recordFailure(now: NIODeadline, clusterMinute: Int, clusterHour: Int) -> TimeAmount? {
        self.failures.append(now)
        let kept = max(1, self.policy.perMinute, self.policy.perHour)
        if self.failures.count > kept { self.failures.removeFirst(self.failures.count - kept) }
        guard clusterMinute >= self.policy.perMinute || clusterHour >= self.policy.perHour else { return nil }
        guard self.pausedUntil <= now else { return nil }
        self.pausedUntil = now + self.policy.pause
        return self.policy.pause
    }

    /// Failed redemptions in the last `window` (at most an hour back): for metrics.
    func failures(within window: TimeAmount, now: NIODeadline) -> Int {
        self.failures.count(where: { now - $0 < window })
    }

    /// Drops failures older than an hour.
    mutating func prune(now: NIODeadline) {
        self.failures.removeAll { now - $0 >= .hours(1) }
    }

    var trackedFailures: Int { self.failures.count }

    /// When a window of `length` holding at most `limit - 1` failures has room for one
    /// more; the earliest deadline there is if it has room now.
    private func room(in length: TimeAmount, limit: Int) -> NIODeadline {
        let limit = max(1, limit)
        guard self.failures.count >= limit else { return .uptimeNanoseconds(0) }
        // The window is full while the failure `limit` places from the newest is in it.
        return self.failures[self.failures.count - limit] + length
    }
}
