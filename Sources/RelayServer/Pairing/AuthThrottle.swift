import NIOCore

/// Throttles failed authentication per key — a source address, an engineer, a host —
/// with a growing back-off (DESIGN.md "Pairing", OPERATIONS.md "Abuse resistance").
///
/// A key may fail `freeFailures` times within `window` without delay. Each failure past
/// that blocks the key for `baseDelay`, doubled per further failure, up to `maximumDelay`.
/// A success clears the key. Pure value type: the caller passes the time.
struct AuthThrottle: Sendable {
    struct Policy: Sendable {
        var freeFailures = 5
        var window = TimeAmount.minutes(1)
        var baseDelay = TimeAmount.seconds(2)
        var maximumDelay = TimeAmount.minutes(15)
    }

    private struct Entry: Sendable {
        var recentFailures: [NIODeadline] = []
        var blockedUntil: NIODeadline = .uptimeNanoseconds(0)
        var excessFailures = 0
    }

    let policy: Policy
    private var entries: [String: Entry] = [:]

    init(policy: Policy = Policy()) {
        self.policy = policy
    }

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

    /// Drops keys that have been quiet for a window and are not blocked, so memory stays bounded.
    mutating func prune(now: NIODeadline) {
        self.entries = self.entries.filter { _, entry in
            entry.blockedUntil > now || entry.recentFailures.contains { now - $0 < self.policy.window }
        }
    }

    var trackedKeys: Int { self.entries.count }
}
