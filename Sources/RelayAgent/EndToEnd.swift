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

    /// The company's policy (CodeIssued `confirmSecurityCode`, PROTOCOL.md §5.1.5): before
    /// the session starts on this side, so before any input is sent, the engineer types the
    /// security code the customer reads out; a different one ends the session.
    static func confirmSecurityCode(_ transport: SecureTransport<RelayConnection>) async throws {
        let code = transport.shortAuthenticationString
        let expected = code.filter(\.isNumber)
        say(
            "Your company requires you to confirm the security code before the session starts. Ask the customer to read out the security code on their screen, and type it here (2 minutes):"
        )
        for _ in 0..<3 {
            switch await TerminalInput.readLine(within: .seconds(120)) {
            case .text(let line):
                let typed = line.filter(\.isNumber)
                if typed == expected {
                    say("The codes match: nobody is in between.")
                    return
                }
                guard typed.count == 6 else {
                    say("Type the six digits the customer reads out, e.g. \(code):")
                    continue
                }
                let text =
                    "The engineer was read a different security code than the one this screen shows: someone may be in between, so the session was ended."
                try? await transport.sender.send(.bye(Bye(reason: .protocolError, text: text)))
                throw AgentFailure(
                    description:
                        "the customer's security code (\(typed.prefix(3)) \(typed.suffix(3))) is not yours (\(code)): someone may be in between (the relay, or whoever holds its key), so the session was ended. Call the customer back and start a new session"
                )
            case .timedOut:
                break
            case .endOfInput:
                try? await transport.sender.send(.bye(Bye(reason: .normal, text: "The engineer could not confirm the security code.")))
                throw AgentFailure(
                    description:
                        "your company requires you to type the customer's security code, but there is no input to read it from: run relay-agent view in a terminal"
                )
            }
            break
        }
        try? await transport.sender.send(.bye(Bye(reason: .normal, text: "The engineer did not confirm the security code in time.")))
        throw AgentFailure(description: "the security code was not confirmed within 2 minutes (or 3 tries); your company requires it, so the session was ended")
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
