public import RelayTileCodec
public import RelayWire
import Synchronization

/// A screen source showing a `SyntheticScene` (`--source synthetic:NAME`): frame 0 at the
/// first capture, then one frame further every `1/fps` seconds of its clock.
///
/// Injected input is recorded (`input`) and drawn into later frames — typed text in the
/// prompt or taskbar, the pointer as a square — so an end-to-end test or a demo sees the
/// viewer's input arrive.
public final class SyntheticScreenSource: ScreenSource {
    public let scene: SyntheticScene
    public let fps: Double
    private let clock: ScreenClock
    /// Captures and injections come from different tasks of the host's session.
    private let state: Mutex<State>

    private struct State {
        var pacer: FramePacer
        var input = SyntheticInput()
    }

    /// Plays `scene` at `fps` frames per second of `clock`.
    public init(scene: SyntheticScene, fps: Double = 30, clock: ScreenClock = .continuous) throws(ScreenSourceError) {
        try FramePacer.validate(fps)
        self.scene = scene
        self.fps = fps
        self.clock = clock
        self.state = Mutex(State(pacer: FramePacer(fps: fps)))
    }

    public var name: String { "synthetic:\(self.scene.kind.rawValue)" }

    /// The input injected so far.
    public var input: SyntheticInput { self.state.withLock { $0.input } }

    public func capture() -> Framebuffer {
        let now = self.clock.now()
        let (index, input) = self.state.withLock { state in
            (state.pacer.frameIndex(at: now), state.input)
        }
        return self.scene.frame(index: index, input: input)
    }

    public func inject(_ pointer: Pointer) {
        self.state.withLock { $0.input.record(pointer) }
    }

    public func inject(_ key: Key) {
        self.state.withLock { $0.input.record(key) }
    }
}
