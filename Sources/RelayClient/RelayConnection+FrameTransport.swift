public import RelayWire

/// A relay connection is the TLS transport of a paired session: the screen sessions
/// (RelayScreen) take any ``FrameTransport`` and run on it unchanged.
extension RelayConnection: FrameTransport {}

/// Its sender sends with the connection's send window (``SendWindow``) and throws a
/// ``RelayClientError/Kind/closed`` error once the connection is gone.
extension RelaySender: FrameSender {}
