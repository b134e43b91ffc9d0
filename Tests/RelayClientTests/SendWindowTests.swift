import Synchronization
import Testing

@testable import RelayClient

@Suite struct SendWindowTests {
    @Test func aSenderWaitsWhileTheWindowIsFullAndGoesOnWhenItDrains() async throws {
        let window = SendWindow(limit: 100)
        await window.reserve(60)
        await window.reserve(60)  // room was there (60 ≤ 100): a batch may overshoot once
        #expect(window.outstanding == 120)
        let passed = Atomic<Bool>(false)
        let waiting = Task {
            await window.reserve(10)
            passed.store(true, ordering: .releasing)
        }
        try await Task.sleep(for: .milliseconds(50))
        let passedEarly = passed.load(ordering: .acquiring)
        #expect(!passedEarly)  // 120 > 100: must wait
        window.release(60)  // 60 left, above half the window: waiters still sleep
        try await Task.sleep(for: .milliseconds(50))
        let passedAboveHalf = passed.load(ordering: .acquiring)
        #expect(!passedAboveHalf)
        window.release(60)  // drained
        await waiting.value
        let passedAfterDrain = passed.load(ordering: .acquiring)
        #expect(passedAfterDrain)
        #expect(window.outstanding == 10)
    }

    @Test func aBatchLargerThanTheWindowIsNotStuck() async {
        let window = SendWindow(limit: 10)
        await window.reserve(1_000)
        #expect(window.outstanding == 1_000)
        window.release(1_000)
        #expect(window.outstanding == 0)
    }
}
