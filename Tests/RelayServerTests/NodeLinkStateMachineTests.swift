import NIOCore
import RelayWire
import Testing

@testable import RelayServer

/// The dialling end of a node link, in memory (PROTOCOL.md §5.1.12): every phase and every
/// way it can end, as ``NodeLinkHandler`` feeds them.
@Suite struct NodeLinkStateMachineTests {
    static let paired = Paired(
        sessionID: SessionID(high: 1, low: 2), mode: .unattended, peerCapabilities: .all, peerName: "PC-1", peerSoftware: "relay-agent/1",
        peerOrganization: "ACME")

    @Test func askedPairedAndEndedByTheLocalSide() {
        var machine = NodeLinkStateMachine()
        #expect(!machine.acceptsPeerFrames)
        #expect(machine.received(.helloAck(HelloAck(capabilities: .all, maximumPayloadLength: 1 << 20, relayNode: "node-b"))) == .none)
        #expect(machine.received(.paired(Self.paired)) == .answer(.paired(Self.paired)))
        // The other node's frames may come before the local session exists: they wait.
        #expect(machine.acceptsPeerFrames && !machine.isPaired)
        #expect(machine.sessionStarted() == .enterSession)
        #expect(machine.isPaired)
        #expect(machine.received(.ping(Ping(nonce: 7))) == .send(.pong(Pong(nonce: 7))))
        #expect(machine.localSideEnded(.normal, "the engineer ended the session") == .leave(.normal, "the engineer ended the session"))
        #expect(machine.isClosed)
        #expect(machine.disconnected() == .none)
    }

    @Test func theOtherNodeEndsThePairedSession() {
        var machine = NodeLinkStateMachine()
        _ = machine.received(.paired(Self.paired))
        _ = machine.sessionStarted()
        #expect(machine.received(.bye(Bye(reason: .declined, text: "the customer declined"))) == .peerLeft(.declined, "the customer declined"))
        #expect(machine.localSideEnded(.peerLeft, "") == .none)
    }

    @Test(arguments: [ErrorCode.noSuchHost, .hostBusy, .invalidCode, .internalError]) func aRefusalIsTheAnswer(_ code: ErrorCode) {
        var machine = NodeLinkStateMachine()
        #expect(machine.received(.error(ErrorMessage(code: code, message: "no"))) == .answer(.refused(code, "no")))
        #expect(machine.isClosed)
    }

    @Test func everyWayOfEndingBeforeAnAnswerAnswersOnce() {
        var closed = NodeLinkStateMachine()
        guard case .answer(.refused(.internalError, _)) = closed.disconnected() else {
            Issue.record("no answer on disconnect")
            return
        }
        #expect(closed.silent(for: .seconds(45)) == .none)

        var silent = NodeLinkStateMachine()
        guard case .answer(.refused(.internalError, let text)) = silent.silent(for: .seconds(10)) else {
            Issue.record("no answer on silence")
            return
        }
        #expect(text.contains("10 s"))

        var broken = NodeLinkStateMachine()
        guard case .answer(.refused(.internalError, _)) = broken.received(.codeIssued(CodeIssued(code: SupportCode(value: 1)!, validForSeconds: 1))) else {
            Issue.record("no answer on a message out of place")
            return
        }
        #expect(broken.received(.paired(Self.paired)) == .none)
    }

    /// The other node ends, or the link breaks, after Paired but before the local agent's
    /// side is paired with the link: the local agent is told when it is.
    @Test func anEndBeforeTheLocalSessionIsToldWhenItStarts() {
        var byeFirst = NodeLinkStateMachine()
        _ = byeFirst.received(.paired(Self.paired))
        #expect(byeFirst.received(.bye(Bye(reason: .peerLeft, text: "the host disconnected"))) == .none)
        #expect(byeFirst.sessionStarted() == .peerLeft(.peerLeft, "the host disconnected"))

        var brokenFirst = NodeLinkStateMachine()
        _ = brokenFirst.received(.paired(Self.paired))
        #expect(brokenFirst.disconnected() == .none)
        guard case .peerLeft(.peerLeft, let text) = brokenFirst.sessionStarted() else {
            Issue.record("not told")
            return
        }
        #expect(text.contains("broke"))

        // The local agent left first: nothing more to say, the link just closes.
        var localFirst = NodeLinkStateMachine()
        _ = localFirst.received(.paired(Self.paired))
        _ = localFirst.received(.bye(Bye(reason: .peerLeft, text: "gone")))
        #expect(localFirst.localSideEnded(.peerLeft, "") == .close)
    }

    /// A frozen node (no frame for the silence limit) has not broken the protocol: the
    /// local agent is told it stopped answering.
    @Test func aSilentNodeEndsThePairedSessionAsGone() {
        var machine = NodeLinkStateMachine()
        _ = machine.received(.paired(Self.paired))
        _ = machine.sessionStarted()
        guard case .peerLeft(.peerLeft, let text) = machine.silent(for: .seconds(45)) else {
            Issue.record("not ended")
            return
        }
        #expect(text.contains("stopped answering") && !text.contains("protocol"))
    }

    @Test func aBrokenProtocolWhilePairedEndsTheSessionAsAProtocolError() {
        var machine = NodeLinkStateMachine()
        _ = machine.received(.paired(Self.paired))
        _ = machine.sessionStarted()
        guard case .peerLeft(.protocolError, let text) = machine.receivedMalformed("Bye.text: invalid UTF-8") else {
            Issue.record("not ended")
            return
        }
        #expect(text.contains("invalid UTF-8"))
        #expect(machine.isClosed)
        #expect(machine.silent(for: .seconds(45)) == .none)
    }
}

/// The cluster's share of the wrong-code budget (``CodeGuessBreaker``): the node pauses
/// when the cluster's count fills a window, whatever its own count.
@Suite struct ClusterCodeGuessBudgetTests {
    @Test func theClustersCountPausesThisNode() {
        var breaker = CodeGuessBreaker(policy: .init(perMinute: 10, perHour: 100, pause: .seconds(60)))
        let now = NIODeadline.uptimeNanoseconds(1_000_000_000_000)
        // Other nodes saw eight; this node's first wrong code is the cluster's ninth.
        #expect(breaker.recordFailure(now: now, clusterMinute: 9, clusterHour: 9) == nil)
        #expect(breaker.retryAfter(now: now) == nil)
        #expect(breaker.recordFailure(now: now + .seconds(1), clusterMinute: 10, clusterHour: 10) == .seconds(60))
        #expect(breaker.retryAfter(now: now + .seconds(1)) == .seconds(60))
        // The hour's budget, spread thin over the minutes, pauses too.
        var hourly = CodeGuessBreaker(policy: .init(perMinute: 10, perHour: 100, pause: .seconds(60)))
        #expect(hourly.recordFailure(now: now, clusterMinute: 1, clusterHour: 100) == .seconds(60))
        // A node already paused does not report a new pause.
        #expect(hourly.recordFailure(now: now + .seconds(2), clusterMinute: 1, clusterHour: 101) == nil)
        #expect(hourly.retryAfter(now: now + .seconds(61)) == nil)
    }
}
