import ArgumentParser
import Foundation
import Logging
import NIOCore
import RelayStore
import ServiceLifecycle

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the relay (the default command).",
        discussion: """
            Flags override the config file, which overrides the defaults (--store: the flag, then \
            $RELAY_STORE, then the config file's store). The config file is JSON with snake_case \
            keys: \(RelayConfiguration.fileKeys.sorted().joined(separator: ", ")). \
            A config file whose store holds a password must be readable by the relay's user \
            only. See docs/OPERATIONS.md §2.
            """
    )

    @Option(help: ArgumentHelp("Where agents connect.", valueName: "HOST:PORT")) var listen: String?
    @Option(help: ArgumentHelp("Where the admin API (/metrics, /healthz, /v1/usage) is served (HTTPS).", valueName: "HOST:PORT")) var adminListen: String?
    @Option(name: .customLong("data"), help: ArgumentHelp("Data folder: database, dev certificate.", valueName: "DIR")) var dataDirectory: String?
    @Option(help: StoreOption.help) var store: String?
    @Option(help: ArgumentHelp("The relay's certificate chain (PEM). Without it, a self-signed certificate is made in the data folder.", valueName: "PEM"))
    var cert: String?
    @Option(help: ArgumentHelp("The private key for --cert (PEM); it must not be readable by other users.", valueName: "PEM")) var key: String?
    @Option(
        name: .customLong("certificate-name"),
        help: ArgumentHelp("A DNS name for the self-signed certificate (repeat for more); without it, only localhost.", valueName: "NAME")
    ) var certificateNames: [String] = []
    @Option(help: ArgumentHelp("A JSON config file.", valueName: "FILE")) var config: String?
    @Option(help: "Log level: trace, debug, info, notice, warning, error.") var logLevel: String = "info"

    func validate() throws {
        if (self.cert == nil) != (self.key == nil) {
            throw ValidationError("--cert and --key go together: give both, or neither for the self-signed development certificate")
        }
        guard Logger.Level(rawValue: self.logLevel) != nil else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error")
        }
    }

    func run() async throws {
        var configuration = RelayConfiguration()
        do {
            if let config { try ConfigFile.apply(config, to: &configuration) }
            if let listen { configuration.listen = try ListenAddress(parsing: listen) }
            if let adminListen { configuration.adminListen = try ListenAddress(parsing: adminListen) }
            if let dataDirectory { configuration.dataDirectory = dataDirectory }
            if let store = StoreOption.resolve(self.store) { configuration.store = store }
            if let cert, let key {
                configuration.certificatePath = cert
                configuration.keyPath = key
            }
            if !self.certificateNames.isEmpty { configuration.certificateNames = self.certificateNames }
            try configuration.validate()
        } catch {
            throw CommandFailure("\(error)")
        }

        let level = Logger.Level(rawValue: self.logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "relay-server")
        if let warning = StoreOption.passwordWarning(self.store) { logger.warning("\(warning)") }

        // The data folder holds the self-signed certificate whatever the store; with
        // SQLite, the relay holds it so that `store migrate` cannot copy it meanwhile.
        var permissionChanges = try adminAction { try PrivateDataFolder.create(configuration.dataDirectory) }
        let folderHold: DataFolderHold?
        if StoreAddress.isPostgres(configuration.store) {
            folderHold = nil
        } else {
            guard let hold = DataFolder.hold(configuration.dataDirectory, for: .relay) else {
                throw CommandFailure(
                    "`relay-server store migrate` is copying the records of \(configuration.dataDirectory) right now; start the relay when it has "
                        + "finished, with --store and the PostgreSQL address it copied into (OPERATIONS.md §11)")
            }
            folderHold = hold
        }
        let (store, openingChanges) = try adminAction { try PrivateDataFolder.openStore(configuration.dataDirectory, store: configuration.store) }
        permissionChanges += openingChanges
        if !permissionChanges.isEmpty {
            logger.warning("\(PrivateDataFolder.summary(permissionChanges))")
        }
        if let warning = Self.tokenAccountWarning(try adminAction { try store.tokenAccountCounts() }) {
            logger.warning("\(warning)")
        }
        let tls: RelayTLS
        if let certificatePath = configuration.certificatePath, let keyPath = configuration.keyPath {
            tls = try adminAction { try RelayTLS.load(certificatePath: certificatePath, keyPath: keyPath) }
        } else {
            let development = DevelopmentCertificate(dataDirectory: configuration.dataDirectory, names: configuration.certificateNames)
            let (loaded, outcome, warning) = try adminAction { try development.loadOrRenew() }
            tls = loaded
            Self.report(outcome, warning: warning, tls: loaded, development: development, logger: logger)
        }

        // Freed memory goes back to the kernel at the relay's trims, not on every free.
        if HeapTrim.keepFreedMemoryUntilTrimmed() { logger.debug("malloc keeps freed memory until the relay trims its heap") }
        let node = try adminAction {
            try RelayNode(configuration: configuration, tls: tls, store: store, logger: logger)
        }
        let group = ServiceGroup(
            configuration: .init(services: [.init(service: node)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        )
        // A port that cannot be bound ends `run()` with a ConfigurationError that says what to do.
        try await adminAction {
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                // The banner once both ports listen; none if the node stopped first.
                if let adminAddress = await node.adminListening() {
                    Self.printBanner(configuration: configuration, node: node, adminPort: adminAddress.port, tls: tls, storeLocation: store.location)
                }
                try await tasks.waitForAll()
            }
        }
        withExtendedLifetime(folderHold) {}
        print("relay-server stopped")
    }

    /// One line about engineers and hosts that still log in with a token or secret from
    /// before account keys (issue 12 item 4): they keep working, but a copy of the token
    /// logs in. Nil when there are none.
    static func tokenAccountWarning(_ counts: (engineers: Int, hosts: Int)) -> String? {
        guard counts.engineers + counts.hosts > 0 else { return nil }
        func counted(_ count: Int, _ noun: String) -> String? { count == 0 ? nil : "\(count) \(noun)\(count == 1 ? "" : "s")" }
        let who = [counted(counts.engineers, "engineer"), counted(counts.hosts, "host")].compactMap { $0 }.joined(separator: " and ")
        let verb = counts.engineers + counts.hosts == 1 ? "logs" : "log"
        return "\(who) still \(verb) in with a legacy token or secret, which anyone who copies it can replay: "
            + "`relay-server engineer list` and `relay-server host list` show which, and `relay-server engineer set-key ID --public-key KEY` "
            + "(`host set-key` for hosts) moves each to a key (docs/OPERATIONS.md \"Moving accounts to keys\")"
    }

    /// Says what happened to the self-signed certificate; a renewal loudly, since every
    /// agent that pins the old fingerprint needs the new one.
    static func report(_ outcome: DevelopmentCertificate.Outcome, warning: String?, tls: RelayTLS, development: DevelopmentCertificate, logger: Logger) {
        switch outcome {
        case .loaded:
            break
        case .created:
            print(
                "Made a self-signed certificate in \(development.folder) for \(development.names.joined(separator: ", ")), valid \(DevelopmentCertificate.validityDays) days."
            )
        case .renewed(let previous, let reason):
            logger.critical(
                "RENEWED the self-signed certificate: agents that pin the old fingerprint must be given the NEW one",
                metadata: ["reason": "\(reason)", "new_fingerprint": "\(tls.fingerprint)", "old_fingerprint": "\(previous)"]
            )
            print(
                """
                RENEWED the self-signed certificate (\(reason)).
                  NEW fingerprint: \(tls.fingerprint)
                  old fingerprint: \(previous)
                Agents that pin the old fingerprint cannot connect until they are given the new one.
                """)
        }
        if let warning { logger.warning("\(warning)") }
    }

    static func printBanner(configuration: RelayConfiguration, node: RelayNode, adminPort: Int?, tls: RelayTLS, storeLocation: String) {
        // The cluster port (cluster_listen refuses port 0, so the configured one is bound).
        let cluster = configuration.cluster.map { settings in
            "\n  cluster:     \(settings.listen.host):\(settings.listen.port)  (TLS, node links from the other nodes, which dial \(settings.address))"
        }
        print(
            """
            relay-server listening
              node:        \(configuration.nodeName)
              relay:       \(configuration.listen.host):\(node.relayAddress.port ?? configuration.listen.port)  (TLS, ALPN supportrelay/1: agents)
              web:         https://\(configuration.listen.host):\(node.relayAddress.port ?? configuration.listen.port)/  (the same port, ALPN http/1.1: browsers)
              admin:       https://\(configuration.adminListen.host):\(adminPort ?? configuration.adminListen.port)  (/metrics, /healthz, /v1/usage)\(cluster ?? "")
              data:        \(configuration.dataDirectory)
              store:       \(storeLocation)
              certificate: \(tls.origin)
              fingerprint: \(tls.fingerprint)
            Agents pin this fingerprint with --fingerprint, or trust your CA with --ca.
            """)
        fflush(nil)
    }
}
