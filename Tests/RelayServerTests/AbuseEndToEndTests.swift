import Foundation
import NIOCore
import NIOPosix
import NIOSSL
@testable import RelayClient
import RelayStore
import RelayWire
import Synchronization
import Testing

@testable import RelayServer

/// Expired, reused and guessed codes, bad frames, bad TLS, vanishing and slow peers —
/// over real TLS on loopback.
@Suite struct AbuseEndToEndTests {
    /// Pairs ACME's enrolled host with ACME's engineer and runs `body` with both ends.
    func withPair(_ relay: TestRelay, _ body: (RelayConnection, RelayConnection) async throws -> Void) async throws {
        try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { host in
            try await host.hello(role: .host)
            _ = try await host.authenticate(host: .enrolled(hostID: relay.acme.hostID, secret: relay.acme.hostSecret))
            try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { viewer in
                try await viewer.hello(role: .viewer)
                _ = try await viewer.authenticate(viewer: ViewerAuth(token: relay.acme.engineerToken, request: .connect(hostID: relay.acme.hostID)))
                _ = try await host.waitForPairing()
                try await body(host, viewer)
            }
        }
    }

    func presentCode(_ relay: TestRelay, _ code: SupportCode) async -> RelayClientError? {
        await relayError {
            try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { host in
                try await host.hello(role: .host)
                _ = try await host.authenticate(host: .supportCode(code))
            }
        }
    }

    @Test func codesExpireAndAreSingleUse() async throws {
        try await TestRelay.with({ $0.supportCodeValidity = .seconds(1) }) { relay in
            // Expired: the waiting viewer is told, and the code no longer pairs.
            try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { viewer in
                try await viewer.hello(role: .viewer)
                guard case .codeIssued(let issued) = try await viewer.authenticate(viewer: ViewerAuth(token: relay.acme.engineerToken, request: .newSupportCode)) else {
                    throw TestFailure("expected CodeIssued")
                }
                let waited = await relayError { _ = try await viewer.waitForPairing() }
                #expect(waited?.code == .timeout)
                #expect(waited?.message.contains("expired") == true)
                #expect(await self.presentCode(relay, issued.code)?.code == .invalidCode)
            }
        }
        try await TestRelay.with { relay in
            // Used: a second host with the same code gets the same answer as a wrong code.
            try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { viewer in
                try await viewer.hello(role: .viewer)
                guard case .codeIssued(let issued) = try await viewer.authenticate(viewer: ViewerAuth(token: relay.acme.engineerToken, request: .newSupportCode)) else {
                    throw TestFailure("expected CodeIssued")
                }
                try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { host in
                    try await host.hello(role: .host)
                    _ = try await host.authenticate(host: .supportCode(issued.code))
                    _ = try await viewer.waitForPairing()
                    let reused = await self.presentCode(relay, issued.code)
                    #expect(reused?.code == .invalidCode)
                    let wrong = await self.presentCode(relay, SupportCode(value: (issued.code.value + 1) % 1_000_000)!)
                    #expect(wrong?.message == reused?.message)
                }
            }
        }
    }

    /// Issue 10, item 7: wrong codes once withdrew every live code. Now a guessing source
    /// is blocked, growingly, and the code it aimed at stays valid.
    @Test func aGuessingSourceIsBlockedAndLiveCodesSurvive() async throws {
        // A 60 s first block: on a loaded machine the default 2 s could run out between guesses.
        try await TestRelay.with({ $0.sourcePenalties.freeFailures = 3; $0.sourcePenalties.firstBlock = .seconds(60) }) { relay in
            try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { viewer in
                try await viewer.hello(role: .viewer)
                guard case .codeIssued(let issued) = try await viewer.authenticate(viewer: ViewerAuth(token: relay.acme.engineerToken, request: .newSupportCode)) else {
                    throw TestFailure("expected CodeIssued")
                }
                var answers: [ErrorCode?] = []
                for guess in 1...6 {
                    let code = SupportCode(value: (issued.code.value + UInt32(guess)) % 1_000_000)!
                    answers.append(await self.presentCode(relay, code)?.code)
                }
                // Three free failures, a fourth that starts the block, then refusals that
                // are not even checked against live codes.
                #expect(answers == [.invalidCode, .invalidCode, .invalidCode, .invalidCode, .rateLimited, .rateLimited])
                // Even the right code is refused from this source while the block lasts...
                #expect(await self.presentCode(relay, issued.code)?.code == .rateLimited)
                // ...but the code lives on: the engineer still waits, with no error.
                #expect(relay.node.relay.pairing.withLockedValue { $0.codes[issued.code.value] } != nil)
            }
            #expect(relay.metric("relay_auth_throttled_total") == 3)
            #expect(await eventually { (try? relay.store.accessLog().filter { $0.outcome == .throttled }.count) == 3 })
        }
    }

