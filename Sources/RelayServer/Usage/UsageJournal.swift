import RelayStore
import Synchronization

/// Usage-history writes waiting for the ``UsageRecorder``: sessions paired and ended since
/// its last write, and whether a checkpoint is due. Connection handlers add to it from any
/// event loop without touching the database; the recorder takes everything at once and
/// writes it in one transaction, in order.
final class UsageJournal: Sendable {
    private struct State {
        var pending = UsageBatch()
        var checkpointDue = false
        var finished = false
    }

    private let state = Mutex(State())
    private let wakeups: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation

    init() {
        // One pending wake-up is enough: the recorder takes everything when it wakes.
        (self.wakeups, self.wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    func opened(_ record: UsageRecord) {
        self.state.withLock { $0.pending.opened.append(record) }
        self.wake.yield()
    }

    func closed(_ closure: UsageClosure) {
        self.state.withLock { $0.pending.closed.append(closure) }
        self.wake.yield()
    }

    func requestCheckpoint() {
        self.state.withLock { $0.checkpointDue = true }
        self.wake.yield()
    }

    /// Everything waiting, and whether a checkpoint was asked for since the last take.
    func take() -> (UsageBatch, checkpointDue: Bool) {
        self.state.withLock { state in
            defer {
                state.pending = UsageBatch()
                state.checkpointDue = false
            }
            return (state.pending, state.checkpointDue)
        }
    }

    /// Puts back a batch whose write failed, ahead of what was recorded since it was
    /// taken: the next ``take()`` returns both, in order (see ``UsageBatch/append(_:)``).
    func putBack(_ batch: UsageBatch) {
        self.state.withLock { state in
            var merged = batch
            merged.append(state.pending)
            state.pending = merged
        }
    }

    /// Wakes the recorder without adding anything: the retry of a failed write.
    func requestWrite() {
        self.wake.yield()
    }

    var hasPending: Bool { self.state.withLock { !$0.pending.isEmpty } }

    /// Records, checkpoints and closures waiting.
    var pendingCount: Int { self.state.withLock { $0.pending.count } }

    /// Wake-ups for the one recorder; they end after ``finish()``.
    var signals: AsyncStream<Void> { self.wakeups }

    /// Ends the wake-ups: the recorder writes what is left and stops.
    func finish() {
        self.state.withLock { $0.finished = true }
        self.wake.finish()
    }
}
