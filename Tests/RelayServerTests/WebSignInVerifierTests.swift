import Crypto
import Foundation
import RelaySignIn
import RelayStore
import RelayTestSupport
import Testing

@testable import RelayServer

/// Web sign-in against a real store in virtual time: links, passwords, TOTP with replay
/// protection, recovery codes, sessions, and the access log of every attempt.
@Suite struct WebSignInVerifierTests {
    final class Clock: @unchecked Sendable {
        var now = Date(timeIntervalSince1970: 1_800_000_000)
    }

    struct Fixture {
        let store: SQLStore
        let clock: Clock
        let verifier: WebSignInVerifier
        let engineer: Engineer
        let link: SignInSecret
    }

    static let password = "correct horse battery staple"

    static func withFixture<T>(_ body: (Fixture) throws -> T) throws -> T {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("signin-verifier-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let clock = Clock()
        let store = try SQLStore(dataDirectory: directory, now: { clock.now })
        let (acme, _) = try store.addCompany(name: "Acme")
        let engineer = try store.addEngineer(companyID: acme.id, login: "kim", publicKey: Curve25519.Signing.PrivateKey().publicKey)
        let link = SignInSecret()
        try store.issueSignInLink(
            SignInLink(digest: link.digest, engineerID: engineer.id, createdAt: clock.now, expiresAt: SignInLinkPolicy().expiry(issuedAt: clock.now)),
            actor: "cli")
        let verifier = WebSignInVerifier(store: store, rules: PasswordRules(cost: 4))
        return try body(Fixture(store: store, clock: clock, verifier: verifier, engineer: engineer, link: link))
    }

    /// From the link to a signed-in session; returns the enrolled secret and recovery codes.
    @discardableResult
    static func enrol(_ f: Fixture) throws -> (TwoFactor, [String]) {
        var signIn = try f.verifier.openLink(token: f.link.value, source: "10.0.0.1", now: f.clock.now)
        try f.verifier.choosePassword(Self.password, signIn: &signIn, now: f.clock.now)
        guard case .enrolTwoFactor(_, let secret) = signIn.step else { throw TestFailure("no enrolment after the password: \(signIn.step)") }
        let twoFactor = TwoFactor(secret: secret)
        let codes = try #require(
            try f.verifier.submitCode(twoFactor.code(step: TwoFactor.step(at: f.clock.now)), signIn: &signIn, source: "10.0.0.1", now: f.clock.now))
        #expect(signIn.step == .signedIn(engineerID: f.engineer.id))
        return (twoFactor, codes)
    }

    static func events(_ store: SQLStore) throws -> [String] {
        try store.accessLog(limit: 100).reversed().map { "\($0.event.rawValue) \($0.outcome.rawValue)\($0.detail.map { " \($0)" } ?? "")" }
    }

    @Test func aLinkSetsThePasswordAndEnrolsTwoFactor() throws {
        try Self.withFixture { f in
            let (_, codes) = try Self.enrol(f)
            #expect(codes.count == 10)
            let credentials = try f.store.webCredentials(engineerID: f.engineer.id)
            #expect(credentials.passwordHash?.hasPrefix("$2b$04$") == true)
            #expect(credentials.recoveryCodesLeft == 10)
            #expect(try Self.events(f.store) == ["web_signin_link accepted", "web_totp accepted enrolled"])
            // The link worked once.
            let again = #expect(throws: SignInError.self) { try f.verifier.openLink(token: f.link.value, source: "10.0.0.1", now: f.clock.now) }
            #expect(again?.kind == .wrongCredentials)
        }
    }