    /// The relay-wide guess budget: once spent, redemption pauses for everyone (new
    /// attempts are refused unchecked) and no live code is cancelled.
    @Test func theGuessBudgetPausesRedemptionWithoutCancellingCodes() async throws {
        try await TestRelay.with({ $0.sourcePenalties.freeFailures = 1000; $0.codeGuessBudget.perMinute = 3 }) { relay in
            try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { viewer in
                try await viewer.hello(role: .viewer)
                guard case .codeIssued(let issued) = try await viewer.authenticate(viewer: ViewerAuth(token: relay.acme.engineerToken, request: .newSupportCode)) else {
                    throw TestFailure("expected CodeIssued")
                }
                for guess in 1...3 {
                    let code = SupportCode(value: (issued.code.value + UInt32(guess)) % 1_000_000)!
                    #expect(await self.presentCode(relay, code)?.code == .invalidCode)
                }
                let paused = await self.presentCode(relay, issued.code)
                #expect(paused?.code == .rateLimited)
                #expect(paused?.message.contains("a valid code stays valid") == true)
                #expect(relay.node.relay.pairing.withLockedValue { $0.codes[issued.code.value] } != nil)
                #expect(relay.metric("relay_code_redemption_pauses_total") == 1)
                // Unattended access is not affected.
                try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { host in
                    try await host.hello(role: .host)
                    _ = try await host.authenticate(host: .enrolled(hostID: relay.acme.hostID, secret: relay.acme.hostSecret))
                }
            }
        }
    }

    /// Issue 10, item 11: wrong tokens for a known engineer id from one address once
    /// locked the engineer out everywhere. Now only that address is blocked.
    @Test(.enabled(if: ProtocolConformanceTests.hasIPv6Loopback, "no IPv6 loopback"))
    func wrongTokensForAKnownIdDoNotLockTheEngineerOut() async throws {
        // Dual-stack: 127.0.0.1 and ::1 are two sources of one relay.
        try await TestRelay.with({ $0.listen = ListenAddress(host: "::", port: 0); $0.sourcePenalties.firstBlock = .seconds(60) }) { relay in
            let engineerID = relay.acme.engineerToken.split(separator: ".")[0]
            var answers: [ErrorCode] = []
            for attempt in 0..<8 {
                let agent = try await RawAgent.connect(to: relay, host: "127.0.0.1")
                try await agent.send(.hello(Hello(role: .viewer, capabilities: .all, software: "guesser")))
                _ = try await agent.readMessage()
                try await agent.send(.viewerAuth(ViewerAuth(token: "\(engineerID).wrong-secret-\(attempt)", request: .newSupportCode)))
                guard case .error(let error) = try await agent.readMessage() else { throw TestFailure("expected Error") }
                answers.append(error.code)
                await agent.close()
            }
            #expect(answers.filter { $0 == .authenticationFailed }.count == 6)
            #expect(answers.last == .rateLimited)
            // The engineer, from a clean source, gets in with the right token.
            let engineer = try await RawAgent.connect(to: relay, host: "::1")
            try await engineer.send(.hello(Hello(role: .viewer, capabilities: .all, software: "engineer")))
            _ = try await engineer.readMessage()
            try await engineer.send(.viewerAuth(ViewerAuth(token: relay.acme.engineerToken, request: .newSupportCode)))
            guard case .codeIssued = try await engineer.readMessage() else { throw TestFailure("the engineer was locked out") }
            await engineer.close()
        }
    }

