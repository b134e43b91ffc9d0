import NIOCore
import Testing

@testable import RelayServer
@testable import RelayWire

/// The machine with a plain value for the session a paired connection holds.
private typealias ConnectionStateMachine = RelayServer.ConnectionStateMachine<String>

// The connection state machine (PROTOCOL.md §8) driven directly, message by message.
@Suite struct ConnectionStateMachineTests {
    private static func hello(_ role: Role, version: UInt16 = RelayProtocol.version) -> RelayMessage {
        .hello(Hello(version: version, role: role, capabilities: .all, software: "relay-agent/0.1.0"))
    }

    private static let hostAuth = HostAuth.supportCode(SupportCode(value: 4_821)!)
    private static let viewerAuth = ViewerAuth(token: "tok-김민준", request: .newSupportCode)
    private static let bye = Bye(reason: .normal, text: "지원이 끝났습니다")

    /// A machine in `state`, reached through the allowed sequence.
    private static func machine(in state: ConnectionStateMachine.State) -> ConnectionStateMachine {
        var machine = ConnectionStateMachine()
        func drive(_ role: Role, to target: ConnectionStateMachine.State) {
            _ = machine.received(Self.hello(role))
            if machine.state == target { return }
            _ = machine.received(role == .host ? .hostAuth(Self.hostAuth) : .viewerAuth(Self.viewerAuth))
            if machine.state == target { return }
            machine.authenticationSucceeded()
            if machine.state == target { return }
            _ = machine.pairedWithPeer("session-1")
        }
        switch state {
        case .awaitingHello: break
        case .awaitingAuth(let role), .authenticating(let role), .waitingForPeer(let role), .paired(let role): drive(role, to: state)
        case .closed: machine.close()
        }
        precondition(machine.state == state, "could not reach \(state)")
        return machine
    }

    private static let openStates: [ConnectionStateMachine.State] = [
        .awaitingHello,
        .awaitingAuth(.host), .awaitingAuth(.viewer),
        .authenticating(.host), .authenticating(.viewer),
        .waitingForPeer(.host), .waitingForPeer(.viewer),
        .paired(.host), .paired(.viewer),
    ]

    private static func failureCode(_ action: ConnectionStateMachine.Action) -> ErrorCode? {
        if case .fail(let code, let message) = action {
            #expect(!message.isEmpty)
            return code
        }
        return nil
    }

    // MARK: Allowed sequences

    @Test func hostSequence() {
        var machine = ConnectionStateMachine()
        #expect(machine.state == .awaitingHello && machine.role == nil && machine.isHandshaking && !machine.isPaired)
        let hello = Hello(role: .host, capabilities: .all, software: "relay-agent/0.1.0")
        #expect(machine.received(.hello(hello)) == .acceptHello(hello))
        #expect(machine.state == .awaitingAuth(.host) && machine.role == .host && machine.isHandshaking)
        #expect(machine.received(.hostAuth(Self.hostAuth)) == .authenticateHost(Self.hostAuth))
        #expect(machine.state == .authenticating(.host) && machine.isHandshaking)
        machine.authenticationSucceeded()
        #expect(machine.state == .waitingForPeer(.host) && !machine.isHandshaking && !machine.isPaired)
        let paired = machine.pairedWithPeer("session-1")
        #expect(paired)
        #expect(machine.state == .paired(.host) && machine.isPaired && machine.role == .host)
        // Paired: peer bytes flow.
        #expect(machine.receivedPeerData() == .none)
        #expect(machine.state == .paired(.host))
    }

