import RelayWire

/// What one relay connection may do next, and what it holds in each phase (PROTOCOL.md
/// §8). Pure: the handler feeds it messages and outcomes and carries out the action it
/// returns.
///
/// Each phase keeps its own data, so the invariants hold by construction: the Hello
/// exists from `awaitingAuth` on; a support code or a registration is held only while
/// waiting for a peer; the session exists exactly while paired. ``close()`` hands back
/// what the connection must release. `Session` is what a paired connection holds (the
/// relay's session and peer link; tests use a plain value).
struct ConnectionStateMachine<Session: Sendable>: Sendable {
    /// The phase, without its data: what tests and logs compare.
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

    /// What an authenticated connection waits with.
    enum Holding: Sendable, Equatable {
        /// Nothing (a viewer between its token check and its request).
        case nothing
        /// A support code issued to this viewer, live in the pairing book.
        case supportCode
        /// This enrolled host's registration in the pairing book.
        case registration(hostID: String)
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

    /// What a closing connection gives back: the code to withdraw, the registration to
    /// remove, the session to end.
    struct Release: Sendable {
        var withdrawCode = false
        var unregisterHostID: String?
        var session: Session?
    }

    private enum Stage: Sendable {
        case awaitingHello
        case awaitingAuth(Hello)
        case authenticating(Hello)
        case waitingForPeer(Hello, Holding)
        /// A host keeps its registration while paired (busy): it is removed at close.
        case paired(Hello, Session, registration: String?)
        /// What the connection held when it closed, until ``close()`` hands it over.
        case closed(Hello?, Release?)
    }

    private var stage = Stage.awaitingHello

    var state: State {
        switch self.stage {
        case .awaitingHello: .awaitingHello
        case .awaitingAuth(let hello): .awaitingAuth(hello.role)
        case .authenticating(let hello): .authenticating(hello.role)
        case .waitingForPeer(let hello, _): .waitingForPeer(hello.role)
        case .paired(let hello, _, _): .paired(hello.role)
        case .closed: .closed
        }
    }

    /// The Hello this connection sent, once accepted (kept after close, for the words of
    /// the peer's Bye).
    var hello: Hello? {
        switch self.stage {
        case .awaitingHello: nil
        case .awaitingAuth(let hello), .authenticating(let hello), .waitingForPeer(let hello, _), .paired(let hello, _, _): hello
        case .closed(let hello, _): hello
        }
    }

    /// The role while the connection is open.
    var role: Role? {
        switch self.stage {
        case .awaitingHello, .closed: nil
        case .awaitingAuth(let hello), .authenticating(let hello), .waitingForPeer(let hello, _), .paired(let hello, _, _): hello.role
        }
    }

    /// The session, exactly while paired.
    var session: Session? {
        if case .paired(_, let session, _) = self.stage { session } else { nil }
    }

    var holding: Holding? {
        if case .waitingForPeer(_, let holding) = self.stage { holding } else { nil }
    }

    var isPaired: Bool { if case .paired = self.stage { true } else { false } }
    var isClosed: Bool { if case .closed = self.stage { true } else { false } }

    /// Whether the Hello/auth deadline still applies.
    var isHandshaking: Bool {
        switch self.stage {
        case .awaitingHello, .awaitingAuth, .authenticating: true
        default: false
        }
    }

    /// The state check of PROTOCOL.md §8.2 for a relay-control message that decoded. The
    /// handler has already checked the frame header and decoded the payload (§8.2, "Order
    /// of checks").
    mutating func received(_ message: RelayMessage) -> Action {
        switch (self.stage, message) {
        case (.closed, _):
            return .none
        case (.awaitingHello, .hello(let hello)):
            guard hello.version == RelayProtocol.version else { return self.unsupportedVersion(hello.version) }
            self.stage = .awaitingAuth(hello)
            return .acceptHello(hello)
        case (.paired, .bye(let bye)):
            self.enterClosed()
            return .endSession(bye)
        case (_, .bye):
            // Leaving is allowed in every state, even before Hello: an Error would only
            // answer someone who is going anyway (PROTOCOL.md §5.1.10).
            self.enterClosed()
            return .close
        case (.awaitingHello, _):
            // Hello MUST be the first frame, and Ping is no exception: until Hello names the
            // version, no other message has a layout the relay can rely on (§5.1.1, §5.1.8).
            self.enterClosed()
            return .fail(.unexpectedMessage, "the first frame must be Hello, not \(message.type.name); see PROTOCOL.md §5.1.1")
        case (_, .ping(let ping)):
            return .send(.pong(Pong(nonce: ping.nonce)))
        case (_, .pong):
            return .none
        case (.awaitingAuth(let hello), .hostAuth(let auth)) where hello.role == .host:
            self.stage = .authenticating(hello)
            return .authenticateHost(auth)
        case (.awaitingAuth(let hello), .viewerAuth(let auth)) where hello.role == .viewer:
            self.stage = .authenticating(hello)
            return .authenticateViewer(auth)
        default:
            let state = self.state
            self.enterClosed()
            return .fail(.unexpectedMessage, "\(message.type.name) is not allowed \(state.name); see PROTOCOL.md §8 for the order of messages")
        }
    }

