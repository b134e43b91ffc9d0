import RelayWire
import Synchronization

/// One end of an in-memory connection (``pair(maximumPayloadLength:)``): what one end
/// sends, the other receives, in order, with no relay, TLS or socket in between. Closing
/// either end ends both directions, as a relay closing a paired session does.
///
/// `@unchecked Sendable` so that a test can hand each end to its own task; each end is
/// then read by that task alone, as ``FrameTransport`` asks.
final class MemoryTransport: FrameTransport, @unchecked Sendable {
    struct Sender: FrameSender {
        fileprivate let outbound: AsyncStream<Frame>.Continuation
        fileprivate let link: Link

        func send(frames: [Frame]) async throws {
            for frame in frames {
                guard case .enqueued = self.outbound.yield(frame) else { throw MemoryTransportClosed() }
            }
        }

        func close() { self.link.close() }
    }

    /// Both directions, so that a close from either end finishes both.
    fileprivate final class Link: Sendable {
        let directions: [AsyncStream<Frame>.Continuation]
        init(_ directions: [AsyncStream<Frame>.Continuation]) { self.directions = directions }
        func close() { for direction in self.directions { direction.finish() } }
    }

    let maximumPayloadLength: Int
    let sender: Sender
    private var inbound: AsyncStream<Frame>.AsyncIterator

    private init(maximumPayloadLength: Int, inbound: AsyncStream<Frame>, sender: Sender) {
        self.maximumPayloadLength = maximumPayloadLength
        self.inbound = inbound.makeAsyncIterator()
        self.sender = sender
    }

    /// Two connected ends: `a` sends to `b` and `b` to `a`.
    static func pair(maximumPayloadLength: Int = Frame.defaultMaximumPayloadLength) -> (a: MemoryTransport, b: MemoryTransport) {
        let (toB, intoB) = AsyncStream.makeStream(of: Frame.self)
        let (toA, intoA) = AsyncStream.makeStream(of: Frame.self)
        let link = Link([intoA, intoB])
        let a = MemoryTransport(maximumPayloadLength: maximumPayloadLength, inbound: toA, sender: Sender(outbound: intoB, link: link))
        let b = MemoryTransport(maximumPayloadLength: maximumPayloadLength, inbound: toB, sender: Sender(outbound: intoA, link: link))
        return (a, b)
    }

    func receiveFrame() async throws -> Frame? {
        await self.inbound.next()
    }

    /// The next frame decoded, for a test playing one side by hand.
    func receiveMessage() async throws -> RelayMessage? {
        try await self.receiveFrame().map { try RelayMessage($0) }
    }
}

struct MemoryTransportClosed: Error, CustomStringConvertible {
    var description: String { "the in-memory connection is closed" }
}

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
