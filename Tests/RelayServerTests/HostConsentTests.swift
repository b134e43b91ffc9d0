import Foundation
import NIOCore
import RelayClient
import RelayScreen
import RelayTestSupport
import RelayTileCodec
import RelayWire
import Synchronization
import Testing

@testable import RelayServer

/// The customer decides before anything is shared, end to end through a relay
/// (issue 10, item 13; PROTOCOL.md §5.2.7): a refusal reaches the engineer and shares
/// nothing; view-only keeps the engineer's input away from the screen; an engineer who
/// leaves while the customer is being asked ends the prompt; Ctrl-C says Bye.
@Suite(.timeLimit(.minutes(1))) struct HostConsentTests {
    struct SessionResult {
        var viewer: ViewerScreenSession.Outcome
        var viewerEvents: [String]
        var viewerAccess: SessionAccess?
        var host: HostScreenSession.Outcome
        var hostEvents: [HostScreenSession.Event]
    }

    /// Pairs a host serving `source` with `consent` and a viewer by support code; the
    /// viewer's session runs `observe` (with a sender for input) until it says stop.
    static func session(
        through relay: TestRelay, source: RecordingSource, consent: Consent, hostStop: AsyncStream<Void>? = nil,
        viewerOpening: @escaping @Sendable (RelaySender) async throws -> Void = { _ in },
        observe: @escaping (ViewerScreenSession.Event, RelaySender) async throws -> ViewerScreenSession.Decision
    ) async throws -> SessionResult {
        let (codes, codeSink) = AsyncStream.makeStream(of: SupportCode.self)
        let (hostEvents, hostEventSink) = AsyncStream.makeStream(of: HostScreenSession.Event.self)
        return try await withThrowingTaskGroup(of: HostScreenSession.Outcome?.self) { group in
            group.addTask {
                var iterator = codes.makeAsyncIterator()
                guard let code = await iterator.next() else { throw TestFailure("no support code") }
                return try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { host in
                    try await host.hello(role: .host)
                    guard case .paired(let paired) = try await host.authenticate(host: .supportCode(code)) else { throw TestFailure("host not paired") }
                    #expect(paired.peerName == relay.acme.engineerLogin)
                    let session = HostScreenSession(source: source, options: .init(framesPerSecond: 30, consent: consent, closeGrace: .seconds(5)))
                    defer { hostEventSink.finish() }
                    return try await session.run(on: host, stop: hostStop) { event in hostEventSink.yield(event) }
                }
            }
            let (outcome, events, access) = try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { viewer in
                try await viewer.hello(role: .viewer)
                guard
                    case .codeIssued(let issued) = try await viewer.authenticate(viewer: ViewerAuth(token: relay.acme.engineerToken, request: .newSupportCode))
                else {
                    throw TestFailure("no code issued")
                }
                codeSink.yield(issued.code)
                _ = try await viewer.waitForPairing()
                let sender = viewer.sender
                try await viewerOpening(sender)
                let session = ViewerScreenSession()
                var events: [String] = []
                let outcome = try await session.run(on: viewer) { event in
                    switch event {
                    case .accessGranted(let access): events.append("access \(access)")
                    case .screen: events.append("screen")
                    case .update: if events.last != "update" { events.append("update") }
                    case .clipboard: events.append("clipboard")
                    }
                    return try await observe(event, sender)
                }
                return (outcome, events, session.access)
            }
            var host: HostScreenSession.Outcome?
            for try await result in group { host = result ?? host }
            return SessionResult(
                viewer: outcome, viewerEvents: events, viewerAccess: access, host: try #require(host),
                hostEvents: await hostEvents.reduce(into: []) { $0.append($1) })
        }
    }

    static let frame = Framebuffer(width: 160, height: 100, fill: 0x20_40_60)

    @Test("a refusal ends the session with Bye(declined) from the host; the engineer sees no pixel")
    func refusal() async throws {
        try await TestRelay.with { relay in
            let source = RecordingSource(Self.frame)
            let result = try await Self.session(
                through: relay, source: source,
                consent: .ask({
                    // The customer's moment of thought (an input, not a wait for the relay): a
                    // host that captured before the answer would do it now, and `captures`
                    // below would show it. Short, since a correct host captures nothing however long.
                    try await Task.sleep(for: .milliseconds(300))
                    return .decline("The customer declined the session.")
                })
            ) { _, _ in .continue }
            #expect(result.host == .declined)
            #expect(result.viewerEvents.isEmpty)
            #expect(result.viewerAccess == nil)
            #expect(source.captures == 0)
            guard case .bye(let bye) = result.viewer else { throw TestFailure("the viewer saw \(result.viewer)") }
            // A relay that passes the reason on says declined; one that does not yet, peer_left.
            #expect([ByeReason.declined, .peerLeft].contains(bye.reason))
        }
    }

    @Test("view only: the screen arrives after AccessGranted, and the engineer's pointer, keys and clipboard never reach it")
    func viewOnlyDropsInput() async throws {
        try await TestRelay.with { relay in
            let source = RecordingSource(Self.frame)
            let input: [RelayMessage] = [
                .pointer(Pointer(x: 10, y: 20, buttons: .left)), .pointer(Pointer(x: 10, y: 20)),
                .key(Key(keysym: 0x61, isDown: true)), .key(Key(keysym: 0x61, isDown: false)),
                .clipboard(Clipboard(text: "rm -rf ~")),
            ]
            let result = try await Self.session(
                through: relay, source: source, consent: .ask({ .allow(.viewOnly) }),
                // Input sent before the decision is dropped too.
                viewerOpening: { sender in try await sender.send(frames: try input.map { try Frame($0) }) }
            ) { event, sender in
                guard case .update = event else { return .continue }
                try await sender.send(frames: try input.map { try Frame($0) })
                return .stop
            }
            #expect(result.viewerEvents == ["access view only", "screen", "update"])
            #expect(result.viewerAccess == .viewOnly)
            #expect(source.injected.isEmpty, "\(source.injected)")
            #expect(!result.hostEvents.contains { if case .clipboard = $0 { true } else { false } })
            #expect(result.hostEvents.contains { if case .inputIgnored = $0 { true } else { false } })
            #expect(result.hostEvents.contains { if case .accessGranted(.viewOnly) = $0 { true } else { false } })
        }
    }

    @Test("full control granted at the prompt: the same input reaches the screen")
    func fullControlDeliversInput() async throws {
        try await TestRelay.with { relay in
            let source = RecordingSource(Self.frame)
            let input: [RelayMessage] = [
                .pointer(Pointer(x: 10, y: 20, buttons: .left)), .key(Key(keysym: 0x61, isDown: true)), .key(Key(keysym: 0x61, isDown: false)),
            ]
            _ = try await Self.session(through: relay, source: source, consent: .ask({ .allow(.fullControl) })) { event, sender in
                guard case .update = event else { return .continue }
                try await sender.send(frames: try input.map { try Frame($0) })
                // Wait until the host has them, then stop.
                #expect(await eventually { source.injected.count == input.count })
                return .stop
            }
            #expect(source.injected == input)
        }
    }

    @Test("an engineer who leaves while the customer is being asked ends the prompt at once")
    func engineerLeavesDuringThePrompt() async throws {
        try await TestRelay.with { relay in
            let source = RecordingSource(Self.frame)
            let (asked, askedSink) = AsyncStream.makeStream(of: Void.self)
            let prompt = PromptWatch()
            let result = try await Self.session(
                through: relay, source: source,
                consent: .ask({
                    askedSink.yield()
                    // The customer never answers: only the end of the prompt stops this.
                    try await prompt.neverAnswer()
                    return .allow(.fullControl)
                }),
                viewerOpening: { sender in
                    // The engineer leaves once the customer is being asked.
                    _ = await asked.first { true }
                    try await sender.send(.bye(Bye(reason: .normal, text: "the engineer closed the viewer")))
                }
            ) { _, _ in .continue }
            askedSink.finish()
            #expect(prompt.wasCancelled, "the prompt must end when the engineer leaves")
            guard case .bye(let bye) = result.host else { throw TestFailure("the host saw \(result.host)") }
            #expect(bye.reason == .peerLeft)
            #expect(source.captures == 0)
        }
    }

    @Test("a stop (Ctrl-C) while the customer is asked says Bye(declined); during the session Bye(normal)")
    func stopSaysBye() async throws {
        try await TestRelay.with { relay in
            for undecided in [true, false] {
                let (stop, stopSink) = AsyncStream.makeStream(of: Void.self)
                let source = RecordingSource(Self.frame)
                let prompt = PromptWatch()
                let consent: Consent =
                    undecided
                    ? .ask({
                        stopSink.yield()
                        // The customer never answers: only the stop ends the prompt.
                        try await prompt.neverAnswer()
                        return .allow(.fullControl)
                    })
                    : .granted(.fullControl)
                let result = try await Self.session(through: relay, source: source, consent: consent, hostStop: stop) { event, _ in
                    if case .update = event { stopSink.yield() }
                    return .continue
                }
                #expect(result.host == .stopped, "undecided: \(undecided)")
                #expect(prompt.wasCancelled == undecided, "undecided: \(undecided)")
                guard case .bye(let bye) = result.viewer else { throw TestFailure("the viewer saw \(result.viewer)") }
                #expect(bye.reason == (undecided ? .declined : .normal) || bye.reason == .peerLeft, "undecided: \(undecided), \(bye)")
            }
        }
    }
}