    /// A Hello of a version this relay does not speak, whose payload may not decode at all:
    /// its first two bytes are the version in every version (PROTOCOL.md §5.1.1).
    mutating func receivedHello(ofVersion version: UInt16) -> Action {
        guard case .awaitingHello = self.stage else { return self.received(.hello(Hello(version: version, role: .host, capabilities: [], software: ""))) }
        return self.unsupportedVersion(version)
    }

    private mutating func unsupportedVersion(_ version: UInt16) -> Action {
        self.enterClosed()
        return .fail(
            .unsupportedVersion,
            "this relay speaks RelayWire \(RelayProtocol.version), the agent sent version \(version); update relay-agent or the relay so they match"
        )
    }

    /// Peer-message bytes arrived; only a paired connection may send them.
    mutating func receivedPeerData() -> Action {
        if self.isPaired || self.isClosed { return .none }
        let state = self.state
        self.enterClosed()
        return .fail(.unexpectedMessage, "peer messages (screen, input, clipboard) are not allowed \(state.name); wait for Paired")
    }

    /// The credentials were accepted; the connection now waits for a peer.
    mutating func authenticationSucceeded() {
        if case .authenticating(let hello) = self.stage { self.stage = .waitingForPeer(hello, .nothing) }
    }

    /// The connection now holds `holding` in the pairing book (a code issued to it, its
    /// host registration); false if it is no longer waiting (it must be given back).
    mutating func holds(_ holding: Holding) -> Bool {
        guard case .waitingForPeer(let hello, _) = self.stage else { return false }
        self.stage = .waitingForPeer(hello, holding)
        return true
    }

    /// The relay took back what the connection held (its code expired or was withdrawn).
    mutating func lostHolding() {
        if case .waitingForPeer(let hello, _) = self.stage { self.stage = .waitingForPeer(hello, .nothing) }
    }

    /// Paired into `session`; returns false if the connection is no longer waiting (it
    /// closed meanwhile), and the session must be ended.
    mutating func pairedWithPeer(_ session: Session) -> Bool {
        guard case .waitingForPeer(let hello, let holding) = self.stage else { return false }
        // A support code was used up by the pairing; a host's registration stays (busy).
        var registration: String?
        if case .registration(let hostID) = holding { registration = hostID }
        self.stage = .paired(hello, session, registration: registration)
        return true
    }

    /// The other side ended the session: closing will not end it again.
    mutating func peerEndedSession() {
        if case .paired(let hello, _, let registration) = self.stage { self.stage = .closed(hello, Release(unregisterHostID: registration)) }
    }

    mutating func handshakeDeadlinePassed() -> Action {
        guard self.isHandshaking else { return .none }
        let state = self.state
        self.enterClosed()
        return .fail(.timeout, "Hello and authentication must finish within the relay's deadline; the connection was still \(state.name)")
    }

    /// Closes the connection; returns what it held, once (a second close returns nothing).
    /// A connection the machine closed itself (a Bye, an error, the deadline) gives back
    /// here what it held at that moment.
    @discardableResult
    mutating func close() -> Release {
        if case .closed(let hello, let pending) = self.stage {
            self.stage = .closed(hello, nil)
            return pending ?? Release()
        }
        let release = self.held
        self.stage = .closed(self.hello, nil)
        return release
    }

    /// Closed by the machine: what the connection holds waits for ``close()``.
    private mutating func enterClosed() {
        guard !self.isClosed else { return }
        self.stage = .closed(self.hello, self.held)
    }

    /// What the connection holds in its current phase.
    private var held: Release {
        var release = Release()
        switch self.stage {
        case .waitingForPeer(_, .supportCode): release.withdrawCode = true
        case .waitingForPeer(_, .registration(let hostID)): release.unregisterHostID = hostID
        case .paired(_, let session, let registration):
            release.session = session
            release.unregisterHostID = registration
        default: break
        }
        return release
    }
}
