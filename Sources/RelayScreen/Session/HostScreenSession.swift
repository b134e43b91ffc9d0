import RelayTileCodec
public import RelayWire
import Synchronization

/// The host's side of a paired session (PROTOCOL.md §7.9): shares `source` with the
/// viewer, viewer-paced, and injects the viewer's pointer and keys into it.
///
/// Two tasks: this one receives the viewer's messages; a streamer child task captures,
/// encodes and sends, one update per UpdateRequest, at most `framesPerSecond` captures a
/// second, so a slow link gets fresh frames late rather than a backlog.
public struct HostScreenSession: Sendable {
    public struct Options: Sendable {
        /// The most captures per second while the viewer waits for an update.
        public var framesPerSecond: Double = 15
        /// Text put on the viewer's clipboard once the customer has granted access.
        public var clipboard: String?
        /// Opens the desktop's clipboard for a session with full control (nil: the source
        /// has none): the viewer's Clipboard is put on it, and what is copied on the desktop
        /// goes to the viewer (PROTOCOL.md §5.2.6). Called with the longest text a Clipboard
        /// may carry, before AccessGranted; stopped when the session ends. A view-only
        /// session shares no clipboard ("the engineer sees the screen, nothing more").
        public var desktopClipboard: (@Sendable (_ maximumTextLength: Int) throws -> any DesktopClipboard)?
        /// How the customer decides what the engineer may do (PROTOCOL.md §5.2.7).
        public var consent: Consent
        /// How long the host waits, after its own Bye, for the relay to close the
        /// connection before closing it itself.
        public var closeGrace: Duration
        /// Whether the viewer keeps a glyph table: it announced the `glyphs` capability
        /// and the relay's HelloAck allowed it (PROTOCOL.md §3). Text then travels as
        /// glyphs drawn from the table (§7.4.7).
        public var glyphs: Bool

        public init(
            framesPerSecond: Double = 15, clipboard: String? = nil,
            desktopClipboard: (@Sendable (_ maximumTextLength: Int) throws -> any DesktopClipboard)? = nil,
            consent: Consent = .granted(.fullControl), closeGrace: Duration = .seconds(2), glyphs: Bool = false
        ) {
            self.framesPerSecond = framesPerSecond
            self.clipboard = clipboard
            self.desktopClipboard = desktopClipboard
            self.consent = consent
            self.closeGrace = closeGrace
            self.glyphs = glyphs
        }
    }

    /// What the host's console shows. Texts are as the viewer sent them: print them
    /// through `PeerText.printable`.
    public enum Event: Sendable {
        /// The customer's decision went to the viewer; sharing starts.
        case accessGranted(SessionAccess)
        case screen(width: Int, height: Int)
        case clipboard(String)
        /// Text copied on the desktop went to the viewer.
        case clipboardSent(String)
        /// The desktop's clipboard could not be opened, or a copy was not sent: a sentence
        /// for the host's user.
        case clipboardProblem(String)
        case inputFailed(String)
        /// The viewer sent input in a view-only session (reported once): it was dropped.
        case inputIgnored
    }

    /// How the session ended.
    public enum Outcome: Sendable, Hashable {
        /// The viewer or the relay said Bye.
        case bye(Bye)
        /// The relay closed the connection without a Bye.
        case closed
        /// The customer refused; the host said `Bye(declined)`.
        case declined
        /// The host was asked to stop (`stop`) and said Bye.
        case stopped
    }

    public let source: any ScreenSource
    public let options: Options

    public init(source: any ScreenSource, options: Options = Options()) {
        self.source = source
        self.options = options
    }

    /// Serves the screen on a paired connection until the session ends.
    ///
    /// First the customer decides (``Options/consent``): the host then sends
    /// AccessGranted and shares the screen, or says `Bye(declined)`. Until then, and in a
    /// view-only session throughout, the viewer's pointer, keys and clipboard are dropped
    /// (``ViewerInputGate``). An element on `stop` (Ctrl-C) ends the session politely:
    /// Bye to the relay, which closes the connection, or the host closes it after
    /// ``Options/closeGrace``.
    ///
    /// Throws a ``ScreenSessionError`` when the viewer breaks the protocol or the relay
    /// ends the session with an Error, the screen source's error when the screen can no
    /// longer be shared, and the transport's error when the connection fails.
    public func run(
        on connection: some FrameTransport, stop: AsyncStream<Void>? = nil, events: @escaping @Sendable (Event) -> Void = { _ in }
    ) async throws -> Outcome {
        try await self.run(on: connection, clock: ContinuousClock(), stop: stop, events: events)
    }

