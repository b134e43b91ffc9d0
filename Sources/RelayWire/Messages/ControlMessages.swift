import NIOCore

// Relay-control messages (PROTOCOL.md §5.1): exchanged between an agent and the relay,
// read and answered by the relay, never forwarded.

/// First frame on every connection, agent → relay.
public struct Hello: Sendable, Hashable {
    public var version: UInt16
    public var role: Role
    public var capabilities: Capabilities
    /// The agent's name and version, for logs (`relay-agent/0.1.0`).
    public var software: String

    public init(version: UInt16 = RelayProtocol.version, role: Role, capabilities: Capabilities, software: String) {
        self.version = version
        self.role = role
        self.capabilities = capabilities
        self.software = software
    }
}

/// The relay's answer to a Hello it accepts.
public struct HelloAck: Sendable, Hashable {
    public var version: UInt16
    /// Capabilities the relay will let through for this connection.
    public var capabilities: Capabilities
    /// The largest payload the relay accepts from this connection; senders split above it.
    public var maximumPayloadLength: UInt32
    /// The relay node's name, for logs and the usage history.
    public var relayNode: String

    public init(version: UInt16 = RelayProtocol.version, capabilities: Capabilities, maximumPayloadLength: UInt32, relayNode: String) {
        self.version = version
        self.capabilities = capabilities
        self.maximumPayloadLength = maximumPayloadLength
        self.relayNode = relayNode
    }
}

/// How a host proves it may be reached, host → relay after HelloAck.
public enum HostAuth: Sendable, Hashable {
    /// Attended: the support code the customer was given.
    case supportCode(SupportCode)
    /// Attended, with the name of the customer's machine, which the engineer sees
    /// (method 3; the reference host sends this one).
    case namedSupportCode(SupportCode, machineName: String)
    /// Unattended, legacy: the enrolled host's id and secret. A replayable secret: hosts
    /// enrolled before key login use it until an admin sets their key.
    case enrolled(hostID: String, secret: String)
    /// Unattended: the enrolled host's id, proved by the host's key, which the connection
    /// presented as its TLS client certificate (method 4, PROTOCOL.md §1.2).
    case key(hostID: String)
}

/// Who the engineer is and what they want, viewer → relay after HelloAck.
public struct ViewerAuth: Sendable, Hashable {
    public enum Request: Sendable, Hashable {
        /// Issue a support code and pair with the host that presents it.
        case newSupportCode
        /// Pair with this enrolled host of the engineer's company.
        case connect(hostID: String)
    }

    /// Empty: the engineer is the owner of the key the connection presented as its TLS
    /// client certificate (PROTOCOL.md §1.2). Otherwise, legacy: an engineer token from
    /// before key login, a replayable secret.
    public var token: String
    public var request: Request

    public init(token: String, request: Request) {
        self.token = token
        self.request = request
    }

    /// The engineer proves who they are with their key (the connection's client certificate).
    public static func key(_ request: Request) -> ViewerAuth {
        ViewerAuth(token: "", request: request)
    }

    /// Whether this is a key login (no token).
    public var usesKey: Bool { self.token.isEmpty }
}

/// A support code for the engineer to give the customer, relay → viewer.
public struct CodeIssued: Sendable, Hashable {
    public struct Flags: OptionSet, Sendable, Hashable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        /// The engineer's company requires them to type the security code the customer reads
        /// out before their input is sent (PROTOCOL.md §5.3.7).
        public static let confirmSecurityCode = Flags(rawValue: 1 << 0)
    }

    public var code: SupportCode
    /// Seconds until the code expires unused.
    public var validForSeconds: UInt32
    /// Unknown bits are carried as they are and ignored, like capabilities (§3).
    public var flags: Flags

    public init(code: SupportCode, validForSeconds: UInt32, flags: Flags = []) {
        self.code = code
        self.validForSeconds = validForSeconds
        self.flags = flags
    }
}

/// An enrolled host's registration was accepted and it now waits for a viewer, relay → host.
public struct HostRegistered: Sendable, Hashable {
    /// The host's name as enrolled.
    public var hostName: String

    public init(hostName: String) { self.hostName = hostName }
}

/// The session is paired; peer messages flow from the next frame on, relay → both sides.
public struct Paired: Sendable, Hashable {
    public var sessionID: SessionID
    public var mode: PairingMode
    /// Capabilities of the other side (as it announced them in its Hello).
    public var peerCapabilities: Capabilities
    /// The other side's name: the engineer's login for a host, the host's name for a viewer.
    public var peerName: String
    /// The other side's software, from its Hello.
    public var peerSoftware: String
    /// The other side's company as the relay knows it: for the host, the engineer's company
    /// (the relay verified it with the engineer's token); for the viewer, the host's
    /// company. May be empty (PROTOCOL.md §5.1.7).
    public var peerOrganization: String

    public init(sessionID: SessionID, mode: PairingMode, peerCapabilities: Capabilities, peerName: String, peerSoftware: String, peerOrganization: String = "")
    {
        self.sessionID = sessionID
        self.mode = mode
        self.peerCapabilities = peerCapabilities
        self.peerName = peerName
        self.peerSoftware = peerSoftware
        self.peerOrganization = peerOrganization
    }
}

