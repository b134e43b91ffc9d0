import Foundation

/// A transport's word that the agent at the other end holds the private half of this
/// Ed25519 public key (raw 32 bytes), sent as a user inbound event before the agent's
/// first frame. The TLS transport sends it when the agent's client certificate carried
/// the key and TLS's CertificateVerify proved it (``AgentKeyCertificate``, PROTOCOL.md
/// §1.2); a transport that proves no key sends nothing, and key logins on it are refused.
struct ClientKeyProved: Sendable, Hashable {
    let publicKey: Data
}

/// A transport's word that the client is a browser signed in to the web console as this
/// engineer: the WebSocket upgrade carried a live session cookie and that session's CSRF
/// token (``WebApplication/authorizeWebSocket(headers:uri:)``, PROTOCOL.md §1.3). Sent as a
/// user inbound event before the first frame; a ViewerAuth with an empty token then logs
/// the engineer in.
struct WebSessionProved: Sendable, Hashable {
    let engineerID: String
    /// The session id's SHA-256, as the store keeps it: the relay ends the connection when
    /// the session ends (sign-out, a reset, a new password; ``Relay/checkCredentials()``).
    let sessionDigest: Data
}

/// A web-port connection streams a response to a signed-in request (an export), or
/// finished one: the core's deadlines pause meanwhile (``WebRequestHandler``). The
/// request was authorized, so the handshake deadline ends for good; the idle timeout
/// counts again from the stream's end.
struct WebResponseStreaming: Sendable, Hashable {
    let active: Bool
}
