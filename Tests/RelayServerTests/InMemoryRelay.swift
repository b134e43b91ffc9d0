import Foundation
import Logging
import NIOCore
import NIOEmbedded
import NIOPosix
import RelayStore
import RelayTestSupport
import RelayWire
import Synchronization

@testable import RelayServer

/// The wall-clock date the in-memory relay writes into its records; a test sets it.
final class TestDate: Sendable {
    private let date = Mutex(Date(timeIntervalSince1970: 1_772_355_600))  // 2026-03-01 09:00 UTC
    var now: Date { self.date.withLock { $0 } }
    func set(_ date: Date) { self.date.withLock { $0 = date } }
}

/// A relay without sockets or TLS (issue 11 item 3): the real ``Relay``, a real SQLite
/// store and the real ``RelayConnectionHandler``, each agent's connection a
/// `NIOAsyncTestingChannel` on one `NIOAsyncTestingEventLoop`, whose clock moves only when
/// the test says (`advance(by:)`). Deadlines, ordering, backpressure and teardown are
/// tested here without sleeping; TestRelay keeps a few tests over real TLS.
final class InMemoryRelay: Sendable {
    let relay: Relay
    let loop: NIOAsyncTestingEventLoop
    let store: SQLStore
    let acme: TestRelay.Company
    /// The date in the relay's records (usage history, access log).
    let date: TestDate
    private let threadPool: NIOThreadPool
    private let dataDirectory: String

    static func start(_ configure: (inout RelayConfiguration) -> Void = { _ in }) async throws -> InMemoryRelay {
        let dataDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("relay-memory-\(UUID().uuidString)").path
        let store = try SQLStore(dataDirectory: dataDirectory)
        var configuration = RelayConfiguration()
        configuration.dataDirectory = dataDirectory
        configuration.nodeName = "memory-node"
        configure(&configuration)
        let (company, adminToken) = try store.addCompany(name: "ACME 코리아")
        let (engineer, token) = try store.addEngineer(companyID: company.id, login: "kim.minji")
        let (host, secret) = try store.enrollHost(companyID: company.id, name: "회계팀 PC-03")
        let acme = TestRelay.Company(
            id: company.id, engineerToken: token, engineerLogin: engineer.login, hostID: host.id, hostSecret: secret, hostName: host.name,
            adminToken: adminToken
        )
        let loop = NIOAsyncTestingEventLoop()
        // Credentials are checked on the pool, as in the relay; the answer comes back to
        // the testing loop, which runs it at once.
        let threadPool = NIOThreadPool(numberOfThreads: 1)
        threadPool.start()
        let backgroundPool = NIOThreadPool(numberOfThreads: 1)
        backgroundPool.start()
        var logger = Logger(label: "memory-relay")
        logger.logLevel = .critical
        let date = TestDate()
        let relay = Relay(
            configuration: configuration, store: store, eventLoopGroup: loop, threadPool: threadPool, backgroundPool: backgroundPool, metrics: RelayMetrics(),
            logger: logger,
            now: { date.now }
        )
        return InMemoryRelay(relay: relay, loop: loop, store: store, acme: acme, date: date, threadPool: threadPool, dataDirectory: dataDirectory)
    }

    private init(
        relay: Relay, loop: NIOAsyncTestingEventLoop, store: SQLStore, acme: TestRelay.Company, date: TestDate, threadPool: NIOThreadPool,
        dataDirectory: String
    ) {
        self.relay = relay
        self.date = date
        self.loop = loop
        self.store = store
        self.acme = acme
        self.threadPool = threadPool
        self.dataDirectory = dataDirectory
    }

    /// Runs `body` with a fresh relay and always stops it.
    static func with<T: Sendable>(_ configure: (inout RelayConfiguration) -> Void = { _ in }, _ body: (InMemoryRelay) async throws -> T) async throws -> T {
        try await withStopping(await InMemoryRelay.start(configure), stop: { await $0.stop() }, body)
    }

