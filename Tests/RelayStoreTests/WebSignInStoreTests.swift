import Crypto
import Foundation
import RelayStore
import RelayTestSupport
import Testing

/// Web sign-in records in SQLite (issue 13 item 2): password hash, TOTP secret and last
/// step, recovery codes, one-time links and web sessions; their audit entries carry no
/// secret.
@Suite struct WebSignInStoreTests {
    final class Clock: @unchecked Sendable {
        var now = Date(timeIntervalSince1970: 1_800_000_000)
    }

    static func withStore<T>(_ backend: StoreBackend, _ body: (SQLStore, Clock) throws -> T) throws -> T {
        let clock = Clock()
        return try backend.withStore(now: { clock.now }) { try body($0, clock) }
    }

    static func engineer(_ store: SQLStore, login: String = "kim", company: String = "Acme") throws -> Engineer {
        let (acme, _) = try store.addCompany(name: company)
        return try store.addEngineer(companyID: acme.id, login: login, publicKey: Curve25519.Signing.PrivateKey().publicKey)
    }

    static func digest(_ text: String) -> Data { Data(SHA256.hash(data: Data(text.utf8))) }

    /// Every audit detail, for checking that no secret leaked into one.
    static func auditText(_ store: SQLStore) throws -> String {
        try store.auditLog(limit: 1000).map { "\($0.action.rawValue) \($0.detail ?? "")" }.joined(separator: "\n")
    }

    @Test(arguments: StoreBackend.available) func aNewEngineerHasNoWebCredentials(_ backend: StoreBackend) throws {
        try Self.withStore(backend) { store, _ in
            let kim = try Self.engineer(store)
            #expect(try store.webCredentials(engineerID: kim.id) == WebCredentials(engineerID: kim.id))
            let missing = #expect(throws: StoreError.self) { try store.webCredentials(engineerID: "en-missing") }
            #expect(missing?.kind == .notFound)
            #expect(try store.appliedMigrations().contains(backend == .sqlite ? "v6 browser viewer" : "v1 relay schema"))
        }
    }

    @Test(arguments: StoreBackend.available) func aPasswordIsStoredEndsSessionsAndSurvivesAKeyChange(_ backend: StoreBackend) throws {
        try Self.withStore(backend) { store, clock in
            let kim = try Self.engineer(store)
            let session = WebSession(idDigest: Self.digest("s1"), engineerID: kim.id, createdAt: clock.now, lastSeenAt: clock.now, sourceAddress: "10.0.0.1")
            try store.startWebSession(session)
            clock.now += 60
            try store.setPassword(engineerID: kim.id, hash: "$2b$12$hash-of-the-password", actor: "web")
            let credentials = try store.webCredentials(engineerID: kim.id)
            #expect(credentials.passwordHash == "$2b$12$hash-of-the-password")
            #expect(credentials.passwordSetAt == clock.now)
            #expect(try store.webSession(idDigest: session.idDigest) == nil)
            let entry = try #require(try store.auditLog(limit: 1).first)
            #expect(entry.action == .engineerSetPassword && entry.subject == kim.id && entry.actor == "web")
            #expect(entry.detail == "web_sessions_ended=1")
            // Engineer's own columns are written without touching the web ones.
            _ = try store.setEngineerKey(id: kim.id, publicKey: Curve25519.Signing.PrivateKey().publicKey)
            #expect(try store.webCredentials(engineerID: kim.id).passwordHash == "$2b$12$hash-of-the-password")
            #expect(try !Self.auditText(store).contains("hash-of-the-password"))
            #expect(throws: StoreError.self) { try store.setPassword(engineerID: "en-missing", hash: "x", actor: "web") }
        }
    }

