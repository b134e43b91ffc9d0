import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A plain-TCP load balancer on loopback, as OPERATIONS.md "Several nodes" puts in front of
/// the nodes: each connection goes to the next backend in turn, skipping one that refuses
/// the connection (a dead node), and its bytes are copied both ways untouched (TLS ends at
/// the node).
final class TestBalancer: Sendable {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private let backends: NIOLockedValueBox<[Int]>
    private let next = NIOLockedValueBox(0)
    private let listener = NIOLockedValueBox<(any Channel)?>(nil)

    init(backends: [Int]) {
        self.backends = NIOLockedValueBox(backends)
    }

    var port: Int { self.listener.withLockedValue { $0?.localAddress?.port ?? 0 } }

    /// Listens on `port` (0: a free one).
    func start(port: Int = 0) async throws {
        let bootstrap = ServerBootstrap(group: self.group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.autoRead, value: false)
            .childChannelInitializer { inbound in
                self.connect(inbound, attempt: 0).map { outbound in
                    let (a, b) = Glue.pair()
                    try? inbound.pipeline.syncOperations.addHandler(a)
                    try? outbound.pipeline.syncOperations.addHandler(b)
                    _ = inbound.setOption(.autoRead, value: true)
                    _ = outbound.setOption(.autoRead, value: true)
                }.flatMapErrorThrowing { error in
                    inbound.close(promise: nil)
                    throw error
                }
            }
        let channel = try await bootstrap.bind(host: "127.0.0.1", port: port).get()
        self.listener.withLockedValue { $0 = channel }
    }

    private func connect(_ inbound: any Channel, attempt: Int) -> EventLoopFuture<any Channel> {
        let backends = self.backends.withLockedValue { $0 }
        guard attempt < backends.count else { return inbound.eventLoop.makeFailedFuture(ChannelError.connectTimeout(.seconds(1))) }
        let index = self.next.withLockedValue { value in
            defer { value += 1 }
            return value % backends.count
        }
        return ClientBootstrap(group: inbound.eventLoop)
            .channelOption(.autoRead, value: false)
            .connectTimeout(.seconds(1))
            .connect(host: "127.0.0.1", port: backends[index])
            .flatMapError { _ in self.connect(inbound, attempt: attempt + 1) }
    }

    func stop() async {
        _ = try? await self.listener.withLockedValue({ $0 })?.close()
        try? await self.group.shutdownGracefully()
    }
}

/// Copies one channel's bytes to its partner, reading only as fast as the partner writes.
private final class Glue: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var partner: Glue?
    private var context: ChannelHandlerContext?
    private var pendingRead = false

    static func pair() -> (Glue, Glue) {
        let (a, b) = (Glue(), Glue())
        a.partner = b
        b.partner = a
        return (a, b)
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        self.partner = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.partner?.write(self.unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.partner?.flush()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.partner?.close()
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { self.partner?.resume() }
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        if self.partner?.isWritable ?? true {
            context.read()
        } else {
            self.pendingRead = true
        }
    }

    private var isWritable: Bool { self.context?.channel.isWritable ?? false }

    private func write(_ buffer: ByteBuffer) {
        self.context?.write(self.wrapOutboundOut(buffer), promise: nil)
    }

    private func flush() { self.context?.flush() }

    private func close() { self.context?.close(promise: nil) }

    private func resume() {
        guard self.pendingRead, let context = self.context else { return }
        self.pendingRead = false
        context.read()
    }
}
