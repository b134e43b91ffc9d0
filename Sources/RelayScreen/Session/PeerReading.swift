import RelayWire

/// PROTOCOL.md §2.3 item 3, for both sessions: a peer message that does not decode may be
/// one the relay completed with zero bytes because the peer left mid-frame.
enum PeerReading {
    /// Reads on after a damaged message: the relay's `Bye` that follows is why the
    /// session ended (returned), and the relay's `Error` is thrown as the reason. nil when
    /// something else follows (or nothing): the damaged message was the peer's own error.
    static func readOnAfterDamage(_ connection: some FrameTransport) async throws -> Bye? {
        guard let next = try? await connection.receiveFrame(), let message = try? RelayMessage(next) else { return nil }
        switch message {
        case .bye(let bye): return bye
        case .error(let error): throw ScreenSessionError(relayError: error)
        default: return nil
        }
    }
}
