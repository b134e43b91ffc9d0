import NIOCore
import RelayScreen
import RelayTestSupport
import RelayTileCodec
import RelayWire
import Synchronization
import Testing

/// The host and viewer sessions talking to each other, or to a test playing one side by
/// hand, over an in-memory transport (``MemoryTransport``): no relay, no TLS, and virtual
/// time (``TestClock``) where pacing matters. The TLS end-to-end tests in RelayServerTests
/// cover the same sessions through a real relay.
@Suite struct ScreenSessionTests {
    static let screen = Framebuffer(width: 64, height: 40, fill: 0x20_40_60)

    @Test("ScreenInit, a full update, then the viewer's input reaches the host and shows in the next update")
    func screenInitUpdateAndInputRoundTrip() async throws {
        let (hostEnd, viewerEnd) = MemoryTransport.pair()
        let clock = TestClock()
        let source = EchoSource(Self.screen)
        let host = HostScreenSession(source: source, options: .init(framesPerSecond: 10))
        let viewer = ViewerScreenSession()
        let (hostEvents, hostEventSink) = AsyncStream.makeStream(of: HostScreenSession.Event.self)

        let hostOutcome = try await withThrowingTaskGroup(of: HostScreenSession.Outcome?.self) { group in
            group.addTask {
                defer { hostEventSink.finish() }
                return try await host.run(on: hostEnd, clock: clock) { hostEventSink.yield($0) }
            }
            // The host captures again only a frame interval (100 ms) after its last
            // capture: virtual time moves on once the input has been injected, so the
            // next update is sure to show it.
            group.addTask {
                for await _ in source.injections { clock.advance(by: .milliseconds(100)) }
                return nil
            }
            let sender = viewerEnd.sender
            var events: [String] = []
            let outcome = try await viewer.run(on: viewerEnd) { event in
                switch event {
                case .accessGranted(let access):
                    events.append("access \(access)")
                case .screen(let screen):
                    events.append("screen \(screen.width)x\(screen.height) \(screen.name)")
                case .update(let requestID, let wireBytes, _, let framebuffer):
                    events.append("update \(requestID)")
                    #expect(wireBytes > 0)
                    if requestID == 1 {
                        #expect(framebuffer == Self.screen)
                        try await sender.send(frames: [
                            try Frame(.pointer(Pointer(x: 5, y: 7, buttons: .left))),
                            try Frame(.key(Key(keysym: 0x61, isDown: true))),
                        ])
                    } else {
                        #expect(framebuffer.rgb(x: 5, y: 7) == EchoSource.mark)
                        return .stop
                    }
                case .clipboard(let text):
                    events.append("clipboard \(text)")
                }
                return .continue
            }
            #expect(outcome == .stopped)
            #expect(events == ["access full control", "screen 64x40 echo", "update 1", "update 2"])
            source.finish()
            var hostOutcome: HostScreenSession.Outcome?
            for try await result in group { hostOutcome = result ?? hostOutcome }
            return try #require(hostOutcome)
        }
        guard case .bye(let bye) = hostOutcome else { throw TestFailure("the host saw \(hostOutcome)") }
        #expect(bye.reason == .normal)
        #expect(source.injected == [.pointer(Pointer(x: 5, y: 7, buttons: .left)), .key(Key(keysym: 0x61, isDown: true))])
        let screens = await hostEvents.reduce(into: [String]()) { names, event in
            if case .screen(let width, let height) = event { names.append("\(width)x\(height)") }
        }
        #expect(screens == ["64x40"])
    }

