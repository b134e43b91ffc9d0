import Crypto
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import RelayStore

/// Security alerts (issue 14 item 7): a sign-in from a new network, each unattended
/// session's start, a host's removal. Each is stored for the console, and posted as JSON
/// to the company's webhook if it has one, signed with HMAC-SHA256 of the body under the
/// webhook's secret (`X-SupportRelay-Signature: sha256=HEX`).
///
/// Delivery is one POST with a 10 s limit and, after a failure, one more 30 s later; the
/// last outcome per company is kept for the console. Webhook URLs are `https://` (verified
/// against the system's trust roots), or `http://` to this machine only (loopback), so that
/// a company admin cannot make the relay talk plain HTTP across a network.
final class SecurityAlerts: Sendable {
    struct Delivery: Sendable, Encodable {
        let at: Date
        /// The receiver's HTTP status, or nil if there was no answer.
        @Nullable var status: Int?
        /// What went wrong, or nil.
        @Nullable var error: String?
    }

    private let store: any AdminStore
    private let pool: NIOThreadPool
    private let eventLoopGroup: any EventLoopGroup
    private let logger: Logger
    private let now: @Sendable () -> Date
    /// `webhook_allow_loopback`.
    let allowLoopback: Bool
    private let lastDeliveries = NIOLockedValueBox([String: Delivery]())
    static let timeout = TimeAmount.seconds(10)
    static let retryDelay = TimeAmount.seconds(30)

    init(
        store: any AdminStore, pool: NIOThreadPool, eventLoopGroup: any EventLoopGroup, logger: Logger, allowLoopback: Bool,
        now: @escaping @Sendable () -> Date
    ) {
        self.store = store
        self.allowLoopback = allowLoopback
        self.pool = pool
        self.eventLoopGroup = eventLoopGroup
        self.logger = logger
        self.now = now
    }

    /// Stores `alert` and posts it to the company's webhook, off the caller's thread.
    func raise(_ alert: SecurityAlert) {
        let store = self.store
        self.pool.submit { _ in
            do {
                let stored = try store.addAlert(alert)
                guard let webhook = try store.webhook(companyID: alert.companyID) else { return }
                self.deliver(stored, to: webhook, retry: true)
            } catch {
                self.logger.error("cannot record a security alert", metadata: ["kind": "\(alert.kind)", "error": "\(error)"])
            }
        }
    }

    /// A web sign-in of `engineer` from `address`: an alert when it is a network they had
    /// not signed in from (IPv4 /24, IPv6 /48), unless it is their first sign-in.
    func signedIn(_ engineer: Engineer, address: String) {
        let (store, now) = (self.store, self.now())
        let network = Self.network(of: address)
        self.pool.submit { _ in
            do {
                guard try store.noteSignInNetwork(engineerID: engineer.id, network: network, at: now) else { return }
                self.raise(
                    SecurityAlert(
                        companyID: engineer.companyID, at: now, kind: .newSignInNetwork, subject: engineer.login,
                        detail: "\(engineer.login) signed in to the console from \(address), a network (\(network)) they had not used before"))
            } catch {
                self.logger.error("cannot check a sign-in's network", metadata: ["error": "\(error)"])
            }
        }
    }

