import Foundation
import NIOCore
import Testing

@testable import RelayServer
@testable import RelayStore
@testable import RelayWire

/// Another connection, as the machine sees it: compared by identity.
private final class TestPeer: Sendable, Equatable, CustomStringConvertible {
    let name: String
    init(_ name: String) { self.name = name }
    static func == (lhs: TestPeer, rhs: TestPeer) -> Bool { lhs === rhs }
    var description: String { self.name }
}

/// The machine with plain values for the peer and the session a paired connection holds.
private typealias ConnectionStateMachine = RelayServer.ConnectionStateMachine<TestPeer, String>
private typealias Action = ConnectionStateMachine.Action

// The connection state machine (PROTOCOL.md §8) driven directly: messages, the relay's
// answers to each authentication step, deadlines and endings. No relay, no channel.
@Suite struct ConnectionStateMachineTests {
    private static let software = "relay-agent/0.1.0"
    private static func hello(_ role: Role, version: UInt16 = RelayProtocol.version) -> RelayMessage {
        .hello(Hello(version: version, role: role, capabilities: .all, software: Self.software))
    }

    private static let code = SupportCode(value: 4_821)!
    private static let hostAuth = HostAuth.supportCode(Self.code)
    private static let viewerAuth = ViewerAuth(token: "tok-김민준", request: .newSupportCode)
    private static let bye = Bye(reason: .normal, text: "지원이 끝났습니다")
    private static let viewer = TestPeer("viewer")
    private static let host = TestPeer("host")
    private static let engineer = Engineer(
        id: "en-1", companyID: "co-1", login: "minjun", tokenDigest: Data([1, 2]), createdAt: Date(timeIntervalSince1970: 0), companyName: "Hanbit Support"
    )
    private static let enrolledHost = EnrolledHost(
        id: "ho-7", companyID: "co-1", name: "Front desk PC", secretDigest: Data([3]), createdAt: Date(timeIntervalSince1970: 0))

    private static func issued(to viewer: TestPeer = Self.viewer) -> ConnectionStateMachine.Pairing.IssuedCode {
        .init(code: Self.code, viewer: viewer, companyID: "co-1", expiresAt: .now() + .minutes(10))
    }

