import Crypto
import Foundation
import RelayStore
import RelayTestSupport
import RelayWire
import Testing

@testable import RelayClient
@testable import RelayServer

// Key logins over real TLS on loopback (PROTOCOL.md §1.2; docs/SECURITY.md "Logging in to
// the relay"): the agent's key is its TLS client certificate, and nothing it sends could
// log anyone in again. The outside attack of issue 12 (a proxy holding the relay's own
// certificate key) is OutsideAttackTests.
@Suite(.serialized) struct KeyLoginEndToEndTests {
    /// Key accounts of ACME: an engineer and a host, with keys made now.
    private struct Accounts {
        let engineerKey = Curve25519.Signing.PrivateKey()
        let hostKey = Curve25519.Signing.PrivateKey()
        let engineer: Engineer
        let host: EnrolledHost

        init(_ relay: TestRelay) throws {
            self.engineer = try relay.store.addEngineer(companyID: relay.acme.id, login: "key.engineer", publicKey: self.engineerKey.publicKey, actor: "test")
            self.host = try relay.store.enrollHost(companyID: relay.acme.id, name: "키 PC", publicKey: self.hostKey.publicKey, actor: "test")
        }
    }

    @Test(arguments: StoreBackend.available) func anEngineerAndAHostLogInWithKeysAndPair(_ backend: StoreBackend) async throws {
        try await TestRelay.with(backend: backend) { relay in
            let accounts = try Accounts(relay)
            try await RelayConnection.withConnection(to: relay.address, trust: relay.trust, clientKey: accounts.hostKey) { host in
                _ = try await host.hello(role: .host)
                guard case .hostRegistered(let registered) = try await host.authenticate(host: .key(hostID: accounts.host.id)) else {
                    throw TestFailure("the host did not register")
                }
                #expect(registered.hostName == "키 PC")
                try await RelayConnection.withConnection(to: relay.address, trust: relay.trust, clientKey: accounts.engineerKey) { viewer in
                    _ = try await viewer.hello(role: .viewer)
                    guard case .paired(let paired) = try await viewer.authenticate(viewer: .key(.connect(hostID: accounts.host.id))) else {
                        throw TestFailure("the viewer was not paired")
                    }
                    #expect(paired.peerName == "키 PC")
                    let hostPaired = try await host.waitForPairing()
                    #expect(hostPaired.peerName == "key.engineer")
                }
            }
            // The access log is written in batches off the event loops: a batch may be on its
            // way when this flush finds nothing left to write.
            relay.node.relay.flushAccessLog()
            #expect(
                await eventually {
                    let log = (try? relay.store.accessLog(limit: 10)) ?? []
                    return log.contains { $0.event == .hostKey && $0.outcome == .accepted && $0.subject == accounts.host.id }
                        && log.contains { $0.event == .engineerKey && $0.outcome == .accepted && $0.subject == "key.engineer" }
                })
        }
    }

    /// What a key login sends can be copied byte for byte: without the key in the TLS
    /// handshake it logs nobody in.
    @Test func theSameLoginWithoutTheKeyIsRefused() async throws {
        try await TestRelay.with { relay in
            let accounts = try Accounts(relay)
            let replay = try await RawAgent.connect(to: relay)
            try await replay.send(.hello(Hello(role: .viewer, capabilities: .all, software: "replay")))
            guard case .helloAck = try await replay.readMessage() else { throw TestFailure("no HelloAck") }
            try await replay.send(.viewerAuth(.key(.connect(hostID: accounts.host.id))))
            guard case .error(let error) = try await replay.readMessage() else { throw TestFailure("the login was not refused") }
            #expect(error.code == .authenticationFailed && error.message.contains("TLS client certificate"))
        }
    }

    @Test func aKeyNoAccountHasIsRefusedWithItsFingerprint() async throws {
        try await TestRelay.with { relay in
            let accounts = try Accounts(relay)
            let stranger = Curve25519.Signing.PrivateKey()
            for (role, auth) in [(Role.viewer, RelayMessage.viewerAuth(.key(.newSupportCode))), (.host, .hostAuth(.key(hostID: accounts.host.id)))] {
                let error = await #expect(throws: RelayClientError.self) {
                    try await RelayConnection.withConnection(to: relay.address, trust: relay.trust, clientKey: stranger) { connection in
                        _ = try await connection.hello(role: role)
                        if case .viewerAuth(let viewerAuth) = auth {
                            _ = try await connection.authenticate(viewer: viewerAuth)
                        } else if case .hostAuth(let hostAuth) = auth {
                            _ = try await connection.authenticate(host: hostAuth)
                        }
                    }
                }
                #expect(error?.code == .authenticationFailed)
                #expect(error?.description.contains(KeyFingerprint.of(stranger.publicKey)) == true)
            }
        }
    }

    /// A legacy token engineer whose key is set: the token no longer logs in, the key does,
    /// and a live connection that logged in with the token is ended.
    @Test func settingAKeyEndsTheTokenAndItsSessions() async throws {
        try await TestRelay.with({ $0.credentialCheckInterval = .milliseconds(200) }) { relay in
            let key = Curve25519.Signing.PrivateKey()
            let engineers = try relay.store.engineers(companyID: relay.acme.id)
            let engineerID = try #require(engineers.first { $0.login == relay.acme.engineerLogin }).id
            try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { token in
                _ = try await token.hello(role: .viewer)
                guard case .codeIssued = try await token.authenticate(viewer: ViewerAuth(token: relay.acme.engineerToken, request: .newSupportCode)) else {
                    throw TestFailure("the token did not log in")
                }
                _ = try relay.store.setEngineerKey(id: engineerID, publicKey: key.publicKey, actor: "test")
                let error = await #expect(throws: RelayClientError.self) { _ = try await token.waitForPairing() }
                #expect(error?.description.contains("got a new login key") == true && error?.description.contains("(revoked)") == true)
            }
            try await RelayConnection.withConnection(to: relay.address, trust: relay.trust, clientKey: key) { connection in
                _ = try await connection.hello(role: .viewer)
                guard case .codeIssued = try await connection.authenticate(viewer: .key(.newSupportCode)) else { throw TestFailure("the key did not log in") }
            }
            let error = await #expect(throws: RelayClientError.self) {
                try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { connection in
                    _ = try await connection.hello(role: .viewer)
                    _ = try await connection.authenticate(viewer: ViewerAuth(token: relay.acme.engineerToken, request: .newSupportCode))
                }
            }
            #expect(error?.code == .authenticationFailed)
        }
    }
}
