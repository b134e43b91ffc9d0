import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import NIOWebSocket
import RelayClient
import RelayTestSupport
import RelayWire
import ServiceLifecycle
import Testing

@testable import RelayServer

/// Issue 13 item 1: one port for agents and browsers, over real TLS on loopback. A client
/// offering ALPN `http/1.1` gets the web app and the WebSocket endpoint; agents keep
/// `supportrelay/1`; anything else gets the alert.
@Suite struct WebPortEndToEndTests {
    static let securityHeaders = [
        (
            "content-security-policy",
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
        ),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("strict-transport-security", "max-age=31536000"),
    ]

    static func expectSecurityHeaders(_ response: WebClient.Response, sourceLocation: SourceLocation = #_sourceLocation) {
        for (name, value) in Self.securityHeaders {
            #expect(response.headers[name] == value, "\(name) on \(response.status)", sourceLocation: sourceLocation)
        }
    }

    // MARK: HTTPS

    @Test(.timeLimit(.minutes(1))) func browsersGetTheAppWithStrictHeaders() async throws {
        try await TestRelay.with { relay in
            let client = try await WebClient.connect(to: relay)
            let page = try await client.request("GET / HTTP/1.1\r\nHost: localhost:\(relay.port)\r\n\r\n")
            #expect(page.status == 200)
            #expect(page.headers["content-type"] == "text/html; charset=utf-8")
            #expect(page.headers["cache-control"] == "no-cache")
            #expect(page.body == ByteBuffer(bytes: PackageResources.index_html))
            Self.expectSecurityHeaders(page)
            let etag = try #require(page.headers["etag"])

            // The same keep-alive connection: a stylesheet, HEAD, a revalidation, a 404.
            let style = try await client.request("GET /app.css HTTP/1.1\r\nHost: localhost:\(relay.port)\r\n\r\n")
            #expect(style.status == 200 && style.headers["content-type"] == "text/css; charset=utf-8")
            #expect(style.body == ByteBuffer(bytes: PackageResources.app_css))
            let head = try await client.request("HEAD / HTTP/1.1\r\nHost: localhost:\(relay.port)\r\n\r\n", head: true)
            #expect(head.status == 200 && head.body.readableBytes == 0)
            #expect(head.headers["content-length"] == "\(PackageResources.index_html.count)")
            let unchanged = try await client.request("GET / HTTP/1.1\r\nHost: localhost:\(relay.port)\r\nIf-None-Match: \(etag)\r\n\r\n", head: true)
            #expect(unchanged.status == 304)
            Self.expectSecurityHeaders(unchanged)
            let missing = try await client.request("GET /../Package.swift HTTP/1.1\r\nHost: localhost:\(relay.port)\r\n\r\n")
            #expect(missing.status == 404)
            #expect(String(buffer: missing.body).contains("there is nothing at /../Package.swift"))
            Self.expectSecurityHeaders(missing)

            // Another method: 405, and the body is not read: the connection closes.
            let post = try await client.request("POST / HTTP/1.1\r\nHost: localhost:\(relay.port)\r\nContent-Length: 5\r\n\r\nhello")
            #expect(post.status == 405 && post.headers["allow"] == "GET, HEAD" && post.headers["connection"] == "close")
            Self.expectSecurityHeaders(post)
            #expect(try await client.waitUntilClosed())

            // A head above the limits: 431 with a sentence, closed.
            let big = try await WebClient.connect(to: relay)
            let huge = try await big.request("GET / HTTP/1.1\r\nHost: localhost\r\nX-Padding: \(String(repeating: "a", count: 20_000))\r\n\r\n")
            #expect(huge.status == 431)
            #expect(String(buffer: huge.body).contains("larger than this relay takes"))
            Self.expectSecurityHeaders(huge)
            #expect(try await big.waitUntilClosed())

            #expect(relay.metric(#"relay_web_responses_total{status="200"}"#) == 3)
            #expect(relay.metric(#"relay_web_responses_total{status="304"}"#) == 1)
            #expect(relay.metric(#"relay_web_responses_total{status="404"}"#) == 1)
            #expect(relay.metric(#"relay_web_responses_total{status="405"}"#) == 1)
            #expect(relay.metric(#"relay_web_responses_total{status="431"}"#) == 1)
            #expect(await eventually { relay.node.relay.openConnections == 0 })
        }
    }

