/// An error decoding or encoding RelayWire frames and messages.
///
/// Errors are a struct with an extensible ``Kind`` and a message that says what was
/// wrong and where, in the style of `NIOSSHError`. Every malformed input maps to one of
/// these; the decoder never traps and never waits for bytes that a header already
/// ruled out.
public struct WireError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What class of problem this is; stable, switchable, and documented in PROTOCOL.md §6.
    public struct Kind: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case truncatedFrame
            case frameTooLarge
            case unknownMessageType
            case truncatedMessage
            case trailingBytes
            case invalidUTF8
            case invalidField
            case fieldTooLong
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The connection ended in the middle of a frame.
        public static let truncatedFrame = Kind(.truncatedFrame)
        /// A frame header announced a payload longer than the receiver's limit.
        public static let frameTooLarge = Kind(.frameTooLarge)
        /// A frame header carried a type byte this protocol version does not define.
        public static let unknownMessageType = Kind(.unknownMessageType)
        /// A payload ended before all of its message's fields were read.
        public static let truncatedMessage = Kind(.truncatedMessage)
        /// A payload held bytes after its message's last field.
        public static let trailingBytes = Kind(.trailingBytes)
        /// A text field was not valid UTF-8.
        public static let invalidUTF8 = Kind(.invalidUTF8)
        /// A field held a value outside its allowed set (unknown role, zero width, …).
        public static let invalidField = Kind(.invalidField)
        /// A value was too long for its length prefix (sender-side only).
        public static let fieldTooLong = Kind(.fieldTooLong)

        public var description: String {
            switch base {
            case .truncatedFrame: "truncated frame"
            case .frameTooLarge: "frame too large"
            case .unknownMessageType: "unknown message type"
            case .truncatedMessage: "truncated message"
            case .trailingBytes: "trailing bytes"
            case .invalidUTF8: "invalid UTF-8"
            case .invalidField: "invalid field"
            case .fieldTooLong: "field too long"
            }
        }
    }

    public let kind: Kind
    /// A sentence for a person: what was wrong, with the numbers involved.
    public let message: String

    @usableFromInline
    package init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { "\(kind): \(message)" }
}
