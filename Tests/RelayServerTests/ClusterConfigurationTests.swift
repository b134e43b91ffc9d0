import Foundation
import Logging
import NIOCore
import NIOEmbedded
import NIOTLS
import RelayTestSupport
import Testing

@testable import RelayServer

/// The cluster keys of the config file and the cluster secret, as OPERATIONS.md §11
/// "Several nodes" describes them.
@Suite struct ClusterConfigurationTests {
    static func message(_ body: () throws -> Void) -> String {
        do {
            try body()
            return ""
        } catch {
            return "\(error)"
        }
    }

    @Test func theClusterKeysGoTogether() throws {
        var configuration = RelayConfiguration()
        try RelayConfigurationTests.apply(
            #"{"cluster_listen": "10.0.0.11:7445", "cluster_secret_file": "/etc/supportrelay/cluster.secret", "node_lease_seconds": 9}"#, to: &configuration)
        #expect(
            configuration.cluster
                == ClusterSettings(
                    listen: ListenAddress(host: "10.0.0.11", port: 7445), address: "10.0.0.11:7445", secretFile: "/etc/supportrelay/cluster.secret"))
        #expect(configuration.nodeLease == .seconds(9))

        var wildcard = RelayConfiguration()
        try RelayConfigurationTests.apply(
            #"{"cluster_listen": "0.0.0.0:7445", "cluster_address": "[2001:db8::11]:7445", "cluster_secret_file": "s"}"#, to: &wildcard)
        #expect(wildcard.cluster?.address == "[2001:db8::11]:7445")

        var other = RelayConfiguration()
        #expect(Self.message { try RelayConfigurationTests.apply(#"{"cluster_listen": "10.0.0.11:7445"}"#, to: &other) }.contains("cluster_secret_file"))
        #expect(
            Self.message { try RelayConfigurationTests.apply(#"{"cluster_listen": "0.0.0.0:7445", "cluster_secret_file": "s"}"#, to: &other) }
                .contains("set cluster_address"))
        #expect(
            Self.message {
                try RelayConfigurationTests.apply(#"{"cluster_listen": ":7445", "cluster_address": "0.0.0.0:7445", "cluster_secret_file": "s"}"#, to: &other)
            }.contains("not an address other nodes can dial"))
        #expect(Self.message { try RelayConfigurationTests.apply(#"{"node_lease_seconds": 1}"#, to: &other) }.contains("node_lease_seconds must be 3…3600"))
        #expect(
            Self.message { try RelayConfigurationTests.apply(#"{"cluster_listen": "127.0.0.1:0", "cluster_secret_file": "s"}"#, to: &other) }
                .contains("takes a free port at random"))
        for name in ["", " ", "relay one", String(repeating: "n", count: 65)] {
            var named = RelayConfiguration()
            named.nodeName = name
            #expect(Self.message { try named.validate() }.contains("must be 1…64 visible characters"))
        }
    }

    @Test func theSecretFileIsPrivateAndLongEnough() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("relay-secret-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/cluster.secret"
        #expect(Self.message { _ = try ClusterIdentity(secretFile: path) }.contains("openssl rand -base64 48"))
        try TestCluster.writePrivate("too short", to: path)
        #expect(Self.message { _ = try ClusterIdentity(secretFile: path) }.contains("holds 9 bytes; it needs at least 32"))
        let secret = Data((0..<48).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
        try TestCluster.writePrivate(secret + "\n", to: path)
        let first = try ClusterIdentity(secretFile: path)
        // The key is the secret's alone: every node derives the same one; a trailing newline
        // (an editor's) changes nothing.
        try TestCluster.writePrivate(secret, to: path)
        #expect(try ClusterIdentity(secretFile: path).publicKey == first.publicKey)
        #expect(try ClusterIdentity(secret: Data((secret + "x").utf8)).publicKey != first.publicKey)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: path)
        #expect(Self.message { _ = try ClusterIdentity(secretFile: path) }.contains("the cluster secret \(path) is accessible to other users"))
    }
}

/// The cluster port takes node links only: a peer with the cluster key that did not agree
/// on ALPN `supportrelay-cluster/1` is closed (outside test: it was accepted).
@Suite struct ClusterALPNCheckTests {
    @Test(arguments: [nil, "http/1.1", "supportrelay/1"] as [String?]) func anotherProtocolIsClosed(_ offered: String?) throws {
        let channel = EmbeddedChannel(handler: ClusterALPNCheck(logger: Logger(label: "test")))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 7445)).wait()
        channel.pipeline.fireUserInboundEventTriggered(TLSUserEvent.handshakeCompleted(negotiatedProtocol: offered))
        #expect(!channel.isActive)
    }

    @Test func theNodeLinkTokenPasses() throws {
        let channel = EmbeddedChannel(handler: ClusterALPNCheck(logger: Logger(label: "test")))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 7445)).wait()
        channel.pipeline.fireUserInboundEventTriggered(TLSUserEvent.handshakeCompleted(negotiatedProtocol: ClusterIdentity.alpnToken))
        #expect(channel.isActive)
        #expect(throws: (any Error).self) { try channel.pipeline.syncOperations.handler(type: ClusterALPNCheck.self) }
        _ = try channel.finish()
    }
}

/// Shutdown work that may hang on a dead database connection is waited for a bounded time.
@Suite struct BoundedWorkTests {
    @Test func workThatHangsIsGivenUpOnAndWorkThatEndsIsWaitedFor() async {
        // The body takes 30 s: an answer before it ends says the wait was given up.
        let hung = await BoundedWork.run(within: .milliseconds(200)) { Thread.sleep(forTimeInterval: 30) }
        #expect(!hung)
        #expect(await BoundedWork.run(within: .seconds(5)) { Thread.sleep(forTimeInterval: 0.05) })
    }
}