    /// ``run(on:stop:events:)`` with the clock that paces captures and times the close
    /// grace: tests pass one they advance by hand.
    package func run<C: Clock<Duration>>(
        on connection: some FrameTransport, clock: C, stop: AsyncStream<Void>? = nil, events: @escaping @Sendable (Event) -> Void = { _ in }
    ) async throws -> Outcome {
        let mailbox = RequestMailbox()
        let sender = connection.sender
        let limit = connection.maximumPayloadLength
        let state = SessionState(ViewerInputGate(self.options.consent))
        let grace = self.options.closeGrace
        let outcome = try await withThrowingTaskGroup(of: Void.self) { group in
            defer {
                mailbox.close()
                group.cancelAll()
            }
            group.addTask {
                do {
                    let access: SessionAccess
                    switch try await self.decide(state) {
                    case .allow(let granted):
                        access = granted
                    case .decline(let text):
                        // Refused (PROTOCOL.md §5.2.7): the relay passes the Bye on to the
                        // viewer and closes both connections.
                        state.end(.declined)
                        await Self.sayBye(Bye(reason: .declined, text: text), on: sender, clock: clock, grace: grace)
                        return
                    }
                    // Opened before AccessGranted, so that the viewer's first Clipboard finds it.
                    let desktop = access == .fullControl ? self.openDesktopClipboard(maximumTextLength: limit, events: events) : nil
                    defer { desktop?.stop() }
                    state.share(desktop)
                    // Nothing is shared before AccessGranted (PROTOCOL.md §5.2.7).
                    try await Transmit.send([Frame(.accessGranted(access.message))], on: sender)
                    events(.accessGranted(access))
                    if let text = self.options.clipboard {
                        try await Transmit.send([Frame(.clipboard(Clipboard(text: text)))], on: sender)
                    }
                    try await withThrowingTaskGroup(of: Void.self) { sharing in
                        if let desktop {
                            sharing.addTask { await Self.forwardCopies(of: desktop, to: sender, maximumTextLength: limit, events: events) }
                        }
                        defer { sharing.cancelAll() }
                        try await Streamer(
                            source: self.source, sender: sender, clock: clock, maximumPayloadLength: limit,
                            framesPerSecond: self.options.framesPerSecond, glyphs: self.options.glyphs, events: events
                        ).run(mailbox)
                    }
                } catch is CancellationError {
                    return
                } catch is Transmit.Failed {
                    // The connection is gone (the viewer left and the relay closed it, or the
                    // network failed): the receiving side reports how the session ended.
                    return
                } catch {
                    // The screen cannot be shared any more (the X server went away, a
                    // replay frame is unreadable): say so, and the relay ends the session.
                    state.end(.failed(error))
                    try? await sender.send(.bye(Bye(reason: .normal, text: "the host stopped sharing its screen: \(error)")))
                }
            }
            if let stop {
                group.addTask {
                    for await _ in stop {
                        let undecided = state.isAwaitingConsent
                        state.end(.stopped)
                        let bye =
                            undecided
                            ? Bye(reason: .declined, text: "The customer stopped relay-agent without accepting the session.")
                            : Bye(reason: .normal, text: "The customer stopped sharing the screen.")
                        await Self.sayBye(bye, on: sender, clock: clock, grace: grace)
                        return
                    }
                }
            }
            return try await self.receive(connection, state: state, mailbox: mailbox, events: events)
        }
        switch state.ending {
        case .failed(let error): throw error
        case .declined: return .declined
        case .stopped: return .stopped
        case nil: return outcome
        }
    }

    /// Why the host itself ended the session.
    fileprivate enum Ending: Sendable {
        case declined
        case stopped
        case failed(any Error)
    }

