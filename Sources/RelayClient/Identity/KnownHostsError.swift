/// The viewer's `known_hosts` refuses a host key, or cannot be read or changed: what
/// happened and what to do.
public struct KnownHostsError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong.
    public struct Kind: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable { case keyChanged, invalidPin, invalidArgument, exposed, unavailable }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The host presented a key other than the one pinned for it: the session must not
        /// go on (``KnownHostsError/pinnedFingerprint``, ``KnownHostsError/presentedFingerprint``).
        public static let keyChanged = Kind(.keyChanged)
        /// A line names this relay and host but is not a valid pin (a damaged file, or a
        /// key type of a newer relay-agent): nothing is trusted until it is fixed or removed.
        public static let invalidPin = Kind(.invalidPin)
        /// The relay address or host id cannot be written in the file.
        public static let invalidArgument = Kind(.invalidArgument)
        /// Other users can change the file, so its pins prove nothing.
        public static let exposed = Kind(.exposed)
        /// The file system refused (no permission, disk full, a folder in the way).
        public static let unavailable = Kind(.unavailable)

        public var description: String {
            switch self.base {
            case .keyChanged: "key changed"
            case .invalidPin: "invalid pin"
            case .invalidArgument: "invalid argument"
            case .exposed: "exposed"
            case .unavailable: "unavailable"
            }
        }
    }

    public let kind: Kind
    /// The `known_hosts` file.
    public let path: String
    /// The line concerned (1-based), for ``Kind/keyChanged`` and ``Kind/invalidPin``.
    public let line: Int?
    /// For ``Kind/keyChanged``: the fingerprint (``KeyFingerprint``) of the pinned key.
    public let pinnedFingerprint: String?
    /// For ``Kind/keyChanged``: the fingerprint of the key the host presented.
    public let presentedFingerprint: String?
    /// What happened and what to do; for ``Kind/keyChanged`` several lines.
    public let message: String

    public init(
        _ kind: Kind, path: String, line: Int? = nil, pinnedFingerprint: String? = nil, presentedFingerprint: String? = nil, _ message: String
    ) {
        self.kind = kind
        self.path = path
        self.line = line
        self.pinnedFingerprint = pinnedFingerprint
        self.presentedFingerprint = presentedFingerprint
        self.message = message
    }

    public var description: String { self.message }
}
