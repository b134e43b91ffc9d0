import Foundation
import RelayStore
import RelayTestSupport
import Testing

/// A node cut off from the shared database longer than its lease is taken for dead: another
/// node closes its open records as relay_restart. The node was alive, and its sessions went
/// on; when it reaches the database again, its checkpoints open the records again and its
/// closures end them as they really ended (OPERATIONS.md "Several nodes").
@Suite struct CutOffNodeUsageTests {
    static let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    static func record(_ id: String, node: String) -> UsageRecord {
        UsageRecord(
            id: id, companyID: "co-a", engineerLogin: "kim.minji", hostID: "ho-1", hostName: "PC-1", mode: .unattended,
            startedAt: Self.t0.milliseconds, viewerAddress: "192.0.2.1:1", hostAddress: "192.0.2.2:2", relayNode: node, viewerClient: .agent)
    }

    /// Nodes checkpoint their own sessions, often at the same moment (their timers started
    /// together). Each batch touches only its own rows, so none may wait for or run again
    /// because of another: as SERIALIZABLE transactions, whose predicate locks on hundreds
    /// of rows grew to the whole table, three nodes' batches of 333 ran again and again
    /// (relay-bench cluster: 3.5 checkpoint rows per session-minute where 2 were due), and
    /// a dozen at once ran out of retries.
    @Test(arguments: StoreBackend.available) func checkpointBatchesOfManyNodesAtOnceAllLand(_ backend: StoreBackend) throws {
        try backend.withStore { store in
            let other = try store.reopened()
            defer { other.close() }
            let stores = [store, other]
            let (nodes, perNode) = (12, 200)
            let ids = (0..<nodes).map { node in (0..<perNode).map { "se-\(node)-\($0)" } }
            for node in 0..<nodes {
                try store.write(UsageBatch(opened: ids[node].map { Self.record($0, node: "node-\(node)") }))
            }
            let counters = UsageCounters(bytesToViewer: 500, bytesToHost: 50, framesToViewer: 5, framesToHost: 5)
            let retried = store.conflictsRetried + other.conflictsRetried
            _ = try ClusterStoreTests.race(nodes) { node in
                try stores[node % 2].write(
                    UsageBatch(checkpoints: ids[node].map { UsageCheckpoint(sessionID: $0, counters: counters, at: (Self.t0 + 30).milliseconds) }))
            }
            for node in [0, nodes - 1] {
                #expect(try store.usageRecord(id: ids[node][perNode - 1])?.counters == counters)
            }
            #expect(store.conflictsRetried + other.conflictsRetried == retried)
        }
    }

    @Test(arguments: StoreBackend.available) func aCutOffNodesRecordsEndAsTheyReallyEnded(_ backend: StoreBackend) throws {
        try backend.withStore { store in
            let lease = NodeLease(name: "node-b", instance: "in-1", clusterAddress: "", startedAt: Self.t0, leaseUntil: Self.t0 + 15)
            #expect(try store.acquireNodeLease(lease, now: Self.t0) == nil)
            try store.write(UsageBatch(opened: [Self.record("se-running", node: "node-b"), Self.record("se-ends", node: "node-b")]))
            let early = UsageCounters(bytesToViewer: 100, bytesToHost: 10, framesToViewer: 1, framesToHost: 1)
            try store.write(
                UsageBatch(checkpoints: [
                    UsageCheckpoint(sessionID: "se-running", counters: early, at: (Self.t0 + 5).milliseconds),
                    UsageCheckpoint(sessionID: "se-ends", counters: early, at: (Self.t0 + 5).milliseconds),
                ]))
            // Node B's lease runs out while it cannot reach the database: node A closes its records.
            #expect(try store.closeRecordsOfDeadNodes(expiredBefore: Self.t0 + 20, actor: "relay:node-a") == ["node-b": 2])
            #expect(try store.usageRecord(id: "se-running")?.endReason == .relayRestart)
            // Node B is back: a checkpoint of a session still running, and the end of another.
            let later = UsageCounters(bytesToViewer: 900, bytesToHost: 90, framesToViewer: 9, framesToHost: 9)
            try store.write(
                UsageBatch(
                    checkpoints: [UsageCheckpoint(sessionID: "se-running", counters: later, at: (Self.t0 + 60).milliseconds)],
                    closed: [UsageClosure(sessionID: "se-ends", endedAt: (Self.t0 + 50).milliseconds, counters: later, reason: .normal)]))
            let running = try #require(try store.usageRecord(id: "se-running"))
            #expect(running.endedAt == nil && running.endReason == nil && running.counters == later)
            let ended = try #require(try store.usageRecord(id: "se-ends"))
            #expect(ended.endReason == .normal && ended.counters == later && ended.endedAt == (Self.t0 + 50).milliseconds)
            // A record that ended normally is never opened again by a late checkpoint.
            try store.write(UsageBatch(checkpoints: [UsageCheckpoint(sessionID: "se-ends", counters: early, at: (Self.t0 + 70).milliseconds)]))
            #expect(try store.usageRecord(id: "se-ends")?.counters == later)
        }
    }
}