    private func openDesktopClipboard(maximumTextLength: Int, events: @Sendable (Event) -> Void) -> (any DesktopClipboard)? {
        guard let open = self.options.desktopClipboard else { return nil }
        do {
            return try open(maximumTextLength)
        } catch {
            events(.clipboardProblem("The desktop's clipboard cannot be shared (\(error)): the engineer's clipboard text is only printed here."))
            return nil
        }
    }

    /// Sends what is copied on the desktop to the viewer (PROTOCOL.md §5.2.6) until the
    /// session ends; a text longer than a Clipboard may carry is not sent (§2.2).
    private static func forwardCopies(
        of desktop: any DesktopClipboard, to sender: some FrameSender, maximumTextLength: Int, events: @Sendable (Event) -> Void
    ) async {
        for await event in desktop.events {
            switch event {
            case .copied(let text):
                guard text.utf8.count <= maximumTextLength else {
                    events(
                        .clipboardProblem(
                            "The text copied on this desktop (\(text.utf8.count) bytes) is longer than a clipboard message may carry (\(maximumTextLength) bytes): it was not sent to the engineer; copy less at a time."
                        ))
                    continue
                }
                do {
                    try await Transmit.send([Frame(.clipboard(Clipboard(text: text)))], on: sender)
                } catch {
                    // The connection is gone: the session is ending.
                    return
                }
                events(.clipboardSent(text))
            case .problem(let text):
                events(.clipboardProblem(text))
            }
        }
    }

    /// The customer's decision, asked if the options say so; the gate follows it.
    private func decide(_ state: SessionState) async throws -> ConsentDecision {
        switch self.options.consent {
        case .granted(let access):
            return .allow(access)
        case .ask(let ask):
            let decision = try await ask()
            try Task.checkCancellation()
            state.decided(decision)
            return decision
        }
    }

    /// Says Bye, then closes the connection if the relay has not closed it within `grace`.
    private static func sayBye<C: Clock<Duration>>(_ bye: Bye, on sender: some FrameSender, clock: C, grace: Duration) async {
        defer { sender.close() }
        do {
            try await sender.send(.bye(bye))
            try await clock.sleep(for: grace)
        } catch {
            // Closed already, or the session ended meanwhile: nothing left to wait for.
        }
    }

    private func receive(
        _ connection: some FrameTransport, state: SessionState, mailbox: RequestMailbox, events: @Sendable (Event) -> Void
    ) async throws -> Outcome {
        let sender = connection.sender
        while true {
            guard let frame = try await connection.receiveFrame() else { return .closed }
            let message: RelayMessage
            do {
                message = try RelayMessage(frame)
            } catch {
                // Perhaps a frame the relay completed because the viewer left mid-frame
                // (PROTOCOL.md §2.3): then the relay's Bye follows and says why.
                if let outcome = try await PeerReading.readOnAfterDamage(connection) { return .bye(outcome) }
                let text = "the viewer sent a malformed \(frame.type.name): \(error)"
                try? await sender.send(.bye(Bye(reason: .protocolError, text: text)))
                throw ScreenSessionError(.protocolViolation, text)
            }
            switch message {
            case .bye(let bye):
                return .bye(bye)
            case .error(let error):
                throw ScreenSessionError(relayError: error)
            case .ping, .pong:
                // The connection answers Pings and consumes its keepalive's Pongs; a stray
                // Pong is traffic and nothing more (PROTOCOL.md §5.1.9).
                continue
            default:
                break
            }
            switch state.admit(message) {
            case .deliver:
                switch message {
                case .updateRequest(let request):
                    mailbox.post(request)
                case .pointer(let pointer):
                    do { try self.source.inject(pointer) } catch { events(.inputFailed("\(error)")) }
                case .key(let key):
                    do { try self.source.inject(key) } catch { events(.inputFailed("\(error)")) }
                case .clipboard(let clipboard):
                    events(.clipboard(clipboard.text))
                    // Before the next message: the paste key that may follow finds the text.
                    await state.desktopClipboard?.set(text: clipboard.text)
                default:
                    break
                }
            case .ignore(let firstTime):
                if firstTime { events(.inputIgnored) }
            case .protocolViolation(let text):
                // A viewer never sends screen messages (PROTOCOL.md §5.2): a protocol error.
                try? await sender.send(.bye(Bye(reason: .protocolError, text: text)))
                throw ScreenSessionError(.protocolViolation, text)
            }
        }
    }
}

