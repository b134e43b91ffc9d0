import RelayTestSupport
import RelayTileCodec
import RelayWire
import Synchronization
import Testing

@testable import RelayScreen

/// A source that says when something is drawn (``ScreenSource/notifyWhenDrawn(_:)``, X11
/// with DAMAGE): after a capture that found nothing, the host waits for its word instead of
/// capturing at every frame tick, and still keeps the frame interval.
@Suite struct ScreenSessionDrawingTests {
    typealias Pacer = UpdatePacer<ManualInstant>
    let start = ManualInstant(offset: .zero)

    @Test func aPacerAwaitingDrawingCapturesNothingUntilTheSourceSpeaks() {
        var pacer = Pacer(framesPerSecond: 10)
        pacer.received(UpdateRequest(requestID: 1))
        pacer.capturedNothing(at: self.start, awaitingDrawing: true)
        #expect(pacer.step(at: self.start + .seconds(5)) == .idle)
        // Drawn 30 ms after the capture: captured at the frame interval, not before.
        pacer.drawn()
        #expect(pacer.step(at: self.start + .milliseconds(30)) == .wait(until: self.start + .milliseconds(100)))
        #expect(pacer.step(at: self.start + .milliseconds(100)) == .capture)
        // Drawn long after: captured at once.
        pacer.capturedNothing(at: self.start + .milliseconds(100), awaitingDrawing: true)
        pacer.drawn()
        #expect(pacer.step(at: self.start + .seconds(3)) == .capture)
    }

    @Test func aFullRefreshIsCapturedWhileAwaitingDrawing() {
        var pacer = Pacer(framesPerSecond: 10)
        pacer.received(UpdateRequest(requestID: 1, flags: .fullRefresh))
        pacer.capturedNothing(at: self.start, awaitingDrawing: true)
        #expect(pacer.step(at: self.start + .milliseconds(100)) == .capture)
        pacer.answered(at: self.start + .milliseconds(100))
        pacer.received(UpdateRequest(requestID: 2))
        #expect(!pacer.awaitsDrawing)
        #expect(pacer.step(at: self.start + .milliseconds(200)) == .capture)
    }

    @Test("a still screen of a source that says when it is drawn is captured once, not at every frame tick; a drawing is sent at once")
    func aStillScreenIsNotPolled() async throws {
        let (hostEnd, viewerEnd) = MemoryTransport.pair()
        let clock = TestClock()
        let source = DrawingSource(width: 64, height: 40)
        let host = HostScreenSession(source: source, options: .init(framesPerSecond: 10))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { _ = try await host.run(on: hostEnd, clock: clock) }
            defer { group.cancelAll() }
            let (decoder, _) = try await ScreenSessionTests.openAsViewer(viewerEnd, width: 64, height: 40)
            // Request 2 waits: one capture finds nothing and the host asks to be told.
            clock.advance(by: .milliseconds(100))
            try await source.waitUntilAsked()
            let captures = source.captures
            for _ in 0..<20 {
                clock.advance(by: .milliseconds(100))
                try await Task.sleep(for: .milliseconds(2))
            }
            #expect(source.captures == captures, "a still screen was captured at frame ticks")
            // Drawn two seconds after the last capture: no frame interval to wait for.
            source.draw(x: 5, y: 6)
            guard case .tileUpdate(let second) = try await viewerEnd.receiveMessage() else { throw TestFailure("expected a TileUpdate") }
            #expect(try decoder.apply(second.body) == 2)
            #expect(decoder.framebuffer?.rgb(x: 5, y: 6) == DrawingSource.mark)
        }
    }
}

/// A screen that knows what was drawn on it, as X11 with DAMAGE does, and says so to a
/// host that asked (``notifyWhenDrawn(_:)``).
final class DrawingSource: ScreenSource {
    static let mark: UInt32 = 0x00_FF_80

    private struct State {
        var frame: Framebuffer
        var changes: ChangedTiles?
        var captures = 0
        var drawn: (@Sendable () -> Void)?
    }

    private let state: Mutex<State>

    init(width: Int, height: Int) {
        self.state = Mutex(State(frame: Framebuffer(width: width, height: height)))
    }

    var name: String { "drawing" }
    var captures: Int { self.state.withLock { $0.captures } }

    func capture() throws -> Framebuffer { self.state.withLock { $0.frame } }

    func captureChanges() throws -> ScreenCapture {
        self.state.withLock { state in
            state.captures += 1
            defer { state.changes = ChangedTiles(width: state.frame.width, height: state.frame.height) }
            return ScreenCapture(frame: state.frame, changes: state.changes)
        }
    }

    func notifyWhenDrawn(_ drawn: @escaping @Sendable () -> Void) -> Bool {
        self.state.withLock { $0.drawn = drawn }
        return true
    }

    /// Marks a pixel, and tells the host if it asked.
    func draw(x: Int, y: Int) {
        let drawn = self.state.withLock { state in
            state.frame.setRGB(Self.mark, x: x, y: y)
            state.changes?.insert(x: x, y: y, width: 1, height: 1)
            defer { state.drawn = nil }
            return state.drawn
        }
        drawn?()
    }

    /// Returns once the host has asked to be told of drawing (within 5 s).
    func waitUntilAsked() async throws {
        for _ in 0..<500 {
            if self.state.withLock({ $0.drawn != nil }) { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw TestFailure("the host never asked to be told when something is drawn")
    }

    func inject(_ pointer: Pointer) throws {}
    func inject(_ key: Key) throws {}
}
