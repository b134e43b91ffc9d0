import CX11
import Glibc
import Synchronization

/// The screen source's X connection, shared by the source and its drawing watch: the
/// watch's thread must take the same lock as captures and injections.
final class X11ConnectionBox: Sendable {
    /// nil once closed.
    let connection: Mutex<X11Connection?>

    init(_ connection: sending X11Connection) { self.connection = Mutex(connection) }
}

/// Tells a host session when the X server reports drawing (DAMAGE) after a capture that
/// found nothing, so that the session waits for a change instead of capturing on every
/// frame tick to find out: an idle screen then costs no wake-up and no X round trip.
///
/// One thread, blocked in `poll` on a wake-up pipe and, while a session waits
/// (``notify(_:)``), on the X connection's socket. The connection stays the source's: the
/// thread reads what the server sent under the same lock as captures, and the damage it
/// sees is kept on the connection for the next capture. A request on another thread can
/// read a DamageNotify into Xlib's queue without the socket staying readable; the source
/// then wakes the thread (``wakeIfEventsQueued(_:)``), which looks at the queue again.
final class X11DrawingWatch: Sendable {
    private struct State {
        /// Called once when drawing is reported; nil while nobody waits.
        var drawn: (@Sendable () -> Void)?
        var stopping = false
    }

    private let state = Mutex(State())
    private let box: X11ConnectionBox
    private let wakeRead: Int32
    private let wakeWrite: Int32
    /// The thread, once started; joined by ``stop()``.
    private let thread = Mutex<pthread_t?>(nil)

    /// nil when there is no pipe or thread to be had: the session then captures on every
    /// frame tick as it does without DAMAGE.
    static func start(_ box: X11ConnectionBox) -> X11DrawingWatch? {
        guard let wake = PollingThread.wakePipe() else { return nil }
        let watch = X11DrawingWatch(box: box, wakeRead: wake.read, wakeWrite: wake.write)
        guard case .success(let thread) = PollingThread.start({ watch.run() }) else {
            close(wake.read)
            close(wake.write)
            return nil
        }
        watch.thread.withLock { $0 = thread }
        return watch
    }

    private init(box: X11ConnectionBox, wakeRead: Int32, wakeWrite: Int32) {
        self.box = box
        self.wakeRead = wakeRead
        self.wakeWrite = wakeWrite
    }

    /// Calls `drawn` once, from the watch's thread, when drawing has been reported since
    /// the last capture (at once if it already was). Replaces a call not yet made.
    func notify(_ drawn: @escaping @Sendable () -> Void) {
        self.state.withLock { $0.drawn = drawn }
        self.wake()
    }

    /// After a request on the source's connection: events it read into Xlib's queue do
    /// not make the socket readable, so the thread is told to look (only while a session
    /// waits). Called with the connection's lock held.
    func wakeIfEventsQueued(_ connection: X11Connection) {
        guard XQLength(connection.display) > 0, self.state.withLock({ $0.drawn != nil }) else { return }
        self.wake()
    }

    /// Ends the thread and waits for it; later calls to ``notify(_:)`` never fire.
    /// Called without the connection's lock held (the thread may be waiting for it).
    /// Idempotent.
    func stop() {
        let first = self.state.withLock { state in
            defer {
                state.stopping = true
                state.drawn = nil
            }
            return !state.stopping
        }
        guard first else { return }
        self.wake()
        if let thread = self.thread.withLock({ $0 }) { pthread_join(thread, nil) }
        close(self.wakeRead)
        close(self.wakeWrite)
    }

    private func wake() {
        var byte: UInt8 = 1
        // A full pipe already holds a wake-up: EAGAIN is fine.
        _ = write(self.wakeWrite, &byte, 1)
    }

    private func run() {
        var descriptors = [
            pollfd(fd: self.wakeRead, events: Int16(POLLIN), revents: 0),
            pollfd(fd: -1, events: Int16(POLLIN), revents: 0),
        ]
        while true {
            let (waiting, stopping) = self.state.withLock { ($0.drawn != nil, $0.stopping) }
            if stopping { return }
            descriptors[1].fd = -1
            if waiting {
                // Reads what the server sent so far without blocking; nil once closed.
                let seen = self.box.connection.withLock { connection in
                    connection.map { ($0.drawingReported(), XConnectionNumber($0.display)) }
                }
                guard let (drawn, socket) = seen else { return }
                if drawn {
                    self.fire()
                    continue
                }
                descriptors[1].fd = socket
            }
            descriptors[0].revents = 0
            descriptors[1].revents = 0
            _ = poll(&descriptors, 2, -1)
            if descriptors[0].revents != 0 {
                var bytes = (UInt64(0), UInt64(0))
                _ = withUnsafeMutableBytes(of: &bytes) { read(self.wakeRead, $0.baseAddress, $0.count) }
            }
        }
    }

    private func fire() {
        let drawn = self.state.withLock { state in
            defer { state.drawn = nil }
            return state.drawn
        }
        drawn?()
    }
}
