import Foundation
import NIOCore
import RelaySignIn
import RelayStore
import RelayWire

/// An error in how the relay was configured or started: a flag or config-file value, a
/// file it must read or write (config, certificate, key), or an address it cannot listen
/// on. The message says what happened and what to do; `relay-server` prints it and exits.
///
/// Errors of the relay's records are ``StoreError``s; this type is for everything an
/// operator fixes in the command line, the config file or the machine.
struct ConfigurationError: Error, Hashable, Sendable, CustomStringConvertible {
    struct Kind: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable { case invalidValue, file, listen }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// A flag or config-file value is malformed, unknown or out of range.
        static let invalidValue = Kind(.invalidValue)
        /// A file the relay needs cannot be read or written, is malformed, or is unsafe
        /// (a private key other users can read).
        static let file = Kind(.file)
        /// The relay cannot listen on an address: in use, not this machine's, or not allowed.
        static let listen = Kind(.listen)

        var description: String {
            switch self.base {
            case .invalidValue: "invalid value"
            case .file: "file"
            case .listen: "listen"
            }
        }
    }

    let kind: Kind
    /// A sentence for the operator: what happened and what to do.
    let message: String

    init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    var description: String { self.message }
}

/// A `HOST:PORT` listen address.
struct ListenAddress: Sendable, Hashable, CustomStringConvertible {
    var host: String
    var port: Int

    /// Parses `HOST:PORT`, `[IPv6]:PORT` or `:PORT` (all IPv4 interfaces), by the rules of
    /// ``HostPort`` (the agents' `--relay` follows the same). The port is required; 0 picks
    /// a free one.
    init(parsing text: String) throws {
        let example = "write e.g. 0.0.0.0:7443, [::]:7443 or :7443"
        let parsed: HostPort
        do {
            parsed = try HostPort(parsing: text)
        } catch {
            throw ConfigurationError(.invalidValue, "\(error.message); \(example)")
        }
        guard let port = parsed.port else {
            throw ConfigurationError(.invalidValue, "\"\(text)\" has no port; \(example)")
        }
        self.host = parsed.host.isEmpty ? "0.0.0.0" : parsed.host
        self.port = port
    }

    init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    var description: String { HostPort(host: self.host, port: self.port).description }
}

