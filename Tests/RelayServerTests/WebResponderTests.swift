import Foundation
import NIOCore
import NIOHTTP1
import NIOWebSocket
import RelayWire
import Testing

@testable import RelayServer

/// The web port's decisions on their own, no I/O: which transport an ALPN offer gets, what
/// each request is answered with, the WebSocket handshake, and what each WebSocket frame
/// a browser sends does.
@Suite struct WebResponderTests {
    static func request(
        _ method: HTTPMethod = .GET, _ uri: String, version: HTTPVersion = .http1_1, headers: [(String, String)] = [("Host", "relay.example.com")]
    ) -> HTTPRequestHead {
        HTTPRequestHead(version: version, method: method, uri: uri, headers: HTTPHeaders(headers))
    }

    static func upgrade(
        origin: String? = "https://relay.example.com", host: String = "relay.example.com", extra: [(String, String)] = []
    )
        -> HTTPRequestHead
    {
        var headers = [
            ("Host", host), ("Upgrade", "websocket"), ("Connection", "keep-alive, Upgrade"), ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Protocol", "chat, supportrelay.v1"),
        ]
        if let origin { headers.append(("Origin", origin)) }
        headers.append(contentsOf: extra)
        return Self.request(.GET, "/ws", headers: headers)
    }

    static func refusal(_ answer: WebResponder.Answer) -> HTTPResponseStatus? {
        if case .refuse(let refusal) = answer { return refusal.status }
        return nil
    }

    // MARK: The ALPN offer picks the transport

    @Test func theOfferPicksTheTransport() {
        #expect(ClientHelloALPN.route(for: .protocols(["supportrelay/1"])) == .agent)
        #expect(ClientHelloALPN.route(for: .protocols(["h2", "http/1.1"])) == .web)
        #expect(ClientHelloALPN.route(for: .protocols(["http/1.1"])) == .web)
        // An agent's token wins when both are offered.
        #expect(ClientHelloALPN.route(for: .protocols(["http/1.1", "supportrelay/1"])) == .agent)
        #expect(ClientHelloALPN.route(for: .protocols(["h2"])) == .refuse)
        #expect(ClientHelloALPN.route(for: .protocols(["HTTP/1.1"])) == .refuse)
        #expect(ClientHelloALPN.route(for: ClientHelloALPN.Offer.none) == .refuse)
        #expect(ClientHelloALPN.route(for: .unreadable) == .agent)
        #expect(ClientHelloALPN.route(for: .incomplete) == nil)
    }

    // MARK: Requests

    @Test func knownFilesAreServedAndNothingElse() {
        #expect(WebResponder.answer(to: Self.request(.GET, "/"), hasBody: false) == .asset(path: "/", status: .ok, body: true))
        #expect(WebResponder.answer(to: Self.request(.GET, "/?from=mail#top"), hasBody: false) == .asset(path: "/", status: .ok, body: true))
        #expect(WebResponder.answer(to: Self.request(.HEAD, "/app.css"), hasBody: false) == .asset(path: "/app.css", status: .ok, body: false))
        for uri in [
            "/index.html", "/../Package.swift", "/%2e%2e/Package.swift", "/Static/app.css", "//app.css", "/app.css/", "*", "https://relay.example.com/",
            "/app.css%00", "/APP.CSS",
        ] {
            #expect(Self.refusal(WebResponder.answer(to: Self.request(.GET, uri), hasBody: false)) == .notFound, "\(uri)")
        }
        for method in [HTTPMethod.POST, .PUT, .DELETE, .OPTIONS, .PATCH, .TRACE, .CONNECT] {
            let answer = WebResponder.answer(to: Self.request(method, "/"), hasBody: false)
            #expect(answer == .refuse(WebRefusal(.methodNotAllowed, "this server takes GET and HEAD only", headers: [("Allow", "GET, HEAD")])), "\(method)")
        }
        #expect(Self.refusal(WebResponder.answer(to: Self.request(.GET, "/"), hasBody: true)) == .payloadTooLarge)
        #expect(Self.refusal(WebResponder.answer(to: Self.request(.GET, "/", headers: []), hasBody: false)) == .badRequest)
        #expect(Self.refusal(WebResponder.answer(to: Self.request(.GET, "/", headers: [("Host", "a"), ("Host", "b")]), hasBody: false)) == .badRequest)
        // HTTP/1.0 needs no Host.
        #expect(WebResponder.answer(to: Self.request(.GET, "/", version: .http1_0, headers: []), hasBody: false) == .asset(path: "/", status: .ok, body: true))
    }

    @Test func anUnchangedFileIsNotSentAgain() throws {
        let etag = try #require(WebAssets.byPath["/"]).etag
        #expect(etag.count == 34 && etag.hasPrefix("\"") && etag.hasSuffix("\""))
        for header in [etag, "\"other\", \(etag)", "W/\(etag)", "*"] {
            let answer = WebResponder.answer(to: Self.request(.GET, "/", headers: [("Host", "h"), ("If-None-Match", header)]), hasBody: false)
            #expect(answer == .asset(path: "/", status: .notModified, body: false), "\(header)")
        }
        let stale = WebResponder.answer(to: Self.request(.GET, "/", headers: [("Host", "h"), ("If-None-Match", "\"stale\"")]), hasBody: false)
        #expect(stale == .asset(path: "/", status: .ok, body: true))
    }

