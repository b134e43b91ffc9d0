import Foundation
import RelaySignIn

/// Sign-ins under way in browsers, between the password and the code: each behind a short
/// cookie of its own, so that nothing about a half-finished sign-in is stored in the
/// database or trusted from the browser. Pure; the web application keeps one in a lock.
///
/// - A pending sign-in lasts ``WebSignIn/pendingLimit`` (the cookie's Max-Age too).
/// - ``take(_:now:)`` removes it while a request works on it, so two requests of one
///   browser (or a stolen cookie) cannot spend one sign-in's code attempts in parallel;
///   the request puts it back (``put(_:_:)``) when it is still pending.
/// - At most ``limit`` are held: a flood of passwords that are right cannot grow memory
///   without bound (the oldest go first).
struct PendingSignIns {
    /// The cookie's name: `__Host-` (Secure, Path=/, no Domain), HttpOnly, SameSite=Strict.
    static let cookieName = "__Host-supportrelay-signin"

    var limit = 10_000
    private var entries: [SignInSecret: WebSignIn] = [:]

    var count: Int { self.entries.count }

    /// Holds `signIn` under a new id, for the response's cookie.
    mutating func start(_ signIn: WebSignIn, now: Date) -> SignInSecret {
        self.prune(now: now)
        if self.entries.count >= self.limit, let oldest = self.entries.min(by: { $0.value.since < $1.value.since })?.key {
            self.entries[oldest] = nil
        }
        let id = SignInSecret()
        self.entries[id] = signIn
        return id
    }

    /// Removes and returns the sign-in of `id`, if it is still pending at `now`.
    mutating func take(_ id: SignInSecret, now: Date) -> WebSignIn? {
        guard let signIn = self.entries.removeValue(forKey: id) else { return nil }
        guard now.timeIntervalSince(signIn.since) < WebSignIn.pendingLimit else { return nil }
        return signIn
    }

    /// Puts back a sign-in taken with ``take(_:now:)`` that waits for its next step.
    mutating func put(_ id: SignInSecret, _ signIn: WebSignIn) {
        self.entries[id] = signIn
    }

    /// Drops every sign-in whose step waited longer than ``WebSignIn/pendingLimit``.
    mutating func prune(now: Date) {
        self.entries = self.entries.filter { now.timeIntervalSince($0.value.since) < WebSignIn.pendingLimit }
    }

    /// The `Set-Cookie` value for pending sign-in `id`.
    static func cookie(for id: SignInSecret) -> String {
        "\(Self.cookieName)=\(id.value); Path=/; Max-Age=\(Int(WebSignIn.pendingLimit)); HttpOnly; Secure; SameSite=Strict"
    }

    /// The `Set-Cookie` value that removes the cookie.
    static let removalCookie = "\(cookieName)=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict"

    /// The pending sign-in's id in a `Cookie` header, if it holds one of the right form.
    static func id(cookieHeader: String) -> SignInSecret? {
        for pair in cookieHeader.split(separator: ";") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, parts[0].trimmingCharacters(in: .whitespaces) == Self.cookieName else { continue }
            return SignInSecret(received: parts[1].trimmingCharacters(in: .whitespaces))
        }
        return nil
    }
}
