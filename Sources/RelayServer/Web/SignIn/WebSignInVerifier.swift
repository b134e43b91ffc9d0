import Foundation
import RelaySignIn
import RelayStore

/// Web sign-in against the account store (issue 13 item 2): what the sign-in endpoints
/// call, one method per form the browser posts.
///
/// RelaySignIn holds the rules and the state machine; this type looks accounts up, runs
/// bcrypt, moves TOTP steps, uses up links and recovery codes, and writes every attempt to
/// the access log. It blocks (bcrypt, SQLite): call it on the thread pool, never on an
/// event loop. The caller keeps the pending ``WebSignIn`` between requests, throttles by
/// source before calling (``AuthThrottle``, like agent authentication) and counts a
/// ``SignInError/Kind/wrongCredentials`` or ``SignInError/Kind/replayedCode`` as a failure.
struct WebSignInVerifier: Sendable {
    let store: any AccountStore
    var rules = PasswordRules()
    var sessions = WebSessionPolicy()
    var links = SignInLinkPolicy()

    /// A web session just started: what the response carries.
    struct StartedSession: Sendable {
        let id: SignInSecret
        /// The `Set-Cookie` value.
        let cookie: String
        /// The session's CSRF token, for the page.
        let csrfToken: String
    }

    private static let wrongPassword = SignInError(
        .wrongCredentials, "the login or the password is wrong; check both, or ask your relay's administrator for a sign-in link")

    /// The sign-in page's login and password. Returns the sign-in waiting for a code (or
    /// for enrolment, for an engineer without two-factor yet).
    func signIn(login: String, password: String, source: String, now: Date) throws -> WebSignIn {
        let candidates = try self.store.engineers(login: login)
        var accepted: (Engineer, WebCredentials)?
        if candidates.isEmpty {
            _ = self.rules.verify(password, hash: nil)  // as slow as a real check
        }
        // A login is unique within a company, so a few engineers may share it; the password
        // tells them apart.
        for engineer in candidates {
            let credentials = try self.store.webCredentials(engineerID: engineer.id)
            if self.rules.verify(password, hash: credentials.passwordHash) {
                accepted = (engineer, credentials)
                break
            }
        }
        guard let (engineer, credentials) = accepted else {
            try self.log(.webPassword, .rejected, source: source, companyID: candidates.count == 1 ? candidates[0].companyID : nil, subject: login, now: now)
            throw Self.wrongPassword
        }
        var signIn = WebSignIn(now: now)
        try signIn.passwordAccepted(engineerID: engineer.id, twoFactorEnrolled: credentials.totpSecret != nil, newSecret: TwoFactor.makeSecret(), now: now)
        try self.log(.webPassword, .accepted, source: source, companyID: engineer.companyID, subject: engineer.login, now: now)
        return signIn
    }

    /// The token of a one-time link (the page posts the URL's fragment). Uses the link up,
    /// right or expired.
    func openLink(token: String, source: String, now: Date) throws -> WebSignIn {
        guard let secret = SignInSecret(received: token), let link = try self.store.useSignInLink(digest: secret.digest) else {
            try self.log(.webSignInLink, .rejected, source: source, now: now)
            throw SignInError(
                .wrongCredentials,
                "this sign-in link does not work: it was used already, or a newer one replaced it; ask your relay's administrator for a new one")
        }
        let engineer = try self.store.engineer(id: link.engineerID)
        do {
            try self.links.check(expiresAt: link.expiresAt, now: now)
        } catch {
            try self.log(.webSignInLink, .rejected, source: source, companyID: engineer.companyID, subject: engineer.login, detail: "expired", now: now)
            throw error
        }
        try self.log(.webSignInLink, .accepted, source: source, companyID: engineer.companyID, subject: engineer.login, now: now)
        return WebSignIn(acceptedLinkFor: engineer.id, now: now)
    }

    /// The new password after a link: checked against the rules, hashed, stored (which
    /// ends the engineer's web sessions); enrolment comes next.
    func choosePassword(_ password: String, signIn: inout WebSignIn, now: Date) throws {
        guard case .choosePassword(let engineerID) = signIn.step else {
            throw SignInError(.malformed, "the sign-in page sent a step out of order; reload the page and sign in again")
        }
        try signIn.checkPending(now)
        let engineer = try self.store.engineer(id: engineerID)
        let hash = try self.rules.hash(password, login: engineer.login)
        try self.store.setPassword(engineerID: engineerID, hash: hash, actor: "web")
        try signIn.passwordChosen(newSecret: TwoFactor.makeSecret(), now: now)
    }