/// Everything `relay-server serve` can be told, from flags or a JSON config file
/// (OPERATIONS.md "Configuration"). Every field has the default a fresh install runs with.
struct RelayConfiguration: Sendable {
    var listen = ListenAddress(host: "0.0.0.0", port: RelayProtocol.defaultPort)
    var adminListen = ListenAddress(host: "127.0.0.1", port: 7444)
    var dataDirectory = "./relay-data"
    /// The database: nil for SQLite (`relay.sqlite` in the data folder), or a PostgreSQL
    /// address that every node of a cluster shares (OPERATIONS.md "Scaling out").
    var store: String?
    var certificatePath: String?
    var keyPath: String?
    /// DNS names for the self-signed certificate; empty: `localhost` only
    /// (``DevelopmentCertificate``). Ignored with the operator's certificate.
    var certificateNames: [String] = []
    /// How often the running relay checks whether its self-signed certificate is due for
    /// renewal. Not in the config file.
    var certificateCheckInterval = TimeAmount.hours(12)
    /// This node's name in logs, HelloAck and the usage history.
    var nodeName = ProcessInfo.processInfo.hostName
    var maximumPayloadLength = Frame.defaultMaximumPayloadLength
    var handshakeTimeout = TimeAmount.seconds(10)
    var idleTimeout = TimeAmount.seconds(120)
    var maximumConnections = 20_000
    var supportCodeValidity = TimeAmount.minutes(10)
    /// Web console sessions: idle and absolute expiry (OPERATIONS.md "Web sign-in").
    var webSessions = WebSessionPolicy()
    /// Penalties for sources (IPv4 address, IPv6 /64) whose authentications fail
    /// (PROTOCOL.md §8.5, OPERATIONS.md "Abuse resistance"). `firstBlock` is not in the
    /// config file: tests lengthen it so that a block cannot expire mid-test.
    var sourcePenalties = SourcePenalties.Policy()
    /// The relay-wide budget of wrong support codes, and the pause it triggers.
    var codeGuessBudget = CodeGuessBreaker.Policy()
    /// Live support codes one engineer may hold; a newer one withdraws the oldest.
    var supportCodesPerEngineer = 5
    /// Connection caps per source and for connections not yet authenticated.
    var admission = ConnectionAdmission.Policy()
    /// How often live connections' accounts are checked against the database, so that
    /// removing or rotating one ends its connections (Bye `revoked`).
    var credentialCheckInterval = TimeAmount.seconds(10)
    var eventLoopThreads = System.coreCount
    /// Peer bytes buffered for a slow reader before its peer stops being read.
    var writeBufferHighWater = 512 * 1024
    var writeBufferLowWater = 128 * 1024
    /// How often running sessions' counters are written to the usage history: what a
    /// crash can lose at most (OPERATIONS.md "Usage history").
    var usageCheckpointInterval = Duration.seconds(30)
    /// How long usage history and access log are kept (DESIGN.md "the retention rule").
    var retention = RetentionPolicy.default
    /// How often the retention purge runs.
    var purgeInterval = Duration.seconds(3600)
    /// Admin API requests per source address and per company: a burst, then so many a minute.
    var adminRequestBurst = 10
    var adminRequestsPerMinute = 10
    /// Open admin connections at most; more are closed at once (``AdminConnectionGuard``).
    /// Its own budget: the admin port can never hold the file descriptors relay agents need.
    var adminMaximumConnections = 64
    /// An admin connection must finish its TLS handshake this long after connect…
    var adminHandshakeTimeout = TimeAmount.seconds(10)
    /// …then send a whole request head within this…
    var adminHeaderTimeout = TimeAmount.seconds(10)
    /// …and is closed after this long with no request and no response under way.
    var adminIdleTimeout = TimeAmount.seconds(60)
    /// When freed memory goes back to the kernel (``HeapTrimPolicy``); `heap_trim_seconds`.
    var heapTrim = HeapTrimPolicy(interval: .seconds(10))
    /// Whether company admins may post security alerts over plain HTTP to this machine
    /// (`http://127.0.0.1…`); off, since it lets them probe the relay machine's local ports.
    var webhookAllowLoopback = false
    /// How long a graceful shutdown waits for agents to close after Bye(relay_shutdown).
    var shutdownGrace = TimeAmount.seconds(5)
    /// Cross-node pairing on a shared PostgreSQL (OPERATIONS.md "Several nodes"): nil
    /// when this node runs alone.
    var cluster: ClusterSettings?
    /// How long a node's lease on its name runs; renewed every third of it. A node that
    /// stops renewing (killed, cut off from the database) counts as gone after this, and
    /// its open usage records are closed by another node. `node_lease_seconds`.
    var nodeLease = TimeAmount.seconds(15)

    /// The keys a config file may set; all optional.
    struct File: Decodable {
        var listen: String?
        var adminListen: String?
        var dataDirectory: String?
        var store: String?
        var certificate: String?
        var key: String?
        var nodeName: String?
        var maximumPayloadBytes: Int?
        var handshakeTimeoutSeconds: Int?
        var idleTimeoutSeconds: Int?
        var maximumConnections: Int?
        var supportCodeValiditySeconds: Int?
        var webSessionIdleMinutes: Int?
        var webSessionMaximumHours: Int?
        var freeAuthFailuresPerSource: Int?
        var authFailureForgivenessSeconds: Int?
        var authMaximumBlockSeconds: Int?
        var codeGuessesPerMinute: Int?
        var codeGuessesPerHour: Int?
        var codeGuessPauseSeconds: Int?
        var supportCodesPerEngineer: Int?
        var maximumConnectionsPerSource: Int?
        var maximumUnauthenticatedPerSource: Int?
        var maximumUnauthenticated: Int?
        var unauthenticatedEarlyDropStart: Int?
        var unauthenticatedEarlyDropPercent: Int?
        var eventLoopThreads: Int?
        var writeBufferHighWaterBytes: Int?
        var usageCheckpointSeconds: Int?
        var usageRetentionMonths: Int?
        var accessLogRetentionMonths: Int?
        var purgeIntervalSeconds: Int?
        var adminRequestBurst: Int?
        var adminRequestsPerMinute: Int?
        var adminMaximumConnections: Int?
        var adminHandshakeTimeoutSeconds: Int?
        var adminHeaderTimeoutSeconds: Int?
        var adminIdleTimeoutSeconds: Int?
        var certificateNames: [String]?
        var heapTrimSeconds: Int?
        var webhookAllowLoopback: Bool?
        var clusterListen: String?
        var clusterAddress: String?
        var clusterSecretFile: String?
        var nodeLeaseSeconds: Int?
    }

