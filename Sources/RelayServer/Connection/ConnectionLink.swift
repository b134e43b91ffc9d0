import Foundation
import NIOConcurrencyHelpers
import NIOCore
import RelayWire

/// Who is on a connection, once authenticated: what its peer's Paired message shows.
struct Party: Sendable, Equatable {
    /// The engineer's login, or the host's name.
    var name: String
    var companyID: String
    /// The company's name as the relay's records have it (engineers; empty for hosts).
    var organization: String = ""
    var software: String
    var capabilities: Capabilities
    /// The enrolled host's id (unattended hosts only).
    var hostID: String?
    /// The engineer or enrolled host whose token or secret let this connection in, and
    /// that credential's digest: a removed or rotated account ends the connection.
    var credential: Credential?
    /// A viewer in a browser (signed in to the web console), not `relay-agent view`: the
    /// usage history records which (``UsageRecord/ViewerClient``).
    var inBrowser = false
    /// The browser's web session (its id's SHA-256): when it ends, so does the connection.
    var webSession: Data?
    /// The agent's address as the node it is connected to saw it, when that is another node
    /// of the cluster (this connection is a node link speaking for it, NodeAuth).
    var agentAddress: String?

    struct Credential: Sendable, Hashable {
        enum Kind: Sendable, Hashable { case engineer, host }
        var kind: Kind
        var id: String
        var digest: Data
    }
}

/// What one connection's handler is told by the relay or by its peer's handler.
enum LinkEvent: Sendable {
    /// The other side paired this connection into `session`.
    case paired(RelaySession)
    /// The other side of the session is gone.
    case peerLeft(ByeReason, String)
    /// The viewer's support code was withdrawn (expired, or replaced by its engineer's
    /// newer one): stop with this Error.
    case codeWithdrawn(ErrorCode, String)
    /// Stop with a Bye (relay shutdown, a newer registration of the same host, …).
    case bye(ByeReason, String)
    /// The bytes this side forwarded have drained below the low-water mark: read again.
    case resumeReading
    /// Peer-frame bytes from the other side (`bytes` in all), across event loops;
    /// `owedAfter` bytes of the frame they end in are still to come (0: a whole frame).
    case forward([ByteBuffer], bytes: Int, owedAfter: Int)
}

/// What a ``ConnectionLink`` reaches: an agent's connection (``RelayConnectionHandler``),
/// or a node link this node dialled, which stands for an agent on another node
/// (``NodeLinkHandler``). Called on the endpoint's event loop only.
protocol LinkEndpoint: AnyObject {
    func handle(_ event: LinkEvent)
    /// Writes the other side's peer-frame bytes (see ``ConnectionLink/forward(_:bytes:owedAfter:)``).
    func writeForwarded(_ runs: [ByteBuffer], bytes: Int, owedAfter: Int)
}

/// A Sendable handle on one relay connection: how other connections and the relay reach
/// its handler, always on the handler's own event loop.
final class ConnectionLink: Sendable {
    let channel: any Channel
    let remoteAddress: String
    private let handler: NIOLoopBound<any LinkEndpoint>
    private let partyBox = NIOLockedValueBox<Party?>(nil)

    /// Set by the connection's own handler when it authenticates, before it can be paired.
    var party: Party? {
        get { self.partyBox.withLockedValue { $0 } }
        set { self.partyBox.withLockedValue { $0 = newValue } }
    }

    /// The session on the other end of a node link this node dialled (nil: a local agent):
    /// the other node records it, under this id (``NodeLinkHandler``).
    let remoteSession: SessionID?

    init(channel: any Channel, handler: any LinkEndpoint, remoteSession: SessionID? = nil) {
        self.channel = channel
        self.remoteAddress = channel.remoteAddress.map(Self.describe) ?? "unknown"
        self.handler = NIOLoopBound(handler, eventLoop: channel.eventLoop)
        self.remoteSession = remoteSession
    }

    /// The agent's address for the usage history and logs: as the node it is connected to
    /// saw it (``Party/agentAddress``), or this connection's.
    var agentAddress: String { self.party?.agentAddress ?? self.remoteAddress }

    /// `192.0.2.7:51234`, `[2001:db8::5]:51234`: how logs and the access log name a source.
    static func describe(_ address: SocketAddress) -> String {
        if let ip = address.ipAddress, let port = address.port {
            return address.protocol == .inet6 ? "[\(ip)]:\(port)" : "\(ip):\(port)"
        }
        return "\(address)"
    }

    /// Delivers `event` on this connection's event loop, after whatever it is doing now.
    func deliver(_ event: LinkEvent) {
        let handler = self.handler
        self.channel.eventLoop.execute { handler.value.handle(event) }
    }

    /// Writes forwarded bytes: directly when the caller is on this connection's event
    /// loop (the fast path NOTES.md measured), otherwise as one hop per read cycle.
    func forward(_ runs: [ByteBuffer], bytes: Int, owedAfter: Int) {
        if self.channel.eventLoop.inEventLoop {
            self.handler.value.writeForwarded(runs, bytes: bytes, owedAfter: owedAfter)
        } else {
            self.deliver(.forward(runs, bytes: bytes, owedAfter: owedAfter))
        }
    }
}
