import Foundation
import Logging
import NIOCore
import NIOHTTP1
import RelaySignIn
import RelayStore

/// Who calls the admin API, as ``AdminAPI/caller(_:)`` proved it.
struct AdminCaller: Sendable {
    let policy: AdminPolicy
    let companyID: String
    let companyName: String
    /// The signed-in person; nil for a token.
    let engineer: Engineer?
    /// The session of a signed-in person (for the CSRF check); nil for a token.
    let session: SignInSecret?
    /// The API token of a script; nil for a person.
    let token: APIToken?

    /// Who the audit log names: `console:LOGIN` or `token:ID`.
    var actor: String {
        if let engineer { return "console:\(engineer.login)" }
        return "token:\(self.token?.id ?? "?")"
    }
}

/// The admin API under `/api/admin/` (issue 14; docs/admin-openapi.yaml): what the admin
/// console's page calls with its session, and what scripts call with an API token. Every
/// route asks ``AdminPolicy`` first; every store call runs on the relay's thread pools.
final class AdminAPI: Sendable {
    static let prefix = "/api/admin/"
    /// Rows per page of the usage and log lists.
    static let defaultPageSize = 50
    static let maximumPageSize = 500

    let relay: Relay
    let application: WebApplication

    init(relay: Relay, application: WebApplication) {
        self.relay = relay
        self.application = application
    }

    var store: any AccountStore & UsageStore & AdminStore { self.relay.store }

