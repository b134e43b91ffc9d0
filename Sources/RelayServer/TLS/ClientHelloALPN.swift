import NIOCore
import RelayWire

/// The ALPN protocols a TLS ClientHello offers, read from the first TLS record before the
/// TLS library sees it (RFC 8446 §4.1.2 and §5.1, RFC 7301 §3.1). Pure: no I/O.
///
/// Why the relay reads them itself: an agent that offers no ALPN, or none the relay speaks,
/// must get the TLS alert `no_application_protocol` (RFC 7301 §3.2, PROTOCOL.md §1), not a
/// finished handshake that is then closed without a word. swift-nio-ssl 2.37.6 cannot send
/// that alert: its ALPN callback (`NIOSSL/SSLContext.swift`, `alpnCallback`) answers
/// `SSL_TLSEXT_ERR_NOACK` when nothing matches, the `SSL_CTX` it installs it on is
/// `fileprivate`, and BoringSSL calls no ALPN callback at all when the ClientHello has no
/// ALPN extension (`ssl_negotiate_alpn` in `ssl/extensions.cc`). The offer also picks the
/// TLS context before TLS starts (``route(for:)``): agents' connections are asked for a
/// client certificate, browsers' are not (a browser would show a certificate prompt).
///
/// The parse is deliberately narrow. Anything it does not fully understand (not a
/// handshake record, a ClientHello split over several records, a malformed length) is
/// ``Offer/unreadable``, and the TLS library decides as before; only a well-formed
/// ClientHello is judged.
enum ClientHelloALPN {
    enum Offer: Equatable {
        /// The first record has not fully arrived yet.
        case incomplete
        /// A ClientHello without the ALPN extension.
        case none
        /// The protocols offered, in the client's order.
        case protocols([String])
        /// Not a ClientHello this parser reads whole; let the TLS library decide.
        case unreadable
    }

    /// The TLS record header: type, legacy version, length.
    static let recordHeaderLength = 5
    /// The largest TLSPlaintext fragment (RFC 8446 §5.1).
    static let maximumRecordLength = 1 << 14
    static let handshakeRecordType: UInt8 = 22
    static let clientHelloType: UInt8 = 1
    static let alpnExtensionType: UInt16 = 16

    /// Reads the offer from the bytes received so far (the first is the record's first).
    static func offer(in bytes: ByteBuffer) -> Offer {
        var buffer = bytes
        guard let type = buffer.readInteger(as: UInt8.self), let major = buffer.readInteger(as: UInt8.self),
            buffer.readInteger(as: UInt8.self) != nil, let length = buffer.readInteger(as: UInt16.self)
        else { return bytes.readableBytes >= Self.recordHeaderLength ? .unreadable : .incomplete }
        guard type == Self.handshakeRecordType, major == 3, Int(length) <= Self.maximumRecordLength else { return .unreadable }
        guard var record = buffer.readSlice(length: Int(length)) else { return .incomplete }
        return Self.clientHello(in: &record) ?? .unreadable
    }

    /// The offer of a handshake record's content; nil if it is not one whole ClientHello.
    private static func clientHello(in record: inout ByteBuffer) -> Offer? {
        guard record.readInteger(as: UInt8.self) == Self.clientHelloType,
            let high = record.readInteger(as: UInt8.self), let low = record.readInteger(as: UInt16.self),
            Int(high) << 16 | Int(low) == record.readableBytes,  // in this record, whole
            record.readInteger(as: UInt16.self) != nil,  // legacy_version
            record.readSlice(length: 32) != nil,  // random
            let sessionIDLength = record.readInteger(as: UInt8.self), sessionIDLength <= 32, record.readSlice(length: Int(sessionIDLength)) != nil,
            let suitesLength = record.readInteger(as: UInt16.self), record.readSlice(length: Int(suitesLength)) != nil,
            let compressionLength = record.readInteger(as: UInt8.self), record.readSlice(length: Int(compressionLength)) != nil
        else { return nil }
        // A TLS 1.2 ClientHello may end here: no extensions, so no ALPN.
        guard record.readableBytes > 0 else { return Offer.none }
        guard let extensionsLength = record.readInteger(as: UInt16.self), Int(extensionsLength) == record.readableBytes else { return nil }
        var offer = Offer.none
        while record.readableBytes > 0 {
            guard let type = record.readInteger(as: UInt16.self), let length = record.readInteger(as: UInt16.self),
                var body = record.readSlice(length: Int(length))
            else { return nil }
            guard type == Self.alpnExtensionType else { continue }
            // One ALPN extension at most (RFC 8446 §4.2: no type twice).
            guard offer == .none, let protocols = Self.protocolNames(in: &body) else { return nil }
            offer = .protocols(protocols)
        }
        return offer
    }

