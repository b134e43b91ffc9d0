/// When the usage recorder tries again after a failed write of the usage history: after
/// 1 s, then 2, 4, … up to 60 s between attempts, until one succeeds (OPERATIONS.md
/// "Usage history"). Pure: the recorder passes the clock's time in.
///
/// A failed batch is never dropped: the recorder keeps it and writes it again, together
/// with whatever was recorded meanwhile. The back-off only spaces the attempts out, so a
/// store that is down (disk full, locked by a long transaction, a database server
/// restarting) is not hammered, and the log gets one error per outage, not one per attempt.
struct UsageWriteBackoff<Instant: InstantProtocol>: Sendable where Instant.Duration == Duration {
    var initialDelay = Duration.seconds(1)
    var maximumDelay = Duration.seconds(60)
    /// Failed attempts since the last successful write.
    private(set) var failures = 0
    /// No attempt before this (after a failure).
    private(set) var retryAt: Instant?

    init(initialDelay: Duration = .seconds(1), maximumDelay: Duration = .seconds(60)) {
        self.initialDelay = initialDelay
        self.maximumDelay = max(initialDelay, maximumDelay)
    }

    /// Whether a write may be attempted at `now`: always, unless a failure asked to wait.
    func mayWrite(at now: Instant) -> Bool {
        self.retryAt.map { now >= $0 } ?? true
    }

    /// Records a failed attempt at `now`: how long to wait before the next, and whether
    /// this failure began a streak (the one that is logged as an error).
    mutating func failed(at now: Instant) -> (delay: Duration, startsStreak: Bool) {
        self.failures += 1
        var delay = self.initialDelay
        var doublings = self.failures - 1
        while doublings > 0, delay < self.maximumDelay {
            delay = min(delay * 2, self.maximumDelay)
            doublings -= 1
        }
        self.retryAt = now.advanced(by: delay)
        return (delay, self.failures == 1)
    }

    /// Records a successful write: how many attempts had failed before it (0: none).
    mutating func succeeded() -> Int {
        defer {
            self.failures = 0
            self.retryAt = nil
        }
        return self.failures
    }
}