    /// A TOTP code or a recovery code. At enrolment, the code confirms the new secret and
    /// the answer is the new recovery codes, to show once; otherwise nil.
    func submitCode(_ code: String, signIn: inout WebSignIn, source: String, now: Date) throws -> [String]? {
        switch signIn.step {
        case .enrolTwoFactor(let engineerID, let secret):
            // Before anything is stored: a stale enrolment enrols nothing.
            try signIn.checkPending(now)
            let engineer = try self.store.engineer(id: engineerID)
            let step: Int64
            do {
                step = try TwoFactor(secret: secret).accept(code: code, at: now, lastAcceptedStep: nil)
            } catch {
                try self.refused(error, .webTOTP, engineer, signIn: &signIn, source: source, now: now)
            }
            let codes = RecoveryCodes.make()
            try self.store.enrolTwoFactor(
                engineerID: engineerID, secret: secret, acceptedStep: step, recoveryCodeDigests: codes.compactMap(RecoveryCodes.digest(of:)), actor: "web")
            try signIn.codeAccepted(now: now)
            try self.log(.webTOTP, .accepted, source: source, companyID: engineer.companyID, subject: engineer.login, detail: "enrolled", now: now)
            return codes
        case .secondFactor(let engineerID):
            try signIn.checkPending(now)
            let engineer = try self.store.engineer(id: engineerID)
            if let digest = RecoveryCodes.digest(of: code) {
                guard try self.store.useRecoveryCode(engineerID: engineerID, digest: digest) else {
                    let error = SignInError(.wrongCredentials, "the recovery code is wrong or was used already; each code works once")
                    try self.refused(error, .webRecoveryCode, engineer, signIn: &signIn, source: source, now: now)
                }
                try signIn.codeAccepted(now: now)
                try self.log(.webRecoveryCode, .accepted, source: source, companyID: engineer.companyID, subject: engineer.login, now: now)
                return nil
            }
            do {
                let credentials = try self.store.webCredentials(engineerID: engineerID)
                guard let secret = credentials.totpSecret else {
                    throw SignInError(.expired, "two-factor was reset for your account; sign in again to enrol your authenticator app")
                }
                let step = try TwoFactor(secret: secret).accept(code: code, at: now, lastAcceptedStep: credentials.totpLastStep)
                // Two sign-ins racing with one code: only one moves the step.
                guard try self.store.acceptTOTPStep(engineerID: engineerID, step: step) else {
                    throw SignInError(
                        .replayedCode, "this two-factor code was already used; wait for your authenticator app to show the next code and type that")
                }
            } catch let error as SignInError {
                try self.refused(error, .webTOTP, engineer, signIn: &signIn, source: source, now: now)
            }
            try signIn.codeAccepted(now: now)
            try self.log(.webTOTP, .accepted, source: source, companyID: engineer.companyID, subject: engineer.login, now: now)
            return nil
        default:
            throw SignInError(.malformed, "the sign-in page sent a code out of order; reload the page and sign in again")
        }
    }

    /// Starts the web session of a finished sign-in.
    func startSession(for signIn: WebSignIn, source: String, now: Date) throws -> StartedSession {
        guard case .signedIn(let engineerID) = signIn.step else {
            throw SignInError(.malformed, "the sign-in is not finished; type the two-factor code first")
        }
        let id = SignInSecret()
        try self.store.startWebSession(WebSession(idDigest: id.digest, engineerID: engineerID, createdAt: now, lastSeenAt: now, sourceAddress: source))
        return StartedSession(id: id, cookie: self.sessions.cookie(for: id), csrfToken: WebSessionPolicy.csrfToken(for: id))
    }

    /// The engineer signed in by a request's `Cookie` header, with the session id for the
    /// CSRF check; the session is marked used at `now`. An ended session is removed.
    func session(cookieHeader: String?, now: Date) throws -> (Engineer, SignInSecret) {
        guard let cookieHeader, let id = WebSessionPolicy.sessionID(cookieHeader: cookieHeader),
            let session = try self.store.webSession(idDigest: id.digest)
        else {
            throw SignInError(.expired, "you are not signed in (or your session ended); sign in again")
        }
        do {
            try self.sessions.check(createdAt: session.createdAt, lastSeenAt: session.lastSeenAt, now: now)
        } catch {
            try self.store.endWebSession(idDigest: id.digest)
            throw error
        }
        try self.store.touchWebSession(idDigest: id.digest, at: now)
        return (try self.store.engineer(id: session.engineerID), id)
    }

    /// Logs a refused code, counts it against the pending sign-in (which may end it), and
    /// throws: `error`, or the ended sign-in's.
    private func refused(
        _ error: any Error, _ kind: AccessEvent.Kind, _ engineer: Engineer, signIn: inout WebSignIn, source: String, now: Date
    ) throws -> Never {
        let detail = (error as? SignInError)?.kind.description.replacingOccurrences(of: " ", with: "_")
        try self.log(kind, .rejected, source: source, companyID: engineer.companyID, subject: engineer.login, detail: detail, now: now)
        try signIn.codeRefused(now: now)
        throw error
    }

    private func log(
        _ kind: AccessEvent.Kind, _ outcome: AccessEvent.Outcome, source: String, companyID: String? = nil, subject: String? = nil, detail: String? = nil,
        now: Date
    ) throws {
        try self.store.record([
            AccessEvent(at: now, event: kind, outcome: outcome, sourceAddress: source, companyID: companyID, subject: subject, detail: detail)
        ])
    }
}
