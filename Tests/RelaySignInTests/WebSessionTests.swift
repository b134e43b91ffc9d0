import Foundation
import RelaySignIn
import Testing

@Suite("Web sessions, sign-in links, recovery codes, secrets")
struct WebSessionTests {
    let start = Date(timeIntervalSince1970: 1_800_000_000)
    let policy = WebSessionPolicy()

    @Test("idle expiry after 30 minutes without use, absolute after 12 hours however busy")
    func expiry() throws {
        try self.policy.check(createdAt: self.start, lastSeenAt: self.start, now: self.start.addingTimeInterval(29 * 60 + 59))
        let idle = #expect(throws: SignInError.self) {
            try self.policy.check(createdAt: self.start, lastSeenAt: self.start, now: self.start.addingTimeInterval(30 * 60))
        }
        #expect(idle?.kind == .expired)
        #expect(idle?.message == "your session ended after 30 minutes without use; sign in again")
        // Used every 10 minutes: alive until 12 hours after the start, then over.
        let busyEnd = self.start.addingTimeInterval(12 * 3600)
        try self.policy.check(createdAt: self.start, lastSeenAt: busyEnd.addingTimeInterval(-600), now: busyEnd.addingTimeInterval(-1))
        let absolute = #expect(throws: SignInError.self) {
            try self.policy.check(createdAt: self.start, lastSeenAt: busyEnd.addingTimeInterval(-600), now: busyEnd)
        }
        #expect(absolute?.message == "your session ended after 12 hours, however busy; sign in again")
    }

    @Test("the cookie is HttpOnly, Secure, SameSite=Strict, host-only; its id is read back")
    func cookie() throws {
        let id = SignInSecret()
        let cookie = self.policy.cookie(for: id)
        #expect(cookie == "__Host-supportrelay-session=\(id.value); Path=/; Max-Age=43200; HttpOnly; Secure; SameSite=Strict")
        #expect(WebSessionPolicy.removalCookie.contains("Max-Age=0"))
        #expect(WebSessionPolicy.sessionID(cookieHeader: "theme=dark; __Host-supportrelay-session=\(id.value); x=y") == id)
        #expect(WebSessionPolicy.sessionID(cookieHeader: "__Host-supportrelay-session=short") == nil)
        #expect(WebSessionPolicy.sessionID(cookieHeader: "supportrelay-session=\(id.value)") == nil)
    }

    @Test("CSRF tokens: the session's own passes; missing or another session's is refused")
    func csrf() throws {
        let id = SignInSecret()
        let other = SignInSecret()
        let token = WebSessionPolicy.csrfToken(for: id)
        #expect(token.count == 43)
        #expect(token == WebSessionPolicy.csrfToken(for: id))
        try WebSessionPolicy.checkCSRF(token, for: id)
        let missing = #expect(throws: SignInError.self) { try WebSessionPolicy.checkCSRF(nil, for: id) }
        #expect(missing?.message.contains("no CSRF token") == true)
        let foreign = #expect(throws: SignInError.self) { try WebSessionPolicy.checkCSRF(WebSessionPolicy.csrfToken(for: other), for: id) }
        #expect(foreign?.kind == .wrongCredentials)
    }

    @Test("sign-in links: the token in the fragment, 24 hours")
    func links() throws {
        let token = SignInSecret()
        #expect(SignInLinkPolicy.url(baseURL: "https://relay.example:8443/", token: token) == "https://relay.example:8443/signin#\(token.value)")
        let links = SignInLinkPolicy()
        let expiry = links.expiry(issuedAt: self.start)
        #expect(expiry == self.start.addingTimeInterval(86_400))
        try links.check(expiresAt: expiry, now: expiry.addingTimeInterval(-1))
        let late = #expect(throws: SignInError.self) { try links.check(expiresAt: expiry, now: expiry) }
        #expect(late?.kind == .expired)
        #expect(late?.message.contains("signin-link") == true)
    }

    @Test("secrets: 256 bits in 43 characters, a SHA-256 digest; received values of another form are refused")
    func secrets() {
        let a = SignInSecret()
        #expect(a.value.count == 43)
        #expect(a.digest.count == 32)
        #expect(a != SignInSecret())
        #expect(SignInSecret(received: a.value)?.digest == a.digest)
        #expect(SignInSecret(received: a.value + "A") == nil)
        #expect(SignInSecret(received: String(a.value.dropLast()) + "=") == nil)
    }

    @Test("recovery codes: ten different, digests ignore case and dashes")
    func recoveryCodes() throws {
        let codes = RecoveryCodes.make()
        #expect(codes.count == 10)
        #expect(Set(codes).count == 10)
        let code = try #require(codes.first)
        #expect(code.count == 19)
        #expect(code.split(separator: "-").count == 4)
        let digest = try #require(RecoveryCodes.digest(of: code))
        #expect(RecoveryCodes.digest(of: code.uppercased().replacingOccurrences(of: "-", with: " ")) == digest)
        #expect(RecoveryCodes.digest(of: codes[1]) != digest)
        #expect(RecoveryCodes.digest(of: "0000-0000-0000-0000") == nil)
        #expect(RecoveryCodes.digest(of: String(code.dropLast())) == nil)
    }
}
