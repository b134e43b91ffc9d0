import Foundation
import Logging
import NIOPosix
import RelayStore
import RelayWire
import ServiceLifecycle
import Synchronization

/// Writes the usage history (DESIGN.md "Usage history"): records of paired sessions as
/// soon as they pair, their counters every checkpoint interval (one transaction for all
/// live sessions), their end when they end. No database work happens per frame: counters
/// are atomics in ``RelaySession``, read here once per checkpoint.
///
/// A write that fails is kept, not dropped: the batch goes back into the journal ahead of
/// what came after it, and is written again with it after a back-off
/// (``UsageWriteBackoff``: 1 s doubling to 60 s), until a write succeeds. Writing a batch
/// again is safe (``UsageStore/write(_:)``: `INSERT OR IGNORE`, `… AND endedAt IS NULL`),
/// so a write that committed but reported an error changes nothing the second time. The
/// first failure of a streak is logged as an error, the recovery as a notice; the gauge
/// `relay_usage_writes_pending` shows what is waiting meanwhile.
///
/// On a graceful shutdown it runs last (first in the service list), after the node has
/// ended every session, and closes any session still open with `relay_shutdown`, trying a
/// few times if the store fails. After a crash, the next start closes open records at
/// their last checkpoint (`relay_restart`), so a crash loses at most one checkpoint
/// interval of counters.
final class UsageRecorder<C: Clock>: Service where C.Duration == Duration {
    let journal: UsageJournal
    /// Writes one batch in one transaction; blocking, so it runs on `threadPool`.
    let write: @Sendable (UsageBatch) throws -> Void
    let threadPool: NIOThreadPool
    /// The sessions paired now, for checkpoints and the closures at shutdown.
    let liveSessions: @Sendable () -> [RelaySession]
    let metrics: RelayMetrics
    let logger: Logger
    let clock: C
    /// Between checkpoints.
    let interval: Duration
    /// The time written into checkpoints and closures.
    let now: @Sendable () -> Date
    /// Attempts of the last write at shutdown, spaced by the back-off, before giving up.
    let shutdownAttempts: Int
    private let backoff: Mutex<UsageWriteBackoff<C.Instant>>

    init(
        journal: UsageJournal, write: @escaping @Sendable (UsageBatch) throws -> Void, threadPool: NIOThreadPool,
        liveSessions: @escaping @Sendable () -> [RelaySession], metrics: RelayMetrics, logger: Logger, clock: C, interval: Duration,
        backoff: UsageWriteBackoff<C.Instant> = UsageWriteBackoff(), shutdownAttempts: Int = 4, now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.journal = journal
        self.write = write
        self.threadPool = threadPool
        self.liveSessions = liveSessions
        self.metrics = metrics
        self.logger = logger
        self.clock = clock
        self.interval = interval
        self.backoff = Mutex(backoff)
        self.shutdownAttempts = max(1, shutdownAttempts)
        self.now = now
    }

    /// The recorder of `relay`'s sessions, writing to its store.
    convenience init(relay: Relay, clock: C, interval: Duration) {
        let store = relay.store
        self.init(
            journal: relay.usage, write: { try store.write($0) }, threadPool: relay.backgroundPool, liveSessions: { relay.pairedSessions },
            metrics: relay.metrics, logger: relay.logger, clock: clock, interval: interval, now: relay.now
        )
    }

