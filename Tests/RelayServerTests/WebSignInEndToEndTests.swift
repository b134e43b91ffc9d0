import Foundation
import NIOCore
import RelayClient
import RelaySignIn
import RelayStore
import RelayTestSupport
import RelayWire
import Testing

@testable import RelayServer

/// Issue 13 item 2 over real TLS on loopback, by the JSON contract of the web API
/// (PROTOCOL.md §1.4): a one-time link, a new password, TOTP enrolment, sessions, CSRF and
/// Origin checks, throttling, and a signed-in browser's WebSocket logging the engineer in.
/// Requests are written by hand, as a browser would send them.
@Suite(.serialized) struct WebSignInEndToEndTests {
    static let password = "correct horse battery staple"

    /// One browser: a keep-alive connection and its cookie jar.
    final class Browser: @unchecked Sendable {
        let client: WebClient
        let host: String
        var cookies: [String: String] = [:]

        init(_ relay: TestRelay) async throws {
            self.client = try await WebClient.connect(to: relay)
            self.host = "localhost:\(relay.port)"
        }

        var cookieHeader: String { self.cookies.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "; ") }

        func send(_ method: String, _ path: String, json: String? = nil, csrf: String? = nil, origin: Bool = true) async throws -> WebClient.Response {
            var text = "\(method) \(path) HTTP/1.1\r\nHost: \(self.host)\r\n"
            if origin { text += "Origin: https://\(self.host)\r\n" }
            if !self.cookies.isEmpty { text += "Cookie: \(self.cookieHeader)\r\n" }
            if let csrf { text += "X-CSRF-Token: \(csrf)\r\n" }
            let body = json ?? ""
            if method == "POST" { text += "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n" }
            let response = try await self.client.request(text + "\r\n" + body)
            for cookie in response.cookies {
                let pair = cookie.prefix { $0 != ";" }.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                if cookie.contains("Max-Age=0") { self.cookies[String(pair[0])] = nil } else { self.cookies[String(pair[0])] = String(pair[1]) }
            }
            return response
        }

