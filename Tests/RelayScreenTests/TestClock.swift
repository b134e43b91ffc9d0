import Synchronization

/// A clock the test moves by hand: a sleeper wakes when the test advances the time to its
/// deadline, so paced code runs in virtual time, without sleeping.
final class TestClock: Clock, Sendable {
    typealias Instant = ManualInstant
    typealias Duration = Swift.Duration

    private struct Sleeper {
        let deadline: ManualInstant
        let continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var now = ManualInstant(offset: .zero)
        var sleepers: [Int: Sleeper] = [:]
        var nextID = 0
    }

    private let state = Mutex(State())

    var now: ManualInstant { self.state.withLock { $0.now } }
    var minimumResolution: Duration { .nanoseconds(1) }

    func sleep(until deadline: ManualInstant, tolerance: Duration?) async throws {
        let id = self.state.withLock { state in
            defer { state.nextID += 1 }
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let wakeNow: Bool = self.state.withLock { state in
                    guard deadline > state.now, !Task.isCancelled else { return true }
                    state.sleepers[id] = Sleeper(deadline: deadline, continuation: continuation)
                    return false
                }
                if wakeNow { continuation.resume() }
            }
        } onCancel: {
            self.state.withLock { $0.sleepers.removeValue(forKey: id) }?.continuation.resume(throwing: CancellationError())
        }
        try Task.checkCancellation()
    }

    /// Moves the time on and wakes the sleepers whose deadline it reached.
    func advance(by duration: Duration) {
        let due: [Sleeper] = self.state.withLock { state in
            state.now = state.now.advanced(by: duration)
            let due = state.sleepers.filter { $0.value.deadline <= state.now }
            for id in due.keys { state.sleepers.removeValue(forKey: id) }
            return Array(due.values)
        }
        for sleeper in due { sleeper.continuation.resume() }
    }
}