    @Test(arguments: StoreBackend.available) func twoFactorEnrolmentRecoveryCodesAndReplay(_ backend: StoreBackend) throws {
        try Self.withStore(backend) { store, _ in
            let kim = try Self.engineer(store)
            // No secret yet: no step can be accepted.
            #expect(try !store.acceptTOTPStep(engineerID: kim.id, step: 5))
            let codes = (0..<10).map { Self.digest("code-\($0)") }
            try store.enrolTwoFactor(
                engineerID: kim.id, secret: "SECRETSECRETSECRETSECRETSECRET22", acceptedStep: 100, recoveryCodeDigests: codes, actor: "web")
            var credentials = try store.webCredentials(engineerID: kim.id)
            #expect(credentials.totpSecret == "SECRETSECRETSECRETSECRETSECRET22")
            #expect(credentials.totpLastStep == 100)
            #expect(credentials.recoveryCodesLeft == 10)
            // The enrolment code's step and older ones are spent; the next is not, once.
            #expect(try !store.acceptTOTPStep(engineerID: kim.id, step: 100))
            #expect(try !store.acceptTOTPStep(engineerID: kim.id, step: 99))
            #expect(try store.acceptTOTPStep(engineerID: kim.id, step: 101))
            #expect(try !store.acceptTOTPStep(engineerID: kim.id, step: 101))
            // A recovery code works once.
            #expect(try store.useRecoveryCode(engineerID: kim.id, digest: codes[3]))
            #expect(try !store.useRecoveryCode(engineerID: kim.id, digest: codes[3]))
            #expect(try !store.useRecoveryCode(engineerID: kim.id, digest: Self.digest("not a code")))
            credentials = try store.webCredentials(engineerID: kim.id)
            #expect(credentials.recoveryCodesLeft == 9)
            #expect(try store.auditLog(limit: 1).first?.detail == "recovery_codes_left=9")
            // Re-enrolment replaces the codes.
            try store.enrolTwoFactor(engineerID: kim.id, secret: "OTHERSECRET", acceptedStep: 200, recoveryCodeDigests: [Self.digest("new")], actor: "web")
            #expect(try !store.useRecoveryCode(engineerID: kim.id, digest: codes[4]))
            #expect(try store.webCredentials(engineerID: kim.id).recoveryCodesLeft == 1)
            #expect(try !Self.auditText(store).contains("SECRET"))
        }
    }

    @Test(arguments: StoreBackend.available) func resetTwoFactorClearsSecretCodesAndSessions(_ backend: StoreBackend) throws {
        try Self.withStore(backend) { store, clock in
            let kim = try Self.engineer(store)
            try store.enrolTwoFactor(engineerID: kim.id, secret: "S", acceptedStep: 1, recoveryCodeDigests: [Self.digest("c")], actor: "web")
            try store.startWebSession(
                WebSession(idDigest: Self.digest("s"), engineerID: kim.id, createdAt: clock.now, lastSeenAt: clock.now, sourceAddress: "a"))
            try store.resetTwoFactor(engineerID: kim.id, actor: "cli")
            let credentials = try store.webCredentials(engineerID: kim.id)
            #expect(credentials.totpSecret == nil && credentials.totpLastStep == nil && credentials.recoveryCodesLeft == 0)
            #expect(try store.webSession(idDigest: Self.digest("s")) == nil)
            let entry = try #require(try store.auditLog(limit: 1).first)
            #expect(entry.action == .engineerResetTOTP && entry.actor == "cli" && entry.detail == "web_sessions_ended=1")
        }
    }

