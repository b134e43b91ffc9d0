import NIOCore
import RelayWire

/// What a node link this node dialled may do next (PROTOCOL.md §5.1.12). The link stands
/// for one local agent towards another node: it says Hello and NodeAuth for it, waits for
/// Paired or Error, then carries that agent's session until either side ends it. Pure:
/// ``NodeLinkHandler`` feeds it the other node's frames, the local session's events and
/// the clock, and carries out the action it returns.
struct NodeLinkStateMachine: Sendable {
    /// How the other node answered NodeAuth.
    enum Outcome: Sendable, Equatable {
        case paired(Paired)
        /// The other node refused (no such host, host busy, code gone, …) or was unreachable.
        case refused(ErrorCode, String)
    }

    enum Action: Sendable, Equatable {
        case none
        /// Tell the node that dialled how NodeAuth went (once).
        case answer(Outcome)
        case send(RelayMessage)
        /// The local session is set up: write what the other node sent before it.
        case enterSession
        /// The session ended on the other node: tell the local agent, with these words.
        case peerLeft(ByeReason, String)
        /// Say the last Bye to the other node (the local agent's side ended), then close.
        case leave(ByeReason, String)
        case close
    }

    private enum Phase: Sendable, Equatable {
        /// Hello and NodeAuth sent; waiting for Paired or Error.
        case asking
        /// Paired arrived; the local agent's side is being paired with this link.
        case pairing
        case paired
        /// The other node ended before the local session existed: tell it when it does.
        case endedBeforeSession(ByeReason, String)
        case closed
    }

    private var phase = Phase.asking

    var isPaired: Bool { self.phase == .paired }
    var isClosed: Bool { self.phase == .closed }
    /// Whether the other node's peer frames may arrive now (they wait until the session exists).
    var acceptsPeerFrames: Bool { self.phase == .pairing || self.phase == .paired }

    /// A relay-control message from the other node.
    mutating func received(_ message: RelayMessage) -> Action {
        switch (self.phase, message) {
        case (.closed, _), (.endedBeforeSession, _):
            return .none
        case (_, .ping(let ping)):
            return .send(.pong(Pong(nonce: ping.nonce)))
        case (_, .pong), (.asking, .helloAck):
            return .none
        case (.asking, .paired(let paired)):
            self.phase = .pairing
            return .answer(.paired(paired))
        case (.asking, .error(let error)):
            self.phase = .closed
            return .answer(.refused(error.code, error.message))
        case (.asking, .bye(let bye)):
            self.phase = .closed
            return .answer(.refused(.internalError, "the other relay node ended the link: \(bye.text)"))
        case (.pairing, .bye(let bye)):
            self.phase = .endedBeforeSession(bye.reason, bye.text)
            return .none
        case (.pairing, .error(let error)):
            self.phase = .endedBeforeSession(.peerLeft, "the other relay node failed: \(error.message)")
            return .none
        case (.paired, .bye(let bye)):
            self.phase = .closed
            return .peerLeft(bye.reason, bye.text)
        case (.paired, .error(let error)):
            self.phase = .closed
            return .peerLeft(.peerLeft, "the other relay node failed: \(error.message)")
        default:
            return self.broken("\(message.type.name) is not allowed on a node link \(self.phaseName)")
        }
    }

    /// The other node's bytes broke the protocol.
    mutating func receivedMalformed(_ text: String) -> Action {
        self.broken(text)
    }

    /// The local agent's side is paired with this link.
    mutating func sessionStarted() -> Action {
        switch self.phase {
        case .pairing:
            self.phase = .paired
            return .enterSession
        case .endedBeforeSession(let reason, let text):
            self.phase = .closed
            return .peerLeft(reason, text)
        default:
            return .none
        }
    }

    /// The local agent's side ended (`reason` is what the other node's usage history keeps).
    mutating func localSideEnded(_ reason: ByeReason, _ text: String) -> Action {
        switch self.phase {
        case .closed:
            return .none
        case .endedBeforeSession:
            self.phase = .closed
            return .close
        default:
            self.phase = .closed
            return .leave(reason, text)
        }
    }

    /// The link's connection closed or broke.
    mutating func disconnected() -> Action {
        switch self.phase {
        case .asking:
            self.phase = .closed
            return .answer(.refused(.internalError, "the other relay node closed the link before it answered"))
        case .pairing:
            self.phase = .endedBeforeSession(.peerLeft, "the link to the other relay node broke")
            return .none
        case .paired:
            self.phase = .closed
            return .peerLeft(.peerLeft, "the link to the other relay node broke; the other side may reconnect")
        case .endedBeforeSession, .closed:
            return .none
        }
    }

    /// Nothing arrived from the other node for too long (it died without closing).
    mutating func silent(for limit: TimeAmount) -> Action {
        guard !self.isClosed else { return .none }
        let text = "the other relay node sent nothing for \(limit.nanoseconds / 1_000_000_000) s"
        switch self.phase {
        case .asking:
            self.phase = .closed
            return .answer(.refused(.internalError, text))
        case .pairing:
            self.phase = .endedBeforeSession(.peerLeft, "the other relay node stopped answering")
            return .close
        case .paired:
            self.phase = .closed
            return .peerLeft(.peerLeft, "the other relay node stopped answering; the other side may reconnect")
        case .endedBeforeSession, .closed:
            return .none
        }
    }

    private var phaseName: String {
        switch self.phase {
        case .asking: "before Paired"
        case .pairing, .paired: "while paired"
        case .endedBeforeSession, .closed: "after its end"
        }
    }

    private mutating func broken(_ text: String) -> Action {
        switch self.phase {
        case .asking:
            self.phase = .closed
            return .answer(.refused(.internalError, "the other relay node broke the node-link protocol: \(text)"))
        case .pairing:
            self.phase = .endedBeforeSession(.protocolError, "the other relay node broke the node-link protocol: \(text)")
            return .close
        case .paired:
            self.phase = .closed
            return .peerLeft(.protocolError, "the other relay node broke the node-link protocol: \(text)")
        case .endedBeforeSession, .closed:
            return .none
        }
    }
}
