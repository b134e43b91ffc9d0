import Crypto
import Foundation
import NIOCore
import RelayStore
import RelayTestSupport
import RelayWire
import Testing

@testable import RelayServer

/// The statements of docs/PROTOCOL.md that are about time or about changes made outside a
/// connection, checked byte by byte against the relay's connection handler in memory
/// (InMemoryRelay): deadlines on the relay's own clock, which the test moves to the
/// nanosecond; revocation by running the relay's credential check when the test says.
/// The rest of the document is checked over TLS in ProtocolConformanceTests; that the
/// periodic credential check and the deadline timer are wired on a real relay, in
/// RevocationEndToEndTests and AbuseEndToEndTests.
@Suite(.timeLimit(.minutes(1))) struct ProtocolConformanceInMemoryTests {
    // MARK: §8.4 Deadlines

    /// §8.4: Hello, and then authentication, must come within the deadline counted from
    /// connect; otherwise Error(timeout).
    @Test func theHandshakeDeadlineCountsFromConnectWhateverArrived() async throws {
        try await InMemoryRelay.with({ $0.handshakeTimeout = .seconds(10) }) { relay in
            let silent = try await relay.connect(from: "192.0.2.1")
            let helloOnly = try await relay.connect(from: "192.0.2.2")
            await relay.advance(by: .seconds(6))
            try await helloOnly.send(.hello(Hello(role: .host, capabilities: .all, software: "hello-only")))
            guard case .helloAck = try await helloOnly.onlyMessage() else { throw TestFailure("expected HelloAck") }
            // A Hello does not move the deadline, nor does a Ping after it.
            await relay.advance(by: .seconds(3))
            try await helloOnly.send(.ping(Ping(nonce: 5)))
            #expect(try await helloOnly.onlyMessage() == .pong(Pong(nonce: 5)))
            await relay.advance(by: .seconds(1) - .nanoseconds(1))
            #expect(try await silent.settledFrames().isEmpty && silent.isOpen)
            #expect(try await helloOnly.settledFrames().isEmpty && helloOnly.isOpen)
            await relay.advance(by: .nanoseconds(1))
            _ = try await silent.expectError(.timeout, "no Hello")
            _ = try await helloOnly.expectError(.timeout, "Hello but no HostAuth")
        }
    }

    /// §8.4: authentication ends the handshake deadline; from then on only the idle
    /// timeout applies.
    @Test func anAuthenticatedConnectionOutlivesTheHandshakeDeadline() async throws {
        try await InMemoryRelay.with({
            $0.handshakeTimeout = .seconds(10)
            $0.idleTimeout = .seconds(120)
        }) { relay in
            let host = try await relay.greeted(.host, from: "192.0.2.3")
            try await host.send(.hostAuth(.enrolled(hostID: relay.acme.hostID, secret: relay.acme.hostSecret)))
            guard case .hostRegistered = try await host.nextMessage() else { throw TestFailure("expected HostRegistered") }
            await relay.advance(by: .seconds(119))
            #expect(try await host.settledFrames().isEmpty && host.isOpen)
            await relay.advance(by: .seconds(1))
            try await host.expectBye(.idleTimeout, "the registered host that said nothing for 120 s")
        }
    }

    // MARK: §8.6 Administrative changes

    static func engineerID(_ company: TestRelay.Company) -> String {
        String(company.engineerToken.split(separator: ".")[0])
    }

    /// §8.6, §6.2: removing an engineer ends their connection that waits with a support
    /// code, with Bye(revoked); the code is void with it.
    @Test func removingAnEngineerRevokesTheirWaitingConnection() async throws {
        try await InMemoryRelay.with { relay in
            let (viewer, code) = try await relay.viewerWithCode()
            try relay.store.removeEngineer(id: Self.engineerID(relay.acme))
            relay.relay.checkCredentials()
            let bye = try await viewer.expectBye(.revoked, "the removed engineer's waiting viewer")
            #expect(bye?.text.contains("was removed") == true)
            let (_, answer) = try await relay.presentCode(code, from: "203.0.113.9")
            guard case .error(let error) = answer else { throw TestFailure("expected Error, got \(answer)") }
            #expect(error.code == .invalidCode, "the code of a revoked viewer")
        }
    }

    /// §8.6, §6.2: giving a host a key ends the registration of its secret with Bye(revoked).
    @Test func settingAHostKeyRevokesItsSecretsRegistration() async throws {
        try await InMemoryRelay.with { relay in
            let host = try await relay.greeted(.host, from: "192.0.2.4")
            try await host.send(.hostAuth(.enrolled(hostID: relay.acme.hostID, secret: relay.acme.hostSecret)))
            guard case .hostRegistered = try await host.nextMessage() else { throw TestFailure("expected HostRegistered") }
            relay.relay.checkCredentials()
            #expect(try await host.settledFrames().isEmpty && host.isOpen, "nothing changed yet")
            _ = try relay.store.setHostKey(id: relay.acme.hostID, publicKey: Curve25519.Signing.PrivateKey().publicKey)
            relay.relay.checkCredentials()
            let bye = try await host.expectBye(.revoked, "the host whose secret was rotated")
            #expect(bye?.text.contains("got a new login key") == true)
        }
    }

    /// §8.6: a paired engineer whose token is replaced by a key gets Bye(revoked), the host
    /// Bye(peer_left), and the usage record ends with `revoked`.
    @Test func aRevokedPairedEngineerLeavesTheHostWithPeerLeft() async throws {
        try await InMemoryRelay.with { relay in
            let (host, viewer) = try await relay.pairUnattended()
            _ = try relay.store.setEngineerKey(id: Self.engineerID(relay.acme), publicKey: Curve25519.Signing.PrivateKey().publicKey)
            relay.relay.checkCredentials()
            let bye = try await viewer.expectBye(.revoked, "the viewer whose token was rotated")
            #expect(bye?.text.contains("got a new login key") == true)
            try await host.expectBye(.peerLeft, "the host of a revoked viewer")
            let closed = relay.relay.usage.take().0.closed
            #expect(closed.count == 1 && closed.first?.reason == .revoked, "the usage record must end with revoked")
        }
    }
}
