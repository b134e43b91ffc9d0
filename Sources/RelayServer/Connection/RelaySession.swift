import Foundation
import RelayWire
import Synchronization

/// A paired host and viewer. Shared by their two connection handlers, which may run on
/// different event loops: counters are atomics, and ``end(reason:)`` picks one winner.
final class RelaySession: Sendable {
    let id: SessionID
    let mode: PairingMode
    let companyID: String
    let engineerLogin: String
    let hostID: String?
    let hostName: String
    /// The viewer is the browser viewer (usage history: `viewer_client`).
    let viewerInBrowser: Bool
    let startedAt: Date
    let host: ConnectionLink
    let viewer: ConnectionLink
    /// Whether this node records the session in the usage history: not when one side is
    /// a node link this node dialled (the other node records it, under the same id).
    let recorded: Bool

    let bytesToViewer = Atomic<UInt64>(0)
    let bytesToHost = Atomic<UInt64>(0)
    let framesToViewer = Atomic<UInt64>(0)
    let framesToHost = Atomic<UInt64>(0)
    /// Bytes forwarded towards each side and not yet written to its socket: the relay's
    /// buffer for that direction, which backpressure keeps under the high-water mark.
    let inFlightToViewer = Atomic<Int>(0)
    let inFlightToHost = Atomic<Int>(0)

    func inFlight(to role: Role) -> Int {
        switch role {
        case .viewer: self.inFlightToViewer.load(ordering: .acquiring)
        case .host: self.inFlightToHost.load(ordering: .acquiring)
        }
    }

    /// Adds forwarded bytes; returns the new total for that direction.
    func addInFlight(_ bytes: Int, to role: Role) -> Int {
        switch role {
        case .viewer: self.inFlightToViewer.add(bytes, ordering: .acquiringAndReleasing).newValue
        case .host: self.inFlightToHost.add(bytes, ordering: .acquiringAndReleasing).newValue
        }
    }

    /// Removes written bytes; returns the new total for that direction.
    func removeInFlight(_ bytes: Int, to role: Role) -> Int {
        switch role {
        case .viewer: self.inFlightToViewer.subtract(bytes, ordering: .acquiringAndReleasing).newValue
        case .host: self.inFlightToHost.subtract(bytes, ordering: .acquiringAndReleasing).newValue
        }
    }

    private let endReason = Mutex<ByeReason?>(nil)

    init(
        id: SessionID? = nil, mode: PairingMode, companyID: String, engineerLogin: String, hostID: String?, hostName: String, host: ConnectionLink,
        viewer: ConnectionLink, viewerInBrowser: Bool = false, startedAt: Date, recorded: Bool = true
    ) {
        var generator = SystemRandomNumberGenerator()
        self.id = id ?? SessionID.random(using: &generator)
        self.recorded = recorded
        self.mode = mode
        self.companyID = companyID
        self.engineerLogin = engineerLogin
        self.hostID = hostID
        self.hostName = hostName
        self.viewerInBrowser = viewerInBrowser
        self.startedAt = startedAt
        self.host = host
        self.viewer = viewer
    }

    /// Marks the session ended; true for the first caller only, who then tells the other side.
    func end(reason: ByeReason) -> Bool {
        self.endReason.withLock { current in
            guard current == nil else { return false }
            current = reason
            return true
        }
    }

    var reason: ByeReason? { self.endReason.withLock { $0 } }

    func peer(of link: ConnectionLink) -> ConnectionLink {
        link === self.host ? self.viewer : self.host
    }

    /// The Paired message for `link`'s side: who the other side is (PROTOCOL.md §5.1.7).
    func paired(for link: ConnectionLink) -> Paired {
        let peerParty = self.peer(of: link).party
        // The host learns the engineer's company from the relay's records; an enrolled
        // host belongs to the engineer's own company, which the viewer is told.
        var organization = peerParty?.organization ?? ""
        if organization.isEmpty, self.mode == .unattended, link === self.viewer {
            organization = link.party?.organization ?? ""
        }
        return Paired(
            sessionID: self.id, mode: self.mode, peerCapabilities: peerParty?.capabilities ?? [],
            peerName: peerParty?.name ?? "", peerSoftware: peerParty?.software ?? "", peerOrganization: organization
        )
    }

    /// Counts what `role` sent towards the other side, in the usage record and the relay's metrics.
    func count(bytes: UInt64, frames: UInt64, from role: Role, metrics: RelayMetrics) {
        switch role {
        case .host:
            self.bytesToViewer.add(bytes, ordering: .relaxed)
            self.framesToViewer.add(frames, ordering: .releasing)
            metrics.bytesToViewer.increment(by: Int64(bytes))
            metrics.framesToViewer.increment(by: Int64(frames))
        case .viewer:
            self.bytesToHost.add(bytes, ordering: .relaxed)
            self.framesToHost.add(frames, ordering: .releasing)
            metrics.bytesToHost.increment(by: Int64(bytes))
            metrics.framesToHost.increment(by: Int64(frames))
        }
    }
}
