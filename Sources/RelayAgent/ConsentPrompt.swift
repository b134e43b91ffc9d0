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

    /// Standard input, read by this reader alone: a second reader with a buffer of its own
    /// (`Swift.readLine`'s stdio) could take lines this one's `poll` then never sees.
    static let standardInput = LineReader(descriptor: STDIN_FILENO)

    static func readLine(within timeout: Duration) async -> ConsentPrompt.Line {
        await Self.standardInput.readLine(within: timeout)
    }
}

/// Lines from a file descriptor, read with a time limit.
///
/// The reader keeps what `read(2)` returned past the end of a line for the next call, and
/// looks there before it waits: a customer who pastes "x" and "a" on two lines at once gets
/// the prompt's "Please answer…" and then "a" taken, not a wait until the prompt's
/// deadline. `poll(2)` runs in short steps on a worker thread, so that a cancellation or
/// the deadline is noticed within 100 ms without closing the descriptor. One call at a
/// time is expected (one question is asked at a time); concurrent calls each get whole
/// lines, in no promised order.
final class LineReader: Sendable {
    /// The longest line kept: a longer one is taken as its first this many bytes and the
    /// rest dropped, so that a pasted megabyte neither grows the buffer without bound nor
    /// answers the prompt 256 times.
    static let maximumLineBytes = 4096

    private struct Buffered {
        var bytes: [UInt8] = []
        var ended = false
        /// The rest of a line over `maximumLineBytes` is being dropped.
        var skippingToLineEnd = false
    }

    private let descriptor: Int32
    private let buffered = Mutex(Buffered())

    init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    /// The next line, without its "\n" or "\r\n"; `.timedOut` when none came within
    /// `timeout` or the waiting task was cancelled; `.endOfInput` once the input ended and
    /// every line before the end was taken (a last line without "\n" is a line too).
    func readLine(within timeout: Duration) async -> ConsentPrompt.Line {
        if let line = self.takeLine() { return line }
        let cancelled = CancelFlag()
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<ConsentPrompt.Line, Never>) in
                DispatchQueue.global().async {
                    continuation.resume(returning: self.waitForLine(until: ContinuousClock.now.advanced(by: timeout), cancelled: cancelled))
                }
            }
        } onCancel: {
            cancelled.set()
        }
    }

    private func waitForLine(until deadline: ContinuousClock.Instant, cancelled: CancelFlag) -> ConsentPrompt.Line {
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            if let line = self.takeLine() { return line }
            if cancelled.isSet { return .timedOut }
            let remaining = ContinuousClock.now.duration(to: deadline)
            guard remaining > .zero else { return .timedOut }
            let milliseconds = remaining.components.seconds * 1000 + remaining.components.attoseconds / 1_000_000_000_000_000 + 1
            var pollDescriptor = pollfd(fd: self.descriptor, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pollDescriptor, 1, Int32(min(100, milliseconds)))
            if ready < 0 {
                if errno == EINTR { continue }
                self.buffered.withLock { $0.ended = true }
                continue
            }
            guard ready > 0 else { continue }
            let count = chunk.withUnsafeMutableBytes { read(self.descriptor, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR || errno == EAGAIN { continue }
            self.buffered.withLock { buffered in
                if count > 0 {
                    buffered.bytes.append(contentsOf: chunk[..<count])
                } else {
                    buffered.ended = true
                }
            }
        }
    }

    /// A whole line from the buffer, the rest of an ended input as its last line, or
    /// `.endOfInput`; nil while a line is still coming.
    private func takeLine() -> ConsentPrompt.Line? {
        self.buffered.withLock { buffered in
            if buffered.skippingToLineEnd {
                guard let end = buffered.bytes.firstIndex(of: UInt8(ascii: "\n")) else {
                    buffered.bytes.removeAll(keepingCapacity: true)
                    return buffered.ended ? .endOfInput : nil
                }
                buffered.bytes.removeSubrange(...end)
                buffered.skippingToLineEnd = false
            }
            if let end = buffered.bytes.firstIndex(of: UInt8(ascii: "\n")), end <= Self.maximumLineBytes {
                let line = Self.text(buffered.bytes[..<end])
                buffered.bytes.removeSubrange(...end)
                return .text(line)
            }
            if buffered.bytes.count >= Self.maximumLineBytes {
                // Too long for an answer: its first bytes stand for it, the rest is dropped.
                let line = Self.text(buffered.bytes[..<Self.maximumLineBytes])
                buffered.bytes.removeSubrange(..<Self.maximumLineBytes)
                buffered.skippingToLineEnd = true
                return .text(line)
            }
            if buffered.ended {
                guard !buffered.bytes.isEmpty else { return .endOfInput }
                let line = Self.text(buffered.bytes[...])
                buffered.bytes.removeAll()
                return .text(line)
            }
            return nil
        }
    }

    private static func text(_ line: ArraySlice<UInt8>) -> String {
        String(decoding: line.last == UInt8(ascii: "\r") ? line.dropLast() : line, as: UTF8.self)
    }
}

/// A flag one thread sets and another polls.
private final class CancelFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    var isSet: Bool { self.flag.load(ordering: .relaxed) }
    func set() { self.flag.store(true, ordering: .relaxed) }
}