    @Test("an unchanged screen answers nothing; a change is sent a frame interval after the last capture")
    func anUnchangedScreenWaitsForAChange() async throws {
        let (hostEnd, viewerEnd) = MemoryTransport.pair()
        let clock = TestClock()
        let source = EchoSource(Self.screen)
        let host = HostScreenSession(source: source, options: .init(framesPerSecond: 10))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { _ = try await host.run(on: hostEnd, clock: clock) }
            defer { group.cancelAll() }
            let (decoder, _) = try await Self.openAsViewer(viewerEnd, width: Self.screen.width, height: Self.screen.height)
            // Request 2 waits. Ten frame intervals of a still screen send nothing: the next
            // frame on the wire is the update that shows the change.
            for _ in 0..<10 { clock.advance(by: .milliseconds(100)) }
            source.draw(x: 3, y: 4)
            clock.advance(by: .milliseconds(100))
            guard case .tileUpdate(let second) = try await viewerEnd.receiveMessage() else { throw TestFailure("expected a TileUpdate") }
            #expect(try decoder.apply(second.body) == 2)
            #expect(decoder.framebuffer?.rgb(x: 3, y: 4) == EchoSource.mark)
        }
    }

    @Test("with the viewer's glyph table (Options.glyphs) a screen of text is sent as glyphs: exact, in fewer bytes")
    func glyphsWhenTheViewerKeepsATable() async throws {
        // One 3×5 shape, eight times on two lines of a 64×40 screen.
        var screen = Framebuffer(width: 64, height: 40, fill: 0x10_1820)
        for line in 0..<2 {
            for column in 0..<4 {
                for (dx, dy) in [(0, 0), (1, 0), (2, 0), (1, 1), (1, 2), (1, 3), (0, 4), (2, 4)] {
                    screen.setRGB(0xE0_E0E0, x: 4 + column * 8 + dx, y: 6 + line * 12 + dy)
                }
            }
        }
        var bodyBytes: [Bool: Int] = [:]
        for glyphs in [false, true] {
            let (hostEnd, viewerEnd) = MemoryTransport.pair()
            let host = HostScreenSession(source: EchoSource(screen), options: .init(framesPerSecond: 10, glyphs: glyphs))
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { _ = try await host.run(on: hostEnd, clock: TestClock()) }
                defer { group.cancelAll() }
                let (decoder, first) = try await Self.openAsViewer(viewerEnd, width: screen.width, height: screen.height)
                #expect(decoder.framebuffer == screen, "glyphs: \(glyphs)")
                bodyBytes[glyphs] = first.readableBytes
            }
        }
        let (with, without) = (try #require(bodyBytes[true]), try #require(bodyBytes[false]))
        #expect(with < without, "\(with) bytes with the glyph table, \(without) without")
    }

    /// PROTOCOL.md §2.3: the relay completes the frame of a host that left mid-frame with
    /// zero bytes, then says `Bye(peer_left)`; the viewer reports the Bye, not the damage.
    @Test("a damaged update followed by the relay's Bye ends the viewer's session with that Bye")
    func damagedUpdateThenByeIsTheBye() async throws {
        let (hostEnd, viewerEnd) = MemoryTransport.pair()
        try await Self.openScreen(on: hostEnd)
        try await hostEnd.sender.send(frames: [
            try Frame(type: .tileUpdate, payload: ByteBuffer(repeating: 0, count: 2_000)),
            try Frame(.bye(Bye(reason: .peerLeft, text: "the host left"))),
        ])
        let outcome = try await ViewerScreenSession().run(on: viewerEnd) { _ in .continue }
        #expect(outcome == .bye(Bye(reason: .peerLeft, text: "the host left")))
    }

    @Test("a damaged update followed by anything else is the host's protocol error")
    func damagedUpdateAloneIsAProtocolError() async throws {
        let (hostEnd, viewerEnd) = MemoryTransport.pair()
        try await Self.openScreen(on: hostEnd)
        try await hostEnd.sender.send(frames: [
            try Frame(type: .tileUpdate, payload: ByteBuffer(repeating: 0, count: 2_000)),
            try Frame(.clipboard(Clipboard(text: "more"))),
        ])
        let error = await #expect(throws: ScreenSessionError.self) {
            _ = try await ViewerScreenSession().run(on: viewerEnd) { _ in .continue }
        }
        #expect(error?.kind == .protocolViolation)
        // The viewer asked for updates, then said why it ends.
        var last: RelayMessage?
        while case .updateRequest = last ?? .updateRequest(UpdateRequest(requestID: 0)) { last = try await hostEnd.receiveMessage() }
        guard case .bye(let bye) = last else { throw TestFailure("expected Bye, got \(String(describing: last))") }
        #expect(bye.reason == .protocolError)
    }

    /// The same rule on the host's side: a viewer that left mid-frame.
    @Test("a damaged viewer message followed by the relay's Bye ends the host's session with that Bye")
    func damagedViewerMessageThenByeIsTheBye() async throws {
        let (hostEnd, viewerEnd) = MemoryTransport.pair()
        let session = HostScreenSession(source: EchoSource(Self.screen))
        try await viewerEnd.sender.send(frames: [
            try Frame(type: .key, payload: ByteBuffer(repeating: 0, count: 2)),
            try Frame(.bye(Bye(reason: .peerLeft, text: "the viewer left"))),
        ])
        let outcome = try await session.run(on: hostEnd, clock: TestClock())
        #expect(outcome == .bye(Bye(reason: .peerLeft, text: "the viewer left")))
    }

    @Test("the relay's Error during a session ends it with the relay's code, its text made printable")
    func relayErrorEndsTheSession() async throws {
        let (hostEnd, viewerEnd) = MemoryTransport.pair()
        try await hostEnd.sender.send(.error(ErrorMessage(code: .internalError, message: "going \u{1B}[2Jdown")))
        let error = await #expect(throws: ScreenSessionError.self) {
            _ = try await ViewerScreenSession().run(on: viewerEnd) { _ in .continue }
        }
        #expect(error?.kind == .rejected)
        #expect(error?.code == .internalError)
        #expect(error?.message.contains("\u{1B}") == false)
    }

    /// A stop while the customer is still asked: `Bye(declined)`, then the host closes the
    /// connection itself once the close grace has passed in virtual time.
    @Test("a stop during the consent prompt says Bye(declined) and closes after the grace")
    func stopDuringConsentClosesAfterTheGrace() async throws {
        let (hostEnd, viewerEnd) = MemoryTransport.pair()
        let clock = TestClock()
        let (stop, stopSink) = AsyncStream.makeStream(of: Void.self)
        let session = HostScreenSession(
            source: EchoSource(Self.screen),
            options: .init(
                consent: .ask({
                    try await Task.sleep(for: .seconds(3600))
                    return .allow(.fullControl)
                }), closeGrace: .seconds(5))
        )
        try await withThrowingTaskGroup(of: HostScreenSession.Outcome?.self) { group in
            group.addTask { try await session.run(on: hostEnd, clock: clock, stop: stop) }
            stopSink.yield()
            guard case .bye(let bye) = try await viewerEnd.receiveMessage() else { throw TestFailure("expected Bye") }
            #expect(bye.reason == .declined)
            // The relay would close now; this one does not, so the host does after 5 s.
            clock.advance(by: .seconds(5))
            #expect(try await viewerEnd.receiveFrame() == nil)
            #expect(try await group.next() == .stopped)
        }
    }

    /// What a host sends first: AccessGranted, ScreenInit 16×16.
    static func openScreen(on host: MemoryTransport) async throws {
        try await host.sender.send(frames: [
            try Frame(.accessGranted(SessionAccess.fullControl.message)),
            try Frame(.screenInit(ScreenInit(width: 16, height: 16, name: "test"))),
        ])
    }
}