    func stop() async {
        try? await self.threadPool.shutdownGracefully()
        try? await self.relay.backgroundPool.shutdownGracefully()
        await self.loop.shutdownGracefully()
        try? FileManager.default.removeItem(atPath: self.dataDirectory)
    }

    /// A new connection from `address` (an IPv4 or IPv6 address), as the listener would
    /// hand it to the relay after TLS.
    func connect(from address: String = "192.0.2.7", port: Int = 40_000) async throws -> InMemoryAgent {
        let relay = self.relay
        let gate = WriteGate()
        let reads = ReadCounter()
        let channel = try await NIOAsyncTestingChannel(loop: self.loop) { channel in
            try channel.pipeline.syncOperations.addHandlers([reads, gate] + RelayConnectionHandler.core(environment: relay))
        }
        let remote = try SocketAddress(ipAddress: address, port: port)
        channel.remoteAddress = remote
        try await channel.connect(to: remote).get()
        return InMemoryAgent(channel: channel, loop: self.loop, gate: gate, reads: reads)
    }

    /// Moves the relay's clock on, running every timer that falls due.
    func advance(by amount: TimeAmount) async {
        await self.loop.advanceTime(by: amount)
    }

    /// The enrolled host of ACME, authenticated and registered, and ACME's engineer
    /// paired with it (PROTOCOL.md §8.3).
    func pairUnattended() async throws -> (host: InMemoryAgent, viewer: InMemoryAgent) {
        let host = try await self.connect(from: "192.0.2.10")
        try await host.send(.hello(Hello(role: .host, capabilities: .all, software: "memory-host")))
        guard case .helloAck = try await host.nextMessage() else { throw TestFailure("host: expected HelloAck") }
        try await host.send(.hostAuth(.enrolled(hostID: self.acme.hostID, secret: self.acme.hostSecret)))
        guard case .hostRegistered = try await host.nextMessage() else { throw TestFailure("host: expected HostRegistered") }
        let viewer = try await self.connect(from: "198.51.100.20")
        try await viewer.send(.hello(Hello(role: .viewer, capabilities: .all, software: "memory-viewer")))
        guard case .helloAck = try await viewer.nextMessage() else { throw TestFailure("viewer: expected HelloAck") }
        try await viewer.send(.viewerAuth(ViewerAuth(token: self.acme.engineerToken, request: .connect(hostID: self.acme.hostID))))
        guard case .paired = try await viewer.nextMessage() else { throw TestFailure("viewer: expected Paired") }
        guard case .paired = try await host.nextMessage() else { throw TestFailure("host: expected Paired") }
        return (host, viewer)
    }
}

/// One agent's end of an in-memory connection: what it writes goes in as one read, and
/// what the relay writes is parsed into frames byte by byte.
final class InMemoryAgent: @unchecked Sendable {
    let channel: NIOAsyncTestingChannel
    let loop: NIOAsyncTestingEventLoop
    /// Holds the relay's writes to this agent while closed: a receiver that does not read.
    let gate: WriteGate
    /// Counts the reads the relay asks of this connection's socket.
    let reads: ReadCounter
    private var received = ByteBuffer()

    init(channel: NIOAsyncTestingChannel, loop: NIOAsyncTestingEventLoop, gate: WriteGate, reads: ReadCounter) {
        self.channel = channel
        self.loop = loop
        self.gate = gate
        self.reads = reads
    }

    /// Bytes from the agent, arriving as one read.
    func write(_ bytes: ByteBuffer) async throws {
        try await self.channel.writeInbound(bytes)
    }

    func send(_ message: RelayMessage) async throws {
        try await self.write(try Frame(message).bytes)
    }