    @Test func passwordThenTOTPWithReplayRefused() throws {
        try Self.withFixture { f in
            let (twoFactor, _) = try Self.enrol(f)
            let enrolledStep = TwoFactor.step(at: f.clock.now)
            // Same 30 s step: the enrolment's code is spent.
            f.clock.now += 5
            var signIn = try f.verifier.signIn(login: "kim", password: Self.password, source: "10.0.0.2", now: f.clock.now)
            #expect(signIn.step == .secondFactor(engineerID: f.engineer.id))
            let replay = #expect(throws: SignInError.self) {
                try f.verifier.submitCode(twoFactor.code(step: enrolledStep), signIn: &signIn, source: "10.0.0.2", now: f.clock.now)
            }
            #expect(replay?.kind == .replayedCode)
            let wrong = #expect(throws: SignInError.self) { try f.verifier.submitCode("000000", signIn: &signIn, source: "10.0.0.2", now: f.clock.now) }
            #expect(wrong?.kind == .wrongCredentials || wrong?.kind == .replayedCode)
            #expect(signIn.codeFailures == 2)
            // The next step's code, 30 s on.
            f.clock.now += 30
            #expect(try f.verifier.submitCode(twoFactor.code(step: enrolledStep + 1), signIn: &signIn, source: "10.0.0.2", now: f.clock.now) == nil)
            #expect(signIn.step == .signedIn(engineerID: f.engineer.id))
            // Another browser with the same code in the same step: refused.
            var other = try f.verifier.signIn(login: "kim", password: Self.password, source: "10.0.0.3", now: f.clock.now)
            let raced = #expect(throws: SignInError.self) {
                try f.verifier.submitCode(twoFactor.code(step: enrolledStep + 1), signIn: &other, source: "10.0.0.3", now: f.clock.now)
            }
            #expect(raced?.kind == .replayedCode)
            #expect(try Self.events(f.store).suffix(6).first == "web_password accepted")
            #expect(try Self.events(f.store).contains("web_totp rejected replayed_code"))
        }
    }

    @Test func wrongPasswordsAndUnknownLoginsAreRefusedAndLogged() throws {
        try Self.withFixture { f in
            try Self.enrol(f)
            for (login, password) in [("kim", "correct horse battery stapler"), ("nobody", Self.password)] {
                let error = #expect(throws: SignInError.self) { try f.verifier.signIn(login: login, password: password, source: "10.0.0.9", now: f.clock.now) }
                #expect(error?.kind == .wrongCredentials)
                #expect(error?.message.contains("the login or the password is wrong") == true)
            }
            let rejected = try f.store.accessLog(limit: 2)
            #expect(rejected.allSatisfy { $0.event == .webPassword && $0.outcome == .rejected && $0.sourceAddress == "10.0.0.9" })
            #expect(Set(rejected.compactMap(\.subject)) == ["kim", "nobody"])
        }
    }

    @Test func aRecoveryCodeWorksOnce() throws {
        try Self.withFixture { f in
            let (_, codes) = try Self.enrol(f)
            var first = try f.verifier.signIn(login: "kim", password: Self.password, source: "10.0.0.2", now: f.clock.now)
            #expect(try f.verifier.submitCode(codes[0].uppercased(), signIn: &first, source: "10.0.0.2", now: f.clock.now) == nil)
            #expect(first.step == .signedIn(engineerID: f.engineer.id))
            var second = try f.verifier.signIn(login: "kim", password: Self.password, source: "10.0.0.2", now: f.clock.now)
            let reused = #expect(throws: SignInError.self) { try f.verifier.submitCode(codes[0], signIn: &second, source: "10.0.0.2", now: f.clock.now) }
            #expect(reused?.message.contains("used already") == true)
            #expect(try f.store.webCredentials(engineerID: f.engineer.id).recoveryCodesLeft == 9)
        }
    }

    @Test func anExpiredLinkIsRefusedAndUsedUp() throws {
        try Self.withFixture { f in
            f.clock.now += 86_400
            let late = #expect(throws: SignInError.self) { try f.verifier.openLink(token: f.link.value, source: "10.0.0.1", now: f.clock.now) }
            #expect(late?.kind == .expired)
            let events = try Self.events(f.store)
            #expect(events == ["web_signin_link rejected expired"])
            #expect(throws: SignInError.self) { try f.verifier.openLink(token: "not a token", source: "10.0.0.1", now: f.clock.now) }
        }
    }

    @Test func aStaleEnrolmentEnrolsNothing() throws {
        try Self.withFixture { f in
            var signIn = try f.verifier.openLink(token: f.link.value, source: "10.0.0.1", now: f.clock.now)
            try f.verifier.choosePassword(Self.password, signIn: &signIn, now: f.clock.now)
            guard case .enrolTwoFactor(_, let secret) = signIn.step else { throw TestFailure("no enrolment: \(signIn.step)") }
            f.clock.now += WebSignIn.pendingLimit
            let code = TwoFactor(secret: secret).code(step: TwoFactor.step(at: f.clock.now))
            let stale = #expect(throws: SignInError.self) { try f.verifier.submitCode(code, signIn: &signIn, source: "10.0.0.1", now: f.clock.now) }
            #expect(stale?.kind == .expired)
            #expect(signIn.step == .password)
            let credentials = try f.store.webCredentials(engineerID: f.engineer.id)
            #expect(credentials.totpSecret == nil && credentials.recoveryCodesLeft == 0)
        }
    }

    @Test func sessionsCarryTheEngineerAndEndWhenIdle() throws {
        try Self.withFixture { f in
            var signIn = try f.verifier.openLink(token: f.link.value, source: "10.0.0.1", now: f.clock.now)
            #expect(throws: SignInError.self) { try f.verifier.startSession(for: signIn, source: "10.0.0.1", now: f.clock.now) }
            try f.verifier.choosePassword(Self.password, signIn: &signIn, now: f.clock.now)
            guard case .enrolTwoFactor(_, let secret) = signIn.step else { throw TestFailure("no enrolment: \(signIn.step)") }
            _ = try f.verifier.submitCode(
                TwoFactor(secret: secret).code(step: TwoFactor.step(at: f.clock.now)), signIn: &signIn, source: "10.0.0.1", now: f.clock.now)
            let started = try f.verifier.startSession(for: signIn, source: "10.0.0.1", now: f.clock.now)
            #expect(started.cookie.contains("HttpOnly; Secure; SameSite=Strict"))
            let header = "\(WebSessionPolicy.cookieName)=\(started.id.value)"
            f.clock.now += 29 * 60
            let (engineer, id) = try f.verifier.session(cookieHeader: header, now: f.clock.now)
            #expect(engineer.id == f.engineer.id && engineer.companyName == "Acme")
            try WebSessionPolicy.checkCSRF(started.csrfToken, for: id)
            // Used at 29 minutes: alive at 58, ended at 59.
            f.clock.now += 29 * 60
            _ = try f.verifier.session(cookieHeader: header, now: f.clock.now)
            f.clock.now += 30 * 60
            let idle = #expect(throws: SignInError.self) { try f.verifier.session(cookieHeader: header, now: f.clock.now) }
            #expect(idle?.kind == .expired)
            #expect(try f.store.webSession(idDigest: started.id.digest) == nil)
            #expect(throws: SignInError.self) { try f.verifier.session(cookieHeader: nil, now: f.clock.now) }
        }
    }
}