    /// Issue 10, item 9: one address could take every connection slot. Now it gets at
    /// most `maximum_unauthenticated_per_source` connections that have not logged in.
    @Test func oneSourceCannotTakeEveryConnectionSlot() async throws {
        try await TestRelay.with({ $0.admission.maximumUnauthenticatedPerSource = 4 }) { relay in
            var silent: [RawAgent] = []
            for _ in 0..<4 { silent.append(try await RawAgent.connect(to: relay)) }
            #expect(await eventually { relay.node.relay.openConnections == 4 })
            // The fifth is closed before the TLS handshake completes.
            let refused = await relayError {
                try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { agent in _ = try await agent.hello(role: .host) }
            }
            #expect(refused != nil)
            #expect(relay.metric("relay_connections_rejected_total") >= 1)
            // Logged-in connections do not count against the unauthenticated cap.
            for agent in silent { await agent.close() }
            #expect(await eventually { relay.node.relay.openConnections == 0 })
            try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { host in
                try await host.hello(role: .host)
                _ = try await host.authenticate(host: .enrolled(hostID: relay.acme.hostID, secret: relay.acme.hostSecret))
            }
        }
    }

    @Test func oversizedFrameEndsTheConnectionAndThePeerIsTold() async throws {
        try await TestRelay.with({ $0.maximumPayloadLength = 64 * 1024 }) { relay in
            try await self.withPair(relay) { host, viewer in
                try await host.send(frame: try Frame(type: .tileUpdate, payload: ByteBuffer(repeating: 7, count: 64 * 1024)))
                #expect(try await viewer.receiveFrame()?.payloadLength == 64 * 1024)
                try await host.send(frame: try Frame(type: .tileUpdate, payload: ByteBuffer(repeating: 7, count: 64 * 1024 + 1)))
                let refused = await relayError { _ = try await host.expectControl("anything") }
                #expect(refused?.code == .frameTooLarge)
                guard case .bye(let bye) = try await viewer.receive() else { throw TestFailure("expected Bye") }
                #expect(bye.reason == .protocolError)
            }
            #expect(relay.metric("relay_protocol_errors_total") == 1)
        }
    }

    @Test func plainBytesAndGarbageInsteadOfTLSAreDropped() async throws {
        try await TestRelay.with { relay in
            for garbage in ["GET / HTTP/1.1\r\nHost: relay\r\n\r\n", String(repeating: "\u{0}\u{16}\u{3}", count: 500)] {
                let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .connect(host: "127.0.0.1", port: relay.port) { channel in
                        channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
                    }
                let received = try await channel.executeThenClose { inbound, outbound in
                    try await outbound.write(ByteBuffer(string: garbage))
                    var bytes = 0
                    for try await chunk in inbound { bytes += chunk.readableBytes }  // ends when the relay closes
                    return bytes
                }
                #expect(received < 100)  // at most a TLS alert
            }
            #expect(await eventually { relay.metric(#"relay_tls_handshakes_total{outcome="failed"}"#) == 2 })
            // The relay still serves real agents.
            try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { agent in
                let ack = try await agent.hello(role: .host)
                #expect(ack.version == 1)
            }
        }
    }