    /// The network an address belongs to, as alerts compare them.
    static func network(of address: String) -> String {
        // An IPv4 client of a dual-stack listener arrives as ::ffff:a.b.c.d.
        if address.lowercased().hasPrefix("::ffff:"), address.contains(".") {
            return Self.network(of: String(address.dropFirst("::ffff:".count)))
        }
        if address.contains(":") {
            guard let parsed = try? SocketAddress(ipAddress: address, port: 0), case .v6(let v6) = parsed else { return address }
            let bytes = withUnsafeBytes(of: v6.address.sin6_addr) { Array($0) }
            let groups = stride(from: 0, to: 6, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
            return groups.joined(separator: ":") + "::/48"
        }
        let parts = address.split(separator: ".")
        guard parts.count == 4 else { return address }
        return parts.prefix(3).joined(separator: ".") + ".0/24"
    }

    func lastDelivery(companyID: String) -> Delivery? {
        self.lastDeliveries.withLockedValue { $0[companyID] }
    }

    // MARK: Delivery

    private struct Payload: Encodable {
        let id: Int64?
        let company: String
        let at: Date
        let kind: String
        let subject: String
        let detail: String
    }

    /// The JSON body of an alert.
    static func body(of alert: SecurityAlert) -> Data {
        let payload = Payload(id: alert.id, company: alert.companyID, at: alert.at, kind: alert.kind.rawValue, subject: alert.subject, detail: alert.detail)
        return (try? WebApplication.encoder.encode(payload)) ?? Data("{}".utf8)
    }

    /// `sha256=HEX`: HMAC-SHA256 of `body` under `secret`.
    static func signature(of body: Data, secret: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: Data(secret.utf8)))
        return "sha256=" + mac.map { String(format: "%02x", $0) }.joined()
    }

    private func deliver(_ alert: SecurityAlert, to webhook: Webhook, retry: Bool) {
        let body = Self.body(of: alert)
        let companyID = alert.companyID
        Task {
            let delivery = await self.post(body, to: webhook)
            self.lastDeliveries.withLockedValue { $0[companyID] = delivery }
            guard retry, delivery.status.map({ !(200..<300).contains($0) }) ?? true else { return }
            self.logger.notice("a security alert's webhook failed; trying once more in 30 s", metadata: ["error": "\(delivery.error ?? "-")"])
            try? await Task.sleep(nanoseconds: UInt64(Self.retryDelay.nanoseconds))
            let again = await self.post(body, to: webhook)
            self.lastDeliveries.withLockedValue { $0[companyID] = again }
        }
    }

    /// Posts a test alert now and returns what happened (the console's "Send a test").
    func test(companyID: String, webhook: Webhook, actor: String) async -> Delivery {
        let alert = SecurityAlert(
            companyID: companyID, at: self.now(), kind: .other("test"), subject: actor, detail: "a test of the webhook, sent by \(actor) from the console")
        let delivery = await self.post(Self.body(of: alert), to: webhook)
        self.lastDeliveries.withLockedValue { $0[companyID] = delivery }
        return delivery
    }

    /// One POST; never throws: what went wrong is in the result.
    func post(_ body: Data, to webhook: Webhook) async -> Delivery {
        do {
            let target = try WebhookTarget(webhook.url, allowLoopback: self.allowLoopback)
            let status = try await WebhookClient.post(
                body, to: target, headers: [("X-SupportRelay-Signature", Self.signature(of: body, secret: webhook.secret))], group: self.eventLoopGroup,
                timeout: Self.timeout)
            return Delivery(at: self.now(), status: status, error: (200..<300).contains(status) ? nil : "the receiver answered \(status)")
        } catch {
            return Delivery(at: self.now(), status: nil, error: "\(error)")
        }
    }
}

/// A webhook URL, checked: `https://HOST[:PORT]/PATH`, or `http://` to a loopback host
/// where the operator allows it (`webhook_allow_loopback`).
struct WebhookTarget: Sendable, Hashable {
    let secure: Bool
    let host: String
    let port: Int
    let path: String

    init(_ text: String, allowLoopback: Bool) throws {
        guard text.utf8.count <= 2000, let url = URL(string: text), let scheme = url.scheme?.lowercased(), let host = url.host, !host.isEmpty else {
            throw WebhookError("the webhook URL is not a URL; write https://HOST/PATH")
        }
        guard url.user == nil, url.password == nil else { throw WebhookError("put no user name or password in the webhook URL; use a secret path instead") }
        let loopback = ["localhost", "127.0.0.1", "::1", "[::1]"].contains(host.lowercased())
        switch scheme {
        case "https" where loopback && !allowLoopback:
            throw WebhookError("a webhook may not name the relay machine itself; give the receiver's own address")
        case "https": self.secure = true
        case "http" where loopback && allowLoopback: self.secure = false
        case "http" where loopback:
            throw WebhookError("this relay takes https:// webhooks only; its operator allows plain http to the relay machine with webhook_allow_loopback")
        case "http": throw WebhookError("the webhook URL must start with https:// (plain http goes nowhere but to the relay machine itself)")
        default: throw WebhookError("the webhook URL must start with https://")
        }
        self.host = host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
        self.port = url.port ?? (self.secure ? 443 : 80)
        // As written: percent-escapes and a trailing slash stay.
        let components = URLComponents(url: url, resolvingAgainstBaseURL: false)
        let path = components?.percentEncodedPath ?? ""
        self.path = (path.isEmpty ? "/" : path) + (components?.percentEncodedQuery.map { "?" + $0 } ?? "")
    }
}