    /// The web context asks for no client certificate (a browser would prompt for one); the
    /// agents' context asks every client (PROTOCOL.md §1.2), which shows that the check sees it.
    @Test(.timeLimit(.minutes(1))) func browsersAreNotAskedForAClientCertificate() async throws {
        try await TestRelay.with { relay in
            // s_client prints the signature algorithms of a CertificateRequest, when one came.
            let requested = "Requested Signature Algorithms"
            for version in ["-tls1_3", "-tls1_2"] {
                let connect = "openssl s_client -connect 127.0.0.1:\(relay.port) -servername localhost \(version)"
                let web = try await CertificateTests.shell("\(connect) -alpn http/1.1 </dev/null")
                #expect(web.output.contains("ALPN protocol: http/1.1"), "\(version): \(web)")
                #expect(!web.output.contains(requested), "\(version): \(web.output)")
                let agent = try await CertificateTests.shell("\(connect) -alpn supportrelay/1 </dev/null")
                #expect(agent.output.contains("ALPN protocol: supportrelay/1"), "\(version): \(agent)")
                #expect(agent.output.contains("\(requested): ed25519"), "\(version): \(agent.output)")
            }
        }
    }

    /// The agents' alert stays for everything else, and a browser offering h2 first gets http/1.1.
    @Test(.timeLimit(.minutes(1))) func clientsOfferingNeitherProtocolGetTheAlert() async throws {
        try await TestRelay.with { relay in
            for option in ["-alpn foo", "-alpn h2", "-alpn HTTP/1.1", ""] {
                let result = try await CertificateTests.shell("openssl s_client -connect 127.0.0.1:\(relay.port) -servername localhost \(option) </dev/null")
                #expect(result.status != 0, "\(option)")
                #expect(result.errors.contains("no application protocol") && result.errors.contains("alert number 120"), "\(option): \(result.errors)")
            }
            // Each alert is a failed TLS handshake in the metrics.
            #expect(relay.metric(#"relay_tls_handshakes_total{outcome="failed"}"#) == 4)
            let browser = try await CertificateTests.shell(
                "openssl s_client -connect 127.0.0.1:\(relay.port) -servername localhost -alpn h2,http/1.1 </dev/null")
            #expect(browser.output.contains("ALPN protocol: http/1.1"), "\(browser)")
            // Agents are served as before.
            try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { viewer in
                _ = try await viewer.hello(role: .viewer)
            }
        }
    }

    /// Renewing the certificate renews both contexts of the relay port.
    @Test(.timeLimit(.minutes(1))) func aRenewedCertificateIsServedToAgentsAndBrowsers() async throws {
        try await CertificateTests.withFolder { data in
            let node = try RelayNodeServiceTests.node(data: data) { $0.nodeName = "web-renewal-test" }
            let original = node.certificate.fingerprint
            let services = ServiceGroup(configuration: .init(services: [.init(service: node)], logger: RelayNodeServiceTests.logger))
            let running = Task { try await services.run() }
            defer { running.cancel() }
            _ = try #require(await node.adminListening())
            let port = try #require(node.relayAddress.port)
            #expect(try await CertificateTests.presentedFingerprint(port: port, alpn: "http/1.1") == original)
            #expect(try node.renewCertificateIfDue(now: Date().addingTimeInterval(70 * CertificateTests.day)) == true)
            let renewed = node.certificate.fingerprint
            #expect(renewed != original)
            #expect(try await CertificateTests.presentedFingerprint(port: port, alpn: "http/1.1") == renewed)
            #expect(try await CertificateTests.presentedFingerprint(port: port, alpn: "supportrelay/1") == renewed)
            await services.triggerGracefulShutdown()
            _ = try? await running.value
        }
    }

