import Prometheus

/// The relay's Prometheus metrics, served at `/metrics` on the admin port
/// (OPERATIONS.md "Metrics").
final class RelayMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()

    let connectionsOpen: Gauge
    let connectionsAccepted: Counter
    let connectionsRejected: Counter
    let sessionsPaired: Gauge
    let sessionsTotal: Counter
    let bytesToViewer: Counter
    let bytesToHost: Counter
    let framesToViewer: Counter
    let framesToHost: Counter
    let tlsHandshakes: Counter
    let tlsFailures: Counter
    let authFailures: Counter
    let authThrottled: Counter
    let protocolErrors: Counter
    /// Forwarded frames the relay completed with zero bytes because their sender left mid-frame.
    let framesPadded: Counter
    /// Times free heap memory was given back to the kernel (``HeapTrimPolicy``).
    let heapTrims: Counter
    /// Times the relay-wide support-code guess budget ran out and redemption paused.
    let codeRedemptionPauses: Counter
    /// Node links this node dialled to pair an agent with one on another node.
    let nodeLinksDialled: Counter
    let usageWrites: Counter
    let usageWriteErrors: Counter
    /// Records, checkpoints and closures kept for the next write after a failed one (0: none).
    let usageWritesPending: Gauge
    let adminConnectionsOpen: Gauge
    /// Admin connections closed at once because the admin port was at its connection limit.
    let adminConnectionsRefused: Counter
    /// Admin connections closed for a missed deadline (handshake, request head, stalled reader).
    let adminTimeouts: Counter
    /// Responses of the web port (HTTPS on the relay port), by status code: every status
    /// ``WebResponder`` answers with has a series of its own, anything else counts as "other".
    private let webResponses: [Int: Counter]
    private let webResponsesOther: Counter
    /// WebSocket upgrades the web port made (each then a connection of the core).
    let webSocketUpgrades: Counter
    /// WebSocket connections the relay closed for a message it does not take (text,
    /// oversized, malformed), by RFC 6455 close code.
    private let webSocketRefusals: [UInt16: Counter]

    init() {
        let r = self.registry
        self.connectionsOpen = r.makeGauge(descriptor: .relay("connections_open", unit: "", help: "TLS connections currently open"))
        self.connectionsAccepted = r.makeCounter(descriptor: .relay("connections_accepted", unit: "total", help: "TCP connections accepted"))
        self.connectionsRejected = r.makeCounter(descriptor: .relay("connections_rejected", unit: "total", help: "Connections refused at the connection limit"))
        self.sessionsPaired = r.makeGauge(descriptor: .relay("sessions_paired", unit: "", help: "Host-viewer sessions currently paired"))
        self.sessionsTotal = r.makeCounter(descriptor: .relay("sessions", unit: "total", help: "Sessions paired since start"))
        self.bytesToViewer = r.makeCounter(
            descriptor: .relay("bytes_relayed", unit: "total", help: "Peer-frame bytes forwarded"), labels: [("direction", "to_viewer")])
        self.bytesToHost = r.makeCounter(
            descriptor: .relay("bytes_relayed", unit: "total", help: "Peer-frame bytes forwarded"), labels: [("direction", "to_host")])
        self.framesToViewer = r.makeCounter(
            descriptor: .relay("frames_relayed", unit: "total", help: "Peer frames forwarded"), labels: [("direction", "to_viewer")])
        self.framesToHost = r.makeCounter(
            descriptor: .relay("frames_relayed", unit: "total", help: "Peer frames forwarded"), labels: [("direction", "to_host")])
        self.tlsHandshakes = r.makeCounter(descriptor: .relay("tls_handshakes", unit: "total", help: "TLS handshakes"), labels: [("outcome", "ok")])
        self.tlsFailures = r.makeCounter(descriptor: .relay("tls_handshakes", unit: "total", help: "TLS handshakes"), labels: [("outcome", "failed")])
        self.authFailures = r.makeCounter(
            descriptor: .relay(
                "auth_failures", unit: "total", help: "Refused credentials: support codes, account keys, legacy tokens and secrets, admin tokens"))
        self.nodeLinksDialled = r.makeCounter(
            descriptor: .relay("node_links_dialled", unit: "total", help: "Node links dialled to pair with an agent on another node"))
        self.authThrottled = r.makeCounter(descriptor: .relay("auth_throttled", unit: "total", help: "Authentication attempts refused by throttling"))
        self.protocolErrors = r.makeCounter(descriptor: .relay("protocol_errors", unit: "total", help: "Connections closed for malformed or unexpected frames"))
        self.codeRedemptionPauses = r.makeCounter(
            descriptor: .relay(
                "code_redemption_pauses", unit: "total", help: "Times support-code redemption paused relay-wide after the guess budget was spent"))
        self.framesPadded = r.makeCounter(
            descriptor: .relay("frames_padded", unit: "total", help: "Forwarded frames completed with zero bytes because the connection ended mid-frame"))
        self.heapTrims = r.makeCounter(
            descriptor: .relay("heap_trims", unit: "total", help: "Times free heap memory was given back to the kernel after the connection count fell"))
        self.usageWrites = r.makeCounter(
            descriptor: .relay("usage_writes", unit: "total", help: "Usage-history transactions written (records, checkpoints, closures)"))
        self.usageWriteErrors = r.makeCounter(descriptor: .relay("usage_write_errors", unit: "total", help: "Usage-history writes that failed"))
        self.usageWritesPending = r.makeGauge(
            descriptor: .relay(
                "usage_writes_pending", unit: "", help: "Usage-history items kept for the next write after a failed one; above 0 while the store fails")
        )
        self.adminConnectionsOpen = r.makeGauge(descriptor: .relay("admin_connections_open", unit: "", help: "Connections to the admin port currently open"))
        self.adminConnectionsRefused = r.makeCounter(
            descriptor: .relay("admin_connections_refused", unit: "total", help: "Admin connections closed at once at admin_maximum_connections")
        )
        self.adminTimeouts = r.makeCounter(
            descriptor: .relay(
                "admin_timeouts", unit: "total", help: "Admin connections closed for a missed handshake, request-head or stalled-reader deadline")
        )
        let responses = MetricNameDescriptor.relay("web_responses", unit: "total", help: "HTTPS responses of the web port on the relay port, by status")
        self.webResponses = Dictionary(
            uniqueKeysWithValues: Self.webStatuses.map { ($0, r.makeCounter(descriptor: responses, labels: [("status", "\($0)")])) })
        self.webResponsesOther = r.makeCounter(descriptor: responses, labels: [("status", "other")])
        self.webSocketUpgrades = r.makeCounter(
            descriptor: .relay("websocket_upgrades", unit: "total", help: "WebSocket connections opened on the relay port (browsers)"))
        let refusals = MetricNameDescriptor.relay(
            "websocket_refusals", unit: "total", help: "WebSocket connections closed for a message the relay does not take, by close code")
        self.webSocketRefusals = Dictionary(
            uniqueKeysWithValues: Self.webSocketRefusalCodes.map { ($0, r.makeCounter(descriptor: refusals, labels: [("code", "\($0)")])) })
    }

    /// Counts one response of the web port.
    func webResponse(status: Int) {
        (self.webResponses[status] ?? self.webResponsesOther).increment()
    }

    /// Counts a WebSocket connection the relay closed with `code` for what its client sent.
    func webSocketRefused(code: UInt16) {
        self.webSocketRefusals[code]?.increment()
    }

    /// The statuses the web port answers with, each a series of `relay_web_responses_total`.
    static let webStatuses = [101, 200, 204, 304, 400, 401, 403, 404, 405, 413, 426, 429, 431, 500, 503]
    /// The close codes the relay's WebSocket ends a connection with for what its client sent
    /// (1002 protocol error, 1003 text, 1007 bad close text, 1009 too large).
    static let webSocketRefusalCodes: [UInt16] = [1002, 1003, 1007, 1009]

    /// The Prometheus text exposition.
    func exposition() -> [UInt8] {
        var buffer: [UInt8] = []
        self.registry.emit(into: &buffer)
        return buffer
    }
}

extension MetricNameDescriptor {
    /// A metric named `relay_<name>[_<unit>]`.
    static func relay(_ name: String, unit: String, help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "relay", metricName: name, unitName: unit, helpText: help)
    }
}
