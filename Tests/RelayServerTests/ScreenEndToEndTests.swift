import Crypto
import Foundation
import NIOCore
import RelayClient
import RelayScreen
import RelaySecureChannel
import RelayTestSupport
import RelayTileCodec
import RelayWire
import Synchronization
import Testing

@testable import RelayServer

/// Screen streaming end to end (PROTOCOL.md §7): a host serving a screen source and a
/// viewer reconstructing it, paired through a real relay over TLS on loopback, encrypted
/// end to end as the agents always are (§5.3).
@Suite struct ScreenEndToEndTests {
    /// Runs the end-to-end handshake on a paired connection, as the agents do.
    static func secure(_ connection: RelayConnection, _ role: Role, _ paired: Paired) async throws -> SecureTransport<RelayConnection> {
        let local = SecureHandshake.Local(role: role, identity: Curve25519.Signing.PrivateKey(), name: "\(role)", organization: "")
        guard case .established(let transport) = try await SecureTransport.establish(over: connection, local: local, sessionID: paired.sessionID) else {
            throw TestFailure("\(role): the end-to-end handshake did not complete")
        }
        return transport
    }

    /// Pairs a host serving `source` with a viewer by support code, runs `observe` on the
    /// viewer's events until it says stop, and returns the viewer's session.
    static func stream(
        _ source: any ScreenSource,
        fps: Double = 60,
        through relay: TestRelay,
        hostClipboard: String? = nil,
        stopsWithBye: Bool = false,
        viewerInput: [RelayMessage] = [],
        observe: @escaping (ViewerScreenSession.Event) async throws -> ViewerScreenSession.Decision,
        afterFirstUpdate: @escaping @Sendable (SecureSender<RelaySender>) async throws -> Void = { _ in }
    ) async throws -> (viewer: ViewerScreenSession, hostOutcome: HostScreenSession.Outcome, events: [HostScreenSession.Event]) {
        let (codes, codeSink) = AsyncStream.makeStream(of: SupportCode.self)
        let (hostEvents, hostEventSink) = AsyncStream.makeStream(of: HostScreenSession.Event.self)
        let viewer = ViewerScreenSession()
        let hostOutcome: HostScreenSession.Outcome = try await withThrowingTaskGroup(of: HostScreenSession.Outcome?.self) { group in
            group.addTask {
                var iterator = codes.makeAsyncIterator()
                guard let code = await iterator.next() else { throw TestFailure("no support code") }
                return try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { host in
                    try await host.hello(role: .host)
                    guard case .paired(let paired) = try await host.authenticate(host: .supportCode(code)) else { throw TestFailure("host not paired") }
                    let secure = try await Self.secure(host, .host, paired)
                    let session = HostScreenSession(source: source, options: .init(framesPerSecond: fps, clipboard: hostClipboard))
                    defer { hostEventSink.finish() }
                    return try await session.run(on: secure) { event in hostEventSink.yield(event) }
                }
            }
            try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { connection in
                try await connection.hello(role: .viewer)
                guard
                    case .codeIssued(let issued) = try await connection.authenticate(
                        viewer: ViewerAuth(token: relay.acme.engineerToken, request: .newSupportCode))
                else {
                    throw TestFailure("no code issued")
                }
                codeSink.yield(issued.code)
                let secure = try await Self.secure(connection, .viewer, try await connection.waitForPairing())
                for message in viewerInput { try await secure.sender.send(message) }
                let sender = secure.sender
                var updates = 0
                let outcome = try await viewer.run(on: secure) { event in
                    if case .update = event {
                        updates += 1
                        if updates == 1 { try await afterFirstUpdate(sender) }
                    }
                    return try await observe(event)
                }
                // The observer stops the session, or a Bye sent from `afterFirstUpdate` does
                // (the relay then closes the viewer's connection).
                #expect(outcome == (stopsWithBye ? .closed : .stopped))
            }
            var outcome: HostScreenSession.Outcome?
            for try await result in group { outcome = result ?? outcome }
            return outcome!
        }
        return (viewer, hostOutcome, await hostEvents.reduce(into: []) { $0.append($1) })
    }

