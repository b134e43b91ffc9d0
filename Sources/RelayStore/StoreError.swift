/// An error the store reports to a person: what happened and what to do.
///
/// Errors are a struct with an extensible ``Kind`` and a message, in the style of
/// `WireError` and `NIOSSHError`. The kind lets a caller act without reading the message:
/// the admin API maps it to an HTTP status, a retry loop retries only ``Kind/unavailable``.
public struct StoreError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What class of problem this is; stable and switchable.
    public struct Kind: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case notFound
            case invalidInput
            case conflict
            case unavailable
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The company, engineer, host or legal hold named does not exist.
        public static let notFound = Kind(.notFound)
        /// A value given to the store is unusable: an empty or over-long name, a malformed
        /// date, time zone or format, an out-of-range retention period.
        public static let invalidInput = Kind(.invalidInput)
        /// The change contradicts what is stored: a login already taken, a hold already placed.
        public static let conflict = Kind(.conflict)
        /// The database or data folder cannot be used right now: it cannot be opened,
        /// created, read or made private, it is locked, or a reader holds the write-ahead log.
        /// Trying again later (or after fixing the folder) may succeed.
        public static let unavailable = Kind(.unavailable)

        public var description: String {
            switch self.base {
            case .notFound: "not found"
            case .invalidInput: "invalid input"
            case .conflict: "conflict"
            case .unavailable: "unavailable"
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

    /// The message alone: what the command line and the admin API show.
    public var description: String { self.message }
}
