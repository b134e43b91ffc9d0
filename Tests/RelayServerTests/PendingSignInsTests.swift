import Foundation
import RelaySignIn
import Testing

@testable import RelayServer

/// The half-finished sign-ins a relay holds between the password and the code: taken out
/// while a request works on them, gone after five minutes, bounded in number. Virtual time.
@Suite struct PendingSignInsTests {
    static let start = Date(timeIntervalSince1970: 1_800_000_000)

    @Test func aSignInIsTakenOnceAndPutBack() throws {
        var pending = PendingSignIns()
        let id = pending.start(WebSignIn(acceptedLinkFor: "en-1", now: Self.start), now: Self.start)
        let held = pending.take(id, now: Self.start.addingTimeInterval(10))
        let taken = try #require(held)
        #expect(taken.step == .choosePassword(engineerID: "en-1"))
        // While a request holds it, a second request of the same cookie finds nothing.
        #expect(pending.take(id, now: Self.start.addingTimeInterval(11)) == nil)
        pending.put(id, taken)
        #expect(pending.take(id, now: Self.start.addingTimeInterval(12)) != nil)
    }

    @Test func aSignInExpiresAfterItsPendingLimit() {
        var pending = PendingSignIns()
        let id = pending.start(WebSignIn(acceptedLinkFor: "en-1", now: Self.start), now: Self.start)
        #expect(pending.take(id, now: Self.start.addingTimeInterval(WebSignIn.pendingLimit)) == nil)
        let other = pending.start(WebSignIn(acceptedLinkFor: "en-2", now: Self.start), now: Self.start)
        pending.prune(now: Self.start.addingTimeInterval(WebSignIn.pendingLimit + 1))
        #expect(pending.count == 0)
        #expect(pending.take(other, now: Self.start) == nil)
    }

    @Test func theOldestGoWhenTheLimitIsReached() {
        var pending = PendingSignIns()
        pending.limit = 3
        let ids = (0..<4).map { index in
            let at = Self.start.addingTimeInterval(Double(index))
            return pending.start(WebSignIn(acceptedLinkFor: "en-\(index)", now: at), now: at)
        }
        #expect(pending.count == 3)
        #expect(pending.take(ids[0], now: Self.start.addingTimeInterval(5)) == nil)
        #expect(pending.take(ids[3], now: Self.start.addingTimeInterval(5)) != nil)
    }

    @Test func theCookieIsHostOnlyHttpOnlyAndStrict() throws {
        let id = SignInSecret()
        let cookie = PendingSignIns.cookie(for: id)
        #expect(cookie.hasPrefix("__Host-supportrelay-signin=\(id.value);"))
        #expect(cookie.contains("HttpOnly") && cookie.contains("Secure") && cookie.contains("SameSite=Strict") && cookie.contains("Path=/"))
        #expect(!cookie.contains("Domain"))
        #expect(PendingSignIns.id(cookieHeader: "a=b; __Host-supportrelay-signin=\(id.value)") == id)
        #expect(PendingSignIns.id(cookieHeader: "__Host-supportrelay-signin=short") == nil)
    }
}
