import Dispatch
import Foundation
import RelayClient
import RelayScreen
import RelayWire
import Synchronization

/// What the customer sees when an engineer connects, and the attended host's question
/// (PROTOCOL.md §5.2.7): allow, view only, or refuse; no answer in time refuses.
struct ConsentPrompt {
    /// The engineer's login and company as the relay sent them, made printable.
    let engineer: String
    let organization: String
    /// What the end-to-end handshake proved (PROTOCOL.md §5.3): the short code both sides
    /// show, and the name the engineer's key signed.
    let proof: EndToEnd.Proof?
    let timeout: Duration

    init(_ paired: Paired, proof: EndToEnd.Proof? = nil, timeout: Duration = .seconds(60)) {
        self.engineer = PeerText.printable(paired.peerName, limit: 80)
        self.organization = PeerText.printable(paired.peerOrganization, limit: 80)
        self.proof = proof
        self.timeout = timeout
    }

    /// "Engineer kim.minji of ACME (verified by the relay)". The relay checked the
    /// engineer's token, so both names are the relay's records, not the engineer's claim.
    var who: String {
        let name = self.engineer.isEmpty ? "(no name)" : self.engineer
        if self.organization.isEmpty {
            return "Engineer \(name) (verified by the relay, which did not name the company)"
        }
        return "Engineer \(name) of \(self.organization) (verified by the relay)"
    }

    var question: String {
        """
        \(self.who) wants to view and control this screen.\(self.proof.map { "\n" + $0.lines(for: .host, mode: .attended) } ?? "")
          a = allow: the engineer sees the screen and may use its mouse, keyboard and clipboard
          v = view only: the engineer sees the screen, nothing more
          r = refuse
        Your answer (refused automatically in \(Int(self.timeout.components.seconds)) s):
        """
    }

    /// The Bye text when the customer answers "refuse".
    static let refusedText = "The customer declined the session."

    /// One line the customer typed, or nil when it is none of the answers.
    static func decision(for answer: String) -> ConsentDecision? {
        switch answer.trimmingCharacters(in: .whitespaces).lowercased() {
        case "a", "allow", "y", "yes": .allow(.fullControl)
        case "v", "view", "view only", "view-only": .allow(.viewOnly)
        case "r", "refuse", "n", "no": .decline(Self.refusedText)
        default: nil
        }
    }

    /// What a line reader returns.
    enum Line: Sendable, Hashable {
        case text(String)
        case timedOut
        case endOfInput
    }

    /// Asks until the customer gives one of the answers or the time is up; `read` waits
    /// at most the given time for a line, `say` prints.
    func ask(read: (Duration) async -> Line, say: (String) -> Void, clock: some Clock<Duration> = ContinuousClock()) async -> ConsentDecision {
        let deadline = clock.now.advanced(by: self.timeout)
        say(self.question)
        while true {
            let remaining = clock.now.duration(to: deadline)
            guard remaining > .zero else { return self.timedOut(say) }
            let line = await read(remaining)
            // Cancelled: the session ended meanwhile (the engineer left, Ctrl-C), and
            // whoever ended it has said so.
            if Task.isCancelled { return .decline("The session ended before the customer answered.") }
            switch line {
            case .text(let line):
                if let decision = Self.decision(for: line) { return decision }
                say("Please answer a (allow), v (view only) or r (refuse):")
            case .timedOut:
                return self.timedOut(say)
            case .endOfInput:
                say("No answer (the input ended): the engineer is refused.")
                return .decline("No one answered at the customer's PC.")
            }
        }
    }

    private func timedOut(_ say: (String) -> Void) -> ConsentDecision {
        say("No answer within \(Int(self.timeout.components.seconds)) s: the engineer is refused.")
        return .decline("The customer did not answer within \(Int(self.timeout.components.seconds)) s.")
    }
}

/// Lines typed on the terminal, read with a time limit and given up when the waiting
/// task is cancelled (the engineer left while the customer was being asked).
enum TerminalInput {
    /// Whether standard input is a terminal someone could answer on.
    static var isTerminal: Bool { isatty(STDIN_FILENO) == 1 }

    static func readLine(within timeout: Duration) async -> ConsentPrompt.Line {
        let cancelled = CancelFlag()
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<ConsentPrompt.Line, Never>) in
                // poll(2) in short steps on a worker thread, so that a cancellation or the
                // deadline is noticed within 100 ms without closing standard input.
                DispatchQueue.global().async {
                    let deadline = ContinuousClock.now.advanced(by: timeout)
                    while true {
                        if cancelled.isSet { return continuation.resume(returning: .timedOut) }
                        let remaining = ContinuousClock.now.duration(to: deadline)
                        guard remaining > .zero else { return continuation.resume(returning: .timedOut) }
                        var descriptor = pollfd(fd: STDIN_FILENO, events: Int16(POLLIN), revents: 0)
                        let ready = poll(
                            &descriptor, 1, Int32(min(100, remaining.components.seconds * 1000 + remaining.components.attoseconds / 1_000_000_000_000_000 + 1)))
                        if ready > 0 {
                            return continuation.resume(returning: Swift.readLine().map { .text($0) } ?? .endOfInput)
                        }
                        if ready < 0, errno != EINTR { return continuation.resume(returning: .endOfInput) }
                    }
                }
            }
        } onCancel: {
            cancelled.set()
        }
    }
}

/// A flag one thread sets and another polls.
private final class CancelFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    var isSet: Bool { self.flag.load(ordering: .relaxed) }
    func set() { self.flag.store(true, ordering: .relaxed) }
}