    /// Web connections count against the same deadline as agents until their WebSocket has
    /// logged in: a page load that lingers and a WebSocket that never says Hello are closed.
    @Test(.timeLimit(.minutes(1))) func theHandshakeDeadlineCoversWebConnections() async throws {
        try await TestRelay.with({ $0.handshakeTimeout = .seconds(1) }) { relay in
            let started = ContinuousClock.now
            let socket = try await WebClient.connect(to: relay)
            #expect(try await socket.upgrade(host: "localhost:\(relay.port)").status == 101)
            guard case .error(let error) = try await socket.readMessage() else { throw TestFailure("expected Error") }
            #expect(error.code == .timeout)
            let close = try await socket.readFrame()
            #expect(close.opcode == 0x8 && close.payload.getInteger(at: close.payload.readerIndex, as: UInt16.self) == 1000)
            #expect(try await socket.waitUntilClosed())

            // Before an upgrade the core's last frame has nowhere to go: the connection just closes.
            let page = try await WebClient.connect(to: relay)
            #expect(try await page.request("GET / HTTP/1.1\r\nHost: localhost:\(relay.port)\r\n\r\n").status == 200)
            #expect(try await page.waitUntilClosed())
            #expect(ContinuousClock.now - started < .seconds(4))
            #expect(await eventually { relay.node.relay.openConnections == 0 })
        }
    }

    /// A connection without a request for WebRequestHandler.keepAliveIdle is closed.
    @Test(.timeLimit(.minutes(1))) func anIdleKeepAliveConnectionIsClosed() async throws {
        try await TestRelay.with { relay in
            let page = try await WebClient.connect(to: relay)
            #expect(try await page.request("GET / HTTP/1.1\r\nHost: localhost:\(relay.port)\r\n\r\n").status == 200)
            let answered = ContinuousClock.now
            #expect(try await page.waitUntilClosed())
            let idle = ContinuousClock.now - answered
            #expect(idle > .seconds(4) && idle < .seconds(8), "\(idle)")
            // A spare connection that never sends a request, the same.
            let opened = ContinuousClock.now
            let spare = try await WebClient.connect(to: relay)
            #expect(try await spare.waitUntilClosed())
            let unused = ContinuousClock.now - opened
            #expect(unused > .seconds(4) && unused < .seconds(8), "\(unused)")
            #expect(relay.metric(#"relay_tls_handshakes_total{outcome="failed"}"#) == 0)
        }
    }

    // MARK: The WebSocket handshake

    @Test(.timeLimit(.minutes(1))) func theWebSocketTakesTheRelaysOwnPagesOnly() async throws {
        try await TestRelay.with { relay in
            let crossSite = try await WebClient.connect(to: relay)
            let refused = try await crossSite.upgrade(host: "localhost:\(relay.port)", origin: "https://evil.example")
            #expect(refused.status == 403)
            Self.expectSecurityHeaders(refused)
            #expect(try await crossSite.waitUntilClosed())

            let noProtocol = try await WebClient.connect(to: relay)
            #expect(try await noProtocol.upgrade(host: "localhost:\(relay.port)", protocols: "chat").status == 400)
            #expect(try await noProtocol.waitUntilClosed())

            let plain = try await WebClient.connect(to: relay)
            let notUpgrade = try await plain.request("GET /ws HTTP/1.1\r\nHost: localhost:\(relay.port)\r\n\r\n")
            #expect(notUpgrade.status == 426 && notUpgrade.headers["upgrade"] == "websocket")

            let client = try await WebClient.connect(to: relay)
            let accepted = try await client.upgrade(host: "localhost:\(relay.port)")
            #expect(accepted.status == 101)
            #expect(accepted.headers["sec-websocket-accept"] == WebSocketHandshake.acceptValue(forKey: WebClient.key))
            #expect(accepted.headers["sec-websocket-protocol"] == "supportrelay.v1")
            #expect(relay.metric("relay_websocket_upgrades_total") == 1)
            #expect(relay.metric(#"relay_web_responses_total{status="403"}"#) == 1)
        }
    }

    // MARK: The protocol over WebSocket

