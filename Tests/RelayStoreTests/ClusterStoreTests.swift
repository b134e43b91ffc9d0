import Foundation
import RelayStore
import RelayTestSupport
import Synchronization
import Testing

/// What several relay nodes on one database share (``ClusterStore``, issue 15 items 3 and
/// 5): leases on node names, the host directory, support codes, the cluster-wide budget of
/// wrong codes and per-source penalties. Time is virtual: every call is given its `now`.
/// The races run two stores on the same database, as two nodes would, several threads each.
@Suite struct ClusterStoreTests {
    /// Whole seconds, so that times read back equal on both databases.
    static let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    static func lease(
        _ name: String, _ instance: String, at start: Date = Self.t0, for seconds: TimeInterval = 30, address: String = ""
    )
        -> NodeLease
    {
        NodeLease(
            name: name, instance: instance, clusterAddress: address.isEmpty ? "\(name).cluster:7443" : address, startedAt: start,
            leaseUntil: start + seconds)
    }

    static func code(_ digits: Int, node: String, expires: Date = Self.t0 + 600) -> SharedSupportCode {
        SharedSupportCode(code: digits, node: node, companyID: "co-a", engineerID: "en-kim", expiresAt: expires)
    }

    /// `body` with a store, and a second store on the same database, as another node opens it.
    static func withNodes<T>(_ backend: StoreBackend, _ body: (SQLStore, SQLStore) throws -> T) throws -> T {
        try backend.withStore { store throws in
            let other = try store.reopened()
            defer { other.close() }
            return try body(store, other)
        }
    }