    /// A ProtocolNameList: a 2-byte length, then names of 1 to 255 bytes each.
    private static func protocolNames(in body: inout ByteBuffer) -> [String]? {
        guard let listLength = body.readInteger(as: UInt16.self), Int(listLength) == body.readableBytes, listLength > 0 else { return nil }
        var names: [String] = []
        while body.readableBytes > 0 {
            guard let length = body.readInteger(as: UInt8.self), length > 0, let name = body.readBytes(length: Int(length)) else { return nil }
            names.append(String(decoding: name, as: UTF8.self))
        }
        return names
    }

    /// Which transport a relay-port connection gets (docs/ARCHITECTURE.md "The web port").
    enum Route: Equatable {
        /// TLS with the agents' context (client certificate asked for), then the connection core.
        case agent
        /// TLS with the web context (no client certificate asked for), then HTTPS and WebSocket.
        case web
        /// The alert `no_application_protocol`, and close.
        case refuse
    }

    /// The ALPN token of the web port: browsers offer it (often after `h2`, which the relay
    /// does not speak; TLS then selects `http/1.1`).
    static let webProtocol = "http/1.1"

    /// Where a connection that offered `offer` goes; nil while the first record is incomplete.
    /// `supportrelay/1` wins over `http/1.1` when both are offered. A ClientHello the parser
    /// does not read whole goes to the agents' TLS as before: a browser never sends one in
    /// practice, and an agent's handshake then decides (``TLSHandshakeObserver``).
    static func route(for offer: Offer) -> Route? {
        switch offer {
        case .incomplete: nil
        case .unreadable: .agent
        case .protocols(let offered) where offered.contains(RelayProtocol.alpnToken): .agent
        case .protocols(let offered) where offered.contains(Self.webProtocol): .web
        case .none, .protocols: .refuse
        }
    }

    /// A fatal `no_application_protocol` alert (RFC 8446 §6, description 120) as a plaintext
    /// record: what a server sends in place of its ServerHello.
    static let noApplicationProtocolAlert: [UInt8] = [21, 3, 3, 0, 2, 2, 120]
}

/// The first handler of every relay-port connection. It reads the ClientHello's ALPN offer
/// before TLS (``ClientHelloALPN``) and puts the transport the offer asks for in its place
/// (``ClientHelloALPN/route(for:)``): the agents' TLS for `supportrelay/1`, the web port's
/// TLS, HTTPS and WebSocket for `http/1.1`. The handlers go between the gate and the
/// connection core, which is in the pipeline from the accept on. Offers of neither get the
/// alert `no_application_protocol`, and the connection is closed. After the first record
/// the gate leaves the pipeline, so it costs nothing once the handshake runs.
final class ALPNGate: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// The handlers of each transport, made when the route is known.
    struct Transports {
        var agent: () throws -> [any ChannelHandler]
        var web: () throws -> [any ChannelHandler]
    }

    private let transports: Transports
    private let onRefusal: (ClientHelloALPN.Offer) -> Void
    private var received: ByteBuffer?
    private var decided = false

    /// `onRefusal` is called on the event loop with what was offered, when the alert goes out.
    init(transports: Transports, onRefusal: @escaping (ClientHelloALPN.Offer) -> Void) {
        self.transports = transports
        self.onRefusal = onRefusal
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.decided else {
            // Refused and closing: whatever else the client sends is dropped.
            return
        }
        var bytes = Self.unwrapInboundIn(data)
        if var received = self.received {
            received.writeBuffer(&bytes)
            self.received = received
        } else {
            self.received = bytes
        }
        let offer = ClientHelloALPN.offer(in: self.received!)
        switch ClientHelloALPN.route(for: offer) {
        case nil:
            return
        case .agent:
            self.pass(to: self.transports.agent, context: context)
        case .web:
            self.pass(to: self.transports.web, context: context)
        case .refuse:
            self.decided = true
            self.received = nil
            self.onRefusal(offer)
            context.writeAndFlush(Self.wrapOutboundOut(ByteBuffer(bytes: ClientHelloALPN.noApplicationProtocolAlert)), promise: nil)
            context.close(promise: nil)
        }
    }

    /// Puts the transport's handlers after the gate, hands them the bytes so far and leaves.
    private func pass(to transport: () throws -> [any ChannelHandler], context: ChannelHandlerContext) {
        self.decided = true
        do {
            try context.pipeline.syncOperations.addHandlers(try transport(), position: .after(self))
        } catch {
            self.received = nil
            context.fireErrorCaught(error)
            context.close(promise: nil)
            return
        }
        if let received = self.received {
            self.received = nil
            context.fireChannelRead(Self.wrapInboundOut(received))
        }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}

@available(*, unavailable)
extension ALPNGate: Sendable {}
