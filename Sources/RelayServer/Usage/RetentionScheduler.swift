import Foundation
import Logging
import NIOPosix
import RelayStore
import ServiceLifecycle

/// Runs the retention purge (DESIGN.md "the retention rule") when the relay starts and
/// then every `interval` (an hour by default): usage records a year after they ended and
/// access-log entries after three months are destroyed, except a held company's.
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

    func purgeOnce() async {
        let store = self.store
        let policy = self.policy
        let now = self.now()
        do {
            let report = try await self.threadPool.runIfActive { try store.purge(policy: policy, now: now, dryRun: false, actor: "relay") }
            if report.sessions + report.accessLogEntries > 0 {
                self.logger.info(
                    "retention purge",
                    metadata: ["sessions": "\(report.sessions)", "access_log": "\(report.accessLogEntries)", "held_sessions": "\(report.heldSessions)"]
                )
            }
            self.onPurge(report)
        } catch {
            self.logger.error("the retention purge failed; it runs again in an hour, or run `relay-server usage purge`", metadata: ["error": "\(error)"])
            self.onPurge(nil)
        }
    }
}
