public import RelayWire

/// What the customer lets the engineer do (PROTOCOL.md §5.2.7).
public enum SessionAccess: Sendable, Hashable, CustomStringConvertible {
    /// See the screen and use its pointer, keyboard and clipboard.
    case fullControl
    /// See the screen only: the host drops the viewer's pointer, keys and clipboard.
    case viewOnly

    /// The AccessGranted message that announces this access.
    public var message: AccessGranted {
        AccessGranted(flags: self == .fullControl ? .inputAllowed : [])
    }

    /// The access an AccessGranted announces.
    public init(_ granted: AccessGranted) {
        self = granted.inputAllowed ? .fullControl : .viewOnly
    }

    public var description: String { self == .fullControl ? "full control" : "view only" }
}

/// The customer's answer to "may this engineer connect?".
public enum ConsentDecision: Sendable, Hashable {
    case allow(SessionAccess)
    /// Refused; the text goes to the engineer in `Bye(declined)`.
    case decline(String)
}

/// How a host session learns the customer's decision.
public enum Consent: Sendable {
    /// Decided before the session (unattended hosts, `--accept`): nothing is asked.
    case granted(SessionAccess)
    /// Asked once the session is paired, while the host already answers the relay (so a
    /// viewer who gives up meanwhile ends the session). The closure is cancelled when the
    /// session ends before it returns.
    case ask(@Sendable () async throws -> ConsentDecision)
}

/// Which of the viewer's messages reach the screen source, by the customer's decision
/// (PROTOCOL.md §5.2.7). Pure: the host session keeps one and asks it about every message.
public struct ViewerInputGate: Sendable, Hashable {
    public enum State: Sendable, Hashable {
        /// The customer has not decided yet: nothing is injected.
        case awaitingConsent
        case granted(SessionAccess)
        case declined
    }

    public enum Verdict: Sendable, Hashable {
        /// Inject it (pointer, key), show it (clipboard), or queue it (UpdateRequest).
        case deliver
        /// Drop it; `firstTime` is true for the first input dropped while view-only, so the
        /// host can tell its user once that the engineer tried to take control.
        case ignore(firstTime: Bool)
        /// A viewer never sends this (PROTOCOL.md §5.2): end the session.
        case protocolViolation(String)
    }

    public private(set) var state: State
    private var reportedIgnoredInput = false

    public init(_ consent: Consent) {
        if case .granted(let access) = consent {
            self.state = .granted(access)
        } else {
            self.state = .awaitingConsent
        }
    }

    public mutating func decided(_ decision: ConsentDecision) {
        switch decision {
        case .allow(let access): self.state = .granted(access)
        case .decline: self.state = .declined
        }
    }

    /// What to do with a peer message from the viewer.
    public mutating func admit(_ message: RelayMessage) -> Verdict {
        switch message {
        case .updateRequest:
            // Queued: the host serves requests only once it has granted access.
            return .deliver
        case .pointer, .key, .clipboard:
            if self.state == .granted(.fullControl) { return .deliver }
            let first = self.state == .granted(.viewOnly) && !self.reportedIgnoredInput
            if first { self.reportedIgnoredInput = true }
            return .ignore(firstTime: first)
        default:
            return .protocolViolation("the viewer sent \(message.type.name), which only a host sends")
        }
    }
}