    /// Runs blocking store work on the login pool (short calls: one row, a small list).
    func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await self.relay.threadPool.runIfActive(work)
    }

    /// Runs a query that may read many rows (usage pages and totals, log pages) on the
    /// background pool, so that it never delays an agent's login.
    func query<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await self.relay.backgroundPool.runIfActive(work)
    }

    // MARK: Routes

    func respond(to request: WebRequest) async throws -> WebReply {
        let caller = try await self.caller(request)
        let route = String(request.path.dropFirst(Self.prefix.count))
        let query = AdminQuery(request.query)
        switch (request.method, route) {
        case (.GET, "me"): return self.me(caller, request)
        case (.GET, "usage"): return try await self.usage(caller, query)
        case (.GET, "usage/summary"): return try await self.usageSummary(caller, query)
        case (.GET, "usage/export"): return try await self.usageExport(caller, query, request)
        case (.GET, "hosts"): return try await self.hosts(caller)
        case (.POST, "hosts"): return try await self.enrolHost(caller, request)
        case (.POST, "hosts/rename"), (.POST, "hosts/group"), (.POST, "hosts/key"), (.POST, "hosts/remove"):
            return try await self.changeHost(caller, request, action: String(route.dropFirst("hosts/".count)))
        case (.GET, "engineers"): return try await self.engineers(caller)
        case (.POST, "engineers"): return try await self.invite(caller, request)
        case (.POST, _) where route.hasPrefix("engineers/"):
            return try await self.changeEngineer(caller, request, action: String(route.dropFirst("engineers/".count)))
        case (.GET, "retention"): return try await self.retention(caller)
        case (.POST, "hold"): return try await self.hold(caller, request)
        case (.POST, "hold/release"): return try await self.releaseHold(caller)
        case (.GET, "audit"): return try await self.audit(caller, query)
        case (.GET, "audit/export"): return try await self.logExport(caller, query, request, log: .audit)
        case (.GET, "access"): return try await self.access(caller, query)
        case (.GET, "access/export"): return try await self.logExport(caller, query, request, log: .access)
        case (.GET, "tokens"): return try await self.tokens(caller)
        case (.POST, "tokens"): return try await self.createToken(caller, request)
        case (.POST, "tokens/revoke"): return try await self.revokeToken(caller, request)
        case (.GET, "alerts"): return try await self.alerts(caller, query)
        case (.GET, "webhook"): return try await self.webhook(caller)
        case (.POST, "webhook"): return try await self.setWebhook(caller, request)
        case (.POST, "webhook/test"): return try await self.testWebhook(caller)
        case (.GET, "relay"): return try await self.relayCounts(caller)
        default:
            throw WebFailure(.notFound, "there is no \(request.method) \(request.path) in the admin API; docs/admin-openapi.yaml lists the routes")
        }
    }

    // MARK: Who calls

    /// The caller: an API token (`Authorization: Bearer sra_…`), or the signed-in person
    /// of the session cookie. A person's POST must carry the page's Origin and the
    /// session's CSRF token; a token's needs neither (browsers never add one by themselves).
    func caller(_ request: WebRequest) async throws -> AdminCaller {
        if let header = request.headers.first(name: "Authorization") {
            return try await self.tokenCaller(header, request)
        }
        if request.method == .POST, !WebApplication.isSameOrigin(request.headers) {
            throw WebFailure(.forbidden, "this relay takes form posts from its own pages only; open the console at its address and try again")
        }
        let (engineer, session) = try await self.application.session(request.headers)
        guard engineer.disabledAt == nil else {
            throw WebFailure(.unauthorized, "your account is disabled; ask your company's admin", cookies: [WebSessionPolicy.removalCookie])
        }
        if request.method == .POST { try WebApplication.checkCSRF(request, session: session) }
        return AdminCaller(
            policy: AdminPolicy(caller: .person(engineer.role)), companyID: engineer.companyID, companyName: engineer.companyName, engineer: engineer,
            session: session, token: nil)
    }

    private func tokenCaller(_ header: String, _ request: WebRequest) async throws -> AdminCaller {
        try self.application.throttle(request)
        guard let secret = UsageEndpoint.bearerToken(header) else {
            throw WebFailure(
                .unauthorized, "send an API token as Authorization: Bearer sra_…; an admin makes one in the console (API tokens)",
                headers: [("WWW-Authenticate", #"Bearer realm="supportrelay""#)])
        }
        let (store, now) = (self.store, self.relay.now())
        let token = try await self.run { try store.authenticateAPIToken(secret, at: now) }
        guard let token else {
            self.relay.metrics.authFailures.increment()
            let verdict = self.relay.throttle.withLockedValue { $0.recordFailure(source: request.source, account: nil, now: .now()) }
            if let alert = verdict.accountAlert { self.relay.logger.warning("\(alert)") }
            self.relay.logAccess(.apiToken, .rejected, source: request.address)
            throw WebFailure(
                .unauthorized, "the API token was not accepted (revoked, or mistyped); an admin makes a new one in the console (API tokens)",
                headers: [("WWW-Authenticate", #"Bearer realm="supportrelay", error="invalid_token""#)])
        }
        self.relay.logAccess(.apiToken, .accepted, source: request.address, companyID: token.companyID, subject: token.id)
        let company = try await self.run { try store.company(id: token.companyID) }
        return AdminCaller(
            policy: AdminPolicy(caller: .token(token.scope)), companyID: token.companyID, companyName: company.name, engineer: nil, session: nil,
            token: token)
    }

    /// 403 unless the caller may do `permission`, with what this caller can do instead.
    func require(_ permission: AdminPolicy.Permission, _ caller: AdminCaller) throws {
        guard !caller.policy.allows(permission) else { return }
        let advice: String
        switch (caller.policy.caller, permission) {
        case (_, .readRelay):
            advice = "the relay's own counts are for its operator; ask the relay's operator (a person with the operator role)"
        case (.person(.operator), _):
            advice = "an operator sees the relay's counts, never a company's content; use the Relay tab"
        case (.token(.export), _):
            advice = "an export token only reads usage and logs; use an admin token, or sign in as an admin"
        case (.token(.admin), .manageTokens):
            advice = "API tokens are never made or revoked by a token; sign in to the console as an admin for that"
        case (.person(.admin), _):
            advice = "this needs another right than an admin's; ask the relay's operator"
        default:
            advice = "your role (\(caller.engineer?.role.rawValue ?? "?")) does not allow it; ask an admin of your company"
        }
        throw WebFailure(.forbidden, "not allowed: \(advice)")
    }

    // MARK: Me

    private struct Me: Encodable {
        let login: String
        let role: String
        let companyID: String
        let companyName: String
        let csrf: String
        let sections: [String]
    }

    private func me(_ caller: AdminCaller, _ request: WebRequest) -> WebReply {
        .json(
            Me(
                login: caller.engineer?.login ?? caller.token?.name ?? "", role: caller.engineer?.role.rawValue ?? "token",
                companyID: caller.companyID, companyName: caller.companyName, csrf: caller.session.map(WebSessionPolicy.csrfToken(for:)) ?? "",
                sections: caller.policy.sections))
    }
}

/// The query parameters of a request, percent-decoded (`+` is a space, as forms send it,
/// except in `tz`, `from` and `to`, where a `+` is an offset's sign).
struct AdminQuery: Sendable {
    private var values: [String: String] = [:]

    init(_ query: String) {
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = parts.first.flatMap({ String($0).removingPercentEncoding }) else { continue }
            let raw = parts.count == 2 ? String(parts[1]) : ""
            let keepsPlus = ["tz", "from", "to"].contains(name)
            let value = (keepsPlus ? raw : raw.replacingOccurrences(of: "+", with: " ")).removingPercentEncoding ?? ""
            if self.values[name] == nil { self.values[name] = value }
        }
    }

    /// The value, trimmed; nil when absent or empty.
    subscript(_ name: String) -> String? {
        guard let value = self.values[name]?.trimmingCharacters(in: .whitespaces), !value.isEmpty else { return nil }
        return value
    }

    /// `after` of a list that pages by id, newest first: the entries before this id.
    func before() throws -> Int64? {
        try self["after"].map { text in
            guard let value = Int64(text) else { throw WebFailure(.badRequest, "after must be the next value of the previous page, as it was given") }
            return value
        }
    }

    /// `limit`: 1…maximum, default `fallback`.
    func limit(default fallback: Int, maximum: Int) throws -> Int {
        guard let text = self["limit"] else { return fallback }
        guard let value = Int(text), (1...maximum).contains(value) else {
            throw WebFailure(.badRequest, "limit must be a whole number from 1 to \(maximum), got \"\(text)\"")
        }
        return value
    }
}

/// An optional field of an admin API answer that is written as `null` when empty, never
/// left out (Swift's encoder leaves out nil), so that a script reads every documented key
/// of every row (docs/admin-openapi.yaml).
@propertyWrapper
struct Nullable<Value: Encodable & Sendable>: Encodable, Sendable {
    var wrappedValue: Value?

    init(wrappedValue: Value?) { self.wrappedValue = wrappedValue }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        if let value = self.wrappedValue { try container.encode(value) } else { try container.encodeNil() }
    }
}
