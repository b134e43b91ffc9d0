// The relay-server processes and accounts of `relay-bench cluster`: one node on SQLite,
// one on PostgreSQL (alone, or with the cluster settings), or three nodes sharing one
// PostgreSQL database and one cluster secret, each with its agents' port and its cluster
// port, as OPERATIONS.md "Several nodes" deploys them.

import Crypto
import Foundation
import RelayClient
import RelayStore

#if canImport(Glibc)
import Glibc
#endif

/// What one case of `relay-bench cluster` runs on.
enum ClusterSetupKind: String, CaseIterable, Sendable {
    /// One node, its own SQLite file.
    case sqlite
    /// One node on PostgreSQL, without the cluster settings: it pairs in its own book.
    case postgres
    /// One node on PostgreSQL with the cluster settings (a cluster of one): support codes
    /// and the host directory go through the database as on every node of a cluster.
    case postgresCluster = "postgres-cluster"
    /// Three nodes on one PostgreSQL database, pairing across nodes through node links.
    case cluster3

    var label: String {
        switch self {
        case .sqlite: "1 node, SQLite"
        case .postgres: "1 node, PostgreSQL"
        case .postgresCluster: "1 node, PostgreSQL, cluster settings"
        case .cluster3: "3 nodes, PostgreSQL"
        }
    }

    var nodeCount: Int { self == .cluster3 ? 3 : 1 }
    var usesPostgres: Bool { self != .sqlite }
    var hasClusterSettings: Bool { self == .postgresCluster || self == .cluster3 }
}

/// One relay-server process.
struct BenchNode: Sendable {
    var name: String
    var pid: Int32
    var port: Int
    var clusterPort: Int?
    var address: RelayAddress { RelayAddress(host: "127.0.0.1", port: self.port) }
}

/// The relay-server processes of one setup, their database and accounts.
final class BenchSetup {
    let kind: ClusterSetupKind
    let nodes: [BenchNode]
    /// The PostgreSQL database's name (nil on SQLite).
    let database: String?
    let accounts: ClusterAccounts
    private let children: [ChildProcess]

    private init(kind: ClusterSetupKind, nodes: [BenchNode], children: [ChildProcess], database: String?, accounts: ClusterAccounts) {
        self.kind = kind
        self.nodes = nodes
        self.children = children
        self.database = database
        self.accounts = accounts
    }

    /// Makes the database and accounts, then starts the nodes and waits until each listens
    /// on its port (and its cluster port).
    static func start(
        _ kind: ClusterSetupKind, binary: String, postgres: BenchPostgres?, tls: TLSMaterial, secretFile: String, directory: String, engineers: Int,
        hosts: Int
    ) async throws -> BenchSetup {
        let folder = "\(directory)/\(kind.rawValue)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        var database: String?
        var storeURL: String?
        let accounts: ClusterAccounts
        if kind.usesPostgres {
            guard let postgres else { throw BenchError("\(kind.label) needs a PostgreSQL server") }
            let name = try postgres.createDatabase(kind.rawValue.replacingOccurrences(of: "-", with: "_"))
            database = name
            storeURL = postgres.url(of: name)
            let store = try SQLStore(postgres: postgres.url(of: name))
            defer { store.close() }
            accounts = try ClusterAccounts.create(in: store, engineers: engineers, hosts: hosts)
        } else {
            // The relay opens the same file; this process's store is gone before it starts.
            accounts = try ClusterAccounts.create(in: try SQLStore(dataDirectory: "\(folder)/node-a"), engineers: engineers, hosts: hosts)
        }
        var nodes: [BenchNode] = []
        var children: [ChildProcess] = []
        do {
            for index in 0..<kind.nodeCount {
                let name = "node-" + String(UnicodeScalar(UInt8(ascii: "a") + UInt8(index)))
                let data = "\(folder)/\(name)"
                try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
                let port = try freePort()
                let clusterPort = kind.hasClusterSettings ? try freePort() : nil
                let config = "\(data)/relay.json"
                guard
                    FileManager.default.createFile(
                        atPath: config,
                        contents: Data(
                            Self.config(name: name, port: port, clusterPort: clusterPort, data: data, store: storeURL, tls: tls, secretFile: secretFile).utf8),
                        attributes: [.posixPermissions: 0o600])
                else { throw BenchError("cannot write \(config)") }
                let child = try ChildProcess(
                    name: "relay-server \(name)", executable: binary, arguments: ["serve", "--config", config], logPath: "\(folder)/\(name).log")
                children.append(child)
                nodes.append(BenchNode(name: name, pid: child.pid, port: port, clusterPort: clusterPort))
            }
            for (node, child) in zip(nodes, children) {
                try await waitForListener(port: node.port, timeout: 60, child: child)
                if let clusterPort = node.clusterPort { try await waitForListener(port: clusterPort, timeout: 30, child: child) }
            }
        } catch {
            for child in children { child.stop() }
            throw error
        }
        return BenchSetup(kind: kind, nodes: nodes, children: children, database: database, accounts: accounts)
    }

