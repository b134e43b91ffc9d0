import Synchronization
import Testing

@testable import RelayClient

/// The send window's backpressure (SendWindow.swift): a sender waits while more than the
/// window is outstanding and is woken once half of it is free. The waiting sender runs on
/// a ``StepExecutor``, so "it is still waiting" is checked after it has run as far as it
/// can, never guessed after a sleep.
@Suite struct SendWindowTests {
    @Test(.timeLimit(.minutes(1))) func aSenderWaitsWhileTheWindowIsFullAndGoesOnWhenItDrains() async {
        let window = SendWindow(limit: 100)
        await window.reserve(60)
        await window.reserve(60)  // room was there (60 ≤ 100): a batch may overshoot once
        #expect(window.outstanding == 120)
        let executor = StepExecutor()
        let passed = Atomic<Bool>(false)
        let waiting = Task(executorPreference: executor) {
            await window.reserve(10)
            passed.store(true, ordering: .releasing)
        }
        executor.runUntilIdle()
        let passedWhileFull = passed.load(ordering: .acquiring)
        #expect(!passedWhileFull)  // 120 > 100: must wait
        window.release(60)  // 60 left, above half the window: waiters still sleep
        executor.runUntilIdle()
        let passedAboveHalf = passed.load(ordering: .acquiring)
        #expect(!passedAboveHalf)
        #expect(window.outstanding == 60)
        window.release(60)  // drained: the waiter is woken and counts its bytes in
        executor.runUntilIdle()
        let passedAfterDrain = passed.load(ordering: .acquiring)
        #expect(passedAfterDrain)
        #expect(window.outstanding == 10)
        // A sender that was never woken would wait here for good.
        if passedAfterDrain { await waiting.value }
    }

    @Test func aBatchLargerThanTheWindowIsNotStuck() async {
        let window = SendWindow(limit: 10)
        await window.reserve(1_000)
        #expect(window.outstanding == 1_000)
        window.release(1_000)
        #expect(window.outstanding == 0)
    }
}

/// A task executor that runs its tasks only when the test steps it: after
/// ``runUntilIdle()`` every task on it has gone as far as it can and waits for something
/// outside it (here, the window's continuation), which is exactly the state to check.
private final class StepExecutor: TaskExecutor {
    private let jobs = Mutex<[UnownedJob]>([])

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        self.jobs.withLock { $0.append(job) }
    }

    /// Runs queued jobs, and the jobs they queue, until none is left.
    func runUntilIdle() {
        while let job = self.jobs.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) {
            job.runSynchronously(on: self.asUnownedTaskExecutor())
        }
    }
}
