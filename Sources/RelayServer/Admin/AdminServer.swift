import Foundation
import Hummingbird
import HummingbirdTLS
import Logging
import NIOCore
import NIOSSL
import RelayStore
import ServiceLifecycle
import Synchronization

/// The admin port (HTTPS with the relay's certificate; OPERATIONS.md "Metrics" and
/// "Export"): `/metrics` for Prometheus, `/healthz`, and the per-company usage export
/// `GET /v1/usage` (docs/admin-openapi.yaml).
enum AdminServer {
    /// The admin application, a Service for the node's ServiceGroup. `onRunning` gets the
    /// listening channel (its local address has the real port when 0 was asked for).
    ///
    /// Its connections have their own cap and deadlines (``AdminConnectionGuard``,
    /// `admin_*` settings), and Hummingbird's idle timeout between requests: a client that
    /// opens connections and says nothing holds at most `admin_maximum_connections` of them,
    /// each for at most the handshake timeout.
    ///
    /// If it cannot listen on `address` (the configuration's `admin_listen` unless a test
    /// gives another), its `run()` throws a ``ConfigurationError`` of kind `listen`.
    static func make(
        relay: Relay, tls: TLSConfiguration, address: ListenAddress? = nil, onRunning: @escaping @Sendable (any Channel) async -> Void
    ) throws -> some Service {
        let router = Router(context: AdminRequestContext.self)
        router.get("metrics") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: relay.metrics.exposition()))
            )
        }
        router.get("healthz") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"], body: ResponseBody(byteBuffer: ByteBuffer(string: "ok\n")))
        }
        let usage = UsageEndpoint(relay: relay)
        router.get("v1/usage") { request, context in
            do {
                return try await usage.respond(to: request, context: context)
            } catch {
                throw AdminAPIError(error, logger: relay.logger)
            }
        }
        let configuration = relay.configuration
        let address = address ?? configuration.adminListen
        var logger = relay.logger
        logger[metadataKey: "component"] = "admin"
        let budget = AdminConnectionBudget(maximum: configuration.adminMaximumConnections)
        let limits = AdminConnectionDeadlines.Limits(
            handshakeTimeout: configuration.adminHandshakeTimeout, headerTimeout: configuration.adminHeaderTimeout,
            stallTimeout: configuration.adminIdleTimeout
        )
        let metrics = relay.metrics
        let guardLogger = logger
        let listening = AdminListening()
        // HTTP1Channel.Configuration (HummingbirdCore, reached through `.http1`): a new guard
        // per connection, and the idle timeout between requests.
        let application = Application(
            router: router,
            server: try .tls(
                .http1(
                    configuration: .init(
                        additionalChannelHandlers: [AdminConnectionGuard(budget: budget, limits: limits, metrics: metrics, logger: guardLogger)],
                        idleTimeout: configuration.adminIdleTimeout
                    )
                ),
                tlsConfiguration: tls
            ),
            configuration: ApplicationConfiguration(address: .hostname(address.host, port: address.port), serverName: nil),
            onServerRunning: { channel in
                listening.flag.store(true, ordering: .releasing)
                await onRunning(channel)
            },
            eventLoopGroupProvider: .shared(relay.eventLoopGroup),
            logger: logger
        )
        return AdminService(application: application, address: address, listening: listening)
    }
}

/// Whether the admin application got as far as listening.
final class AdminListening: Sendable {
    let flag = Atomic<Bool>(false)
}

/// The admin application as the node's Service: a failure before it listens (the
/// address is taken, or not this machine's) says what to do, like the relay port's.
struct AdminService<Wrapped: Service>: Service {
    let application: Wrapped
    let address: ListenAddress
    let listening: AdminListening

    func run() async throws {
        do {
            try await self.application.run()
        } catch let error where !self.listening.flag.load(ordering: .acquiring) {
            throw ConfigurationError(
                .listen,
                "cannot listen for the admin API on \(self.address): \(error); is another relay running there? choose another with --admin-listen (admin_listen)"
            )
        }
    }
}

/// Each request's context, with the client's address for throttling and the access log.
struct AdminRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let remoteAddress: SocketAddress?

    init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.remoteAddress = source.channel.remoteAddress
    }
}

/// `GET /v1/usage?from=&to=&format=csv|jsonl[&tz=&bom=]` with `Authorization: Bearer
/// <company admin token>`: the company's usage records that started in the range,
/// streamed from the database a page at a time (``UsageExport``), in writes of about 32 KiB.
///
/// Every refusal is thrown as an ``AdminAPIError``; the router turns it into the response.
struct UsageEndpoint: Sendable {
    let relay: Relay

