import Crypto
import Foundation
import RelayClient
import RelayScreen
import RelaySecureChannel
import RelayWire

/// The agents' end-to-end encryption (PROTOCOL.md §5.3, docs/SECURITY.md): always on,
/// right after Paired, before anything else of the session.
enum EndToEnd {
    /// What the handshake proved, for the people at both ends.
    struct Proof: Sendable {
        /// The six digits both sides show.
        var code: String
        /// The name and organization the peer's key signed, printable.
        var signedName: String
        var fingerprint: String

        init(_ transport: SecureTransport<RelayConnection>) {
            self.code = transport.shortAuthenticationString
            let name = PeerText.printable(transport.peer.name, limit: 80)
            let organization = PeerText.printable(transport.peer.organization, limit: 80)
            self.signedName = organization.isEmpty ? name : "\(name) of \(organization)"
            self.fingerprint = KeyFingerprint.of(transport.peer.publicKey)
        }

        /// What this side prints: the code (attended: what to do if the other side's
        /// differs), and the key that signed the other side's name.
        func lines(for role: Role, mode: PairingMode) -> String {
            let signed = "\(role == .host ? "The engineer's" : "The host's") key \(self.fingerprint) signed the name \"\(self.signedName)\"."
            guard mode == .attended else {
                // Unattended, the viewer checks the host's pinned key; no one need be at the host.
                return "Encrypted end to end (security code \(self.code)). \(signed)"
            }
            let other = role == .host ? "the engineer" : "the customer"
            return """
                Security code: \(self.code)  (encrypted end to end; \(other)'s screen shows the same code: \
                compare them over the phone. If they differ, someone is in between: \(role == .host ? "refuse" : "end the session").)
                \(signed)
                """
        }
    }

    /// Runs the handshake on a paired connection. Nil when the session ended first (the
    /// other side left, the relay shut down, the agent was stopped), after saying so
    /// unless `stopped` says the agent was asked to stop.
    static func establish(
        _ connection: RelayConnection, role: Role, identity: Curve25519.Signing.PrivateKey, name: String, organization: String = "", paired: Paired,
        stopped: () -> Bool
    ) async throws -> SecureTransport<RelayConnection>? {
        let local = SecureHandshake.Local(role: role, identity: identity, name: name, organization: organization)
        let other = role == .host ? "the engineer's" : "the customer's"
        let oldAgent = "If this keeps happening, \(other) relay-agent may be too old to encrypt end to end: update it."
        let outcome: SecureTransport<RelayConnection>.Establishment
        do {
            outcome = try await SecureTransport.establish(over: connection, local: local, sessionID: paired.sessionID)
        } catch  where stopped() {
            return nil
        }
        switch outcome {
        case .established(let transport):
            return transport
        case .ended(let bye):
            say("Session ended before it started: \(PeerText.printable(bye.text)). \(bye.reason == .peerLeft ? oldAgent : "")")
            return nil
        case .closed:
            if !stopped() { say("Session ended before it started: the relay closed the connection. \(oldAgent)") }
            return nil
        case .relayError(let error):
            throw ScreenSessionError(relayError: error)
        }
    }

    /// The config folder, made if missing, for the keys and known_hosts.
    static func configFolder() throws -> ConfigFolder {
        let folder = try ConfigFolder.locate()
        try folder.create()
        return folder
    }

    /// Checks an enrolled host's key against the viewer's pin for it, pinning it on first
    /// use. Throws (after telling the host) when the key changed.
    static func checkPin(_ transport: SecureTransport<RelayConnection>, relay: RelayAddress, hostID: String, folder: ConfigFolder) async throws {
        let knownHosts = folder.knownHosts
        let key = transport.peer.publicKey
        do {
            switch try knownHosts.check(relay: "\(relay)", hostID: hostID, key: key) {
            case .known:
                say("Host key \(KeyFingerprint.of(key)) matches the one pinned in \(knownHosts.path).")
            case .unknown:
                _ = try knownHosts.pin(relay: "\(relay)", hostID: hostID, key: key)
                say(
                    "First connection to host \(hostID) from this account: pinned its key \(KeyFingerprint.of(key)) in \(knownHosts.path). Check it once with the host's owner (relay-agent host prints it when it starts)."
                )
            }
        } catch {
            // Printed as it is, lines and all: its text is the user's own file and arguments.
            say(error.description)
            guard error.kind == .keyChanged else {
                try? await transport.sender.send(.bye(Bye(reason: .normal, text: "The viewer could not check the host's key against its known_hosts file.")))
                throw AgentFailure(description: "could not check the host's key against \(knownHosts.path) (see above); the session was not started")
            }
            try? await transport.sender.send(.bye(Bye(reason: .protocolError, text: "The viewer refused the host's key: it is not the one it pinned.")))
            throw AgentFailure(description: "the host's key is not the one pinned for it; the session was not started")
        }
    }
}
