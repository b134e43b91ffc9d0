// The connections of `relay-bench soak`: one TLS client per connection, built from NIO
// parts rather than RelayClient, because the soak has to do what a well-behaved agent
// never does — stop halfway through a frame, reset the socket, give up in the middle of
// the TLS handshake — and see each byte it sends. The client certificate of a key login is
// RelayClient's own (ClientCertificate), so that it is what relay-agent presents.
//
// Pipeline of every connection (socket side first):
//
//     SoakTap → NIOSSLClientHandler → ByteToMessageHandler(FrameDecoder) → NIOAsyncChannel<Frame, ByteBuffer>
//
// Outbound, the script writes raw bytes (whole or partial frames), which TLS encrypts.
// SoakTap sits between TLS and the socket: it can cut the TLS handshake short and close or
// reset the socket without a TLS close_notify, as a crashed or hostile client would.

import Crypto
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import RelayClient
import RelayWire

#if canImport(Glibc)
import Glibc
#endif

/// The ways the soak opens and closes a connection (`--mix`). Connections that stand for
/// an engineer's or an enrolled host's agent present its key as the TLS client certificate
/// (PROTOCOL.md §1.2), as relay-agent does; an attended host (support code), an aborted
/// handshake and a claim present none.
enum SoakMode: String, CaseIterable, Sendable {
    /// Hello, a key login, Bye: an enrolled host (HostRegistered) and an engineer asking
    /// for a support code (CodeIssued), alternately.
    case clean
    /// Two connections: an engineer (key login) gets a code, an attended host redeems it,
    /// both are paired; the host sends one small TileUpdate and Bye (variant a), or the
    /// header of a 1 MiB TileUpdate, half of it, and closes the socket mid-frame (variant b).
    case pair
    /// An engineer's connection: Hello, HelloAck, then a TCP reset (SO_LINGER 0) with no
    /// TLS close_notify.
    case reset
    /// An engineer's connection: Hello, HelloAck, then the header of a big frame and half
    /// its bytes, then close: a 60 KiB control frame (ViewerAuth, variant a) or a 1 MiB peer
    /// frame (TileUpdate before authentication, variant b).
    case midframe
    /// Closed during the TLS handshake: after half the ClientHello (variant a), or as soon
    /// as the relay's ServerHello arrives (variant b).
    case handshake
    /// Before Hello, a header announcing a `--claim-bytes` Hello and all but `--claim-short`
    /// of its bytes; held until the whole burst is connected and the relay has read what it
    /// sent (the relay's peak), then closed.
    case claim
    /// Hello and a key login with a key the relay does not accept: an engineer login with
    /// a key that is no engineer's (the host's, variant a), or an enrolled host's login with
    /// a key that is not this host's (the engineer's, variant b).
    case authfail

    /// Connections one unit of this mode opens.
    var connections: Int { self == .pair ? 2 : 1 }
}

/// What one unit ended with, for the per-mode table.
enum SoakOutcome: Sendable {
    /// The relay answered as the mode expects.
    case expected(String)
    /// The relay answered otherwise (the text says how); counted, not fatal.
    case unexpected(String)
}

/// Settings every connection of a run shares.
struct SoakTarget: Sendable {
    var port: Int
    /// Local addresses to connect from (127.0.0.0/8), round robin, so that per-source
    /// limits and throttling see many sources, as on a real relay.
    var sources: [String]
    /// Client contexts that present no certificate, for connections that log in with no
    /// key (an attended host) or never log in.
    var anonymous: SoakClientTLS
    var group: any EventLoopGroup
    /// A connection that has not finished by then is closed (its unit counts as unexpected).
    var deadline: TimeAmount
    var claimBytes: Int
    var claimShort: Int
}

// MARK: - The tap between TLS and the socket

