public import Foundation

/// One browser's way through web sign-in: a pure state machine with no I/O.
///
/// The web endpoints do the slow or stored parts (bcrypt, the store) and feed the outcome
/// in; this type decides what comes next and when a half-finished sign-in has gone stale.
///
/// ```
/// password ──(password right, TOTP enrolled)──▶ secondFactor ──(code)──▶ signedIn
///     └─────(password right, no TOTP yet)──▶ enrolTwoFactor ──(code)──▶ signedIn
/// link ──▶ choosePassword ──(password set)──▶ enrolTwoFactor ──(code)──▶ signedIn
/// ```
///
/// A pending step lasts ``pendingLimit``; ``codeAttemptLimit`` wrong codes end it. Both
/// send the browser back to the password (or, from a link, need a new link), so a stolen
/// password alone buys a handful of code guesses at a time, and the source's throttle
/// (like agent authentication's) limits how often it can start over.
public struct WebSignIn: Sendable, Equatable {
    /// What the browser is asked for next.
    public enum Step: Sendable, Equatable {
        /// Login and password.
        case password
        /// A TOTP code or a recovery code for the engineer whose password was right.
        case secondFactor(engineerID: String)
        /// A new password, after a one-time link was accepted.
        case choosePassword(engineerID: String)
        /// Scanning the QR code of `secret` and typing a code from it; the secret is stored
        /// as enrolled only when that code is right.
        case enrolTwoFactor(engineerID: String, secret: String)
        /// Done: the caller starts a web session for the engineer.
        case signedIn(engineerID: String)
    }

    /// The engineer this sign-in is for, once the password or link named one.
    public var engineerID: String? {
        switch self.step {
        case .password: nil
        case .secondFactor(let id), .choosePassword(let id), .enrolTwoFactor(let id, _), .signedIn(let id): id
        }
    }

    /// How long a step after the first may wait (5 minutes).
    public static let pendingLimit: TimeInterval = 5 * 60
    /// Wrong codes one pending sign-in may take.
    public static let codeAttemptLimit = 5

    public private(set) var step: Step
    /// When the current step began.
    public private(set) var since: Date
    /// Wrong codes at the current step.
    public private(set) var codeFailures = 0
    /// Whether this sign-in began from a one-time link.
    public let fromLink: Bool

    /// A sign-in from the sign-in page.
    public init(now: Date) {
        self.step = .password
        self.since = now
        self.fromLink = false
    }

    /// A sign-in from a one-time link the store accepted (and used up) for `engineerID`.
    public init(acceptedLinkFor engineerID: String, now: Date) {
        self.step = .choosePassword(engineerID: engineerID)
        self.since = now
        self.fromLink = true
    }

    /// The password for `engineerID` was right. With `twoFactorEnrolled` the next step is
    /// the code; without, enrolment with `newSecret` (``TwoFactor/makeSecret()``).
    public mutating func passwordAccepted(engineerID: String, twoFactorEnrolled: Bool, newSecret: @autoclosure () -> TwoFactor, now: Date) throws {
        guard case .password = self.step else { throw Self.outOfOrder }
        self.move(to: twoFactorEnrolled ? .secondFactor(engineerID: engineerID) : .enrolTwoFactor(engineerID: engineerID, secret: newSecret().secret), now)
    }

    /// The new password was stored (after ``PasswordRules/check(_:login:)``). A link resets
    /// two-factor too (lost device, new engineer): enrolment with `newSecret` follows.
    public mutating func passwordChosen(newSecret: TwoFactor, now: Date) throws {
        guard case .choosePassword(let engineerID) = self.step else { throw Self.outOfOrder }
        try self.checkPending(now)
        self.move(to: .enrolTwoFactor(engineerID: engineerID, secret: newSecret.secret), now)
    }

    /// The code (TOTP or recovery code) was right: signed in.
    public mutating func codeAccepted(now: Date) throws {
        switch self.step {
        case .secondFactor(let engineerID), .enrolTwoFactor(let engineerID, _):
            try self.checkPending(now)
            self.move(to: .signedIn(engineerID: engineerID), now)
        default:
            throw Self.outOfOrder
        }
    }

    /// The code was wrong (or replayed). Throws ``SignInError/Kind/expired`` and starts over
    /// once ``codeAttemptLimit`` codes were wrong.
    public mutating func codeRefused(now: Date) throws {
        switch self.step {
        case .secondFactor, .enrolTwoFactor:
            try self.checkPending(now)
            self.codeFailures += 1
            if self.codeFailures >= Self.codeAttemptLimit {
                self.move(to: .password, now)
                throw SignInError(
                    .expired,
                    "\(Self.codeAttemptLimit) wrong two-factor codes: sign in again from the start\(self.fromLink ? " (ask for a new sign-in link)" : "")")
            }
        default:
            throw Self.outOfOrder
        }
    }

    /// Throws ``SignInError/Kind/expired`` (and starts over) when the current pending step
    /// has waited longer than ``pendingLimit``.
    public mutating func checkPending(_ now: Date) throws {
        switch self.step {
        case .password, .signedIn:
            return
        case .secondFactor, .choosePassword, .enrolTwoFactor:
            guard now.timeIntervalSince(self.since) >= Self.pendingLimit else { return }
            self.move(to: .password, now)
            throw SignInError(
                .expired,
                "the sign-in waited more than \(Int(Self.pendingLimit / 60)) minutes for the next step; sign in again\(self.fromLink ? " with a new sign-in link" : "")"
            )
        }
    }

    private mutating func move(to step: Step, _ now: Date) {
        self.step = step
        self.since = now
        self.codeFailures = 0
    }

    private static let outOfOrder = SignInError(.malformed, "the sign-in page sent a step out of order; reload the page and sign in again")
}