    /// A browser-like host (WebSocket) pairs with a TLS viewer's support code; frames cross
    /// both ways byte for byte, whatever the split into messages.
    @Test(.timeLimit(.minutes(2))) func aWebSocketHostPairsWithATLSViewer() async throws {
        try await TestRelay.with { relay in
            let payloads = PairingEndToEndTests.payloads(seed: 13)
            let viewerInput: [RelayMessage] = [
                .pointer(Pointer(x: 640, y: 480, buttons: .left)), .key(Key(keysym: 0xFF0D, isDown: true)),
                .clipboard(Clipboard(text: "안녕하세요, 회계팀")), .updateRequest(UpdateRequest(requestID: 7, flags: .fullRefresh)),
            ]
            let (codes, codeSink) = AsyncStream.makeStream(of: SupportCode.self)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { viewer in
                        try await viewer.hello(role: .viewer)
                        let answer = try await viewer.authenticate(viewer: ViewerAuth(token: relay.acme.engineerToken, request: .newSupportCode))
                        guard case .codeIssued(let issued) = answer else { throw TestFailure("expected CodeIssued, got \(answer)") }
                        codeSink.yield(issued.code)
                        let paired = try await viewer.waitForPairing()
                        #expect(paired.peerName == "customer PC at 127.0.0.1")
                        #expect(paired.peerSoftware == "web-test/1")
                        for payload in payloads + [ByteBuffer(string: "split"), ByteBuffer(string: "one"), ByteBuffer(string: "two")] {
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
                    let host = try await WebClient.connect(to: relay)
                    #expect(try await host.upgrade(host: "localhost:\(relay.port)").status == 101)
                    try await host.sendMessage(.hello(Hello(role: .host, capabilities: .all, software: "web-test/1")))
                    guard case .helloAck(let ack) = try await host.readMessage() else { throw TestFailure("expected HelloAck") }
                    #expect(ack.maximumPayloadLength == UInt32(Frame.defaultMaximumPayloadLength))
                    try await host.sendMessage(.hostAuth(.supportCode(code)))
                    guard case .paired(let paired) = try await host.readMessage() else { throw TestFailure("expected Paired") }
                    #expect(paired.peerName == "kim.minji")
                    // One frame per message, up to the largest the relay takes (1 MiB + 4).
                    for payload in payloads { try await host.sendMessage(.tileUpdate(TileUpdate(body: payload))) }
                    // A frame split over two messages, then two frames in one.
                    let split = try Frame(.tileUpdate(TileUpdate(body: ByteBuffer(string: "split")))).bytes
                    try await host.sendBinary(split.getSlice(at: 0, length: 3)!)
                    try await host.sendBinary(split.getSlice(at: 3, length: split.readableBytes - 3)!)
                    var two = try Frame(.tileUpdate(TileUpdate(body: ByteBuffer(string: "one")))).bytes
                    var second = try Frame(.tileUpdate(TileUpdate(body: ByteBuffer(string: "two")))).bytes
                    two.writeBuffer(&second)
                    try await host.sendBinary(two)

                    // The viewer's frames arrive as the viewer's agent encoded them.
                    var expected = ByteBuffer()
                    for message in viewerInput {
                        var frame = try Frame(message).bytes
                        expected.writeBuffer(&frame)
                    }
                    let received = try await host.readStreamBytes(expected.readableBytes)
                    #expect(received == expected)
                    guard case .bye(let bye) = try await host.readMessage() else { throw TestFailure("expected Bye") }
                    #expect(bye.reason == .peerLeft && bye.text.contains("engineer closed the viewer"))
                    // The core closed: the WebSocket says so with a Close, then TCP closes.
                    let close = try await host.readFrame()
                    #expect(close.opcode == 0x8 && close.payload.getInteger(at: close.payload.readerIndex, as: UInt16.self) == 1000)
                    #expect(try await host.waitUntilClosed())
                }
                try await group.waitForAll()
            }
            let toViewer = payloads.reduce(0) { $0 + 4 + $1.readableBytes } + 3 * 4 + 5 + 3 + 3
            #expect(await eventually { relay.metric("relay_sessions_total") == 1 && relay.metric("relay_sessions_paired") == 0 })
            #expect(relay.metric(#"relay_bytes_relayed_total{direction="to_viewer"}"#) == Double(toViewer))
            #expect(relay.metric(#"relay_frames_relayed_total{direction="to_host"}"#) == Double(viewerInput.count))
            #expect(await eventually { relay.node.relay.openConnections == 0 })
        }
    }