    /// Runs `body` on `count` threads of their own, let go at once (the calls block on the
    /// database, so they overlap however few cores there are); returns what each returned,
    /// in thread order.
    static func race<T: Sendable>(_ count: Int, _ body: @escaping @Sendable (Int) throws -> T) throws -> [T] {
        let results = Mutex<[Int: Result<T, any Error>]>([:])
        let start = DispatchSemaphore(value: 0)
        let done = DispatchGroup()
        for index in 0..<count {
            done.enter()
            Thread {
                start.wait()
                let result = Result { try body(index) }
                results.withLock { $0[index] = result }
                done.leave()
            }.start()
        }
        for _ in 0..<count { start.signal() }
        done.wait()
        return try (0..<count).map { index in try #require(results.withLock { $0[index] }).get() }
    }

    @Test(arguments: StoreBackend.available) func theSchemaHasTheClusterMigration(_ backend: StoreBackend) throws {
        try backend.withStore { store throws in
            #expect(try store.appliedMigrations().last == (backend == .sqlite ? "v9 cluster" : "v2 cluster"))
        }
    }

    /// A file as a relay before clusters left it gains the tables, and its records stay.
    @Test func anOlderFileIsMigrated() throws {
        let folder = NSTemporaryDirectory() + "cluster-v8-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let path = folder + "/relay.sqlite"
        try SQLStore.makeFile(
            path: path, migratedUpTo: "v8 usage console indexes",
            then: "INSERT INTO company (id, name, adminTokenDigest, createdAt) VALUES ('co-old', 'Old Co', X'00', '2026-01-01 00:00:00.000')")
        let store = try SQLStore(path: path)
        #expect(try store.appliedMigrations().suffix(2) == ["v8 usage console indexes", "v9 cluster"])
        #expect(try store.companies().map(\.id) == ["co-old"])
        #expect(try store.acquireNodeLease(Self.lease("relay-1", "i-1"), now: Self.t0) == nil)
    }

    // MARK: Leases

    @Test(arguments: StoreBackend.available) func aLeaseIsHeldUntilItRunsOutThenTakenOver(_ backend: StoreBackend) throws {
        try backend.withStore { store throws in
            let first = Self.lease("relay-1", "i-1")
            #expect(try store.acquireNodeLease(first, now: Self.t0) == nil)
            #expect(try store.liveNodes(now: Self.t0 + 1) == [first])

            // A second process with the same name is refused while the lease runs, and learns who holds it.
            let second = Self.lease("relay-1", "i-2", at: Self.t0 + 10, address: "other:7443")
            #expect(try store.acquireNodeLease(second, now: Self.t0 + 10) == first)
            #expect(try store.renewNodeLease(name: "relay-1", instance: "i-2", until: Self.t0 + 100) == false)
            // The holder's own call again (a retry) is no conflict.
            #expect(try store.acquireNodeLease(first, now: Self.t0 + 10) == nil)

            // Renewed, it runs on; another name is another lease.
            #expect(try store.renewNodeLease(name: "relay-1", instance: "i-1", until: Self.t0 + 60))
            var renewed = first
            renewed.leaseUntil = Self.t0 + 60
            #expect(try store.acquireNodeLease(second, now: Self.t0 + 59) == renewed)
            let other = Self.lease("relay-2", "i-3")
            #expect(try store.acquireNodeLease(other, now: Self.t0) == nil)
            #expect(try store.liveNodes(now: Self.t0 + 40).map(\.name) == ["relay-1"])

            // At leaseUntil the lease has run out: no longer live, and the name can be taken.
            #expect(try store.liveNodes(now: Self.t0 + 60).isEmpty)
            let taker = Self.lease("relay-1", "i-2", at: Self.t0 + 60, address: "other:7443")
            #expect(try store.acquireNodeLease(taker, now: Self.t0 + 60) == nil)
            #expect(try store.liveNodes(now: Self.t0 + 61) == [taker])
            #expect(try store.renewNodeLease(name: "relay-1", instance: "i-1", until: Self.t0 + 200) == false, "the name is another process's now")
            #expect(try store.renewNodeLease(name: "relay-1", instance: "i-2", until: Self.t0 + 200))
            #expect(try store.liveNodes(now: Self.t0 + 150).map(\.instance) == ["i-2"])
        }
    }

    @Test(arguments: StoreBackend.available) func releasingFreesTheNameAndDropsHostsAndCodes(_ backend: StoreBackend) throws {
        try backend.withStore { store throws in
            #expect(try store.acquireNodeLease(Self.lease("relay-1", "i-1", for: 3_600), now: Self.t0) == nil)
            try store.announceHosts([("ho-1", "co-a")], node: "relay-1", instance: "i-1", at: Self.t0)
            #expect(try store.insertSupportCode(Self.code(123_456, node: "relay-1"), now: Self.t0))

            // Another instance cannot release it.
            try store.releaseNodeLease(name: "relay-1", instance: "i-other")
            #expect(try store.liveNodes(now: Self.t0 + 1).count == 1)
            #expect(try store.hostLocation(hostID: "ho-1", companyID: "co-a", now: Self.t0 + 1)?.name == "relay-1")

            try store.releaseNodeLease(name: "relay-1", instance: "i-1")
            #expect(try store.liveNodes(now: Self.t0 + 1).isEmpty)
            #expect(try store.hostLocation(hostID: "ho-1", companyID: "co-a", now: Self.t0 + 1) == nil)
            #expect(try store.claimSupportCode(123_456, now: Self.t0 + 1) == nil)
            #expect(try store.renewNodeLease(name: "relay-1", instance: "i-1", until: Self.t0 + 100) == false, "a late renewal")
            try store.releaseNodeLease(name: "relay-1", instance: "i-1")
            #expect(try store.liveNodes(now: Self.t0 + 1).isEmpty)
            // The name is free at once.
            #expect(try store.acquireNodeLease(Self.lease("relay-1", "i-2", at: Self.t0 + 2), now: Self.t0 + 2) == nil)
        }
    }

    /// A new process that takes over a name starts without what the previous one left:
    /// its codes would send pairings to a viewer that is gone.
    @Test(arguments: StoreBackend.available) func takingOverDropsThePreviousInstancesHostsAndCodes(_ backend: StoreBackend) throws {
        try backend.withStore { store throws in
            #expect(try store.acquireNodeLease(Self.lease("relay-1", "i-1"), now: Self.t0) == nil)
            try store.announceHosts([("ho-1", "co-a"), ("ho-2", "co-a")], node: "relay-1", instance: "i-1", at: Self.t0)
            #expect(try store.insertSupportCode(Self.code(111_111, node: "relay-1"), now: Self.t0))
            #expect(try store.acquireNodeLease(Self.lease("relay-2", "i-9"), now: Self.t0) == nil)
            #expect(try store.insertSupportCode(Self.code(222_222, node: "relay-2"), now: Self.t0))

            // relay-1 stops renewing; a new process takes the name after the lease ran out.
            let later = Self.t0 + 40
            #expect(try store.acquireNodeLease(Self.lease("relay-1", "i-2", at: later), now: later) == nil)
            #expect(try store.hostLocation(hostID: "ho-1", companyID: "co-a", now: later) == nil)
            #expect(try store.claimSupportCode(111_111, now: later) == nil)
            try store.announceHosts([("ho-1", "co-a")], node: "relay-1", instance: "i-2", at: later)
            #expect(try store.hostLocation(hostID: "ho-1", companyID: "co-a", now: later)?.instance == "i-2")
            // Another node's code is not touched.
            #expect(try store.claimSupportCode(222_222, now: Self.t0 + 10)?.node == "relay-2")
        }
    }

    // MARK: Host directory

    @Test(arguments: StoreBackend.available) func hostsAreFoundOnTheirLiveNodeOnly(_ backend: StoreBackend) throws {
        try backend.withStore { store throws in
            let one = Self.lease("relay-1", "i-1", for: 30)
            let two = Self.lease("relay-2", "i-2", for: 300)
            #expect(try store.acquireNodeLease(one, now: Self.t0) == nil)
            #expect(try store.acquireNodeLease(two, now: Self.t0) == nil)
            #expect(try store.hostLocation(hostID: "ho-1", companyID: "co-a", now: Self.t0) == nil, "not registered anywhere")
            try store.announceHosts([], node: "relay-1", instance: "i-1", at: Self.t0)
            try store.announceHosts([("ho-1", "co-a"), ("ho-2", "co-b"), ("ho-1", "co-a")], node: "relay-1", instance: "i-1", at: Self.t0)
            #expect(try store.hostLocation(hostID: "ho-1", companyID: "co-a", now: Self.t0 + 1) == one)
            #expect(try store.hostLocation(hostID: "ho-2", companyID: "co-b", now: Self.t0 + 1) == one)
            #expect(try store.hostLocation(hostID: "ho-2", companyID: "co-a", now: Self.t0 + 1) == nil, "another company's host")

            // The host reconnects to relay-2: its entry moves there.
            try store.announceHosts([("ho-2", "co-b")], node: "relay-2", instance: "i-2", at: Self.t0 + 5)
            #expect(try store.hostLocation(hostID: "ho-2", companyID: "co-b", now: Self.t0 + 6) == two)
            // relay-1 sees the old connection close late: the entry is no longer its own to remove.
            try store.withdrawHost(hostID: "ho-2", node: "relay-1")
            #expect(try store.hostLocation(hostID: "ho-2", companyID: "co-b", now: Self.t0 + 6) == two)
            try store.withdrawHost(hostID: "ho-2", node: "relay-2")
            #expect(try store.hostLocation(hostID: "ho-2", companyID: "co-b", now: Self.t0 + 6) == nil)

            // relay-1's lease runs out: its hosts drop out of the directory, relay-2's stay.
            try store.announceHosts([("ho-3", "co-a")], node: "relay-2", instance: "i-2", at: Self.t0 + 7)
            #expect(try store.hostLocation(hostID: "ho-1", companyID: "co-a", now: Self.t0 + 29) == one)
            #expect(try store.hostLocation(hostID: "ho-1", companyID: "co-a", now: Self.t0 + 30) == nil)
            #expect(try store.hostLocation(hostID: "ho-3", companyID: "co-a", now: Self.t0 + 30) == two)
            // Renewed late (nobody took the name meanwhile), they count again.
            #expect(try store.renewNodeLease(name: "relay-1", instance: "i-1", until: Self.t0 + 90))
            #expect(try store.hostLocation(hostID: "ho-1", companyID: "co-a", now: Self.t0 + 31)?.name == "relay-1")
        }
    }

    @Test(arguments: StoreBackend.available) func manyHostsAreAnnouncedAtOnce(_ backend: StoreBackend) throws {
        try backend.withStore { store throws in
            #expect(try store.acquireNodeLease(Self.lease("relay-1", "i-1"), now: Self.t0) == nil)
            let hosts = (0..<2_500).map { (hostID: "ho-\($0)", companyID: "co-\($0 % 3)") }
            try store.announceHosts(hosts, node: "relay-1", instance: "i-1", at: Self.t0)
            #expect(try store.hostLocation(hostID: "ho-0", companyID: "co-0", now: Self.t0)?.name == "relay-1")
            #expect(try store.hostLocation(hostID: "ho-2499", companyID: "co-0", now: Self.t0)?.name == "relay-1")
            #expect(try store.hostLocation(hostID: "ho-2498", companyID: "co-0", now: Self.t0) == nil)
        }
    }

    // MARK: Dead nodes

    @Test(arguments: StoreBackend.available) func aDeadNodesRecordsAreClosedOnceAndALiveNodesLeftAlone(_ backend: StoreBackend) throws {
        try backend.withStore { store throws in
            #expect(try store.acquireNodeLease(Self.lease("relay-dead", "i-1", for: 30), now: Self.t0) == nil)
            #expect(try store.acquireNodeLease(Self.lease("relay-live", "i-2", for: 600), now: Self.t0) == nil)
            let start = "2026-11-02T01:00:00Z"
            try store.write(
                UsageBatch(opened: [
                    StoreFixture.usageRecord("d1", company: "co-a", started: start, ended: nil, node: "relay-dead"),
                    StoreFixture.usageRecord("d2", company: "co-a", started: start, ended: nil, node: "relay-dead"),
                    StoreFixture.usageRecord("d3", company: "co-a", started: start, ended: "2026-11-02T01:02:00Z", node: "relay-dead"),
                    StoreFixture.usageRecord("l1", company: "co-a", started: start, ended: nil, node: "relay-live"),
                ]))
            let checkpoint = StoreFixture.milliseconds("2026-11-02T01:05:00Z")
            try store.write(UsageBatch(checkpoints: [UsageCheckpoint(sessionID: "d1", counters: UsageCounters(bytesToViewer: 77), at: checkpoint)]))
            try store.announceHosts([("ho-d", "co-a")], node: "relay-dead", instance: "i-1", at: Self.t0)
            try store.announceHosts([("ho-l", "co-a")], node: "relay-live", instance: "i-2", at: Self.t0)
            #expect(try store.insertSupportCode(Self.code(100_001, node: "relay-dead"), now: Self.t0))
            #expect(try store.insertSupportCode(Self.code(100_002, node: "relay-live"), now: Self.t0))
            let audits = try store.auditLog(limit: 100).count

            // Not yet: the dead node's lease ran out at t0+30, not before t0+30.
            #expect(try store.closeRecordsOfDeadNodes(expiredBefore: Self.t0 + 30, actor: "relay") == [:])
            #expect(try store.usageRecord(id: "d1")?.endedAt == nil)

            #expect(try store.closeRecordsOfDeadNodes(expiredBefore: Self.t0 + 31, actor: "relay") == ["relay-dead": 2])
            let d1 = try #require(try store.usageRecord(id: "d1"))
            #expect(d1.endedAt == checkpoint && d1.endReason == .relayRestart && d1.durationSeconds == 300 && d1.counters.bytesToViewer == 77)
            let d2 = try #require(try store.usageRecord(id: "d2"))
            #expect(d2.endedAt == d2.startedAt && d2.endReason == .relayRestart)
            #expect(try store.usageRecord(id: "d3")?.endReason == .normal)
            #expect(try store.usageRecord(id: "l1")?.endedAt == nil, "a live node's record is left open")
            let audit = try store.auditLog(limit: 100)
            #expect(audit.count == audits + 1)
            #expect(audit.first?.action == .restartRecovery && audit.first?.actor == "relay")
            #expect(audit.first?.detail == "sessions_closed=2 reason=relay_restart node=relay-dead")

            // The dead node's host entries and codes are gone, the live node's are not.
            #expect(try store.claimSupportCode(100_001, now: Self.t0 + 31) == nil)
            #expect(try store.claimSupportCode(100_002, now: Self.t0 + 31)?.node == "relay-live")
            #expect(try store.hostLocation(hostID: "ho-l", companyID: "co-a", now: Self.t0 + 31)?.name == "relay-live")
            #expect(try store.liveNodes(now: Self.t0 + 31).map(\.name) == ["relay-live"])

            // Again, by another node or later: nothing more is closed, nothing audited.
            #expect(try store.closeRecordsOfDeadNodes(expiredBefore: Self.t0 + 31, actor: "relay") == [:])
            #expect(try store.closeRecordsOfDeadNodes(expiredBefore: Self.t0 + 10_000, actor: "relay") == ["relay-live": 1])
            #expect(try store.closeRecordsOfDeadNodes(expiredBefore: Self.t0 + 10_000, actor: "relay") == [:])
            #expect(try store.auditLog(limit: 100).count == audits + 2)
            #expect(try store.usageRecord(id: "d1")?.endedAt == checkpoint)

            // The stalled process learns that its records were closed; a new one takes the name.
            #expect(try store.renewNodeLease(name: "relay-dead", instance: "i-1", until: Self.t0 + 100) == false)
            #expect(try store.acquireNodeLease(Self.lease("relay-dead", "i-3", at: Self.t0 + 40), now: Self.t0 + 40) == nil)
            #expect(try store.liveNodes(now: Self.t0 + 41).map(\.instance) == ["i-3"])
        }
    }

    // MARK: Support codes

    @Test(arguments: StoreBackend.available) func aCodeIsIssuedOnceAndClaimedOnce(_ backend: StoreBackend) throws {
        try backend.withStore { store throws in
            let code = Self.code(42, node: "relay-1", expires: Self.t0 + 600)
            #expect(try store.insertSupportCode(code, now: Self.t0))
            #expect(try store.insertSupportCode(Self.code(42, node: "relay-2"), now: Self.t0 + 1) == false, "live digits on another node")
            #expect(try store.claimSupportCode(43, now: Self.t0 + 2) == nil)
            #expect(try store.claimSupportCode(42, now: Self.t0 + 2) == code)
            #expect(try store.claimSupportCode(42, now: Self.t0 + 2) == nil, "claimed once")
            #expect(try store.insertSupportCode(Self.code(42, node: "relay-2"), now: Self.t0 + 3), "the digits are free again")

            // An expired code is claimed by nobody, and its digits can be issued again.
            let short = Self.code(999_999, node: "relay-1", expires: Self.t0 + 60)
            #expect(try store.insertSupportCode(short, now: Self.t0))
            #expect(try store.claimSupportCode(999_999, now: Self.t0 + 60) == nil)
            let again = Self.code(999_999, node: "relay-2", expires: Self.t0 + 700)
            #expect(try store.insertSupportCode(again, now: Self.t0 + 60))
            #expect(try store.claimSupportCode(999_999, now: Self.t0 + 61) == again)

            // A node deletes its own codes only.
            #expect(try store.insertSupportCode(Self.code(1, node: "relay-1"), now: Self.t0))
            #expect(try store.insertSupportCode(Self.code(2, node: "relay-1"), now: Self.t0))
            #expect(try store.insertSupportCode(Self.code(3, node: "relay-2"), now: Self.t0))
            try store.deleteSupportCodes([], node: "relay-1")
            try store.deleteSupportCodes([1, 3], node: "relay-1")
            #expect(try store.claimSupportCode(1, now: Self.t0) == nil)
            #expect(try store.claimSupportCode(2, now: Self.t0)?.node == "relay-1")
            #expect(try store.claimSupportCode(3, now: Self.t0)?.node == "relay-2")
        }
    }

    // MARK: Wrong support codes

    @Test(arguments: StoreBackend.available) func wrongCodesAreCountedInTheLastMinuteAndHour(_ backend: StoreBackend) throws {
        try backend.withStore { store throws in
            #expect(try store.recordWrongSupportCode(at: Self.t0) == (1, 1))
            #expect(try store.recordWrongSupportCode(at: Self.t0 + 10) == (2, 2))
            #expect(try store.recordWrongSupportCode(at: Self.t0 + 30) == (3, 3))
            // t0 and t0+10 are a minute or more before t0+70.
            #expect(try store.recordWrongSupportCode(at: Self.t0 + 70) == (2, 4))
            // An hour on, t0 and t0+10 are dropped; t0+30 is still within the hour of t0+3620.
            #expect(try store.recordWrongSupportCode(at: Self.t0 + 3_610) == (1, 3))
            #expect(try store.recordWrongSupportCode(at: Self.t0 + 3_631) == (2, 3))
            // Another store on the same database (another node) counts the same failures.
            let node = try store.reopened()
            defer { node.close() }
            #expect(try node.recordWrongSupportCode(at: Self.t0 + 3_632) == (3, 4))
        }
    }

    // MARK: Source penalties

    @Test(arguments: StoreBackend.available) func sourcePenaltiesAreReadUpdatedAndPruned(_ backend: StoreBackend) throws {
        try backend.withStore { store throws in
            #expect(try store.sourcePenalty(source: "192.0.2.7") == nil)
            let first = SourcePenaltyRecord(level: 1, updatedAt: Self.t0, blockedUntil: Self.t0)
            let written = try store.updateSourcePenalty(source: "192.0.2.7") { current in
                current == nil ? first : nil
            }
            #expect(written == first)
            #expect(try store.sourcePenalty(source: "192.0.2.7") == first)
            let raised = try store.updateSourcePenalty(source: "192.0.2.7") { current in
                current.map { SourcePenaltyRecord(level: $0.level + 5, updatedAt: Self.t0 + 60, blockedUntil: Self.t0 + 120) }
            }
            #expect(raised == SourcePenaltyRecord(level: 6, updatedAt: Self.t0 + 60, blockedUntil: Self.t0 + 120))
            try store.updateSourcePenalty(source: "2001:db8:1:2::/64") { _ in SourcePenaltyRecord(level: 2, updatedAt: Self.t0, blockedUntil: Self.t0) }

            // Pruned once the block ended and it was last updated before the cutoff.
            try store.pruneSourcePenalties(updatedBefore: Self.t0 + 3_600, now: Self.t0 + 100)
            #expect(try store.sourcePenalty(source: "192.0.2.7") != nil, "still blocked")
            #expect(try store.sourcePenalty(source: "2001:db8:1:2::/64") == nil)
            try store.pruneSourcePenalties(updatedBefore: Self.t0 + 60, now: Self.t0 + 200)
            #expect(try store.sourcePenalty(source: "192.0.2.7") != nil, "updated at the cutoff, not before it")
            try store.pruneSourcePenalties(updatedBefore: Self.t0 + 61, now: Self.t0 + 200)
            #expect(try store.sourcePenalty(source: "192.0.2.7") == nil)

            // An update that returns nil deletes the record.
            try store.updateSourcePenalty(source: "192.0.2.8") { _ in first }
            #expect(try store.updateSourcePenalty(source: "192.0.2.8") { _ in nil } == nil)
            #expect(try store.sourcePenalty(source: "192.0.2.8") == nil)
        }
    }

    // MARK: Races between nodes

    /// Two nodes (two stores on one database), several threads each, start processes for
    /// the same names at once: exactly one process gets each name, and every other one is
    /// told it is that one's.
    @Test(arguments: StoreBackend.available) func ofProcessesRacingForANameExactlyOneGetsIt(_ backend: StoreBackend) throws {
        try Self.withNodes(backend) { one, two throws in
            let stores = [one, two]
            for round in 0..<10 {
                let name = "relay-\(round)"
                let results = try Self.race(16) { index in
                    try stores[index % 2].acquireNodeLease(Self.lease(name, "i-\(index)"), now: Self.t0)
                }
                let winners = results.indices.filter { results[$0] == nil }
                try #require(winners.count == 1, "round \(round): \(results)")
                let winner = "i-\(winners[0])"
                #expect(results.compactMap { $0?.instance }.allSatisfy { $0 == winner })
                #expect(try one.liveNodes(now: Self.t0).filter { $0.name == name }.map(\.instance) == [winner])
            }
            // The same once the leases ran out: one takes each name over.
            for round in 0..<5 {
                let name = "relay-\(round)"
                let later = Self.t0 + 100
                let results = try Self.race(16) { index in
                    try stores[index % 2].acquireNodeLease(Self.lease(name, "j-\(index)", at: later), now: later)
                }
                #expect(results.filter { $0 == nil }.count == 1, "round \(round): \(results)")
            }
        }
    }

    /// Viewers on several nodes claim the same codes at once: each code goes to exactly one.
    @Test(arguments: StoreBackend.available) func ofNodesClaimingACodeExactlyOneGetsIt(_ backend: StoreBackend) throws {
        try Self.withNodes(backend) { one, two throws in
            let codes = Array(100_000..<100_020)
            for code in codes { #expect(try one.insertSupportCode(Self.code(code, node: "relay-1"), now: Self.t0)) }
            let stores = [one, two]
            let claims = try Self.race(16) { index in
                try codes.compactMap { try stores[index % 2].claimSupportCode($0, now: Self.t0 + 1)?.code }
            }
            #expect(claims.flatMap { $0 }.sorted() == codes)
            // And of two nodes issuing the same digits at once, one does.
            let issued = try Self.race(16) { index in
                try stores[index % 2].insertSupportCode(Self.code(777_777, node: "relay-\(index)"), now: Self.t0)
            }
            #expect(issued.filter { $0 }.count == 1)
        }
    }

    /// Many engineers on several nodes asking for codes while customers use theirs: every
    /// issue and every claim succeeds. (As SERIALIZABLE transactions, fifty at once on
    /// three nodes ran out of retries on each other's predicate locks, in relay-bench cluster.)
    @Test(arguments: StoreBackend.available) func codesIssuedAndClaimedAtOnceAllSucceed(_ backend: StoreBackend) throws {
        try Self.withNodes(backend) { one, two throws in
            let stores = [one, two]
            let rounds = 25
            let claimed = try Self.race(32) { index in
                var claimed = 0
                for round in 0..<rounds {
                    let code = 200_000 + index * rounds + round
                    let store = stores[(index + round) % 2]
                    guard try store.insertSupportCode(Self.code(code, node: "relay-\(index % 2)"), now: Self.t0) else { continue }
                    if try stores[(index + round + 1) % 2].claimSupportCode(code, now: Self.t0 + 1) != nil { claimed += 1 }
                }
                return claimed
            }
            #expect(claimed == Array(repeating: rounds, count: 32))
        }
    }

    /// Failures seen by several nodes at once all count: each caller gets a different count.
    /// (As plain SERIALIZABLE transactions, two dozen at once ran out of retries: they take
    /// turns instead, SQLStore+Cluster.swift "Hot records".)
    @Test(arguments: StoreBackend.available) func wrongCodesSeenAtOnceAllCount(_ backend: StoreBackend) throws {
        try Self.withNodes(backend) { one, two throws in
            let stores = [one, two]
            let counts = try Self.race(16) { index in try stores[index % 2].recordWrongSupportCode(at: Self.t0).lastHour }
            #expect(counts.sorted() == Array(1...16))
        }
    }

    /// One source failing on several nodes at once: every failure raises its level.
    @Test(arguments: StoreBackend.available) func penaltiesRaisedAtOnceAllCount(_ backend: StoreBackend) throws {
        try Self.withNodes(backend) { one, two throws in
            let stores = [one, two]
            _ = try Self.race(16) { index in
                try stores[index % 2].updateSourcePenalty(source: "198.51.100.9") { current in
                    SourcePenaltyRecord(level: (current?.level ?? 0) + 1, updatedAt: Self.t0, blockedUntil: Self.t0)
                }
            }
            #expect(try one.sourcePenalty(source: "198.51.100.9")?.level == 16)
        }
    }
}
