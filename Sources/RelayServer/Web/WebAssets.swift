import Crypto
import NIOCore

/// One file of the web app, compiled into the relay (Package.swift: `.embedInCode("Web/Static")`).
struct WebAsset: Sendable {
    /// The request path that serves it, exactly.
    let path: String
    /// Its name in `Sources/RelayServer/Web/Static`.
    let file: String
    let contentType: String
    let body: ByteBuffer
    /// A strong validator: the first 16 bytes of the body's SHA-256, quoted.
    let etag: String
    /// Every asset is revalidated (`no-cache`, then 304 for an unchanged ETag): the names
    /// carry no version, so a cached copy must never outlive an upgrade of the relay.
    let cacheControl = "no-cache"

    init(path: String, file: String, contentType: String, bytes: [UInt8]) {
        self.path = path
        self.file = file
        self.contentType = contentType
        self.body = ByteBuffer(bytes: bytes)
        let digits = Array("0123456789abcdef".utf8)
        let hex = SHA256.hash(data: bytes).prefix(16).flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 0xF)]] }
        self.etag = "\"" + String(decoding: hex, as: UTF8.self) + "\""
    }
}

/// The web app's files, by request path. The relay serves these and nothing else: a path
/// is looked up as it is, never joined to a folder, so no request can reach another file.
/// (A test checks that this table and the folder list the same files.)
enum WebAssets {
    static let all: [WebAsset] = [
        Self.page("/", "index.html", PackageResources.index_html),
        Self.page("/signin", "signin.html", PackageResources.signin_html),
        Self.page("/view", "view.html", PackageResources.view_html),
        Self.page("/admin", "admin.html", PackageResources.admin_html),
        WebAsset(path: "/app.css", file: "app.css", contentType: "text/css; charset=utf-8", bytes: PackageResources.app_css),
        WebAsset(path: "/viewer.css", file: "viewer.css", contentType: "text/css; charset=utf-8", bytes: PackageResources.viewer_css),
        WebAsset(path: "/admin.css", file: "admin.css", contentType: "text/css; charset=utf-8", bytes: PackageResources.admin_css),
        WebAsset(path: "/favicon.svg", file: "favicon.svg", contentType: "image/svg+xml", bytes: PackageResources.favicon_svg),
        Self.script("api.js", PackageResources.api_js),
        Self.script("console.js", PackageResources.console_js),
        Self.script("signin.js", PackageResources.signin_js),
        Self.script("wire.js", PackageResources.wire_js),
        Self.script("tiles.js", PackageResources.tiles_js),
        Self.script("secure.js", PackageResources.secure_js),
        Self.script("keysyms.js", PackageResources.keysyms_js),
        Self.script("viewer.js", PackageResources.viewer_js),
        Self.script("viewer-session.js", PackageResources.viewer_session_js),
        Self.script("viewer-input.js", PackageResources.viewer_input_js),
        Self.script("admin.js", PackageResources.admin_js),
        Self.script("admin-format.js", PackageResources.admin_format_js),
        Self.script("admin-ui.js", PackageResources.admin_ui_js),
        Self.script("admin-chart.js", PackageResources.admin_chart_js),
        Self.script("admin-usage.js", PackageResources.admin_usage_js),
        Self.script("admin-hosts.js", PackageResources.admin_hosts_js),
        Self.script("admin-engineers.js", PackageResources.admin_engineers_js),
        Self.script("admin-retention.js", PackageResources.admin_retention_js),
        Self.script("admin-audit.js", PackageResources.admin_audit_js),
        Self.script("admin-tokens.js", PackageResources.admin_tokens_js),
        Self.script("admin-alerts.js", PackageResources.admin_alerts_js),
        Self.script("admin-relay.js", PackageResources.admin_relay_js),
    ]

    private static func page(_ path: String, _ file: String, _ bytes: [UInt8]) -> WebAsset {
        WebAsset(path: path, file: file, contentType: "text/html; charset=utf-8", bytes: bytes)
    }

    /// An ES module of `js/` (the embedded names are flat: `js/wire.js` is `wire_js`).
    private static func script(_ name: String, _ bytes: [UInt8]) -> WebAsset {
        WebAsset(path: "/js/" + name, file: "js/" + name, contentType: "text/javascript; charset=utf-8", bytes: bytes)
    }

    static let byPath: [String: WebAsset] = Dictionary(uniqueKeysWithValues: Self.all.map { ($0.path, $0) })
}