/// Keepalive; the receiver answers with a Pong carrying the same nonce.
public struct Ping: Sendable, Hashable {
    public var nonce: UInt64
    public init(nonce: UInt64) { self.nonce = nonce }
}

/// The answer to a Ping.
public struct Pong: Sendable, Hashable {
    public var nonce: UInt64
    public init(nonce: UInt64) { self.nonce = nonce }
}

/// The session or connection is ending; the sender closes after it.
public struct Bye: Sendable, Hashable {
    public var reason: ByeReason
    /// A sentence for a person.
    public var text: String

    public init(reason: ByeReason, text: String) {
        self.reason = reason
        self.text = text
    }
}

/// A request failed; the sender closes the connection after it.
public struct ErrorMessage: Sendable, Hashable {
    public var code: ErrorCode
    /// What happened and what to do, for a person.
    public var message: String

    public init(code: ErrorCode, message: String) {
        self.code = code
        self.message = message
    }
}

// MARK: - Wire form

extension Hello {
    init(payload buffer: inout ByteBuffer) throws(WireError) {
        self.version = try buffer.readWireInteger("Hello.version")
        self.role = try Role.read(from: &buffer, "Hello.role")
        self.capabilities = Capabilities(rawValue: try buffer.readWireInteger("Hello.capabilities"))
        self.software = try buffer.readWireString("Hello.software")
    }

    func encode(into buffer: inout ByteBuffer) throws(WireError) {
        buffer.writeMultipleIntegers(self.version, self.role.rawValue, self.capabilities.rawValue)
        try buffer.writeWireString(self.software, "Hello.software")
    }
}

extension HelloAck {
    init(payload buffer: inout ByteBuffer) throws(WireError) {
        self.version = try buffer.readWireInteger("HelloAck.version")
        self.capabilities = Capabilities(rawValue: try buffer.readWireInteger("HelloAck.capabilities"))
        self.maximumPayloadLength = try buffer.readWireInteger("HelloAck.maximumPayloadLength")
        self.relayNode = try buffer.readWireString("HelloAck.relayNode")
    }

    func encode(into buffer: inout ByteBuffer) throws(WireError) {
        buffer.writeMultipleIntegers(self.version, self.capabilities.rawValue, self.maximumPayloadLength)
        try buffer.writeWireString(self.relayNode, "HelloAck.relayNode")
    }
}

extension HostAuth {
    private static let supportCodeMethod: UInt8 = 1
    private static let enrolledMethod: UInt8 = 2
    private static let namedSupportCodeMethod: UInt8 = 3
    private static let keyMethod: UInt8 = 4

    /// The support code, for both attended methods.
    public var supportCode: SupportCode? {
        switch self {
        case .supportCode(let code), .namedSupportCode(let code, _): code
        case .enrolled, .key: nil
        }
    }

    init(payload buffer: inout ByteBuffer) throws(WireError) {
        let method: UInt8 = try buffer.readWireInteger("HostAuth.method")
        switch method {
        case Self.supportCodeMethod:
            self = .supportCode(try SupportCode(asciiDigits: try buffer.readWireBytes(count: 6, "HostAuth.code")))
        case Self.enrolledMethod:
            let hostID = try buffer.readWireString("HostAuth.hostID")
            let secret = try buffer.readWireString("HostAuth.secret")
            self = .enrolled(hostID: hostID, secret: secret)
        case Self.namedSupportCodeMethod:
            let code = try SupportCode(asciiDigits: try buffer.readWireBytes(count: 6, "HostAuth.code"))
            self = .namedSupportCode(code, machineName: try buffer.readWireString("HostAuth.machineName"))
        case Self.keyMethod:
            self = .key(hostID: try buffer.readWireString("HostAuth.hostID"))
        default:
            throw WireError(
                .invalidField,
                "HostAuth.method: \(method) is not 1 (support code), 2 (enrolled host and secret), 3 (support code and machine name) or 4 (enrolled host and key)"
            )
        }
    }

    func encode(into buffer: inout ByteBuffer) throws(WireError) {
        switch self {
        case .supportCode(let code):
            buffer.writeInteger(Self.supportCodeMethod)
            buffer.writeBytes(code.asciiDigits)
        case .enrolled(let hostID, let secret):
            buffer.writeInteger(Self.enrolledMethod)
            try buffer.writeWireString(hostID, "HostAuth.hostID")
            try buffer.writeWireString(secret, "HostAuth.secret")
        case .namedSupportCode(let code, let machineName):
            buffer.writeInteger(Self.namedSupportCodeMethod)
            buffer.writeBytes(code.asciiDigits)
            try buffer.writeWireString(machineName, "HostAuth.machineName")
        case .key(let hostID):
            buffer.writeInteger(Self.keyMethod)
            try buffer.writeWireString(hostID, "HostAuth.hostID")
        }
    }
}

extension ViewerAuth {
    private static let newSupportCodeRequest: UInt8 = 1
    private static let connectRequest: UInt8 = 2

