import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import RelayClient
import RelayStore
import RelayTestSupport
import RelayWire
import ServiceLifecycle

@testable import RelayServer

/// A relay node on loopback with its own data folder, test PKI and accounts, running its
/// services (usage recorder, retention purge, admin API) in a ServiceGroup as `serve` does.
final class TestRelay: @unchecked Sendable {
    let node: RelayNode
    let store: SQLStore
    private let services: ServiceGroup
    private let running: Task<Void, any Error>
    let dataDirectory: String
    let authority: TestCertificateAuthority
    let server: TestServerCertificate

    struct Company {
        let id: String
        let engineerToken: String
        let engineerLogin: String
        let hostID: String
        let hostSecret: String
        let hostName: String
        /// The company admin token, for the admin API.
        let adminToken: String
    }

    let acme: Company
    let globex: Company

    var port: Int { self.node.relayAddress.port! }
    /// Connect by the DNS name in the test certificate, so hostname checks run for real.
    var address: RelayAddress { RelayAddress(host: "localhost", port: self.port) }
    var ipAddress: RelayAddress { RelayAddress(host: "127.0.0.1", port: self.port) }
    var trust: RelayTrust { .certificateAuthorities([self.authority.certificate]) }
    /// The relay certificate's fingerprint as `relay-server` prints it.
    var fingerprint: String { try! Fingerprint.sha256(der: self.server.certificate.toDERBytes()) }
    /// The admin API's port (HTTPS, same certificate, name `localhost`).
    var adminPort: Int { self.node.adminAddress!.port! }

    /// The PostgreSQL database of a relay on ``StoreBackend/postgres``, dropped by ``stop()``.
    private(set) var postgresDatabase: String?

    /// `postgres`: the address of a PostgreSQL database the test made itself (it is not dropped).
    static func start(
        backend: StoreBackend = .sqlite, postgres: String? = nil, _ configure: (inout RelayConfiguration) -> Void = { _ in }
    ) async throws -> TestRelay {
        let dataDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("relay-test-\(UUID().uuidString)").path
        var postgresDatabase: String?
        let store: SQLStore
        switch backend {
        case _ where postgres != nil:
            store = try SQLStore(postgres: postgres ?? "")
        case .sqlite:
            store = try SQLStore(dataDirectory: dataDirectory)
        case .postgres:
            guard let server = ProcessInfo.processInfo.environment["RELAY_TEST_POSTGRES"] else {
                throw TestFailure("RELAY_TEST_POSTGRES is not set; scripts/test.sh starts PostgreSQL and sets it")
            }
            let database = try SQLStore.makePostgresDatabase(server: server)
            postgresDatabase = database
            store = try SQLStore(postgres: database)
        }
        let authority = try TestCertificateAuthority()
        let server = try authority.serverCertificate(dnsNames: ["localhost"])
        let tls = RelayTLS(
            certificateChain: [server.certificate], privateKey: server.privateKey,
            fingerprint: try Fingerprint.sha256(der: server.certificate.toDERBytes()), origin: "test")

        var configuration = RelayConfiguration()
        configuration.listen = ListenAddress(host: "127.0.0.1", port: 0)
        configuration.adminListen = ListenAddress(host: "127.0.0.1", port: 0)
        configuration.dataDirectory = dataDirectory
        configuration.nodeName = "test-node"
        configuration.eventLoopThreads = 2
        configuration.shutdownGrace = .seconds(2)
        // Tests that start processes or Xvfb block the 2-thread cooperative pool for seconds
        // at a time; a 10 s handshake deadline then cuts other tests' agents off mid-login.
        // Tests of the deadline itself set their own.
        configuration.handshakeTimeout = .seconds(60)
        configure(&configuration)

        func company(_ name: String, login: String, host: String) throws -> Company {
            let (company, adminToken) = try store.addCompany(name: name)
            let (engineer, token) = try store.addEngineer(companyID: company.id, login: login)
            let (enrolled, secret) = try store.enrollHost(companyID: company.id, name: host)
            return Company(
                id: company.id, engineerToken: token, engineerLogin: engineer.login, hostID: enrolled.id, hostSecret: secret, hostName: enrolled.name,
                adminToken: adminToken)
        }
        let acme = try company("ACME 코리아", login: "kim.minji", host: "회계팀 PC-03")
        let globex = try company("Globex", login: "hank", host: "front-desk")

        var logger = Logger(label: "test-relay")
        logger.logLevel = .critical
        let node = try RelayNode(configuration: configuration, tls: tls, store: store, logger: logger)
        let services = ServiceGroup(configuration: .init(services: [.init(service: node)], logger: logger))
        // Test code may start a task: the relay runs until `stop()` shuts it down gracefully.
        let running = Task { try await services.run() }
        guard await node.adminListening() != nil else { throw TestFailure("the admin API did not start") }
        let relay = TestRelay(
            node: node, store: store, services: services, running: running, dataDirectory: dataDirectory, authority: authority, server: server, acme: acme,
            globex: globex)
        relay.postgresDatabase = postgresDatabase
        return relay
    }

    private init(
        node: RelayNode, store: SQLStore, services: ServiceGroup, running: Task<Void, any Error>, dataDirectory: String,
        authority: TestCertificateAuthority, server: TestServerCertificate, acme: Company, globex: Company
    ) {
        self.node = node
        self.services = services
        self.running = running
        self.store = store
        self.dataDirectory = dataDirectory
        self.authority = authority
        self.server = server
        self.acme = acme
        self.globex = globex
    }

    /// Shuts the relay down as SIGTERM would (Bye to agents, records closed), keeping the data.
    func shutDown() async {
        await self.services.triggerGracefulShutdown()
        _ = try? await self.running.value
    }

    func stop() async {
        await self.shutDown()
        try? FileManager.default.removeItem(atPath: self.dataDirectory)
        if let database = self.postgresDatabase, let server = ProcessInfo.processInfo.environment["RELAY_TEST_POSTGRES"] {
            self.store.close()
            try? SQLStore.dropPostgresDatabase(server: server, url: database)
        }
    }

    /// Runs `body` with a started relay and always stops it.
    static func with<T: Sendable>(
        backend: StoreBackend = .sqlite, postgres: String? = nil, _ configure: (inout RelayConfiguration) -> Void = { _ in },
        _ body: (TestRelay) async throws -> T
    ) async throws -> T {
        try await withStopping(try await TestRelay.start(backend: backend, postgres: postgres, configure), stop: { await $0.stop() }, body)
    }

    func metric(_ name: String) -> Double {
        let text = String(decoding: self.node.relay.metrics.exposition(), as: UTF8.self)
        for line in text.split(separator: "\n") where line.hasPrefix(name + " ") {
            return Double(line.split(separator: " ").last!) ?? .nan
        }
        return .nan
    }
}

/// Waits until `condition` holds, polling; fails the caller's expectation by returning false after `limit`.
func eventually(within limit: Duration = .seconds(10), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: limit)
    while clock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return try await condition()
}

/// An error a test expected from the relay.
func relayError(_ body: () async throws -> Void) async -> RelayClientError? {
    do {
        try await body()
        return nil
    } catch let error as RelayClientError {
        return error
    } catch {
        return RelayClientError(.closed, "unexpected error type: \(error)")
    }
}

/// Runs `body` with `resource` and always runs `stop` after it, whether `body` threw or not.
func withStopping<R, T: Sendable>(_ resource: R, stop: (R) async -> Void, _ body: (R) async throws -> T) async throws -> T {
    do {
        let result = try await body(resource)
        await stop(resource)
        return result
    } catch {
        await stop(resource)
        throw error
    }
}
