/// Monotonic time for the sources that play at a frame rate (replay, synthetic): the frame
/// they show depends on the time elapsed since their first capture. Tests inject a clock
/// they advance by hand, so which frame is current is deterministic.
public struct ScreenClock: Sendable {
    private let read: @Sendable () -> Duration

    /// A clock reading `now()`: any monotonic time from a fixed origin.
    public init(now: @escaping @Sendable () -> Duration) {
        self.read = now
    }

    /// The system's monotonic clock (`ContinuousClock`).
    public static var continuous: ScreenClock {
        let origin = ContinuousClock.now
        return ScreenClock { ContinuousClock.now - origin }
    }

    /// The current time, from the clock's origin.
    public func now() -> Duration { self.read() }
}

/// Which frame of a sequence played at `fps` is current: frame 0 at the first call, then
/// one more every `1/fps` seconds of the clock.
struct FramePacer: Sendable {
    let fps: Double
    private var start: Duration?

    init(fps: Double) {
        self.fps = fps
    }

    mutating func frameIndex(at now: Duration) -> Int {
        guard let start = self.start else {
            self.start = now
            return 0
        }
        let elapsed = now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        // A clock that went backwards stays at the start rather than replaying backwards.
        let frames = (seconds * self.fps).rounded(.down)
        return frames <= 0 ? 0 : Int(min(frames, Double(Int.max / 2)))
    }

    /// Checks a `--fps` value: positive and finite.
    static func validate(_ fps: Double) throws(ScreenSourceError) {
        guard fps.isFinite, fps > 0 else {
            throw ScreenSourceError(.invalidFrameRate, "frame rate \(fps) is not a positive number of frames per second; give e.g. --fps 30")
        }
    }
}