    /// A WebSocket proves no key: a key login is refused, a legacy token is taken, and the
    /// client's Close ends the connection like a TCP close (the code is withdrawn).
    @Test(.timeLimit(.minutes(1))) func aWebSocketViewerLogsInWithoutAKey() async throws {
        try await TestRelay.with { relay in
            let keyLogin = try await WebClient.helloed(to: relay, role: .viewer)
            try await keyLogin.sendMessage(.viewerAuth(.key(.newSupportCode)))
            guard case .error(let error) = try await keyLogin.readMessage() else { throw TestFailure("expected Error") }
            #expect(error.code == .authenticationFailed)

            let viewer = try await WebClient.helloed(to: relay, role: .viewer)
            try await viewer.sendMessage(.viewerAuth(ViewerAuth(token: relay.acme.engineerToken, request: .newSupportCode)))
            guard case .codeIssued(let issued) = try await viewer.readMessage() else { throw TestFailure("expected CodeIssued") }
            // A WebSocket Ping is answered by the relay's WebSocket, not the protocol.
            try await viewer.sendFrame(opcode: 0x9, payload: ByteBuffer(string: "are you there"))
            let pong = try await viewer.readFrame()
            #expect(pong.opcode == 0xA && pong.payload == ByteBuffer(string: "are you there"))
            var goingAway = ByteBuffer()
            goingAway.writeInteger(UInt16(1001))
            try await viewer.sendFrame(opcode: 0x8, payload: goingAway)
            let close = try await viewer.readFrame()
            #expect(close.opcode == 0x8 && close.payload == goingAway)
            #expect(try await viewer.waitUntilClosed())
            // The connection is gone, and its code with it.
            #expect(await eventually { relay.node.relay.openConnections == 0 })
            let refused = await relayError {
                try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { host in
                    try await host.hello(role: .host)
                    _ = try await host.authenticate(host: .supportCode(issued.code))
                }
            }
            #expect(refused?.description.hasSuffix("(invalid_code)") == true, "\(String(describing: refused))")
        }
    }

    /// The core's backpressure works through the WebSocket: a browser viewer that stops
    /// reading holds the TLS host back, and the relay holds no more than its high-water mark
    /// and one read cycle for it (as for agents: AbuseEndToEndTests).
    @Test(.timeLimit(.minutes(1))) func aWebSocketViewerThatStopsReadingHoldsBackTheHost() async throws {
        try await TestRelay.with { relay in
            let viewer = try await WebClient.helloed(to: relay, role: .viewer)
            try await viewer.sendMessage(.viewerAuth(ViewerAuth(token: relay.acme.engineerToken, request: .newSupportCode)))
            guard case .codeIssued(let issued) = try await viewer.readMessage() else { throw TestFailure("expected CodeIssued") }
            try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { host in
                try await host.hello(role: .host)
                guard case .paired = try await host.authenticate(host: .supportCode(issued.code)) else { throw TestFailure("expected Paired") }
                guard case .paired = try await viewer.readMessage() else { throw TestFailure("expected Paired") }
                try await viewer.pauseReading()
                let frame = try Frame(.tileUpdate(TileUpdate(body: ByteBuffer(repeating: 1, count: 64 * 1024))))
                // 38 MiB: more than the kernel buffers of both sockets and the relay's high-water mark.
                let count = 600
                let sender = host.sender
                let sent = NIOLockedValueBox(0)
                let sending = Task {
                    for _ in 0..<count {
                        try await sender.send(frames: [frame])
                        sent.withLockedValue { $0 += 1 }
                    }
                }
                let configuration = relay.node.relay.configuration
                var mostInFlight = 0
                func sample() -> Int {
                    let inFlight = relay.node.relay.pairedSessions.first?.inFlight(to: .viewer) ?? 0
                    mostInFlight = max(mostInFlight, inFlight)
                    return inFlight
                }
                #expect(await eventually(within: .seconds(30)) { sample() > configuration.writeBufferLowWater }, "the relay never held the host back")
                for _ in 0..<25 {
                    _ = sample()
                    try await Task.sleep(for: .milliseconds(20))
                }
                #expect(mostInFlight <= configuration.writeBufferHighWater + 256 * 1024, "the relay held \(mostInFlight) bytes for a slow reader")
                // The host is held back: once its sends stall, most of the 38 MiB is still unsent.
                var last = -1
                while sent.withLockedValue({ $0 }) != last {
                    last = sent.withLockedValue { $0 }
                    try await Task.sleep(for: .milliseconds(300))
                }
                #expect(last < count / 2, "the host sent \(last) of \(count) frames to a viewer that reads nothing")

                // The viewer reads again: every frame arrives whole.
                try await viewer.resumeReading()
                for _ in 0..<count {
                    guard case .tileUpdate(let update) = try await viewer.readMessage() else { throw TestFailure("expected TileUpdate") }
                    #expect(update.body.readableBytes == 64 * 1024)
                }
                try await sending.value
            }
        }
    }

