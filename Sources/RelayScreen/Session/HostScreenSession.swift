import NIOCore
public import RelayClient
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
        /// Text put on the viewer's clipboard once the session starts.
        public var clipboard: String?
        public init(framesPerSecond: Double = 15, clipboard: String? = nil) {
            self.framesPerSecond = framesPerSecond
            self.clipboard = clipboard
        }
    }

    /// What the host's console shows.
    public enum Event: Sendable {
        case screen(width: Int, height: Int)
        case clipboard(String)
        case inputFailed(String)
    }

    /// How the session ended.
    public enum Outcome: Sendable, Hashable {
        /// The viewer or the relay said Bye.
        case bye(Bye)
        /// The relay closed the connection without a Bye.
        case closed
    }

    public let source: any ScreenSource
    public let options: Options

    public init(source: any ScreenSource, options: Options = Options()) {
        self.source = source
        self.options = options
    }

    /// Serves the screen on a paired connection until the session ends.
    public func run(on connection: RelayConnection, events: @escaping @Sendable (Event) -> Void = { _ in }) async throws -> Outcome {
        let mailbox = RequestMailbox()
        let sender = connection.sender
        let limit = connection.maximumPayloadLength
        let streamerFailure = Locked<(any Error)?>(nil)
        let outcome = try await withThrowingTaskGroup(of: Void.self) { group in
            defer {
                mailbox.close()
                group.cancelAll()
            }
            group.addTask {
                do {
                    try await Streamer(source: self.source, sender: sender, maximumPayloadLength: limit, framesPerSecond: self.options.framesPerSecond, events: events)
                        .run(mailbox)
                } catch is CancellationError {
                    return
                } catch {
                    // The screen cannot be shared any more (the X server went away, a
                    // replay frame is unreadable): say so, and the relay ends the session.
                    streamerFailure.withLock { $0 = error }
                    try? await sender.send(.bye(Bye(reason: .normal, text: "the host stopped sharing its screen: \(error)")))
                }
            }
            if let text = self.options.clipboard {
                try await connection.send(.clipboard(Clipboard(text: text)))
            }
            return try await self.receive(connection, mailbox: mailbox, events: events)
        }
        if let error = streamerFailure.withLock({ $0 }) { throw error }
        return outcome
    }

    private func receive(_ connection: RelayConnection, mailbox: RequestMailbox, events: @Sendable (Event) -> Void) async throws -> Outcome {
        while true {
            let message: RelayMessage?
            do {
                message = try await connection.receive()
            } catch let error as RelayClientError where error.kind == .protocolViolation {
                try? await connection.send(.bye(Bye(reason: .protocolError, text: "the host could not decode a message: \(error.message)")))
                throw error
            }
            guard let message else { return .closed }
            switch message {
            case .updateRequest(let request):
                mailbox.post(request)
            case .pointer(let pointer):
                do { try self.source.inject(pointer) } catch { events(.inputFailed("\(error)")) }
            case .key(let key):
                do { try self.source.inject(key) } catch { events(.inputFailed("\(error)")) }
            case .clipboard(let clipboard):
                events(.clipboard(clipboard.text))
            case .ping(let ping):
                try await connection.send(.pong(Pong(nonce: ping.nonce)))
            case .pong:
                continue
            case .bye(let bye):
                return .bye(bye)
            default:
                // A viewer never sends screen messages (PROTOCOL.md §5.2): a protocol error.
                let text = "the viewer sent \(message.type.name), which only a host sends"
                try? await connection.send(.bye(Bye(reason: .protocolError, text: text)))
                throw RelayClientError(.protocolViolation, text)
            }
        }
    }
}

/// UpdateRequests handed from the receiving task to the streamer, with a wake-up signal.
final class RequestMailbox: Sendable {
    private let requests = Locked<[UpdateRequest]>([])
    private let wakeups: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation

    init() {
        (self.wakeups, self.continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    func post(_ request: UpdateRequest) {
        self.requests.withLock { $0.append(request) }
        self.continuation.yield()
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

/// Captures, encodes and sends updates as the pacer allows.
private struct Streamer {
    let source: any ScreenSource
    let sender: RelaySender
    let maximumPayloadLength: Int
    let framesPerSecond: Double
    let events: @Sendable (Event) -> Void

    typealias Event = HostScreenSession.Event

    func run(_ mailbox: RequestMailbox) async throws {
        let clock = ContinuousClock()
        var pacer = UpdatePacer<ContinuousClock.Instant>(framesPerSecond: self.framesPerSecond)
        let encoder = TileEncoder()
        var screenSize: (width: Int, height: Int)?
        var signals = mailbox.signals.makeAsyncIterator()

        // ScreenInit goes first, right after Paired (PROTOCOL.md §5.2.1).
        var frame = try self.source.capture()
        try await self.announce(frame, &screenSize)

        while !Task.isCancelled {
            for request in mailbox.take() { pacer.received(request) }
            switch pacer.step(at: clock.now) {
            case .idle:
                guard await signals.next() != nil else { return }
                continue
            case .wait(let deadline):
                try await clock.sleep(until: deadline)
                continue
            case .capture:
                break
            }
            guard let owed = pacer.next else { continue }
            let now = clock.now
            frame = try self.source.capture()
            let resized = screenSize.map { $0.width != frame.width || $0.height != frame.height } ?? true
            if resized { try await self.announce(frame, &screenSize) }
            let bodies = try encoder.encodeParts(
                frame, requestID: owed.requestID, fullRefresh: owed.fullRefresh || resized, maximumBodyLength: self.maximumPayloadLength
            )
            guard !bodies.isEmpty else {
                pacer.capturedNothing(at: now)
                continue
            }
            // An update larger than the relay's payload limit goes as several TileUpdate
            // parts (PROTOCOL.md §7.6), sent with one flush.
            try await self.sender.send(frames: try bodies.map { try Frame(.tileUpdate(TileUpdate(body: $0))) })
            pacer.answered(at: now)
        }
    }

    private func announce(_ frame: Framebuffer, _ screenSize: inout (width: Int, height: Int)?) async throws {
        guard frame.width <= Int(ScreenInit.maximumDimension), frame.height <= Int(ScreenInit.maximumDimension) else {
            throw RelayClientError(.configuration, "the screen is \(frame.width)×\(frame.height), larger than the protocol's \(ScreenInit.maximumDimension) pixels per side")
        }
        try await self.sender.send(.screenInit(ScreenInit(width: UInt16(frame.width), height: UInt16(frame.height), name: self.source.name)))
        screenSize = (frame.width, frame.height)
        self.events(.screen(width: frame.width, height: frame.height))
    }

}
