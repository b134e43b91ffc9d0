import NIOCore
public import RelayClient
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
    public func run(on connection: RelayConnection, observe: (Event) async throws -> Decision) async throws -> Outcome {
        while true {
            let frame: Frame
            do {
                guard let received = try await connection.receiveFrame() else { return .closed }
                frame = received
            }
            let message: RelayMessage
            do {
                message = try RelayMessage(frame)
            } catch {
                return try await self.damaged(connection, "the host sent a malformed \(frame.type.name): \(error)")
            }
            // Nothing may be shared before the customer's decision (PROTOCOL.md §5.2.7).
            if self.access == nil, [.screenInit, .tileUpdate, .clipboard].contains(message.type) {
                try await self.protocolError(connection, "the host sent \(message.type.name) before AccessGranted, before the customer accepted")
            }
            switch message {
            case .accessGranted(let granted):
                guard self.access == nil else {
                    try await self.protocolError(connection, "the host sent AccessGranted twice")
                }
                let access = SessionAccess(granted)
                self.access = access
                if try await observe(.accessGranted(access)) == .stop { return try await self.stop(connection) }
            case .screenInit(let screen):
                self.pendingWireBytes = 0
                self.decoder.resize(width: Int(screen.width), height: Int(screen.height))
                let first = self.sentAt.isEmpty
                if try await observe(.screen(screen)) == .stop { return try await self.stop(connection) }
                if first {
                    // A full refresh first, then incremental requests up to the window.
                    try await self.request(connection, count: self.options.requestsInFlight, fullRefresh: true)
                }
            case .tileUpdate(let update):
                guard self.decoder.framebuffer != nil else {
                    try await self.protocolError(connection, "the host sent a screen update before ScreenInit")
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
                    return try await self.stop(connection)
                }
                try await self.request(connection, count: 1, fullRefresh: false)
            case .clipboard(let clipboard):
                if try await observe(.clipboard(clipboard.text)) == .stop { return try await self.stop(connection) }
            case .ping, .pong:
                // The connection answers Pings and consumes its keepalive's Pongs; a stray
                // Pong is traffic and nothing more (PROTOCOL.md §5.1.9).
                continue
            case .bye(let bye):
                return .bye(bye)
            default:
                try await self.protocolError(connection, "the host sent \(message.type.name), which a viewer never receives")
            }
        }
    }

    /// Asks for a full refresh (for instance after the user saw a glitch).
    public func requestFullRefresh(_ connection: RelayConnection) async throws {
        try await self.request(connection, count: 1, fullRefresh: true)
    }

    private func request(_ connection: RelayConnection, count: Int, fullRefresh: Bool) async throws {
        var frames: [Frame] = []
        for index in 0..<count {
            let id = self.nextRequestID
            self.nextRequestID &+= 1
            self.sentAt[id] = self.clock.now
            frames.append(try Frame(.updateRequest(UpdateRequest(requestID: id, flags: fullRefresh && index == 0 ? .fullRefresh : []))))
        }
        do {
            try await connection.send(frames: frames)
        } catch let error as RelayClientError where error.kind == .closed {
            // The relay closed the connection, most likely right after a Bye the session
            // has not read yet: the next receive returns it (or reports the end), so the
            // session ends the way the relay said, not with this write's error.
        }
    }

    private func stop(_ connection: RelayConnection) async throws -> Outcome {
        try await connection.send(.bye(Bye(reason: .normal, text: "the engineer closed the viewer")))
        return .stopped
    }

    /// A peer message that does not decode may be one the relay completed with zero bytes
    /// because the host left mid-frame (PROTOCOL.md §2.3): then the relay's Bye follows it
    /// at once, and that is why the session ended. Anything else is the host's error.
    private func damaged(_ connection: RelayConnection, _ text: String) async throws -> Outcome {
        if let next = try? await connection.receiveFrame(), let message = try? RelayMessage(next), case .bye(let bye) = message {
            return .bye(bye)
        }
        try await self.protocolError(connection, text)
    }

    private func protocolError(_ connection: RelayConnection, _ text: String) async throws -> Never {
        try? await connection.send(.bye(Bye(reason: .protocolError, text: text)))
        throw RelayClientError(.protocolViolation, text)
    }
}