    /// A relay shutdown reaches a browser as the protocol's Bye, then the WebSocket's Close.
    @Test(.timeLimit(.minutes(1))) func aShutdownSaysByeOverTheWebSocket() async throws {
        let relay = try await TestRelay.start()
        let viewer = try await WebClient.helloed(to: relay, role: .viewer)
        try await viewer.sendMessage(.viewerAuth(ViewerAuth(token: relay.acme.engineerToken, request: .newSupportCode)))
        guard case .codeIssued = try await viewer.readMessage() else { throw TestFailure("expected CodeIssued") }
        async let stopped: Void = relay.stop()
        guard case .bye(let bye) = try await viewer.readMessage() else { throw TestFailure("expected Bye") }
        #expect(bye.reason == .relayShutdown)
        let close = try await viewer.readFrame()
        #expect(close.opcode == 0x8 && close.payload.getInteger(at: close.payload.readerIndex, as: UInt16.self) == 1000)
        #expect(try await viewer.waitUntilClosed())
        await stopped
    }

    @Test(.timeLimit(.minutes(1))) func textOversizedAndUnmaskedMessagesCloseTheWebSocket() async throws {
        try await TestRelay.with { relay in
            func closeCode(_ send: (WebClient) async throws -> Void) async throws -> UInt16? {
                let client = try await WebClient.connect(to: relay)
                #expect(try await client.upgrade(host: "localhost:\(relay.port)").status == 101)
                try await send(client)
                let frame = try await client.readFrame()
                guard frame.opcode == 0x8 else { return nil }
                #expect(try await client.waitUntilClosed())
                return frame.payload.getInteger(at: frame.payload.readerIndex, as: UInt16.self)
            }
            let text = try await closeCode { try await $0.sendFrame(opcode: 0x1, payload: ByteBuffer(string: "hello")) }
            #expect(text == 1003)
            // One byte over a whole frame of the relay's maximum payload.
            let tooBig = ByteBuffer(repeating: 0x40, count: Frame.defaultMaximumPayloadLength + 5)
            let oversized = try await closeCode { try await $0.sendFrame(opcode: 0x2, payload: tooBig) }
            #expect(oversized == 1009)
            let unmasked = try await closeCode { try await $0.sendFrame(opcode: 0x2, payload: ByteBuffer(bytes: [1]), masked: false) }
            #expect(unmasked == 1002)
            let fragmentedPing = try await closeCode { try await $0.sendFrame(opcode: 0x9, payload: ByteBuffer(bytes: [1]), fin: false) }
            #expect(fragmentedPing == 1002)
            #expect(relay.metric(#"relay_websocket_refusals_total{code="1003"}"#) == 1)
            #expect(relay.metric(#"relay_websocket_refusals_total{code="1009"}"#) == 1)
            #expect(relay.metric(#"relay_websocket_refusals_total{code="1002"}"#) == 2)
            #expect(await eventually { relay.node.relay.openConnections == 0 })
        }
    }
}

/// A byte-level HTTPS and WebSocket client for the web port's tests: TLS with ALPN
/// `http/1.1`, requests written by hand, frames masked and parsed by hand (RFC 6455 §5.2),
/// so the tests see exactly what the relay sends. Reads must not run concurrently.
final class WebClient: @unchecked Sendable {
    /// The WebSocket key of every handshake (any 16 bytes, base64).
    static let key = "AAECAwQFBgcICQoLDA0ODw=="

    struct Response {
        let status: Int
        /// Lowercased names; the last value of a repeated header.
        let headers: [String: String]
        let body: ByteBuffer
        /// Every `Set-Cookie` value, in order.
        var cookies: [String] = []
    }

