import Glibc

/// What a capture helper with a thread of its own needs (the clipboard's worker, the
/// drawing watch): a pipe that wakes the thread out of `poll`, and the thread itself.
enum PollingThread {
    /// A pipe whose read end the thread polls and whose write end wakes it: both ends
    /// close-on-exec and non-blocking (a full pipe already means "wake up"). nil when the
    /// process has no descriptors left; `errno` says why.
    static func wakePipe() -> (read: Int32, write: Int32)? {
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else { return nil }
        for end in ends {
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
            _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
        }
        return (ends[0], ends[1])
    }

    /// Starts a thread that runs `body`, which holds what it captures until it returns.
    /// Returns the thread to join, or `pthread_create`'s error (then `body` never runs
    /// and is released).
    static func start(_ body: @escaping () -> Void) -> Result<pthread_t, PthreadError> {
        var thread = pthread_t()
        let retained = Unmanaged.passRetained(Body(body)).toOpaque()
        let result = pthread_create(
            &thread, nil,
            { argument in
                guard let argument else { return nil }
                Unmanaged<Body>.fromOpaque(argument).takeRetainedValue().run()
                return nil
            }, retained)
        guard result == 0 else {
            Unmanaged<Body>.fromOpaque(retained).release()
            return .failure(PthreadError(code: result))
        }
        return .success(thread)
    }

    struct PthreadError: Error, CustomStringConvertible {
        let code: Int32
        var description: String { String(cString: strerror(self.code)) }
    }

    private final class Body {
        let run: () -> Void
        init(_ run: @escaping () -> Void) { self.run = run }
    }
}