    /// A node's config file. Every load connection comes from 127.0.0.1: the per-source
    /// caps are lifted, as `relay-bench relay` lifts them (they exist for the internet, not
    /// for a load generator).
    private static func config(name: String, port: Int, clusterPort: Int?, data: String, store: String?, tls: TLSMaterial, secretFile: String) -> String {
        var keys: [(String, JSON)] = [
            ("listen", .string("127.0.0.1:\(port)")), ("admin_listen", .string("127.0.0.1:0")), ("node_name", .string(name)),
            ("data_directory", .string(data)), ("certificate", .string(tls.certificatePath)), ("key", .string(tls.keyPath)),
            ("maximum_connections_per_source", .int(100_000)), ("maximum_unauthenticated_per_source", .int(100_000)),
            ("maximum_unauthenticated", .int(100_000)), ("unauthenticated_early_drop_start", .int(100_000)),
        ]
        if let store { keys.append(("store", .string(store))) }
        if let clusterPort {
            keys.append(("cluster_listen", .string("127.0.0.1:\(clusterPort)")))
            keys.append(("cluster_secret_file", .string(secretFile)))
        }
        return JSON.object(keys).serialized()
    }

    /// CPU seconds of every node, in node order.
    func relayCPU() -> [Double] { self.nodes.map { processCPUSeconds(pid: $0.pid) } }

    func stop() {
        for child in self.children { child.stop() }
    }

    /// Copies each node's log to `folder` as SETUP-NODE.log.
    func copyLogs(to folder: String) {
        try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for (node, child) in zip(self.nodes, self.children) {
            let target = "\(folder)/\(self.kind.rawValue)-\(node.name).log"
            try? FileManager.default.removeItem(atPath: target)
            try? FileManager.default.copyItem(atPath: child.logPath, toPath: target)
        }
    }

    /// The last lines of each node's log, for an error message.
    var logTails: String {
        zip(self.nodes, self.children).map { "\($0.name):\n\($1.logTail)" }.joined(separator: "\n")
    }
}

/// One company, `engineers` engineers and `hosts` enrolled hosts, all logging in with
/// Ed25519 keys (PROTOCOL.md §1.2), made through RelayStore in the setup's database before
/// its nodes start. Each pairing worker has an engineer of its own, so that no engineer
/// holds more than one support code (`support_codes_per_engineer`).
struct ClusterAccounts: Sendable {
    struct Engineer: Sendable {
        var login: String
        var key: Curve25519.Signing.PrivateKey
    }

    var companyID: String
    var engineers: [Engineer]
    var hosts: [Accounts.Host]
    var seconds: Double

    static func create(in store: SQLStore, engineers: Int, hosts: Int) throws -> ClusterAccounts {
        let start = ContinuousClock.now
        let company = try store.addCompany(name: "bench", actor: "relay-bench").0
        var engineerList: [Engineer] = []
        for index in 0..<engineers {
            let key = Curve25519.Signing.PrivateKey()
            let login = "bench.engineer.\(index)"
            _ = try store.addEngineer(companyID: company.id, login: login, publicKey: key.publicKey, actor: "relay-bench")
            engineerList.append(Engineer(login: login, key: key))
        }
        var hostList: [Accounts.Host] = []
        for index in 0..<hosts {
            let key = Curve25519.Signing.PrivateKey()
            let host = try store.enrollHost(companyID: company.id, name: "bench-host-\(index)", publicKey: key.publicKey, actor: "relay-bench")
            hostList.append(Accounts.Host(id: host.id, key: key))
        }
        return ClusterAccounts(companyID: company.id, engineers: engineerList, hosts: hostList, seconds: (ContinuousClock.now - start).seconds)
    }
}

/// A cluster secret as OPERATIONS.md makes one (`openssl rand -base64 48`), mode 0600.
func writeClusterSecret(to path: String) throws {
    var generator = SystemRandomNumberGenerator()
    let bytes = (0..<48).map { _ in UInt8.random(in: 0...255, using: &generator) }
    guard FileManager.default.createFile(atPath: path, contents: Data(Data(bytes).base64EncodedString().utf8), attributes: [.posixPermissions: 0o600])
    else { throw BenchError("cannot write the cluster secret \(path)") }
}
