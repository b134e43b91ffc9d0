import RelayWire

/// What one relay connection may do next (PROTOCOL.md §8). Pure: the handler feeds it
/// messages and outcomes and carries out the action it returns.
struct ConnectionStateMachine: Sendable {
    enum State: Sendable, Equatable {
        case awaitingHello
        case awaitingAuth(Role)
        case authenticating(Role)
        case waitingForPeer(Role)
        case paired(Role)
        case closed

        var name: String {
            switch self {
            case .awaitingHello: "before Hello"
            case .awaitingAuth: "before authentication"
            case .authenticating: "during authentication"
            case .waitingForPeer: "while waiting for a peer"
            case .paired: "while paired"
            case .closed: "after close"
            }
        }
    }

    enum Action: Sendable, Equatable {
        case none
        /// Answer the Hello.
        case acceptHello(Hello)
        case send(RelayMessage)
        /// Check credentials (asynchronously) and report back with ``authenticationSucceeded()``.
        case authenticateHost(HostAuth)
        case authenticateViewer(ViewerAuth)
        /// The peer said Bye: end the session and tell the other side.
        case endSession(Bye)
        /// Send Error and close.
        case fail(ErrorCode, String)
        /// Close without a word (a Bye arrived before pairing).
        case close
    }

    private(set) var state: State = .awaitingHello

    var role: Role? {
        switch self.state {
        case .awaitingHello, .closed: nil
        case .awaitingAuth(let role), .authenticating(let role), .waitingForPeer(let role), .paired(let role): role
        }
    }

    var isPaired: Bool { if case .paired = self.state { true } else { false } }

    /// Whether the Hello/auth deadline still applies.
    var isHandshaking: Bool {
        switch self.state {
        case .awaitingHello, .awaitingAuth, .authenticating: true
        default: false
        }
    }

    /// The state check of PROTOCOL.md §8.2 for a relay-control message that decoded. The
    /// handler has already checked the frame header and decoded the payload (§8.2, "Order
    /// of checks"); a Hello of another version arrives here as a Hello with that version.
    mutating func received(_ message: RelayMessage) -> Action {
        switch (self.state, message) {
        case (.closed, _):
            return .none
        case (.awaitingHello, .hello(let hello)):
            guard hello.version == RelayProtocol.version else {
                self.state = .closed
                return .fail(.unsupportedVersion, "this relay speaks RelayWire \(RelayProtocol.version), the agent sent version \(hello.version); update relay-agent or the relay so they match")
            }
            self.state = .awaitingAuth(hello.role)
            return .acceptHello(hello)
        case (.paired, .bye(let bye)):
            self.state = .closed
            return .endSession(bye)
        case (_, .bye):
            // Leaving is allowed in every state, even before Hello: an Error would only
            // answer someone who is going anyway (PROTOCOL.md §5.1.10).
            self.state = .closed
            return .close
        case (.awaitingHello, _):
            // Hello MUST be the first frame, and Ping is no exception: until Hello names the
            // version, no other message has a layout the relay can rely on (§5.1.1, §5.1.8).
            self.state = .closed
            return .fail(.unexpectedMessage, "the first frame must be Hello, not \(message.type.name); see PROTOCOL.md §5.1.1")
        case (_, .ping(let ping)):
            return .send(.pong(Pong(nonce: ping.nonce)))
        case (_, .pong):
            return .none
        case (.awaitingAuth(.host), .hostAuth(let auth)):
            self.state = .authenticating(.host)
            return .authenticateHost(auth)
        case (.awaitingAuth(.viewer), .viewerAuth(let auth)):
            self.state = .authenticating(.viewer)
            return .authenticateViewer(auth)
        default:
            let state = self.state
            self.state = .closed
            return .fail(.unexpectedMessage, "\(message.type.name) is not allowed \(state.name); see PROTOCOL.md §8 for the order of messages")
        }
    }

    /// Peer-message bytes arrived; only a paired connection may send them.
    mutating func receivedPeerData() -> Action {
        if self.isPaired || self.state == .closed { return .none }
        let state = self.state
        self.state = .closed
        return .fail(.unexpectedMessage, "peer messages (screen, input, clipboard) are not allowed \(state.name); wait for Paired")
    }

    mutating func authenticationSucceeded() {
        if case .authenticating(let role) = self.state { self.state = .waitingForPeer(role) }
    }

    /// Returns false if the connection is no longer waiting (it closed meanwhile).
    mutating func pairedWithPeer() -> Bool {
        guard case .waitingForPeer(let role) = self.state else { return false }
        self.state = .paired(role)
        return true
    }

    mutating func handshakeDeadlinePassed() -> Action {
        guard self.isHandshaking else { return .none }
        let state = self.state
        self.state = .closed
        return .fail(.timeout, "Hello and authentication must finish within the relay's deadline; the connection was still \(state.name)")
    }

    mutating func close() { self.state = .closed }
}
