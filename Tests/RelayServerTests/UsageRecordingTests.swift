import Foundation
import NIOCore
import RelayClient
import RelayStore
import RelayTestSupport
import RelayWire
import Testing

@testable import RelayServer

/// The relay writes the usage history as sessions run (real TLS on loopback).
@Suite struct UsageRecordingTests {
    @Test(arguments: StoreBackend.available) func sessionsAreRecordedCheckpointedAndClosed(_ backend: StoreBackend) async throws {
        try await TestRelay.with(backend: backend, { $0.usageCheckpointInterval = .milliseconds(200) }) { relay in
            let payload = ByteBuffer(repeating: 0x5A, count: 1000)
            try await AbuseEndToEndTests().withPair(relay) { host, viewer in
                for _ in 0..<5 { try await host.send(.tileUpdate(TileUpdate(body: payload))) }
                for _ in 0..<5 { _ = try await viewer.receiveFrame() }
                // Recorded at pairing, counters after a checkpoint, while it runs.
                let recorded = await eventually {
                    guard let session = relay.node.relay.pairedSessions.first,
                        let record = try? relay.store.usageRecord(id: session.id.description)
                    else { return false }
                    return record.counters.framesToViewer == 5 && record.endedAt == nil
                }
                #expect(recorded)
                try await viewer.send(.bye(Bye(reason: .normal, text: "done")))
                _ = try await host.receive()
            }
            let sessions = try relay.store.usagePage(companyID: relay.acme.id, range: ExportRange(from: 0, to: .max), after: nil, limit: 10)
            #expect(sessions.count == 1)
            let closed = await eventually { (try? relay.store.usageRecord(id: sessions[0].id))?.endReason == .normal }
            #expect(closed)
            let record = try #require(try relay.store.usageRecord(id: sessions[0].id))
            #expect(record.mode == .unattended)
            #expect(record.hostID == relay.acme.hostID)
            #expect(record.hostName == "회계팀 PC-03")
            #expect(record.engineerLogin == "kim.minji")
            #expect(record.relayNode == "test-node")
            #expect(record.counters.framesToViewer == 5)
            #expect(record.counters.bytesToViewer >= 5 * 1000)
            #expect(record.viewerAddress.hasPrefix("127.0.0.1:"))
        }
    }

    @Test(arguments: StoreBackend.available) func gracefulShutdownClosesRecordsWithRelayShutdown(_ backend: StoreBackend) async throws {
        let relay = try await TestRelay.start(backend: backend)
        try await AbuseEndToEndTests().withPair(relay) { host, viewer in
            async let stopped: Void = relay.shutDown()
            _ = try await host.receive()
            _ = try await viewer.receive()
            await stopped
        }
        let sessions = try relay.store.usagePage(companyID: relay.acme.id, range: ExportRange(from: 0, to: .max), after: nil, limit: 10)
        #expect(sessions.count == 1)
        #expect(sessions.first?.endReason == .relayShutdown)
        #expect(sessions.first?.endedAt != nil)
        await relay.stop()
    }
}
