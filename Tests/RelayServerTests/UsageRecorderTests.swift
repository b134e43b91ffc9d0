import Foundation
import Logging
import NIOPosix
import RelayStore
import RelayTestSupport
import RelayWire
import Synchronization
import Testing

@testable import RelayServer

/// Issue 10 item 4 (REVIEW D3): a usage-history write that fails is kept and written again,
/// never dropped, and writing it again changes nothing that is already there.
@Suite struct UsageRecorderTests {
    // MARK: The back-off, in virtual time

    @Test func backoffDoublesToItsMaximumAndResetsOnSuccess() {
        let clock = VirtualClock()
        var backoff = UsageWriteBackoff<VirtualClock.Instant>(initialDelay: .seconds(1), maximumDelay: .seconds(60))
        let start = clock.now
        #expect(backoff.mayWrite(at: start))
        let delays = (0..<9).map { _ in backoff.failed(at: start) }
        #expect(delays.map(\.delay) == [1, 2, 4, 8, 16, 32, 60, 60, 60].map { Duration.seconds($0) })
        #expect(delays.map(\.startsStreak) == [true] + Array(repeating: false, count: 8))
        #expect(!backoff.mayWrite(at: start.advanced(by: .seconds(59))))
        #expect(backoff.mayWrite(at: start.advanced(by: .seconds(60))))
        #expect(backoff.succeeded() == 9)
        #expect(backoff.mayWrite(at: start))
        #expect(backoff.failed(at: start) == (Duration.seconds(1), true))
    }

    // MARK: Merging a failed batch with what came after it

    static func record(_ id: String) -> UsageRecord {
        StoreFixture.usageRecord(id, company: "co-a", started: "2026-11-02T01:00:00Z", ended: nil)
    }

    @Test func aKeptBatchHoldsOneCheckpointPerOpenSession() {
        var failed = UsageBatch(opened: [Self.record("s1"), Self.record("s2")])
        failed.addCheckpoints([
            UsageCheckpoint(sessionID: "s1", counters: UsageCounters(bytesToViewer: 1), at: 1),
            UsageCheckpoint(sessionID: "s2", counters: UsageCounters(bytesToViewer: 1), at: 1),
        ])
        var later = UsageBatch(
            opened: [Self.record("s3")], closed: [UsageClosure(sessionID: "s2", endedAt: 5, counters: UsageCounters(bytesToViewer: 9), reason: .normal)])
        later.addCheckpoints([
            UsageCheckpoint(sessionID: "s1", counters: UsageCounters(bytesToViewer: 7), at: 4),
            UsageCheckpoint(sessionID: "s3", counters: UsageCounters(bytesToViewer: 2), at: 4),
        ])
        failed.append(later)
        #expect(failed.opened.map(\.id) == ["s1", "s2", "s3"])
        #expect(failed.closed.map(\.sessionID) == ["s2"])
        // s1: only the latest; s2: none (closed); s3: its one.
        #expect(failed.checkpoints.map(\.sessionID) == ["s1", "s3"])
        #expect(failed.checkpoints.map(\.at) == [4, 4])
        #expect(failed.count == 6)
    }

    // MARK: The recorder against a store that fails

    /// A usage store that fails its next `failures` writes, each after committing it if
    /// `commitThenFail` (an acknowledgement lost after the commit).
    final class FailingWriter: Sendable {
        let store: SQLStore
        private let state: Mutex<(failuresLeft: Int, attempts: Int)>
        let commitThenFail: Bool

        init(store: SQLStore, failures: Int, commitThenFail: Bool = false) {
            self.store = store
            self.state = Mutex((failures, 0))
            self.commitThenFail = commitThenFail
        }

        var attempts: Int { self.state.withLock { $0.attempts } }

        func write(_ batch: UsageBatch) throws {
            let fail = self.state.withLock { state in
                state.attempts += 1
                guard state.failuresLeft > 0 else { return false }
                state.failuresLeft -= 1
                return true
            }
            if !fail || self.commitThenFail { try self.store.write(batch) }
            if fail { throw StoreError(.unavailable, "database is locked (test)") }
        }
    }