    @Test func tlsWithoutTheProtocolsALPNTokenIsClosed() async throws {
        try await TestRelay.with { relay in
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.trustRoots = .certificates([try relay.authority.nioCertificate()])
            let context = try NIOSSLContext(configuration: configuration)
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: "localhost", port: relay.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: "localhost"))
                        return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
            let answered = try await channel.executeThenClose { inbound, outbound in
                try? await outbound.write(try Frame(.hello(Hello(role: .host, capabilities: .all, software: "no-alpn"))).bytes)
                var bytes = 0
                do {
                    for try await chunk in inbound { bytes += chunk.readableBytes }
                } catch {}
                return bytes
            }
            #expect(answered == 0)  // no HelloAck: the relay closed right after the handshake
            #expect(await eventually { relay.metric(#"relay_tls_handshakes_total{outcome="failed"}"#) == 1 })
        }
    }

    /// The handshake deadline over a real socket and TLS: one check that the timer is
    /// wired. The deadlines themselves, the idle timeout and pings are tested on virtual
    /// time in InMemoryConnectionTests and ConnectionDeadlinesTests.
    @Test func aSilentAgentMeetsTheHandshakeDeadline() async throws {
        try await TestRelay.with({ $0.handshakeTimeout = .seconds(2) }) { relay in
            let silent = await relayError {
                try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { agent in
                    _ = try await agent.expectControl("anything")
                }
            }
            #expect(silent?.code == .timeout)
        }
    }

    @Test func aPeerVanishingMidStreamEndsTheSessionForTheOther() async throws {
        try await TestRelay.with { relay in
            let (registered, registeredSink) = AsyncStream.makeStream(of: Void.self)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { host in
                        try await host.hello(role: .host)
                        _ = try await host.authenticate(host: .enrolled(hostID: relay.acme.hostID, secret: relay.acme.hostSecret))
                        registeredSink.yield()
                        _ = try await host.waitForPairing()
                        for _ in 0..<20 { try await host.send(.tileUpdate(TileUpdate(body: ByteBuffer(repeating: 1, count: 32 * 1024)))) }
                        // Leaves without a Bye: the connection just closes.
                    }
                }
                var iterator = registered.makeAsyncIterator()
                _ = await iterator.next()
                try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { viewer in
                    try await viewer.hello(role: .viewer)
                    _ = try await viewer.authenticate(viewer: ViewerAuth(token: relay.acme.engineerToken, request: .connect(hostID: relay.acme.hostID)))
                    var updates = 0
                    while case .tileUpdate = try await viewer.receive() { updates += 1 }
                    #expect(updates == 20)
                }
                try await group.waitForAll()
            }
        }
        try await TestRelay.with { relay in
            try await self.withPair(relay) { host, viewer in
                try await viewer.send(.key(Key(keysym: 0x61, isDown: true)))
                _ = try await host.receive()
                try await viewer.send(.bye(Bye(reason: .normal, text: "done")))
                guard case .bye(let bye) = try await host.receive() else { throw TestFailure("expected Bye") }
                #expect(bye.reason == .peerLeft)
            }
        }
    }

    @Test func aSlowReaderDoesNotMakeTheRelayBuffer() async throws {
        try await TestRelay.with { relay in
            try await self.withPair(relay) { host, viewer in
                let frame = try Frame(.tileUpdate(TileUpdate(body: ByteBuffer(repeating: 0xAB, count: 64 * 1024))))
                let sent = Atomic<Int>(0)
                let total = 4000  // 256 MiB: far more than every buffer on the path together
                let sender = host.sender
                let sending = Task {
                    for _ in 0..<total {
                        try await sender.send(frames: [frame])
                        sent.add(1, ordering: .relaxed)
                    }
                }
                // The viewer reads nothing. Wait until the host cannot send any more.
                var last = -1
                let stalled = await eventually(within: .seconds(60)) {
                    let now = sent.load(ordering: .relaxed)
                    defer { last = now }
                    try? await Task.sleep(for: .milliseconds(300))
                    return now == last
                }
                #expect(stalled)
                #expect(sent.load(ordering: .relaxed) < total)
                let buffered = await relay.node.relay.bufferedOutboundBytes()
                // The high-water mark (512 KiB) plus at most one read cycle (≤ 256 KiB) and
                // TLS record overhead.
                #expect(buffered <= 1024 * 1024, "relay buffered \(buffered) bytes for a slow reader")
                let inFlight = relay.node.relay.pairedSessions.first.map { $0.inFlight(to: .viewer) } ?? -1
                #expect((0...(768 * 1024)).contains(inFlight), "relay holds \(inFlight) forwarded bytes for a slow reader")

                // Nothing was lost: the viewer drains everything once it reads.
                var received = 0
                while received < total {
                    guard let next = try await viewer.receiveFrame() else { break }
                    #expect(next.payloadLength == 64 * 1024)
                    received += 1
                }
                try await sending.value
                #expect(received == total)
            }
            // The host's own side stayed bounded too: its send window held the sender back.
        }
    }

    @Test func manyFastSendersQueueOnlyTheirSendWindow() async throws {
        // 8 sessions' hosts push as fast as they can while their viewers do not read:
        // every sender must stall with at most its send window outstanding.
        try await TestRelay.with { relay in
            try await self.withPair(relay) { host, _ in
                let frame = try Frame(.tileUpdate(TileUpdate(body: ByteBuffer(repeating: 1, count: 64 * 1024))))
                let sender = host.sender
                let sent = SentCounter()
                let pushers = (0..<8).map { _ in
                    Task {
                        for _ in 0..<2000 {
                            try await sender.send(frames: [frame])
                            sent.count.add(1, ordering: .relaxed)
                        }
                    }
                }
                var last = -1
                #expect(await eventually(within: .seconds(60)) {
                    let now = sent.count.load(ordering: .relaxed)
                    defer { last = now }
                    try? await Task.sleep(for: .milliseconds(300))
                    return now == last
                })
                // Kernel buffers and the relay hold some; the client holds at most its window.
                let pushed = sent.count.load(ordering: .relaxed)
                #expect(pushed < 16_000)
                #expect(sender.window.outstanding <= (1 << 20) + 8 * (64 * 1024 + 4))
                for pusher in pushers { pusher.cancel() }
            }
        }
    }

    @Test func shutdownSaysByeToBothSides() async throws {
        let relay = try await TestRelay.start()
        try await self.withPair(relay) { host, viewer in
            async let stopped: Void = relay.stop()
            guard case .bye(let toHost) = try await host.receive(), case .bye(let toViewer) = try await viewer.receive() else {
                throw TestFailure("expected Bye on both sides")
            }
            #expect(toHost.reason == .relayShutdown)
            #expect(toViewer.reason == .relayShutdown)
            await stopped
        }
    }

    @Test func connectionLimit() async throws {
        try await TestRelay.with({ $0.maximumConnections = 1 }) { relay in
            try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { first in
                try await first.hello(role: .host)
                let second = await relayError {
                    try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { agent in
                        _ = try await agent.hello(role: .viewer)
                    }
                }
                #expect(second?.code == .relayFull)
            }
        }
    }

    @Test func agentsNeverAcceptAnUnknownCertificate() async throws {
        try await TestRelay.with { relay in
            // Pinned fingerprint: right one works (by IP too), a wrong one names both.
            try await RelayConnection.withConnection(to: relay.ipAddress, trust: .fingerprint(relay.fingerprint)) { agent in
                let ack = try await agent.hello(role: .host)
                #expect(ack.version == 1)
            }
            let wrongPin = String(repeating: "AB:", count: 31) + "AB"
            let pinned = await relayError {
                try await RelayConnection.withConnection(to: relay.ipAddress, trust: .fingerprint(wrongPin)) { agent in
                    _ = try await agent.hello(role: .host)
                }
            }
            #expect(pinned?.kind == .tls)
            let presented = relay.fingerprint
            #expect(pinned?.message.contains(presented) == true)
            // Another CA: refused.
            let otherCA = try CertificateFactory.certificateAuthority(commonName: "Somebody else")
            let unknown = await relayError {
                try await RelayConnection.withConnection(to: relay.address, trust: .certificateAuthorities([try otherCA.nioCertificate()])) { agent in
                    _ = try await agent.hello(role: .host)
                }
            }
            #expect(unknown?.kind == .tls)
            // The right CA but an address the certificate does not name: refused.
            let byIP = await relayError {
                try await RelayConnection.withConnection(to: relay.ipAddress, trust: relay.trust) { agent in
                    _ = try await agent.hello(role: .host)
                }
            }
            #expect(byIP?.kind == .tls)
        }
    }
}