    /// A machine in `state`, reached through the allowed sequence (an attended host, a
    /// viewer asking for a code).
    private static func machine(in state: ConnectionStateMachine.State) -> ConnectionStateMachine {
        var machine = ConnectionStateMachine(address: "192.0.2.7")
        func drive(_ role: Role, to target: ConnectionStateMachine.State) {
            _ = machine.received(Self.hello(role))
            if machine.state == target { return }
            _ = machine.received(role == .host ? .hostAuth(Self.hostAuth) : .viewerAuth(Self.viewerAuth))
            if machine.state == target { return }
            _ = machine.throttleChecked(retryAfter: nil, source: .unknown)
            if role == .host {
                _ = machine.redeemed(.paired(Self.issued()))
            } else {
                _ = machine.engineerVerified(Self.engineer)
                _ = machine.codeIssued(Self.code, validFor: .minutes(10))
            }
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

    private static func failureCode(_ action: Action) -> ErrorCode? {
        switch action {
        case .fail(let code, let message):
            #expect(!message.isEmpty)
            return code
        case .refuse(let refusal):
            #expect(!refusal.text.isEmpty)
            return refusal.code
        default:
            return nil
        }
    }

    private static func refusal(_ action: Action) -> ConnectionStateMachine.Refusal? {
        if case .refuse(let refusal) = action { refusal } else { nil }
    }

    // MARK: Allowed sequences

    /// An attended host: support code, throttle, redemption, pairing (PROTOCOL.md §6.1).
    @Test func attendedHostSequence() {
        var machine = ConnectionStateMachine(address: "192.0.2.7")
        #expect(machine.state == .awaitingHello && machine.role == nil && machine.isHandshaking && !machine.isPaired)
        let hello = Hello(role: .host, capabilities: .all, software: Self.software)
        #expect(machine.received(.hello(hello)) == .acceptHello(hello))
        #expect(machine.state == .awaitingAuth(.host) && machine.role == .host && machine.isHandshaking)
        #expect(machine.received(.hostAuth(.namedSupportCode(Self.code, machineName: "FRONT-DESK"))) == .ask(.throttle))
        #expect(machine.state == .authenticating(.host) && machine.isHandshaking)
        let host = Party(name: "FRONT-DESK (customer PC at 192.0.2.7)", companyID: "", software: Self.software, capabilities: .all)
        #expect(machine.throttleChecked(retryAfter: nil, source: .unknown) == .ask(.redeem(Self.code, host: host)))
        let party = Party(name: "FRONT-DESK (customer PC at 192.0.2.7)", companyID: "co-1", software: Self.software, capabilities: .all)
        let access = ConnectionStateMachine.AccessNote(kind: .supportCode, outcome: .accepted, companyID: "co-1", subject: "…21")
        #expect(machine.redeemed(.paired(Self.issued())) == .authenticated(party, access: access, then: .pair(Self.viewer, .attended)))
        #expect(machine.state == .waitingForPeer(.host) && !machine.isHandshaking && machine.holding == .nothing)
        let paired = machine.pairedWithPeer("session-1")
        #expect(paired)
        #expect(machine.state == .paired(.host) && machine.isPaired && machine.role == .host)
        // Paired: peer bytes flow.
        #expect(machine.receivedPeerData() == .none)
        #expect(machine.state == .paired(.host))
    }

    /// An enrolled host: its secret is checked, then it registers and waits (§6.3).
    @Test func enrolledHostSequence() {
        var machine = ConnectionStateMachine()
        _ = machine.received(Self.hello(.host))
        #expect(machine.received(.hostAuth(.enrolled(hostID: "ho-7", secret: "s3cret"))) == .ask(.throttle))
        #expect(machine.throttleChecked(retryAfter: nil, source: .unknown) == .ask(.verifyHost(id: "ho-7", secret: "s3cret")))
        let host = Self.enrolledHost
        let party = Party(
            name: host.name, companyID: host.companyID, software: Self.software, capabilities: .all, hostID: host.id,
            credential: .init(kind: .host, id: host.id, digest: host.secretDigest)
        )
        #expect(
            machine.hostVerified(host)
                == .authenticated(
                    party,
                    access: .init(
                        kind: .hostSecret, outcome: .accepted, companyID: "co-1", subject: "ho-7", detail: ConnectionStateMachine.Credentials.legacyNote),
                    then: .registerHost(hostID: "ho-7", companyID: "co-1", announce: HostRegistered(hostName: "Front desk PC"))
                )
        )
        #expect(machine.state == .waitingForPeer(.host) && machine.holding == .registration(hostID: "ho-7"))
    }

    @Test func viewerAsksForASupportCode() {
        var machine = ConnectionStateMachine()
        let hello = Hello(role: .viewer, capabilities: [.screenTiles, .input], software: Self.software)
        #expect(machine.received(.hello(hello)) == .acceptHello(hello))
        #expect(machine.received(.viewerAuth(ViewerAuth(token: "en-1.secret", request: .newSupportCode))) == .ask(.throttle))
        #expect(machine.throttleChecked(retryAfter: nil, source: .unknown) == .ask(.verifyEngineer(token: "en-1.secret")))
        guard case .authenticated(let party, let access, let next) = machine.engineerVerified(Self.engineer) else {
            Issue.record("the engineer was not let in")
            return
        }
        #expect(party.name == "minjun" && party.organization == "Hanbit Support" && party.capabilities == [.screenTiles, .input])
        #expect(party.credential == .init(kind: .engineer, id: "en-1", digest: Data([1, 2])))
        #expect(
            access == .init(kind: .viewerToken, outcome: .accepted, companyID: "co-1", subject: "minjun", detail: ConnectionStateMachine.Credentials.legacyNote)
        )
        #expect(next == .ask(.issueCode(engineerID: "en-1", companyID: "co-1")))
        #expect(machine.state == .waitingForPeer(.viewer) && machine.holding == .nothing)
        #expect(machine.codeIssued(Self.code, validFor: .minutes(10)) == .send(.codeIssued(CodeIssued(code: Self.code, validForSeconds: 600))))
        #expect(machine.holding == .supportCode)
        let paired = machine.pairedWithPeer("session-1")
        #expect(paired)
        #expect(machine.state == .paired(.viewer) && machine.role == .viewer)
    }

