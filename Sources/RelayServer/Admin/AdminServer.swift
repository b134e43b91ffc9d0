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
    static func make(
        relay: Relay, tls: TLSConfiguration, onRunning: @escaping @Sendable (any Channel) async -> Void
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
            await usage.respond(to: request, context: context)
        }
        let configuration = relay.configuration
        let address = configuration.adminListen
        var logger = relay.logger
        logger[metadataKey: "component"] = "admin"
        let budget = AdminConnectionBudget(maximum: configuration.adminMaximumConnections)
        let limits = AdminConnectionDeadlines.Limits(
            handshakeTimeout: configuration.adminHandshakeTimeout, headerTimeout: configuration.adminHeaderTimeout,
            stallTimeout: configuration.adminIdleTimeout
        )
        let metrics = relay.metrics
        let guardLogger = logger
        // HTTP1Channel.Configuration (HummingbirdCore, reached through `.http1`): a new guard
        // per connection, and the idle timeout between requests.
        return Application(
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
            onServerRunning: onRunning,
            eventLoopGroupProvider: .shared(relay.eventLoopGroup),
            logger: logger
        )
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
/// streamed from the database a page at a time, in writes of about 32 KiB.
struct UsageEndpoint: Sendable {
    let relay: Relay

    /// Rows read from the database per page.
    static let pageSize = 1_000
    /// Bytes collected before each write to the connection (each write flushes).
    static let writeSize = 32 * 1024

