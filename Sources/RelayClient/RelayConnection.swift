public import Crypto
public import NIOCore
public import NIOPosix
import NIOSSL
public import RelayWire

/// Where a relay listens.
public struct RelayAddress: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `HOST:PORT`, `[IPv6]:PORT`, `HOST` or `[IPv6]` (port 7443), by the rules of
    /// ``HostPort`` (the relay's `--listen` follows the same). The host is required, and
    /// the port must be one a relay can listen on (1–65535).
    public init(parsing text: String) throws(RelayClientError) {
        let example = "write e.g. relay.example.com:7443 or [2001:db8::1]:7443"
        let parsed: HostPort
        do {
            parsed = try HostPort(parsing: text)
        } catch {
            throw RelayClientError(.configuration, "\(error.message); \(example)")
        }
        guard !parsed.host.isEmpty else {
            throw RelayClientError(.configuration, "\"\(text)\" names no host; \(example)")
        }
        guard parsed.port != 0 else {
            throw RelayClientError(.configuration, "\"\(text)\" has port 0, which no relay listens on; \(example)")
        }
        self.host = parsed.host
        self.port = parsed.port ?? RelayProtocol.defaultPort
    }

    public var description: String { HostPort(host: self.host, port: self.port).description }
}

/// The sending half of a ``RelayConnection``; Sendable, so a task can send while another receives.
public struct RelaySender: Sendable {
    let outbound: NIOAsyncChannelOutboundWriter<Frame>
    let window: SendWindow
    let channel: any Channel

    public func send(_ message: RelayMessage) async throws {
        try await self.send(frames: [try Frame(message)])
    }

    /// Sends frames with one flush; waits while more than the send window is unwritten.
    /// Throws a ``RelayClientError/Kind/closed`` error when the connection is closed or
    /// failed.
    public func send(frames: [Frame]) async throws {
        do {
            try await self.write(frames: frames)
        } catch let error as RelayClientError {
            throw error
        } catch {
            throw RelayClientError(.closed, "the connection to the relay is closed (\(error))")
        }
    }

    /// Sends `message` only if the send window has room now, without waiting; false when
    /// it was full. For the keepalive: a connection that is busy sending needs no Ping, and
    /// a keepalive must never wait behind a peer that does not read.
    func sendIfRoom(_ message: RelayMessage) async throws -> Bool {
        let frame = try Frame(message)
        let bytes = frame.bytes.readableBytes
        guard self.window.reserveIfRoom(bytes) else { return false }
        do {
            try await self.outbound.write(frame)
        } catch {
            self.window.release(bytes)
            throw error
        }
        return true
    }

    /// ``send(frames:)`` with the transport's own error (``RelayConnection`` explains it).
    func write(frames: [Frame]) async throws {
        let bytes = frames.reduce(0) { $0 + $1.bytes.readableBytes }
        await self.window.reserve(bytes)
        do {
            try await self.outbound.write(contentsOf: frames)
        } catch {
            self.window.release(bytes)  // never reached the channel
            throw error
        }
    }

    /// Closes the connection now, without a Bye (send one first to end politely). The
    /// connection's reader then sees the connection end.
    public func close() {
        self.channel.close(mode: .all, promise: nil)
    }
}

/// One TLS connection to a relay, carrying RelayWire frames (PROTOCOL.md §1–2).
///
/// Use it inside ``RelayConnection/withConnection(to:trust:group:maximumPayloadLength:_:)``,
/// which closes it when the body returns.
///
/// The connection keeps itself alive (``Keepalive``): once HelloAck has arrived it sends a
/// Ping every 30 s in every phase, consumes the Pongs that answer them, and answers the
/// relay's Pings, all inside ``receive()``; so a caller never sees keepalive traffic.
public final class RelayConnection {
    private var inbound: NIOAsyncChannelInboundStream<Frame>.AsyncIterator
    private let outbound: NIOAsyncChannelOutboundWriter<Frame>
    private let window: SendWindow
    private let channel: any Channel
    private let observation: TrustObservation
    private let trust: RelayTrust
    let keepalive: KeepaliveState
    public let address: RelayAddress
    /// The fingerprint of the key this connection presented as its client certificate.
    let clientKeyFingerprint: String?
    /// The relay's largest accepted payload, from HelloAck (until then the protocol default).
    public internal(set) var maximumPayloadLength = Frame.defaultMaximumPayloadLength

    init(
        inbound: NIOAsyncChannelInboundStream<Frame>, outbound: NIOAsyncChannelOutboundWriter<Frame>, window: SendWindow, channel: any Channel,
        observation: TrustObservation, keepalive: KeepaliveState, trust: RelayTrust, address: RelayAddress, clientKeyFingerprint: String? = nil
    ) {
        self.clientKeyFingerprint = clientKeyFingerprint
        self.inbound = inbound.makeAsyncIterator()
        self.outbound = outbound
        self.window = window
        self.channel = channel
        self.observation = observation
        self.keepalive = keepalive
        self.trust = trust
        self.address = address
    }