        func json(_ response: WebClient.Response) throws -> [String: Any] {
            try #require(try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any])
        }
    }

    /// A keyless engineer of ACME with a fresh one-time link; returns the link's token.
    static func newEngineer(_ relay: TestRelay, login: String) throws -> (Engineer, token: String) {
        let engineer = try relay.store.addEngineer(companyID: relay.acme.id, login: login, publicKey: nil, actor: "test")
        let link = try IssuedSignInLink.issue(for: engineer.id, baseURL: "https://localhost:\(relay.port)", store: relay.store)
        return (engineer, String(try #require(link.url.split(separator: "#").last)))
    }

    /// The authenticator app: the code of now for the key the enrolment page shows.
    static func code(manualKey: String, at date: Date = Date(), stepOffset: Int64 = 0) throws -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        var bits = 0
        var value = 0
        var bytes: [UInt8] = []
        for character in manualKey where character != " " {
            value = value << 5 | (try #require(alphabet.firstIndex(of: character)))
            bits += 5
            if bits >= 8 {
                bytes.append(UInt8(truncatingIfNeeded: value >> (bits - 8)))
                bits -= 8
            }
        }
        return TwoFactor(secret: String(decoding: bytes, as: UTF8.self)).code(step: TwoFactor.step(at: date) + stepOffset)
    }

    /// Through the link, a new password and enrolment; returns the manual key and the code used.
    static func enrol(_ browser: Browser, token: String) async throws -> (key: String, code: String, recovery: [String]) {
        let opened = try await browser.send("POST", "/api/signin/link", json: #"{"token":"\#(token)"}"#)
        #expect(opened.status == 200)
        #expect(try browser.json(opened)["next"] as? String == "password")
        let weak = try await browser.send("POST", "/api/signin/new-password", json: #"{"password":"short"}"#)
        #expect(weak.status == 400)
        let chosen = try await browser.send("POST", "/api/signin/new-password", json: #"{"password":"\#(Self.password)"}"#)
        let enrol = try browser.json(chosen)
        #expect(enrol["next"] as? String == "enrol")
        #expect((enrol["qrSVG"] as? String)?.hasPrefix("<svg") == true)
        #expect((enrol["otpauth"] as? String)?.hasPrefix("otpauth://totp/") == true)
        let key = try #require(enrol["secret"] as? String)
        let wrong = try await browser.send("POST", "/api/signin/code", json: #"{"code":"000000"}"#)
        #expect(wrong.status == 401)
        let code = try Self.code(manualKey: key)
        let done = try await browser.send("POST", "/api/signin/code", json: #"{"code":"\#(code)"}"#)
        #expect(done.status == 200)
        let recovery = try #require(try browser.json(done)["recoveryCodes"] as? [String])
        return (key, code, recovery)
    }

    @Test(.timeLimit(.minutes(2))) func aLinkLeadsToAPasswordTwoFactorAndASession() async throws {
        try await TestRelay.with { relay in
            let (engineer, token) = try Self.newEngineer(relay, login: "web.kim")
            let browser = try await Browser(relay)
            let (_, _, recovery) = try await Self.enrol(browser, token: token)
            #expect(recovery.count == RecoveryCodes.count)

            // The session cookie: __Host-, HttpOnly, Secure, SameSite=Strict; the pending one is gone.
            #expect(browser.cookies.keys.sorted() == [WebSessionPolicy.cookieName])
            let me = try await browser.send("GET", "/api/me")
            #expect(me.status == 200)
            let fields = try browser.json(me)
            #expect(fields["login"] as? String == "web.kim" && fields["engineerID"] as? String == engineer.id)
            #expect(fields["fingerprint"] as? String == relay.node.certificate.fingerprint)
            #expect(me.headers["cache-control"] == "no-store")
            let csrf = try #require(fields["csrfToken"] as? String)

            // The link worked once.
            let again = try await Browser(relay).send("POST", "/api/signin/link", json: #"{"token":"\#(token)"}"#)
            #expect(again.status == 401)

            // Signing out needs the CSRF token; then the session is gone.
            #expect(try await browser.send("POST", "/api/signout").status == 403)
            #expect(try await browser.send("POST", "/api/signout", csrf: (csrf.first == "x" ? "y" : "x") + csrf.dropFirst()).status == 403)
            #expect(try await browser.send("POST", "/api/signout", csrf: csrf).status == 204)
            #expect(browser.cookies.isEmpty)
            browser.cookies[WebSessionPolicy.cookieName] = "A" + String(repeating: "b", count: 42)
            #expect(try await browser.send("GET", "/api/me").status == 401)

            // Every step is in the access log.
            let events = try relay.store.accessLog(limit: 20).map { "\($0.event.rawValue):\($0.outcome.rawValue)" }
            #expect(events.contains("web_signin_link:accepted") && events.contains("web_totp:rejected") && events.contains("web_totp:accepted"))
        }
    }

    @Test(.timeLimit(.minutes(2))) func passwordAndCodeRefuseReplaysStrangersAndForgedRequests() async throws {
        try await TestRelay.with { relay in
            let (_, token) = try Self.newEngineer(relay, login: "web.lee")
            let (key, usedCode, recovery) = try await Self.enrol(try await Browser(relay), token: token)

            let browser = try await Browser(relay)
            // No Origin (a form another site posts without one is refused too): 403.
            #expect(try await browser.send("POST", "/api/signin/password", json: #"{"login":"web.lee","password":"x"}"#, origin: false).status == 403)
            let wrong = try await browser.send("POST", "/api/signin/password", json: #"{"login":"web.lee","password":"wrong password!"}"#)
            #expect(wrong.status == 401)
            #expect(String(buffer: wrong.body).contains("the login or the password is wrong"))
            let right = try await browser.send("POST", "/api/signin/password", json: #"{"login":"web.lee","password":"\#(Self.password)"}"#)
            #expect(try browser.json(right)["next"] as? String == "code")
            // The enrolment's code was used: refused even though it is still in its window.
            let replayed = try await browser.send("POST", "/api/signin/code", json: #"{"code":"\#(usedCode)"}"#)
            #expect(replayed.status == 401)
            #expect(String(buffer: replayed.body).contains("already used"))
            // A recovery code works, once.
            let recovered = try await browser.send("POST", "/api/signin/code", json: #"{"code":"\#(recovery[0])"}"#)
            #expect(recovered.status == 200)
            #expect(try await browser.send("GET", "/api/me").status == 200)
            _ = key

            // Malformed and oversized bodies, unknown routes.
            let other = try await Browser(relay)
            #expect(try await other.send("POST", "/api/signin/password", json: "{").status == 400)
            #expect(try await other.send("POST", "/api/signin/code", json: #"{"code":"123456"}"#).status == 401)  // no pending sign-in
            #expect(try await other.send("GET", "/api/nothing").status == 404)
            #expect(try await other.send("GET", "/api/hosts").status == 401)
            let big = String(repeating: "a", count: WebApplication.maximumBodyLength + 1)
            #expect(try await other.send("POST", "/api/signin/password", json: big).status == 413)
        }
    }

    @Test(.timeLimit(.minutes(2))) func wrongPasswordsAreThrottledBySource() async throws {
        try await TestRelay.with({ $0.sourcePenalties.freeFailures = 1 }) { relay in
            let browser = try await Browser(relay)
            var statuses: [Int] = []
            for _ in 0..<4 {
                let response = try await browser.send("POST", "/api/signin/password", json: #"{"login":"nobody","password":"wrong password!"}"#)
                statuses.append(response.status)
                if response.status == 429 {
                    #expect(response.headers["retry-after"] != nil)
                    break
                }
            }
            #expect(statuses.first == 401 && statuses.last == 429)
        }
    }

    /// A browser opens several keep-alive connections per page. Once a connection has
    /// carried a live session cookie it counts as authenticated, so a signed-in engineer's
    /// pages never use up the source's room for connections that have not logged in.
    @Test(.timeLimit(.minutes(2))) func aSignedInBrowsersConnectionsDoNotFillTheUnauthenticatedCap() async throws {
        try await TestRelay.with({ $0.admission.maximumUnauthenticatedPerSource = 3 }) { relay in
            let (_, token) = try Self.newEngineer(relay, login: "web.tabs")
            let browser = try await Browser(relay)
            _ = try await Self.enrol(browser, token: token)
            #expect(try await browser.send("GET", "/api/me").status == 200)
            var held: [Browser] = [browser]
            for _ in 0..<5 {
                let tab = try await Browser(relay)
                tab.cookies = browser.cookies
                #expect(try await tab.send("GET", "/app.css").status == 200)
                held.append(tab)
                #expect(await eventually(within: .seconds(2)) { relay.node.relay.admission.withLockedValue { $0.unauthenticated } == 0 })
            }
            // Six connections open from one address with a cap of 3 not yet logged in: a
            // seventh still gets its answer.
            let another = try await Browser(relay)
            another.cookies = browser.cookies
            #expect(try await another.send("GET", "/api/me").status == 200)
            // Without a session, connections still count: the fourth waiting one is refused.
            var strangers: [WebClient] = []
            for _ in 0..<3 { strangers.append(try await WebClient.connect(to: relay)) }
            // Refused at the accept: the TLS handshake or the first read fails.
            var closed = false
            do {
                let refused = try await WebClient.connect(to: relay)
                closed = (try? await refused.request("GET /app.css HTTP/1.1\r\nHost: \(browser.host)\r\n\r\n")) == nil
            } catch {
                closed = true
            }
            #expect(closed)
            _ = (held, strangers)
        }
    }

    /// A signed-in page's WebSocket logs the engineer in without a key or token, pairs by
    /// support code with a TLS host, and the usage history says `browser`.
    @Test(.timeLimit(.minutes(2))) func aSignedInWebSocketLogsTheEngineerIn() async throws {
        try await TestRelay.with { relay in
            let (engineer, token) = try Self.newEngineer(relay, login: "web.park")
            let browser = try await Browser(relay)
            _ = try await Self.enrol(browser, token: token)
            let csrf = try #require(try browser.json(try await browser.send("GET", "/api/me"))["csrfToken"] as? String)
            let hostList = try browser.json(try await browser.send("GET", "/api/hosts"))["hosts"] as? [[String: Any]]
            #expect(hostList?.map { $0["name"] as? String } == ["회계팀 PC-03"])
            #expect(hostList?.first?["status"] as? String == "offline")

            // The cookie without its CSRF token, or with another's, is refused.
            let forged = try await WebClient.connect(to: relay)
            #expect(try await forged.upgrade(host: browser.host, target: "/ws?csrf=nope", cookie: browser.cookieHeader).status == 403)
            let bare = try await WebClient.connect(to: relay)
            #expect(try await bare.upgrade(host: browser.host, cookie: browser.cookieHeader).status == 403)
            let socket = try await WebClient.connect(to: relay)
            let target = "/ws?csrf=" + (csrf.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? csrf)
            #expect(try await socket.upgrade(host: browser.host, target: target, cookie: browser.cookieHeader).status == 101)
            try await socket.sendMessage(.hello(Hello(role: .viewer, capabilities: .all, software: "supportrelay-web/1")))
            guard case .helloAck = try await socket.readMessage() else { throw TestFailure("expected HelloAck") }
            try await socket.sendMessage(.viewerAuth(.key(.newSupportCode)))
            guard case .codeIssued(let issued) = try await socket.readMessage() else { throw TestFailure("expected CodeIssued") }
            try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { host in
                try await host.hello(role: .host)
                guard case .paired(let paired) = try await host.authenticate(host: .supportCode(issued.code)) else {
                    throw TestFailure("expected Paired")
                }
                #expect(paired.peerName == "web.park")
                guard case .paired(let viewerSide) = try await socket.readMessage() else { throw TestFailure("expected Paired") }
                #expect(viewerSide.sessionID == paired.sessionID)
                try await host.send(.bye(Bye(reason: .normal, text: "customer closed")))
                let id = paired.sessionID.description
                #expect(await eventually { (try? relay.store.usageRecord(id: id))??.endedAt != nil })
                let record = try #require(try relay.store.usageRecord(id: id))
                #expect(record.viewerClient == .browser && record.engineerLogin == "web.park")
            }
            let sessions = try browser.json(try await browser.send("GET", "/api/sessions"))["sessions"] as? [[String: Any]]
            #expect(sessions?.first?["client"] as? String == "browser")
            #expect(sessions?.first?["mode"] as? String == "attended")
            #expect(try relay.store.accessLog(limit: 50).contains { $0.event == .webSession && $0.outcome == .accepted && $0.subject == engineer.login })
        }
    }
}
