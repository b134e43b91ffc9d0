import Foundation
import NIOCore
import RelayStore
import RelayWire

/// What one relay connection may do next, and what it holds in each phase (PROTOCOL.md
/// §8). Pure: the handler feeds it messages, the relay's answers (throttle, redemption,
/// credential check, claim) and deadlines, and carries out the action it returns. Every
/// decision of a connection is made here: which message is allowed, what an agent is
/// told and why, what the access log records, who the peer learns left and why.
///
/// Each phase keeps its own data, so the invariants hold by construction: the Hello
/// exists from `awaitingAuth` on; the credentials exist only while they are checked; a
/// support code or a registration is held only while waiting for a peer; the session
/// exists exactly while paired. ``close()`` hands back what the connection must release
/// and what the other side of its session is told.
///
/// `Peer` is the relay's handle on another connection (``ConnectionLink``) and `Session`
/// what a paired connection holds; tests use plain values.
struct ConnectionStateMachine<Peer: AnyObject & Sendable, Session: Sendable>: Sendable {
    typealias Pairing = PairingBook<Peer, Peer>

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

    /// The credentials an agent presented, while they are checked (PROTOCOL.md §5.1.3-4).
    /// A key is the raw Ed25519 public key the transport proved (the TLS client
    /// certificate, PROTOCOL.md §1.2); nil when the connection presented none.
    enum Credentials: Sendable, Equatable {
        case supportCode(SupportCode, machineName: String?)
        /// Legacy: a replayable secret (hosts enrolled before key login).
        case host(id: String, secret: String)
        case hostKey(id: String, key: Data?)
        /// Legacy: a replayable token (engineers added before key login).
        case engineer(token: String, request: ViewerAuth.Request)
        case engineerKey(key: Data?, request: ViewerAuth.Request)
        /// A browser signed in to the web console: the WebSocket's cookie named the
        /// engineer before any frame (``ConnectionStateMachine/webSessionProved(engineerID:sessionDigest:)``).
        case engineerSession(engineerID: String, session: Data, request: ViewerAuth.Request)
        /// A node of the cluster speaks for a host on it that presented `code`, issued here
        /// (NodeAuth request 2, PROTOCOL.md §5.1.12).
        case nodeCode(SupportCode, hostName: String, agentAddress: String)

        init(_ auth: HostAuth, key: Data?) {
            switch auth {
            case .supportCode(let code): self = .supportCode(code, machineName: nil)
            case .namedSupportCode(let code, let name): self = .supportCode(code, machineName: name)
            case .enrolled(let hostID, let secret): self = .host(id: hostID, secret: secret)
            case .key(let hostID): self = .hostKey(id: hostID, key: key)
            }
        }

        init(_ auth: ViewerAuth, key: Data?, webSession: (engineerID: String, digest: Data)?) {
            if auth.usesKey, let webSession {
                self = .engineerSession(engineerID: webSession.engineerID, session: webSession.digest, request: auth.request)
            } else {
                self = auth.usesKey ? .engineerKey(key: key, request: auth.request) : .engineer(token: auth.token, request: auth.request)
            }
        }

        /// The access log's name for the attempt.
        var kind: AccessEvent.Kind {
            switch self {
            case .supportCode, .nodeCode: .supportCode
            case .host: .hostSecret
            case .hostKey: .hostKey
            case .engineer: .viewerToken
            case .engineerKey: .engineerKey
            case .engineerSession: .webSession
            }
        }

        /// The account a wrong attempt claimed, watched for alerts and never locked (issue
        /// 10 item 11); nil for a support code, which names no account, and for a key that
        /// belongs to no engineer.
        var account: String? {
            switch self {
            case .supportCode, .nodeCode, .engineerKey, .engineerSession: nil
            case .host(let id, _), .hostKey(let id, _): "host:" + String(id.prefix(64))
            case .engineer(let token, _): "engineer:" + String((Secrets.splitToken(token)?.id ?? "malformed").prefix(64))
            }
        }

        /// What the access log says of a login that works but sends a replayable secret.
        static var legacyNote: String { "legacy token login: replayable; set a key (docs/OPERATIONS.md \"Moving accounts to keys\")" }
    }

