internal import Crypto
public import Foundation

/// The rules of web sessions: expiry, the cookie, CSRF tokens.
///
/// A session's id is a ``SignInSecret`` in a cookie (`__Host-` prefix: Secure, Path=/, no
/// Domain, so no sibling host can set or read it; HttpOnly, so page scripts cannot read
/// it; SameSite=Strict, so no other site's page sends it). The store keeps the id's
/// digest with the session's start and last use.
public struct WebSessionPolicy: Sendable {
    /// The cookie's name.
    public static let cookieName = "__Host-supportrelay-session"
    /// The header a state-changing request carries its CSRF token in.
    public static let csrfHeader = "X-CSRF-Token"

    /// A session unused this long has ended (30 minutes).
    public var idleLimit: TimeInterval
    /// A session this old has ended however busy (12 hours): the engineer signs in again.
    public var absoluteLimit: TimeInterval

    public init(idleLimit: TimeInterval = 30 * 60, absoluteLimit: TimeInterval = 12 * 60 * 60) {
        self.idleLimit = idleLimit
        self.absoluteLimit = absoluteLimit
    }

    /// Throws ``SignInError/Kind/expired`` when a session started at `createdAt` and last
    /// used at `lastSeenAt` has ended by `now`. A session that passes is used at `now`:
    /// the caller stores `now` as its last use.
    public func check(createdAt: Date, lastSeenAt: Date, now: Date) throws {
        if now.timeIntervalSince(createdAt) >= self.absoluteLimit {
            throw SignInError(.expired, "your session ended after \(Self.words(self.absoluteLimit)), however busy; sign in again")
        }
        if now.timeIntervalSince(lastSeenAt) >= self.idleLimit {
            throw SignInError(.expired, "your session ended after \(Self.words(self.idleLimit)) without use; sign in again")
        }
    }

    /// The `Set-Cookie` value that starts session `id`. Max-Age is the absolute limit; the
    /// idle limit is the relay's to enforce (a cookie cannot slide without a response).
    public func cookie(for id: SignInSecret) -> String {
        "\(Self.cookieName)=\(id.value); Path=/; Max-Age=\(Int(self.absoluteLimit)); HttpOnly; Secure; SameSite=Strict"
    }

    /// The `Set-Cookie` value that removes the cookie (sign-out, an ended session).
    public static let removalCookie = "\(cookieName)=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict"

    /// The session id in a `Cookie` request header, if it holds one of the right form.
    public static func sessionID(cookieHeader: String) -> SignInSecret? {
        for pair in cookieHeader.split(separator: ";") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, parts[0].trimmingCharacters(in: .whitespaces) == Self.cookieName else { continue }
            return SignInSecret(received: parts[1].trimmingCharacters(in: .whitespaces))
        }
        return nil
    }

    /// The CSRF token of session `id`: HMAC-SHA-256 of a fixed label under the session id,
    /// base64url. The page gets it in its HTML and sends it in ``csrfHeader``; another
    /// site can neither read it nor derive it, and the relay stores nothing for it.
    public static func csrfToken(for id: SignInSecret) -> String {
        let key = SymmetricKey(data: Data(id.value.utf8))
        return SignInSecret.base64url(Data(HMAC<SHA256>.authenticationCode(for: Data("supportrelay web csrf v1".utf8), using: key)))
    }

    /// Throws unless `token` (the request's ``csrfHeader``, nil when missing) is session
    /// `id`'s CSRF token. For every request that changes something (POST, and the
    /// WebSocket upgrade, which browsers send cross-site with cookies).
    public static func checkCSRF(_ token: String?, for id: SignInSecret) throws {
        guard let token else {
            throw SignInError(.wrongCredentials, "the request has no CSRF token; reload the page and try again")
        }
        guard constantTimeEqual(Array(token.utf8), Array(Self.csrfToken(for: id).utf8)) else {
            throw SignInError(.wrongCredentials, "the request's CSRF token does not belong to your session; reload the page and try again")
        }
    }

    static func words(_ interval: TimeInterval) -> String {
        let minutes = Int(interval / 60)
        if minutes % 60 == 0 { return minutes == 60 ? "1 hour" : "\(minutes / 60) hours" }
        return minutes == 1 ? "1 minute" : "\(minutes) minutes"
    }
}

/// The rules of one-time sign-in links (`https://HOST:PORT/signin#TOKEN`): what
/// `relay-server engineer add` and `engineer signin-link` print for a first sign-in or a
/// reset. The token sits in the fragment, which browsers never send to a server or in a
/// Referer: the page posts it.
public struct SignInLinkPolicy: Sendable {
    /// How long a link works (24 hours).
    public var lifetime: TimeInterval

    public init(lifetime: TimeInterval = 24 * 60 * 60) {
        self.lifetime = lifetime
    }

    /// When a link issued at `issuedAt` stops working.
    public func expiry(issuedAt: Date) -> Date { issuedAt.addingTimeInterval(self.lifetime) }

    /// The link for `token` on the relay's web address `baseURL` (`https://host:port`).
    public static func url(baseURL: String, token: SignInSecret) -> String {
        var base = baseURL
        while base.hasSuffix("/") { base.removeLast() }
        return "\(base)/signin#\(token.value)"
    }

    /// Throws ``SignInError/Kind/expired`` when a link that expires at `expiresAt` no
    /// longer works at `now`.
    public func check(expiresAt: Date, now: Date) throws {
        if now >= expiresAt {
            throw SignInError(.expired, "this sign-in link has expired; ask your relay's administrator for a new one (`relay-server engineer signin-link ID`)")
        }
    }
}