    /// The engineer's company policy travels in CodeIssued (PROTOCOL.md §5.1.5).
    @Test func theCompanysSecurityCodePolicyGoesWithTheCode() {
        var machine = ConnectionStateMachine()
        let hello = Hello(role: .viewer, capabilities: [.screenTiles, .input], software: Self.software)
        _ = machine.received(.hello(hello))
        _ = machine.received(.viewerAuth(ViewerAuth(token: "en-1.secret", request: .newSupportCode)))
        _ = machine.throttleChecked(retryAfter: nil, source: .unknown)
        var engineer = Self.engineer
        engineer.confirmSecurityCode = true
        _ = machine.engineerVerified(engineer)
        let issued = machine.codeIssued(Self.code, validFor: .minutes(10))
        #expect(issued == .send(.codeIssued(CodeIssued(code: Self.code, validForSeconds: 600, flags: .confirmSecurityCode))))
    }

    @Test func viewerClaimsAnEnrolledHost() {
        func claiming() -> ConnectionStateMachine {
            var machine = ConnectionStateMachine()
            _ = machine.received(Self.hello(.viewer))
            _ = machine.received(.viewerAuth(ViewerAuth(token: "t", request: .connect(hostID: "ho-7"))))
            _ = machine.throttleChecked(retryAfter: nil, source: .unknown)
            guard case .authenticated(_, _, .ask(.claimHost(hostID: "ho-7", companyID: "co-1", anywhere: true))) = machine.engineerVerified(Self.engineer)
            else {
                Issue.record("no claim")
                return machine
            }
            return machine
        }
        var claimed = claiming()
        #expect(claimed.claimed(.claimed(Self.host), hostID: "ho-7") == .pair(Self.host, .unattended))
        #expect(claimed.state == .waitingForPeer(.viewer))
        var missing = claiming()
        #expect(Self.failureCode(missing.claimed(.noSuchHost, hostID: "ho-7")) == .noSuchHost)
        #expect(missing.state == .closed)
        var busy = claiming()
        #expect(Self.failureCode(busy.claimed(.busy, hostID: "ho-7")) == .hostBusy)
        #expect(busy.state == .closed)
    }

    /// An answer that comes after the connection moved on (closed while the store was
    /// checking, say) changes nothing and asks for nothing.
    @Test func outcomesOutOfTurnChangeNothing() {
        for state in Self.openStates + [.closed] {
            var machine = Self.machine(in: state)
            if case .authenticating = state {
            } else {
                #expect(machine.throttleChecked(retryAfter: nil, source: .unknown) == .none, "\(state.name)")
                #expect(machine.redeemed(.paired(Self.issued())) == .none)
                #expect(machine.redeemed(.invalid(pausedFor: nil)) == .none)
                #expect(machine.hostVerified(Self.enrolledHost) == .none && machine.hostVerified(nil) == .none)
                #expect(machine.engineerVerified(Self.engineer) == .none && machine.engineerVerified(nil) == .none)
                #expect(machine.verificationFailed() == .none)
                #expect(machine.state == state, "answers \(state.name)")
            }
            if case .waitingForPeer = state {
            } else {
                #expect(machine.codeIssued(Self.code, validFor: .minutes(10)) == .none)
                #expect(machine.claimed(.busy, hostID: "x") == .none)
                let paired = machine.pairedWithPeer("session-1")
                #expect(!paired, "pairedWithPeer \(state.name)")
                #expect(machine.state == state)
            }
        }
    }

