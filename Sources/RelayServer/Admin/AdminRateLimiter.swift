import NIOCore

/// Limits how often one key — a source address, a company — may call the admin API
/// (OPERATIONS.md "Export over HTTPS"): a token bucket holding `burst` requests, refilled
/// at `perMinute` a minute. An export reads the whole range from the database, so an
/// admin's script in a loop must not take the relay down with it.
///
/// Pure value type: the caller passes the time.
struct AdminRateLimiter: Sendable {
    struct Policy: Sendable {
        var burst = 10
        var perMinute = 10
    }

    private struct Bucket: Sendable {
        var tokens: Double
        var updated: NIODeadline
    }

    let policy: Policy
    private var buckets: [String: Bucket] = [:]

    init(policy: Policy = Policy()) {
        self.policy = policy
    }

    /// Takes one request for every key; nil when allowed, else how long until the
    /// scarcest key has a request again (no key is charged then).
    mutating func admit(_ keys: [String], now: NIODeadline) -> TimeAmount? {
        let rate = Double(self.policy.perMinute) / 60e9  // tokens per nanosecond
        var refreshed: [(String, Bucket)] = []
        var wait: Int64 = 0
        for key in keys {
            var bucket = self.buckets[key] ?? Bucket(tokens: Double(self.policy.burst), updated: now)
            let elapsed = Double(max(0, (now - bucket.updated).nanoseconds))
            bucket.tokens = min(Double(self.policy.burst), bucket.tokens + elapsed * rate)
            bucket.updated = now
            if bucket.tokens < 1 {
                wait = max(wait, Int64(((1 - bucket.tokens) / rate).rounded(.up)))
            }
            refreshed.append((key, bucket))
        }
        if wait > 0 {
            for (key, bucket) in refreshed { self.buckets[key] = bucket }
            return .nanoseconds(wait)
        }
        for (key, var bucket) in refreshed {
            bucket.tokens -= 1
            self.buckets[key] = bucket
        }
        return nil
    }

    /// Forgets keys whose buckets are full again, so memory stays bounded.
    mutating func prune(now: NIODeadline) {
        let rate = Double(self.policy.perMinute) / 60e9
        self.buckets = self.buckets.filter { _, bucket in
            bucket.tokens + Double(max(0, (now - bucket.updated).nanoseconds)) * rate < Double(self.policy.burst)
        }
    }

    var trackedKeys: Int { self.buckets.count }
}