    /// One access-log entry, as the relay should write it (OPERATIONS.md "The access log").
    struct AccessNote: Sendable, Equatable {
        var kind: AccessEvent.Kind
        var outcome: AccessEvent.Outcome
        var companyID: String?
        var subject: String?
        var detail: String?
    }

    /// An authentication attempt the relay turns down: what the agent is told, what the
    /// access log records, and what the attempt is charged.
    struct Refusal: Sendable, Equatable {
        var code: ErrorCode
        var text: String
        var access: AccessNote
        /// A wrong credential: charge its source (``AuthThrottle``) and watch `account`.
        var chargesSource = false
        var account: String?
        /// This failure spent the relay-wide guess budget: redemption is paused this long
        /// (log it: a guessing attack is likely under way).
        var pausedRedemptionFor: TimeAmount?
    }

    /// What a connection's closing tells the other side of its session, and why the
    /// usage history says the session ended.
    struct Ending: Sendable, Equatable {
        var peerReason: ByeReason
        var peerText: String
        var recorded: ByeReason
    }

    /// A step the relay carries out for the machine (``ConnectionEnvironment/answer(_:for:source:)``):
    /// the throttle, the pairing book and the store are the relay's, not the connection's.
    enum Question: Sendable, Equatable {
        /// May this source try a credential now?
        case throttle
        /// Redeem a support code, wherever in the cluster it was issued; `host` is who the
        /// connection will be if it is valid (its company is the code's).
        case redeem(SupportCode, host: Party)
        /// Take a support code issued on this node, for a host on another node that
        /// presented it there (NodeAuth): no guess is charged, the node that asked did.
        case takeCode(SupportCode)
        /// Check an enrolled host's secret (asynchronously).
        case verifyHost(id: String, secret: String)
        /// Check that this is the key of this enrolled host (asynchronously).
        case verifyHostKey(id: String, key: Data)
        /// Check an engineer's token (asynchronously).
        case verifyEngineer(token: String)
        /// Find the engineer whose key this is (asynchronously).
        case verifyEngineerKey(Data)
        /// Check that the web session still exists and its engineer too (asynchronously).
        case verifyEngineerSession(engineerID: String, session: Data)
        /// Issue a support code to this viewer.
        case issueCode(engineerID: String, companyID: String)
        /// Claim an enrolled host for this viewer: registered with this node, or (with
        /// `anywhere`) with another node of the cluster.
        case claimHost(hostID: String, companyID: String, anywhere: Bool)
    }

    /// The relay's answer to a ``Question``.
    enum Answer: Sendable {
        case throttle(retryAfter: TimeAmount?, source: SourceKey)
        case redeemed(Pairing.CodeAttempt)
        case host(EnrolledHost?)
        case engineer(Engineer?)
        /// The store failed while checking credentials.
        case verificationFailed
        case codeIssued(SupportCode, validFor: TimeAmount)
        case claimed(Pairing.Claim, hostID: String)
        /// Another node of the cluster, needed for this pairing, could not be reached or
        /// failed: the text says which and what to do.
        case clusterFailed(String)
    }

    enum Action: Sendable {
        case none
        /// Answer the Hello with HelloAck.
        case acceptHello(Hello)
        case send(RelayMessage)
        /// Carry out an authentication or pairing step; report with ``answered(_:)``.
        case ask(Question)
        /// The credentials were accepted: this connection is `party` now; the handshake
        /// deadline ends, the payload limit rises (PROTOCOL.md §9); log `access` (nil for a
        /// node link: the node that asked logged the agent's login); then `then`.
        indirect case authenticated(Party, access: AccessNote?, then: Action)
        /// Register the host in the pairing book, then send `announce`.
        case registerHost(hostID: String, companyID: String, announce: HostRegistered)
        /// Start a session between this connection and `peer`.
        case pair(Peer, PairingMode)
        /// Record the refused attempt, then send Error and close.
        case refuse(Refusal)
        /// Send Error and close.
        case fail(ErrorCode, String)
        /// Send Bye and close.
        case leave(ByeReason, String)
        /// Close without a word (the agent said Bye).
        case close
    }

