public import RelayWire

/// An error an agent shows its user: what happened and what to do.
public struct RelayClientError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Kind: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable { case configuration, connect, tls, rejected, protocolViolation, closed }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// A flag or file the user gave is unusable.
        public static let configuration = Kind(.configuration)
        /// The TCP connection could not be made.
        public static let connect = Kind(.connect)
        /// TLS failed: unknown certificate, wrong fingerprint, no common protocol.
        public static let tls = Kind(.tls)
        /// The relay answered with an Error frame (see ``RelayClientError/code``).
        public static let rejected = Kind(.rejected)
        /// The relay sent something the protocol does not allow.
        public static let protocolViolation = Kind(.protocolViolation)
        /// The connection ended (see ``RelayClientError/byeReason`` when a Bye said why).
        public static let closed = Kind(.closed)

        public var description: String {
            switch self.base {
            case .configuration: "configuration"
            case .connect: "connect"
            case .tls: "tls"
            case .rejected: "rejected"
            case .protocolViolation: "protocol violation"
            case .closed: "closed"
            }
        }
    }

    public let kind: Kind
    public let message: String
    /// The relay's error code, for ``Kind/rejected``.
    public let code: ErrorCode?
    /// The Bye's reason, for ``Kind/closed`` after a Bye.
    public let byeReason: ByeReason?

    public init(_ kind: Kind, _ message: String, code: ErrorCode? = nil, byeReason: ByeReason? = nil) {
        self.kind = kind
        self.message = message
        self.code = code
        self.byeReason = byeReason
    }

    public var description: String { self.message }
}
