import Foundation
import NIOCore
import RelayClient
import RelayStore
import RelayTestSupport
import RelayWire
import Testing

@testable import RelayServer

/// A relay whose PostgreSQL server goes away under live sessions (issue 15 item 5): the
/// sessions go on, new logins are refused with a sentence that says why, the usage
/// history of what happened meanwhile is kept and written when the server is back, and
/// nothing is closed twice. The relay runs on a PostgreSQL server of the test's own,
/// stopped at once (as a crash or a cut cable) and started again.
@Suite(.enabled(if: StoreBackend.available.contains(.postgres), "needs PostgreSQL (RELAY_TEST_POSTGRES)"))
struct DatabaseOutageTests {
    @Test func sessionsOutliveTheDatabaseAndTheHistoryCatchesUp() async throws {
        let server = try TestPostgresServer()
        try await TestRelay.with(
            postgres: server.url,
            {
                $0.usageCheckpointInterval = .milliseconds(200)
                $0.credentialCheckInterval = .milliseconds(200)
            }
        ) { relay in
            let tile = ByteBuffer(repeating: 0x5A, count: 4096)
            var sessionID: String?
            try await AbuseEndToEndTests().withPair(relay) { host, viewer in
                try await host.send(.tileUpdate(TileUpdate(body: tile)))
                _ = try await viewer.receiveFrame()
                sessionID = relay.node.relay.pairedSessions.first?.id.description
                let opened = await eventually { (try? relay.store.usageRecord(id: sessionID ?? ""))?.counters.framesToViewer == 1 }
                #expect(opened, "the session is recorded before the outage")

                try server.stop()
                // Frames keep flowing both ways across many credential checks and checkpoints.
                let clock = ContinuousClock()
                let until = clock.now.advanced(by: .seconds(2))
                var frames = 1
                while clock.now < until {
                    try await host.send(.tileUpdate(TileUpdate(body: tile)))
                    _ = try await viewer.receiveFrame()
                    try await viewer.send(.pointer(Pointer(x: UInt16(frames % 1000), y: 10, buttons: [])))
                    _ = try await host.receiveFrame()
                    frames += 1
                    try await Task.sleep(for: .milliseconds(50))
                }
                #expect(frames > 10)

                // A new login is refused, and the engineer is told why.
                let refused = await relayError {
                    try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { other in
                        try await other.hello(role: .viewer)
                        _ = try await other.authenticate(viewer: ViewerAuth(token: relay.globex.engineerToken, request: .newSupportCode))
                    }
                }
                #expect(refused?.code == .internalError)
                #expect(refused?.message.contains("its database does not answer") == true)
                #expect(refused?.message.contains("sessions already running go on") == true)

                // The session ends while the database is still down.
                try await viewer.send(.bye(Bye(reason: .normal, text: "done")))
                _ = try await host.receive()
            }
            let id = try #require(sessionID)

            try server.start()
            // The store's idle connections died with the server: the next call works at once,
            // on a new one.
            #expect(try relay.store.companies().count == 2)
            // What the recorder kept is written once the server is back: the session ends
            // `normal`, with every frame counted, and is closed once.
            let written = await eventually(within: .seconds(60)) { (try? relay.store.usageRecord(id: id))?.endReason == .normal }
            #expect(written)
            let record = try #require(try relay.store.usageRecord(id: id))
            #expect(record.counters.framesToViewer >= 11)
            #expect(record.endedAt != nil)
            let audit = try relay.store.auditLog(limit: 50)
            #expect(!audit.contains { $0.action == .restartRecovery })
            // New logins work again.
            try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { viewer in
                try await viewer.hello(role: .viewer)
                guard case .codeIssued = try await viewer.authenticate(viewer: ViewerAuth(token: relay.globex.engineerToken, request: .newSupportCode))
                else { throw TestFailure("expected a support code once the database is back") }
            }
        }
    }
}