    struct Closed: Error {}

    private let channel: any Channel
    private var inbound: AsyncThrowingStream<ByteBuffer, any Error>.AsyncIterator
    private var buffer = ByteBuffer()
    /// The protocol's bytes from binary messages, not yet read.
    private var stream = ByteBuffer()

    private init(channel: any Channel, inbound: AsyncThrowingStream<ByteBuffer, any Error>) {
        self.channel = channel
        self.inbound = inbound.makeAsyncIterator()
    }

    deinit { self.channel.close(promise: nil) }

    /// A WebSocket on `relay` that has said Hello as `role` and read the HelloAck: where a
    /// browser's protocol session starts.
    static func helloed(to relay: TestRelay, role: Role) async throws -> WebClient {
        let client = try await WebClient.connect(to: relay)
        let upgrade = try await client.upgrade(host: "localhost:\(relay.port)")
        guard upgrade.status == 101 else { throw TestFailure("the WebSocket upgrade got \(upgrade.status)") }
        try await client.sendMessage(.hello(Hello(role: role, capabilities: .all, software: "web-test/1")))
        guard case .helloAck = try await client.readMessage() else { throw TestFailure("expected HelloAck") }
        return client
    }

    static func connect(to relay: TestRelay, alpn: [String] = ["http/1.1"]) async throws -> WebClient {
        let (channel, inbound) = try await ByteStreamCollector.connect(to: relay, host: "127.0.0.1", alpn: alpn)
        return WebClient(channel: channel, inbound: inbound)
    }

    private func fill() async throws {
        guard var chunk = try await self.inbound.next() else { throw Closed() }
        self.buffer.writeBuffer(&chunk)
    }

    // MARK: HTTP

    /// Writes `text` and reads one response (`head`: it has no body whatever its headers say).
    func request(_ text: String, head: Bool = false) async throws -> Response {
        try await self.channel.writeAndFlush(ByteBuffer(string: text)).get()
        return try await self.readResponse(head: head)
    }

    func readResponse(head: Bool = false) async throws -> Response {
        try await Self.readResponse(from: &self.buffer, head: head) {
            guard let chunk = try await self.inbound.next() else { throw Closed() }
            return chunk
        }
    }

    /// One HTTP/1.1 response out of `buffer`, with the bytes `next` reads from the socket
    /// appended as needed; `head`: it has no body whatever its headers say. Shared by the
    /// test clients that write requests by hand.
    static func readResponse(from buffer: inout ByteBuffer, head: Bool = false, next: () async throws -> ByteBuffer) async throws -> Response {
        func fill() async throws {
            var chunk = try await next()
            buffer.writeBuffer(&chunk)
        }
        let separator = Array("\r\n\r\n".utf8)
        var end: Int?
        while end == nil {
            let bytes = Array(buffer.readableBytesView)
            end = bytes.indices.first { bytes[$0...].starts(with: separator) }
            if end == nil { try await fill() }
        }
        let text = buffer.readString(length: end! + 4)!
        var lines = text.components(separatedBy: "\r\n").filter { !$0.isEmpty }
        let status = Int(lines.removeFirst().split(separator: " ")[1])!
        var headers: [String: String] = [:]
        var cookies: [String] = []
        for line in lines {
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2 else { continue }
            let value = parts[1].trimmingCharacters(in: .whitespaces)
            headers[parts[0].lowercased()] = value
            if parts[0].lowercased() == "set-cookie" { cookies.append(value) }
        }
        let length = head || status == 101 || status == 304 ? 0 : Int(headers["content-length"] ?? "0") ?? 0
        while buffer.readableBytes < length { try await fill() }
        return Response(status: status, headers: headers, body: buffer.readSlice(length: length)!, cookies: cookies)
    }

    /// Asks for the WebSocket on `target` (`/ws`, or `/ws?csrf=…`) with the given Origin,
    /// subprotocols and cookie.
    func upgrade(
        host: String, origin: String? = nil, protocols: String = "supportrelay.v1", target: String = "/ws", cookie: String? = nil
    )
        async throws -> Response
    {
        try await self.request(
            "GET \(target) HTTP/1.1\r\nHost: \(host)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: \(Self.key)\r\n"
                + "Sec-WebSocket-Version: 13\r\nOrigin: \(origin ?? "https://\(host)")\r\nSec-WebSocket-Protocol: \(protocols)\r\n"
                + (cookie.map { "Cookie: \($0)\r\n" } ?? "") + "\r\n")
    }