    /// Connects, runs `body`, and closes the connection. `keepalive` says how often the
    /// connection Pings the relay while `body` runs (PROTOCOL.md §8.4). `clientKey`, when
    /// given, is presented to the relay as the TLS client certificate (``ClientCertificate``):
    /// the proof of a key login (``HostAuth/key(hostID:)``, ``ViewerAuth/key(_:)``).
    public static func withConnection<Result: Sendable>(
        to address: RelayAddress,
        trust: RelayTrust,
        clientKey: Curve25519.Signing.PrivateKey? = nil,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        maximumPayloadLength: Int = Frame.maximumEncodablePayloadLength,
        sendWindowBytes: Int = 1 << 20,
        keepalive: Keepalive = .standard,
        _ body: (RelayConnection) async throws -> Result
    ) async throws -> Result {
        var configuration = try trust.clientConfiguration()
        if let clientKey {
            let (certificate, key) = try ClientCertificate.material(for: clientKey)
            configuration.certificateChain = [.certificate(certificate)]
            configuration.privateKey = .privateKey(key)
        }
        let context: NIOSSLContext
        do {
            context = try NIOSSLContext(configuration: configuration)
        } catch {
            throw RelayClientError(.configuration, "cannot set up TLS: \(error)")
        }
        let observation = TrustObservation()
        let keepaliveState = KeepaliveState(keepalive)
        let window = SendWindow(limit: sendWindowBytes)
        // SNI and hostname checks take a DNS name; an IP literal gets neither.
        let serverHostname = address.host.contains(":") || address.host.allSatisfy({ $0.isNumber || $0 == "." }) ? nil : address.host
        let channel: NIOAsyncChannel<Frame, Frame>
        do {
            channel = try await ClientBootstrap(group: group)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .connectTimeout(.seconds(10))
                .connect(host: address.host, port: address.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let tls: NIOSSLClientHandler
                        if let callback = trust.verificationCallback(observing: observation) {
                            tls = try NIOSSLClientHandler(context: context, serverHostname: serverHostname, customVerificationCallback: callback)
                        } else {
                            tls = try NIOSSLClientHandler(context: context, serverHostname: serverHostname)
                        }
                        try channel.pipeline.syncOperations.addHandler(tls)
                        try channel.pipeline.syncOperations.addHandler(HandshakeObserver(observation: observation))
                        try channel.pipeline.syncOperations.addHandler(ArrivalObserver(state: keepaliveState))
                        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(frameDecoderWithMaximumPayloadLength: maximumPayloadLength))
                        try channel.pipeline.syncOperations.addHandler(FrameEncoder())
                        try channel.pipeline.syncOperations.addHandler(SendWindowHandler(window: window))
                        return try NIOAsyncChannel<Frame, Frame>(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            throw RelayClientError(
                .connect, "cannot connect to the relay at \(address): \(error); check the address and that relay-server is running and reachable")
        }
        let underlying = channel.channel
        return try await channel.executeThenClose { inbound, outbound in
            let connection = RelayConnection(
                inbound: inbound, outbound: outbound, window: window, channel: underlying, observation: observation, keepalive: keepaliveState,
                trust: trust, address: address, clientKeyFingerprint: clientKey.map { KeyFingerprint.of($0.publicKey) }
            )
            // The keepalive is a child task for exactly as long as `body` runs.
            return try await withThrowingTaskGroup(of: Void.self, returning: Result.self) { tasks in
                let sender = connection.sender
                tasks.addTask { await keepaliveState.run(sender: sender) }
                defer { tasks.cancelAll() }
                return try await body(connection)
            }
        }
    }

    /// A Sendable handle for sending from another task.
    public var sender: RelaySender { RelaySender(outbound: self.outbound, window: self.window, channel: self.channel) }

    /// Sends one message.
    public func send(_ message: RelayMessage) async throws {
        try await self.send(frame: try Frame(message))
    }

    /// Sends one frame (peer messages pass through the relay untouched).
    public func send(frame: Frame) async throws {
        try await self.send(frames: [frame])
    }

    /// Sends several frames with one flush, waiting while the send window is full.
    public func send(frames: [Frame]) async throws {
        do {
            try await self.sender.write(frames: frames)
        } catch {
            throw self.translate(error)
        }
    }

    /// The next frame, or nil when the relay closed the connection.
    ///
    /// Keepalive traffic stays inside: a Ping from the relay is answered here, and a Pong
    /// answering the connection's own keepalive Ping is consumed (PROTOCOL.md §8.4).
    public func receiveFrame() async throws -> Frame? {
        while true {
            let frame: Frame?
            do {
                frame = try await self.inbound.next()
            } catch {
                throw self.deadConnectionError() ?? self.translate(error)
            }
            guard let frame else {
                if !self.observation.handshakeCompleted {
                    throw self.trustFailure(detail: "the relay closed the connection during the TLS handshake")
                }
                if let dead = self.deadConnectionError() { throw dead }
                return nil
            }
            switch frame.type {
            case .ping:
                guard case .ping(let ping) = try? RelayMessage(frame) else { return frame }
                try await self.send(.pong(Pong(nonce: ping.nonce)))
            case .pong:
                guard case .pong(let pong) = try? RelayMessage(frame), self.keepalive.consumePong(nonce: pong.nonce) else { return frame }
            default:
                return frame
            }
        }
    }

    /// The error for a connection the keepalive found dead, if it did.
    private func deadConnectionError() -> RelayClientError? {
        guard let silence = self.keepalive.deadAfter else { return nil }
        let interval = self.keepalive.keepalive.interval.map { " although the agent pinged it every \($0.seconds.compactText) s" } ?? ""
        return RelayClientError(
            .closed,
            "nothing arrived from the relay at \(self.address) for \(silence.seconds.compactText) s\(interval): the connection is dead (a network outage, or a firewall or NAT dropped it); connect again"
        )
    }

    /// The next message, decoded; nil when the relay closed the connection.
    public func receive() async throws -> RelayMessage? {
        guard let frame = try await self.receiveFrame() else { return nil }
        do {
            return try RelayMessage(frame)
        } catch {
            throw RelayClientError(.protocolViolation, "the relay sent a malformed \(frame.type.name): \(error)")
        }
    }

    /// Turns transport errors into messages that say what to do.
    func translate(_ error: any Error) -> any Error {
        if error is RelayClientError { return error }
        // TLS itself failed the handshake (an untrusted certificate, an alert): a trust
        // failure, even when the error that reached this task is the channel closing after it.
        if !self.observation.handshakeCompleted, let failure = self.observation.handshakeFailed {
            return self.trustFailure(detail: failure)
        }
        // The other end dropped the TCP connection: after the handshake (without TLS's
        // close_notify), or before it had shown a certificate. The relay, or a balancer in
        // front of it, went away or restarted: that says nothing about trust, and an
        // enrolled host reconnects (a balancer sends it to a live relay node).
        if Self.isDroppedConnection(error), self.observation.handshakeCompleted || self.observation.presentedFingerprint == nil {
            return RelayClientError(.closed, "the connection to \(self.address) was dropped (\(error)): the relay went away or restarted")
        }
        // A failure before the handshake completed — however it surfaced: a TLS alert, a
        // failed write, a closed channel — means the relay was not trusted or not reached
        // over TLS.
        if !self.observation.handshakeCompleted {
            return self.trustFailure(detail: "\(error)")
        }
        if let ssl = error as? NIOSSLError {
            return RelayClientError(.tls, "TLS with \(self.address) failed: \(ssl)")
        }
        if let wire = error as? WireError {
            return RelayClientError(.protocolViolation, "the relay sent an invalid frame: \(wire)")
        }
        return RelayClientError(.closed, "the connection to \(self.address) failed: \(error)")
    }

    /// A connection the other end closed or reset, rather than one TLS refused.
    static func isDroppedConnection(_ error: any Error) -> Bool {
        if let ssl = error as? NIOSSLError, case .uncleanShutdown = ssl { return true }
        if let channel = error as? ChannelError {
            switch channel {
            case .eof, .ioOnClosedChannel, .alreadyClosed: return true
            default: return false
            }
        }
        if let io = error as? IOError { return [ECONNRESET, EPIPE].contains(io.errnoCode) }
        return false
    }

    func trustFailure(detail: String) -> RelayClientError {
        switch self.trust {
        case .fingerprint(let expected):
            if let presented = self.observation.presentedFingerprint, presented != RelayTrust.normalizedFingerprint(expected) {
                return RelayClientError(
                    .tls,
                    "the relay's certificate does not match the pinned fingerprint \(expected): the relay presented \(CertificateFingerprint.display(hex: presented)); check --fingerprint against what relay-server printed, and that you reach the right relay"
                )
            }
            return RelayClientError(.tls, "TLS handshake with \(self.address) failed (\(detail)); check that this is a SupportRelay relay port")
        case .certificateAuthorityFile, .certificateAuthorities:
            return RelayClientError(
                .tls,
                "TLS handshake with \(self.address) failed (\(detail)); check that --ca is the CA that issued the relay's certificate and that you connect by a DNS name the certificate lists"
            )
        }
    }

}

extension Duration {
    /// The duration in seconds, as a Double.
    var seconds: Double { Double(self.components.seconds) + Double(self.components.attoseconds) / 1e18 }
}

extension Double {
    /// At most one decimal, none for whole numbers: `30`, `0.5`.
    var compactText: String {
        self == self.rounded() ? String(Int(self)) : String((self * 10).rounded() / 10)
    }
}
