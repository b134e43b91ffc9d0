import NIOCore

/// A relay node asks another node of its cluster to pair one of the asking node's agents
/// with an agent connected to the other node, node → node on the cluster port only
/// (PROTOCOL.md §5.1.12). The connection's Hello is the represented agent's own (its role,
/// capabilities and software), and from Paired on the connection carries that agent's
/// peer frames: to the other node it is that agent. The cluster port's TLS proved that the
/// caller holds the cluster key; what NodeAuth says of the agent is the calling node's word.
public struct NodeAuth: Sendable, Hashable {
    public enum Request: Sendable, Hashable {
        /// The calling node holds an engineer's viewer that asks for the enrolled host
        /// `hostID` of `companyID`, registered with the called node (Hello role: viewer).
        case connect(hostID: String, companyID: String, engineer: String, organization: String, inBrowser: Bool)
        /// The calling node holds a host that presented `code`, which the called node
        /// issued to one of its viewers; `hostName` is the name the viewer is shown
        /// (built by the calling node, PROTOCOL.md §5.1.3) (Hello role: host).
        case redeem(code: SupportCode, hostName: String)
    }

    /// The calling node's `node_name`.
    public var node: String
    /// The represented agent's address as the calling node saw it (`203.0.113.5:51234`),
    /// for the called node's usage history and logs.
    public var agentAddress: String
    public var request: Request

    public init(node: String, agentAddress: String, request: Request) {
        self.node = node
        self.agentAddress = agentAddress
        self.request = request
    }
}

extension NodeAuth {
    private static let connectRequest: UInt8 = 1
    private static let redeemRequest: UInt8 = 2
    private static let inBrowserFlag: UInt8 = 1 << 0

    init(payload buffer: inout ByteBuffer) throws(WireError) {
        let request: UInt8 = try buffer.readWireInteger("NodeAuth.request")
        self.node = try buffer.readWireString("NodeAuth.node")
        self.agentAddress = try buffer.readWireString("NodeAuth.agentAddress")
        switch request {
        case Self.connectRequest:
            let hostID = try buffer.readWireString("NodeAuth.hostID")
            let companyID = try buffer.readWireString("NodeAuth.companyID")
            let engineer = try buffer.readWireString("NodeAuth.engineer")
            let organization = try buffer.readWireString("NodeAuth.organization")
            let flags: UInt8 = try buffer.readWireInteger("NodeAuth.flags")
            guard flags & ~Self.inBrowserFlag == 0 else {
                throw WireError(.invalidField, "NodeAuth.flags: \(flags) sets bits other than bit 0 (the browser viewer), which must be 0")
            }
            self.request = .connect(
                hostID: hostID, companyID: companyID, engineer: engineer, organization: organization, inBrowser: flags & Self.inBrowserFlag != 0)
        case Self.redeemRequest:
            let code = try SupportCode(asciiDigits: try buffer.readWireBytes(count: 6, "NodeAuth.code"))
            self.request = .redeem(code: code, hostName: try buffer.readWireString("NodeAuth.hostName"))
        default:
            throw WireError(.invalidField, "NodeAuth.request: \(request) is not 1 (connect to a host) or 2 (redeem a support code)")
        }
    }

    func encode(into buffer: inout ByteBuffer) throws(WireError) {
        switch self.request {
        case .connect: buffer.writeInteger(Self.connectRequest)
        case .redeem: buffer.writeInteger(Self.redeemRequest)
        }
        try buffer.writeWireString(self.node, "NodeAuth.node")
        try buffer.writeWireString(self.agentAddress, "NodeAuth.agentAddress")
        switch self.request {
        case .connect(let hostID, let companyID, let engineer, let organization, let inBrowser):
            try buffer.writeWireString(hostID, "NodeAuth.hostID")
            try buffer.writeWireString(companyID, "NodeAuth.companyID")
            try buffer.writeWireString(engineer, "NodeAuth.engineer")
            try buffer.writeWireString(organization, "NodeAuth.organization")
            buffer.writeInteger(inBrowser ? Self.inBrowserFlag : 0)
        case .redeem(let code, let hostName):
            buffer.writeBytes(code.asciiDigits)
            try buffer.writeWireString(hostName, "NodeAuth.hostName")
        }
    }
}