/// Cuts the TLS handshake short and closes the socket without TLS, on request.
final class SoakTap: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum Plan { case none, truncateClientHello, closeOnServerHello }

    private var plan: Plan
    private var context: ChannelHandlerContext?

    init(plan: Plan) { self.plan = plan }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard self.plan == .truncateClientHello else { return context.write(data, promise: promise) }
        self.plan = .none
        var bytes = self.unwrapOutboundIn(data)
        let half = bytes.readSlice(length: bytes.readableBytes / 2)!
        context.writeAndFlush(self.wrapOutboundOut(half), promise: promise)
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard self.plan == .closeOnServerHello else { return context.fireChannelRead(data) }
        self.plan = .none
        context.close(promise: nil)
    }

    /// Closes the socket under TLS: with a reset (SO_LINGER 0) or a plain FIN.
    func closeRaw(reset: Bool) {
        guard let context = self.context else { return }
        guard reset, let provider = context.channel as? any SocketOptionProvider else { return context.close(promise: nil) }
        // SO_LINGER with a zero timeout: close() sends RST and drops unsent data.
        let tap = NIOLoopBound(self, eventLoop: context.eventLoop)
        provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).whenComplete { _ in
            tap.value.context?.close(promise: nil)
        }
    }
}

// MARK: - One connection

/// A connection as its script sees it: send raw bytes, receive whole frames.
struct SoakConnection {
    var inbound: NIOAsyncChannelInboundStream<Frame>.AsyncIterator
    let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    let channel: any Channel
    let tap: NIOLoopBound<SoakTap>

    mutating func send(_ bytes: ByteBuffer) async throws {
        try await self.outbound.write(bytes)
    }

    mutating func send(_ message: RelayMessage) async throws {
        try await self.outbound.write(try Frame(message).bytes)
    }

    /// The next frame; nil when the relay closed the connection (or it failed).
    mutating func receive() async -> Frame? {
        do { return try await self.inbound.next() } catch { return nil }
    }

    /// The next relay message, skipping Pings; nil at the end of the connection.
    mutating func receiveMessage() async -> RelayMessage? {
        while let frame = await self.receive() {
            guard let message = try? RelayMessage(frame) else { continue }
            if case .ping = message { continue }
            return message
        }
        return nil
    }

    /// The next frame that is not a Ping; nil at the end of the connection. Waiting for a
    /// frame type rather than a decoded message lets the soak drive a relay built from
    /// another commit, whose layout of a message may differ from this build's (Paired
    /// gained a field after 3edb819, the "before" build of RESULTS.md).
    mutating func receiveNonPing() async -> Frame? {
        while let frame = await self.receive() {
            if frame.type == .ping { continue }
            return frame
        }
        return nil
    }

    /// Reads until the relay closes the connection.
    mutating func drain() async {
        while await self.receive() != nil {}
    }

    /// True when the connection is closed, or the relay closes it within `time` (its
    /// answer may still be on its way when the script looks).
    func closesWithin(_ time: TimeAmount) async -> Bool {
        let channel = self.channel
        guard channel.isActive else { return true }
        let loop = channel.eventLoop
        let promise = loop.makePromise(of: Bool.self)
        loop.execute {
            let done = NIOLoopBoundBox(false, eventLoop: loop)
            @Sendable func finish(_ closed: Bool) {
                guard !done.value else { return }
                done.value = true
                promise.succeed(closed)
            }
            let timer = loop.scheduleTask(in: time) { finish(false) }
            channel.closeFuture.whenComplete { _ in
                timer.cancel()
                finish(true)
            }
        }
        return (try? await promise.futureResult.get()) ?? true
    }

    /// Closes the socket under TLS (no close_notify), with a reset or a FIN.
    func closeRaw(reset: Bool) async {
        let tap = self.tap
        try? await self.channel.eventLoop.submit { tap.value.closeRaw(reset: reset) }.get()
        try? await self.channel.closeFuture.get()
    }
}

