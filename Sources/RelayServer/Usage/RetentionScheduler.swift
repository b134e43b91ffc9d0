import Foundation
import Logging
import NIOPosix
import RelayStore
import ServiceLifecycle

/// Runs the retention purge (DESIGN.md "the retention rule") when the relay starts and
/// then every `interval` (an hour by default): usage records a year after they ended and
/// access-log entries after three months are destroyed, except a held company's.
///
/// Each batch of a purge (``UsageStore/purgeBatch(policy:now:limit:)``, `batchSize` rows in
/// one transaction) is a job of its own on `threadPool`, the relay's background pool: usage
/// writes and export pages queued meanwhile run between two batches, instead of waiting
/// for a purge of millions of rows to end (REVIEW.md §3). The run's audit entry and the
/// truncation of the write-ahead log come once, after the last batch.
///
/// A graceful shutdown stops a running purge after its current batch; what it destroyed
/// so far gets its audit entry and is made unrecoverable, and the next run destroys the
/// rest (batches leave only rows past retention behind).
///
/// `clock` paces the runs and `now` gives the wall-clock time the retention rule is
/// applied to; tests pass a manual clock and a fixed date.
struct RetentionScheduler<C: Clock>: Service where C.Duration == Duration {
    let store: any UsageStore
    let policy: RetentionPolicy
    let clock: C
    let interval: Duration
    let now: @Sendable () -> Date
    let threadPool: NIOThreadPool
    let logger: Logger
    /// Rows per batch: per job on the pool, per transaction.
    var batchSize = PurgeBatchResult.defaultLimit
    /// Called after each run with its report (or nil when it failed); for metrics and tests.
    var onPurge: @Sendable (PurgeReport?) -> Void = { _ in }

    func run() async {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await self.purgeOnce()
                do {
                    try await self.clock.sleep(for: self.interval)
                } catch {
                    return
                }
            }
        }
    }

    /// One purge, if it is this node's turn (``UsageStore/beginPurgeTurn()``: on a database
    /// that several nodes share, one purges at a time, and the others skip this run).
    func purgeOnce() async {
        let store = self.store
        let turn: PurgeTurn?
        do {
            turn = try await self.threadPool.runIfActive { try store.beginPurgeTurn() }
        } catch is CancellationError {
            return
        } catch {
            self.failed(error)
            return
        }
        guard let turn else {
            self.logger.info("the retention purge runs on another node right now; this node skips this run")
            return
        }
        await self.purge()
        _ = try? await self.threadPool.runToCompletion { turn.end() }
    }

    /// The counts, the batches, then the audit entry and the truncation.
    private func purge() async {
        let store = self.store
        let policy = self.policy
        let limit = self.batchSize
        // One `now` for the whole run: its cutoffs do not move between batches.
        let now = self.now()
        var report: PurgeReport
        do {
            report = try await self.threadPool.runIfActive { try store.purgeCounts(policy: policy, now: now) }.purging()
        } catch is CancellationError {
            return  // shutting down before it began
        } catch {
            self.failed(error)
            return
        }
        var stoppedEarly = false
        var failure: (any Error)?
        do {
            var more = true
            while more {
                guard !Task.isCancelled else {
                    stoppedEarly = true
                    break
                }
                let batch = try await self.threadPool.runIfActive { try store.purgeBatch(policy: policy, now: now, limit: limit) }
                report.add(batch)
                more = batch.hasMore
            }
        } catch is CancellationError {
            stoppedEarly = true  // the batch was still queued when the shutdown came
        } catch {
            // What the batches before it destroyed still gets its audit entry and truncation.
            failure = error
        }
        let finished = report
        do {
            // Not cancellable: at shutdown too, what was destroyed must be unrecoverable and audited.
            try await self.threadPool.runToCompletion { try store.finishPurge(finished, actor: "relay") }
        } catch {
            failure = failure ?? error
        }
        if let failure {
            self.failed(failure)
            return
        }
        if report.sessions + report.accessLogEntries > 0 || stoppedEarly {
            self.logger.info(
                stoppedEarly ? "retention purge stopped early for the shutdown; the next run destroys the rest" : "retention purge",
                metadata: ["sessions": "\(report.sessions)", "access_log": "\(report.accessLogEntries)", "held_sessions": "\(report.heldSessions)"]
            )
        }
        // A PostgreSQL server that recycles WAL files may keep what this run destroyed.
        if report.sessions + report.accessLogEntries > 0, let sql = store as? SQLStore,
            let warning = try? await self.threadPool.runIfActive({ sql.writeAheadLogRecycleWarning() })
        {
            self.logger.warning("\(warning)")
        }
        self.onPurge(report)
    }

    private func failed(_ error: any Error) {
        self.logger.error("the retention purge failed; it runs again in an hour, or run `relay-server usage purge`", metadata: ["error": "\(error)"])
        self.onPurge(nil)
    }
}

extension NIOThreadPool {
    /// Runs `body` on the pool and waits for it, even if the task is cancelled meanwhile
    /// (`runIfActive` drops work that has not started when its task is cancelled). For
    /// work that must finish at shutdown: the access log's last entries, a purge's audit
    /// entry and its truncation of the write-ahead log.
    func runToCompletion<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            self.submit { state in
                guard state == .active else {
                    continuation.resume(throwing: NIOThreadPoolError.ThreadPoolInactive())
                    return
                }
                continuation.resume(with: Result(catching: body))
            }
        }
    }
}
