import Foundation
import NIOConcurrencyHelpers
import NIOCore
import RelayClient
import RelayStore
import RelayTestSupport
import RelayWire
import Testing

@testable import RelayServer

/// `kill -9` of one of three real `relay-server` processes on one PostgreSQL, behind a
/// plain-TCP balancer (issue 15 items 5 and 6): the host that was on the dead node
/// registers with another node within its reconnect back-off, the engineer reaches it
/// again by id, and the dead node's open usage record is closed by a survivor as
/// `relay_restart` once its lease ran out, once.
@Suite(.enabled(if: StoreBackend.available.contains(.postgres), "needs PostgreSQL (RELAY_TEST_POSTGRES)"))
struct ClusterFailureTests {
    /// PostgreSQL stopped for longer than the nodes' leases under a cross-node session: the
    /// session goes on across the link, a new login is refused with a sentence that says
    /// why, and once the server is back the history is written once, as it happened: no
    /// node took another for dead because all of them lost the database together.
    @Test(.timeLimit(.minutes(2))) func crossNodeSessionsOutliveTheDatabaseAndNoNodeIsTakenForDead() async throws {
        let server = try TestPostgresServer()
        try await TestCluster.with(server: server.url) { cluster in
            let fast: (inout RelayConfiguration) -> Void = {
                $0.usageCheckpointInterval = .milliseconds(200)
                $0.credentialCheckInterval = .milliseconds(200)
            }
            let a = try await cluster.start("node-a", fast)
            let b = try await cluster.start("node-b", fast)
            let tile = ByteBuffer(repeating: 0x5A, count: 4096)
            let (registered, registeredSink) = AsyncStream.makeStream(of: Void.self)
            let (done, doneSink) = AsyncStream.makeStream(of: Void.self)
            let host = Task {
                try await RelayConnection.withConnection(to: b.address, trust: cluster.trust) { host in
                    try await host.hello(role: .host)
                    _ = try await host.authenticate(host: .enrolled(hostID: cluster.hostID, secret: cluster.hostSecret))
                    registeredSink.yield()
                    _ = try await host.waitForPairing()
                    // Echo input as screen updates until the engineer leaves.
                    while let message = try await host.receive() {
                        guard case .pointer = message else { break }
                        try await host.send(.tileUpdate(TileUpdate(body: tile)))
                    }
                    doneSink.yield()
                }
            }
            var iterator = registered.makeAsyncIterator()
            _ = await iterator.next()
            #expect(
                await eventually { (try? cluster.store.hostLocation(hostID: cluster.hostID, companyID: cluster.companyID, now: Date()))??.name == "node-b" })
            let id = try await RelayConnection.withConnection(to: a.address, trust: cluster.trust) { viewer -> String in
                try await viewer.hello(role: .viewer)
                guard
                    case .paired(let paired) = try await viewer.authenticate(
                        viewer: ViewerAuth(token: cluster.engineerToken, request: .connect(hostID: cluster.hostID)))
                else { throw TestFailure("not paired") }
                try await viewer.send(.pointer(Pointer(x: 1, y: 1, buttons: [])))
                _ = try await viewer.receiveFrame()
                #expect(await eventually { (try? cluster.store.usageRecord(id: paired.sessionID.description))??.counters.framesToViewer == 1 })

                try server.stop()
                // Past the leases (3 s), frames go on both ways across the link.
                let clock = ContinuousClock()
                let until = clock.now.advanced(by: .seconds(5))
                var frames = 1
                while clock.now < until {
                    try await viewer.send(.pointer(Pointer(x: UInt16(frames), y: 1, buttons: [])))
                    #expect(try await viewer.receiveFrame()?.payload == tile)
                    frames += 1
                    try await Task.sleep(for: .milliseconds(50))
                }
                #expect(frames > 20)
                let refused = await relayError {
                    try await RelayConnection.withConnection(to: a.address, trust: cluster.trust) { other in
                        try await other.hello(role: .viewer)
                        _ = try await other.authenticate(viewer: ViewerAuth(token: cluster.engineerToken, request: .newSupportCode))
                    }
                }
                #expect(refused?.code == .internalError)
                #expect(refused?.message.contains("its database") == true)
                try server.start()
                // A few lease periods with the database back, the session still running.
                try await Task.sleep(for: .seconds(3))
                try await viewer.send(.pointer(Pointer(x: 9, y: 9, buttons: [])))
                #expect(try await viewer.receiveFrame()?.payload == tile)
                try await viewer.send(.bye(Bye(reason: .normal, text: "done")))
                return paired.sessionID.description
            }
            var finished = done.makeAsyncIterator()
            _ = await finished.next()
            _ = try? await host.value
            // Node B recorded it: ended normal, every frame counted, closed once, and no node
            // closed another's records.
            #expect(await eventually(within: .seconds(30)) { (try? cluster.store.usageRecord(id: id))??.endReason == .normal })
            let record = try #require(try cluster.store.usageRecord(id: id))
            #expect(record.relayNode == "node-b" && record.counters.framesToViewer >= 22)
            #expect(try !cluster.store.auditLog(limit: 100).contains { $0.action == .restartRecovery })
            _ = a
        }
    }

    @Test(.timeLimit(.minutes(3))) func aKilledNodesHostComesBackThroughAnotherNodeAndItsRecordIsClosedOnce() async throws {
        let cluster = try TestCluster()
        let executable = try BuiltExecutable.url("relay-server")
        var processes: [String: CrashRecoveryTests.ServerProcess] = [:]
        let balancer: TestBalancer
        do {
            let issued = try CertificateFactory.selfSigned(commonName: "relay cluster test", dnsNames: ["localhost"])
            let certificate = cluster.folder + "/relay.crt"
            let key = cluster.folder + "/relay.key"
            try TestCluster.writePrivate(try issued.certificatePEM, to: certificate)
            try TestCluster.writePrivate(issued.privateKeyPEM, to: key)
            var ports: [String: Int] = [:]
            for name in ["node-a", "node-b", "node-c"] {
                let (port, clusterPort) = (try TestCluster.freePort(), try TestCluster.freePort())
                let folder = cluster.folder + "/" + name
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
                let config = folder + "/relay.json"
                try TestCluster.writePrivate(
                    """
                    {"listen": "127.0.0.1:\(port)", "admin_listen": "127.0.0.1:0", "node_name": "\(name)", "store": "\(cluster.database)",
                     "certificate": "\(certificate)", "key": "\(key)", "event_loop_threads": 2, "usage_checkpoint_seconds": 1,
                     "cluster_listen": "127.0.0.1:\(clusterPort)", "cluster_secret_file": "\(cluster.secretFile)", "node_lease_seconds": 3}
                    """, to: config)
                let process = try CrashRecoveryTests.ServerProcess(executable: executable, dataDirectory: folder, configFile: config)
                processes[name] = process
                ports[name] = port
                // The operator sees which node this is and where its cluster port listens.
                #expect(process.banner.contains("  node:        \(name)\n"))
                #expect(process.banner.contains("  cluster:     127.0.0.1:\(clusterPort)  (TLS, node links"))
            }
            balancer = TestBalancer(backends: ["node-a", "node-b", "node-c"].compactMap { ports[$0] })
            try await balancer.start()
        } catch {
            for process in processes.values { process.kill(SIGKILL) }
            await cluster.stop()
            throw error
        }
        defer { for process in processes.values where process.process.isRunning { process.kill(SIGKILL) } }
        let trust = RelayTrust.fingerprint(processes["node-a"]!.fingerprint)
        func address(_ name: String) -> RelayAddress { RelayAddress(host: "localhost", port: processes[name]!.port) }
        let throughBalancer = RelayAddress(host: "localhost", port: balancer.port)

        // The host: first straight to node B, then, after losing it, through the balancer
        // with a short back-off, as relay-agent host reconnects.
        let hostNodes = NIOLockedValueBox<[String]>([])
        let nodeB = address("node-b")
        let host = Task {
            var target = nodeB
            while !Task.isCancelled {
                do {
                    try await RelayConnection.withConnection(to: target, trust: trust) { connection in
                        let ack = try await connection.hello(role: .host)
                        let answer = try await connection.authenticate(host: .enrolled(hostID: cluster.hostID, secret: cluster.hostSecret))
                        guard case .hostRegistered = answer else { throw TestFailure("expected HostRegistered, got \(answer)") }
                        hostNodes.withLockedValue { $0.append(ack.relayNode) }
                        _ = try await connection.waitForPairing()
                        // Echo every Clipboard back, as a screen would answer input.
                        while let message = try await connection.receive() {
                            if case .clipboard = message { try await connection.send(message) }
                        }
                    }
                } catch {}
                target = throughBalancer
                try? await Task.sleep(for: .milliseconds(300))
            }
        }
        defer { host.cancel() }

        do {
            #expect(await eventually { hostNodes.withLockedValue { $0 } == ["node-b"] })
            #expect(
                await eventually { (try? cluster.store.hostLocation(hostID: cluster.hostID, companyID: cluster.companyID, now: Date()))??.name == "node-b" })
            // A session from node A to the host on node B, then node B is killed under it.
            let first = try await RelayConnection.withConnection(to: address("node-a"), trust: trust) { viewer -> SessionID in
                try await viewer.hello(role: .viewer)
                let answer = try await viewer.authenticate(viewer: ViewerAuth(token: cluster.engineerToken, request: .connect(hostID: cluster.hostID)))
                guard case .paired(let paired) = answer else { throw TestFailure("expected Paired, got \(answer)") }
                for index in 0..<20 {
                    try await viewer.send(.clipboard(Clipboard(text: "before \(index)")))
                    #expect(try await viewer.receive() == .clipboard(Clipboard(text: "before \(index)")))
                }
                // Two checkpoints pass, so the record holds these bytes.
                try await Task.sleep(for: .milliseconds(2_500))
                processes["node-b"]!.kill(SIGKILL)
                guard case .bye(let bye) = try await viewer.receive() else { throw TestFailure("expected Bye after node B died") }
                #expect(bye.reason == .peerLeft)
                return paired.sessionID
            }
            // The host registers with a live node through the balancer, within its back-off.
            #expect(await eventually { hostNodes.withLockedValue { $0.count } >= 2 })
            let second = hostNodes.withLockedValue { $0.last }
            #expect(second == "node-a" || second == "node-c")
            #expect(
                await eventually {
                    let location = try? cluster.store.hostLocation(hostID: cluster.hostID, companyID: cluster.companyID, now: Date())
                    return location?.name == second
                })
            // The engineer reaches it again by id, on node A, wherever it is now.
            try await RelayConnection.withConnection(to: address("node-a"), trust: trust) { viewer in
                try await viewer.hello(role: .viewer)
                let answer = try await viewer.authenticate(viewer: ViewerAuth(token: cluster.engineerToken, request: .connect(hostID: cluster.hostID)))
                guard case .paired = answer else { throw TestFailure("expected Paired, got \(answer)") }
                for index in 0..<20 {
                    try await viewer.send(.clipboard(Clipboard(text: "after \(index) 회계팀")))
                    #expect(try await viewer.receive() == .clipboard(Clipboard(text: "after \(index) 회계팀")))
                }
                try await viewer.send(.bye(Bye(reason: .normal, text: "done")))
            }
            // Node B recorded the first session; its lease runs out and a survivor closes the
            // record at its last checkpoint, once.
            #expect(
                await eventually(within: .seconds(20)) {
                    (try? cluster.store.usageRecord(id: first.description))??.endReason == .relayRestart
                })
            let record = try cluster.store.usageRecord(id: first.description)
            #expect(record?.relayNode == "node-b")
            #expect((record?.counters.bytesToHost ?? 0) > 0 && record?.counters.bytesToHost == record?.counters.bytesToViewer)
            let closures = try cluster.store.auditLog(limit: 100).filter { ($0.detail ?? "").contains("node=node-b") && $0.action == .restartRecovery }
            #expect(closures.count == 1)
        } catch {
            host.cancel()
            for process in processes.values where process.process.isRunning { process.kill(SIGTERM) }
            await balancer.stop()
            await cluster.stop()
            throw error
        }
        host.cancel()
        for process in processes.values where process.process.isRunning { process.kill(SIGTERM) }
        await balancer.stop()
        await cluster.stop()
    }
}
