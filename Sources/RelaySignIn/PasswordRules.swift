internal import HummingbirdBcrypt

/// The rules for engineers' web passwords, and how they are hashed (hummingbird-auth's
/// bcrypt).
///
/// bcrypt reads at most 72 bytes and stops at a NUL byte: a longer password would be
/// truncated without a word, so it is refused instead, and so are control characters.
/// The cost is measured, not guessed: see ``cost``.
public struct PasswordRules: Sendable {
    /// Fewest characters (Swift `Character`s, what a person counts).
    public static let minimumLength = 12
    /// Most UTF-8 bytes: bcrypt's limit.
    public static let maximumBytes = 72

    /// bcrypt's cost (log2 of its rounds). Measured on this project's 2-core machine
    /// (2026-12-02, debug build, `PasswordRulesTests`' timing test prints it): one check
    /// takes 0.06 s at cost 10, 0.12 s at 11 and 0.24 s at 12. 12 keeps a check within
    /// 100–250 ms: slow for a guesser (about 4 guesses a second a core), quick for a
    /// person. Each step up doubles it; sign-in runs it on the thread pool, never on an
    /// event loop.
    public static let defaultCost: UInt8 = 12

    /// The cost new hashes get; tests use bcrypt's minimum (4) to stay fast.
    public let cost: UInt8

    public init(cost: UInt8 = Self.defaultCost) {
        precondition((4...31).contains(cost), "bcrypt's cost is 4 to 31")
        self.cost = cost
    }

    /// Throws a ``SignInError/Kind/weakPassword`` error that says which rule `password` breaks.
    public func check(_ password: String, login: String) throws {
        if password.count < Self.minimumLength {
            throw SignInError(.weakPassword, "the password has \(password.count) characters; choose one of at least \(Self.minimumLength)")
        }
        if password.utf8.count > Self.maximumBytes {
            throw SignInError(
                .weakPassword,
                "the password is \(password.utf8.count) bytes long in UTF-8, more than the \(Self.maximumBytes) that bcrypt reads; choose a shorter one")
        }
        if password.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            throw SignInError(.weakPassword, "the password contains a control character (such as a tab or a line break); use only printable characters")
        }
        // A login of one or two characters is in too many good passwords to forbid; a
        // password of 12 or more cannot equal it anyway.
        if login.count >= 3, password.lowercased().contains(login.lowercased()) {
            throw SignInError(.weakPassword, "the password contains the login \"\(login)\"; choose one that does not")
        }
        if Set(password).count < 4 {
            throw SignInError(.weakPassword, "the password repeats too few different characters; choose one with more variety")
        }
    }

    /// The stored form of `password` after ``check(_:login:)`` passed: bcrypt with a random
    /// salt (`$2b$12$…`, 60 characters). Slow by design: call it off the event loops.
    public func hash(_ password: String, login: String) throws -> String {
        try self.check(password, login: login)
        return Bcrypt.hash(password, cost: self.cost)
    }

    /// Whether `password` matches a stored hash. Slow by design: call it off the event
    /// loops. Input bcrypt could not hash faithfully never matches.
    ///
    /// With no stored hash (an unknown login, or an engineer who has not set a password
    /// yet) it checks against a hash of the same cost and answers false: the answer takes
    /// as long either way, so its timing does not tell which logins exist.
    public func verify(_ password: String, hash: String?) -> Bool {
        guard let hash else {
            _ = Bcrypt.verify(password, hash: self.unknownAccountHash)
            return false
        }
        guard password.utf8.count <= Self.maximumBytes, !password.utf8.contains(0), hash.hasPrefix("$2") else { return false }
        return Bcrypt.verify(password, hash: hash)
    }

    /// A hash of a random password at ``cost``, for ``verify(_:hash:)`` without an account.
    private var unknownAccountHash: String {
        // "$2b$" + cost + "$" + 22 salt characters + 31 hash characters: a well-formed hash
        // that no password matches in practice; bcrypt's work depends only on the cost.
        "$2b$\(self.cost < 10 ? "0" : "")\(self.cost)$" + String(repeating: "O", count: 22) + String(repeating: "u", count: 31)
    }
}
