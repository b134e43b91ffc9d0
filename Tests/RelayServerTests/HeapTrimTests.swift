import Foundation
import NIOCore
import RelayWire
import Testing

@testable import RelayServer

/// When the relay gives freed memory back to the kernel (HeapTrimPolicy; benchmarks/RESULTS.md
/// "Soak": without it, RSS after 100,000 connections stayed 36 MiB above the baseline).
@Suite struct HeapTrimTests {
    let start = NIODeadline.uptimeNanoseconds(1_000_000_000)

    /// `policy.observe` outside the #expect macro, which cannot call a mutating method.
    static func trims(_ policy: inout HeapTrimPolicy, live: Int, peak: Int? = nil, now: NIODeadline) -> Bool {
        policy.observe(live: live, peak: peak, now: now)
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

    /// Memory is freed a little after the count falls: a trim after a drop is followed by
    /// one more an interval later, even with no new drop, and then none.
    @Test func aTrimAfterADropIsFollowedByOneMore() {
        var policy = HeapTrimPolicy(interval: .seconds(10))
        var now = self.start
        #expect(Self.trims(&policy, live: 0, peak: 200, now: now))
        policy.trimmed(live: 0, now: now)
        var trims: [Int] = []
        for second in 1...60 {
            now = self.start + .seconds(Int64(second))
            if Self.trims(&policy, live: 0, peak: 0, now: now) {
                trims.append(second)
                policy.trimmed(live: 0, now: now)
            }
        }
        #expect(trims == [10])
    }

    /// Bursts that open and close between two samples: the peak the relay reports counts.
    /// (Sampling alone once left a relay untrimmed after its last burst.)
    @Test func aPeakBetweenSamplesCounts() {
        var policy = HeapTrimPolicy(interval: .seconds(10))
        var now = self.start
        #expect(!Self.trims(&policy, live: 0, peak: 0, now: now))
        now = now + .seconds(1)
        #expect(Self.trims(&policy, live: 10, peak: 200, now: now))
        policy.trimmed(live: 10, now: now)
        // More bursts within the interval, each sampled when nearly closed.
        for _ in 0..<9 {
            now = now + .seconds(1)
            #expect(!Self.trims(&policy, live: 5, peak: 200, now: now))
        }
        now = now + .seconds(1)
        #expect(Self.trims(&policy, live: 0, peak: 0, now: now))
    }

    /// What the trimmer asks the relay every second: connections that came and went
    /// between two questions still show in the peak. In memory (InMemoryRelay): the handlers
    /// are gone once the loop has run the closes, with no polling.
    @Test func relayReportsThePeakSinceItWasLastAsked() async throws {
        try await InMemoryRelay.with { relay in
            let node = relay.relay
            let before = node.takeConnectionPeak()
            var agents: [InMemoryAgent] = []
            for index in 0..<3 {
                // HelloAck: its handler surely exists.
                agents.append(try await relay.greeted(.viewer, from: "192.0.2.\(20 + index)"))
            }
            for agent in agents { try await agent.close() }
            agents.removeAll()
            await relay.settle()
            let (peak, live) = node.takeConnectionPeak()
            #expect(peak >= before.live + 3)
            #expect(live == before.live)
            // Asked again with nothing new: the peak is what is live.
            #expect(node.takeConnectionPeak().peak == live)
        }
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

    /// relay-server leaves giving memory back to its trims on glibc, unless the operator
    /// tuned malloc through GLIBC_TUNABLES (then glibc's settings stand).
    @Test func mallocKeepsFreedMemoryUnlessTheOperatorTunedIt() {
        #expect(!HeapTrim.keepFreedMemoryUntilTrimmed(environment: ["GLIBC_TUNABLES": "glibc.malloc.trim_threshold=131072"]))
        #expect(HeapTrim.keepFreedMemoryUntilTrimmed(environment: ["GLIBC_TUNABLES": "glibc.rtld.optional_static_tls=2048"]))
        #expect(HeapTrim.keepFreedMemoryUntilTrimmed(environment: [:]))
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
