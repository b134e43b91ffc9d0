public import RelayWire

/// Why a screen session (``HostScreenSession``, ``ViewerScreenSession``) ended with an
/// error: what happened and what to do. A transport's own failures (TLS, a dead
/// connection) come from the transport as they are.
public struct ScreenSessionError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Kind: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable { case protocolViolation, rejected, screenTooLarge }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The peer sent something the protocol does not allow; the session said
        /// `Bye(protocol_error)`.
        public static let protocolViolation = Kind(.protocolViolation)
        /// The relay ended the session with an Error frame (see ``ScreenSessionError/code``).
        public static let rejected = Kind(.rejected)
        /// The host's screen is larger than ScreenInit can announce (PROTOCOL.md §5.2.1);
        /// sharing it again will not help.
        public static let screenTooLarge = Kind(.screenTooLarge)

        public var description: String {
            switch self.base {
            case .protocolViolation: "protocol violation"
            case .rejected: "rejected"
            case .screenTooLarge: "screen too large"
            }
        }
    }

    public let kind: Kind
    /// What happened. Text quoted from the relay or the peer has its control and format
    /// characters removed; print it through `PeerText.printable` all the same.
    public let message: String
    /// The relay's error code, for ``Kind/rejected``.
    public let code: ErrorCode?

    public init(_ kind: Kind, _ message: String, code: ErrorCode? = nil) {
        self.kind = kind
        self.message = message
        self.code = code
    }

    /// The relay's Error frame, ending the session (PROTOCOL.md §5.1.11).
    public init(relayError error: ErrorMessage) {
        self.init(.rejected, "the relay ended the session: \(Self.quoted(error.message)) (\(error.code.name))", code: error.code)
    }

    public var description: String { self.message }

    /// `text` without control and format characters (escape sequences lose their ESC,
    /// bidi overrides go), so that quoting it cannot drive a terminal. The agent's full
    /// treatment is RelayClient's `PeerText.printable`; this module does not depend on it.
    static func quoted(_ text: String) -> String {
        var scalars = String.UnicodeScalarView()
        scalars.append(contentsOf: text.unicodeScalars.filter { ![.control, .format].contains($0.properties.generalCategory) })
        return String(scalars)
    }
}