    func run() async {
        let journal = self.journal
        // A failed write asks for a wake-up after its back-off delay.
        let (retries, retry) = AsyncStream.makeStream(of: Duration.self, bufferingPolicy: .bufferingNewest(1))
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    while true {
                        do {
                            try await self.clock.sleep(for: self.interval)
                        } catch {
                            return  // cancelled
                        }
                        journal.requestCheckpoint()
                    }
                }
                group.addTask {
                    for await delay in retries {
                        do {
                            try await self.clock.sleep(for: delay)
                        } catch {
                            return  // cancelled
                        }
                        journal.requestWrite()
                    }
                }
                for await _ in journal.signals {
                    if let delay = await self.flush() { retry.yield(delay) }
                }
                retry.finish()
                group.cancelAll()
            }
        } onGracefulShutdown: {
            journal.finish()
        }
        await self.flushAtShutdown()
    }

    /// Writes what the journal holds, with a checkpoint of every live session if one is
    /// due; with `reason`, also closes every session still live. While a failed write's
    /// back-off runs, it writes nothing (unless `ignoringBackoff`) and leaves everything in
    /// the journal. Returns the delay before the next attempt if the write failed.
    @discardableResult
    func flush(closingLiveSessionsAs reason: ByeReason? = nil, ignoringBackoff: Bool = false) async -> Duration? {
        guard ignoringBackoff || reason != nil || self.backoff.withLock({ $0.mayWrite(at: self.clock.now) }) else { return nil }
        let now = self.now().milliseconds
        // Snapshot the live sessions before taking the journal: a session that ends in
        // between is then closed by one or the other, never by neither.
        let live = self.liveSessions()
        var (batch, checkpointDue) = self.journal.take()
        if let reason {
            batch.closed.append(contentsOf: live.map { $0.usageClosure(endedAt: now, reason: reason) })
        } else if checkpointDue {
            batch.addCheckpoints(live.map { UsageCheckpoint(sessionID: $0.id.description, counters: $0.usageCounters, at: now) })
        }
        guard !batch.isEmpty else { return nil }
        let write = self.write
        let ready = batch
        do {
            try await self.threadPool.runIfActive { try write(ready) }
            self.metrics.usageWrites.increment()
            self.metrics.usageWritesPending.set(Int64(self.journal.pendingCount))
            let failedBefore = self.backoff.withLock { $0.succeeded() }
            if failedBefore > 0 {
                self.logger.notice(
                    "the usage history is written again; nothing was lost", metadata: ["failed_attempts": "\(failedBefore)", "written": "\(batch.count)"])
            }
            return nil
        } catch {
            self.journal.putBack(batch)
            self.metrics.usageWriteErrors.increment()
            self.metrics.usageWritesPending.set(Int64(self.journal.pendingCount))
            let (delay, startsStreak) = self.backoff.withLock { $0.failed(at: self.clock.now) }
            let metadata: Logger.Metadata = [
                "error": "\(error)", "opened": "\(batch.opened.count)", "checkpoints": "\(batch.checkpoints.count)",
                "closed": "\(batch.closed.count)", "retry_in": "\(delay)",
            ]
            if startsStreak {
                self.logger.error(
                    "cannot write the usage history; keeping it in memory and trying again (after 1 s, doubling up to 60 s) until a write succeeds. Check the database's disk space and permissions",
                    metadata: metadata
                )
            } else {
                self.logger.debug("the usage history still cannot be written", metadata: metadata)
            }
            return delay
        }
    }

    /// The last write: closes the sessions still live, and tries again a few times if the
    /// store fails. What still cannot be written is lost with the process: the next start
    /// closes open records at their last checkpoint, but records never written are gone.
    func flushAtShutdown() async {
        var delay = await self.flush(closingLiveSessionsAs: .relayShutdown)
        var attempts = 1
        while let wait = delay, attempts < self.shutdownAttempts {
            do {
                try await self.clock.sleep(for: wait)
            } catch {
                break
            }
            delay = await self.flush(ignoringBackoff: true)
            attempts += 1
        }
        if delay != nil {
            let lost = self.journal.take().0
            self.logger.critical(
                "stopping with usage history that could not be written: records opened here are lost; open records written earlier are closed at their last checkpoint on the next start",
                metadata: ["opened": "\(lost.opened.count)", "checkpoints": "\(lost.checkpoints.count)", "closed": "\(lost.closed.count)"]
            )
        }
    }
}

extension RelaySession {
    /// The counters so far, read from the atomics: frames first (acquiring), then bytes,
    /// so that a checkpoint never holds a frame without its bytes (``count(bytes:frames:from:)``
    /// adds bytes first and publishes frames after them).
    var usageCounters: UsageCounters {
        let framesToViewer = self.framesToViewer.load(ordering: .acquiring)
        let framesToHost = self.framesToHost.load(ordering: .acquiring)
        return UsageCounters(
            bytesToViewer: Int64(clamping: self.bytesToViewer.load(ordering: .relaxed)),
            bytesToHost: Int64(clamping: self.bytesToHost.load(ordering: .relaxed)),
            framesToViewer: Int64(clamping: framesToViewer),
            framesToHost: Int64(clamping: framesToHost)
        )
    }

    func usageRecord(relayNode: String) -> UsageRecord {
        UsageRecord(
            id: self.id.description, companyID: self.companyID, engineerLogin: self.engineerLogin, hostID: self.hostID,
            hostName: self.hostName, mode: UsageRecord.Mode(self.mode), startedAt: self.startedAt.milliseconds,
            viewerAddress: self.viewer.agentAddress, hostAddress: self.host.agentAddress, relayNode: relayNode,
            viewerClient: self.viewerInBrowser ? .browser : .agent
        )
    }

    func usageClosure(endedAt: Milliseconds, reason: ByeReason) -> UsageClosure {
        UsageClosure(sessionID: self.id.description, endedAt: endedAt, counters: self.usageCounters, reason: UsageRecord.EndReason(reason))
    }
}

extension UsageRecord.Mode {
    /// The usage history's name for how a session was paired.
    init(_ mode: PairingMode) {
        switch mode {
        case .attended: self = .attended
        case .unattended: self = .unattended
        }
    }
}

extension UsageRecord.EndReason {
    /// The usage history's reason for a Bye reason: the same snake_case name
    /// (PROTOCOL.md §6.2), so a reason this version does not know is kept as `other`.
    init(_ reason: ByeReason) {
        self.init(rawValue: reason.name)
    }
}