    @Test func viewerSequenceWithBothRequests() {
        for request in [ViewerAuth.Request.newSupportCode, .connect(hostID: "pc-17")] {
            var machine = ConnectionStateMachine()
            let hello = Hello(role: .viewer, capabilities: [.screenTiles, .input], software: "relay-agent/0.1.0")
            #expect(machine.received(.hello(hello)) == .acceptHello(hello))
            #expect(machine.state == .awaitingAuth(.viewer))
            let auth = ViewerAuth(token: "tok", request: request)
            #expect(machine.received(.viewerAuth(auth)) == .authenticateViewer(auth))
            #expect(machine.state == .authenticating(.viewer))
            machine.authenticationSucceeded()
            #expect(machine.state == .waitingForPeer(.viewer))
            let paired = machine.pairedWithPeer("session-1")
            #expect(paired)
            #expect(machine.state == .paired(.viewer) && machine.role == .viewer)
        }
    }

    @Test func outcomesOutOfTurnChangeNothing() {
        for state in Self.openStates + [.closed] {
            var machine = Self.machine(in: state)
            if case .authenticating = state {} else {
                machine.authenticationSucceeded()
                #expect(machine.state == state, "authenticationSucceeded \(state.name)")
            }
            if case .waitingForPeer = state {} else {
                let paired = machine.pairedWithPeer("session-1")
                #expect(!paired, "pairedWithPeer \(state.name)")
                #expect(machine.state == state)
            }
        }
    }

    // MARK: Ping, Pong

    @Test func pingIsAnsweredWithTheSameNonceInEveryStateAfterHello() {
        for state in Self.openStates where state != .awaitingHello {
            for nonce in [0, 1, 0xDEAD_BEEF_0BAD_F00D, .max] as [UInt64] {
                var machine = Self.machine(in: state)
                #expect(machine.received(.ping(Ping(nonce: nonce))) == .send(.pong(Pong(nonce: nonce))), "\(state)")
                #expect(machine.state == state, "a Ping must not change the state")
            }
            var machine = Self.machine(in: state)
            #expect(machine.received(.pong(Pong(nonce: 5))) == .none, "\(state)")
            #expect(machine.state == state)
        }
        var closed = Self.machine(in: .closed)
        #expect(closed.received(.ping(Ping(nonce: 7))) == .none)
    }

    /// PROTOCOL.md §5.1.1, §5.1.8: Hello MUST be the first frame; Ping and Pong are allowed
    /// only after HelloAck (the relay used to answer a Ping before Hello).
    @Test func pingAndPongBeforeHelloAreUnexpected() {
        for message in [RelayMessage.ping(Ping(nonce: 9)), .pong(Pong(nonce: 9))] {
            var machine = Self.machine(in: .awaitingHello)
            #expect(Self.failureCode(machine.received(message)) == .unexpectedMessage, "\(message.type.name)")
            #expect(machine.state == .closed)
        }
    }

    // MARK: Refusals

    @Test(arguments: [0, 2, 0x0100, .max] as [UInt16])
    func anotherVersionIsRefused(version: UInt16) {
        for role in Role.allCases {
            var machine = ConnectionStateMachine()
            #expect(Self.failureCode(machine.received(Self.hello(role, version: version))) == .unsupportedVersion)
            #expect(machine.state == .closed)
        }
    }

    /// PROTOCOL.md §8.2, order of checks: the version matters only for the first frame; a
    /// second Hello is unexpected whatever version it names.
    @Test func aSecondHelloOfAnotherVersionIsUnexpectedNotUnsupported() {
        for state in Self.openStates where state != .awaitingHello {
            var machine = Self.machine(in: state)
            #expect(Self.failureCode(machine.received(Self.hello(.host, version: 2))) == .unexpectedMessage, "\(state)")
            #expect(machine.state == .closed)
        }
    }