    @Test("the viewer's framebuffer equals a captured frame after every update, and finally the last one")
    func scriptedSequenceArrivesByteForByte() async throws {
        let frames = ScriptedSource.desktopSequence(width: 320, height: 200, count: 40)
        let source = ScriptedSource(frames)
        let hashes = Set(frames.map(\.pixels.hashValue))
        try await TestRelay.with { relay in
            var updates = 0
            let result = try await Self.stream(source, through: relay) { event in
                guard case .update(_, _, _, let framebuffer) = event else { return .continue }
                updates += 1
                #expect(hashes.contains(framebuffer.pixels.hashValue), "update \(updates) shows a frame the host never captured")
                return framebuffer == frames.last! ? .stop : .continue
            }
            #expect(result.viewer.framebuffer == frames.last!)
            #expect(updates >= 2)
            guard case .bye(let bye) = result.hostOutcome else { throw TestFailure("the host saw \(result.hostOutcome), not a Bye") }
            #expect(bye.reason == .peerLeft)
        }
    }

    @Test("a resolution change sends a new ScreenInit and the viewer follows it")
    func resolutionChange() async throws {
        var frames = ScriptedSource.desktopSequence(width: 200, height: 120, count: 5)
        frames += ScriptedSource.desktopSequence(width: 256, height: 160, count: 5, seed: 9)
        let source = ScriptedSource(frames)
        try await TestRelay.with { relay in
            var screens: [String] = []
            let result = try await Self.stream(source, through: relay) { event in
                switch event {
                case .screen(let screen): screens.append("\(screen.width)x\(screen.height)")
                case .update(_, _, _, let framebuffer): if framebuffer == frames.last! { return .stop }
                case .clipboard, .accessGranted: break
                }
                return .continue
            }
            #expect(screens == ["200x120", "256x160"])
            #expect(result.viewer.framebuffer == frames.last!)
        }
    }

    @Test("an update larger than the relay's frame limit travels in parts (PROTOCOL.md §7.6)")
    func largeUpdateInParts() async throws {
        // Noise does not compress: a 1024×768 frame of it is about 3 MiB of update body.
        var generator = SeededRandom(seed: 0x5C4EE)
        var noise = Framebuffer(width: 1024, height: 768)
        for index in stride(from: 0, to: noise.pixels.count, by: 4) {
            noise.pixels[index] = UInt8.random(in: 0...255, using: &generator)
            noise.pixels[index + 1] = UInt8.random(in: 0...255, using: &generator)
            noise.pixels[index + 2] = UInt8.random(in: 0...255, using: &generator)
        }
        let source = ScriptedSource([noise])
        try await TestRelay.with { relay in
            var biggest = 0
            let result = try await Self.stream(source, through: relay) { event in
                guard case .update(_, let wireBytes, _, let framebuffer) = event else { return .continue }
                biggest = max(biggest, wireBytes)
                return framebuffer == noise ? .stop : .continue
            }
            #expect(result.viewer.framebuffer == noise)
            #expect(biggest > Frame.defaultMaximumPayloadLength)
        }
    }

    @Test("input and clipboard cross the relay both ways")
    func inputAndClipboard() async throws {
        let frames = ScriptedSource.desktopSequence(width: 160, height: 100, count: 1)
        let source = ScriptedSource(frames)
        let input: [RelayMessage] = [
            .pointer(Pointer(x: 10, y: 20, buttons: .left)),
            .key(Key(keysym: 0x0100_D68C, isDown: true)),  // 회
            .key(Key(keysym: 0x0100_D68C, isDown: false)),
            .clipboard(Clipboard(text: "엔지니어의 클립보드")),
        ]
        try await TestRelay.with { relay in
            var hostClipboard: String?
            let result = try await Self.stream(source, through: relay, hostClipboard: "고객의 클립보드", viewerInput: input) { event in
                if case .clipboard(let text) = event { hostClipboard = text }
                return hostClipboard != nil && source.injected.count == 3 ? .stop : .continue
            }
            #expect(hostClipboard == "고객의 클립보드")
            #expect(source.injected == Array(input.prefix(3)))
            #expect(result.events.contains { if case .clipboard("엔지니어의 클립보드") = $0 { true } else { false } })
        }
    }

