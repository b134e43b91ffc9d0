import Foundation
import Logging
import NIOPosix
import RelayStore
import RelayTestSupport
import Synchronization
import Testing

@testable import RelayServer

/// The relay's retention purge runs batch by batch, each batch a job of its own on the
/// background pool (issue 11 item 7; REVIEW.md §3 "The pool has two threads"): work
/// queued on the pool meanwhile runs between two batches, not after the whole purge.
///
/// The pool has one thread here, so what runs when is decided by the pool's queue alone,
/// as on a pool whose threads are all busy. Nothing sleeps: the store counts the batches.
@Suite struct RetentionPurgeTests {
    static let now = Date(milliseconds: StoreFixture.milliseconds("2026-11-02T10:00:00Z"))

    /// Before the fix the purge was one job: a usage write queued behind it waited for all
    /// 21 batches. Now it waits for the batch that was running when it came.
    @Test func aUsageWriteQueuedDuringAPurgeRunsAfterOneBatchNotAfterThePurge() async throws {
        try await Self.withStore { sqlite, directory in
            let stamp = UUID().uuidString.prefix(8)
            try sqlite.write(
                UsageBatch(
                    opened: (0..<200).map {
                        StoreFixture.usageRecord(
                            "old-\($0)", company: "co-a", hostName: "PURGED-\(stamp)-\($0)", started: "2024-10-01T09:00:00Z", ended: "2024-10-01T10:00:00Z")
                    }))
            let pool = NIOThreadPool(numberOfThreads: 1)
            pool.start()
            let writtenAfter = Shared<Int?>(nil)
            let store = CountingStore(sqlite) { store, batch in
                guard batch == 1 else { return }
                // Queued while batch 1 runs, as the usage recorder's write would be.
                pool.submit { _ in
                    do {
                        try sqlite.write(UsageBatch(opened: [StoreFixture.usageRecord("new", company: "co-a", started: "2026-11-02T09:59:00Z", ended: nil)]))
                        writtenAfter.set(store.batchesDone)
                    } catch {
                        Issue.record("the usage write failed: \(error)")
                    }
                }
            }
            let reports = Shared<[PurgeReport?]>([])
            var scheduler = Self.scheduler(store: store, pool: pool)
            scheduler.onPurge = { report in reports.update { $0.append(report) } }
            await scheduler.purgeOnce()
            try await pool.shutdownGracefully()

            // 200 rows, 10 a batch: 20 full batches and an empty one that finds nothing left.
            #expect(store.batchesDone == 21)
            #expect(writtenAfter.value == 1)
            #expect(try sqlite.usageRecord(id: "new") != nil)
            let report = try #require(reports.value.first ?? nil)
            #expect(report.sessions == 200)
            #expect(try sqlite.usageCount() == 1)
            // One audit entry for the whole run, by the relay.
            let purges = try sqlite.auditLog(limit: 100).filter { $0.action == .purge }
            #expect(purges.count == 1)
            #expect(purges.first?.actor == "relay")
            #expect(purges.first?.detail?.hasPrefix("sessions=200 access_log=0") == true)
            // Destroyed unrecoverably, batches and writes in between notwithstanding.
            #expect(!Self.files(of: directory).contains("PURGED-\(stamp)"))
        }
    }

    /// A graceful shutdown stops a running purge after the batch it is in; what it
    /// destroyed so far gets its audit entry and the write-ahead log's truncation, and the
    /// rest is left (only rows past retention) for the next run.
    @Test func aShutdownStopsThePurgeAfterItsBatchAndStillFinishesIt() async throws {
        try await Self.withStore { sqlite, directory in
            try sqlite.write(
                UsageBatch(
                    opened: (0..<200).map {
                        StoreFixture.usageRecord("old-\($0)", company: "co-a", started: "2024-10-01T09:00:00Z", ended: "2024-10-01T10:00:00Z")
                    }))
            let pool = NIOThreadPool(numberOfThreads: 1)
            pool.start()
            let purge = Shared<Task<Void, Never>?>(nil)
            // The task is cancelled, as a graceful shutdown cancels the scheduler, during batch 3.
            let store = CountingStore(sqlite) { _, batch in
                if batch == 3 { purge.value?.cancel() }
            }
            let scheduler = Self.scheduler(store: store, pool: pool)
            let (go, start) = AsyncStream.makeStream(of: Void.self)
            let task = Task {
                for await _ in go { break }
                await scheduler.purgeOnce()
            }
            purge.set(task)
            start.yield()
            await task.value
            try await pool.shutdownGracefully()

            #expect(store.batchesDone == 3)
            #expect(try sqlite.usageCount() == 170)
            let purges = try sqlite.auditLog(limit: 100).filter { $0.action == .purge }
            #expect(purges.count == 1)
            #expect(purges.first?.detail?.hasPrefix("sessions=30 access_log=0") == true)
            let wal = try FileManager.default.attributesOfItem(atPath: directory + "/relay.sqlite-wal")[.size] as? Int
            #expect(wal == 0)
        }
    }

