import Foundation
import NIOCore
import Testing

@testable import RelayServer

/// When the relay gives freed memory back to the kernel (HeapTrimPolicy; benchmarks/RESULTS.md
/// "Soak": without it, RSS after 100,000 connections stayed 36 MiB above the baseline).
@Suite struct HeapTrimTests {
    let start = NIODeadline.uptimeNanoseconds(1_000_000_000)

    /// `policy.observe` outside the #expect macro, which cannot call a mutating method.
    static func trims(_ policy: inout HeapTrimPolicy, live: Int, now: NIODeadline) -> Bool {
        policy.observe(live: live, now: now)
    }

    @Test func aFallInConnectionsTrimsAtOnceAndThenAtMostOncePerInterval() {
        var policy = HeapTrimPolicy(interval: .seconds(10), minimumDrop: 64)
        var now = self.start
        // Load climbs: nothing to give back.
        for live in stride(from: 0, through: 500, by: 50) {
            #expect(!Self.trims(&policy, live: live, now: now))
            now = now + .seconds(1)
        }
        // A drop smaller than the minimum is memory the next connections reuse.
        #expect(!Self.trims(&policy, live: 450, now: now))
        // A larger one trims at once (no trim happened yet).
        #expect(Self.trims(&policy, live: 300, now: now))
        policy.trimmed(live: 300, now: now)
        // The peak restarts at 300: load going back up and down within the interval waits.
        now = now + .seconds(1)
        #expect(!Self.trims(&policy, live: 400, now: now))
        now = now + .seconds(1)
        #expect(!Self.trims(&policy, live: 100, now: now))
        now = self.start + .seconds(11) + .seconds(10) - .milliseconds(1)
        #expect(!Self.trims(&policy, live: 100, now: now))
        now = now + .milliseconds(1)
        #expect(Self.trims(&policy, live: 100, now: now))
        policy.trimmed(live: 100, now: now)
    }

    @Test func levelLoadIsNeverTrimmed() {
        var policy = HeapTrimPolicy(interval: .seconds(10))
        var now = self.start
        for second in 0..<600 {
            // 1,000 connections, give or take 30: churn the allocator reuses.
            #expect(!Self.trims(&policy, live: 1000 + (second % 7) * 10 - 30, now: now))
            now = now + .seconds(1)
        }
    }

    @Test func noIntervalNeverTrims() {
        var policy = HeapTrimPolicy(interval: nil)
        #expect(!Self.trims(&policy, live: 10_000, now: self.start))
        #expect(!Self.trims(&policy, live: 0, now: self.start + .seconds(3600)))
    }

    @Test func theConfigFileSetsOrTurnsOffTrimming() throws {
        var configuration = RelayConfiguration()
        #expect(configuration.heapTrim.interval == .seconds(10))
        try RelayConfigurationTests.apply(#"{"heap_trim_seconds": 60}"#, to: &configuration)
        #expect(configuration.heapTrim.interval == .seconds(60))
        try RelayConfigurationTests.apply(#"{"heap_trim_seconds": 0}"#, to: &configuration)
        #expect(configuration.heapTrim.interval == nil)
        let error = #expect(throws: (any Error).self) { try RelayConfigurationTests.apply(#"{"heap_trim_seconds": -1}"#, to: &configuration) }
        #expect("\(error.map { "\($0)" } ?? "")".contains("heap_trim_seconds must be 0…86400"))
    }

    /// On this machine's glibc the trim is there and runs (what the relay calls).
    @Test func glibcTrimIsFoundAndRuns() {
        #expect(HeapTrim.isAvailable)
        var blocks: [UnsafeMutableRawPointer] = []
        for _ in 0..<20_000 { blocks.append(malloc(512)!) }
        for (index, block) in blocks.enumerated() where index < blocks.count - 1 { free(block) }
        _ = HeapTrim.trim()
        free(blocks.last!)
    }
}
