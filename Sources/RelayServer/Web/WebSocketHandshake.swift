import Crypto
import Foundation
import NIOHTTP1

/// The relay's side of the WebSocket opening handshake (RFC 6455 §4.2) on `GET /ws`. Pure:
/// a request head in, the 101's headers or a refusal out.
///
/// Besides RFC 6455's own checks, two of the relay's:
/// - **Same origin only.** `Origin` must be the origin the browser reached the relay by,
///   `https://` and the request's `Host` (port 443 written or not). A page of another site
///   cannot open a WebSocket to the relay with the user's cookies (cross-site WebSocket
///   hijacking): 403. Clients that are not browsers send the same header.
/// - **The subprotocol.** The client must offer ``subprotocol``; the relay selects it. It
///   names what the binary messages carry (PROTOCOL.md §1, "WebSocket"), so that a later
///   generation can be told apart.
enum WebSocketHandshake {
    static let subprotocol = "supportrelay.v1"
    /// RFC 6455 §1.3.
    static let acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    enum Outcome: Equatable {
        /// Upgrade: the headers of the 101 besides `Upgrade` and `Connection`.
        case accept(acceptValue: String)
        case refuse(WebRefusal)
    }

    static func evaluate(_ head: HTTPRequestHead) -> Outcome {
        let headers = head.headers
        guard head.method == .GET else {
            return .refuse(WebRefusal(.methodNotAllowed, "\(head.uri) takes only GET with a WebSocket upgrade", headers: [("Allow", "GET")]))
        }
        guard head.version.major == 1, head.version.minor >= 1,
            Self.tokens(headers, "upgrade").contains("websocket"), Self.tokens(headers, "connection").contains("upgrade")
        else {
            return .refuse(
                WebRefusal(
                    .upgradeRequired, "\(head.uri) is the relay's WebSocket endpoint: connect with a WebSocket client (HTTP/1.1 Upgrade: websocket)",
                    headers: [("Upgrade", "websocket"), ("Connection", "Upgrade")]))
        }
        guard headers["Sec-WebSocket-Version"] == ["13"] else {
            return .refuse(WebRefusal(.upgradeRequired, "the relay speaks WebSocket version 13 (RFC 6455) only", headers: [("Sec-WebSocket-Version", "13")]))
        }
        let keys = headers["Sec-WebSocket-Key"]
        guard keys.count == 1, let key = keys.first, Data(base64Encoded: key)?.count == 16 else {
            return .refuse(WebRefusal(.badRequest, "Sec-WebSocket-Key must be one base64 value of 16 bytes (RFC 6455 §4.1)"))
        }
        let origins = headers["Origin"]
        let hosts = headers["Host"]
        guard origins.count == 1, hosts.count == 1, Self.isSameOrigin(origin: origins[0], host: hosts[0]) else {
            return .refuse(
                WebRefusal(.forbidden, "WebSocket connections are taken from the relay's own pages only: Origin must be https:// and the Host you connected to")
            )
        }
        guard Self.tokens(headers, "sec-websocket-protocol", lowercased: false).contains(Self.subprotocol) else {
            return .refuse(WebRefusal(.badRequest, "offer the WebSocket subprotocol \(Self.subprotocol) (Sec-WebSocket-Protocol)"))
        }
        return .accept(acceptValue: Self.acceptValue(forKey: key))
    }

    /// The headers of the 101 Switching Protocols answer.
    static func responseHeaders(acceptValue: String) -> HTTPHeaders {
        HTTPHeaders([
            ("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", acceptValue), ("Sec-WebSocket-Protocol", Self.subprotocol),
        ])
    }

    /// `Sec-WebSocket-Accept` for `key` (RFC 6455 §4.2.2: base64 of SHA-1 of key + GUID).
    static func acceptValue(forKey key: String) -> String {
        Data(Insecure.SHA1.hash(data: Data((key + Self.acceptGUID).utf8))).base64EncodedString()
    }

    /// Whether `origin` (an Origin header) is `https://` and the same host and port as
    /// `host` (a Host header); 443 may be written or left out on either side.
    static func isSameOrigin(origin: String, host: String) -> Bool {
        let scheme = "https://"
        guard origin.lowercased().hasPrefix(scheme), let origin = Authority(String(origin.dropFirst(scheme.count))), let host = Authority(host) else {
            return false
        }
        return origin == host
    }

    /// A host and port as Origin and Host write them: `name`, `name:port`, `[v6]:port`.
    struct Authority: Equatable {
        let host: String
        let port: Int

        init?(_ text: String) {
            let text = text.lowercased()
            var host = Substring(text)
            var port: Substring?
            if text.hasPrefix("[") {
                guard let end = text.firstIndex(of: "]") else { return nil }
                host = text[...end]
                let rest = text[text.index(after: end)...]
                if !rest.isEmpty {
                    guard rest.hasPrefix(":") else { return nil }
                    port = rest.dropFirst()
                }
            } else if let colon = text.lastIndex(of: ":") {
                host = text[..<colon]
                port = text[text.index(after: colon)...]
            }
            let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789.-_[]:")
            guard !host.isEmpty, host.allSatisfy({ allowed.contains($0) }) else { return nil }
            self.host = String(host)
            if let port {
                guard !port.isEmpty, port.count <= 5, port.allSatisfy(\.isASCIIDigit), let number = Int(port), (1...65535).contains(number) else { return nil }
                self.port = number
            } else {
                self.port = 443
            }
        }
    }

    /// The comma-separated tokens of every `name` header, trimmed (and lowercased).
    private static func tokens(_ headers: HTTPHeaders, _ name: String, lowercased: Bool = true) -> [String] {
        headers[name].flatMap { $0.split(separator: ",") }.map {
            let token = $0.trimmingCharacters(in: .whitespaces)
            return lowercased ? token.lowercased() : token
        }
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}
