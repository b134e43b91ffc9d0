/// An error of web sign-in that a person sees: what happened and what to do.
///
/// A struct with an extensible ``Kind`` and a message, like `StoreError` and `WireError`:
/// the web endpoints switch on the kind (which status, whether the attempt counts toward
/// the source's throttle) and show the message.
public struct SignInError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What class of problem this is; stable and switchable.
    public struct Kind: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case weakPassword
            case wrongCredentials
            case replayedCode
            case expired
            case malformed
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// A new password breaks the password rules (``PasswordRules``).
        public static let weakPassword = Kind(.weakPassword)
        /// A password, TOTP code, recovery code, link or session that does not match.
        /// Counts as a failed attempt for the source's throttle.
        public static let wrongCredentials = Kind(.wrongCredentials)
        /// A TOTP code of a time step at or before the last one accepted for the account.
        public static let replayedCode = Kind(.replayedCode)
        /// A sign-in link, a pending sign-in or a web session past its expiry.
        public static let expired = Kind(.expired)
        /// Input that is not of the expected form (a code that is not six digits).
        public static let malformed = Kind(.malformed)

        public var description: String {
            switch self.base {
            case .weakPassword: "weak password"
            case .wrongCredentials: "wrong credentials"
            case .replayedCode: "replayed code"
            case .expired: "expired"
            case .malformed: "malformed"
            }
        }
    }

    public let kind: Kind
    /// A sentence for a person: what happened and what to do.
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { self.message }
}
