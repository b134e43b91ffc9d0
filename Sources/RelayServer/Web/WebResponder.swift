import NIOCore
import NIOHTTP1

/// A request the web port does not serve: a status and a text saying what to do instead.
struct WebRefusal: Error, Equatable, Sendable {
    let status: HTTPResponseStatus
    let text: String
    /// Headers the status calls for (`Allow` with 405, `Upgrade` with 426).
    var headers: [(String, String)] = []

    init(_ status: HTTPResponseStatus, _ text: String, headers: [(String, String)] = []) {
        self.status = status
        self.text = text
        self.headers = headers
    }

    static func == (lhs: WebRefusal, rhs: WebRefusal) -> Bool {
        lhs.status == rhs.status && lhs.text == rhs.text && lhs.headers.elementsEqual(rhs.headers, by: ==)
    }
}

/// What the web port does with one request: every decision of the HTTPS side, pure (no
/// I/O); ``WebRequestHandler`` carries it out.
///
/// - `GET` and `HEAD` of a path in ``WebAssets``: the file (304 when `If-None-Match`
///   names its ETag).
/// - `GET /ws`: the WebSocket handshake (``WebSocketHandshake``), once the web application
///   has found the request signed in (``WebApplication/authorizeWebSocket(headers:uri:)``).
/// - A path under `/api/`: the web application's JSON routes (``WebApplication``); a body of
///   at most ``WebApplication/maximumBodyLength`` bytes (413 beyond).
/// - Another method: 405. Another request with a body: 413. Any other path: 404.
///   HTTP/1.1 without one `Host`: 400.
enum WebResponder {
    static let webSocketPath = "/ws"
    static let applicationPrefix = "/api/"

    enum Answer: Equatable {
        /// The file; `body` false for HEAD and for 304.
        case asset(path: String, status: HTTPResponseStatus, body: Bool)
        case upgrade(acceptValue: String)
        /// For the web application, once the body has arrived.
        case application
        case refuse(WebRefusal)
    }

    /// `hasBody`: the request announced a body (Content-Length above 0, or Transfer-Encoding).
    static func answer(to head: HTTPRequestHead, hasBody: Bool) -> Answer {
        if head.version.major != 1 || (head.version.minor >= 1 && head.headers["Host"].count != 1) {
            return .refuse(WebRefusal(.badRequest, "send HTTP/1.1 with one Host header"))
        }
        let path = Self.path(of: head.uri)
        if path.hasPrefix(Self.applicationPrefix) {
            let lengths = head.headers["Content-Length"]
            if lengths.contains(where: { Int($0).map { $0 > WebApplication.maximumBodyLength } ?? true }) {
                return .refuse(WebRefusal(.payloadTooLarge, "a request here carries at most \(WebApplication.maximumBodyLength) bytes"))
            }
            return .application
        }
        if path == Self.webSocketPath {
            if hasBody, head.method == .GET { return .refuse(WebRefusal(.payloadTooLarge, "a WebSocket upgrade carries no body")) }
            switch WebSocketHandshake.evaluate(head) {
            case .accept(let value): return .upgrade(acceptValue: value)
            case .refuse(let refusal): return .refuse(refusal)
            }
        }
        guard head.method == .GET || head.method == .HEAD else {
            return .refuse(WebRefusal(.methodNotAllowed, "this server takes GET and HEAD only", headers: [("Allow", "GET, HEAD")]))
        }
        if hasBody { return .refuse(WebRefusal(.payloadTooLarge, "GET and HEAD requests here carry no body")) }
        guard let asset = WebAssets.byPath[path] else {
            return .refuse(WebRefusal(.notFound, "there is nothing at \(path) on this relay; the console is at /"))
        }
        let matches = head.headers["If-None-Match"].flatMap { $0.split(separator: ",") }.contains {
            let tag = $0.trimmingCharacters(in: .whitespaces)
            return tag == asset.etag || tag == "W/" + asset.etag || tag == "*"
        }
        if matches { return .asset(path: path, status: .notModified, body: false) }
        return .asset(path: path, status: .ok, body: head.method == .GET)
    }

