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
    /// Sends Hello and waits for HelloAck; from then on the connection's keepalive runs.
    ///
    /// Throws a ``RelayClientError/Kind/configuration`` error, after saying Bye, when the
    /// relay's payload limit is below ``Frame/minimumPayloadLimit``: the host could not
    /// send even one raw tile through it (PROTOCOL.md §5.1.2, §7.6).
    @discardableResult
    public func hello(role: Role, identity: AgentIdentity = AgentIdentity()) async throws -> HelloAck {
        try await self.send(.hello(Hello(role: role, capabilities: identity.capabilities, software: identity.software)))
        guard case .helloAck(let ack) = try await self.expectControl("HelloAck") else {
            throw RelayClientError(.protocolViolation, "the relay did not answer Hello with HelloAck")
        }
        do {
            self.maximumPayloadLength = try Self.payloadLimit(of: ack, relay: self.address)
        } catch {
            try? await self.send(.bye(Bye(reason: .normal, text: "relay-agent needs a payload limit of at least \(Frame.minimumPayloadLimit) bytes")))
            throw error
        }
        self.keepalive.arm(at: ContinuousClock.now)
        return ack
    }

    /// The payload limit an agent adopts from `ack`: the relay's, capped at what a frame
    /// header can express. A limit below ``Frame/minimumPayloadLimit`` is refused.
    static func payloadLimit(of ack: HelloAck, relay: RelayAddress) throws(RelayClientError) -> Int {
        let announced = Int(ack.maximumPayloadLength)
        guard announced >= Frame.minimumPayloadLimit else {
            throw RelayClientError(
                .configuration,
                "the relay at \(relay) accepts payloads of at most \(announced) bytes, below the protocol's minimum of \(Frame.minimumPayloadLimit) bytes (64 KiB), so no screen update fits; ask the relay operator to raise maximum_payload_bytes to at least \(Frame.minimumPayloadLimit)"
            )
        }
        return min(announced, Frame.maximumEncodablePayloadLength)
    }

    /// Host side: presents a support code (→ Paired) or an enrolled host's key login (the
    /// connection's client key) or legacy secret (→ HostRegistered).
    public func authenticate(host auth: HostAuth) async throws -> RelayMessage {
        try await self.send(.hostAuth(auth))
        let answer = try await self.keyChecked { try await self.expectControl(auth.isSupportCode ? "Paired" : "HostRegistered") }
        switch (auth, answer) {
        case (.supportCode, .paired), (.namedSupportCode, .paired), (.enrolled, .hostRegistered), (.key, .hostRegistered):
            return answer
        default:
            throw RelayClientError(.protocolViolation, "the relay answered HostAuth with \(answer.type.name)")
        }
    }

    /// Viewer side: presents the engineer's key login (the connection's client key) or a
    /// legacy token, with a request (→ CodeIssued or Paired).
    public func authenticate(viewer auth: ViewerAuth) async throws -> RelayMessage {
        try await self.send(.viewerAuth(auth))
        let answer = try await self.keyChecked { try await self.expectControl("CodeIssued or Paired") }
        switch (auth.request, answer) {
        case (.newSupportCode, .codeIssued), (.connect, .paired):
            return answer
        default:
            throw RelayClientError(.protocolViolation, "the relay answered ViewerAuth with \(answer.type.name)")
        }
    }

    /// Waits for Paired, however long: the connection's keepalive (``Keepalive``) keeps
    /// the relay's idle timeout away meanwhile.
    public func waitForPairing() async throws -> Paired {
        while true {
            let message = try await self.expectControl("Paired")
            if case .paired(let paired) = message { return paired }
            if case .pong = message { continue }  // answers a Ping the caller sent itself
            throw RelayClientError(.protocolViolation, "the relay sent \(message.type.name) while the agent waited to be paired")
        }
    }

    /// The next relay-control message; turns Error and Bye into errors (their texts made
    /// safe to print, ``PeerText``).
    /// Runs `wait`; a key login refused for a key that is not the one this connection
    /// presented means that something between the agent and the relay ends TLS and
    /// presented its own (PROTOCOL.md §1.2, "Middleboxes"): the error says so.
    private func keyChecked(_ wait: () async throws -> RelayMessage) async throws -> RelayMessage {
        do {
            return try await wait()
        } catch let error as RelayClientError {
            guard error.code == .authenticationFailed, let own = self.clientKeyFingerprint,
                let named = error.description.firstMatch(of: /SHA256:[A-Za-z0-9+\/]{43}/).map({ String($0.output) }), named != own
            else { throw error }
            throw RelayClientError(
                .rejected,
                "\(error.description). The relay saw the key \(named), but this agent presented \(own): something between this machine and the relay (a TLS-inspecting proxy or firewall) ends TLS and presents a key of its own. Connect without it (PROTOCOL.md §1.2)",
                code: error.code)
        }
    }

    public func expectControl(_ expected: String) async throws -> RelayMessage {
        guard let message = try await self.receive() else {
            throw RelayClientError(.closed, "the relay closed the connection while the agent waited for \(expected)")
        }
        switch message {
        case .error(let error):
            throw RelayClientError(.rejected, "the relay refused: \(PeerText.printable(error.message)) (\(error.code.name))", code: error.code)
        case .bye(let bye):
            throw RelayClientError(.closed, "the relay ended the connection: \(PeerText.printable(bye.text)) (\(bye.reason.name))", byeReason: bye.reason)
        default:
            return message
        }
    }
}

extension HostAuth {
    var isSupportCode: Bool { self.supportCode != nil }
}
