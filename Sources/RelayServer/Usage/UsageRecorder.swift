import Foundation
import Logging
import RelayStore
import RelayWire
import ServiceLifecycle

/// Writes the usage history (DESIGN.md "Usage history"): records of paired sessions as
/// soon as they pair, their counters every checkpoint interval (one transaction for all
/// live sessions), their end when they end. No database work happens per frame: counters
/// are atomics in ``RelaySession``, read here once per checkpoint.
///
/// On a graceful shutdown it runs last (first in the service list), after the node has
/// ended every session, and closes any session still open with `relay_shutdown`. After a
/// crash, the next start closes open records at their last checkpoint (`relay_restart`),
/// so a crash loses at most one checkpoint interval of counters.
struct UsageRecorder<C: Clock>: Service where C.Duration == Duration {
    let relay: Relay
    let clock: C
    let interval: Duration

    func run() async {
        let journal = self.relay.usage
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
                for await _ in journal.signals {
                    await self.flush()
                }
                group.cancelAll()
            }
        } onGracefulShutdown: {
            journal.finish()
        }
        await self.flush(closingLiveSessionsAs: .relayShutdown)
    }

    /// Writes what the journal holds, with a checkpoint of every live session if one is
    /// due; with `reason`, also closes every session still live (the last write).
    func flush(closingLiveSessionsAs reason: ByeReason? = nil) async {
        let now = Date().milliseconds
        // Snapshot the live sessions before taking the journal: a session that ends in
        // between is then closed by one or the other, never by neither.
        let live = self.relay.pairedSessions
        var (batch, checkpointDue) = self.relay.usage.take()
        if let reason {
            batch.closed.append(contentsOf: live.map { $0.usageClosure(endedAt: now, reason: reason.name) })
        } else if checkpointDue {
            batch.addCheckpoints(live.map { UsageCheckpoint(sessionID: $0.id.description, counters: $0.usageCounters, at: now) })
        }
        guard !batch.isEmpty else { return }
        let store = self.relay.store
        let ready = batch
        do {
            try await self.relay.threadPool.runIfActive { try store.write(ready) }
            self.relay.metrics.usageWrites.increment()
        } catch {
            self.relay.metrics.usageWriteErrors.increment()
            self.relay.logger.error(
                "cannot write the usage history",
                metadata: ["error": "\(error)", "opened": "\(batch.opened.count)", "checkpoints": "\(batch.checkpoints.count)", "closed": "\(batch.closed.count)"]
            )
        }
    }
}

extension RelaySession {
    /// The counters so far, read from the atomics.
    var usageCounters: UsageCounters {
        UsageCounters(
            bytesToViewer: Int64(clamping: self.bytesToViewer.load(ordering: .relaxed)),
            bytesToHost: Int64(clamping: self.bytesToHost.load(ordering: .relaxed)),
            framesToViewer: Int64(clamping: self.framesToViewer.load(ordering: .relaxed)),
            framesToHost: Int64(clamping: self.framesToHost.load(ordering: .relaxed))
        )
    }

    func usageRecord(relayNode: String) -> UsageRecord {
        UsageRecord(
            id: self.id.description, companyID: self.companyID, engineerLogin: self.engineerLogin, hostID: self.hostID,
            hostName: self.hostName, mode: self.mode.description, startedAt: self.startedAt.milliseconds,
            viewerAddress: self.viewer.remoteAddress, hostAddress: self.host.remoteAddress, relayNode: relayNode
        )
    }

    func usageClosure(endedAt: Milliseconds, reason: String) -> UsageClosure {
        UsageClosure(sessionID: self.id.description, endedAt: endedAt, counters: self.usageCounters, reason: reason)
    }
}
