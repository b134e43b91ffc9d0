public import RelayWire

/// What an agent sends in its Hello.
public struct AgentIdentity: Sendable {
    public var software: String
    public var capabilities: Capabilities

    public init(software: String = "relay-agent/0.1.0", capabilities: Capabilities = .all) {
        self.software = software
        self.capabilities = capabilities
    }
}

/// The steps of PROTOCOL.md §8 from an agent's side.
extension RelayConnection {
    /// Sends Hello and waits for HelloAck.
    @discardableResult
    public func hello(role: Role, identity: AgentIdentity = AgentIdentity()) async throws -> HelloAck {
        try await self.send(.hello(Hello(role: role, capabilities: identity.capabilities, software: identity.software)))
        guard case .helloAck(let ack) = try await self.expectControl("HelloAck") else {
            throw RelayClientError(.protocolViolation, "the relay did not answer Hello with HelloAck")
        }
        self.maximumPayloadLength = Int(min(ack.maximumPayloadLength, UInt32(Frame.maximumEncodablePayloadLength)))
        return ack
    }

    /// Host side: presents a support code (→ Paired) or enrolled credentials (→ HostRegistered).
    public func authenticate(host auth: HostAuth) async throws -> RelayMessage {
        try await self.send(.hostAuth(auth))
        let answer = try await self.expectControl(auth.isSupportCode ? "Paired" : "HostRegistered")
        switch (auth, answer) {
        case (.supportCode, .paired), (.namedSupportCode, .paired), (.enrolled, .hostRegistered):
            return answer
        default:
            throw RelayClientError(.protocolViolation, "the relay answered HostAuth with \(answer.type.name)")
        }
    }

    /// Viewer side: presents the engineer token with a request (→ CodeIssued or Paired).
    public func authenticate(viewer auth: ViewerAuth) async throws -> RelayMessage {
        try await self.send(.viewerAuth(auth))
        let answer = try await self.expectControl("CodeIssued or Paired")
        switch (auth.request, answer) {
        case (.newSupportCode, .codeIssued), (.connect, .paired):
            return answer
        default:
            throw RelayClientError(.protocolViolation, "the relay answered ViewerAuth with \(answer.type.name)")
        }
    }

    /// Waits for Paired, answering the relay's Pings and sending one every `pingInterval`
    /// so the relay's idle timeout does not end a long wait.
    public func waitForPairing(pingInterval: Duration = .seconds(30)) async throws -> Paired {
        let sender = self.sender
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                var nonce: UInt64 = 0
                while true {
                    try await Task.sleep(for: pingInterval)
                    nonce &+= 1
                    try await sender.send(.ping(Ping(nonce: nonce)))
                }
            }
            defer { group.cancelAll() }
            while true {
                let message = try await self.expectControl("Paired")
                if case .paired(let paired) = message { return paired }
                if case .pong = message { continue }
                throw RelayClientError(.protocolViolation, "the relay sent \(message.type.name) while the agent waited to be paired")
            }
        }
    }

    /// The next relay-control message; answers Ping, turns Error and Bye into errors.
    public func expectControl(_ expected: String) async throws -> RelayMessage {
        while true {
            guard let message = try await self.receive() else {
                throw RelayClientError(.closed, "the relay closed the connection while the agent waited for \(expected)")
            }
            switch message {
            case .ping(let ping):
                try await self.send(.pong(Pong(nonce: ping.nonce)))
            case .error(let error):
                throw RelayClientError(.rejected, "the relay refused: \(error.message) (\(error.code.name))", code: error.code)
            case .bye(let bye):
                throw RelayClientError(.closed, "the relay ended the connection: \(bye.text) (\(bye.reason.name))", byeReason: bye.reason)
            default:
                return message
            }
        }
    }
}

extension HostAuth {
    var isSupportCode: Bool { self.supportCode != nil }
}
