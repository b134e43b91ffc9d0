import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import RelaySignIn
import RelayStore
import Synchronization

/// One request to the web application's JSON routes (`/api/…`), as ``WebRequestHandler``
/// received it: head and whole body.
struct WebRequest: Sendable {
    let method: HTTPMethod
    /// The path, without the query.
    let path: String
    /// The query (after `?`), or "".
    var query: String = ""
    let headers: HTTPHeaders
    let body: ByteBuffer
    /// The TCP peer's address (the source that sign-in throttling charges).
    let source: SourceKey
    let address: String
}

/// The answer to a ``WebRequest``: JSON, no body, or a file streamed in chunks.
struct WebReply: Sendable {
    var status: HTTPResponseStatus
    var body: ByteBuffer?
    var cookies: [String] = []
    var headers: [(String, String)] = []
    /// A streamed body (exports): ``WebRequestHandler`` sends the head with chunked
    /// transfer encoding, then runs this; a write returns at once while the channel's
    /// write buffer is under its high-water mark, and once the socket took the chunk when
    /// it is over, so a slow client slows the producer down. A throw ends the connection, so
    /// the client sees a truncated body, never a complete-looking one.
    var stream: (@Sendable (WebBodyWriter) async throws -> Void)?
    /// The streamed body's `Content-Type`.
    var contentType: String?

    static func json(_ value: some Encodable, status: HTTPResponseStatus = .ok, cookies: [String] = []) -> WebReply {
        WebReply(status: status, body: ByteBuffer(bytes: (try? WebApplication.encoder.encode(value)) ?? Data("{}".utf8)), cookies: cookies)
    }

    /// `{"error": text}`: what happened and what to do.
    static func error(_ status: HTTPResponseStatus, _ text: String, cookies: [String] = [], headers: [(String, String)] = []) -> WebReply {
        var reply = Self.json(["error": text], status: status, cookies: cookies)
        reply.headers = headers
        return reply
    }
}

/// Writes a streamed reply's chunks (``WebReply/stream``).
struct WebBodyWriter: Sendable {
    let write: @Sendable (ByteBuffer) async throws -> Void
}

/// A file download as a streamed reply: `Content-Disposition: attachment`.
extension WebReply {
    static func download(
        contentType: String, filename: String, _ stream: @escaping @Sendable (WebBodyWriter) async throws -> Void
    ) -> WebReply {
        WebReply(
            status: .ok, body: nil, headers: [("Content-Disposition", "attachment; filename=\"\(filename)\"")], stream: stream,
            contentType: contentType)
    }
}

/// The web application behind the pages: sign-in, the engineer's console data, and the
/// check that lets a browser's WebSocket log in as the signed-in engineer. The routes and
/// their JSON are docs/PROTOCOL.md §1.3's "Web API"; every blocking call (bcrypt, the
/// store) runs on the relay's login thread pool, never on an event loop.
///
/// - **Origin.** Every POST must carry `Origin` of this relay (browsers send it), so
///   another site's page cannot post a form to it (login CSRF); SameSite=Strict cookies
///   are the second fence.
/// - **CSRF.** Every POST made with a session carries `X-CSRF-Token`
///   (``WebSessionPolicy/csrfToken(for:)``), and so does the WebSocket upgrade (as
///   `?csrf=`, since a browser's WebSocket cannot set headers).
/// - **Throttling.** Sign-in attempts go through the same ``AuthThrottle`` as agents'
///   logins: a wrong password or code charges its source, and a source that waits out a
///   penalty is answered 429 without a check.
final class WebApplication: Sendable {
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    /// The largest request body a route takes (16 KiB: a password, a code, a token).
    static let maximumBodyLength = 16 * 1024
    /// How many recent sessions the console lists.
    static let recentSessionLimit = 50

    let relay: Relay
    let verifier: WebSignInVerifier
    /// Where bcrypt runs (about 0.25 s a check): one thread of its own, so that a flood of
    /// passwords from many sources never delays agents' logins on the relay's login pool.
    let passwordPool: NIOThreadPool
    /// Password checks queued or running; beyond ``maximumPasswordChecks`` a sign-in is
    /// answered 503 at once instead of waiting behind them.
    private let passwordChecks = Atomic<Int>(0)
    static let maximumPasswordChecks = 8
    /// The relay certificate's fingerprint now (renewal changes it), for the customer's command.
    let fingerprint: @Sendable () -> String
    private let pending = NIOLockedValueBox(PendingSignIns())
    /// The admin API under `/api/admin/` (issue 14), which checks its callers itself.
    private var admin: AdminAPI { AdminAPI(relay: self.relay, application: self) }

