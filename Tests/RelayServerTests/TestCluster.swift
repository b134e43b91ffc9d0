import Foundation
import Logging
import NIOCore
import NIOPosix
import RelayClient
import RelayStore
import RelayTestSupport
import RelayWire
import ServiceLifecycle

@testable import RelayServer

/// Relay nodes on loopback sharing one PostgreSQL database and one cluster secret, each
/// with its agents' port and its cluster port, as OPERATIONS.md "Several nodes" deploys
/// them. The accounts are made once, in the shared database.
final class TestCluster: @unchecked Sendable {
    final class Node: @unchecked Sendable {
        let name: String
        let node: RelayNode
        let store: SQLStore
        let services: ServiceGroup
        let running: Task<Void, any Error>
        let clusterPort: Int

        init(name: String, node: RelayNode, store: SQLStore, services: ServiceGroup, running: Task<Void, any Error>, clusterPort: Int) {
            self.name = name
            self.node = node
            self.store = store
            self.services = services
            self.running = running
            self.clusterPort = clusterPort
        }

        var address: RelayAddress { RelayAddress(host: "localhost", port: self.node.relayAddress.port!) }

        func shutDown() async {
            await self.services.triggerGracefulShutdown()
            _ = try? await self.running.value
            self.store.close()
        }
    }

    let database: String
    let server: String
    let authority: TestCertificateAuthority
    let certificate: TestServerCertificate
    let secretFile: String
    let folder: String
    /// The accounts, in the shared database.
    let store: SQLStore
    let companyID: String
    let engineerToken: String
    let engineerLogin = "kim.minji"
    let hostID: String
    let hostSecret: String
    let hostName = "회계팀 PC-03"
    private(set) var nodes: [Node] = []
    var trust: RelayTrust { .certificateAuthorities([self.authority.certificate]) }

    /// `server`: the PostgreSQL server to make the cluster's database on (a test's own
    /// ``TestPostgresServer``); by default the one RELAY_TEST_POSTGRES names.
    init(server: String? = nil) throws {
        guard let server = server ?? ProcessInfo.processInfo.environment["RELAY_TEST_POSTGRES"] else {
            throw TestFailure("RELAY_TEST_POSTGRES is not set; scripts/test.sh starts PostgreSQL and sets it")
        }
        self.server = server
        self.database = try SQLStore.makePostgresDatabase(server: server)
        self.store = try SQLStore(postgres: self.database)
        self.authority = try TestCertificateAuthority()
        self.certificate = try self.authority.serverCertificate(dnsNames: ["localhost"])
        self.folder = FileManager.default.temporaryDirectory.appendingPathComponent("relay-cluster-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: self.folder, withIntermediateDirectories: true)
        self.secretFile = self.folder + "/cluster.secret"
        try Self.writePrivate(Data((0..<48).map { _ in UInt8.random(in: 0...255) }).base64EncodedString(), to: self.secretFile)
        let (company, _) = try self.store.addCompany(name: "ACME 코리아")
        let (_, token) = try self.store.addEngineer(companyID: company.id, login: self.engineerLogin)
        let (host, secret) = try self.store.enrollHost(companyID: company.id, name: self.hostName)
        self.companyID = company.id
        self.engineerToken = token
        self.hostID = host.id
        self.hostSecret = secret
    }

    static func writePrivate(_ text: String, to path: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]) else {
            throw TestFailure("cannot write \(path)")
        }
    }

    /// A port nothing listens on now, for a node's cluster port (its address is announced
    /// before it binds).
    static func freePort() throws -> Int {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let channel = try ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).wait()
        let port = channel.localAddress!.port!
        try channel.close().wait()
        return port
    }

    /// Starts a node named `name`; `configure` may change its configuration.
    @discardableResult
    func start(_ name: String, _ configure: (inout RelayConfiguration) -> Void = { _ in }) async throws -> Node {
        let store = try SQLStore(postgres: self.database)
        let clusterPort = try Self.freePort()
        var configuration = RelayConfiguration()
        configuration.listen = ListenAddress(host: "127.0.0.1", port: 0)
        configuration.adminListen = ListenAddress(host: "127.0.0.1", port: 0)
        configuration.dataDirectory = self.folder + "/" + name
        configuration.store = self.database
        configuration.nodeName = name
        configuration.eventLoopThreads = 2
        configuration.shutdownGrace = .seconds(2)
        configuration.handshakeTimeout = .seconds(60)
        configuration.nodeLease = .seconds(3)
        configuration.cluster = ClusterSettings(
            listen: ListenAddress(host: "127.0.0.1", port: clusterPort), address: "127.0.0.1:\(clusterPort)", secretFile: self.secretFile)
        configure(&configuration)
        let tls = RelayTLS(
            certificateChain: [self.certificate.certificate], privateKey: self.certificate.privateKey,
            fingerprint: try Fingerprint.sha256(der: self.certificate.certificate.toDERBytes()), origin: "test")
        var logger = Logger(label: "test-cluster-\(name)")
        logger.logLevel = .critical
        let node = try RelayNode(configuration: configuration, tls: tls, store: store, logger: logger)
        let services = ServiceGroup(configuration: .init(services: [.init(service: node)], logger: logger))
        let running = Task { try await services.run() }
        guard await node.adminListening() != nil else {
            let result = await running.result
            store.close()
            if case .failure(let error) = result { throw error }
            throw TestFailure("node \(name) did not start")
        }
        let started = Node(name: name, node: node, store: store, services: services, running: running, clusterPort: clusterPort)
        self.nodes.append(started)
        return started
    }

    func stop() async {
        for node in self.nodes { await node.shutDown() }
        self.store.close()
        try? SQLStore.dropPostgresDatabase(server: self.server, url: self.database)
        try? FileManager.default.removeItem(atPath: self.folder)
    }

    static func with<T: Sendable>(server: String? = nil, _ body: (TestCluster) async throws -> T) async throws -> T {
        try await withStopping(try TestCluster(server: server), stop: { await $0.stop() }, body)
    }
}