/// Opens a connection from `source`, runs `body`, and closes it (TLS close if still open).
/// `presenting` gives the contexts of the key the connection presents (none: anonymous).
func withSoakConnection<Result: Sendable>(
    _ target: SoakTarget, source: String, tls12: Bool, presenting key: SoakClientTLS? = nil, plan: SoakTap.Plan = .none,
    _ body: (inout SoakConnection) async throws -> Result
) async throws -> Result {
    let context = (key ?? target.anonymous).context(tls12: tls12)
    let channel = try await ClientBootstrap(group: target.group)
        .channelOption(.socketOption(.tcp_nodelay), value: 1)
        .connectTimeout(.seconds(10))
        .bind(to: try SocketAddress(ipAddress: source, port: 0))
        .connect(host: "127.0.0.1", port: target.port) { channel in
            channel.eventLoop.makeCompletedFuture {
                let tap = SoakTap(plan: plan)
                try channel.pipeline.syncOperations.addHandler(tap)
                try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: nil))
                try channel.pipeline.syncOperations.addHandler(
                    ByteToMessageHandler(frameDecoderWithMaximumPayloadLength: Frame.maximumEncodablePayloadLength)
                )
                let async = try NIOAsyncChannel<Frame, ByteBuffer>(wrappingChannelSynchronously: channel)
                return (async, NIOLoopBound(tap, eventLoop: channel.eventLoop))
            }
        }
    let (asyncChannel, tap) = channel
    // Whatever the script waits for, the connection ends by the deadline.
    let raw = asyncChannel.channel
    let deadline = raw.eventLoop.scheduleTask(in: target.deadline) { raw.close(promise: nil) }
    defer { deadline.cancel() }
    // executeThenClose ignores a close that fails because the script closed the socket itself.
    return try await asyncChannel.executeThenClose { inbound, outbound in
        var connection = SoakConnection(inbound: inbound.makeAsyncIterator(), outbound: outbound, channel: raw, tap: tap)
        return try await body(&connection)
    }
}

// MARK: - Frames by hand

/// A frame header announcing `length` payload bytes of `type`, and `sent` bytes of payload.
func partialFrame(_ type: MessageType, announcing length: Int, sending sent: Int) -> ByteBuffer {
    var buffer = ByteBuffer()
    buffer.reserveCapacity(Frame.headerLength + sent)
    buffer.writeInteger(UInt32(type.rawValue) << 24 | UInt32(length))
    buffer.writeRepeatingByte(0x41, count: sent)
    return buffer
}

// MARK: - Units

/// Credentials a unit may use, chosen by its slot in the burst so that no two units of
/// one burst share a host or an engineer (a second connection of one host replaces the
/// first; codes are per engineer). The private keys exist only in this process.
struct SoakCredentials: Sendable {
    var hostID: String
    /// The enrolled host's key, presented for its key login.
    var host: SoakClientTLS
    /// The engineer's key, presented for their key login.
    var engineer: SoakClientTLS
}

/// The soak's client TLS contexts, TLS 1.3 (what the agents negotiate) and TLS 1.2 (a relay
/// that accepts TLS 1.2 keeps state per TLS 1.2 session, BoringSSL's server session cache),
/// presenting one key as the client certificate or none. One context per key and version,
/// made once: a context per connection would add its own cost to every connection.
struct SoakClientTLS: Sendable {
    let tls13: NIOSSLContext
    let tls12: NIOSSLContext

    /// Contexts that present `key` the way relay-agent does (``ClientCertificate``), or no
    /// certificate when `key` is nil. The relay's certificate is not checked: it is the
    /// bench's own, made for this run.
    init(presenting key: Curve25519.Signing.PrivateKey?) throws {
        var tls13 = TLSConfiguration.makeClientConfiguration()
        tls13.certificateVerification = .none
        tls13.applicationProtocols = [RelayProtocol.alpnToken]
        tls13.minimumTLSVersion = .tlsv13
        if let key {
            let (certificate, privateKey) = try ClientCertificate.material(for: key)
            tls13.certificateChain = [.certificate(certificate)]
            tls13.privateKey = .privateKey(privateKey)
        }
        var tls12 = tls13
        tls12.minimumTLSVersion = .tlsv12
        tls12.maximumTLSVersion = .tlsv12
        self.tls13 = try NIOSSLContext(configuration: tls13)
        self.tls12 = try NIOSSLContext(configuration: tls12)
    }

    func context(tls12: Bool) -> NIOSSLContext { tls12 ? self.tls12 : self.tls13 }
}

