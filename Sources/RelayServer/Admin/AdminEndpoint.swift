import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// The admin port (HTTPS, same certificate as the relay): `/metrics` for Prometheus and
/// `/healthz` for load balancers (OPERATIONS.md "Metrics").
enum AdminEndpoint {
    static func bind(relay: Relay, sslContext: NIOSSLContext, group: any EventLoopGroup) async throws -> any Channel {
        let address = relay.configuration.adminListen
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: sslContext))
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(AdminHTTPHandler(relay: relay))
                }
            }
        do {
            return try await bootstrap.bind(host: address.host, port: address.port).get()
        } catch {
            throw StoreError("cannot listen on the admin address \(address): \(error); choose another with --admin-listen")
        }
    }
}

final class AdminHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let relay: Relay
    private var request: HTTPRequestHead?

    init(relay: Relay) { self.relay = relay }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.request = head
        case .body:
            break
        case .end:
            guard let head = self.request else { return }
            self.request = nil
            self.respond(to: head, context: context)
        }
    }

    private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        switch (head.method, path) {
        case (.GET, "/metrics"):
            self.send(.ok, contentType: "text/plain; version=0.0.4; charset=utf-8", body: self.relay.metrics.exposition(), head: head, context: context)
        case (.GET, "/healthz"):
            self.send(.ok, contentType: "text/plain; charset=utf-8", body: Array("ok\n".utf8), head: head, context: context)
        case (_, "/metrics"), (_, "/healthz"):
            self.send(.methodNotAllowed, contentType: "text/plain; charset=utf-8", body: Array("use GET\n".utf8), head: head, context: context)
        default:
            self.send(.notFound, contentType: "text/plain; charset=utf-8", body: Array("not found; this port serves /metrics and /healthz\n".utf8), head: head, context: context)
        }
    }

    private func send(_ status: HTTPResponseStatus, contentType: String, body: [UInt8], head: HTTPRequestHead, context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: "\(body.count)")
        let keepAlive = head.isKeepAlive
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(self.wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        context.write(self.wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        context.writeAndFlush(self.wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            if !keepAlive { context.close(promise: nil) }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