/// A screen that shows the viewer's pointer: a pointer event marks its pixel. Records the
/// input and reports each injection on ``injections``.
final class EchoSource: ScreenSource {
    static let mark: UInt32 = 0xFF_FF_00

    private let state: Mutex<(frame: Framebuffer, injected: [RelayMessage])>
    let injections: AsyncStream<Void>
    private let injectionSink: AsyncStream<Void>.Continuation

    init(_ frame: Framebuffer) {
        self.state = Mutex((frame, []))
        (self.injections, self.injectionSink) = AsyncStream.makeStream(of: Void.self)
    }

    var name: String { "echo" }
    var injected: [RelayMessage] { self.state.withLock { $0.injected } }

    func capture() throws -> Framebuffer { self.state.withLock { $0.frame } }

    func draw(x: Int, y: Int) { self.state.withLock { $0.frame.setRGB(Self.mark, x: x, y: y) } }

    func inject(_ pointer: Pointer) throws {
        self.state.withLock { state in
            state.injected.append(.pointer(pointer))
            state.frame.setRGB(Self.mark, x: Int(pointer.x), y: Int(pointer.y))
        }
        self.injectionSink.yield()
    }

    func inject(_ key: Key) throws {
        self.state.withLock { $0.injected.append(.key(key)) }
        self.injectionSink.yield()
    }

    /// Ends ``injections``.
    func finish() { self.injectionSink.finish() }
}

extension ScreenSessionTests {
    /// The viewer's side of a session's start, as relay-agent view does it: AccessGranted
    /// (full control) and ScreenInit arrive, the viewer asks for a full refresh and one
    /// more update, and the first update is applied. Returns the decoder holding it and
    /// the first update's body.
    @discardableResult
    static func openAsViewer(_ viewerEnd: MemoryTransport, width: Int, height: Int) async throws -> (TileDecoder, first: ByteBuffer) {
        #expect(try await viewerEnd.receiveMessage() == .accessGranted(SessionAccess.fullControl.message))
        guard case .screenInit = try await viewerEnd.receiveMessage() else { throw TestFailure("expected ScreenInit") }
        try await viewerEnd.sender.send(frames: [
            try Frame(.updateRequest(UpdateRequest(requestID: 1, flags: .fullRefresh))),
            try Frame(.updateRequest(UpdateRequest(requestID: 2))),
        ])
        let decoder = TileDecoder()
        decoder.resize(width: width, height: height)
        guard case .tileUpdate(let first) = try await viewerEnd.receiveMessage() else { throw TestFailure("expected a TileUpdate") }
        #expect(try decoder.apply(first.body) == 1)
        return (decoder, first.body)
    }
}
