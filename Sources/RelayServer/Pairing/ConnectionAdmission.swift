import NIOCore

/// Which new connections the relay takes, so that no one source can take every slot
/// (issue 10 item 9; OPERATIONS.md "Abuse resistance"). Modelled on OpenSSH's
/// `PerSourceMaxStartups` and `MaxStartups start:rate:full`.
///
/// A connection is *unauthenticated* from accept until its credential or support code
/// is accepted. Per source (an IPv4 address or an IPv6 /64, ``SourceKey``) the relay
/// allows at most `maximumUnauthenticatedPerSource` of those and `maximumPerSource`
/// connections in all. Relay-wide, once `unauthenticatedStart` connections are
/// unauthenticated, a new one is refused with probability `unauthenticatedDropPercent`
/// %, rising linearly to 100 % at `maximumUnauthenticated`: a flood from many addresses
/// slows the relay's logins instead of filling its connection table, and established
/// sessions are never touched. The relay's total cap (`maximum_connections`) stays
/// where it is (``Relay/admit(_:)``).
///
/// The caller reports every step of an admitted connection: ``admit(_:using:)`` at
/// accept, ``authenticated(_:)`` once, when its authentication succeeds, and
/// ``closed(_:wasAuthenticated:)`` when it closes. A refused connection was never
/// counted and is not reported again.
///
/// Memory: one entry per source with an open connection, removed when its count reaches
/// zero. Pure value type; the random early drop takes an injected generator.
struct ConnectionAdmission: Sendable {
    struct Policy: Sendable, Equatable {
        /// Open connections of one source, authenticated or not. Generous: a company's
        /// office behind one NAT address may run hundreds of enrolled hosts.
        var maximumPerSource = 1000
        /// Connections of one source still before authentication (OpenSSH
        /// `PerSourceMaxStartups`).
        var maximumUnauthenticatedPerSource = 10
        /// Unauthenticated connections relay-wide at which random early drop starts
        /// (OpenSSH `MaxStartups` *start*).
        var unauthenticatedStart = 1000
        /// The drop probability at `unauthenticatedStart`, in percent (*rate*).
        var unauthenticatedDropPercent = 30
        /// Unauthenticated connections relay-wide at which every new one is refused (*full*).
        var maximumUnauthenticated = 3000
    }

    /// Why a connection was refused.
    enum Refusal: Sendable, Equatable, CustomStringConvertible {
        /// The source already has `maximumUnauthenticatedPerSource` connections logging in.
        case sourceUnauthenticatedLimit(Int)
        /// The source already has `maximumPerSource` connections.
        case sourceLimit(Int)
        /// Too many connections relay-wide are logging in (random early drop, or full).
        case unauthenticatedLimit

        /// What to tell the agent, when there is a way to (PROTOCOL.md `relay_full`).
        var description: String {
            switch self {
            case .sourceUnauthenticatedLimit(let limit):
                "your address already has \(limit) connections logging in to this relay; retry in a few seconds, or close the others"
            case .sourceLimit(let limit):
                "your address already has \(limit) connections to this relay; close some, or ask the operator to raise maximum_connections_per_source"
            case .unauthenticatedLimit:
                "the relay is busy with logins; retry in a few seconds"
            }
        }
    }

    enum Decision: Sendable, Equatable {
        case admitted
        case refused(Refusal)
    }

    private struct Counts: Sendable, Equatable {
        var open = 0
        var unauthenticated = 0
    }

    let policy: Policy
    private var counts: [SourceKey: Counts] = [:]
    /// Connections admitted and not yet closed, relay-wide.
    private(set) var open = 0
    /// Of those, the ones not yet authenticated.
    private(set) var unauthenticated = 0

    init(policy: Policy = Policy()) {
        self.policy = policy
    }

    /// Decides on a new connection from `source` and, if admitted, counts it as open and
    /// unauthenticated. `generator` decides the random early drop.
    mutating func admit<G: RandomNumberGenerator>(_ source: SourceKey, using generator: inout G) -> Decision {
        let current = self.counts[source] ?? Counts()
        if current.unauthenticated >= self.policy.maximumUnauthenticatedPerSource {
            return .refused(.sourceUnauthenticatedLimit(self.policy.maximumUnauthenticatedPerSource))
        }
        if current.open >= self.policy.maximumPerSource {
            return .refused(.sourceLimit(self.policy.maximumPerSource))
        }
        if self.dropsEarly(using: &generator) {
            return .refused(.unauthenticatedLimit)
        }
        self.counts[source] = Counts(open: current.open + 1, unauthenticated: current.unauthenticated + 1)
        self.open += 1
        self.unauthenticated += 1
        return .admitted
    }

    /// An admitted connection of `source` authenticated (a credential or a support code
    /// was accepted). Call once per connection.
    mutating func authenticated(_ source: SourceKey) {
        // Tolerate a caller's slip (a second call, an unknown source) rather than let a
        // count go negative and open a hole in the caps.
        guard var current = self.counts[source], current.unauthenticated > 0 else { return }
        current.unauthenticated -= 1
        self.counts[source] = current
        self.unauthenticated -= 1
    }

    /// An admitted connection of `source` closed; `wasAuthenticated` says whether
    /// ``authenticated(_:)`` was called for it.
    mutating func closed(_ source: SourceKey, wasAuthenticated: Bool) {
        guard var current = self.counts[source], current.open > 0 else { return }
        current.open -= 1
        self.open -= 1
        if !wasAuthenticated, current.unauthenticated > 0 {
            current.unauthenticated -= 1
            self.unauthenticated -= 1
        }
        // Only unauthenticated connections can remain if the caller slipped; never more
        // than are open.
        if current.unauthenticated > current.open {
            self.unauthenticated -= current.unauthenticated - current.open
            current.unauthenticated = current.open
        }
        self.counts[source] = current.open == 0 ? nil : current
    }

    /// Open and unauthenticated connections of `source`.
    func connections(of source: SourceKey) -> (open: Int, unauthenticated: Int) {
        let current = self.counts[source] ?? Counts()
        return (current.open, current.unauthenticated)
    }

    /// Sources with an open connection.
    var trackedSources: Int { self.counts.count }

    /// The chance, in percent, that a new connection is refused now by the relay-wide
    /// unauthenticated cap: 0 below *start*, *rate* at it, rising linearly to 100 at *full*.
    var earlyDropPercent: Double {
        let start = self.policy.unauthenticatedStart
        let full = self.policy.maximumUnauthenticated
        if self.unauthenticated >= full { return 100 }
        if self.unauthenticated < start { return 0 }
        let rate = Double(min(100, max(0, self.policy.unauthenticatedDropPercent)))
        return rate + (100 - rate) * Double(self.unauthenticated - start) / Double(max(1, full - start))
    }

    private func dropsEarly<G: RandomNumberGenerator>(using generator: inout G) -> Bool {
        let percent = self.earlyDropPercent
        if percent >= 100 { return true }
        if percent <= 0 { return false }
        return Double.random(in: 0..<100, using: &generator) < percent
    }
}