    func respond(to request: Request, context: AdminRequestContext) async -> Response {
        let source = context.remoteAddress?.ipAddress ?? "unknown"
        let sourceKey = "admin-addr:" + source
        // Penalised by source only (IPv6: its /64), shared with the agent port: a wrong
        // token never locks a company's admins out from elsewhere (issue 10, item 11).
        let penalised = SourceKey(context.remoteAddress)
        let now = NIODeadline.now()
        // Blocked after failed tokens (the relay's AuthThrottle), or flooding (rate limit).
        if let wait = self.relay.throttle.withLockedValue({ $0.retryAfter(source: penalised, now: now) }) {
            self.relay.metrics.authThrottled.increment()
            self.relay.logAccess("admin_token", .throttled, source: source)
            return Self.tooManyRequests(wait, "too many failed admin tokens from \(source)")
        }
        if let wait = self.relay.adminRateLimiter.withLockedValue({ $0.admit([sourceKey], now: now) }) {
            return Self.tooManyRequests(wait, "too many requests from \(source)")
        }
        guard let token = Self.bearerToken(request.headers[.authorization]) else {
            return Self.error(
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
            return Self.error(.internalServerError, "internal_error", "the relay could not read its database; operators: check the relay's log")
        }
        guard let company else {
            let companyKey = Secrets.splitToken(token).map { "admin:" + $0.id }
            let verdict = self.relay.throttle.withLockedValue { $0.recordFailure(source: penalised, account: companyKey, now: now) }
            if let alert = verdict.accountAlert {
                self.relay.logger.warning("\(alert)")
            }
            self.relay.metrics.authFailures.increment()
            self.relay.logAccess("admin_token", .rejected, source: source, subject: companyKey.map { String($0.dropFirst(6).prefix(64)) })
            return Self.error(
                .unauthorized, "invalid_token",
                "the admin token was not accepted; check it, or have the relay operator run `relay-server company rotate ID` for a new one",
                headers: [.wwwAuthenticate: #"Bearer realm="supportrelay-admin", error="invalid_token""#]
            )
        }
        if let wait = self.relay.adminRateLimiter.withLockedValue({ $0.admit(["admin-company:" + company.id], now: now) }) {
            return Self.tooManyRequests(wait, "too many requests for company \(company.id)")
        }
        self.relay.logAccess("admin_token", .accepted, source: source, companyID: company.id, subject: "admin")

        // The query. A `+` in an offset arrives as a space if the client did not encode it.
        let query = request.uri.queryParameters
        func parameter(_ name: String) -> String? {
            query[name[...]].map { String($0).replacingOccurrences(of: " ", with: "+") }
        }
        let format: UsageExportFormat
        let timeZone: ExportTimeZone
        let range: ExportRange
        let encoder: UsageExportEncoder
        do {
            format = try UsageExportFormat(parsing: parameter("format") ?? "csv")
            timeZone = try parameter("tz").map { try ExportTimeZone(parsing: $0) } ?? .utc
            guard let from = parameter("from"), let to = parameter("to") else {
                throw StoreError("from and to are required, e.g. ?from=2026-11-01&to=2026-11-30 (dates include the whole day)")
            }
            range = try ExportRange.parse(from: from, to: to, timeZone: timeZone, fromName: "from", toName: "to")
            let bom: Bool
            switch parameter("bom")?.lowercased() {
            case nil, "false", "0", "no": bom = false
            case "true", "1", "yes": bom = true
            case let other?: throw StoreError("bom must be true or false, got \"\(other)\"")
            }
            encoder = try UsageExportEncoder(format: format, timeZone: timeZone, byteOrderMark: bom)
        } catch {
            return Self.error(.badRequest, "bad_request", "\(error)")
        }

        let companyID = company.id
        let relay = self.relay
        let filename = "usage-\(companyID)-\(parameter("from") ?? "")-\(parameter("to") ?? "").\(format.fileExtension)"
            .replacingOccurrences(of: ":", with: "")
            .replacingOccurrences(of: "+", with: "")
        let body = ResponseBody { writer in
            var encoder = encoder
            var rows = 0
            var complete = false
            defer {
                let entry = AuditEntry(
                    actor: "api:\(companyID)", action: "export", companyID: companyID,
                    detail: "rows=\(rows) format=\(format.rawValue) from=\(range.from) to=\(range.to) source=\(source)\(complete ? "" : " incomplete=true")"
                )
                relay.threadPool.submit { _ in
                    do { try store.appendAudit(entry) } catch { relay.logger.error("cannot write the audit log", metadata: ["error": "\(error)"]) }
                }
            }
            var output: [UInt8] = []
            output.reserveCapacity(Self.writeSize + 4096)
            encoder.header(into: &output)
            var cursor: UsageCursor?
            while true {
                let after = cursor
                let page = try await relay.threadPool.runIfActive {
                    try store.usagePage(companyID: companyID, range: range, after: after, limit: Self.pageSize)
                }
                for record in page {
                    encoder.encode(record, into: &output)
                    if output.count >= Self.writeSize {
                        try await writer.write(ByteBuffer(bytes: output))
                        output.removeAll(keepingCapacity: true)
                    }
                }
                rows += page.count
                guard page.count == Self.pageSize, let last = page.last else { break }
                cursor = UsageCursor(after: last)
            }
            if !output.isEmpty { try await writer.write(ByteBuffer(bytes: output)) }
            complete = true
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

    static func tooManyRequests(_ wait: TimeAmount, _ what: String) -> Response {
        let seconds = max(1, Int((Double(wait.nanoseconds) / 1e9).rounded(.up)))
        return Self.error(
            .tooManyRequests, "rate_limited", "\(what); retry after \(seconds) s",
            headers: [.retryAfter: "\(seconds)"]
        )
    }

    /// A JSON error body: `{"error": CODE, "message": TEXT}` (docs/admin-openapi.yaml `Error`).
    static func error(_ status: HTTPResponse.Status, _ code: String, _ message: String, headers: HTTPFields = [:]) -> Response {
        var output: [UInt8] = Array(#"{"error":"#.utf8)
        UsageExportEncoder.appendJSONString(code, to: &output)
        output.append(contentsOf: #","message":"#.utf8)
        UsageExportEncoder.appendJSONString(message, to: &output)
        output.append(contentsOf: "}\n".utf8)
        var fields = headers
        fields[.contentType] = "application/json; charset=utf-8"
        fields[.cacheControl] = "no-store"
        return Response(status: status, headers: fields, body: ResponseBody(byteBuffer: ByteBuffer(bytes: output)))
    }
}