    @Test("a synthetic scene arrives byte for byte, with the viewer's typing and pointer drawn into it")
    func syntheticSceneShowsTheViewersInput() async throws {
        let scene = SyntheticScene(.scrollingText, width: 320, height: 200)
        // A stopped clock: the scene stays on frame 0, so only the viewer's input changes it.
        let source = try SyntheticScreenSource(scene: scene, fps: 30, clock: ScreenClock(now: { .zero }))
        let keys = "hi 회계".unicodeScalars.flatMap { scalar in
            [Key(keysym: Keysym.forScalar(scalar)!, isDown: true), Key(keysym: Keysym.forScalar(scalar)!, isDown: false)]
        }
        let pointer = Pointer(x: 200, y: 120, buttons: .left)
        var expectedInput = SyntheticInput()
        for key in keys { expectedInput.record(key) }
        expectedInput.record(pointer)
        let expected = scene.frame(index: 0, input: expectedInput)
        #expect(expected != scene.frame(index: 0), "the input must show in the scene for this test to mean anything")
        try await TestRelay.with { relay in
            let result = try await Self.stream(source, through: relay) { event in
                guard case .update(_, _, _, let framebuffer) = event else { return .continue }
                return framebuffer == expected ? .stop : .continue
            } afterFirstUpdate: { sender in
                try await sender.send(frames: try keys.map { try Frame(.key($0)) } + [try Frame(.pointer(pointer))])
            }
            #expect(result.viewer.framebuffer == expected)
            #expect(source.input.typedText == "hi 회계")
        }
    }

    @Test("a replay folder's last frame arrives as the viewer's PNG snapshot")
    func replaySnapshot() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("replay-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let frames = ScriptedSource.desktopSequence(width: 240, height: 136, count: 6)
        for (index, frame) in frames.enumerated() {
            try PNGFile.write(frame, to: "\(folder)/frame-\(String(format: "%03d", index)).png")
        }
        let source = try ReplayScreenSource(folder: folder, fps: 30)
        try await TestRelay.with { relay in
            let result = try await Self.stream(source, through: relay) { event in
                guard case .update(_, _, _, let framebuffer) = event else { return .continue }
                return framebuffer == frames.last! ? .stop : .continue
            }
            let snapshot = "\(folder)/snapshot.png"
            try PNGFile.write(result.viewer.framebuffer!, to: snapshot)
            #expect(try PNGFile.read(snapshot) == frames.last!)
        }
    }
}

/// A screen source that plays a fixed list of frames, one per capture, then holds the
/// last, and records the input injected into it.
final class ScriptedSource: ScreenSource, @unchecked Sendable {
    private let frames: [Framebuffer]
    private let state = Mutex<(next: Int, injected: [RelayMessage])>((0, []))

    init(_ frames: [Framebuffer]) {
        precondition(!frames.isEmpty)
        self.frames = frames
    }

    var name: String { "scripted" }

    var injected: [RelayMessage] { self.state.withLock { $0.injected } }

    func capture() throws -> Framebuffer {
        let index = self.state.withLock { state in
            defer { state.next = min(state.next + 1, self.frames.count - 1) }
            return state.next
        }
        return self.frames[index]
    }

    func inject(_ pointer: Pointer) throws { self.state.withLock { $0.injected.append(.pointer(pointer)) } }
    func inject(_ key: Key) throws { self.state.withLock { $0.injected.append(.key(key)) } }

    /// A desktop-like sequence: a background, a text area that scrolls a line per frame,
    /// and a window that moves; seeded, so tests can rebuild it.
    static func desktopSequence(width: Int, height: Int, count: Int, seed: UInt64 = 1) -> [Framebuffer] {
        var generator = SeededRandom(seed: seed)
        let lineHeight = 8
        let lines = (0..<(height / lineHeight + count + 1)).map { _ in
            (0..<(width / 4)).map { _ in UInt8.random(in: 0...3, using: &generator) == 0 }
        }
        return (0..<count).map { step in
            var frame = Framebuffer(width: width, height: height, fill: 0x20_40_60)
            for y in 0..<height {
                let line = lines[(y + step * 2) / lineHeight]
                for x in 0..<(width / 2) where line[x / 4] && (y % lineHeight) < 6 {
                    frame.setRGB(0xE0_E0_E0, x: x, y: y)
                }
            }
            let left = (step * 7) % max(1, width / 2)
            for y in (height / 4)..<(height / 2) {
                for x in (width / 2 + left / 4)..<min(width, width / 2 + left / 4 + width / 4) {
                    frame.setRGB(y == height / 4 ? 0x00_00_AA : 0xF0_F0_F0, x: x, y: y)
                }
            }
            return frame
        }
    }
}
