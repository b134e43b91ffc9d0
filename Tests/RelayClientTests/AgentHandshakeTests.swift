import RelayWire
import Synchronization
import Testing

@testable import RelayClient

/// The agent's side of the handshake against a scripted relay (PROTOCOL.md §5.1.2): what
/// a real relay cannot be made to do — announce a payload limit below the minimum, or
/// fall silent — the fake one does.
@Suite struct AgentHandshakeTests {
    @Test("the agent adopts a HelloAck limit of at least 64 KiB and caps it at the header's maximum")
    func payloadLimitIsAdopted() throws {
        let relay = RelayAddress(host: "relay.example.com", port: 7443)
        func ack(_ limit: UInt32) -> HelloAck { HelloAck(capabilities: .all, maximumPayloadLength: limit, relayNode: "n") }
        #expect(try RelayConnection.payloadLimit(of: ack(UInt32(Frame.minimumPayloadLimit)), relay: relay) == Frame.minimumPayloadLimit)
        #expect(try RelayConnection.payloadLimit(of: ack(1 << 20), relay: relay) == 1 << 20)
        #expect(try RelayConnection.payloadLimit(of: ack(.max), relay: relay) == Frame.maximumEncodablePayloadLength)
        for small: UInt32 in [0, 1024, 16 * 1024, UInt32(Frame.minimumPayloadLimit) - 1] {
            #expect(throws: RelayClientError.self) { try RelayConnection.payloadLimit(of: ack(small), relay: relay) }
        }
    }

    @Test("a relay announcing 16 KiB is refused with a Bye and an error that says what to ask the operator (issue 10, item 3)")
    func smallPayloadLimitIsRefused() async throws {
        let received = Mutex<[RelayMessage]>([])
        let error = try await FakeRelay.with({ inbound, outbound in
            var frames = inbound.makeAsyncIterator()
            guard let hello = try await frames.next() else { return }
            received.withLock { $0.append(try! RelayMessage(hello)) }
            try await outbound.write(try Frame(.helloAck(HelloAck(capabilities: .all, maximumPayloadLength: 16 * 1024, relayNode: "tiny"))))
            while let frame = try await frames.next() { received.withLock { $0.append(try! RelayMessage(frame)) } }
        }) { address, trust in
            await #expect(throws: RelayClientError.self) {
                try await RelayConnection.withConnection(to: address, trust: trust) { connection in
                    _ = try await connection.hello(role: .host)
                }
            }
        }
        let failure = try #require(error)
        #expect(failure.kind == .configuration)
        #expect(failure.message.contains("16384"))
        #expect(failure.message.contains("65536"))
        #expect(failure.message.contains("maximum_payload_bytes"))
        let messages = received.withLock { $0 }
        #expect(messages.count == 2)
        guard case .bye(let bye) = messages.last else {
            Issue.record("the agent did not say Bye: \(messages)")
            return
        }
        #expect(bye.reason == .normal)
    }
}