    init(relay: Relay, sessions: WebSessionPolicy = WebSessionPolicy(), fingerprint: @escaping @Sendable () -> String) {
        self.relay = relay
        self.verifier = WebSignInVerifier(store: relay.store, sessions: sessions)
        self.fingerprint = fingerprint
        self.passwordPool = NIOThreadPool(numberOfThreads: 1)
        self.passwordPool.start()
    }

    /// Stops the password thread (the node calls it when it stops).
    func shutdown() async {
        try? await self.passwordPool.shutdownGracefully()
    }

    /// Runs a bcrypt step on ``passwordPool``, or refuses (503) when
    /// ``maximumPasswordChecks`` are queued already.
    private func checkingPassword<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        guard self.passwordChecks.add(1, ordering: .relaxed).newValue <= Self.maximumPasswordChecks else {
            self.passwordChecks.subtract(1, ordering: .relaxed)
            throw WebFailure(
                .serviceUnavailable, "the relay is checking many passwords right now; try again in a few seconds", headers: [("Retry-After", "2")])
        }
        defer { self.passwordChecks.subtract(1, ordering: .relaxed) }
        return try await self.passwordPool.runIfActive(work)
    }

    var pendingSignIns: Int { self.pending.withLockedValue { $0.count } }

    /// Drops what no browser can use any more: pending sign-ins past their 5 minutes, and
    /// in the store ended web sessions and expired links. Blocking; every 10 minutes on the
    /// background pool.
    func removeExpired() {
        let now = self.relay.now()
        self.pending.withLockedValue { $0.prune(now: now) }
        let policy = self.verifier.sessions
        do {
            _ = try self.relay.store.removeExpiredSignIns(
                now: now, idleBefore: now.addingTimeInterval(-policy.idleLimit), startedBefore: now.addingTimeInterval(-policy.absoluteLimit))
        } catch {
            self.relay.logger.warning("could not remove expired web sessions and sign-in links; tried again in 10 minutes", metadata: ["error": "\(error)"])
        }
    }

    // MARK: Routes

    func respond(to request: WebRequest) async -> WebReply {
        let route = (request.method, request.path)
        if request.path.hasPrefix(AdminAPI.prefix), request.method == .GET || request.method == .POST {
            return await self.answer(request) { try await self.admin.respond(to: request) }
        }
        switch route {
        case (.POST, _):
            guard Self.isSameOrigin(request.headers) else {
                return .error(.forbidden, "this relay takes form posts from its own pages only; open the console at its address and try again")
            }
        case (.GET, _):
            break
        default:
            return .error(.methodNotAllowed, "\(request.path) takes GET or POST only", headers: [("Allow", "GET, POST")])
        }
        return await self.answer(request) {
            switch route {
            case (.POST, "/api/signin/password"): return try await self.password(request)
            case (.POST, "/api/signin/link"): return try await self.link(request)
            case (.POST, "/api/signin/new-password"): return try await self.newPassword(request)
            case (.POST, "/api/signin/code"): return try await self.code(request)
            case (.POST, "/api/signout"): return try await self.signOut(request)
            case (.GET, "/api/me"): return try await self.me(request)
            case (.GET, "/api/hosts"): return try await self.hosts(request)
            case (.GET, "/api/sessions"): return try await self.sessions(request)
            default:
                return .error(.notFound, "there is no \(request.method) \(request.path) on this relay; the console is at /")
            }
        }
    }

    /// The reply of `route`, or of what it threw: a refusal's own, a sign-in error's, a
    /// store error's by its kind, or a 500 that says what to do.
    private func answer(_ request: WebRequest, _ route: () async throws -> WebReply) async -> WebReply {
        do {
            return try await route()
        } catch let error as WebFailure {
            return error.reply
        } catch let error as SignInError {
            return Self.reply(for: error)
        } catch let error as StoreError where error.kind != .unavailable {
            // What the person asked for cannot be done as asked: the store says why.
            let status: HTTPResponseStatus = error.kind == .notFound ? .notFound : error.kind == .conflict ? .conflict : .badRequest
            return .error(status, error.message)
        } catch let error as StoreError {
            self.relay.logger.error("web request: the store is unavailable", metadata: ["path": "\(request.path)", "error": "\(error)"])
            return .error(.serviceUnavailable, "the relay cannot use its database right now; try again in a moment", headers: [("Retry-After", "5")])
        } catch {
            self.relay.logger.error("web request failed", metadata: ["path": "\(request.path)", "error": "\(error)"])
            return .error(
                .internalServerError, "the relay could not answer (\(Self.summary(of: error))); try again, and tell the relay operator if it persists")
        }
    }

    /// Who a WebSocket upgrade (already found well-formed and same-origin by
    /// ``WebSocketHandshake``) comes from. With a session cookie: the session must be live
    /// and the `csrf` query parameter its token, and the answer is the engineer's id, who
    /// then logs in by ViewerAuth with an empty token. Without one: nil, and the connection
    /// logs in like an agent's (a support code; PROTOCOL.md §1.3).
    func authorizeWebSocket(headers: HTTPHeaders, uri: String) async -> Result<WebSessionProved?, WebRefusal> {
        let csrf = Self.queryValue("csrf", in: uri)
        guard headers["Cookie"].contains(where: { WebSessionPolicy.sessionID(cookieHeader: $0) != nil }) else {
            return csrf == nil ? .success(nil) : .failure(WebRefusal(.forbidden, "you are not signed in (or your session ended); sign in again"))
        }
        do {
            let (engineer, id) = try await self.session(headers)
            try WebSessionPolicy.checkCSRF(csrf, for: id)
            return .success(WebSessionProved(engineerID: engineer.id, sessionDigest: id.digest))
        } catch let error as SignInError {
            return .failure(WebRefusal(.forbidden, error.message))
        } catch let failure as WebFailure {
            // An ended or unknown session: sign in again (not a reason to retry).
            return .failure(WebRefusal(.forbidden, failure.text))
        } catch {
            return .failure(WebRefusal(.serviceUnavailable, "the relay could not check your session (\(Self.summary(of: error))); try again in a moment"))
        }
    }

    /// The engineer and session digest of a request's live session cookie, or nil (none,
    /// ended, unknown).
    func engineerOfSession(_ headers: HTTPHeaders) async -> WebSessionProved? {
        guard let (engineer, id) = try? await self.session(headers) else { return nil }
        return WebSessionProved(engineerID: engineer.id, sessionDigest: id.digest)
    }

    // MARK: Sign-in

    private struct PasswordForm: Decodable {
        let login: String
        let password: String
    }

    private struct LinkForm: Decodable { let token: String }
    private struct NewPasswordForm: Decodable { let password: String }
    private struct CodeForm: Decodable { let code: String }

    /// The next step, as the sign-in page reads it.
    private struct Next: Encodable {
        var next: String
        var login: String?
        var secret: String?
        var otpauth: String?
        var qrSVG: String?
        var recoveryCodes: [String]?
    }

    private func password(_ request: WebRequest) async throws -> WebReply {
        let form = try Self.decode(PasswordForm.self, request)
        try self.throttle(request)
        let (verifier, now) = (self.verifier, self.relay.now())
        let signIn: WebSignIn
        do {
            signIn = try await self.checkingPassword {
                try verifier.signIn(login: form.login, password: form.password, source: request.address, now: now)
            }
        } catch let error as SignInError {
            self.charge(error, request, account: "web:" + String(form.login.prefix(64)))
            throw error
        }
        return try await self.pendingReply(for: signIn, request)
    }

    private func link(_ request: WebRequest) async throws -> WebReply {
        let form = try Self.decode(LinkForm.self, request)
        try self.throttle(request)
        let (verifier, now) = (self.verifier, self.relay.now())
        let signIn: WebSignIn
        do {
            signIn = try await self.relay.threadPool.runIfActive { try verifier.openLink(token: form.token, source: request.address, now: now) }
        } catch let error as SignInError {
            self.charge(error, request, account: nil)
            throw error
        }
        return try await self.pendingReply(for: signIn, request)
    }

    private func newPassword(_ request: WebRequest) async throws -> WebReply {
        let form = try Self.decode(NewPasswordForm.self, request)
        return try await self.withPending(request) { signIn, now in
            let verifier = self.verifier
            try await self.onPool(&signIn, password: true) { working in try verifier.choosePassword(form.password, signIn: &working, now: now) }
        }
    }

    private func code(_ request: WebRequest) async throws -> WebReply {
        let form = try Self.decode(CodeForm.self, request)
        try self.throttle(request)
        var recoveryCodes: [String]?
        var started: WebSignInVerifier.StartedSession?
        var engineerID: String?
        let reply = try await self.withPending(request) { signIn, now in
            engineerID = signIn.engineerID
            let verifier = self.verifier
            do {
                (recoveryCodes, started) = try await self.onPool(&signIn) { working in
                    let codes = try verifier.submitCode(form.code, signIn: &working, source: request.address, now: now)
                    return (codes, try verifier.startSession(for: working, source: request.address, now: now))
                }
            } catch let error as SignInError {
                // Whoever reaches this step knows the password: watch the account too, as
                // for wrong passwords.
                let login = try? await signIn.engineerID.asyncMap { try await self.engineer(id: $0).login }
                self.charge(error, request, account: login.map { "web:" + String($0.prefix(64)) })
                throw error
            }
        }
        guard let started else { return reply }
        if let engineerID, let engineer = try? await self.engineer(id: engineerID) {
            self.relay.alerts.signedIn(engineer, address: request.address)
        }
        return .json(Next(next: "done", recoveryCodes: recoveryCodes), cookies: [started.cookie, PendingSignIns.removalCookie])
    }

    /// Runs `work` on the login pool with a copy of `signIn`, and keeps what it made of
    /// the sign-in whether it succeeded or threw (a wrong code counts either way).
    private func onPool<Result: Sendable>(
        _ signIn: inout WebSignIn, password: Bool = false, _ work: @escaping @Sendable (inout WebSignIn) throws -> Result
    ) async throws -> Result {
        let start = signIn
        let job: @Sendable () throws -> (WebSignIn, Swift.Result<Result, SignInError>) = {
            var working = start
            do {
                let value = try work(&working)
                return (working, .success(value))
            } catch let error as SignInError {
                return (working, .failure(error))
            }
        }
        let (updated, outcome) = try await password ? self.checkingPassword(job) : self.relay.threadPool.runIfActive(job)
        signIn = updated
        return try outcome.get()
    }

    private func signOut(_ request: WebRequest) async throws -> WebReply {
        let (_, id) = try await self.session(request.headers)
        try Self.checkCSRF(request, session: id)
        let store = self.relay.store
        try await self.relay.threadPool.runIfActive { try store.endWebSession(idDigest: id.digest) }
        return WebReply(status: .noContent, body: nil, cookies: [WebSessionPolicy.removalCookie])
    }

    /// A new pending sign-in's answer: its cookie, and what the page asks for next.
    private func pendingReply(for signIn: WebSignIn, _ request: WebRequest) async throws -> WebReply {
        let now = self.relay.now()
        let next = try await self.next(for: signIn)
        let id = self.pending.withLockedValue { $0.start(signIn, now: now) }
        return .json(next, cookies: [PendingSignIns.cookie(for: id)])
    }

    /// Runs `step` on the request's pending sign-in (taken out while it runs), and answers
    /// with the step that follows; a finished or ended sign-in is not put back.
    private func withPending(_ request: WebRequest, _ step: (inout WebSignIn, Date) async throws -> Void) async throws -> WebReply {
        let now = self.relay.now()
        guard let id = request.headers["Cookie"].lazy.compactMap(PendingSignIns.id(cookieHeader:)).first,
            var signIn = self.pending.withLockedValue({ $0.take(id, now: now) })
        else {
            throw WebFailure(
                .unauthorized, "this sign-in has expired or was finished in another tab; sign in again from the start",
                cookies: [PendingSignIns.removalCookie])
        }
        do {
            try await step(&signIn, now)
        } catch let error as SignInError {
            // A wrong code leaves the sign-in pending (with one attempt fewer); an ended one
            // (too many codes, too slow) starts over.
            if case .password = signIn.step {
                throw WebFailure(Self.status(for: error), error.message, cookies: [PendingSignIns.removalCookie])
            }
            self.pending.withLockedValue { $0.put(id, signIn) }
            throw error
        }
        if case .signedIn = signIn.step {
            return .json(Next(next: "done"))
        }
        self.pending.withLockedValue { $0.put(id, signIn) }
        return .json(try await self.next(for: signIn))
    }

    private func next(for signIn: WebSignIn) async throws -> Next {
        switch signIn.step {
        case .password: return Next(next: "password")
        case .secondFactor: return Next(next: "code")
        case .signedIn: return Next(next: "done")
        case .choosePassword(let engineerID):
            let engineer = try await self.engineer(id: engineerID)
            return Next(next: "password", login: engineer.login)
        case .enrolTwoFactor(let engineerID, let secret):
            let engineer = try await self.engineer(id: engineerID)
            let twoFactor = TwoFactor(secret: secret)
            let issuer = engineer.companyName.isEmpty ? "SupportRelay" : "SupportRelay (\(engineer.companyName))"
            let url = twoFactor.enrolmentURL(issuer: issuer, account: engineer.login)
            return Next(next: "enrol", login: engineer.login, secret: twoFactor.manualEntryKey, otpauth: url, qrSVG: try QRCode(url).svg())
        }
    }

    // MARK: Signed in

    private struct Me: Encodable {
        let engineerID: String
        let login: String
        let company: String
        let csrfToken: String
        /// The address browsers reached the relay by: also the agents' (one port).
        let relay: String
        let fingerprint: String
    }

    private func me(_ request: WebRequest) async throws -> WebReply {
        let (engineer, id) = try await self.session(request.headers)
        return .json(
            Me(
                engineerID: engineer.id, login: engineer.login, company: engineer.companyName, csrfToken: WebSessionPolicy.csrfToken(for: id),
                relay: request.headers.first(name: "Host") ?? "", fingerprint: self.fingerprint()))
    }

    private struct HostRow: Encodable {
        let id: String
        let name: String
        let status: String
        let lastSeen: Date?
    }

    private func hosts(_ request: WebRequest) async throws -> WebReply {
        let (engineer, _) = try await self.session(request.headers)
        let store = self.relay.store
        let hosts = try await self.relay.threadPool.runIfActive { try store.hosts(companyID: engineer.companyID) }
        let live = self.relay.pairing.withLockedValue { book in
            Dictionary(uniqueKeysWithValues: hosts.compactMap { host in book.isBusy(hostID: host.id, companyID: engineer.companyID).map { (host.id, $0) } })
        }
        let now = self.relay.now()
        let rows = hosts.sorted { ($0.name.lowercased(), $0.id) < ($1.name.lowercased(), $1.id) }.map { host in
            let busy = live[host.id]
            return HostRow(
                id: host.id, name: host.name, status: busy == nil ? "offline" : (busy! ? "busy" : "online"),
                lastSeen: busy == nil ? host.lastSeenAt : now)
        }
        return .json(["hosts": rows])
    }

    private struct SessionRow: Encodable {
        let id: String
        let host: String
        let mode: String
        let client: String
        let startedAt: Date
        let endedAt: Date?
        let endReason: String?
        let bytes: Int64
    }

    private func sessions(_ request: WebRequest) async throws -> WebReply {
        let (engineer, _) = try await self.session(request.headers)
        let store = self.relay.store
        let records = try await self.relay.threadPool.runIfActive {
            try store.recentSessions(companyID: engineer.companyID, engineerLogin: engineer.login, limit: Self.recentSessionLimit)
        }
        let rows = records.map { record in
            SessionRow(
                id: record.id, host: record.hostName, mode: record.mode.rawValue, client: record.viewerClient.rawValue,
                startedAt: Date(milliseconds: record.startedAt), endedAt: record.endedAt.map(Date.init(milliseconds:)),
                endReason: record.endReason.map(Self.words(for:)), bytes: record.counters.bytesToViewer + record.counters.bytesToHost)
        }
        return .json(["sessions": rows])
    }

    // MARK: Parts

    /// The signed-in engineer and session id of a request's cookie (401 otherwise).
    func session(_ headers: HTTPHeaders) async throws -> (Engineer, SignInSecret) {
        let cookie = headers["Cookie"].joined(separator: "; ")
        let (verifier, now) = (self.verifier, self.relay.now())
        do {
            return try await self.relay.threadPool.runIfActive { try verifier.session(cookieHeader: cookie.isEmpty ? nil : cookie, now: now) }
        } catch let error as SignInError {
            throw WebFailure(.unauthorized, error.message, cookies: [WebSessionPolicy.removalCookie])
        } catch let error as StoreError where error.kind == .notFound {
            throw WebFailure(.unauthorized, "your engineer account was removed; ask your relay's administrator", cookies: [WebSessionPolicy.removalCookie])
        }
    }

    private func engineer(id: String) async throws -> Engineer {
        let store = self.relay.store
        return try await self.relay.threadPool.runIfActive { try store.engineer(id: id) }
    }

    /// 429 while the source waits out a penalty (PROTOCOL.md §8.5's rule for agents).
    func throttle(_ request: WebRequest) throws {
        guard let wait = self.relay.retryAfter(source: request.source) else { return }
        self.relay.metrics.authThrottled.increment()
        throw WebFailure(
            .tooManyRequests, AuthThrottle.blockedMessage(retryAfter: wait, source: request.source),
            headers: [("Retry-After", "\(RetryWait.seconds(wait))")])
    }

    /// A wrong password, code or link charges its source, as a wrong agent credential does.
    private func charge(_ error: SignInError, _ request: WebRequest, account: String?) {
        guard error.kind == .wrongCredentials || error.kind == .replayedCode else { return }
        self.relay.metrics.authFailures.increment()
        let verdict = self.relay.throttle.withLockedValue { $0.recordFailure(source: request.source, account: account, now: .now()) }
        if let alert = verdict.accountAlert { self.relay.logger.warning("\(alert)") }
    }

    /// 403 unless the request carries its session's CSRF token.
    static func checkCSRF(_ request: WebRequest, session id: SignInSecret) throws {
        do {
            try WebSessionPolicy.checkCSRF(request.headers.first(name: WebSessionPolicy.csrfHeader), for: id)
        } catch let error as SignInError {
            throw WebFailure(.forbidden, error.message)
        }
    }

    static func decode<Form: Decodable>(_ type: Form.Type, _ request: WebRequest) throws -> Form {
        do {
            return try JSONDecoder().decode(Form.self, from: Data(request.body.readableBytesView))
        } catch {
            throw WebFailure(.badRequest, "the request is not the JSON \(request.path) takes; reload the page and try again")
        }
    }

    /// Whether a POST's `Origin` is this relay as the browser reached it.
    static func isSameOrigin(_ headers: HTTPHeaders) -> Bool {
        let origins = headers["Origin"]
        let hosts = headers["Host"]
        return origins.count == 1 && hosts.count == 1 && WebSocketHandshake.isSameOrigin(origin: origins[0], host: hosts[0])
    }

    /// The value of query parameter `name` in a request target, percent-decoded.
    static func queryValue(_ name: String, in uri: String) -> String? {
        guard let query = uri.split(separator: "?", maxSplits: 1).dropFirst().first else { return nil }
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            if parts.count == 2, parts[0] == name { return String(parts[1]).removingPercentEncoding }
        }
        return nil
    }

    static func status(for error: SignInError) -> HTTPResponseStatus {
        switch error.kind {
        case .malformed, .weakPassword: .badRequest
        default: .unauthorized
        }
    }

    static func reply(for error: SignInError) -> WebReply { .error(Self.status(for: error), error.message) }

    static func words(for reason: UsageRecord.EndReason) -> String {
        switch reason {
        case .normal: "ended normally"
        case .peerLeft: "the other side left"
        case .relayShutdown: "the relay shut down"
        case .idleTimeout: "idle too long"
        case .handshakeTimeout: "did not start in time"
        case .protocolError: "a protocol error"
        case .revoked: "access was revoked"
        case .relayRestart: "the relay restarted"
        case .declined: "the customer declined"
        case .other(let name): name.replacingOccurrences(of: "_", with: " ")
        }
    }

    static func summary(of error: any Error) -> String {
        (error as? StoreError)?.message ?? "\(type(of: error))"
    }
}

/// A route's refusal with its status, cookies and headers.
struct WebFailure: Error {
    let reply: WebReply
    let text: String

    init(_ status: HTTPResponseStatus, _ text: String, cookies: [String] = [], headers: [(String, String)] = []) {
        self.reply = .error(status, text, cookies: cookies, headers: headers)
        self.text = text
    }
}

extension Optional {
    fileprivate func asyncMap<T>(_ transform: (Wrapped) async throws -> T) async rethrows -> T? {
        guard let value = self else { return nil }
        return try await transform(value)
    }
}

extension Date {
    fileprivate init(milliseconds: Milliseconds) {
        self.init(timeIntervalSince1970: Double(milliseconds) / 1000)
    }
}