/// One still frame; counts captures and records what was injected.
final class RecordingSource: ScreenSource, Sendable {
    private let frame: Framebuffer
    private let state = Mutex<(captures: Int, injected: [RelayMessage])>((0, []))

    init(_ frame: Framebuffer) { self.frame = frame }

    var name: String { "recording" }
    var captures: Int { self.state.withLock { $0.captures } }
    var injected: [RelayMessage] { self.state.withLock { $0.injected } }

    func capture() throws -> Framebuffer {
        self.state.withLock { $0.captures += 1 }
        return self.frame
    }

    func inject(_ pointer: Pointer) throws { self.state.withLock { $0.injected.append(.pointer(pointer)) } }
    func inject(_ key: Key) throws { self.state.withLock { $0.injected.append(.key(key)) } }
}

/// A consent prompt the customer never answers: it waits until the session cancels it
/// (the engineer left, or the host was stopped) and notes that it was. A prompt that is
/// never cancelled hangs the test until the suite's time limit.
final class PromptWatch: Sendable {
    private let cancelled = Mutex(false)

    var wasCancelled: Bool { self.cancelled.withLock { $0 } }

    func neverAnswer() async throws {
        let (forever, continuation) = AsyncStream.makeStream(of: Void.self)
        defer { continuation.finish() }
        for await _ in forever {}
        // The stream ends only when this task is cancelled.
        self.cancelled.withLock { $0 = true }
        throw CancellationError()
    }
}