    /// The next whole frame the relay wrote, waiting for it if need be.
    /// The wait cannot be cancelled by itself: a test's time limit cancels it by closing the
    /// connection, so a relay that never answers fails the test instead of hanging the run.
    func nextFrame() async throws -> (type: UInt8, payload: ByteBuffer) {
        let channel = self.channel
        return try await withTaskCancellationHandler {
            while true {
                if let frame = self.takeFrame() { return frame }
                var chunk = try await channel.waitForOutboundWrite(as: ByteBuffer.self)
                self.received.writeBuffer(&chunk)
            }
        } onCancel: {
            channel.close(promise: nil)
        }
    }

    /// The next frame, decoded.
    func nextMessage() async throws -> RelayMessage {
        try Self.decode(try await self.nextFrame())
    }

    /// Everything the relay has written so far and not yet read, as whole frames; the
    /// bytes of an unfinished frame stay for later.
    func writtenFrames() async throws -> [(type: UInt8, payload: ByteBuffer)] {
        while var chunk = try await self.channel.readOutbound(as: ByteBuffer.self) {
            self.received.writeBuffer(&chunk)
        }
        var frames: [(type: UInt8, payload: ByteBuffer)] = []
        while let frame = self.takeFrame() { frames.append(frame) }
        return frames
    }

    /// Bytes written by the relay that do not yet make a whole frame.
    var unfinishedBytes: Int { self.received.readableBytes }

    var isOpen: Bool { self.channel.isActive }

    /// Closes the connection from the agent's side (the relay sees it go inactive).
    func close() async throws {
        try await self.channel.close()
    }

    static func decode(_ frame: (type: UInt8, payload: ByteBuffer)) throws -> RelayMessage {
        var bytes = ByteBuffer()
        bytes.writeInteger(UInt32(frame.type) << 24 | UInt32(frame.payload.readableBytes))
        bytes.writeImmutableBuffer(frame.payload)
        var decoder = FrameDecoder(maximumPayloadLength: Frame.maximumEncodablePayloadLength)
        guard let decoded = try decoder.decode(buffer: &bytes) else { throw TestFailure("incomplete frame") }
        return try RelayMessage(decoded)
    }

    private func takeFrame() -> (type: UInt8, payload: ByteBuffer)? {
        guard let header = self.received.getInteger(at: self.received.readerIndex, as: UInt32.self) else { return nil }
        let length = Int(header & 0xFF_FFFF)
        guard self.received.readableBytes >= 4 + length else { return nil }
        self.received.moveReaderIndex(forwardBy: 4)
        let payload = self.received.readSlice(length: length)!
        self.received.discardReadBytes()
        return (UInt8(header >> 24), payload)
    }
}

/// Holds outbound writes (and their promises) while closed, as a socket whose receiver
/// stopped reading would; ``open()`` lets them through. Touched only on the event loop.
final class WriteGate: ChannelOutboundHandler, @unchecked Sendable {
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var context: ChannelHandlerContext?
    private var closed = false
    private var held: [(ByteBuffer, EventLoopPromise<Void>?)] = []
    /// Bytes held now.
    private(set) var heldBytes = 0

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let bytes = self.unwrapOutboundIn(data)
        if self.closed {
            self.held.append((bytes, promise))
            self.heldBytes += bytes.readableBytes
        } else {
            context.write(data, promise: promise)
        }
    }

    func flush(context: ChannelHandlerContext) {
        if !self.closed { context.flush() }
    }

    /// From now on, writes wait here.
    func close() { self.closed = true }

    /// Lets every held write through, in order, and later ones straight away.
    func open() {
        self.closed = false
        guard let context = self.context else { return }
        let held = self.held
        self.held = []
        self.heldBytes = 0
        for (bytes, promise) in held { context.write(self.wrapOutboundOut(bytes), promise: promise) }
        context.flush()
    }
}

/// Counts `read()` calls that reach the socket end of the pipeline: the relay withholds
/// them while it applies backpressure (OPERATIONS.md §6).
final class ReadCounter: ChannelOutboundHandler, @unchecked Sendable {
    typealias OutboundIn = ByteBuffer
    private(set) var reads = 0

    func read(context: ChannelHandlerContext) {
        self.reads += 1
        context.read()
    }
}