    func respond(to request: Request, context: AdminRequestContext) async throws -> Response {
        let source = context.remoteAddress?.ipAddress ?? "unknown"
        let sourceKey = "admin-addr:" + source
        // Penalised by source only (IPv6: its /64), shared with the agent port: a wrong
        // token never locks a company's admins out from elsewhere (issue 10, item 11).
        let penalised = SourceKey(context.remoteAddress)
        let now = NIODeadline.now()
        // Blocked after failed tokens (the relay's AuthThrottle), or flooding (rate limit).
        if let wait = self.relay.throttle.withLockedValue({ $0.retryAfter(source: penalised, now: now) }) {
            self.relay.metrics.authThrottled.increment()
            self.relay.logAccess(.adminToken, .throttled, source: source)
            throw AdminAPIError.tooManyRequests(wait, "too many failed admin tokens from \(source)")
        }
        if let wait = self.relay.adminRateLimiter.withLockedValue({ $0.admit([sourceKey], now: now) }) {
            throw AdminAPIError.tooManyRequests(wait, "too many requests from \(source)")
        }
        guard let token = Self.bearerToken(request.headers[.authorization]) else {
            throw AdminAPIError(
                .unauthorized, "missing_token",
                "send the company admin token (from `relay-server company add` or `company rotate`) as Authorization: Bearer TOKEN",
                headers: [.wwwAuthenticate: #"Bearer realm="supportrelay-admin""#]
            )
        }
        let store = self.relay.store
        let company: Company?
        do {
            company = try await self.relay.threadPool.runIfActive { try store.authenticateAdmin(token: token) }
        } catch {
            self.relay.logger.error("cannot check an admin token", metadata: ["error": "\(error)"])
            throw AdminAPIError.databaseUnreadable
        }
        guard let company else {
            let companyKey = Secrets.splitToken(token).map { "admin:" + $0.id }
            let verdict = self.relay.throttle.withLockedValue { $0.recordFailure(source: penalised, account: companyKey, now: now) }
            if let alert = verdict.accountAlert {
                self.relay.logger.warning("\(alert)")
            }
            self.relay.metrics.authFailures.increment()
            self.relay.logAccess(.adminToken, .rejected, source: source, subject: companyKey.map { String($0.dropFirst(6).prefix(64)) })
            throw AdminAPIError(
                .unauthorized, "invalid_token",
                "the admin token was not accepted; check it, or have the relay operator run `relay-server company rotate ID` for a new one",
                headers: [.wwwAuthenticate: #"Bearer realm="supportrelay-admin", error="invalid_token""#]
            )
        }
        if let wait = self.relay.adminRateLimiter.withLockedValue({ $0.admit(["admin-company:" + company.id], now: now) }) {
            throw AdminAPIError.tooManyRequests(wait, "too many requests for company \(company.id)")
        }
        self.relay.logAccess(.adminToken, .accepted, source: source, companyID: company.id, subject: "admin")

        // The query. A `+` in an offset arrives as a space if the client did not encode it.
        let query = request.uri.queryParameters
        func parameter(_ name: String) -> String? {
            query[name[...]].map { String($0).replacingOccurrences(of: " ", with: "+") }
        }
        // A malformed parameter is the store's `invalidInput` (400 through AdminAPIError).
        let format = try UsageExportFormat(parsing: parameter("format") ?? "csv")
        let timeZone = try parameter("tz").map { try ExportTimeZone(parsing: $0) } ?? .utc
        guard let from = parameter("from"), let to = parameter("to") else {
            throw AdminAPIError(.badRequest, "bad_request", "from and to are required, e.g. ?from=2026-11-01&to=2026-11-30 (dates include the whole day)")
        }
        let range = try ExportRange.parse(from: from, to: to, timeZone: timeZone, fromName: "from", toName: "to")
        let bom: Bool
        switch parameter("bom")?.lowercased() {
        case nil, "false", "0", "no": bom = false
        case "true", "1", "yes": bom = true
        case let other?: throw AdminAPIError(.badRequest, "bad_request", "bom must be true or false, got \"\(other)\"")
        }
        let export = UsageExport(
            companyID: company.id, range: range, encoder: try UsageExportEncoder(format: format, timeZone: timeZone, byteOrderMark: bom),
            now: self.relay.now
        )

        let companyID = company.id
        let relay = self.relay
        let filename = "usage-\(companyID)-\(from)-\(to).\(format.fileExtension)"
            .replacingOccurrences(of: ":", with: "")
            .replacingOccurrences(of: "+", with: "")
        let body = ResponseBody { writer in
            _ = try await export.run(
                actor: "api:\(companyID)", source: source,
                readPage: { after in
                    try await relay.backgroundPool.runIfActive {
                        try store.usagePage(companyID: companyID, range: range, after: after, limit: UsageExport.pageSize)
                    }
                },
                write: { try await writer.write(ByteBuffer(bytes: $0)) },
                audit: { entry in
                    relay.backgroundPool.submit { _ in
                        do { try store.appendAudit(entry) } catch { relay.logger.error("cannot write the audit log", metadata: ["error": "\(error)"]) }
                    }
                }
            )
            try await writer.finish(nil)
        }
        return Response(
            status: .ok,
            headers: [
                .contentType: format.contentType,
                .contentDisposition: "attachment; filename=\"\(filename)\"",
                .cacheControl: "no-store",
            ],
            body: body
        )
    }

    static func bearerToken(_ header: String?) -> String? {
        guard let header else { return nil }
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        let token = parts[1].trimmingCharacters(in: .whitespaces)
        return token.isEmpty || token.utf8.count > 512 ? nil : token
    }
}

/// An admin API refusal: its HTTP status, a stable code and a message for a person, sent
/// as the JSON body `{"error": CODE, "message": TEXT}` (docs/admin-openapi.yaml `Error`).
///
/// The one place where the admin API turns errors into statuses: a handler throws, and
/// ``init(_:logger:)`` maps whatever it threw (a ``StoreError`` by its kind); Hummingbird
/// then asks ``response(from:context:)`` for the response.
struct AdminAPIError: HTTPResponseError {
    let status: HTTPResponse.Status
    /// Stable, for programs: `missing_token`, `invalid_token`, `rate_limited`, `bad_request`,
    /// `not_found`, `conflict`, `unavailable`, `internal_error`.
    let code: String
    let message: String
    var headers: HTTPFields = [:]

    init(_ status: HTTPResponse.Status, _ code: String, _ message: String, headers: HTTPFields = [:]) {
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
    }

    /// `error` as the client sees it. A store error's kind picks the status; anything else
    /// is the relay's own failure: logged here, and a 500 that leaks no detail.
    init(_ error: any Error, logger: Logger) {
        switch error {
        case let error as AdminAPIError:
            self = error
        case let error as StoreError where error.kind == .invalidInput:
            self.init(.badRequest, "bad_request", error.message)
        case let error as StoreError where error.kind == .notFound:
            self.init(.notFound, "not_found", error.message)
        case let error as StoreError where error.kind == .conflict:
            self.init(.conflict, "conflict", error.message)
        case let error as StoreError where error.kind == .unavailable:
            logger.error("admin API: the store is unavailable", metadata: ["error": "\(error)"])
            self.init(
                .serviceUnavailable, "unavailable", "the relay cannot use its database right now; retry later (operators: check the relay's log)",
                headers: [.retryAfter: "5"]
            )
        default:
            logger.error("admin API: request failed", metadata: ["error": "\(error)"])
            self = .databaseUnreadable
        }
    }

    static let databaseUnreadable = AdminAPIError(
        .internalServerError, "internal_error", "the relay could not read its database; operators: check the relay's log"
    )

    /// 429 with `Retry-After` in whole seconds (at least 1).
    static func tooManyRequests(_ wait: TimeAmount, _ what: String) -> AdminAPIError {
        let seconds = max(1, Int((Double(wait.nanoseconds) / 1e9).rounded(.up)))
        return AdminAPIError(.tooManyRequests, "rate_limited", "\(what); retry after \(seconds) s", headers: [.retryAfter: "\(seconds)"])
    }

    private struct Body: Encodable {
        let error: String
        let message: String
    }

    /// `{"error":CODE,"message":TEXT}` and a newline (JSON by Foundation's encoder).
    func jsonBody() throws -> Data {
        var bytes = try Self.encoder.encode(Body(error: self.code, message: self.message))
        bytes.append(0x0A)
        return bytes
    }

    /// The JSON body, with the error's headers and `Cache-Control: no-store`.
    func response(from request: Request, context: some RequestContext) throws -> Response {
        let bytes = try self.jsonBody()
        var fields = self.headers
        fields[.contentType] = "application/json; charset=utf-8"
        fields[.cacheControl] = "no-store"
        return Response(status: self.status, headers: fields, body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    /// Keys in a fixed order (`error`, `message`), slashes as they are.
    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()
}
