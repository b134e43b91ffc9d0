import Foundation
import NIOCore
import RelayStore

/// Growing, lasting penalties for sources that fail authentication: engineer tokens, host
/// secrets and support codes alike (OPERATIONS.md "Abuse resistance", PROTOCOL.md §8.5).
///
/// Each source (an IPv4 address or an IPv6 /64, see ``SourceKey``) has a failure level.
/// A failure raises it by one; one failure is forgiven every `forgiveOneFailureEvery`
/// (20 min), so the memory of a guessing run lasts hours (15 failures: 5 h), while an
/// honest typo is forgotten within the hour. Up to `freeFailures` the level costs nothing. Each failure above that
/// blocks the source for `firstBlock`, doubled per level above the free ones, up to
/// `maximumBlock`. While blocked, the source's attempts are refused unchecked, so a
/// correct guess made then gains nothing.
///
/// Only sources are penalised, never the account a credential claims: a guesser who
/// knows an engineer id cannot lock that engineer out (issue 10 item 11). A success does
/// not clear a source either: one valid account must not reset the penalties of a
/// source that guesses support codes.
///
/// Memory: at most `maximumTrackedSources` entries; ``prune(now:)`` removes a source once
/// its block is over and its level has decayed to zero. Pure value type, time passed in.
struct SourcePenalties: Sendable {
    struct Policy: Sendable, Equatable {
        /// Failures a source may have on its level without any block.
        var freeFailures = 5
        /// The block for the first failure above the free ones; it doubles per failure.
        var firstBlock = TimeAmount.seconds(2)
        /// The longest single block.
        var maximumBlock = TimeAmount.hours(4)
        /// How long it takes to forgive one failure (the level's decay rate). A source
        /// failing more often than this on average climbs to ever longer blocks, so it is
        /// also the steady pace of a guesser that waits out every block (3 an hour), and
        /// what a shared address can absorb in honest typos (about 1.5 an hour) without
        /// blocks past a few seconds (SourcePenaltiesTests).
        var forgiveOneFailureEvery = TimeAmount.minutes(20)
        /// The most sources tracked at once; past it the least penalised are forgotten.
        var maximumTrackedSources = 100_000

        /// The block a failure that brings a source to `level` imposes, or nil while free.
        func block(atLevel level: Int) -> TimeAmount? {
            guard level > self.freeFailures else { return nil }
            // Double up to the cap; stop before the multiplication could overflow.
            var block = self.firstBlock
            for _ in 0..<(level - self.freeFailures - 1) where block < self.maximumBlock {
                block = block * 2
            }
            return min(block, self.maximumBlock)
        }
    }

    struct Entry: Sendable, Equatable {
        /// Failures not yet forgiven, as of `updated`.
        var level: Int
        /// When `level` was last brought up to date (decay counts from here).
        var updated: NIODeadline
        var blockedUntil: NIODeadline
    }

    let policy: Policy
    private var entries: [SourceKey: Entry] = [:]

    init(policy: Policy = Policy()) {
        self.policy = policy
    }

    /// How long `source` must still wait, or nil when its attempts may be checked now.
    func retryAfter(_ source: SourceKey, now: NIODeadline) -> TimeAmount? {
        guard let entry = self.entries[source], entry.blockedUntil > now else { return nil }
        return entry.blockedUntil - now
    }

    /// The source's failure level now (after decay): for logs and tests.
    func level(of source: SourceKey, now: NIODeadline) -> Int {
        self.entries[source].map { self.decayed($0, now: now).level } ?? 0
    }

    /// Records a failed attempt from `source`; returns the block it now imposes, if any.
    @discardableResult
    mutating func recordFailure(_ source: SourceKey, now: NIODeadline) -> TimeAmount? {
        var entry = self.entries[source].map { self.decayed($0, now: now) } ?? Entry(level: 0, updated: now, blockedUntil: now)
        if entry.level == 0 { entry.updated = now }
        entry.level += 1
        let block = self.policy.block(atLevel: entry.level)
        if let block {
            entry.blockedUntil = max(entry.blockedUntil, now + block)
        }
        if self.entries[source] == nil, self.entries.count >= self.policy.maximumTrackedSources {
            self.makeRoom(now: now)
        }
        self.entries[source] = entry
        return block
    }

    /// The shared record of a source after one more failure at `now`, for several nodes on
    /// one store (OPERATIONS.md "Several nodes"): the same decay and blocks as
    /// ``recordFailure(_:now:)``, on the wall clock the nodes share.
    static func afterFailure(_ record: SourcePenaltyRecord?, now: Date, policy: Policy) -> SourcePenaltyRecord {
        let period = max(1e-9, Double(policy.forgiveOneFailureEvery.nanoseconds) / 1e9)
        var level = record?.level ?? 0
        var updated = record?.updatedAt ?? now
        let elapsed = now.timeIntervalSince(updated)
        if elapsed >= period, level > 0 {
            let forgiven = Int(elapsed / period)
            if forgiven >= level {
                level = 0
                updated = now
            } else {
                level -= forgiven
                updated = updated.addingTimeInterval(Double(forgiven) * period)
            }
        }
        if level == 0 { updated = now }
        level += 1
        var blockedUntil = max(record?.blockedUntil ?? now, now)
        if let block = policy.block(atLevel: level) {
            blockedUntil = max(blockedUntil, now.addingTimeInterval(Double(block.nanoseconds) / 1e9))
        }
        return SourcePenaltyRecord(level: level, updatedAt: updated, blockedUntil: blockedUntil)
    }

    /// Forgets sources whose block is over and whose level has decayed to zero.
    mutating func prune(now: NIODeadline) {
        self.entries = self.entries.compactMapValues { entry in
            let decayed = self.decayed(entry, now: now)
            return decayed.level == 0 && decayed.blockedUntil <= now ? nil : decayed
        }
    }

    var trackedSources: Int { self.entries.count }

    /// `entry` with the failures forgiven since it was updated taken off; the remainder of
    /// a forgiveness period carries over, so querying often does not slow the decay.
    private func decayed(_ entry: Entry, now: NIODeadline) -> Entry {
        let period = max(1, self.policy.forgiveOneFailureEvery.nanoseconds)
        let elapsed = (now - entry.updated).nanoseconds
        guard elapsed >= period, entry.level > 0 else { return entry }
        let forgiven = elapsed / period
        var result = entry
        if forgiven >= Int64(entry.level) {
            result.level = 0
            result.updated = now
        } else {
            result.level -= Int(forgiven)
            result.updated = entry.updated + .nanoseconds(forgiven * period)
        }
        return result
    }

    /// The table is full: prune, and if that is not enough, forget the least penalised
    /// tenth (lowest level, then the earliest block end). Sources that are blocked longest
    /// are kept, so flooding the table with fresh sources cannot wash a guesser's
    /// penalties out; the fresh sources lose their own, small ones.
    private mutating func makeRoom(now: NIODeadline) {
        self.prune(now: now)
        let limit = self.policy.maximumTrackedSources
        guard self.entries.count >= limit else { return }
        let keep = max(0, limit - max(1, limit / 10))
        let ranked = self.entries.sorted { a, b in
            (a.value.level, a.value.blockedUntil) > (b.value.level, b.value.blockedUntil)
        }
        self.entries = Dictionary(uniqueKeysWithValues: ranked.prefix(keep).map { ($0.key, $0.value) })
    }
}
