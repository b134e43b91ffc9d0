import Dispatch
import Foundation
import RelayClient
import RelayWire
import Synchronization

/// A request to stop the agent (SIGINT, SIGTERM), delivered to whatever phase the agent
/// is in, so that it ends with a Bye instead of vanishing (REVIEW.md D4):
///
/// - connected but not in a session (handshake, waiting to be paired): Bye and close
///   here, which ends the wait with an error the caller recognises by ``isRequested``;
/// - in a session: an element on the session's stop stream, and the session says its
///   own Bye (a host that has not been granted access yet says `declined`);
/// - between connections (an enrolled host's back-off): ``sleep(for:)`` returns early.
final class StopRequest: Sendable {
    private struct State {
        var signal: Int32?
        var sender: RelaySender?
        var session: AsyncStream<Void>.Continuation?
        var sleepers: [(id: UInt64, continuation: CheckedContinuation<Void, Never>)] = []
    }

    private let state = Mutex(State())
    /// The Bye's text when the agent stops outside a session.
    let byeText: String
    /// How long to wait for the relay to close after the Bye before closing.
    let grace: Duration

    init(byeText: String, grace: Duration = .seconds(2)) {
        self.byeText = byeText
        self.grace = grace
    }

    /// The signal that asked to stop, if one did.
    var signal: Int32? { self.state.withLock { $0.signal } }
    var isRequested: Bool { self.signal != nil }

    /// Asks the agent to stop; only the first request counts.
    func request(_ signal: Int32) async {
        let (first, sender, session, sleepers) = self.state.withLock { state in
            guard state.signal == nil else { return (false, RelaySender?.none, AsyncStream<Void>.Continuation?.none, [CheckedContinuation<Void, Never>]()) }
            state.signal = signal
            defer { state.sleepers.removeAll() }
            return (true, state.sender, state.session, state.sleepers.map(\.continuation))
        }
        guard first else { return }
        for sleeper in sleepers { sleeper.resume() }
        if let session {
            session.yield()
        } else if let sender {
            await Self.sayBye(Bye(reason: .normal, text: self.byeText), on: sender, grace: self.grace)
        }
    }

    /// A connection is up; false when a stop was requested already (the caller says Bye
    /// and leaves).
    func connected(_ sender: RelaySender) -> Bool {
        self.state.withLock { state in
            state.sender = sender
            state.session = nil
            return state.signal == nil
        }
    }

    /// A session starts on the connected sender: from now on a stop goes to the session,
    /// through the returned stream (which has an element at once if a stop came first).
    func sessionStarts() -> AsyncStream<Void> {
        let (stream, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let requested = self.state.withLock { state in
            state.session = continuation
            return state.signal != nil
        }
        if requested { continuation.yield() }
        return stream
    }

    /// The connection is gone.
    func disconnected() {
        self.state.withLock { state in
            state.sender = nil
            state.session?.finish()
            state.session = nil
        }
    }

    /// Sleeps for `duration`, or less if a stop is requested meanwhile.
    func sleep(for duration: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await Task.sleep(for: duration) }
            group.addTask { await self.waitForRequest() }
            await group.next()
            group.cancelAll()
        }
    }

    /// Returns when a stop is requested, or when the task is cancelled.
    private func waitForRequest() async {
        let id = UInt64.random(in: 0 ... .max)
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let ready = self.state.withLock { state in
                    if state.signal != nil || Task.isCancelled { return true }
                    state.sleepers.append((id, continuation))
                    return false
                }
                if ready { continuation.resume() }
            }
        } onCancel: {
            let sleeper = self.state.withLock { state in
                state.sleepers.firstIndex { $0.id == id }.map { state.sleepers.remove(at: $0).continuation }
            }
            sleeper?.resume()
        }
    }

    /// Says Bye, then closes the connection if the relay has not closed it within `grace`.
    static func sayBye(_ bye: Bye, on sender: some FrameSender, grace: Duration) async {
        try? await sender.send(.bye(bye))
        try? await Task.sleep(for: grace)
        sender.close()
    }
}

/// The deliveries of signals, as an async sequence of their numbers. The signals' default
/// actions are turned off while the process runs, so a Ctrl-C no longer kills it at once.
func signalStream(_ numbers: Int32...) -> AsyncStream<Int32> {
    let (stream, continuation) = AsyncStream.makeStream(of: Int32.self, bufferingPolicy: .bufferingNewest(4))
    var sources: [SignalSource] = []
    for number in numbers {
        signal(number, SIG_IGN)
        let source = SignalSource(DispatchSource.makeSignalSource(signal: number))
        source.dispatch.setEventHandler { continuation.yield(number) }
        source.dispatch.resume()
        sources.append(source)
    }
    let all = sources
    continuation.onTermination = { _ in for source in all { source.dispatch.cancel() } }
    return stream
}

/// A dispatch signal source; Dispatch serialises its handlers and cancel is thread-safe.
struct SignalSource: @unchecked Sendable {
    let dispatch: any DispatchSourceSignal
    init(_ dispatch: any DispatchSourceSignal) { self.dispatch = dispatch }
}

/// The name of a signal for messages: `SIGINT`.
func signalName(_ number: Int32) -> String {
    switch number {
    case SIGINT: "SIGINT"
    case SIGTERM: "SIGTERM"
    case SIGHUP: "SIGHUP"
    default: "signal \(number)"
    }
}