    /// What a closing connection gives back: the code to withdraw, the registration to
    /// remove, the session to end and what its other side is told.
    struct Release: Sendable {
        var withdrawCode = false
        var unregisterHostID: String?
        var session: Session?
        var ending: Ending
    }

    private enum Stage: Sendable {
        case awaitingHello
        case awaitingAuth(Hello)
        case authenticating(Hello, Credentials)
        case waitingForPeer(Hello, Holding)
        /// A host keeps its registration while paired (busy): it is removed at close.
        case paired(Hello, Session, registration: String?)
        /// What the connection held when it closed, until ``close()`` hands it over.
        case closed(Hello?, Release?)
    }

    private var stage = Stage.awaitingHello
    /// Whether the relay counted this connection in (false: full or shutting down).
    private var relayHasRoom = true
    /// The engineer's company requires them to confirm the security code (sent in CodeIssued).
    private var confirmSecurityCode = false
    /// The source's IP address, for an attended host's displayed name.
    private let address: String
    /// The key the transport proved (PROTOCOL.md §1.2), for a key login.
    private var clientKey: Data?
    /// This connection came in on the cluster port: it is a node link (NodeAuth), whose TLS
    /// proved the cluster key; agents' logins are not taken here.
    private(set) var isNodeLink = false
    /// The engineer the transport's web session named (PROTOCOL.md §1.3), for a browser's login.
    private var webEngineerID: String?
    private var webSessionDigest: Data?

    init(address: String = "unknown") {
        self.address = address
    }

    var state: State {
        switch self.stage {
        case .awaitingHello: .awaitingHello
        case .awaitingAuth(let hello): .awaitingAuth(hello.role)
        case .authenticating(let hello, _): .authenticating(hello.role)
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
        case .awaitingAuth(let hello), .authenticating(let hello, _), .waitingForPeer(let hello, _), .paired(let hello, _, _): hello
        case .closed(let hello, _): hello
        }
    }

    /// The role while the connection is open.
    var role: Role? { self.isClosed ? nil : self.hello?.role }

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

    /// This side, in words for the other side's Bye.
    private var who: String {
        switch self.hello?.role {
        case .viewer: "the engineer"
        case .host: "the host"
        case nil: "the other side"
        }
    }

    // MARK: Messages

    /// The transport proved that the agent holds the private half of this raw Ed25519
    /// public key (the TLS client certificate, PROTOCOL.md §1.2).
    mutating func clientKeyProved(_ key: Data) {
        self.clientKey = key
    }

    /// The transport is a browser's WebSocket whose sign-in cookie named this engineer
    /// (PROTOCOL.md §1.3): a ViewerAuth with an empty token logs them in.
    mutating func webSessionProved(engineerID: String, sessionDigest: Data) {
        self.webEngineerID = engineerID
        self.webSessionDigest = sessionDigest
    }

    /// The connection came in on the cluster port (its TLS proved the cluster key): it may
    /// send NodeAuth, and nothing else logs in.
    mutating func onClusterPort() {
        self.isNodeLink = true
    }

