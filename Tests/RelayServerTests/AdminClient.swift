import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// A small HTTPS client for the admin API in tests: real TLS against the test CA, by the
/// certificate's DNS name, HTTP/1.1 with chunked bodies decoded by NIOHTTP1.
struct AdminResponse {
    var status: HTTPResponseStatus
    var headers: HTTPHeaders
    var body: [UInt8]
    /// The largest body chunk the server sent (its write size).
    var largestChunk: Int
    /// Body bytes and line feeds received (also when the body was not kept).
    var bodyBytes = 0
    var lines = 0

    var text: String { String(decoding: self.body, as: UTF8.self) }
}

enum AdminClient {
    static func get(
        port: Int, path: String, token: String? = nil, trust certificate: NIOSSLCertificate, discardBody: Bool = false
    ) async throws -> AdminResponse {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates([certificate])
        tls.applicationProtocols = ["http/1.1"]
        let context = try NIOSSLContext(configuration: tls)
        let promise = MultiThreadedEventLoopGroup.singleton.next().makePromise(of: AdminResponse.self)
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: "localhost"))
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(ResponseCollector(promise: promise, discardBody: discardBody))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        var headers = HTTPHeaders([("Host", "localhost"), ("Connection", "close")])
        if let token { headers.add(name: "Authorization", value: "Bearer \(token)") }
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: headers)
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        try await channel.writeAndFlush(HTTPClientRequestPart.end(nil)).get()
        let response = try await promise.futureResult.get()
        try? await channel.close()
        return response
    }

    final class ResponseCollector: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = HTTPClientResponsePart
        let promise: EventLoopPromise<AdminResponse>
        let discardBody: Bool
        var response: AdminResponse?

        init(promise: EventLoopPromise<AdminResponse>, discardBody: Bool) {
            self.promise = promise
            self.discardBody = discardBody
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch self.unwrapInboundIn(data) {
            case .head(let head):
                self.response = AdminResponse(status: head.status, headers: head.headers, body: [], largestChunk: 0)
            case .body(let buffer):
                guard var response = self.response else { return }
                self.response = nil
                response.largestChunk = max(response.largestChunk, buffer.readableBytes)
                response.bodyBytes += buffer.readableBytes
                // Over raw bytes: a debug build's ByteBufferView iteration took most of a
                // 100 s large-export test here.
                response.lines += buffer.withUnsafeReadableBytes { bytes in
                    var newlines = 0
                    for byte in bytes where byte == 0x0A { newlines += 1 }
                    return newlines
                }
                if self.discardBody {
                    // Keep only the tail, so a huge export costs the test nothing.
                    response.body.append(contentsOf: buffer.readableBytesView.suffix(4096))
                    if response.body.count > 8192 { response.body.removeFirst(response.body.count - 4096) }
                } else {
                    response.body.append(contentsOf: buffer.readableBytesView)
                }
                self.response = response
            case .end:
                if let response = self.response { self.promise.succeed(response) }
                self.response = nil
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            self.promise.fail(ChannelError.eof)
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            self.promise.fail(error)
            context.close(promise: nil)
        }
    }
}