    @Test func messagesOutOfOrderAreUnexpected() {
        let cases: [(String, ConnectionStateMachine.State, RelayMessage)] = [
            ("HostAuth from a viewer", .awaitingAuth(.viewer), .hostAuth(Self.hostAuth)),
            ("ViewerAuth from a host", .awaitingAuth(.host), .viewerAuth(Self.viewerAuth)),
            ("ViewerAuth before Hello", .awaitingHello, .viewerAuth(Self.viewerAuth)),
            ("HostAuth before Hello", .awaitingHello, .hostAuth(Self.hostAuth)),
            ("Hello twice (host)", .awaitingAuth(.host), Self.hello(.host)),
            ("Hello twice (viewer)", .awaitingAuth(.viewer), Self.hello(.viewer)),
            ("Hello while paired", .paired(.host), Self.hello(.host)),
            ("HostAuth twice", .authenticating(.host), .hostAuth(Self.hostAuth)),
            ("ViewerAuth while waiting", .waitingForPeer(.viewer), .viewerAuth(Self.viewerAuth)),
            ("CodeIssued from an agent", .waitingForPeer(.viewer), .codeIssued(CodeIssued(code: SupportCode(value: 1)!, validForSeconds: 600))),
            ("HostRegistered from an agent", .paired(.host), .hostRegistered(HostRegistered(hostName: "x"))),
            ("HelloAck from an agent", .awaitingHello, .helloAck(HelloAck(capabilities: .all, maximumPayloadLength: 1, relayNode: "x"))),
            ("Paired from an agent", .waitingForPeer(.host), .paired(Paired(sessionID: SessionID(high: 1, low: 2), mode: .attended, peerCapabilities: .all, peerName: "a", peerSoftware: "b"))),
            ("Error from an agent", .awaitingAuth(.host), .error(ErrorMessage(code: .internalError, message: "x"))),
            ("TileUpdate as a control message", .awaitingAuth(.host), .tileUpdate(TileUpdate(body: ByteBuffer(bytes: [1, 2, 3])))),
        ]
        for (name, state, message) in cases {
            var machine = Self.machine(in: state)
            #expect(Self.failureCode(machine.received(message)) == .unexpectedMessage, "\(name)")
            #expect(machine.state == .closed, "\(name)")
        }
    }

    @Test func peerDataBeforePairingIsUnexpected() {
        for state in Self.openStates where !state.isPairedState {
            var machine = Self.machine(in: state)
            #expect(Self.failureCode(machine.receivedPeerData()) == .unexpectedMessage, "\(state)")
            #expect(machine.state == .closed)
            #expect(machine.receivedPeerData() == .none, "after the failure")
        }
    }

    // MARK: Bye

    @Test func byeWhilePairedEndsTheSession() {
        for role in Role.allCases {
            var machine = Self.machine(in: .paired(role))
            let action = machine.received(.bye(Self.bye))
        #expect(action == .endSession(Self.bye))
            #expect(machine.state == .closed && !machine.isPaired)
        }
    }

    @Test func byeBeforePairingClosesQuietly() {
        for state in Self.openStates where !state.isPairedState {
            var machine = Self.machine(in: state)
            #expect(machine.received(.bye(Self.bye)) == .close, "\(state)")
            #expect(machine.state == .closed)
        }
    }

    // MARK: Handshake deadline

    @Test func handshakeDeadlineFailsOnlyWhileHandshaking() {
        for state in Self.openStates {
            var machine = Self.machine(in: state)
            let action = machine.handshakeDeadlinePassed()
            switch state {
            case .awaitingHello, .awaitingAuth, .authenticating:
                #expect(Self.failureCode(action) == .timeout, "\(state)")
                #expect(machine.state == .closed)
            default:
                #expect(action == .none, "\(state)")
                #expect(machine.state == state)
            }
        }
    }

    // MARK: Closed

