import RelayScreen
import RelayWire
import Synchronization
import Testing

@testable import RelayAgent

/// The customer decides before anything is shared (issue 10, item 13; PROTOCOL.md §5.2.7):
/// the attended prompt, and which of the viewer's messages reach the screen.
@Suite struct ConsentPromptTests {
    static func paired(name: String = "kim.minji", organization: String = "ACME 코리아") -> Paired {
        Paired(
            sessionID: SessionID(high: 1, low: 2), mode: .attended, peerCapabilities: .all, peerName: name, peerSoftware: "relay-agent/0.1.0",
            peerOrganization: organization)
    }

    /// Runs the prompt against scripted lines; returns the decision and what was printed.
    static func ask(_ lines: [ConsentPrompt.Line], paired: Paired = paired()) async -> (ConsentDecision, [String]) {
        let script = Mutex(lines)
        let printed = Mutex<[String]>([])
        let decision = await ConsentPrompt(paired).ask(
            read: { _ in script.withLock { $0.isEmpty ? .timedOut : $0.removeFirst() } },
            say: { line in printed.withLock { $0.append(line) } }
        )
        return (decision, printed.withLock { $0 })
    }

    @Test("the question names the engineer and company the relay verified")
    func question() async {
        let (_, printed) = await Self.ask([.text("a")])
        #expect(printed.first?.hasPrefix("Engineer kim.minji of ACME 코리아 (verified by the relay) wants to view and control this screen.") == true)
        let anonymous = ConsentPrompt(Self.paired(organization: ""))
        #expect(anonymous.who == "Engineer kim.minji (verified by the relay, which did not name the company)")
    }

    @Test("names with escape sequences or bidi overrides are shown defused")
    func hostileNames() {
        let prompt = ConsentPrompt(Self.paired(name: "evil\u{1B}[1A\u{1B}[2K", organization: "\u{202E}TI ruoY"))
        #expect(prompt.who == "Engineer evil of TI ruoY (verified by the relay)")
    }

    @Test(
        "answers: allow, view only, refuse; anything else asks again",
        arguments: [
            ("a", ConsentDecision.allow(.fullControl)), ("Allow", .allow(.fullControl)), ("yes", .allow(.fullControl)),
            ("v", .allow(.viewOnly)), (" view only ", .allow(.viewOnly)), ("r", .decline(ConsentPrompt.refusedText)),
            ("NO", .decline(ConsentPrompt.refusedText)),
        ])
    func answers(answer: String, expected: ConsentDecision) async {
        let (decision, printed) = await Self.ask([.text("maybe"), .text(""), .text(answer)])
        #expect(decision == expected)
        #expect(printed.filter { $0.contains("Please answer") }.count == 2)
    }

    @Test("no answer in time, or the end of the input, refuses")
    func silenceRefuses() async {
        guard case .decline(let text) = await Self.ask([.text("huh"), .timedOut]).0 else {
            Issue.record("not refused")
            return
        }
        #expect(text.contains("60 s"))
        guard case .decline = await Self.ask([.endOfInput]).0 else {
            Issue.record("not refused")
            return
        }
    }
}

@Suite struct ViewerInputGateTests {
    static let input: [RelayMessage] = [.pointer(Pointer(x: 1, y: 2, buttons: .left)), .key(Key(keysym: 0x61, isDown: true)), .clipboard(Clipboard(text: "x"))]

    @Test("full control delivers input; view only drops it and reports the first drop once")
    func fullAndViewOnly() {
        var full = ViewerInputGate(.granted(.fullControl))
        for message in Self.input { #expect(full.admit(message) == .deliver) }
        var viewOnly = ViewerInputGate(.granted(.viewOnly))
        #expect(viewOnly.admit(Self.input[0]) == .ignore(firstTime: true))
        for message in Self.input { #expect(viewOnly.admit(message) == .ignore(firstTime: false)) }
        #expect(viewOnly.admit(.updateRequest(UpdateRequest(requestID: 1))) == .deliver)
    }

    @Test("nothing is injected before the customer decides, nor after a refusal; the decision applies from then on")
    func beforeAndAfterTheDecision() {
        var gate = ViewerInputGate(.ask({ .allow(.fullControl) }))
        #expect(gate.state == .awaitingConsent)
        for message in Self.input { #expect(gate.admit(message) == .ignore(firstTime: false)) }
        #expect(gate.admit(.updateRequest(UpdateRequest(requestID: 1))) == .deliver)  // queued until sharing starts
        gate.decided(.allow(.fullControl))
        for message in Self.input { #expect(gate.admit(message) == .deliver) }
        var refused = ViewerInputGate(.ask({ .decline("no") }))
        refused.decided(.decline("no"))
        for message in Self.input { #expect(refused.admit(message) == .ignore(firstTime: false)) }
    }

    @Test("screen messages from the viewer are protocol violations")
    func screenMessagesFromTheViewer() {
        var gate = ViewerInputGate(.granted(.fullControl))
        for message: RelayMessage in [.screenInit(ScreenInit(width: 1, height: 1, name: "x")), .accessGranted(AccessGranted(flags: .inputAllowed))] {
            guard case .protocolViolation = gate.admit(message) else {
                Issue.record("\(message.type.name) admitted")
                continue
            }
        }
    }
}