/// The desktop's clipboard as a host session shares it both ways (PROTOCOL.md §5.2.6):
/// ``X11Clipboard`` for an X display.
public protocol DesktopClipboard: AnyObject, Sendable {
    /// Texts copied on the desktop by its programs, and copies not passed on; ends at ``stop()``.
    var events: AsyncStream<DesktopClipboardEvent> { get }
    /// Puts the viewer's text on the desktop's clipboard; returns once it is there, so that
    /// a paste key injected next pastes it (the viewer sends Clipboard, then the key).
    func set(text: String) async
    /// Gives the clipboard back to the desktop's programs and ends ``events``.
    func stop()
}

/// What happens on the desktop's clipboard that a host session passes on or reports.
public enum DesktopClipboardEvent: Sendable, Hashable {
    /// A program on the desktop copied this text.
    case copied(String)
    /// A copy that is not passed on (too large, not text, its owner did not answer), or
    /// the viewer's text that could not be put on the clipboard: a sentence for the host's user.
    case problem(String)
}

/// What the host session's tasks share: the customer's decision, which gates the viewer's
/// input, and why the host itself ended the session, if it did.
private final class SessionState: Sendable {
    private struct Inner {
        var gate: ViewerInputGate
        var ending: HostScreenSession.Ending?
        var desktopClipboard: (any DesktopClipboard)?
    }

    private let inner: Mutex<Inner>

    init(_ gate: ViewerInputGate) { self.inner = Mutex(Inner(gate: gate)) }

    var isAwaitingConsent: Bool { self.inner.withLock { $0.gate.state == .awaitingConsent } }

    var ending: HostScreenSession.Ending? { self.inner.withLock { $0.ending } }

    func decided(_ decision: ConsentDecision) { self.inner.withLock { $0.gate.decided(decision) } }

    func admit(_ message: RelayMessage) -> ViewerInputGate.Verdict { self.inner.withLock { $0.gate.admit(message) } }

    /// The desktop's clipboard, where the viewer's Clipboard goes (full control only).
    var desktopClipboard: (any DesktopClipboard)? { self.inner.withLock { $0.desktopClipboard } }

    func share(_ clipboard: (any DesktopClipboard)?) { self.inner.withLock { $0.desktopClipboard = clipboard } }

    /// The first reason wins: a stop during a failing capture is still a failure.
    func end(_ ending: HostScreenSession.Ending) {
        self.inner.withLock { $0.ending = $0.ending ?? ending }
    }
}

/// UpdateRequests handed from the receiving task to the streamer, and the screen source's
/// word that something was drawn, with a wake-up signal: state behind a `Mutex` plus an
/// `AsyncStream<Void>` that buffers one wake-up, as the relay's `UsageJournal` does.
final class RequestMailbox: Sendable {
    private let requests = Mutex<[UpdateRequest]>([])
    private let drawing = Mutex(false)
    private let wakeups: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation

