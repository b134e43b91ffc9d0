/// A connection that carries RelayWire frames between an agent and its peer: what a
/// paired session needs from the connection, and nothing more (no TLS, no handshake).
///
/// RelayClient's `RelayConnection` is one (TLS to a relay); tests pair two in memory. The
/// screen sessions are written against this protocol, so they run on either.
///
/// A transport is read from one task: ``receiveFrame()`` is not reentrant. Sending goes
/// through ``sender``, which any task may hold.
public protocol FrameTransport: AnyObject {
    associatedtype Sender: FrameSender

    /// The largest payload the far end accepts (a relay's HelloAck limit, PROTOCOL.md
    /// §5.1.2): a sender splits what is larger (a TileUpdate into parts, §7.6).
    var maximumPayloadLength: Int { get }

    /// A Sendable handle for sending, from this task or another.
    var sender: Sender { get }

    /// The next frame, or nil when the connection ended in order. Throws when it failed.
    /// A transport may consume its own traffic here (a relay connection answers Pings and
    /// swallows the Pongs to its keepalive, PROTOCOL.md §8.4).
    func receiveFrame() async throws -> Frame?
}

/// The sending half of a ``FrameTransport``.
public protocol FrameSender: Sendable {
    /// Sends `frames` in order, with one flush; waits while the transport applies
    /// backpressure. Throws when the connection is closed or failed: the transport's
    /// ``FrameTransport/receiveFrame()`` then reports how it ended, so a session may leave
    /// that to its reading side.
    func send(frames: [Frame]) async throws

    /// Closes the connection now, without a Bye (send one first to end politely). The
    /// reading side then sees the connection end.
    func close()
}

extension FrameSender {
    /// Sends one message.
    public func send(_ message: RelayMessage) async throws {
        try await self.send(frames: [try Frame(message)])
    }
}