/// Runs one unit of `mode`. `arrived` is called once when the unit has reached the point
/// it holds at (claims) or has finished; the unit then waits for `release` before closing.
func runSoakUnit(
    _ mode: SoakMode, variant: Int, tls12: Bool, target: SoakTarget, source: String, credentials: SoakCredentials,
    arrived: @escaping @Sendable () -> Void, release: Signal
) async -> SoakOutcome {
    var didArrive = false
    let arriveOnce = {
        if !didArrive {
            didArrive = true
            arrived()
        }
    }
    defer { arriveOnce() }
    do {
        switch mode {
        case .clean:
            let key = variant == 0 ? credentials.host : credentials.engineer
            return try await withSoakConnection(target, source: source, tls12: tls12, presenting: key) { connection in
                if variant == 0 {
                    try await connection.send(.hello(Hello(role: .host, capabilities: .all, software: "relay-bench soak")))
                    guard case .helloAck = await connection.receiveMessage() else { return .unexpected("no HelloAck") }
                    try await connection.send(.hostAuth(.key(hostID: credentials.hostID)))
                    let answer = await connection.receiveMessage()
                    try await connection.send(.bye(Bye(reason: .normal, text: "soak")))
                    await connection.drain()
                    guard case .hostRegistered = answer else { return .unexpected("host: \(describe(answer))") }
                    return .expected("HostRegistered, Bye")
                } else {
                    try await connection.send(.hello(Hello(role: .viewer, capabilities: .all, software: "relay-bench soak")))
                    guard case .helloAck = await connection.receiveMessage() else { return .unexpected("no HelloAck") }
                    try await connection.send(.viewerAuth(.key(.newSupportCode)))
                    let answer = await connection.receiveMessage()
                    try await connection.send(.bye(Bye(reason: .normal, text: "soak")))
                    await connection.drain()
                    guard case .codeIssued = answer else { return .unexpected("viewer: \(describe(answer))") }
                    return .expected("CodeIssued, Bye")
                }
            }

        case .pair:
            return try await runPair(variant: variant, tls12: tls12, target: target, source: source, credentials: credentials)

        case .reset:
            return try await withSoakConnection(target, source: source, tls12: tls12, presenting: credentials.engineer) { connection in
                try await connection.send(.hello(Hello(role: .viewer, capabilities: .all, software: "relay-bench soak")))
                let answer = await connection.receiveMessage()
                await connection.closeRaw(reset: true)
                guard case .helloAck = answer else { return .unexpected("no HelloAck: \(describe(answer))") }
                return .expected("HelloAck, reset")
            }

        case .midframe:
            return try await withSoakConnection(target, source: source, tls12: tls12, presenting: credentials.engineer) { connection in
                try await connection.send(.hello(Hello(role: .viewer, capabilities: .all, software: "relay-bench soak")))
                let answer = await connection.receiveMessage()
                guard case .helloAck = answer else { return .unexpected("no HelloAck: \(describe(answer))") }
                let frame =
                    variant == 0
                    ? partialFrame(.viewerAuth, announcing: 60 * 1024, sending: 30 * 1024)
                    : partialFrame(.tileUpdate, announcing: 1 << 20, sending: 1 << 19)
                try? await connection.send(frame)
                await connection.closeRaw(reset: false)
                return .expected(variant == 0 ? "half a 60 KiB ViewerAuth, close" : "half a 1 MiB TileUpdate, close")
            }

        case .handshake:
            return try await withSoakConnection(
                target, source: source, tls12: tls12, plan: variant == 0 ? .truncateClientHello : .closeOnServerHello
            ) { connection in
                await connection.drain()
                return .expected(variant == 0 ? "half a ClientHello" : "closed at ServerHello")
            }

        case .claim:
            let announced = target.claimBytes
            let sent = max(0, announced - target.claimShort)
            return try await withSoakConnection(target, source: source, tls12: tls12) { connection in
                do {
                    try await connection.send(partialFrame(.hello, announcing: announced, sending: sent))
                } catch {
                    return .expected("refused while sending: \(error)")
                }
                // Is the relay holding it? An answer or a close within a moment means no.
                let open = connection.channel.isActive
                arriveOnce()
                await release.wait()
                var closedByRelay = !open
                if !closedByRelay { closedByRelay = await connection.closesWithin(.milliseconds(250)) }
                if closedByRelay {
                    let answer = await connection.receiveMessage()
                    return .expected("closed by the relay (\(describe(answer)))")
                }
                await connection.closeRaw(reset: false)
                return .expected("held open by the relay until the burst's peak")
            }

        case .authfail:
            // Each side presents the other's key: a real key, proved in TLS, that is not theirs.
            let wrongKey = variant == 0 ? credentials.host : credentials.engineer
            return try await withSoakConnection(target, source: source, tls12: tls12, presenting: wrongKey) { connection in
                let role: Role = variant == 0 ? .viewer : .host
                try await connection.send(.hello(Hello(role: role, capabilities: .all, software: "relay-bench soak")))
                guard case .helloAck = await connection.receiveMessage() else { return .unexpected("no HelloAck") }
                if variant == 0 {
                    try await connection.send(.viewerAuth(.key(.newSupportCode)))
                } else {
                    try await connection.send(.hostAuth(.key(hostID: credentials.hostID)))
                }
                let answer = await connection.receiveMessage()
                await connection.drain()
                if case .error(let error) = answer {
                    return error.code == .authenticationFailed ? .expected("Error authentication_failed") : .unexpected("Error \(error.code)")
                }
                return .unexpected(describe(answer))
            }
        }
    } catch {
        return .unexpected("\(error)")
    }
}

