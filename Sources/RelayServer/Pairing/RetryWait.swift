import NIOCore

/// How a wait is put to an agent: whole seconds, rounded up, at least 1, so that an
/// agent which waits exactly that long is let in (PROTOCOL.md §8.5).
enum RetryWait {
    static func seconds(_ wait: TimeAmount) -> Int64 {
        max(1, (wait.nanoseconds + 999_999_999) / 1_000_000_000)
    }
}