    /// The relay could not count the connection in: its Hello is answered with
    /// `Error(relay_full)`.
    mutating func relayIsFull() {
        self.relayHasRoom = false
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
            guard self.relayHasRoom else { return self.fail(.relayFull, "the relay is at its connection limit or shutting down; retry in a minute") }
            return .acceptHello(hello)
        case (.paired, .bye(let bye)) where self.isNodeLink:
            // The node that asked says why its agent's side ended, in the reason the usage
            // history keeps, and with the words for this side's agent (NodeLinkHandler).
            let peerReason: ByeReason = [.declined, .relayShutdown, .protocolError].contains(bye.reason) ? bye.reason : .peerLeft
            self.enterClosed(Ending(peerReason: peerReason, peerText: bye.text, recorded: ByeReason.known.contains(bye.reason) ? bye.reason : .normal))
            return .close
        case (.paired, .bye(let bye)):
            // The usage history keeps why the agent ended it (`normal`, …); the peer is
            // told `peer_left`, or `declined` when a customer refused (PROTOCOL.md §6.2).
            self.enterClosed(
                Ending(
                    peerReason: bye.reason == .declined ? .declined : .peerLeft,
                    peerText: "\(self.who) ended the session (\(bye.reason.name)): \(bye.text)",
                    recorded: ByeReason.known.contains(bye.reason) && bye.reason != .relayRestart ? bye.reason : .normal
                ))
            return .close
        case (_, .bye):
            // Leaving is allowed in every state, even before Hello: an Error would only
            // answer someone who is going anyway (PROTOCOL.md §5.1.10).
            self.enterClosed(Ending(peerReason: .peerLeft, peerText: "the other side left", recorded: .peerLeft))
            return .close
        case (.awaitingHello, _):
            // Hello MUST be the first frame, and Ping is no exception: until Hello names the
            // version, no other message has a layout the relay can rely on (§5.1.1, §5.1.8).
            return self.fail(.unexpectedMessage, "the first frame must be Hello, not \(message.type.name); see PROTOCOL.md §5.1.1")
        case (_, .ping(let ping)):
            return .send(.pong(Pong(nonce: ping.nonce)))
        case (_, .pong):
            return .none
        case (.awaitingAuth(let hello), .nodeAuth(let auth)) where self.isNodeLink:
            return self.nodeAuthenticated(hello, auth)
        case (.awaitingAuth, .hostAuth) where self.isNodeLink, (.awaitingAuth, .viewerAuth) where self.isNodeLink:
            return self.fail(.unexpectedMessage, "this is the cluster port, for node links between relay nodes (NodeAuth); agents connect to the relay port")
        case (.awaitingAuth(let hello), .hostAuth(let auth)) where hello.role == .host:
            self.stage = .authenticating(hello, Credentials(auth, key: self.clientKey))
            return .ask(.throttle)
        case (.awaitingAuth(let hello), .viewerAuth(let auth)) where hello.role == .viewer:
            let webSession = self.webEngineerID.flatMap { id in self.webSessionDigest.map { (engineerID: id, digest: $0) } }
            self.stage = .authenticating(hello, Credentials(auth, key: self.clientKey, webSession: webSession))
            return .ask(.throttle)
        default:
            return self.fail(.unexpectedMessage, "\(message.type.name) is not allowed \(self.state.name); see PROTOCOL.md §8 for the order of messages")
        }
    }

    /// A control frame arrived: its message, or a Hello of another version (which may
    /// not decode at all), or a malformed message (PROTOCOL.md §5.1.1, §8.2).
    mutating func received(frame: Frame) -> Action {
        guard !self.isClosed else { return .none }
        do {
            return self.received(try RelayMessage(frame))
        } catch {
            if frame.type == .hello, let version = frame.payload.getInteger(at: frame.payload.readerIndex, as: UInt16.self), version != RelayProtocol.version {
                return self.receivedHello(ofVersion: version)
            }
            return self.receivedMalformed(.malformedMessage, error.description)
        }
    }

    /// A Hello of a version this relay does not speak, whose payload may not decode at all:
    /// its first two bytes are the version in every version (PROTOCOL.md §5.1.1).
    mutating func receivedHello(ofVersion version: UInt16) -> Action {
        guard case .awaitingHello = self.stage else { return self.received(.hello(Hello(version: version, role: .host, capabilities: [], software: ""))) }
        return self.unsupportedVersion(version)
    }

    private mutating func unsupportedVersion(_ version: UInt16) -> Action {
        self.fail(
            .unsupportedVersion,
            "this relay speaks RelayWire \(RelayProtocol.version), the agent sent version \(version); update relay-agent or the relay so they match"
        )
    }

    /// Peer-message bytes arrived; only a paired connection may send them.
    mutating func receivedPeerData() -> Action {
        if self.isPaired || self.isClosed { return .none }
        return self.fail(.unexpectedMessage, "peer messages (screen, input, clipboard) are not allowed \(self.state.name); wait for Paired")
    }

    /// The bytes broke the framing or a message's layout (PROTOCOL.md §2, §8.2).
    mutating func receivedMalformed(_ code: ErrorCode, _ text: String) -> Action {
        guard !self.isClosed else { return .none }
        return self.fail(code, text)
    }

    // MARK: Authentication

    /// The relay answered the last ``Question``.
    mutating func answered(_ answer: Answer) -> Action {
        switch answer {
        case .throttle(let wait, let source): self.throttleChecked(retryAfter: wait, source: source)
        case .redeemed(let attempt): self.redeemed(attempt)
        case .host(let host): self.hostVerified(host)
        case .engineer(let engineer): self.engineerVerified(engineer)
        case .verificationFailed: self.verificationFailed()
        case .codeIssued(let code, let validity): self.codeIssued(code, validFor: validity)
        case .claimed(let claim, let hostID): self.claimed(claim, hostID: hostID)
        case .clusterFailed(let text): self.clusterFailed(text)
        }
    }

    /// A node of the cluster speaks for one of its agents (PROTOCOL.md §5.1.12): the
    /// cluster key it proved is its credential, and what it says of the agent is trusted.
    private mutating func nodeAuthenticated(_ hello: Hello, _ auth: NodeAuth) -> Action {
        // Only an address goes into logs and the usage history: printable ASCII, 64 at most.
        var auth = auth
        auth.agentAddress = String(String.UnicodeScalarView(auth.agentAddress.unicodeScalars.filter { (0x21...0x7E).contains($0.value) }.prefix(64)))
        switch auth.request {
        case .connect(let hostID, let companyID, let engineer, let organization, let inBrowser):
            guard hello.role == .viewer else { return self.fail(.malformedMessage, "NodeAuth request 1 (connect to a host) needs Hello role viewer") }
            self.stage = .waitingForPeer(hello, .nothing)
            let party = Party(
                name: engineer, companyID: companyID, organization: organization, software: hello.software, capabilities: hello.capabilities,
                inBrowser: inBrowser, agentAddress: auth.agentAddress
            )
            return .authenticated(party, access: nil, then: .ask(.claimHost(hostID: hostID, companyID: companyID, anywhere: false)))
        case .redeem(let code, let hostName):
            guard hello.role == .host else { return self.fail(.malformedMessage, "NodeAuth request 2 (redeem a support code) needs Hello role host") }
            self.stage = .authenticating(hello, .nodeCode(code, hostName: hostName, agentAddress: auth.agentAddress))
            return .ask(.takeCode(code))
        }
    }

    /// Another node this pairing needed failed (it does not answer, or broke off).
    mutating func clusterFailed(_ text: String) -> Action {
        switch self.stage {
        case .authenticating, .waitingForPeer: return self.fail(.internalError, text)
        default: return .none
        }
    }

    /// The throttle's answer for this source (``AuthThrottle``): refused unchecked while
    /// it waits out a penalty (PROTOCOL.md §8.5), otherwise on to the check.
    mutating func throttleChecked(retryAfter wait: TimeAmount?, source: SourceKey) -> Action {
        guard case .authenticating(_, let credentials) = self.stage else { return .none }
        if let wait {
            return self.refuse(
                Refusal(
                    code: .rateLimited, text: AuthThrottle.blockedMessage(retryAfter: wait, source: source),
                    access: AccessNote(kind: credentials.kind, outcome: .throttled)
                ))
        }
        switch credentials {
        case .supportCode(let code, let machineName):
            guard let hello = self.hello else { return .none }
            let host = Party(
                name: AttendedHostName.display(machineName: machineName, address: self.address), companyID: "", software: hello.software,
                capabilities: hello.capabilities)
            return .ask(.redeem(code, host: host))
        case .nodeCode: return .none
        case .host(let id, let secret): return .ask(.verifyHost(id: id, secret: secret))
        case .hostKey(let id, let key?): return .ask(.verifyHostKey(id: id, key: key))
        case .engineer(let token, _): return .ask(.verifyEngineer(token: token))
        case .engineerKey(let key?, _): return .ask(.verifyEngineerKey(key))
        case .engineerSession(let engineerID, let session, _): return .ask(.verifyEngineerSession(engineerID: engineerID, session: session))
        case .hostKey(_, nil), .engineerKey(nil, _):
            // Not a guess: an agent that asked for a key login without presenting a key.
            return self.refuse(
                Refusal(
                    code: .authenticationFailed,
                    text:
                        "a key login needs the agent's key as its TLS client certificate, and none arrived: update relay-agent, and check that nothing between it and the relay ends TLS (a TLS-inspecting proxy); PROTOCOL.md §1.2",
                    access: AccessNote(kind: credentials.kind, outcome: .rejected, detail: "no client certificate")
                ))
        }
    }

    /// What the pairing book made of the support code this host presented.
    mutating func redeemed(_ attempt: Pairing.CodeAttempt) -> Action {
        if case .authenticating(let hello, .nodeCode(_, let hostName, let agentAddress)) = self.stage {
            guard case .paired(let issued) = attempt else {
                // The asking node claimed the code in the database a moment ago: it ran out
                // since, or its viewer left. Not a guess; nothing is charged.
                return self.fail(.invalidCode, "that support code expired or its engineer left a moment ago; ask the engineer for a new code")
            }
            self.stage = .waitingForPeer(hello, .nothing)
            let party = Party(
                name: hostName, companyID: issued.companyID, software: hello.software, capabilities: hello.capabilities, agentAddress: agentAddress)
            return .authenticated(party, access: nil, then: .pair(issued.viewer, .attended))
        }
        guard case .authenticating(let hello, .supportCode(let code, let machineName)) = self.stage else { return .none }
        switch attempt {
        case .paired(let issued):
            self.stage = .waitingForPeer(hello, .nothing)
            let party = Party(
                name: AttendedHostName.display(machineName: machineName, address: self.address), companyID: issued.companyID,
                software: hello.software, capabilities: hello.capabilities
            )
            // The log keeps the code's last two digits: enough to match a customer's call.
            let access = AccessNote(kind: .supportCode, outcome: .accepted, companyID: issued.companyID, subject: "…" + String(code.description.suffix(2)))
            return .authenticated(party, access: access, then: .pair(issued.viewer, .attended))
        case .invalid(let pausedFor):
            // Live codes stay valid when redemption pauses; only new attempts wait
            // (OPERATIONS.md "Abuse resistance").
            return self.refuse(
                Refusal(
                    code: .invalidCode, text: "that support code is wrong, expired or already used; ask the engineer for a new code",
                    access: AccessNote(kind: .supportCode, outcome: .rejected), chargesSource: true, pausedRedemptionFor: pausedFor
                ))
        case .paused(let wait):
            return self.refuse(
                Refusal(
                    code: .rateLimited, text: Pairing.pausedMessage(retryAfter: wait),
                    access: AccessNote(kind: .supportCode, outcome: .throttled, detail: "redemption paused")
                ))
        }
    }

    /// The store's answer for an enrolled host's id and secret (nil: not accepted).
    mutating func hostVerified(_ host: EnrolledHost?) -> Action {
        guard case .authenticating(let hello, let credentials) = self.stage else { return .none }
        let hostID: String
        let text: String
        switch credentials {
        case .host(let id, _):
            hostID = id
            text =
                "host id or secret not accepted; check the values `relay-server host enroll` printed, or give the host a key: `relay-agent keygen --host-id \(id)` on the host, then `relay-server host set-key \(id) --public-key KEY` on the relay"
        case .hostKey(let id, let key):
            hostID = id
            text =
                "host \(id) with key \(key.map(KeyFingerprint.of(rawPublicKey:)) ?? "none") not accepted; check the host id, and that an admin ran `relay-server host set-key \(id) --public-key KEY` with the key `relay-agent keygen --show --host-id \(id)` prints on this host"
        default:
            return .none
        }
        guard let host else {
            return self.refuse(
                Refusal(
                    code: .authenticationFailed, text: text,
                    access: AccessNote(kind: credentials.kind, outcome: .rejected, subject: String(hostID.prefix(64))), chargesSource: true,
                    account: credentials.account
                ))
        }
        self.stage = .waitingForPeer(hello, .registration(hostID: host.id))
        let party = Party(
            name: host.name, companyID: host.companyID, software: hello.software, capabilities: hello.capabilities,
            hostID: host.id, credential: .init(kind: .host, id: host.id, digest: host.credentialDigest)
        )
        let legacy = credentials.kind == .hostSecret ? Credentials.legacyNote : nil
        return .authenticated(
            party, access: AccessNote(kind: credentials.kind, outcome: .accepted, companyID: host.companyID, subject: host.id, detail: legacy),
            then: .registerHost(hostID: host.id, companyID: host.companyID, announce: HostRegistered(hostName: host.name))
        )
    }

    /// The store's answer for an engineer's token (nil: not accepted).
    mutating func engineerVerified(_ engineer: Engineer?) -> Action {
        guard case .authenticating(let hello, let credentials) = self.stage else { return .none }
        let request: ViewerAuth.Request
        let text: String
        switch credentials {
        case .engineer(_, let asked):
            request = asked
            text =
                "engineer token not accepted; engineers log in with keys now: send an admin the public key `relay-agent keygen --show` prints, for `relay-server engineer set-key ID --public-key KEY`"
        case .engineerKey(let key, let asked):
            request = asked
            text =
                "no engineer account has your key \(key.map(KeyFingerprint.of(rawPublicKey:)) ?? "none"); send an admin the public key `relay-agent keygen --show` prints, for `relay-server engineer add --company ID LOGIN --public-key KEY` (or `engineer set-key ID --public-key KEY`)"
        case .engineerSession(_, _, let asked):
            request = asked
            text = "your web session ended since this page opened (signed out, a reset, or the account was removed); sign in again"
        default:
            return .none
        }
        guard let engineer else {
            return self.refuse(
                Refusal(
                    code: .authenticationFailed, text: text,
                    access: AccessNote(kind: credentials.kind, outcome: .rejected, subject: credentials.account), chargesSource: true,
                    account: credentials.account
                ))
        }
        self.stage = .waitingForPeer(hello, .nothing)
        self.confirmSecurityCode = engineer.confirmSecurityCode
        let party = Party(
            name: engineer.login, companyID: engineer.companyID, organization: engineer.companyName, software: hello.software,
            capabilities: hello.capabilities, credential: .init(kind: .engineer, id: engineer.id, digest: engineer.credentialDigest),
            inBrowser: credentials.kind == .webSession, webSession: credentials.kind == .webSession ? self.webSessionDigest : nil
        )
        let next: Action =
            switch request {
            case .newSupportCode: .ask(.issueCode(engineerID: engineer.id, companyID: engineer.companyID))
            case .connect(let hostID): .ask(.claimHost(hostID: hostID, companyID: engineer.companyID, anywhere: true))
            }
        let legacy = credentials.kind == .viewerToken ? Credentials.legacyNote : nil
        return .authenticated(
            party, access: AccessNote(kind: credentials.kind, outcome: .accepted, companyID: engineer.companyID, subject: engineer.login, detail: legacy),
            then: next
        )
    }

    /// The credentials could not be checked (the store failed).
    mutating func verificationFailed() -> Action {
        guard case .authenticating = self.stage else { return .none }
        return self.fail(
            .internalError,
            "the relay cannot check logins right now (its database does not answer); sessions already running go on; try again in a minute, and tell the relay operator if it persists"
        )
    }

    /// A support code was issued to this viewer, valid for `validity`.
    mutating func codeIssued(_ code: SupportCode, validFor validity: TimeAmount) -> Action {
        guard case .waitingForPeer(let hello, _) = self.stage else { return .none }
        self.stage = .waitingForPeer(hello, .supportCode)
        let flags: CodeIssued.Flags = self.confirmSecurityCode ? .confirmSecurityCode : []
        return .send(.codeIssued(CodeIssued(code: code, validForSeconds: UInt32(clamping: validity.nanoseconds / 1_000_000_000), flags: flags)))
    }

    /// What the pairing book made of this viewer's claim of an enrolled host.
    mutating func claimed(_ claim: Pairing.Claim, hostID: String) -> Action {
        guard case .waitingForPeer = self.stage else { return .none }
        switch claim {
        case .claimed(let host): return .pair(host, .unattended)
        case .noSuchHost: return self.fail(.noSuchHost, "no host \(hostID) is online for your company; check the id and that its agent is running")
        case .busy: return self.fail(.hostBusy, "host \(hostID) already has a viewer; try again when that session ends")
        }
    }

    // MARK: Pairing

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

    /// The other side ended the session (it has ended it already): say Bye with its words.
    mutating func peerLeft(_ reason: ByeReason, _ text: String) -> Action {
        guard !self.isClosed else { return .none }
        var release = self.held(Ending(peerReason: .peerLeft, peerText: "", recorded: reason))
        release.session = nil
        self.stage = .closed(self.hello, release)
        return .leave(reason, text)
    }

    // MARK: The relay's own endings

    /// The relay ends this connection with Bye (shutdown, revocation, a newer
    /// registration of the same host).
    mutating func relayEnds(_ reason: ByeReason, _ text: String) -> Action {
        guard !self.isClosed else { return .none }
        return self.leave(reason, text)
    }

    /// The relay withdrew this viewer's support code (expired, or replaced by the
    /// engineer's newer one): it is gone from the pairing book already.
    mutating func codeWithdrawn(_ code: ErrorCode, _ text: String) -> Action {
        guard !self.isClosed else { return .none }
        if case .waitingForPeer(let hello, .supportCode) = self.stage { self.stage = .waitingForPeer(hello, .nothing) }
        return self.fail(code, text)
    }

    mutating func handshakeDeadlinePassed() -> Action {
        guard self.isHandshaking else { return .none }
        return self.fail(.timeout, "Hello and authentication must finish within the relay's deadline; the connection was still \(self.state.name)")
    }

    /// Nothing arrived for `limit` (PROTOCOL.md §8.4).
    mutating func idleTimeoutPassed(_ limit: TimeAmount) -> Action {
        guard !self.isClosed else { return .none }
        return self.leave(.idleTimeout, "nothing arrived for \(limit.nanoseconds / 1_000_000_000) s; agents send Ping every 30 s")
    }

    // MARK: Closing

    /// Closes the connection; returns what it held, once (a second close returns nothing).
    /// A connection the machine closed itself (a Bye, an error, the deadline) gives back
    /// here what it held at that moment; one that just went away tells its peer so.
    @discardableResult
    mutating func close() -> Release {
        if case .closed(let hello, let pending) = self.stage {
            self.stage = .closed(hello, nil)
            return pending ?? Release(ending: Self.disconnected(who: self.who))
        }
        let release = self.held(Self.disconnected(who: self.who))
        self.stage = .closed(self.hello, nil)
        return release
    }

    private static func disconnected(who: String) -> Ending {
        Ending(peerReason: .peerLeft, peerText: "\(who) disconnected", recorded: .peerLeft)
    }

    private mutating func fail(_ code: ErrorCode, _ text: String) -> Action {
        let peerReason: ByeReason = [.malformedMessage, .frameTooLarge, .unexpectedMessage].contains(code) ? .protocolError : .peerLeft
        self.enterClosed(Ending(peerReason: peerReason, peerText: "the other side failed: \(text)", recorded: peerReason))
        return .fail(code, text)
    }

    private mutating func refuse(_ refusal: Refusal) -> Action {
        _ = self.fail(refusal.code, refusal.text)
        return .refuse(refusal)
    }

    private mutating func leave(_ reason: ByeReason, _ text: String) -> Action {
        // A revocation's sentence is for the account's owner ("sign in again", "ask your
        // admin"): the other side (a customer) learns only that the access ended.
        let peerText =
            reason == .revoked
            ? "the other side's access was ended on the relay (its account was removed, disabled or changed)" : "the other side was disconnected: \(text)"
        self.enterClosed(Ending(peerReason: reason == .relayShutdown ? .relayShutdown : .peerLeft, peerText: peerText, recorded: reason))
        return .leave(reason, text)
    }

    /// Closed by the machine: what the connection holds waits for ``close()``.
    private mutating func enterClosed(_ ending: Ending) {
        guard !self.isClosed else { return }
        self.stage = .closed(self.hello, self.held(ending))
    }

    /// What the connection holds in its current phase.
    private func held(_ ending: Ending) -> Release {
        var release = Release(ending: ending)
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

/// Tests compare actions; a relay's `Peer` is compared by identity there.
extension ConnectionStateMachine.Action: Equatable where Peer: Equatable {}
