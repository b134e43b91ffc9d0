import NIOCore
import NIOPosix
import NIOSSL
import RelayTestSupport
import RelayWire

@testable import RelayClient

/// A relay on loopback that speaks TLS with the protocol's ALPN and frames, and otherwise
/// does what `script` says with the one connection it accepts.
enum FakeRelay {
    typealias Script = @Sendable (NIOAsyncChannelInboundStream<Frame>, NIOAsyncChannelOutboundWriter<Frame>) async throws -> Void

    static func with<T: Sendable>(_ script: @escaping Script, _ body: (RelayAddress, RelayTrust) async throws -> T) async throws -> T {
        let authority = try TestCertificateAuthority(commonName: "Fake Relay CA")
        let server = try authority.serverCertificate(dnsNames: ["localhost"])
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: [.certificate(server.certificate)], privateKey: .privateKey(server.privateKey))
        configuration.minimumTLSVersion = .tlsv12
        configuration.applicationProtocols = [RelayProtocol.alpnToken]
        let context = try NIOSSLContext(configuration: configuration)
        let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: "127.0.0.1", port: 0) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
                    try channel.pipeline.syncOperations.addHandler(
                        ByteToMessageHandler(frameDecoderWithMaximumPayloadLength: Frame.defaultMaximumPayloadLength))
                    try channel.pipeline.syncOperations.addHandler(FrameEncoder())
                    return try NIOAsyncChannel<Frame, Frame>(wrappingChannelSynchronously: channel)
                }
            }
        let port = listener.channel.localAddress!.port!
        let trust = RelayTrust.certificateAuthorities([authority.certificate])
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await listener.executeThenClose { connections in
                    for try await connection in connections {
                        try? await connection.executeThenClose { inbound, outbound in try await script(inbound, outbound) }
                        return
                    }
                }
            }
            do {
                let result = try await body(RelayAddress(host: "localhost", port: port), trust)
                // The script ends when the agent's connection does: wait for it, so that
                // what it saw is complete.
                listener.channel.close(promise: nil)
                try await group.waitForAll()
                return result
            } catch {
                listener.channel.close(promise: nil)
                group.cancelAll()
                throw error
            }
        }
    }
}