    /// Stops reading the socket (the relay's writes back up), or reads it again.
    func pauseReading() async throws { try await self.channel.setOption(ChannelOptions.autoRead, value: false).get() }
    func resumeReading() async throws {
        try await self.channel.setOption(ChannelOptions.autoRead, value: true).get()
        self.channel.read()
    }

    /// True once the relay has closed the connection (what arrives meanwhile is dropped).
    func waitUntilClosed() async throws -> Bool {
        while try await self.inbound.next() != nil {}
        return true
    }

    // MARK: WebSocket

    func sendFrame(opcode: UInt8, payload: ByteBuffer, fin: Bool = true, masked: Bool = true) async throws {
        var frame = ByteBuffer()
        frame.writeInteger(UInt8(fin ? 0x80 : 0) | opcode)
        let maskBit: UInt8 = masked ? 0x80 : 0
        switch payload.readableBytes {
        case ..<126: frame.writeInteger(maskBit | UInt8(payload.readableBytes))
        case ..<65536:
            frame.writeInteger(maskBit | 126)
            frame.writeInteger(UInt16(payload.readableBytes))
        default:
            frame.writeInteger(maskBit | 127)
            frame.writeInteger(UInt64(payload.readableBytes))
        }
        var body = payload
        if masked {
            let key = WebSocketMaskingKey([0x37, 0xfa, 0x21, 0x3d])!
            frame.writeBytes(key)
            body.webSocketMask(key)
        }
        frame.writeBuffer(&body)
        try await self.channel.writeAndFlush(frame).get()
    }

    func sendBinary(_ bytes: ByteBuffer) async throws {
        try await self.sendFrame(opcode: 0x2, payload: bytes)
    }

    /// One protocol message in one binary message.
    func sendMessage(_ message: RelayMessage) async throws {
        try await self.sendBinary(try Frame(message).bytes)
    }

    /// The next WebSocket frame from the relay, which must be unmasked.
    func readFrame() async throws -> (fin: Bool, opcode: UInt8, payload: ByteBuffer) {
        while true {
            var peek = self.buffer
            if let first = peek.readInteger(as: UInt8.self), let second = peek.readInteger(as: UInt8.self) {
                #expect(second & 0x80 == 0, "the relay masked a frame")
                var length: Int? = Int(second & 0x7F)
                if length == 126 { length = peek.readInteger(as: UInt16.self).map(Int.init) }
                if length == 127 { length = peek.readInteger(as: UInt64.self).map(Int.init) }
                if let length, let payload = peek.readSlice(length: length) {
                    self.buffer = peek
                    self.buffer.discardReadBytes()
                    return (first & 0x80 != 0, first & 0x0F, payload)
                }
            }
            try await self.fill()
        }
    }

    /// Reads binary messages until `count` bytes of the protocol's stream are in.
    func readStreamBytes(_ count: Int) async throws -> ByteBuffer {
        while self.stream.readableBytes < count {
            var frame = try await self.readFrame()
            guard frame.opcode == 0x2 || frame.opcode == 0x0 else {
                throw TestFailure("expected a binary message, got opcode \(frame.opcode) \(Array(frame.payload.readableBytesView))")
            }
            self.stream.writeBuffer(&frame.payload)
        }
        return self.stream.readSlice(length: count)!
    }

    /// The next protocol message from the stream of binary messages.
    func readMessage() async throws -> RelayMessage {
        let header = try await self.readStreamBytes(4)
        let length = Int(header.getInteger(at: header.readerIndex, as: UInt32.self)! & 0xFF_FFFF)
        var bytes = header
        var payload = try await self.readStreamBytes(length)
        bytes.writeBuffer(&payload)
        var decoder = FrameDecoder(maximumPayloadLength: Frame.maximumEncodablePayloadLength)
        guard let frame = try decoder.decode(buffer: &bytes) else { throw TestFailure("incomplete frame") }
        return try RelayMessage(frame)
    }
}
