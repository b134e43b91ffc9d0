import Foundation
import NIOCore
import RelayClient
import RelayTestSupport
import RelayWire
import Testing

@testable import RelayServer

/// Both pairing modes over real TLS on loopback (PROTOCOL.md §8).
@Suite struct PairingEndToEndTests {
    static func payloads(seed: UInt64) -> [ByteBuffer] {
        var generator = SeededRandom(seed: seed)
        return [0, 1, 100, 4093, 65_536, 300_000, 1_048_576].map { size in
            ByteBuffer(bytes: (0..<size).map { _ in UInt8.random(in: 0...255, using: &generator) })
        }
    }

    @Test(arguments: StoreBackend.available) func attendedPairingForwardsBothWaysUntouched(_ backend: StoreBackend) async throws {
        try await TestRelay.with(backend: backend) { relay in
            let payloads = Self.payloads(seed: 1)
            let (codes, codeSink) = AsyncStream.makeStream(of: SupportCode.self)
            let viewerInput: [RelayMessage] = [
                .pointer(Pointer(x: 640, y: 480, buttons: .left)),
                .key(Key(keysym: 0xFF0D, isDown: true)),
                .clipboard(Clipboard(text: "안녕하세요, 회계팀")),
                .updateRequest(UpdateRequest(requestID: 7, flags: .fullRefresh)),
            ]
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { viewer in
                        let ack = try await viewer.hello(role: .viewer)
                        #expect(ack.relayNode == "test-node")
                        #expect(ack.maximumPayloadLength == UInt32(Frame.defaultMaximumPayloadLength))
                        let answer = try await viewer.authenticate(viewer: ViewerAuth(token: relay.acme.engineerToken, request: .newSupportCode))
                        guard case .codeIssued(let issued) = answer else { throw TestFailure("expected CodeIssued, got \(answer)") }
                        #expect(issued.validForSeconds == 600)
                        codeSink.yield(issued.code)
                        let paired = try await viewer.waitForPairing()
                        #expect(paired.mode == .attended)
                        #expect(paired.peerName == "customer PC at 127.0.0.1")
                        for payload in payloads {
                            let frame = try await viewer.receiveFrame()
                            #expect(frame?.type == .tileUpdate)
                            #expect(frame?.payload == payload)
                        }
                        for message in viewerInput { try await viewer.send(message) }
                        try await viewer.send(.bye(Bye(reason: .normal, text: "engineer closed the viewer")))
                    }
                }
                group.addTask {
                    var iterator = codes.makeAsyncIterator()
                    guard let code = await iterator.next() else { throw TestFailure("no code") }
                    try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { host in
                        try await host.hello(role: .host)
                        let answer = try await host.authenticate(host: .supportCode(code))
                        guard case .paired(let paired) = answer else { throw TestFailure("expected Paired, got \(answer)") }
                        #expect(paired.peerName == "kim.minji")
                        #expect(paired.peerCapabilities == .all)
                        for payload in payloads { try await host.send(.tileUpdate(TileUpdate(body: payload))) }
                        for expected in viewerInput { #expect(try await host.receive() == expected) }
                        guard case .bye(let bye) = try await host.receive() else { throw TestFailure("expected Bye") }
                        #expect(bye.reason == .peerLeft)
                        #expect(bye.text.contains("engineer closed the viewer"))
                        #expect(try await host.receive() == nil)
                    }
                }
                try await group.waitForAll()
            }
            let toViewer = payloads.reduce(0) { $0 + 4 + $1.readableBytes }
            #expect(await eventually { relay.metric("relay_sessions_total") == 1 && relay.metric("relay_sessions_paired") == 0 })
            #expect(relay.metric(#"relay_bytes_relayed_total{direction="to_viewer"}"#) == Double(toViewer))
            #expect(relay.metric(#"relay_frames_relayed_total{direction="to_host"}"#) == Double(viewerInput.count))
            #expect(await eventually { relay.node.relay.openConnections == 0 })
        }
    }

    /// HostAuth method 3: the engineer sees the customer's machine name, cleaned up, beside
    /// the address the relay saw, and the usage history keeps the same name.
    @Test func attendedHostNamesItsMachine() async throws {
        try await TestRelay.with { relay in
            let (codes, codeSink) = AsyncStream.makeStream(of: SupportCode.self)
            let expected = "회계팀 PC 03 (customer PC at 127.0.0.1)"
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { viewer in
                        try await viewer.hello(role: .viewer)
                        let answer = try await viewer.authenticate(viewer: ViewerAuth(token: relay.acme.engineerToken, request: .newSupportCode))
                        guard case .codeIssued(let issued) = answer else { throw TestFailure("expected CodeIssued, got \(answer)") }
                        codeSink.yield(issued.code)
                        let paired = try await viewer.waitForPairing()
                        #expect(paired.peerName == expected)
                        // The usage recorder writes the record at its next turn, not at Paired.
                        #expect(await eventually { (try? relay.store.usageRecord(id: paired.sessionID.description))??.hostName == expected })
                        try await viewer.send(.bye(Bye(reason: .normal, text: "done")))
                    }
                }
                group.addTask {
                    var iterator = codes.makeAsyncIterator()
                    guard let code = await iterator.next() else { throw TestFailure("no code") }
                    try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { host in
                        try await host.hello(role: .host)
                        let answer = try await host.authenticate(host: .namedSupportCode(code, machineName: " 회계팀\tPC\u{7}\n 03\u{200B} "))
                        guard case .paired = answer else { throw TestFailure("expected Paired, got \(answer)") }
                        guard case .bye(let bye) = try await host.receive() else { throw TestFailure("expected Bye") }
                        #expect(bye.reason == .peerLeft)
                    }
                }
                try await group.waitForAll()
            }
        }
    }

    @Test(arguments: StoreBackend.available) func unattendedPairingByHostID(_ backend: StoreBackend) async throws {
        try await TestRelay.with(backend: backend) { relay in
            let (registered, registeredSink) = AsyncStream.makeStream(of: Void.self)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { host in
                        try await host.hello(role: .host)
                        let answer = try await host.authenticate(host: .enrolled(hostID: relay.acme.hostID, secret: relay.acme.hostSecret))
                        guard case .hostRegistered(let registration) = answer else { throw TestFailure("expected HostRegistered, got \(answer)") }
                        #expect(registration.hostName == "회계팀 PC-03")
                        registeredSink.yield()
                        let paired = try await host.waitForPairing()
                        #expect(paired.mode == .unattended)
                        #expect(paired.peerName == "kim.minji")
                        try await host.send(.screenInit(ScreenInit(width: 1920, height: 1080, name: ":0")))
                        guard case .key(let key) = try await host.receive() else { throw TestFailure("expected Key") }
                        #expect(key.keysym == 0x61)
                        try await host.send(.bye(Bye(reason: .normal, text: "customer stopped sharing")))
                    }
                }
                group.addTask {
                    var iterator = registered.makeAsyncIterator()
                    _ = await iterator.next()
                    try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { viewer in
                        try await viewer.hello(role: .viewer)
                        let answer = try await viewer.authenticate(
                            viewer: ViewerAuth(token: relay.acme.engineerToken, request: .connect(hostID: relay.acme.hostID)))
                        guard case .paired(let paired) = answer else { throw TestFailure("expected Paired, got \(answer)") }
                        #expect(paired.peerName == "회계팀 PC-03")
                        #expect(paired.mode == .unattended)
                        #expect(try await viewer.receive() == .screenInit(ScreenInit(width: 1920, height: 1080, name: ":0")))

                        // One viewer per host: a second engineer of the same company is told it is busy.
                        let busy = await relayError {
                            try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { second in
                                try await second.hello(role: .viewer)
                                _ = try await second.authenticate(
                                    viewer: ViewerAuth(token: relay.acme.engineerToken, request: .connect(hostID: relay.acme.hostID)))
                            }
                        }
                        #expect(busy?.code == .hostBusy)

                        try await viewer.send(.key(Key(keysym: 0x61, isDown: true)))
                        guard case .bye(let bye) = try await viewer.receive() else { throw TestFailure("expected Bye") }
                        #expect(bye.reason == .peerLeft)
                        #expect(bye.text.contains("customer stopped sharing"))
                    }
                }
                try await group.waitForAll()
            }
        }
    }

    @Test func anotherCompanysEngineerGetsTheSameAnswerAsForAWrongID() async throws {
        try await TestRelay.with { relay in
            try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { host in
                try await host.hello(role: .host)
                _ = try await host.authenticate(host: .enrolled(hostID: relay.acme.hostID, secret: relay.acme.hostSecret))

                func connect(token: String, hostID: String) async -> RelayClientError? {
                    await relayError {
                        try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { viewer in
                            try await viewer.hello(role: .viewer)
                            _ = try await viewer.authenticate(viewer: ViewerAuth(token: token, request: .connect(hostID: hostID)))
                        }
                    }
                }
                let otherCompany = await connect(token: relay.globex.engineerToken, hostID: relay.acme.hostID)
                let wrongID = await connect(token: relay.globex.engineerToken, hostID: "ho-doesnotexist")
                #expect(otherCompany?.code == .noSuchHost)
                #expect(wrongID?.code == .noSuchHost)
                #expect(
                    otherCompany?.message.replacingOccurrences(of: relay.acme.hostID, with: "ID")
                        == wrongID?.message.replacingOccurrences(of: "ho-doesnotexist", with: "ID"))
            }
        }
    }

    @Test func wrongCredentialsAreRejected() async throws {
        try await TestRelay.with { relay in
            let badSecret = await relayError {
                try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { host in
                    try await host.hello(role: .host)
                    _ = try await host.authenticate(host: .enrolled(hostID: relay.acme.hostID, secret: "not-the-secret"))
                }
            }
            #expect(badSecret?.code == .authenticationFailed)
            let badToken = await relayError {
                try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { viewer in
                    try await viewer.hello(role: .viewer)
                    _ = try await viewer.authenticate(viewer: ViewerAuth(token: "en-nobody.secret", request: .newSupportCode))
                }
            }
            #expect(badToken?.code == .authenticationFailed)
            // A removed engineer's token stops working.
            let engineers = try relay.store.engineers(companyID: relay.acme.id)
            try relay.store.removeEngineer(id: engineers[0].id)
            let removed = await relayError {
                try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { viewer in
                    try await viewer.hello(role: .viewer)
                    _ = try await viewer.authenticate(viewer: ViewerAuth(token: relay.acme.engineerToken, request: .newSupportCode))
                }
            }
            #expect(removed?.code == .authenticationFailed)
            #expect(await eventually { (try? relay.store.accessLog().filter { $0.outcome == .rejected }.count) == 3 })
        }
    }

    @Test func versionMismatchGetsAClearError() async throws {
        try await TestRelay.with { relay in
            let error = await relayError {
                try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { agent in
                    try await agent.send(.hello(Hello(version: 2, role: .host, capabilities: .all, software: "future-agent/9")))
                    _ = try await agent.expectControl("HelloAck")
                }
            }
            #expect(error?.code == .unsupportedVersion)
            #expect(error?.message.contains("RelayWire 1") == true)
            // A future Hello whose layout this relay cannot parse still gets the version answer.
            let future = await relayError {
                try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { agent in
                    try await agent.send(frame: try Frame(type: .hello, payload: ByteBuffer(bytes: [0x00, 0x02, 0xFF])))
                    _ = try await agent.expectControl("HelloAck")
                }
            }
            #expect(future?.code == .unsupportedVersion)
        }
    }

    @Test func peerMessagesBeforePairingAreRefused() async throws {
        try await TestRelay.with { relay in
            let error = await relayError {
                try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { agent in
                    try await agent.hello(role: .host)
                    try await agent.send(.tileUpdate(TileUpdate(body: ByteBuffer(string: "too early"))))
                    _ = try await agent.expectControl("anything")
                }
            }
            #expect(error?.code == .unexpectedMessage)
        }
    }
}
