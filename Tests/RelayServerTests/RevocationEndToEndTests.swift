import Crypto
import Foundation
import RelayClient
import RelayTestSupport
import RelayWire
import Testing

@testable import RelayServer

/// Removing or rotating an account ends its live connections (Bye `revoked`), not only its
/// next authentication: the admin commands change the database, the relay notices.
@Suite struct RevocationEndToEndTests {
    static func configure(_ configuration: inout RelayConfiguration) {
        configuration.credentialCheckInterval = .milliseconds(200)
    }

    @Test(arguments: StoreBackend.available) func removingTheEngineerEndsTheSessionAndTheHostIsTold(_ backend: StoreBackend) async throws {
        try await TestRelay.with(backend: backend, Self.configure) { relay in
            let (registered, registeredSink) = AsyncStream.makeStream(of: Void.self)
            let (paired, pairedSink) = AsyncStream.makeStream(of: Void.self)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { host in
                        try await host.hello(role: .host)
                        _ = try await host.authenticate(host: .enrolled(hostID: relay.acme.hostID, secret: relay.acme.hostSecret))
                        registeredSink.yield()
                        _ = try await host.waitForPairing()
                        guard case .bye(let bye) = try await host.receive() else { throw TestFailure("the host expected a Bye") }
                        #expect(bye.reason == .peerLeft)
                        #expect(bye.text.contains("removed"))
                    }
                }
                group.addTask {
                    var iterator = registered.makeAsyncIterator()
                    _ = await iterator.next()
                    let error = await relayError {
                        try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { viewer in
                            try await viewer.hello(role: .viewer)
                            _ = try await viewer.authenticate(viewer: ViewerAuth(token: relay.acme.engineerToken, request: .connect(hostID: relay.acme.hostID)))
                            pairedSink.yield()
                            _ = try await viewer.expectControl("the Bye that ends a revoked engineer's session")
                        }
                    }
                    #expect(error?.byeReason == .revoked)
                    #expect(error?.message.contains("was removed") == true)
                }
                var iterator = paired.makeAsyncIterator()
                _ = await iterator.next()
                let engineerID = String(relay.acme.engineerToken.split(separator: ".")[0])
                try relay.store.removeEngineer(id: engineerID)
                try await group.waitForAll()
            }
        }
    }

    @Test func settingAHostKeyEndsItsSecretsRegistration() async throws {
        try await TestRelay.with(Self.configure) { relay in
            let (registered, registeredSink) = AsyncStream.makeStream(of: Void.self)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    let error = await relayError {
                        try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { host in
                            try await host.hello(role: .host)
                            _ = try await host.authenticate(host: .enrolled(hostID: relay.acme.hostID, secret: relay.acme.hostSecret))
                            registeredSink.yield()
                            _ = try await host.waitForPairing()
                        }
                    }
                    #expect(error?.byeReason == .revoked)
                    #expect(error?.message.contains("got a new login key") == true)
                }
                var iterator = registered.makeAsyncIterator()
                _ = await iterator.next()
                let newKey = Curve25519.Signing.PrivateKey()
                _ = try relay.store.setHostKey(id: relay.acme.hostID, publicKey: newKey.publicKey)
                try await group.waitForAll()
                // The new key registers again.
                try await RelayConnection.withConnection(to: relay.address, trust: relay.trust, clientKey: newKey) { host in
                    try await host.hello(role: .host)
                    guard case .hostRegistered = try await host.authenticate(host: .key(hostID: relay.acme.hostID)) else {
                        throw TestFailure("the new key did not register")
                    }
                }
            }
        }
    }
}
