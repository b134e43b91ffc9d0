/// A key file or the config folder cannot be used: what happened and what to do. The
/// message names the file; it never holds any part of a key.
public struct IdentityFileError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong, for callers that react differently (``IdentityKeyFile/loadOrCreate(at:)``
    /// creates a key on ``notFound``; `relay-agent keygen` explains ``alreadyExists``).
    public struct Kind: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable { case notFound, alreadyExists, exposed, malformed, unavailable }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// There is no key file at the path.
        public static let notFound = Kind(.notFound)
        /// A key was to be created, and a file is already there (it is never replaced).
        public static let alreadyExists = Kind(.alreadyExists)
        /// The file or folder can be read or changed by other users.
        public static let exposed = Kind(.exposed)
        /// The file is not a SupportRelay identity key.
        public static let malformed = Kind(.malformed)
        /// The file system refused (no such folder, no permission, disk full, no home folder).
        public static let unavailable = Kind(.unavailable)

        public var description: String {
            switch self.base {
            case .notFound: "not found"
            case .alreadyExists: "already exists"
            case .exposed: "exposed"
            case .malformed: "malformed"
            case .unavailable: "unavailable"
            }
        }
    }

    public let kind: Kind
    /// The file or folder concerned.
    public let path: String
    /// What happened and what to do, naming ``path``.
    public let message: String

    public init(_ kind: Kind, path: String, _ message: String) {
        self.kind = kind
        self.path = path
        self.message = message
    }

    public var description: String { self.message }
}
