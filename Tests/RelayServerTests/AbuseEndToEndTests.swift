import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import RelayStore
import RelayTestSupport
import RelayWire
import Synchronization
import Testing

@testable import RelayClient
@testable import RelayServer

/// Guessed codes, bad frames, bad TLS, vanishing and fast peers — over real TLS on
/// loopback. Code expiry and reuse, a guessing source's block and a slow reader are tested
/// in memory, without waiting on a clock (AbuseInMemoryTests).
@Suite struct AbuseEndToEndTests {
    /// Pairs ACME's enrolled host with ACME's engineer and runs `body` with both ends.
    func withPair<T: Sendable>(_ relay: TestRelay, _ body: (RelayConnection, RelayConnection) async throws -> T) async throws -> T {
        try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { host in
            try await host.hello(role: .host)
            _ = try await host.authenticate(host: .enrolled(hostID: relay.acme.hostID, secret: relay.acme.hostSecret))
            return try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { viewer in
                try await viewer.hello(role: .viewer)
                _ = try await viewer.authenticate(viewer: ViewerAuth(token: relay.acme.engineerToken, request: .connect(hostID: relay.acme.hostID)))
                _ = try await host.waitForPairing()
                return try await body(host, viewer)
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

    /// The relay-wide guess budget: once spent, redemption pauses for everyone (new
    /// attempts are refused unchecked) and no live code is cancelled.
    @Test func theGuessBudgetPausesRedemptionWithoutCancellingCodes() async throws {
        try await TestRelay.with({
            $0.sourcePenalties.freeFailures = 1000
            $0.codeGuessBudget.perMinute = 3
        }) { relay in
            try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { viewer in
                try await viewer.hello(role: .viewer)
                guard
                    case .codeIssued(let issued) = try await viewer.authenticate(viewer: ViewerAuth(token: relay.acme.engineerToken, request: .newSupportCode))
                else {
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
        try await TestRelay.with({
            $0.listen = ListenAddress(host: "::", port: 0)
            $0.sourcePenalties.firstBlock = .seconds(60)
        }) { relay in
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
            configuration.trustRoots = .certificates([relay.authority.certificate])
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
    /// time in InMemoryConnectionTests, ProtocolConformanceInMemoryTests and
    /// ConnectionDeadlinesTests. The wait ends with the Error, not after a fixed time; the
    /// 2 s deadline is an input that must outlast the TLS handshake on a loaded machine. (A
    /// connection that never starts TLS needs no such margin: see the next test.)
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

    /// A connection that never starts TLS is closed at the handshake deadline, not after
    /// the 10 s the relay grants a last frame to leave (there is no TLS to send an Error
    /// over): its file descriptor is not held for nothing.
    @Test(.timeLimit(.minutes(1))) func aConnectionWithoutTLSIsClosedAtTheDeadline() async throws {
        try await TestRelay.with({ $0.handshakeTimeout = .milliseconds(300) }) { relay in
            let clock = ContinuousClock()
            let start = clock.now
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: relay.port).get()
            try await channel.closeFuture.get()
            let elapsed = clock.now - start
            #expect(elapsed >= .milliseconds(300), "closed before the deadline")
            #expect(elapsed < .seconds(5), "closed \(elapsed) after connecting: the last-write grace, not the deadline")
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

    /// Backpressure end to end over real sockets (the relay's side alone is tested in
    /// memory, AbuseInMemoryTests): 8 tasks push through one host connection as fast as they
    /// can while the viewer reads nothing. The test waits for the state it checks, not for
    /// a quiet spell: the relay holds bytes it cannot write to the viewer and the host's
    /// senders are held back. At no time did the agent's send window hold more than its
    /// limit and one batch (SendWindow); once the viewer reads, every frame arrives.
    @Test(.timeLimit(.minutes(1))) func manyFastSendersQueueOnlyTheirSendWindow() async throws {
        try await TestRelay.with { relay in
            try await self.withPair(relay) { host, viewer in
                let frame = try Frame(.tileUpdate(TileUpdate(body: ByteBuffer(repeating: 1, count: 64 * 1024))))
                let sender = host.sender
                let window = sender.window
                let bound = window.limit + frame.bytes.readableBytes
                // 52 MiB: more than the kernel buffers of both sockets, the relay's high-water
                // mark and the send window hold together.
                let pushers = 8
                let perPusher = 100
                let sent = SentCounter()
                let overBound = SentCounter()  // the last count of bytes over the bound, if any
                let pushing = (0..<pushers).map { _ in
                    Task {
                        for _ in 0..<perPusher {
                            try await sender.send(frames: [frame])
                            sent.count.add(1, ordering: .relaxed)
                            let outstanding = window.outstanding
                            if outstanding > bound { overBound.count.store(outstanding, ordering: .relaxed) }
                        }
                    }
                }
                // Held back end to end: the relay holds bytes it cannot write to the viewer
                // (more than the low-water mark, so it does not read the host), and the host's
                // senders cannot go on (its channel is not writable, or its window is full).
                // Meanwhile the relay never holds more than its high-water mark and one read
                // cycle (at most 256 KiB) for the viewer.
                let configuration = relay.node.relay.configuration
                var mostInFlight = 0
                let held = await eventually(within: .seconds(50)) {
                    let inFlight = relay.node.relay.pairedSessions.first?.inFlight(to: .viewer) ?? 0
                    mostInFlight = max(mostInFlight, inFlight)
                    return inFlight > configuration.writeBufferLowWater && (!sender.channel.isWritable || window.outstanding > window.limit)
                }
                #expect(held, "the relay never held the host back, or the host's senders were never held back")
                #expect(sent.count.load(ordering: .relaxed) < pushers * perPusher)
                #expect(window.outstanding <= bound)
                #expect(mostInFlight <= configuration.writeBufferHighWater + 256 * 1024, "the relay held \(mostInFlight) bytes for a slow reader")

                // The viewer reads: every frame arrives, and the senders finish.
                var received = 0
                while received < pushers * perPusher, let next = try await viewer.receiveFrame() {
                    #expect(next.payloadLength == frame.payloadLength)
                    received += 1
                }
                for pusher in pushing { try await pusher.value }
                #expect(received == pushers * perPusher)
                #expect(overBound.count.load(ordering: .relaxed) == 0, "the send window held \(overBound.count.load(ordering: .relaxed)) bytes, over \(bound)")
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
            let otherCA = try TestCertificateAuthority(commonName: "Somebody else")
            let unknown = await relayError {
                try await RelayConnection.withConnection(to: relay.address, trust: .certificateAuthorities([otherCA.certificate])) { agent in
                    _ = try await agent.hello(role: .host)
                }
            }
            #expect(unknown?.kind == .tls, "\(unknown?.message ?? "no error")")
            // The right CA but an address the certificate does not name: refused.
            let byIP = await relayError {
                try await RelayConnection.withConnection(to: relay.ipAddress, trust: relay.trust) { agent in
                    _ = try await agent.hello(role: .host)
                }
            }
            #expect(byIP?.kind == .tls, "\(byIP?.message ?? "no error")")
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
        try configuration.apply(
            configFile: try self.write(
                #"{"listen": ":9443", "idle_timeout_seconds": 30, "code_guesses_per_hour": 20, "maximum_unauthenticated_per_source": 7}"#))
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