    @Test(arguments: StoreBackend.available) func aSignInLinkWorksOnceAndANewOneReplacesTheOld(_ backend: StoreBackend) throws {
        try Self.withStore(backend) { store, clock in
            let kim = try Self.engineer(store)
            let first = SignInLink(digest: Self.digest("t1"), engineerID: kim.id, createdAt: clock.now, expiresAt: clock.now + 86_400)
            try store.issueSignInLink(first, actor: "cli")
            #expect(try store.auditLog(limit: 1).first?.detail == "expires=2027-01-16T08:00:00Z replaced=0")
            let second = SignInLink(digest: Self.digest("t2"), engineerID: kim.id, createdAt: clock.now, expiresAt: clock.now + 86_400)
            try store.issueSignInLink(second, actor: "cli")
            #expect(try store.auditLog(limit: 1).first?.detail == "expires=2027-01-16T08:00:00Z replaced=1")
            #expect(try store.useSignInLink(digest: first.digest) == nil)
            #expect(try store.useSignInLink(digest: second.digest) == second)
            #expect(try store.useSignInLink(digest: second.digest) == nil)
            #expect(throws: StoreError.self) {
                try store.issueSignInLink(
                    SignInLink(digest: Self.digest("t3"), engineerID: "en-missing", createdAt: clock.now, expiresAt: clock.now), actor: "cli")
            }
        }
    }

    @Test(arguments: StoreBackend.available) func webSessionsAreTouchedEndedAndPurged(_ backend: StoreBackend) throws {
        try Self.withStore(backend) { store, clock in
            let kim = try Self.engineer(store)
            let start = clock.now
            let a = WebSession(idDigest: Self.digest("a"), engineerID: kim.id, createdAt: start, lastSeenAt: start, sourceAddress: "10.0.0.1:5000")
            let b = WebSession(idDigest: Self.digest("b"), engineerID: kim.id, createdAt: start, lastSeenAt: start, sourceAddress: "10.0.0.2:5000")
            let c = WebSession(idDigest: Self.digest("c"), engineerID: kim.id, createdAt: start, lastSeenAt: start, sourceAddress: "10.0.0.3:5000")
            for session in [a, b, c] { try store.startWebSession(session) }
            try store.touchWebSession(idDigest: a.idDigest, at: start + 1_200)
            #expect(try store.webSession(idDigest: a.idDigest)?.lastSeenAt == start + 1_200)
            try store.endWebSession(idDigest: c.idDigest)
            #expect(try store.webSession(idDigest: c.idDigest) == nil)
            try store.issueSignInLink(SignInLink(digest: Self.digest("l"), engineerID: kim.id, createdAt: start, expiresAt: start + 600), actor: "cli")
            // 31 minutes on: b idled out, a was used 11 minutes ago, the link expired.
            let now = start + 31 * 60
            #expect(try store.removeExpiredSignIns(now: now, idleBefore: now - 1_800, startedBefore: now - 43_200) == 2)
            #expect(try store.webSession(idDigest: a.idDigest) != nil)
            #expect(try store.webSession(idDigest: b.idDigest) == nil)
            // A removed engineer's sessions go with them.
            try store.removeEngineer(id: kim.id)
            #expect(try store.webSession(idDigest: a.idDigest) == nil)
            #expect(throws: StoreError.self) { try store.startWebSession(a) }
        }
    }

    @Test(arguments: StoreBackend.available) func engineersByLoginAcrossCompanies(_ backend: StoreBackend) throws {
        try Self.withStore(backend) { store, _ in
            let kimAcme = try Self.engineer(store, login: "kim", company: "Acme")
            let kimOther = try Self.engineer(store, login: "kim", company: "Other")
            _ = try Self.engineer(store, login: "lee", company: "Third")
            #expect(Set(try store.engineers(login: "kim").map(\.id)) == [kimAcme.id, kimOther.id])
            #expect(try store.engineers(login: "nobody").isEmpty)
            #expect(try store.engineers(login: "lee").map(\.companyName) == ["Third"])
            #expect(try store.engineer(id: kimOther.id).companyName == "Other")
            #expect(throws: StoreError.self) { try store.engineer(id: "en-missing") }
        }
    }

    /// A file of the v4 schema with an engineer in it moves to v5 with no web credentials.
    @Test func aVersion4FileMigrates() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("signin-migrate-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("relay.sqlite").path
        try SQLStore.makeFile(
            path: path, migratedUpTo: "v4 account keys",
            then: """
                INSERT INTO company (id, name, adminTokenDigest, createdAt) VALUES ('co-1', 'Acme', x'00', '2026-01-01 00:00:00.000');
                INSERT INTO engineer (id, companyID, login, tokenDigest, createdAt) VALUES ('en-1', 'co-1', 'kim', x'01', '2026-01-01 00:00:00.000');
                """)
        let store = try SQLStore(path: path)
        #expect(try store.webCredentials(engineerID: "en-1") == WebCredentials(engineerID: "en-1"))
        #expect(try store.engineers(login: "kim").map(\.id) == ["en-1"])
    }
}
