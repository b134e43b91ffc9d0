public import NIOCore

/// Every RelayWire message, with the one decode switch and the one encode switch.
public enum RelayMessage: Sendable, Hashable {
    case hello(Hello)
    case helloAck(HelloAck)
    case hostAuth(HostAuth)
    case viewerAuth(ViewerAuth)
    case codeIssued(CodeIssued)
    case hostRegistered(HostRegistered)
    case paired(Paired)
    case ping(Ping)
    case pong(Pong)
    case bye(Bye)
    case error(ErrorMessage)
    case nodeAuth(NodeAuth)

    case screenInit(ScreenInit)
    case tileUpdate(TileUpdate)
    case updateRequest(UpdateRequest)
    case pointer(Pointer)
    case key(Key)
    case clipboard(Clipboard)
    case accessGranted(AccessGranted)

    case keyCommit(KeyCommit)
    case keyShare(KeyShare)
    case sealed(Sealed)

    /// The frame type this message travels in.
    public var type: MessageType {
        switch self {
        case .hello: .hello
        case .helloAck: .helloAck
        case .hostAuth: .hostAuth
        case .viewerAuth: .viewerAuth
        case .codeIssued: .codeIssued
        case .hostRegistered: .hostRegistered
        case .paired: .paired
        case .ping: .ping
        case .pong: .pong
        case .bye: .bye
        case .error: .error
        case .nodeAuth: .nodeAuth
        case .screenInit: .screenInit
        case .tileUpdate: .tileUpdate
        case .updateRequest: .updateRequest
        case .pointer: .pointer
        case .key: .key
        case .clipboard: .clipboard
        case .accessGranted: .accessGranted
        case .keyCommit: .keyCommit
        case .keyShare: .keyShare
        case .sealed: .sealed
        }
    }

    /// Decodes a frame's payload. The whole payload must be used: extra bytes are an error.
    public init(_ frame: Frame) throws(WireError) {
        var payload = frame.payload
        switch frame.type {
        case .hello: self = .hello(try Hello(payload: &payload))
        case .helloAck: self = .helloAck(try HelloAck(payload: &payload))
        case .hostAuth: self = .hostAuth(try HostAuth(payload: &payload))
        case .viewerAuth: self = .viewerAuth(try ViewerAuth(payload: &payload))
        case .codeIssued: self = .codeIssued(try CodeIssued(payload: &payload))
        case .hostRegistered: self = .hostRegistered(try HostRegistered(payload: &payload))
        case .paired: self = .paired(try Paired(payload: &payload))
        case .ping: self = .ping(try Ping(payload: &payload))
        case .pong: self = .pong(try Pong(payload: &payload))
        case .bye: self = .bye(try Bye(payload: &payload))
        case .error: self = .error(try ErrorMessage(payload: &payload))
        case .nodeAuth: self = .nodeAuth(try NodeAuth(payload: &payload))
        case .screenInit: self = .screenInit(try ScreenInit(payload: &payload))
        case .tileUpdate: self = .tileUpdate(TileUpdate(payload: &payload))
        case .updateRequest: self = .updateRequest(try UpdateRequest(payload: &payload))
        case .pointer: self = .pointer(try Pointer(payload: &payload))
        case .key: self = .key(try Key(payload: &payload))
        case .clipboard: self = .clipboard(try Clipboard(payload: &payload))
        case .accessGranted: self = .accessGranted(try AccessGranted(payload: &payload))
        case .keyCommit: self = .keyCommit(try KeyCommit(payload: &payload))
        case .keyShare: self = .keyShare(try KeyShare(payload: &payload))
        case .sealed: self = .sealed(try Sealed(payload: &payload))
        }
        try payload.expectFullyRead(frame.type)
    }

    /// Writes the payload (not the header) into `buffer`.
    public func encodePayload(into buffer: inout ByteBuffer) throws(WireError) {
        switch self {
        case .hello(let message): try message.encode(into: &buffer)
        case .helloAck(let message): try message.encode(into: &buffer)
        case .hostAuth(let message): try message.encode(into: &buffer)
        case .viewerAuth(let message): try message.encode(into: &buffer)
        case .codeIssued(let message): message.encode(into: &buffer)
        case .hostRegistered(let message): try message.encode(into: &buffer)
        case .paired(let message): try message.encode(into: &buffer)
        case .ping(let message): message.encode(into: &buffer)
        case .pong(let message): message.encode(into: &buffer)
        case .bye(let message): try message.encode(into: &buffer)
        case .error(let message): try message.encode(into: &buffer)
        case .nodeAuth(let message): try message.encode(into: &buffer)
        case .screenInit(let message): try message.encode(into: &buffer)
        case .tileUpdate(let message): message.encode(into: &buffer)
        case .updateRequest(let message): message.encode(into: &buffer)
        case .pointer(let message): message.encode(into: &buffer)
        case .key(let message): message.encode(into: &buffer)
        case .clipboard(let message): message.encode(into: &buffer)
        case .accessGranted(let message): message.encode(into: &buffer)
        case .keyCommit(let message): message.encode(into: &buffer)
        case .keyShare(let message): message.encode(into: &buffer)
        case .sealed(let message): message.encode(into: &buffer)
        }
    }

    /// A capacity guess for the payload, so encoding rarely reallocates.
    var payloadSizeHint: Int {
        switch self {
        case .tileUpdate(let update): update.body.readableBytes
        case .clipboard(let clipboard): clipboard.text.utf8.count
        case .sealed(let sealed): sealed.body.readableBytes
        default: 64
        }
    }
}
