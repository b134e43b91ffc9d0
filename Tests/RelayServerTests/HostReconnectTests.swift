import Foundation
import RelayTestSupport
import Testing

@testable import RelayServer

/// `relay-agent host` for an enrolled host stays registered when its relay goes away
/// without a word (killed, or a balancer's backend gone): the dropped connection is not a
/// trust failure, and the host reconnects with its back-off (OPERATIONS.md §11 "When a node
/// dies"). Outside test of the cluster demo: the host used to exit with "uncleanShutdown".
@Suite(.timeLimit(.minutes(2))) struct HostReconnectTests {
    typealias Agents = AgentEndToEndEncryptionTests

    @Test func anEnrolledHostReconnectsAfterItsRelayDroppedTheConnection() async throws {
        try await TestRelay.with { relay in
            let caFile = FileManager.default.temporaryDirectory.appendingPathComponent("relay-ca-\(UUID().uuidString).pem").path
            try relay.authority.certificatePEM.write(toFile: caFile, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(atPath: caFile) }
            let balancer = TestBalancer(backends: [relay.port])
            try await balancer.start()
            let port = balancer.port
            let (host, output) = try Agents.agent(
                [
                    "host", "--relay", "localhost:\(port)", "--ca", caFile, "--host-id", relay.acme.hostID, "--any-engineer", "--source",
                    "synthetic:scrolling-text",
                ],
                config: Agents.Folder(), environment: ["RELAY_HOST_SECRET": relay.acme.hostSecret])
            defer { if host.isRunning { host.terminate() } }
            func registrations() -> Int { output().components(separatedBy: "Registered").count - 1 }
            #expect(await eventually(within: .seconds(20)) { registrations() == 1 })
            // The connection is cut without TLS's close_notify, and the address refuses
            // connections for a while, as a killed relay's does.
            await balancer.stop()
            try await Task.sleep(for: .seconds(1))
            #expect(host.isRunning, "\(output())")
            let again = TestBalancer(backends: [relay.port])
            try await again.start(port: port)
            defer { Task { await again.stop() } }
            #expect(await eventually(within: .seconds(30)) { registrations() == 2 }, "\(output())")
            #expect(host.isRunning)
        }
    }
}
