import Foundation
import Logging
import NIOPosix
import RelayStore
import RelayTestSupport
import Synchronization
import Testing

@testable import RelayServer

/// The relay's hourly purge on PostgreSQL logs a warning when the server renames old WAL
/// files for reuse (`wal_recycle = on`, PostgreSQL's default), where the rows it destroyed
/// may stay readable (outside test 15, F5; OPERATIONS.md §11 "Retention on PostgreSQL").
/// Each case has a server of its own, with the setting it needs.
@Suite(.enabled(if: StoreBackend.available.contains(.postgres), "needs PostgreSQL (RELAY_TEST_POSTGRES)"))
struct PurgeWALRecycleWarningTests {
    /// What a logger was given: level and message.
    final class Captured: LogHandler, @unchecked Sendable {
        let lines = Mutex<[(Logger.Level, String)]>([])
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        func log(event: LogEvent) { self.lines.withLock { $0.append((event.level, event.message.description)) } }

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { self.metadata[key] }
            set { self.metadata[key] = newValue }
        }
    }

    @Test(arguments: [true, false]) func theScheduledPurgeWarnsWhenTheServerRecyclesWAL(recycles: Bool) async throws {
        let server = try TestPostgresServer(settings: recycles ? [] : ["wal_recycle=off"])
        let store = try SQLStore(postgres: server.url)
        defer { store.close() }
        try store.write(
            UsageBatch(opened: [StoreFixture.usageRecord("old", company: "co-a", started: "2024-10-01T09:00:00Z", ended: "2024-10-01T10:00:00Z")]))
        let pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        let captured = Captured()
        let scheduler = RetentionScheduler(
            store: store, policy: .default, clock: ContinuousClock(), interval: .seconds(3600),
            now: { Date(milliseconds: StoreFixture.milliseconds("2026-11-02T10:00:00Z")) }, threadPool: pool,
            logger: Logger(label: "retention-test") { _ in captured })
        await scheduler.purgeOnce()
        try await pool.shutdownGracefully()

        let lines = captured.lines.withLock { $0 }
        #expect(lines.contains { $0.1 == "retention purge" }, "\(lines)")
        let warnings = lines.filter { $0.0 == .warning && $0.1.contains("wal_recycle = on") }
        #expect(warnings.count == (recycles ? 1 : 0), "\(lines)")
        #expect(warnings.allSatisfy { $0.1.contains("OPERATIONS.md §11") })
    }
}