    /// The path of a request target: origin-form up to `?` or `#`; anything else ("*",
    /// absolute-form) comes back unchanged and matches no file.
    static func path(of uri: String) -> String {
        guard uri.hasPrefix("/") else { return uri }
        return String(uri.prefix { $0 != "?" && $0 != "#" })
    }

    /// The query of a request target (after the first `?`, before any `#`), or "".
    static func query(of uri: String) -> String {
        guard let mark = uri.firstIndex(of: "?") else { return "" }
        return String(uri[uri.index(after: mark)...].prefix { $0 != "#" })
    }

    // MARK: Responses

    /// The headers every response of the web port carries, 101 and errors included
    /// (docs/ARCHITECTURE.md "The web port"): a strict Content-Security-Policy (only the
    /// relay's own files and connections, no framing, no inline script or style), no MIME
    /// sniffing, no referrer, HSTS, and same-origin isolation.
    static let securityHeaders: [(String, String)] = [
        (
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
        ),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
        ("Strict-Transport-Security", "max-age=31536000"),
        ("Cross-Origin-Opener-Policy", "same-origin"),
        ("Cross-Origin-Resource-Policy", "same-origin"),
    ]

    /// The head and body of a response to `answer` (not for `.upgrade`: see
    /// ``upgradeHead(acceptValue:)``). `close`: the connection closes after it.
    static func response(to answer: Answer, close: Bool) -> (head: HTTPResponseHead, body: ByteBuffer?) {
        var headers = HTTPHeaders(Self.securityHeaders)
        let status: HTTPResponseStatus
        var body: ByteBuffer?
        switch answer {
        case .asset(let path, let assetStatus, let withBody):
            let asset = WebAssets.byPath[path]!
            status = assetStatus
            headers.add(name: "ETag", value: asset.etag)
            headers.add(name: "Cache-Control", value: asset.cacheControl)
            if assetStatus == .ok {
                headers.add(name: "Content-Type", value: asset.contentType)
                headers.add(name: "Content-Length", value: "\(asset.body.readableBytes)")
            }
            body = withBody ? asset.body : nil
        case .refuse(let refusal):
            status = refusal.status
            let text = ByteBuffer(string: "\(refusal.status.code) \(refusal.status.reasonPhrase): \(refusal.text)\n")
            headers.add(contentsOf: refusal.headers)
            headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
            headers.add(name: "Content-Length", value: "\(text.readableBytes)")
            headers.add(name: "Cache-Control", value: "no-store")
            body = text
        case .upgrade, .application:
            preconditionFailure("an upgrade is answered with WebResponder.upgradeHead(acceptValue:), the application with response(to:close:) of a WebReply")
        }
        if close { headers.add(name: "Connection", value: "close") }
        return (HTTPResponseHead(version: .http1_1, status: status, headers: headers), body)
    }

    /// The head and body of the web application's reply: JSON (or none), never cached.
    static func response(to reply: WebReply, close: Bool) -> (head: HTTPResponseHead, body: ByteBuffer?) {
        var headers = HTTPHeaders(Self.securityHeaders)
        headers.add(contentsOf: reply.headers)
        for cookie in reply.cookies { headers.add(name: "Set-Cookie", value: cookie) }
        headers.add(name: "Cache-Control", value: "no-store")
        if reply.stream != nil {
            // No length: HTTP/1.1 chunks (NIO's encoder adds Transfer-Encoding).
            headers.add(name: "Content-Type", value: reply.contentType ?? "application/octet-stream")
        } else if let body = reply.body {
            headers.add(name: "Content-Type", value: "application/json; charset=utf-8")
            headers.add(name: "Content-Length", value: "\(body.readableBytes)")
        } else if reply.status != .noContent {
            headers.add(name: "Content-Length", value: "0")
        }
        if close { headers.add(name: "Connection", value: "close") }
        return (HTTPResponseHead(version: .http1_1, status: reply.status, headers: headers), reply.body)
    }

    /// The 101 Switching Protocols of an accepted WebSocket handshake.
    static func upgradeHead(acceptValue: String) -> HTTPResponseHead {
        var headers = WebSocketHandshake.responseHeaders(acceptValue: acceptValue)
        headers.add(contentsOf: Self.securityHeaders)
        return HTTPResponseHead(version: .http1_1, status: .switchingProtocols, headers: headers)
    }
}