extension WebhookTarget {
    /// Whether the host is an IP address rather than a name.
    var isAddress: Bool { (try? SocketAddress(ipAddress: self.host, port: 0)) != nil }
}

struct WebhookError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A minimal HTTP/1.1 client for webhook POSTs (NIO's HTTP codec, NIOSSL with the
/// system's trust roots and hostname check): sends one request and reads the status.
enum WebhookClient {
    static func post(
        _ body: Data, to target: WebhookTarget, headers extra: [(String, String)], group: any EventLoopGroup, timeout: TimeAmount
    ) async throws -> Int {
        let tls: NIOSSLContext? = target.secure ? try NIOSSLContext(configuration: .makeClientConfiguration()) : nil
        // One loop for the channel, the promise and the timer.
        let loop = group.next()
        let promise = loop.makePromise(of: Int.self)
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let tls {
                        // An address names no server (SNI takes names only); the certificate
                        // must then carry the address itself.
                        let name = target.isAddress ? nil : target.host
                        try sync.addHandler(try NIOSSLClientHandler(context: tls, serverHostname: name))
                    }
                    try sync.addHTTPClientHandlers()
                    try sync.addHandler(StatusReader(promise: promise))
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: target.host, port: target.port).get()
        } catch {
            promise.fail(error)
            throw WebhookError("cannot connect to \(target.host):\(target.port) (\(Self.words(for: error)))")
        }
        let timer = loop.scheduleTask(in: timeout) {
            channel.pipeline.fireErrorCaught(WebhookError("the receiver did not answer within \(timeout.nanoseconds / 1_000_000_000) s"))
        }
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: target.port == (target.secure ? 443 : 80) ? target.host : "\(target.host):\(target.port)")
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: "\(body.count)")
        headers.add(name: "User-Agent", value: "SupportRelay-webhook")
        headers.add(name: "Connection", value: "close")
        for (name, value) in extra { headers.add(name: name, value: value) }
        let head = HTTPRequestHead(version: .http1_1, method: .POST, uri: target.path, headers: headers)
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: body))), promise: nil)
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        defer {
            timer.cancel()
            channel.close(promise: nil)
        }
        return try await promise.futureResult.get()
    }

    /// A connection failure as a person reads it: the system's words, not NIO's types.
    static func words(for error: any Error) -> String {
        if let error = error as? NIOConnectionError {
            if error.dnsAError != nil || error.dnsAAAAError != nil, error.connectionErrors.isEmpty { return "its name could not be resolved" }
            if let first = error.connectionErrors.first?.error { return Self.words(for: first) }
        }
        if let error = error as? IOError { return String(cString: strerror(error.errnoCode)).lowercased() }
        if error is ChannelError { return "the connection failed or timed out" }
        return "\(error)"
    }

    /// Completes the promise with the response's status, or fails it if the connection
    /// closes first.
    private final class StatusReader: ChannelInboundHandler {
        typealias InboundIn = HTTPClientResponsePart
        private let promise: EventLoopPromise<Int>
        private var done = false

        init(promise: EventLoopPromise<Int>) { self.promise = promise }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard !self.done, case .head(let head) = Self.unwrapInboundIn(data) else { return }
            self.done = true
            self.promise.succeed(Int(head.status.code))
        }

        func channelInactive(context: ChannelHandlerContext) {
            if !self.done {
                self.done = true
                self.promise.fail(WebhookError("the receiver closed the connection without an answer"))
            }
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            if !self.done {
                self.done = true
                self.promise.fail(error as? WebhookError ?? WebhookError("the webhook could not be reached: \(error)"))
            }
            context.close(promise: nil)
        }
    }
}