    init() {
        (self.wakeups, self.continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    func post(_ request: UpdateRequest) {
        self.requests.withLock { $0.append(request) }
        self.continuation.yield()
    }

    /// From the source's thread (``ScreenSource/notifyWhenDrawn(_:)``).
    func drawn() {
        self.drawing.withLock { $0 = true }
        self.continuation.yield()
    }

    /// Whether the source said something was drawn since the last call.
    func takeDrawn() -> Bool {
        self.drawing.withLock { drawn in
            defer { drawn = false }
            return drawn
        }
    }

    func close() { self.continuation.finish() }

    func take() -> [UpdateRequest] {
        self.requests.withLock { requests in
            defer { requests.removeAll(keepingCapacity: true) }
            return requests
        }
    }

    /// Wake-ups: one element after any number of posts; ends when the mailbox is closed.
    var signals: AsyncStream<Void> { self.wakeups }
}

/// Sends that tell a transport failure apart from the session's own errors.
private enum Transmit {
    /// The transport refused a send: the connection is closed or failed, and its reading
    /// side reports how (``FrameSender/send(frames:)``).
    struct Failed: Error {}

    static func send(_ frames: [Frame], on sender: some FrameSender) async throws {
        do {
            try await sender.send(frames: frames)
        } catch {
            throw Failed()
        }
    }
}

/// Captures, encodes and sends updates as the pacer allows. Captures come with what
/// changed where the source knows it (``ScreenSource/captureChanges()``, X11 DAMAGE): an
/// update then costs what was drawn, and a capture that changed nothing costs no encoding.
/// After such a capture, a source that says when something is drawn
/// (``ScreenSource/notifyWhenDrawn(_:)``) is not captured again until it has: an idle
/// screen costs no wake-up per frame interval.
private struct Streamer<Sender: FrameSender, C: Clock<Duration>> {
    let source: any ScreenSource
    let sender: Sender
    let clock: C
    let maximumPayloadLength: Int
    let framesPerSecond: Double
    let glyphs: Bool
    let events: @Sendable (Event) -> Void

    typealias Event = HostScreenSession.Event

    func run(_ mailbox: RequestMailbox) async throws {
        var pacer = UpdatePacer<C.Instant>(framesPerSecond: self.framesPerSecond)
        let encoder = TileEncoder(glyphs: self.glyphs)
        var screenSize: (width: Int, height: Int)?
        var signals = mailbox.signals.makeAsyncIterator()

        // ScreenInit goes first, right after AccessGranted (PROTOCOL.md §5.2.1, §5.2.7).
        // Frames are not kept between captures: a source that updates its frame in place
        // (X11 with DAMAGE) then writes to storage nobody else holds, copying nothing.
        try await self.announce(try self.source.captureChanges().frame, &screenSize)

        while !Task.isCancelled {
            for request in mailbox.take() { pacer.received(request) }
            if mailbox.takeDrawn() { pacer.drawn() }
            switch pacer.step(at: self.clock.now) {
            case .idle:
                guard await signals.next() != nil else { return }
                continue
            case .wait(let deadline):
                try await self.clock.sleep(until: deadline, tolerance: nil)
                continue
            case .capture:
                break
            }
            guard let owed = pacer.next else { continue }
            let now = self.clock.now
            let capture = try self.source.captureChanges()
            let frame = capture.frame
            let resized = screenSize.map { $0.width != frame.width || $0.height != frame.height } ?? true
            if resized { try await self.announce(frame, &screenSize) }
            let fullRefresh = owed.fullRefresh || resized
            if !fullRefresh, capture.changes?.isEmpty == true {
                // The source knows nothing was drawn: the encoder's frame is still the
                // screen, and the source says when that ends.
                pacer.capturedNothing(at: now, awaitingDrawing: self.source.notifyWhenDrawn { mailbox.drawn() })
                continue
            }
            let bodies = try encoder.encodeParts(
                frame, changes: capture.changes, requestID: owed.requestID, fullRefresh: fullRefresh,
                maximumBodyLength: self.maximumPayloadLength
            )
            guard !bodies.isEmpty else {
                pacer.capturedNothing(at: now)
                continue
            }
            // An update larger than the relay's payload limit goes as several TileUpdate
            // parts (PROTOCOL.md §7.6), sent with one flush.
            try await Transmit.send(try bodies.map { try Frame(.tileUpdate(TileUpdate(body: $0))) }, on: self.sender)
            pacer.answered(at: now)
        }
    }

    private func announce(_ frame: Framebuffer, _ screenSize: inout (width: Int, height: Int)?) async throws {
        guard frame.width <= Int(ScreenInit.maximumDimension), frame.height <= Int(ScreenInit.maximumDimension) else {
            throw ScreenSessionError(
                .screenTooLarge,
                "the screen is \(frame.width)×\(frame.height), larger than the protocol's \(ScreenInit.maximumDimension) pixels per side: lower the display's resolution to share it"
            )
        }
        try await Transmit.send(
            [Frame(.screenInit(ScreenInit(width: UInt16(frame.width), height: UInt16(frame.height), name: self.source.name)))], on: self.sender)
        screenSize = (frame.width, frame.height)
        self.events(.screen(width: frame.width, height: frame.height))
    }
}