    @Test func afterCloseEverythingIsIgnored() {
        let messages: [RelayMessage] = [
            Self.hello(.host), Self.hello(.viewer, version: 9), .hostAuth(Self.hostAuth), .viewerAuth(Self.viewerAuth),
            .ping(Ping(nonce: 1)), .pong(Pong(nonce: 1)), .bye(Self.bye),
            .error(ErrorMessage(code: .timeout, message: "x")), .pointer(Pointer(x: 1, y: 2)),
        ]
        // Closed by the handler, by a failure, and by a Bye.
        var viaFailure = Self.machine(in: .awaitingHello)
        _ = viaFailure.received(.hostAuth(Self.hostAuth))
        var viaBye = Self.machine(in: .paired(.viewer))
        _ = viaBye.received(.bye(Self.bye))
        for var machine in [Self.machine(in: .closed), viaFailure, viaBye] {
            #expect(machine.state == .closed && machine.role == nil && !machine.isHandshaking && !machine.isPaired)
            for message in messages {
                #expect(machine.received(message) == .none, "\(message.type.name)")
            }
            #expect(machine.receivedPeerData() == .none)
            #expect(machine.handshakeDeadlinePassed() == .none)
            machine.authenticationSucceeded()
            let paired = machine.pairedWithPeer("session-1")
            #expect(!paired)
            #expect(machine.state == .closed)
        }
    }

    // MARK: What a connection holds, and gives back

    /// A host's registration outlives its pairing (it is busy, not gone) and is given
    /// back at close with the session, once.
    @Test func aPairedHostGivesBackItsRegistrationAndSession() {
        var machine = ConnectionStateMachine()
        _ = machine.received(Self.hello(.host))
        _ = machine.received(.hostAuth(.enrolled(hostID: "ho-7", secret: "s")))
        machine.authenticationSucceeded()
        let registered = machine.holds(.registration(hostID: "ho-7"))
        let paired = machine.pairedWithPeer("session-7")
        #expect(registered && paired)
        #expect(machine.session == "session-7" && machine.holding == nil)
        let release = machine.close()
        #expect(release.session == "session-7" && release.unregisterHostID == "ho-7" && !release.withdrawCode)
        let again = machine.close()
        #expect(again.session == nil && again.unregisterHostID == nil)
        #expect(machine.hello?.role == .host, "the Hello is kept for the words of the peer's Bye")
    }

    /// A viewer's support code is used up by pairing; before that, closing withdraws it.
    @Test func aWaitingViewerGivesBackItsCode() {
        var machine = ConnectionStateMachine()
        _ = machine.received(Self.hello(.viewer))
        _ = machine.received(.viewerAuth(Self.viewerAuth))
        machine.authenticationSucceeded()
        let holds = machine.holds(.supportCode)
        #expect(holds)
        machine.lostHolding()
        let afterLoss = machine.close()
        #expect(!afterLoss.withdrawCode, "the relay withdrew it already")

        var waiting = ConnectionStateMachine()
        _ = waiting.received(Self.hello(.viewer))
        _ = waiting.received(.viewerAuth(Self.viewerAuth))
        waiting.authenticationSucceeded()
        _ = waiting.holds(.supportCode)
        let closed = waiting.close()
        #expect(closed.withdrawCode)
    }

    /// A Bye while paired closes the machine at once; the session is handed over by the
    /// close that follows (the handler's teardown), not lost.
    @Test func aByeWhilePairedKeepsTheSessionForTheTeardown() {
        var machine = ConnectionStateMachine()
        _ = machine.received(Self.hello(.viewer))
        _ = machine.received(.viewerAuth(Self.viewerAuth))
        machine.authenticationSucceeded()
        _ = machine.pairedWithPeer("session-9")
        let action = machine.received(.bye(Self.bye))
        #expect(action == .endSession(Self.bye))
        #expect(machine.state == .closed && machine.session == nil)
        let release = machine.close()
        #expect(release.session == "session-9")
        // The other side ending it first: nothing to end at close.
        var other = ConnectionStateMachine()
        _ = other.received(Self.hello(.host))
        _ = other.received(.hostAuth(Self.hostAuth))
        other.authenticationSucceeded()
        _ = other.pairedWithPeer("session-9")
        other.peerEndedSession()
        let otherRelease = other.close()
        #expect(otherRelease.session == nil)
    }

}

extension ConnectionStateMachine.State {
    fileprivate var isPairedState: Bool { if case .paired = self { true } else { false } }
}
