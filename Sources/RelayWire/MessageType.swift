/// The type byte of a frame (PROTOCOL.md §4).
///
/// Types `0x01…0x3F` are relay-control messages, which the relay reads and answers.
/// Types `0x40…0x7F` are peer messages, which the relay forwards untouched between the
/// paired host and viewer. A type byte not listed here is rejected as soon as the
/// header arrives, before any payload is buffered.
public enum MessageType: UInt8, CaseIterable, Sendable, Hashable {
    // Relay control (PROTOCOL.md §5.1).
    case hello = 0x01
    case helloAck = 0x02
    case hostAuth = 0x03
    case viewerAuth = 0x04
    case codeIssued = 0x05
    case hostRegistered = 0x06
    case paired = 0x07
    case ping = 0x08
    case pong = 0x09
    case bye = 0x0A
    case error = 0x0B
    /// Node → node, on the cluster port only (PROTOCOL.md §5.1.12).
    case nodeAuth = 0x0C

    // Peer messages (PROTOCOL.md §5.2), forwarded by the relay.
    case screenInit = 0x40
    case tileUpdate = 0x41
    case updateRequest = 0x42
    case pointer = 0x43
    case key = 0x44
    case clipboard = 0x45
    case accessGranted = 0x46

    // End-to-end encryption (PROTOCOL.md §5.3): peer messages too, forwarded unread.
    case keyCommit = 0x47
    case keyShare = 0x48
    case sealed = 0x49

    /// True for the types the relay forwards between peers without parsing them.
    @inlinable
    public var isPeerMessage: Bool { self.rawValue & 0xC0 == 0x40 }

    /// The name used in PROTOCOL.md, logs and metrics.
    public var name: String {
        switch self {
        case .hello: "Hello"
        case .helloAck: "HelloAck"
        case .hostAuth: "HostAuth"
        case .viewerAuth: "ViewerAuth"
        case .codeIssued: "CodeIssued"
        case .hostRegistered: "HostRegistered"
        case .paired: "Paired"
        case .ping: "Ping"
        case .pong: "Pong"
        case .bye: "Bye"
        case .error: "Error"
        case .nodeAuth: "NodeAuth"
        case .screenInit: "ScreenInit"
        case .tileUpdate: "TileUpdate"
        case .updateRequest: "UpdateRequest"
        case .pointer: "Pointer"
        case .key: "Key"
        case .clipboard: "Clipboard"
        case .accessGranted: "AccessGranted"
        case .keyCommit: "KeyCommit"
        case .keyShare: "KeyShare"
        case .sealed: "Sealed"
        }
    }
}
