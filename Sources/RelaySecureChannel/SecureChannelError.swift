/// Why the end-to-end channel between host and viewer failed. Each says what happened and
/// what the user can do; ``kind`` tells the cause for code that reacts to it.
public struct SecureChannelError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        /// The other side sent a plaintext peer message: it does not encrypt end to end.
        case peerWithoutEncryption
        /// The other side speaks another version of the end-to-end protocol.
        case unsupportedVersion
        /// The handshake broke its rules: a message out of order, a key share that does not
        /// match its commitment, a key that does not agree, a signature that does not verify.
        case handshakeFailed
        /// A record did not open: it was altered, replayed, reordered or dropped in transit.
        case recordRejected
        /// A record opened but held something the protocol does not allow there.
        case unexpectedMessage
        /// The other side ended the session, or the connection closed, during the handshake.
        case endedDuringHandshake
        /// This side could not send a record: the channel cannot go on (a local failure,
        /// not the relay's).
        case sendFailed
    }

    public let kind: Kind
    public let description: String

    init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }

    static func tampered(_ detail: String) -> SecureChannelError {
        SecureChannelError(
            .recordRejected,
            "end-to-end check failed (\(detail)): a message between host and viewer was altered, replayed, reordered or dropped on the way, by the relay or someone between you and it; the session was ended. Connect again; if it happens again, tell your administrator"
        )
    }

    static func plaintext(_ type: String, from role: String) -> SecureChannelError {
        SecureChannelError(
            .peerWithoutEncryption,
            "the other side does not encrypt end to end; update relay-agent (the \(role) sent \(type) unencrypted: an old relay-agent, or the relay altered the session); the session was ended"
        )
    }
}