/// The pair unit: viewer gets a code, host redeems it, both paired, then the host leaves.
private func runPair(variant: Int, tls12: Bool, target: SoakTarget, source: String, credentials: SoakCredentials) async throws -> SoakOutcome {
    let code = NIOLockedValueBox<SupportCode?>(nil)
    let issued = Signal()
    return try await withThrowingTaskGroup(of: SoakOutcome.self) { group in
        group.addTask {
            defer { issued.fire() }
            return try await withSoakConnection(target, source: source, tls12: tls12, presenting: credentials.engineer) { connection in
                try await connection.send(.hello(Hello(role: .viewer, capabilities: .all, software: "relay-bench soak")))
                guard case .helloAck = await connection.receiveMessage() else { return .unexpected("viewer: no HelloAck") }
                try await connection.send(.viewerAuth(.key(.newSupportCode)))
                let answer = await connection.receiveMessage()
                guard case .codeIssued(let codeIssued) = answer else { return .unexpected("viewer: \(describe(answer))") }
                code.withLockedValue { $0 = codeIssued.code }
                issued.fire()
                let paired = await connection.receiveNonPing()
                guard paired?.type == .paired else { return .unexpected("viewer: not paired: \(describe(paired))") }
                // Whatever the host sends, then the relay's Bye; a frame cut off mid-way may
                // leave bytes the decoder rejects, which also ends the connection.
                await connection.drain()
                return .expected("viewer paired")
            }
        }
        group.addTask {
            await issued.wait()
            guard let code = code.withLockedValue({ $0 }) else { return .unexpected("host: no code to redeem") }
            return try await withSoakConnection(target, source: source, tls12: tls12) { connection in
                try await connection.send(.hello(Hello(role: .host, capabilities: .all, software: "relay-bench soak")))
                guard case .helloAck = await connection.receiveMessage() else { return .unexpected("host: no HelloAck") }
                try await connection.send(.hostAuth(.supportCode(code)))
                let answer = await connection.receiveNonPing()
                guard answer?.type == .paired else { return .unexpected("host: \(describe(answer))") }
                if variant == 0 {
                    var body = ByteBuffer()
                    body.writeRepeatingByte(0x5A, count: 4096)
                    try await connection.send(.tileUpdate(TileUpdate(body: body)))
                    try await connection.send(.bye(Bye(reason: .normal, text: "soak")))
                    await connection.drain()
                    return .expected("paired, TileUpdate, Bye")
                } else {
                    try? await connection.send(partialFrame(.tileUpdate, announcing: 1 << 20, sending: 1 << 19))
                    await connection.closeRaw(reset: false)
                    return .expected("paired, half a 1 MiB TileUpdate, close")
                }
            }
        }
        var outcomes: [SoakOutcome] = []
        for try await outcome in group { outcomes.append(outcome) }
        if let bad = outcomes.first(where: { if case .unexpected = $0 { true } else { false } }) { return bad }
        return .expected(variant == 0 ? "paired, TileUpdate, Bye" : "paired, closed mid-frame")
    }
}

/// A frame in words: its message, or its type when this build cannot decode it.
func describe(_ frame: Frame?) -> String {
    guard let frame else { return describe(nil as RelayMessage?) }
    guard let message = try? RelayMessage(frame) else { return "\(frame.type.name) (not decodable by this build)" }
    return describe(message)
}

func describe(_ message: RelayMessage?) -> String {
    switch message {
    case nil: "closed without an answer"
    case .error(let error)?: "Error \(error.code): \(error.message)"
    case .bye(let bye)?: "Bye \(bye.reason): \(bye.text)"
    case let message?: "\(message.type.name)"
    }
}