@Suite struct ConfigurationTests {
    func write(_ json: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("relay-config-\(UUID().uuidString).json").path
        try json.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func aConfigFileSetsKeysAndRejectsMistakes() throws {
        var configuration = RelayConfiguration()
        try configuration.apply(configFile: try self.write(#"{"listen": ":9443", "idle_timeout_seconds": 30, "code_guesses_per_hour": 20, "maximum_unauthenticated_per_source": 7}"#))
        #expect(configuration.listen == ListenAddress(host: "0.0.0.0", port: 9443))
        #expect(configuration.idleTimeout == .seconds(30))
        #expect(configuration.codeGuessBudget.perHour == 20)
        #expect(configuration.admission.maximumUnauthenticatedPerSource == 7)
        var retired = RelayConfiguration()
        #expect(throws: ConfigurationError.self) { try retired.apply(configFile: try self.write(#"{"code_failure_limit": 20}"#)) }

        var misspelt = RelayConfiguration()
        #expect(throws: ConfigurationError.self) { try misspelt.apply(configFile: try self.write(#"{"idle_timout_seconds": 30}"#)) }
        var halfTLS = RelayConfiguration()
        #expect(throws: ConfigurationError.self) { try halfTLS.apply(configFile: try self.write(#"{"certificate": "/etc/relay/cert.pem"}"#)) }
        var tooSmall = RelayConfiguration()
        #expect(throws: ConfigurationError.self) { try tooSmall.apply(configFile: try self.write(#"{"maximum_payload_bytes": 10}"#)) }
        #expect(throws: ConfigurationError.self) { try ListenAddress(parsing: "relay.example.com") }
        #expect(try ListenAddress(parsing: "[::1]:7443") == ListenAddress(host: "::1", port: 7443))
    }
}

final class SentCounter: Sendable {
    let count = Atomic<Int>(0)
}
