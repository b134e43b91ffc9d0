public import RelayTileCodec
public import RelayWire

/// The viewer's side of a paired session (PROTOCOL.md §7.9): keeps a bounded number of
/// UpdateRequests in flight, reassembles and decodes the host's updates into a
/// framebuffer equal to the host's screen, and reports what happens to an observer.
public final class ViewerScreenSession {
    public struct Options: Sendable {
        /// UpdateRequests outstanding at once: 2 lets the host start the next capture
        /// while the previous update is still on the wire, without building a backlog.
        public var requestsInFlight: Int = 2
        public init(requestsInFlight: Int = 2) {
            precondition(requestsInFlight >= 1, "at least one request must be in flight")
            self.requestsInFlight = requestsInFlight
        }
    }

    public enum Event {
        /// The customer accepted the engineer (PROTOCOL.md §5.2.7); the screen follows.
        /// Until this event the customer is still being asked.
        case accessGranted(SessionAccess)
        /// The host announced its screen (at the start, and on a resolution change).
        case screen(ScreenInit)
        /// An update was applied; `framebuffer` now equals the host's screen at capture.
        case update(requestID: UInt32, wireBytes: Int, latency: Duration, framebuffer: Framebuffer)
        /// The host put text on the clipboard (as sent: print it through `PeerText.printable`).
        case clipboard(String)
    }

    public enum Decision { case `continue`, stop }

    public enum Outcome: Sendable, Hashable {
        /// The observer asked to stop; the viewer said Bye.
        case stopped
        /// The host or the relay said Bye.
        case bye(Bye)
        /// The relay closed the connection without a Bye.
        case closed
    }

    public let options: Options
    public private(set) var decoder = TileDecoder()
    /// What the customer allowed; nil while the customer is still being asked.
    public private(set) var access: SessionAccess?
    private var nextRequestID: UInt32 = 1
    /// Whether the session has asked for updates yet (it does after the first ScreenInit).
    private var requesting = false
    private var sentAt: [UInt32: ContinuousClock.Instant] = [:]
    private var pendingWireBytes = 0
    private let clock = ContinuousClock()

    public init(options: Options = Options()) {
        self.options = options
    }

    /// The screen as reconstructed so far; nil before the first ScreenInit.
    public var framebuffer: Framebuffer? { self.decoder.framebuffer }

    /// Runs the session on a paired connection until the host leaves, the relay ends it,
    /// or `observe` returns `.stop`.
    ///
    /// Throws a ``ScreenSessionError`` when the host breaks the protocol or the relay ends
    /// the session with an Error, and the transport's error when the connection fails.
    public func run(on connection: some FrameTransport, observe: (Event) async throws -> Decision) async throws -> Outcome {
        let sender = connection.sender
        while true {
            guard let frame = try await connection.receiveFrame() else { return .closed }
            let message: RelayMessage
            do {
                message = try RelayMessage(frame)
            } catch {
                return try await self.damaged(connection, "the host sent a malformed \(frame.type.name): \(error)")
            }
            // Nothing may be shared before the customer's decision (PROTOCOL.md §5.2.7).
            if self.access == nil, [.screenInit, .tileUpdate, .clipboard].contains(message.type) {
                try await self.protocolError(sender, "the host sent \(message.type.name) before AccessGranted, before the customer accepted")
            }
            switch message {
            case .accessGranted(let granted):
                guard self.access == nil else {
                    try await self.protocolError(sender, "the host sent AccessGranted twice")
                }
                let access = SessionAccess(granted)
                self.access = access
                if try await observe(.accessGranted(access)) == .stop { return try await self.stop(sender) }
            case .screenInit(let screen):
                self.pendingWireBytes = 0
                self.decoder.resize(width: Int(screen.width), height: Int(screen.height))
                if try await observe(.screen(screen)) == .stop { return try await self.stop(sender) }
                if !self.requesting {
                    // A full refresh first, then incremental requests up to the window.
                    self.requesting = true
                    try await self.request(sender, count: self.options.requestsInFlight, fullRefresh: true)
                }
            case .tileUpdate(let update):
                guard self.decoder.framebuffer != nil else {
                    try await self.protocolError(sender, "the host sent a screen update before ScreenInit")
                }
                let requestID: UInt32
                do {
                    requestID = try self.decoder.apply(update.body)
                } catch {
                    return try await self.damaged(connection, "the host's screen update does not decode: \(error)")
                }
                self.pendingWireBytes += frame.bytes.readableBytes
                // A large update arrives in parts (PROTOCOL.md §7.6); it is complete, and
                // the framebuffer equals a host frame again, after the last one.
                guard !self.decoder.expectsContinuation else { continue }
                let wireBytes = self.pendingWireBytes
                self.pendingWireBytes = 0
                let latency = self.sentAt.removeValue(forKey: requestID).map { $0.duration(to: self.clock.now) } ?? .zero
                if try await observe(.update(requestID: requestID, wireBytes: wireBytes, latency: latency, framebuffer: self.decoder.framebuffer!)) == .stop {
                    return try await self.stop(sender)
                }
                try await self.request(sender, count: 1, fullRefresh: false)
            case .clipboard(let clipboard):
                if try await observe(.clipboard(clipboard.text)) == .stop { return try await self.stop(sender) }
            case .ping, .pong:
                // The connection answers Pings and consumes its keepalive's Pongs; a stray
                // Pong is traffic and nothing more (PROTOCOL.md §5.1.9).
                continue
            case .bye(let bye):
                return .bye(bye)
            case .error(let error):
                throw ScreenSessionError(relayError: error)
            default:
                try await self.protocolError(sender, "the host sent \(message.type.name), which a viewer never receives")
            }
        }
    }

    private func request(_ sender: some FrameSender, count: Int, fullRefresh: Bool) async throws {
        var frames: [Frame] = []
        for index in 0..<count {
            let id = self.nextRequestID
            self.nextRequestID &+= 1
            self.sentAt[id] = self.clock.now
            frames.append(try Frame(.updateRequest(UpdateRequest(requestID: id, flags: fullRefresh && index == 0 ? .fullRefresh : []))))
        }
        do {
            try await sender.send(frames: frames)
        } catch {
            // The connection is closed or failed, most likely right after a Bye the
            // session has not read yet: the next receive returns it (or reports the end),
            // so the session ends the way the relay said, not with this write's error.
        }
    }

    private func stop(_ sender: some FrameSender) async throws -> Outcome {
        try await sender.send(.bye(Bye(reason: .normal, text: "the engineer closed the viewer")))
        return .stopped
    }

    /// A peer message that does not decode may be one the relay completed with zero bytes
    /// because the host left mid-frame (PROTOCOL.md §2.3): then the relay's Bye follows it
    /// at once, and that is why the session ended. Anything else is the host's error.
    private func damaged(_ connection: some FrameTransport, _ text: String) async throws -> Outcome {
        if let bye = try await PeerReading.readOnAfterDamage(connection) { return .bye(bye) }
        try await self.protocolError(connection.sender, text)
    }

    private func protocolError(_ sender: some FrameSender, _ text: String) async throws -> Never {
        try? await sender.send(.bye(Bye(reason: .protocolError, text: text)))
        throw ScreenSessionError(.protocolViolation, text)
    }
}