    static func withRecorder(
        failures: Int, commitThenFail: Bool = false,
        _ body: (UsageRecorder<VirtualClock>, FailingWriter, VirtualClock, RelayMetrics) async throws -> Void
    ) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("usage-recorder-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let writer = FailingWriter(store: try SQLStore(dataDirectory: directory), failures: failures, commitThenFail: commitThenFail)
        let threadPool = NIOThreadPool(numberOfThreads: 1)
        threadPool.start()
        let clock = VirtualClock()
        let metrics = RelayMetrics()
        var logger = Logger(label: "usage-recorder-test")
        logger.logLevel = .critical
        let recorder = UsageRecorder(
            journal: UsageJournal(), write: { try writer.write($0) }, threadPool: threadPool, liveSessions: { [] }, metrics: metrics,
            logger: logger, clock: clock, interval: .seconds(3600), now: { Date(timeIntervalSince1970: 1_800_000_000) }
        )
        do {
            try await body(recorder, writer, clock, metrics)
        } catch {
            try? await threadPool.shutdownGracefully()
            throw error
        }
        try await threadPool.shutdownGracefully()
    }

    static func metric(_ metrics: RelayMetrics, _ name: String) -> Double {
        let text = String(decoding: metrics.exposition(), as: UTF8.self)
        return text.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ").last!) } ?? .nan
    }

    /// Before the fix the first failed batch was logged and thrown away: `s1` never existed.
    @Test(.timeLimit(.minutes(1))) func aFailedWriteIsRetriedWithBackoffUntilItSucceeds() async throws {
        try await Self.withRecorder(failures: 3) { recorder, writer, clock, metrics in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await recorder.run() }
                // The ticker and the retry loop are waiting on the clock.
                #expect(await eventually { clock.sleepers == 1 })
                recorder.journal.opened(Self.record("s1"))
                #expect(await eventually { writer.attempts == 1 })
                #expect(await eventually { clock.sleepers == 2 })  // the retry after 1 s
                #expect(try writer.store.usageRecord(id: "s1") == nil)
                #expect(recorder.journal.pendingCount == 1)
                #expect(Self.metric(metrics, "relay_usage_writes_pending") == 1)

                // Recorded during the back-off: waits for the retry, is written with it.
                recorder.journal.closed(UsageClosure(sessionID: "s1", endedAt: 1_800_000_000_000, counters: UsageCounters(bytesToViewer: 5), reason: .normal))
                recorder.journal.opened(Self.record("s2"))
                clock.advance(by: .milliseconds(999))
                #expect(writer.attempts == 1)

                // Attempts at +1 s, +1+2 s fail; the one at +1+2+4 s succeeds.
                for (advance, attempts) in [(Duration.milliseconds(1), 2), (.seconds(2), 3), (.seconds(4), 4)] {
                    clock.advance(by: advance)
                    #expect(await eventually { writer.attempts == attempts })
                    if attempts < 4 { #expect(await eventually { clock.sleepers == 2 }) }
                }
                #expect(await eventually { recorder.journal.pendingCount == 0 && Self.metric(metrics, "relay_usage_writes_pending") == 0 })
                let s1 = try #require(try writer.store.usageRecord(id: "s1"))
                #expect(s1.endReason == .normal)
                #expect(s1.counters.bytesToViewer == 5)
                #expect(try writer.store.usageRecord(id: "s2") != nil)
                #expect(Self.metric(metrics, "relay_usage_write_errors_total") == 3)
                #expect(Self.metric(metrics, "relay_usage_writes_total") == 1)

                recorder.journal.finish()
                try await group.waitForAll()
            }
        }
    }

    /// A write that committed but reported an error is written again: nothing doubles and
    /// a closed record stays as it was closed.
    @Test(.timeLimit(.minutes(1))) func writingAKeptBatchAgainChangesNothing() async throws {
        try await Self.withRecorder(failures: 1, commitThenFail: true) { recorder, writer, clock, metrics in
            recorder.journal.opened(Self.record("s1"))
            recorder.journal.closed(UsageClosure(sessionID: "s1", endedAt: 1_800_000_000_000, counters: UsageCounters(bytesToViewer: 5), reason: .normal))
            #expect(await recorder.flush() == .seconds(1))
            #expect(recorder.journal.pendingCount == 2)
            // A closure arriving later for the same session (a shutdown) must not win.
            recorder.journal.closed(
                UsageClosure(sessionID: "s1", endedAt: 1_800_000_009_000, counters: UsageCounters(bytesToViewer: 9), reason: .relayShutdown))
            #expect(await recorder.flush() == nil)  // still backing off: nothing attempted
            #expect(writer.attempts == 1)
            clock.advance(by: .seconds(1))
            #expect(await recorder.flush() == nil)
            #expect(writer.attempts == 2)
            let s1 = try #require(try writer.store.usageRecord(id: "s1"))
            #expect(s1.endReason == .normal)
            #expect(s1.counters.bytesToViewer == 5)
            #expect(try writer.store.usagePage(companyID: "co-a", range: ExportRange(from: 0, to: .max), after: nil, limit: 10).count == 1)
        }
    }

    /// At shutdown the last write is tried again a few times before the process goes.
    @Test(.timeLimit(.minutes(1))) func theLastWriteAtShutdownIsRetried() async throws {
        try await Self.withRecorder(failures: 2) { recorder, writer, clock, _ in
            recorder.journal.opened(Self.record("s1"))
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await recorder.flushAtShutdown() }
                #expect(await eventually { writer.attempts == 1 && clock.sleepers == 1 })
                clock.advance(by: .seconds(1))
                #expect(await eventually { writer.attempts == 2 && clock.sleepers == 1 })
                clock.advance(by: .seconds(2))
                try await group.waitForAll()
            }
            #expect(writer.attempts == 3)
            #expect(try writer.store.usageRecord(id: "s1") != nil)
        }
    }
}