    static func scheduler(store: any UsageStore, pool: NIOThreadPool) -> RetentionScheduler<ContinuousClock> {
        var logger = Logger(label: "retention-test")
        logger.logLevel = .critical
        var scheduler = RetentionScheduler(
            store: store, policy: .default, clock: ContinuousClock(), interval: .seconds(3600), now: { Self.now }, threadPool: pool, logger: logger
        )
        scheduler.batchSize = 10
        return scheduler
    }

    static func withStore<T>(_ body: (SQLStore, String) async throws -> T) async throws -> T {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("retention-purge-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        return try await body(try SQLStore(dataDirectory: directory), directory)
    }

    /// The bytes of the database and its `-wal` and `-shm` files, as text that may be searched.
    static func files(of directory: String) -> String {
        var files = Data()
        for suffix in ["", "-wal", "-shm"] {
            if let data = FileManager.default.contents(atPath: directory + "/relay.sqlite" + suffix) { files.append(data) }
        }
        return String(decoding: files, as: UTF8.self)
    }
}

/// A store that counts the purge's batches as they finish and calls `duringBatch` with
/// the batch's number inside each one, on the pool's thread, before it runs.
private final class CountingStore: UsageStore {
    let store: SQLStore
    private let done = Atomic<Int>(0)
    private let started = Atomic<Int>(0)
    private let duringBatch: @Sendable (CountingStore, Int) -> Void

    init(_ store: SQLStore, duringBatch: @escaping @Sendable (CountingStore, Int) -> Void) {
        self.store = store
        self.duringBatch = duringBatch
    }

    var batchesDone: Int { self.done.load(ordering: .sequentiallyConsistent) }

    func purgeBatch(policy: RetentionPolicy, now: Date, limit: Int) throws -> PurgeBatchResult {
        self.duringBatch(self, self.started.add(1, ordering: .sequentiallyConsistent).newValue)
        defer { self.done.add(1, ordering: .sequentiallyConsistent) }
        return try self.store.purgeBatch(policy: policy, now: now, limit: limit)
    }

    func purgeCounts(policy: RetentionPolicy, now: Date) throws -> PurgeReport { try self.store.purgeCounts(policy: policy, now: now) }
    func finishPurge(_ report: PurgeReport, actor: String) throws { try self.store.finishPurge(report, actor: actor) }
    func beginPurgeTurn() throws -> PurgeTurn? { try self.store.beginPurgeTurn() }
    func write(_ batch: UsageBatch) throws { try self.store.write(batch) }
    func closeInterruptedSessions(relayNode: String?, reason: UsageRecord.EndReason, actor: String) throws -> Int {
        try self.store.closeInterruptedSessions(relayNode: relayNode, reason: reason, actor: actor)
    }
    func usageRecord(id: String) throws -> UsageRecord? { try self.store.usageRecord(id: id) }
    func recentSessions(companyID: String, engineerLogin: String, limit: Int) throws -> [UsageRecord] {
        try self.store.recentSessions(companyID: companyID, engineerLogin: engineerLogin, limit: limit)
    }
    func usagePage(companyID: String, range: ExportRange, after cursor: UsageCursor?, limit: Int) throws -> [UsageRecord] {
        try self.store.usagePage(companyID: companyID, range: range, after: cursor, limit: limit)
    }
    func placeHold(companyID: String, reason: String, actor: String) throws -> LegalHold {
        try self.store.placeHold(companyID: companyID, reason: reason, actor: actor)
    }
    func releaseHold(companyID: String, actor: String) throws { try self.store.releaseHold(companyID: companyID, actor: actor) }
    func legalHolds() throws -> [LegalHold] { try self.store.legalHolds() }
    func appendAudit(_ entry: AuditEntry) throws { try self.store.appendAudit(entry) }
    func auditLog(limit: Int) throws -> [AuditEntry] { try self.store.auditLog(limit: limit) }
}

/// A value several tasks and threads share.
private final class Shared<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { self.mutex = Mutex(value) }
    var value: Value { self.mutex.withLock { $0 } }
    func set(_ value: Value) { self.mutex.withLock { $0 = value } }
    func update(_ body: (inout Value) -> Void) { self.mutex.withLock { body(&$0) } }
}
