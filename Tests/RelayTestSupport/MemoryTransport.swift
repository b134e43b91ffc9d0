public import RelayWire
import Synchronization

/// One end of an in-memory connection (``pair(maximumPayloadLength:)``): what one end
/// sends, the other receives, in order, with no relay, TLS or socket in between. Closing
/// either end ends both directions, as a relay closing a paired session does.
///
/// `@unchecked Sendable` so that a test can hand each end to its own task; each end is
/// then read by that task alone, as ``FrameTransport`` asks.
public final class MemoryTransport: FrameTransport, @unchecked Sendable {
    public struct Sender: FrameSender {
        fileprivate let outbound: AsyncStream<Frame>.Continuation
        fileprivate let link: Link

        public func send(frames: [Frame]) async throws {
            for frame in frames {
                guard case .enqueued = self.outbound.yield(frame) else { throw MemoryTransportClosed() }
            }
        }

        public func close() { self.link.close() }
    }

    /// Both directions, so that a close from either end finishes both.
    fileprivate final class Link: Sendable {
        let directions: [AsyncStream<Frame>.Continuation]
        init(_ directions: [AsyncStream<Frame>.Continuation]) { self.directions = directions }
        func close() { for direction in self.directions { direction.finish() } }
    }

    public let maximumPayloadLength: Int
    public let sender: Sender
    private var inbound: AsyncStream<Frame>.AsyncIterator

    private init(maximumPayloadLength: Int, inbound: AsyncStream<Frame>, sender: Sender) {
        self.maximumPayloadLength = maximumPayloadLength
        self.inbound = inbound.makeAsyncIterator()
        self.sender = sender
    }

    /// Two connected ends: `a` sends to `b` and `b` to `a`.
    public static func pair(maximumPayloadLength: Int = Frame.defaultMaximumPayloadLength) -> (a: MemoryTransport, b: MemoryTransport) {
        let (toB, intoB) = AsyncStream.makeStream(of: Frame.self)
        let (toA, intoA) = AsyncStream.makeStream(of: Frame.self)
        let link = Link([intoA, intoB])
        let a = MemoryTransport(maximumPayloadLength: maximumPayloadLength, inbound: toA, sender: Sender(outbound: intoB, link: link))
        let b = MemoryTransport(maximumPayloadLength: maximumPayloadLength, inbound: toB, sender: Sender(outbound: intoA, link: link))
        return (a, b)
    }

    public func receiveFrame() async throws -> Frame? {
        await self.inbound.next()
    }

    /// The next frame decoded, for a test playing one side by hand.
    public func receiveMessage() async throws -> RelayMessage? {
        try await self.receiveFrame().map { try RelayMessage($0) }
    }
}

public struct MemoryTransportClosed: Error, CustomStringConvertible {
    public var description: String { "the in-memory connection is closed" }
}