/// A clock that moves only when the test advances it; sleepers wake when it passes their
/// deadline, or throw `CancellationError` when cancelled.
final class VirtualClock: Clock, Sendable {
    struct Instant: InstantProtocol {
        var offset: Duration
        func advanced(by duration: Duration) -> Instant { Instant(offset: self.offset + duration) }
        func duration(to other: Instant) -> Duration { other.offset - self.offset }
        static func < (lhs: Instant, rhs: Instant) -> Bool { lhs.offset < rhs.offset }
    }

    private struct Sleeper {
        let id: Int
        let deadline: Instant
        let continuation: CheckedContinuation<Void, any Error>
    }

    private let state = Mutex<(now: Instant, sleepers: [Sleeper], nextID: Int)>((Instant(offset: .zero), [], 0))

    var now: Instant { self.state.withLock { $0.now } }
    var minimumResolution: Duration { .zero }
    /// Tasks sleeping on this clock now.
    var sleepers: Int { self.state.withLock { $0.sleepers.count } }

    func sleep(until deadline: Instant, tolerance: Duration? = nil) async throws {
        let id = self.state.withLock { state in
            defer { state.nextID += 1 }
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let resume: Result<Void, any Error>? = self.state.withLock { state in
                    if Task.isCancelled { return .failure(CancellationError()) }
                    if deadline <= state.now { return .success(()) }
                    state.sleepers.append(Sleeper(id: id, deadline: deadline, continuation: continuation))
                    return nil
                }
                if let resume { continuation.resume(with: resume) }
            }
        } onCancel: {
            let sleeper = self.state.withLock { state in
                state.sleepers.firstIndex { $0.id == id }.map { state.sleepers.remove(at: $0) }
            }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
    }

    func advance(by duration: Duration) {
        let due = self.state.withLock { state in
            state.now = state.now.advanced(by: duration)
            let now = state.now
            let due = state.sleepers.filter { $0.deadline <= now }
            state.sleepers.removeAll { $0.deadline <= now }
            return due
        }
        for sleeper in due { sleeper.continuation.resume() }
    }
}