    /// A connection the relay could not count in is answered `relay_full` at its Hello.
    @Test func aFullRelayRefusesTheHello() {
        var machine = ConnectionStateMachine()
        machine.relayIsFull()
        #expect(Self.failureCode(machine.received(Self.hello(.viewer))) == .relayFull)
        #expect(machine.state == .closed)
    }

    // MARK: Refused attempts

    /// A source that waits out a penalty is refused unchecked, with the wait (§8.5), and
    /// the attempt is not charged again.
    @Test func aThrottledSourceIsRefusedUnchecked() {
        let attempts: [(RelayMessage, AccessEvent.Kind)] = [
            (.hostAuth(Self.hostAuth), .supportCode), (.hostAuth(.enrolled(hostID: "ho-7", secret: "x")), .hostSecret),
            (.viewerAuth(Self.viewerAuth), .viewerToken),
        ]
        for (auth, kind) in attempts {
            var machine = ConnectionStateMachine()
            _ = machine.received(Self.hello(auth.type == .viewerAuth ? .viewer : .host))
            _ = machine.received(auth)
            let refusal = Self.refusal(machine.throttleChecked(retryAfter: .seconds(42), source: SourceKey.unknown))
            #expect(refusal?.code == .rateLimited && refusal?.text.contains("retry in 42 s") == true, "\(kind)")
            #expect(refusal?.access == .init(kind: kind, outcome: .throttled))
            #expect(refusal?.chargesSource == false)
            #expect(machine.state == .closed)
        }
    }

