public import Foundation

/// An engineer's web sign-in credentials as the store holds them (issue 13 item 2).
///
/// Read only by the web sign-in and the command line; never part of ``Engineer``, which
/// lists and logs pass around.
public struct WebCredentials: Sendable, Hashable {
    public var engineerID: String
    /// The bcrypt hash of the password (`$2b$12$…`); nil until the engineer sets one from
    /// a sign-in link.
    public var passwordHash: String?
    public var passwordSetAt: Date?
    /// The enrolled TOTP secret, kept as it is (the relay computes the codes); nil until
    /// enrolment, and after `relay-server engineer reset-totp`.
    public var totpSecret: String?
    public var totpEnrolledAt: Date?
    /// The last TOTP time step accepted: a code of this step or an earlier one is refused.
    public var totpLastStep: Int64?
    /// Recovery codes not used yet.
    public var recoveryCodesLeft: Int

    public init(
        engineerID: String, passwordHash: String? = nil, passwordSetAt: Date? = nil, totpSecret: String? = nil, totpEnrolledAt: Date? = nil,
        totpLastStep: Int64? = nil, recoveryCodesLeft: Int = 0
    ) {
        self.engineerID = engineerID
        self.passwordHash = passwordHash
        self.passwordSetAt = passwordSetAt
        self.totpSecret = totpSecret
        self.totpEnrolledAt = totpEnrolledAt
        self.totpLastStep = totpLastStep
        self.recoveryCodesLeft = recoveryCodesLeft
    }
}

/// A one-time sign-in link (`https://HOST:PORT/signin#TOKEN`), by its token's digest.
public struct SignInLink: Codable, Sendable, Hashable {
    /// SHA-256 of the token.
    package var digest: Data
    public var engineerID: String
    public var createdAt: Date
    public var expiresAt: Date

    public init(digest: Data, engineerID: String, createdAt: Date, expiresAt: Date) {
        self.digest = digest
        self.engineerID = engineerID
        self.createdAt = createdAt
        self.expiresAt = expiresAt
    }
}

/// A signed-in browser, by the digest of its session cookie's id.
public struct WebSession: Codable, Sendable, Hashable {
    /// SHA-256 of the cookie's id.
    package var idDigest: Data
    public var engineerID: String
    public var createdAt: Date
    /// The last request: the idle expiry counts from here.
    public var lastSeenAt: Date
    /// Where the sign-in came from, for the engineer's list of sessions.
    public var sourceAddress: String

    public init(idDigest: Data, engineerID: String, createdAt: Date, lastSeenAt: Date, sourceAddress: String) {
        self.idDigest = idDigest
        self.engineerID = engineerID
        self.createdAt = createdAt
        self.lastSeenAt = lastSeenAt
        self.sourceAddress = sourceAddress
    }
}