    init(payload buffer: inout ByteBuffer) throws(WireError) {
        self.token = try buffer.readWireString("ViewerAuth.token")
        let request: UInt8 = try buffer.readWireInteger("ViewerAuth.request")
        switch request {
        case Self.newSupportCodeRequest:
            self.request = .newSupportCode
        case Self.connectRequest:
            self.request = .connect(hostID: try buffer.readWireString("ViewerAuth.hostID"))
        default:
            throw WireError(.invalidField, "ViewerAuth.request: \(request) is not 1 (new support code) or 2 (connect to host)")
        }
    }

    func encode(into buffer: inout ByteBuffer) throws(WireError) {
        try buffer.writeWireString(self.token, "ViewerAuth.token")
        switch self.request {
        case .newSupportCode:
            buffer.writeInteger(Self.newSupportCodeRequest)
        case .connect(let hostID):
            buffer.writeInteger(Self.connectRequest)
            try buffer.writeWireString(hostID, "ViewerAuth.hostID")
        }
    }
}

extension CodeIssued {
    init(payload buffer: inout ByteBuffer) throws(WireError) {
        self.code = try SupportCode(asciiDigits: try buffer.readWireBytes(count: 6, "CodeIssued.code"))
        self.validForSeconds = try buffer.readWireInteger("CodeIssued.validForSeconds")
        self.flags = Flags(rawValue: try buffer.readWireInteger("CodeIssued.flags"))
    }

    func encode(into buffer: inout ByteBuffer) {
        buffer.writeBytes(self.code.asciiDigits)
        buffer.writeMultipleIntegers(self.validForSeconds, self.flags.rawValue)
    }
}

extension HostRegistered {
    init(payload buffer: inout ByteBuffer) throws(WireError) {
        self.hostName = try buffer.readWireString("HostRegistered.hostName")
    }

    func encode(into buffer: inout ByteBuffer) throws(WireError) {
        try buffer.writeWireString(self.hostName, "HostRegistered.hostName")
    }
}

extension Paired {
    init(payload buffer: inout ByteBuffer) throws(WireError) {
        let high: UInt64 = try buffer.readWireInteger("Paired.sessionID")
        let low: UInt64 = try buffer.readWireInteger("Paired.sessionID")
        self.sessionID = SessionID(high: high, low: low)
        self.mode = try PairingMode.read(from: &buffer, "Paired.mode")
        self.peerCapabilities = Capabilities(rawValue: try buffer.readWireInteger("Paired.peerCapabilities"))
        self.peerName = try buffer.readWireString("Paired.peerName")
        self.peerSoftware = try buffer.readWireString("Paired.peerSoftware")
        self.peerOrganization = try buffer.readWireString("Paired.peerOrganization")
    }

    func encode(into buffer: inout ByteBuffer) throws(WireError) {
        buffer.writeMultipleIntegers(self.sessionID.high, self.sessionID.low, self.mode.rawValue, self.peerCapabilities.rawValue)
        try buffer.writeWireString(self.peerName, "Paired.peerName")
        try buffer.writeWireString(self.peerSoftware, "Paired.peerSoftware")
        try buffer.writeWireString(self.peerOrganization, "Paired.peerOrganization")
    }
}

extension Ping {
    init(payload buffer: inout ByteBuffer) throws(WireError) {
        self.nonce = try buffer.readWireInteger("Ping.nonce")
    }

    func encode(into buffer: inout ByteBuffer) { buffer.writeInteger(self.nonce) }
}

extension Pong {
    init(payload buffer: inout ByteBuffer) throws(WireError) {
        self.nonce = try buffer.readWireInteger("Pong.nonce")
    }

    func encode(into buffer: inout ByteBuffer) { buffer.writeInteger(self.nonce) }
}

extension Bye {
    init(payload buffer: inout ByteBuffer) throws(WireError) {
        self.reason = ByeReason(rawValue: try buffer.readWireInteger("Bye.reason"))
        self.text = try buffer.readWireString("Bye.text")
    }

    func encode(into buffer: inout ByteBuffer) throws(WireError) {
        buffer.writeInteger(self.reason.rawValue)
        try buffer.writeWireString(self.text, "Bye.text")
    }
}

extension ErrorMessage {
    init(payload buffer: inout ByteBuffer) throws(WireError) {
        self.code = ErrorCode(rawValue: try buffer.readWireInteger("Error.code"))
        self.message = try buffer.readWireString("Error.message")
    }

    func encode(into buffer: inout ByteBuffer) throws(WireError) {
        buffer.writeInteger(self.code.rawValue)
        try buffer.writeWireString(self.message, "Error.message")
    }
}

extension RawRepresentable where RawValue == UInt8 {
    static func read(from buffer: inout ByteBuffer, _ field: StaticString) throws(WireError) -> Self {
        let raw: UInt8 = try buffer.readWireInteger(field)
        guard let value = Self(rawValue: raw) else {
            throw WireError(.invalidField, "\(field): \(raw) is not a defined value")
        }
        return value
    }
}