    @Test func wrongCredentialsAreChargedToTheSourceAndWatchedForTheAccount() {
        var code = Self.machine(in: .authenticating(.host))
        let invalid = Self.refusal(code.redeemed(.invalid(pausedFor: .minutes(5))))
        #expect(invalid?.code == .invalidCode && invalid?.chargesSource == true && invalid?.account == nil)
        #expect(invalid?.pausedRedemptionFor == .minutes(5) && invalid?.access == .init(kind: .supportCode, outcome: .rejected))

        var paused = Self.machine(in: .authenticating(.host))
        let pause = Self.refusal(paused.redeemed(.paused(retryAfter: .seconds(30))))
        #expect(pause?.code == .rateLimited && pause?.chargesSource == false, "unchecked: nothing to charge")
        #expect(pause?.access == .init(kind: .supportCode, outcome: .throttled, detail: "redemption paused"))

        var host = ConnectionStateMachine()
        _ = host.received(Self.hello(.host))
        _ = host.received(.hostAuth(.enrolled(hostID: "ho-7", secret: "wrong")))
        _ = host.throttleChecked(retryAfter: nil, source: .unknown)
        let wrongSecret = Self.refusal(host.hostVerified(nil))
        #expect(wrongSecret?.code == .authenticationFailed && wrongSecret?.chargesSource == true && wrongSecret?.account == "host:ho-7")
        #expect(wrongSecret?.access == .init(kind: .hostSecret, outcome: .rejected, subject: "ho-7"))

        var viewer = ConnectionStateMachine()
        _ = viewer.received(Self.hello(.viewer))
        _ = viewer.received(.viewerAuth(ViewerAuth(token: "en-9.wrong", request: .newSupportCode)))
        _ = viewer.throttleChecked(retryAfter: nil, source: .unknown)
        let wrongToken = Self.refusal(viewer.engineerVerified(nil))
        #expect(wrongToken?.code == .authenticationFailed && wrongToken?.account == "engineer:en-9")
        #expect(wrongToken?.access.subject == "engineer:en-9")
        for machine in [code, paused, host, viewer] { #expect(machine.state == .closed) }
    }

    @Test func aStoreFailureIsAnInternalError() {
        var machine = Self.machine(in: .authenticating(.viewer))
        _ = machine.throttleChecked(retryAfter: nil, source: .unknown)
        #expect(Self.failureCode(machine.verificationFailed()) == .internalError)
        #expect(machine.state == .closed)
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
        var undecodable = ConnectionStateMachine()
        #expect(Self.failureCode(undecodable.receivedHello(ofVersion: version)) == .unsupportedVersion)
    }

    /// Frames as the scanner hands them over: a Hello of another version is refused by
    /// its version even when the rest does not decode; other undecodable frames are malformed.
    @Test func framesAreDecodedByTheMachine() throws {
        var hello = ByteBuffer()
        hello.writeInteger(UInt16(7))
        hello.writeBytes([0xFF, 0xFF, 0xFF])
        var future = ConnectionStateMachine()
        #expect(Self.failureCode(future.received(frame: try Frame(type: .hello, payload: hello))) == .unsupportedVersion)
        var truncated = ConnectionStateMachine()
        #expect(Self.failureCode(truncated.received(frame: try Frame(type: .hello, payload: ByteBuffer(bytes: [0, 1, 0xFF])))) == .malformedMessage)
        var ping = Self.machine(in: .paired(.host))
        #expect(Self.failureCode(ping.received(frame: try Frame(type: .ping, payload: ByteBuffer(bytes: [1, 2, 3])))) == .malformedMessage)
        var valid = Self.machine(in: .paired(.host))
        #expect(valid.received(frame: try Frame(.ping(Ping(nonce: 9)))) == .send(.pong(Pong(nonce: 9))))
        #expect(ping.received(frame: try Frame(.ping(Ping(nonce: 9)))) == .none, "after the failure")
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
            (
                "Paired from an agent", .waitingForPeer(.host),
                .paired(Paired(sessionID: SessionID(high: 1, low: 2), mode: .attended, peerCapabilities: .all, peerName: "a", peerSoftware: "b"))
            ),
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

    /// Broken framing fails the connection in every open state; after that, nothing.
    @Test func malformedBytesFailOnce() {
        for state in Self.openStates {
            var machine = Self.machine(in: state)
            #expect(machine.receivedMalformed(.frameTooLarge, "too large") == .fail(.frameTooLarge, "too large"), "\(state)")
            #expect(machine.receivedMalformed(.malformedMessage, "again") == .none)
        }
    }

    // MARK: Bye

    @Test func byeWhilePairedEndsTheSession() {
        for role in Role.allCases {
            var machine = Self.machine(in: .paired(role))
            #expect(machine.received(.bye(Self.bye)) == .close)
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

    // MARK: Deadlines

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

    /// PROTOCOL.md §8.4: a connection that sent nothing for the idle limit is told so.
    @Test func idleTimeoutSaysByeWithTheLimit() {
        for state in Self.openStates {
            var machine = Self.machine(in: state)
            guard case .leave(.idleTimeout, let text) = machine.idleTimeoutPassed(.seconds(120)) else {
                Issue.record("no Bye \(state)")
                continue
            }
            #expect(text.contains("120 s"))
            #expect(machine.idleTimeoutPassed(.seconds(120)) == .none, "once")
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
            #expect(machine.relayEnds(.relayShutdown, "x") == .none)
            #expect(machine.peerLeft(.peerLeft, "x") == .none)
            #expect(machine.codeWithdrawn(.timeout, "x") == .none)
            let paired = machine.pairedWithPeer("session-1")
            #expect(!paired)
            #expect(machine.state == .closed)
        }
    }

    // MARK: What a connection holds, gives back, and tells its peer

    /// A host's registration outlives its pairing (it is busy, not gone) and is given
    /// back at close with the session, once.
    @Test func aPairedHostGivesBackItsRegistrationAndSession() {
        var machine = ConnectionStateMachine()
        _ = machine.received(Self.hello(.host))
        _ = machine.received(.hostAuth(.enrolled(hostID: "ho-7", secret: "s")))
        _ = machine.throttleChecked(retryAfter: nil, source: .unknown)
        _ = machine.hostVerified(Self.enrolledHost)
        let paired = machine.pairedWithPeer("session-7")
        #expect(paired)
        #expect(machine.session == "session-7" && machine.holding == nil)
        let release = machine.close()
        #expect(release.session == "session-7" && release.unregisterHostID == "ho-7" && !release.withdrawCode)
        #expect(release.ending == .init(peerReason: .peerLeft, peerText: "the host disconnected", recorded: .peerLeft))
        let again = machine.close()
        #expect(again.session == nil && again.unregisterHostID == nil)
        #expect(machine.hello?.role == .host, "the Hello is kept after close")
    }

    /// A viewer's support code is used up by pairing; before that, closing withdraws it,
    /// unless the relay withdrew it first.
    @Test func aWaitingViewerGivesBackItsCode() {
        var withdrawn = Self.machine(in: .waitingForPeer(.viewer))
        #expect(withdrawn.holding == .supportCode)
        #expect(Self.failureCode(withdrawn.codeWithdrawn(.timeout, "support code 482 1 expired")) == .timeout)
        #expect(!withdrawn.close().withdrawCode, "the relay withdrew it already")

        var waiting = Self.machine(in: .waitingForPeer(.viewer))
        #expect(waiting.close().withdrawCode)
        var refused = Self.machine(in: .waitingForPeer(.viewer))
        _ = refused.received(.viewerAuth(Self.viewerAuth))
        #expect(refused.close().withdrawCode, "a failure gives the code back too")
    }

    /// A Bye while paired closes the machine at once; the session is handed over by the
    /// close that follows (the handler's teardown), with the words for the other side.
    @Test func aByeWhilePairedKeepsTheSessionForTheTeardown() {
        for (reason, told, recorded) in [
            (ByeReason.normal, ByeReason.peerLeft, ByeReason.normal), (.declined, .declined, .declined), (.relayRestart, .peerLeft, .normal),
        ] {
            var machine = Self.machine(in: .paired(.viewer))
            #expect(machine.received(.bye(Bye(reason: reason, text: "done"))) == .close)
            #expect(machine.state == .closed && machine.session == nil)
            let release = machine.close()
            #expect(release.session == "session-1")
            #expect(release.ending.peerReason == told && release.ending.recorded == recorded, "\(reason)")
            #expect(release.ending.peerText == "the engineer ended the session (\(reason.name)): done")
        }
        // The other side ending it first: nothing to end at close.
        var other = Self.machine(in: .paired(.host))
        #expect(other.peerLeft(.peerLeft, "the engineer disconnected") == .leave(.peerLeft, "the engineer disconnected"))
        #expect(other.close().session == nil)
    }

    /// What the peer is told when the relay ends a connection: a protocol error is named
    /// as such, a shutdown as a shutdown, and the history records the relay's reason.
    @Test func endingsTellThePeerWhy() {
        var broken = Self.machine(in: .paired(.host))
        _ = broken.receivedMalformed(.malformedMessage, "bad")
        #expect(broken.close().ending == .init(peerReason: .protocolError, peerText: "the other side failed: bad", recorded: .protocolError))
        var shutdown = Self.machine(in: .paired(.viewer))
        #expect(shutdown.relayEnds(.relayShutdown, "bye now") == .leave(.relayShutdown, "bye now"))
        #expect(shutdown.close().ending == .init(peerReason: .relayShutdown, peerText: "the other side was disconnected: bye now", recorded: .relayShutdown))
        var revoked = Self.machine(in: .paired(.viewer))
        _ = revoked.relayEnds(.revoked, "token rotated")
        #expect(
            revoked.close().ending
                == .init(
                    peerReason: .peerLeft, peerText: "the other side's access was ended on the relay (its account was removed, disabled or changed)",
                    recorded: .revoked))
        var idle = Self.machine(in: .paired(.host))
        _ = idle.idleTimeoutPassed(.seconds(120))
        #expect(idle.close().ending.recorded == .idleTimeout)
    }
}

extension ConnectionStateMachine.State {
    fileprivate var isPairedState: Bool { if case .paired = self { true } else { false } }
}