    @Test func everyResponseCarriesTheSecurityHeaders() throws {
        let answers: [WebResponder.Answer] = [
            .asset(path: "/", status: .ok, body: true), .asset(path: "/app.css", status: .notModified, body: false),
            .refuse(WebRefusal(.notFound, "nothing")), .refuse(WebRefusal(.methodNotAllowed, "no", headers: [("Allow", "GET, HEAD")])),
        ]
        var heads = answers.map { WebResponder.response(to: $0, close: false).head }
        heads.append(WebResponder.upgradeHead(acceptValue: "x"))
        for head in heads {
            #expect(
                head.headers["Content-Security-Policy"] == [
                    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
                ])
            #expect(head.headers["X-Content-Type-Options"] == ["nosniff"])
            #expect(head.headers["Referrer-Policy"] == ["no-referrer"])
            #expect(head.headers["Strict-Transport-Security"] == ["max-age=31536000"])
        }
        let (page, body) = WebResponder.response(to: .asset(path: "/", status: .ok, body: true), close: false)
        #expect(page.headers["Content-Type"] == ["text/html; charset=utf-8"])
        #expect(page.headers["Cache-Control"] == ["no-cache"])
        #expect(body == ByteBuffer(bytes: PackageResources.index_html))
        let (missing, text) = WebResponder.response(to: .refuse(WebRefusal(.notFound, "there is nothing at /x")), close: true)
        #expect(missing.headers["Cache-Control"] == ["no-store"])
        #expect(missing.headers["Connection"] == ["close"])
        #expect(text.map { String(buffer: $0) } == "404 Not Found: there is nothing at /x\n")
    }

    /// The table serves exactly the files of the folder: none forgotten, none missing.
    @Test func theTableListsTheStaticFolder() throws {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Sources/RelayServer/Web/Static").standardized
        let files = try FileManager.default.subpathsOfDirectory(atPath: folder.path).filter {
            var isFolder: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: folder.appendingPathComponent($0).path, isDirectory: &isFolder)
            return !isFolder.boolValue && !$0.split(separator: "/").contains { $0.hasPrefix(".") }
        }.sorted()
        #expect(files == WebAssets.all.map(\.file).sorted())
        for asset in WebAssets.all {
            let onDisk = try Data(contentsOf: folder.appendingPathComponent(asset.file))
            #expect(Array(onDisk) == Array(asset.body.readableBytesView), "\(asset.file)")
            // No inline script, style or event handler, which the policy would block anyway:
            // every script is a file of its own.
            guard asset.file.hasSuffix(".html") else { continue }
            let page = String(decoding: onDisk, as: UTF8.self)
            let scripts = page.components(separatedBy: "<script").dropFirst()
            #expect(scripts.allSatisfy { $0.prefix(while: { $0 != ">" }).contains("src=") }, "\(asset.file) has an inline script")
            #expect(!page.contains("<style") && !page.contains("style=") && !page.contains(" onclick=") && !page.contains(" onload="), "\(asset.file)")
        }
    }

    // MARK: The WebSocket handshake

    @Test func theHandshakeAcceptsTheRelaysOwnPages() {
        // RFC 6455 §1.3's example key and answer.
        #expect(WebSocketHandshake.acceptValue(forKey: "dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        #expect(WebResponder.answer(to: Self.upgrade(), hasBody: false) == .upgrade(acceptValue: "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="))
        let headers = WebSocketHandshake.responseHeaders(acceptValue: "v")
        #expect(headers["Sec-WebSocket-Protocol"] == ["supportrelay.v1"])
        // Behind a load balancer on 443 the browser writes no port; either side may.
        for (origin, host) in [
            ("https://relay.example.com", "relay.example.com"), ("https://relay.example.com:443", "relay.example.com"),
            ("https://Relay.Example.com", "relay.example.com:443"), ("https://localhost:7443", "localhost:7443"), ("https://[::1]:7443", "[::1]:7443"),
        ] {
            #expect(WebSocketHandshake.isSameOrigin(origin: origin, host: host), "\(origin) \(host)")
        }
    }

    @Test func crossSiteAndMalformedHandshakesAreRefused() {
        for origin in [
            "https://evil.example", "http://relay.example.com", "https://relay.example.com:7443", "null", "https://relay.example.com.evil.example",
            "https://relay.example.com/", "https://user@relay.example.com", "",
        ] {
            #expect(Self.refusal(WebResponder.answer(to: Self.upgrade(origin: origin), hasBody: false)) == .forbidden, "\(origin)")
        }
        #expect(Self.refusal(WebResponder.answer(to: Self.upgrade(origin: nil), hasBody: false)) == .forbidden)
        #expect(Self.refusal(WebResponder.answer(to: Self.upgrade(extra: [("Origin", "https://relay.example.com")]), hasBody: false)) == .forbidden)
        var noProtocol = Self.upgrade()
        noProtocol.headers.remove(name: "Sec-WebSocket-Protocol")
        #expect(Self.refusal(WebResponder.answer(to: noProtocol, hasBody: false)) == .badRequest)
        var badKey = Self.upgrade()
        badKey.headers.replaceOrAdd(name: "Sec-WebSocket-Key", value: "c2hvcnQ=")
        #expect(Self.refusal(WebResponder.answer(to: badKey, hasBody: false)) == .badRequest)
        var oldVersion = Self.upgrade()
        oldVersion.headers.replaceOrAdd(name: "Sec-WebSocket-Version", value: "8")
        #expect(Self.refusal(WebResponder.answer(to: oldVersion, hasBody: false)) == .upgradeRequired)
        #expect(Self.refusal(WebResponder.answer(to: Self.request(.GET, "/ws"), hasBody: false)) == .upgradeRequired)
        #expect(Self.refusal(WebResponder.answer(to: Self.request(.POST, "/ws"), hasBody: true)) == .methodNotAllowed)
    }

    // MARK: WebSocket frames from a browser

    static let mask = WebSocketMaskingKey([1, 2, 3, 4])!

    static func frame(_ opcode: WebSocketOpcode, _ bytes: [UInt8], fin: Bool = true, masked: Bool = true, rsv1: Bool = false) -> WebSocketFrame {
        var data = ByteBuffer(bytes: bytes)
        if masked { data.webSocketMask(Self.mask) }
        return WebSocketFrame(fin: fin, rsv1: rsv1, opcode: opcode, maskKey: masked ? Self.mask : nil, data: data)
    }

    @Test func binaryMessagesAndTheirFragmentsAreTheStream() {
        var inbound = WebSocketInbound(maximumMessageLength: 8)
        #expect(inbound.received(Self.frame(.binary, [1, 2, 3])) == .stream(ByteBuffer(bytes: [1, 2, 3])))
        #expect(inbound.received(Self.frame(.binary, [4, 5, 6, 7], fin: false)) == .stream(ByteBuffer(bytes: [4, 5, 6, 7])))
        // Control frames may come between fragments.
        #expect(inbound.received(Self.frame(.ping, [9])) == .pong(ByteBuffer(bytes: [9])))
        #expect(inbound.received(Self.frame(.pong, [])) == .ignore)
        #expect(inbound.received(Self.frame(.continuation, [8, 9, 10, 11])) == .stream(ByteBuffer(bytes: [8, 9, 10, 11])))
        #expect(inbound.received(Self.frame(.binary, Array(repeating: 0, count: 8))) == .stream(ByteBuffer(repeating: 0, count: 8)))
        #expect(inbound.received(Self.frame(.connectionClose, [0x03, 0xE8, 0x62, 0x79, 0x65])) == .closed(code: 1000))
        // Nothing counts after the Close.
        #expect(inbound.received(Self.frame(.binary, [1])) == .ignore)
    }

    @Test func framesTheRelayDoesNotTakeCloseWithTheirCode() {
        func code(_ frames: [WebSocketFrame], limit: Int = 8) -> UInt16? {
            var inbound = WebSocketInbound(maximumMessageLength: limit)
            for frame in frames {
                if case .fail(let code, _) = inbound.received(frame) { return code }
            }
            return nil
        }
        #expect(code([Self.frame(.text, Array("hello".utf8))]) == 1003)
        #expect(code([Self.frame(.binary, Array(repeating: 1, count: 9))]) == 1009)
        #expect(code([Self.frame(.binary, Array(repeating: 1, count: 5), fin: false), Self.frame(.continuation, [1, 2, 3, 4])]) == 1009)
        #expect(code([Self.frame(.binary, [1], masked: false)]) == 1002)
        #expect(code([Self.frame(.binary, [1], rsv1: true)]) == 1002)
        #expect(code([Self.frame(.continuation, [1])]) == 1002)
        #expect(code([Self.frame(.binary, [1], fin: false), Self.frame(.binary, [2])]) == 1002)
        #expect(code([Self.frame(.ping, [1], fin: false)]) == 1002)
        #expect(code([Self.frame(WebSocketOpcode(encodedWebSocketOpcode: 0x3)!, [1])]) == 1002)
        #expect(code([Self.frame(.connectionClose, [0x03])]) == 1002)
        #expect(code([Self.frame(.connectionClose, [0x03, 0xED])]) == 1002)  // 1005 is never sent
        #expect(code([Self.frame(.connectionClose, [0x03, 0xE8, 0xFF])]) == 1007)
        var inbound = WebSocketInbound(maximumMessageLength: 8)
        #expect(inbound.received(Self.frame(.connectionClose, [])) == .closed(code: nil))
    }
}
