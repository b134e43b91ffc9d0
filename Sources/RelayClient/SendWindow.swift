import NIOCore
import RelayWire
import Synchronization

/// Bounds the bytes an agent has handed to its connection but the connection has not yet
/// written to the socket.
///
/// NIOAsyncWriter only learns that a channel is unwritable after the event loop has run
/// the writes, so a task producing faster than a busy loop drains could queue without
/// bound. Here the sending task reserves its bytes *before* writing and waits while more
/// than `limit` are outstanding; the event loop releases them as writes complete (or fail,
/// when the connection closes).
final class SendWindow: Sendable {
    let limit: Int

    private struct State {
        var outstanding = 0
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    init(limit: Int) { self.limit = limit }

    var outstanding: Int { self.state.withLock { $0.outstanding } }

    /// Waits until the window has room, then counts `bytes` in. A batch larger than the
    /// window still goes once the window is below its limit, so outstanding bytes stay
    /// under `limit` plus one batch.
    func reserve(_ bytes: Int) async {
        while true {
            let reserved = self.state.withLock { state in
                guard state.outstanding <= self.limit else { return false }
                state.outstanding += bytes
                return true
            }
            if reserved { return }
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let room = self.state.withLock { state in
                    if state.outstanding <= self.limit { return true }
                    state.waiters.append(continuation)
                    return false
                }
                if room { continuation.resume() }
            }
        }
    }

    /// Counts `bytes` in if the window has room now; never waits.
    func reserveIfRoom(_ bytes: Int) -> Bool {
        self.state.withLock { state in
            guard state.outstanding <= self.limit else { return false }
            state.outstanding += bytes
            return true
        }
    }

    /// Counts written (or failed) bytes out; wakes waiters once half the window is free.
    func release(_ bytes: Int) {
        let woken: [CheckedContinuation<Void, Never>] = self.state.withLock { state in
            state.outstanding -= bytes
            guard state.outstanding <= self.limit / 2, !state.waiters.isEmpty else { return [] }
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in woken { waiter.resume() }
    }
}

/// Releases each frame's bytes from the ``SendWindow`` when its write completes.
final class SendWindowHandler: ChannelOutboundHandler {
    typealias OutboundIn = Frame
    typealias OutboundOut = Frame

    private let window: SendWindow

    init(window: SendWindow) { self.window = window }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let bytes = self.unwrapOutboundIn(data).bytes.readableBytes
        let written = promise ?? context.eventLoop.makePromise(of: Void.self)
        let window = self.window
        written.futureResult.whenComplete { _ in window.release(bytes) }
        context.write(data, promise: written)
    }
}