    static let fileKeys: Set<String> = [
        "listen", "admin_listen", "data_directory", "store", "certificate", "key", "node_name", "maximum_payload_bytes",
        "handshake_timeout_seconds", "idle_timeout_seconds", "maximum_connections", "support_code_validity_seconds",
        "web_session_idle_minutes", "web_session_maximum_hours",
        "event_loop_threads", "write_buffer_high_water_bytes",
        "usage_checkpoint_seconds", "usage_retention_months", "access_log_retention_months", "purge_interval_seconds",
        "admin_request_burst", "admin_requests_per_minute", "admin_maximum_connections", "admin_handshake_timeout_seconds",
        "admin_header_timeout_seconds", "admin_idle_timeout_seconds", "certificate_names",
        "free_auth_failures_per_source", "auth_failure_forgiveness_seconds", "auth_maximum_block_seconds",
        "code_guesses_per_minute", "code_guesses_per_hour", "code_guess_pause_seconds", "support_codes_per_engineer",
        "maximum_connections_per_source", "maximum_unauthenticated_per_source", "maximum_unauthenticated",
        "unauthenticated_early_drop_start", "unauthenticated_early_drop_percent", "heap_trim_seconds", "webhook_allow_loopback",
        "cluster_listen", "cluster_address", "cluster_secret_file", "node_lease_seconds",
    ]

    /// Keys of earlier versions, with what replaced them.
    static let retiredFileKeys: [String: String] = [
        "code_failure_limit": "wrong guesses no longer withdraw codes; the relay-wide budget is code_guesses_per_minute and code_guesses_per_hour",
        "free_auth_failures_per_minute":
            "failures are counted per source and forgiven slowly: free_auth_failures_per_source and auth_failure_forgiveness_seconds",
    ]

