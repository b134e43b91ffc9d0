public import Foundation

/// One relay node as the shared store knows it: its name, the running process that holds
/// the name (``instance``), where other nodes reach its cluster port, and until when its
/// lease runs (issue 15, items 3 and 5; docs/OPERATIONS.md "Several nodes").
public struct NodeLease: Sendable, Hashable {
    /// The node's `node_name`, unique in the cluster.
    public var name: String
    /// A random id of the running process, made at its start: a second process that
    /// starts with the same name while the first still renews its lease is refused.
    public var instance: String
    /// `host:port` of the node's cluster port, as other nodes dial it; empty when the node
    /// runs without one (it then takes part in shared records but not in cross-node pairing).
    public var clusterAddress: String
    public var startedAt: Date
    /// The lease runs while the time is before this; from this time on another process
    /// may take the name.
    public var leaseUntil: Date

    public init(name: String, instance: String, clusterAddress: String, startedAt: Date, leaseUntil: Date) {
        self.name = name
        self.instance = instance
        self.clusterAddress = clusterAddress
        self.startedAt = startedAt
        self.leaseUntil = leaseUntil
    }
}

/// A support code as the cluster shares it: which node's viewer waits with it.
public struct SharedSupportCode: Sendable, Hashable {
    /// The six digits as a number (0…999,999).
    public var code: Int
    public var node: String
    public var companyID: String
    public var engineerID: String
    public var expiresAt: Date

    public init(code: Int, node: String, companyID: String, engineerID: String, expiresAt: Date) {
        self.code = code
        self.node = node
        self.companyID = companyID
        self.engineerID = engineerID
        self.expiresAt = expiresAt
    }
}

/// A source's authentication failures as the cluster shares them (``SourcePenalties`` in
/// the relay decides with these; the store only keeps them).
public struct SourcePenaltyRecord: Sendable, Hashable {
    /// Failures not yet forgiven, as of `updatedAt`.
    public var level: Int
    public var updatedAt: Date
    public var blockedUntil: Date

    public init(level: Int, updatedAt: Date, blockedUntil: Date) {
        self.level = level
        self.updatedAt = updatedAt
        self.blockedUntil = blockedUntil
    }
}

/// What several relay nodes on one database share beyond accounts and history: who is
/// alive (leases), which node holds which enrolled host (the host directory), which node
/// holds which support code, and the cluster-wide budget of wrong support codes.
///
/// Liveness is the node's lease alone: a host's entry in the directory counts while the
/// node that wrote it holds a live lease under the same instance, so a node renews one
/// row, not one per host, and a dead node's hosts drop out when its lease runs out.
/// Methods block, like the other store protocols.
public protocol ClusterStore: Sendable {
    /// Takes the name for this process: inserts the lease, or takes over one whose
    /// `leaseUntil` is not after `now` (a node that stopped or died), or renews it if it is
    /// already this instance's (a retried call). Returns nil when done; when another
    /// instance holds a live lease on the name, returns that lease and changes nothing.
    /// Taking over deletes the host entries and support codes the previous instance left.
    func acquireNodeLease(_ lease: NodeLease, now: Date) throws -> NodeLease?
    /// Moves this instance's lease on to `until`. False when the name is no longer this
    /// instance's: another process took it after the lease ran out, or
    /// ``closeRecordsOfDeadNodes(expiredBefore:actor:)`` closed this node's records as a
    /// dead node's (it forgets the lease); either way this process should stop serving.
    func renewNodeLease(name: String, instance: String, until: Date) throws -> Bool
    /// Ends this instance's lease now (a clean stop): its hosts leave the directory at
    /// once and its codes are deleted, and a renewal that comes later fails. The lease is
    /// kept as one that ran out long ago, so the name is free at once and records the
    /// node left open are closed by the next ``closeRecordsOfDeadNodes(expiredBefore:actor:)``:
    /// write the node's last usage closures before this. Nothing happens when the name is
    /// not this instance's.
    func releaseNodeLease(name: String, instance: String) throws
    /// The nodes whose lease runs at `now`.
    func liveNodes(now: Date) throws -> [NodeLease]
    /// Closes, as `relay_restart` at their last checkpoint, the open usage records of the
    /// nodes whose lease ran out before `expiredBefore`, and deletes those nodes' host
    /// entries and support codes, and forgets those nodes' leases (an audit entry
    /// `restart_recovery` per node that had records closed). Returns the sessions closed
    /// per node (nodes with none left out). A record is closed once whoever runs this,
    /// however often.
    func closeRecordsOfDeadNodes(expiredBefore: Date, actor: String) throws -> [String: Int]

    // MARK: Host directory

    /// Records that these enrolled hosts are registered with node `node` (instance
    /// `instance`), replacing any earlier entry of the same host id.
    func announceHosts(_ hosts: [(hostID: String, companyID: String)], node: String, instance: String, at: Date) throws
    /// The host ids the directory names node `node` (instance `instance`) for: a host of
    /// this node that is not among them registered with another node since.
    func announcedHosts(node: String, instance: String) throws -> Set<String>
    /// Removes the host's entry if it is still node `node`'s.
    func withdrawHost(hostID: String, node: String) throws
    /// The live node that holds the enrolled host `hostID` of `companyID`, or nil (not
    /// registered anywhere, another company's host, or its node's lease ran out).
    func hostLocation(hostID: String, companyID: String, now: Date) throws -> NodeLease?

    // MARK: Support codes

    /// Records a code issued on `code.node`. False, changing nothing, when a live code
    /// with the same digits exists anywhere in the cluster (the caller draws again); an
    /// expired one with those digits is replaced.
    func insertSupportCode(_ code: SharedSupportCode, now: Date) throws -> Bool
    /// Takes a live code: deletes it and returns it, in one statement, so that of two
    /// nodes claiming the same digits at once exactly one gets it. Nil when no live code
    /// has these digits.
    func claimSupportCode(_ code: Int, now: Date) throws -> SharedSupportCode?
    /// Deletes these codes if they are still `node`'s (withdrawn, expired, or their viewer left).
    func deleteSupportCodes(_ codes: [Int], node: String) throws

    // MARK: Wrong support codes, cluster-wide

    /// Counts one wrong support code at `at`, and returns how many were counted in the
    /// minute and in the hour up to `at`, this one included (and any that other nodes,
    /// whose clocks run a little ahead, stamped later). Entries an hour old or older are
    /// deleted on the way.
    func recordWrongSupportCode(at: Date) throws -> (lastMinute: Int, lastHour: Int)

    // MARK: Per-source penalties, cluster-wide

    /// The penalty record of `source` (an IPv4 address or an IPv6 /64 as the relay
    /// writes it), or nil.
    func sourcePenalty(source: String) throws -> SourcePenaltyRecord?
    /// Reads the source's record, passes it to `update`, and writes what it returns (nil:
    /// deletes it), in one write transaction, so that failures seen by two nodes at once
    /// both count. Returns what was written.
    @discardableResult
    func updateSourcePenalty(source: String, _ update: @Sendable (SourcePenaltyRecord?) -> SourcePenaltyRecord?) throws -> SourcePenaltyRecord?
    /// Deletes the records whose block ended and that were last updated before `before`.
    func pruneSourcePenalties(updatedBefore before: Date, now: Date) throws
}