    /// Applies a JSON config file over the defaults.
    mutating func apply(configFile path: String) throws {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ConfigurationError(.file, "cannot read the config file \(path): \(error.localizedDescription)")
        }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let file: File
        do {
            // A misspelt key must not silently leave a default in force.
            if let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] {
                for key in object.keys.sorted() {
                    if let replacement = Self.retiredFileKeys[key] {
                        throw ConfigurationError(
                            .invalidValue,
                            "the config file \(path) has \"\(key)\", which this version no longer uses: \(replacement) (OPERATIONS.md \"Abuse resistance\"); remove it"
                        )
                    }
                }
                let unknown = Set(object.keys).subtracting(Self.fileKeys).sorted()
                guard unknown.isEmpty else {
                    throw ConfigurationError(
                        .invalidValue,
                        "the config file \(path) has unknown keys: \(unknown.joined(separator: ", ")); the keys are \(Self.fileKeys.sorted().joined(separator: ", "))"
                    )
                }
            }
            file = try decoder.decode(File.self, from: data)
        } catch let error as ConfigurationError {
            throw error
        } catch {
            throw ConfigurationError(.file, "the config file \(path) is not valid: \(error); see OPERATIONS.md \"Configuration\" for the keys")
        }
        if let value = file.listen { self.listen = try ListenAddress(parsing: value) }
        if let value = file.adminListen { self.adminListen = try ListenAddress(parsing: value) }
        if let value = file.dataDirectory { self.dataDirectory = value }
        if let value = file.store { self.store = value }
        if let value = file.certificate { self.certificatePath = value }
        if let value = file.key { self.keyPath = value }
        if let value = file.nodeName { self.nodeName = value }
        if let value = file.maximumPayloadBytes { self.maximumPayloadLength = value }
        if let value = file.handshakeTimeoutSeconds { self.handshakeTimeout = .seconds(Int64(value)) }
        if let value = file.idleTimeoutSeconds { self.idleTimeout = .seconds(Int64(value)) }
        if let value = file.maximumConnections { self.maximumConnections = value }
        if let value = file.supportCodeValiditySeconds { self.supportCodeValidity = .seconds(Int64(value)) }
        if let value = file.webSessionIdleMinutes { self.webSessions.idleLimit = TimeInterval(value) * 60 }
        if let value = file.webSessionMaximumHours { self.webSessions.absoluteLimit = TimeInterval(value) * 3600 }
        if let value = file.freeAuthFailuresPerSource { self.sourcePenalties.freeFailures = value }
        if let value = file.authFailureForgivenessSeconds { self.sourcePenalties.forgiveOneFailureEvery = .seconds(Int64(value)) }
        if let value = file.authMaximumBlockSeconds { self.sourcePenalties.maximumBlock = .seconds(Int64(value)) }
        if let value = file.codeGuessesPerMinute { self.codeGuessBudget.perMinute = value }
        if let value = file.codeGuessesPerHour { self.codeGuessBudget.perHour = value }
        if let value = file.codeGuessPauseSeconds { self.codeGuessBudget.pause = .seconds(Int64(value)) }
        if let value = file.supportCodesPerEngineer { self.supportCodesPerEngineer = value }
        if let value = file.maximumConnectionsPerSource { self.admission.maximumPerSource = value }
        if let value = file.maximumUnauthenticatedPerSource { self.admission.maximumUnauthenticatedPerSource = value }
        if let value = file.maximumUnauthenticated { self.admission.maximumUnauthenticated = value }
        if let value = file.unauthenticatedEarlyDropStart { self.admission.unauthenticatedStart = value }
        if let value = file.unauthenticatedEarlyDropPercent { self.admission.unauthenticatedDropPercent = value }
        if let value = file.eventLoopThreads { self.eventLoopThreads = value }
        if let value = file.writeBufferHighWaterBytes {
            self.writeBufferHighWater = value
            self.writeBufferLowWater = value / 4
        }
        if let value = file.usageCheckpointSeconds { self.usageCheckpointInterval = .seconds(value) }
        if let value = file.usageRetentionMonths { self.retention.usageMonths = value }
        if let value = file.accessLogRetentionMonths { self.retention.accessLogMonths = value }
        if let value = file.purgeIntervalSeconds { self.purgeInterval = .seconds(value) }
        if let value = file.adminRequestBurst { self.adminRequestBurst = value }
        if let value = file.adminRequestsPerMinute { self.adminRequestsPerMinute = value }
        if let value = file.adminMaximumConnections { self.adminMaximumConnections = value }
        if let value = file.adminHandshakeTimeoutSeconds { self.adminHandshakeTimeout = .seconds(Int64(value)) }
        if let value = file.adminHeaderTimeoutSeconds { self.adminHeaderTimeout = .seconds(Int64(value)) }
        if let value = file.adminIdleTimeoutSeconds { self.adminIdleTimeout = .seconds(Int64(value)) }
        if let value = file.certificateNames { self.certificateNames = value }
        if let value = file.heapTrimSeconds {
            guard (0...86_400).contains(value) else {
                throw ConfigurationError(
                    .invalidValue, "heap_trim_seconds must be 0…86400 (10 is the default; 0 never gives freed memory back to the kernel), got \(value)")
            }
            self.heapTrim.interval = value == 0 ? nil : .seconds(Int64(value))
        }
        if let value = file.webhookAllowLoopback { self.webhookAllowLoopback = value }
        if let value = file.nodeLeaseSeconds {
            guard (3...3600).contains(value) else {
                throw ConfigurationError(.invalidValue, "node_lease_seconds must be 3…3600 (15 is the default), got \(value)")
            }
            self.nodeLease = .seconds(Int64(value))
        }
        if file.clusterListen != nil || file.clusterSecretFile != nil || file.clusterAddress != nil {
            self.cluster = try ClusterSettings(listen: file.clusterListen, address: file.clusterAddress, secretFile: file.clusterSecretFile, configFile: path)
        }
        try self.validate()
    }

    /// A DNS name as a certificate may carry it: labels of letters, digits and hyphens, a
    /// leading `*.` allowed; not an IP address (see ``CertificateFactory``).
    static func isDNSName(_ name: String) -> Bool {
        var labels = name.split(separator: ".", omittingEmptySubsequences: false)
        if labels.first == "*", labels.count > 2 { labels.removeFirst() }
        guard name.utf8.count <= 253, !labels.isEmpty, !labels.allSatisfy({ $0.allSatisfy(\.isNumber) }) else { return false }
        return labels.allSatisfy { label in
            !label.isEmpty && label.utf8.count <= 63 && label.first != "-" && label.last != "-"
                && label.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "-" }
        }
    }

    func validate() throws {
        guard !self.nodeName.trimmingCharacters(in: .whitespaces).isEmpty, self.nodeName.utf8.count <= 64,
            self.nodeName.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value != 0x7F })
        else {
            throw ConfigurationError(
                .invalidValue, "node_name \"\(self.nodeName)\" must be 1…64 visible characters without spaces, e.g. \"relay-seoul-1\"")
        }
        guard (self.certificatePath == nil) == (self.keyPath == nil) else {
            throw ConfigurationError(.invalidValue, "certificate and key go together: give both, or neither for the self-signed development certificate")
        }
        // Agents refuse a HelloAck limit below the minimum (every peer message must fit),
        // so a relay configured below it could serve no session (PROTOCOL.md §5.1.2 HelloAck).
        guard (Frame.minimumPayloadLimit...Frame.maximumEncodablePayloadLength).contains(self.maximumPayloadLength) else {
            throw ConfigurationError(
                .invalidValue,
                "maximum_payload_bytes must be \(Frame.minimumPayloadLimit)…\(Frame.maximumEncodablePayloadLength) (64 KiB to 16 MiB − 1), "
                    + "got \(self.maximumPayloadLength); agents cannot work with a smaller limit, and \(Frame.defaultMaximumPayloadLength) is the default"
            )
        }
        guard self.handshakeTimeout > .zero, self.idleTimeout > .zero, self.supportCodeValidity > .zero else {
            throw ConfigurationError(.invalidValue, "timeouts must be positive numbers of seconds")
        }
        guard self.webSessions.idleLimit >= 60, self.webSessions.absoluteLimit >= self.webSessions.idleLimit,
            self.webSessions.absoluteLimit <= 30 * 24 * 3600
        else {
            throw ConfigurationError(
                .invalidValue,
                "web_session_idle_minutes must be at least 1, and web_session_maximum_hours at least as long and at most 720 (30 days); the defaults are 30 minutes and 12 hours"
            )
        }
        guard self.maximumConnections > 0 else {
            throw ConfigurationError(.invalidValue, "maximum_connections must be positive")
        }
        guard self.sourcePenalties.freeFailures >= 0, self.sourcePenalties.forgiveOneFailureEvery > .zero, self.sourcePenalties.maximumBlock > .zero else {
            throw ConfigurationError(
                .invalidValue, "free_auth_failures_per_source must be 0 or more, auth_failure_forgiveness_seconds and auth_maximum_block_seconds positive")
        }
        guard self.codeGuessBudget.perMinute >= 1, self.codeGuessBudget.perHour >= 1, self.codeGuessBudget.pause > .zero, self.supportCodesPerEngineer >= 1
        else {
            throw ConfigurationError(
                .invalidValue, "code_guesses_per_minute, code_guesses_per_hour, code_guess_pause_seconds and support_codes_per_engineer must be at least 1")
        }
        let admission = self.admission
        guard admission.maximumPerSource >= 1, admission.maximumUnauthenticatedPerSource >= 1, admission.maximumUnauthenticated >= 1,
            (0...100).contains(admission.unauthenticatedDropPercent), (1...admission.maximumUnauthenticated).contains(admission.unauthenticatedStart)
        else {
            throw ConfigurationError(
                .invalidValue,
                "maximum_connections_per_source, maximum_unauthenticated_per_source and maximum_unauthenticated must be at least 1, "
                    + "unauthenticated_early_drop_percent 0…100, and unauthenticated_early_drop_start 1…maximum_unauthenticated"
            )
        }
        guard (1...256).contains(self.eventLoopThreads) else {
            throw ConfigurationError(.invalidValue, "event_loop_threads must be 1…256, got \(self.eventLoopThreads)")
        }
        guard self.writeBufferHighWater >= 16 * 1024 else {
            throw ConfigurationError(.invalidValue, "write_buffer_high_water_bytes must be at least 16384")
        }
        guard self.usageCheckpointInterval >= .milliseconds(100), self.usageCheckpointInterval <= .seconds(3600) else {
            throw ConfigurationError(
                .invalidValue, "usage_checkpoint_seconds must be 1…3600 (30 is the default; a crash loses at most this much of the counters)")
        }
        do {
            try self.retention.validate()
        } catch let error as StoreError {
            throw ConfigurationError(.invalidValue, error.message)
        }
        guard self.purgeInterval >= .milliseconds(100), self.purgeInterval <= .seconds(86_400) else {
            throw ConfigurationError(.invalidValue, "purge_interval_seconds must be 1…86400 (3600, hourly, is the default)")
        }
        guard self.adminRequestBurst >= 1, self.adminRequestsPerMinute >= 1 else {
            throw ConfigurationError(.invalidValue, "admin_request_burst and admin_requests_per_minute must be at least 1")
        }
        guard (1...10_000).contains(self.adminMaximumConnections) else {
            throw ConfigurationError(.invalidValue, "admin_maximum_connections must be 1…10000 (64 is the default), got \(self.adminMaximumConnections)")
        }
        guard self.adminHandshakeTimeout > .zero, self.adminHeaderTimeout > .zero, self.adminIdleTimeout > .zero else {
            throw ConfigurationError(
                .invalidValue, "admin_handshake_timeout_seconds, admin_header_timeout_seconds and admin_idle_timeout_seconds must be positive")
        }
        for name in self.certificateNames where !Self.isDNSName(name) {
            throw ConfigurationError(
                .invalidValue, "certificate name \"\(name)\" is not a DNS name; give names such as relay.example.com (IP addresses are not put in certificates)"
            )
        }
    }
}
