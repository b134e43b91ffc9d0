import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import RelayStore

/// This node's place among the nodes that share one store (OPERATIONS.md "Several
/// nodes"): its lease on its name, the hosts and support codes it announces, and where
/// the other live nodes are. Every node has one (a single node's lease keeps a second
/// process with the same `node_name` from starting); cross-node pairing needs the
/// cluster settings as well (``settings``, ``identity``).
///
/// Store calls block: the relay makes them on its thread pools. Announcements and
/// withdrawals of hosts and codes go through one serial thread (``writer``), so that a host
/// that reconnects is never withdrawn after its new announcement.
final class ClusterMembership: Sendable {
    let node: String
    /// This process, among all that ever held the name.
    let instance: String
    let settings: ClusterSettings?
    let identity: ClusterIdentity?
    let store: any ClusterStore
    let lease: TimeAmount
    /// One thread, so the directory's writes happen in the order they were made.
    let writer: NIOThreadPool
    private let logger: Logger
    private let nodes = NIOLockedValueBox<[String: NodeLease]>([:])
    /// Whether the last renewal reached the database: only a node that has renewed twice in
    /// a row judges others dead, so that after an outage of the database, which stopped
    /// every node's renewals alike, no node takes the others for dead before they have had
    /// one period to renew too.
    private let renewedLastTime = NIOLockedValueBox(false)
    private let started: Date

    /// Whether this node pairs across nodes (it has a cluster port and the secret).
    var crossNode: Bool { self.identity != nil }

    init(node: String, settings: ClusterSettings?, identity: ClusterIdentity?, store: any ClusterStore, lease: TimeAmount, logger: Logger, now: Date) {
        var generator = SystemRandomNumberGenerator()
        self.node = node
        self.instance = "in-" + String(UInt64.random(in: 0...UInt64.max, using: &generator), radix: 36)
        self.settings = settings
        self.identity = identity
        self.store = store
        self.lease = lease
        self.logger = logger
        self.started = now
        self.writer = NIOThreadPool(numberOfThreads: 1)
        self.writer.start()
    }

    private var leaseSeconds: TimeInterval { TimeInterval(self.lease.nanoseconds) / 1e9 }

    /// Takes the node's name for this process; refuses when a live node holds it. A holder
    /// may be this node's previous run, killed a moment ago (a service manager restarts it
    /// at once): its lease is waited out once, up to its term, before refusing.
    func acquire(now: @Sendable () -> Date) throws {
        if let holder = try self.tryAcquire(now: now()) {
            let wait = min(holder.leaseUntil.timeIntervalSince(now()) + 1, self.leaseSeconds + 1)
            if wait > 0 {
                self.logger.notice(
                    "node_name is held by another process; waiting for its lease to run out in case it is this node's previous run",
                    metadata: ["node": "\(self.node)", "seconds": "\(Int(wait.rounded(.up)))"])
                Thread.sleep(forTimeInterval: wait)
            }
        }
        try self.acquireOrRefuse(now: now())
    }

    private func tryAcquire(now: Date) throws -> NodeLease? {
        let lease = NodeLease(
            name: self.node, instance: self.instance, clusterAddress: self.settings?.address ?? "", startedAt: now,
            leaseUntil: now.addingTimeInterval(self.leaseSeconds))
        guard let holder = try self.store.acquireNodeLease(lease, now: now) else {
            try self.refreshNodes(now: now)
            return nil
        }
        return holder
    }

    private func acquireOrRefuse(now: Date) throws {
        if let holder = try self.tryAcquire(now: now) {
            let since = ISO8601DateFormatter().string(from: holder.startedAt)
            throw ConfigurationError(
                .invalidValue,
                "node_name \"\(self.node)\" is taken by a running relay node (started \(since)\(holder.clusterAddress.isEmpty ? "" : ", cluster address \(holder.clusterAddress)")); "
                    + "every node sharing a database needs a name of its own: set node_name in this node's config file. "
                    + "The name's lease is renewed every \(Int(self.leaseSeconds / 3)) s while that node runs"
            )
        }
    }

    /// Renews the lease, learns the live nodes, and closes the open records of nodes whose
    /// lease ran out (they died: `relay_restart`). Run every third of the lease. Returns
    /// true when the lease had run out and was taken again: the other nodes took this
    /// node for dead and forgot its hosts and codes, which the caller announces again.
    @discardableResult
    func renew(now: Date) -> Bool {
        var retaken = false
        do {
            if try !self.store.renewNodeLease(name: self.node, instance: self.instance, until: now.addingTimeInterval(self.leaseSeconds)) {
                // The lease ran out (this node could not reach the database for longer than
                // it) and another node took this one for dead: take the name back.
                self.logger.error(
                    "this node's lease on its name ran out while it could not reach the database; taking it again and announcing its hosts anew",
                    metadata: ["node": "\(self.node)"])
                try self.acquireOrRefuse(now: now)
                retaken = true
            }
            try self.refreshNodes(now: now)
            let judge = self.renewedLastTime.withLockedValue { renewed in
                defer { renewed = true }
                return renewed
            }
            guard judge else { return retaken }
            // Penalties whose block ended a day ago have decayed to nothing that matters.
            try self.store.pruneSourcePenalties(updatedBefore: now.addingTimeInterval(-86_400), now: now)
            let closed = try self.store.closeRecordsOfDeadNodes(expiredBefore: now, actor: "relay:\(self.node)")
            for (node, sessions) in closed.sorted(by: { $0.key < $1.key }) {
                self.logger.notice(
                    "closed the usage records of a relay node that stopped renewing its lease",
                    metadata: ["dead_node": "\(node)", "sessions": "\(sessions)", "reason": "relay_restart"])
            }
        } catch {
            self.renewedLastTime.withLockedValue { $0 = false }
            self.logger.error("cannot renew this node's lease in the database; it is tried again", metadata: ["error": "\(error)"])
        }
        return retaken
    }

    /// Ends the lease (a clean stop): this node's hosts and codes leave the directory.
    func release() {
        do {
            try self.store.releaseNodeLease(name: self.node, instance: self.instance)
        } catch {
            self.logger.warning("cannot end this node's lease; it runs out by itself", metadata: ["error": "\(error)"])
        }
    }

    private func refreshNodes(now: Date) throws {
        let live = try self.store.liveNodes(now: now)
        self.nodes.withLockedValue { nodes in
            nodes = Dictionary(live.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        }
    }

    /// The cluster address of the live node `name`, asking the store if it is not known yet.
    /// Blocking.
    func address(of name: String, now: Date) throws -> String? {
        if let known = self.nodes.withLockedValue({ $0[name] }), known.leaseUntil > now { return known.clusterAddress }
        try self.refreshNodes(now: now)
        return self.nodes.withLockedValue { $0[name] }.flatMap { $0.leaseUntil > now ? $0.clusterAddress : nil }
    }

    /// Runs `body` on the directory's serial thread; a failure is logged (the lease's
    /// expiry cleans up after a node that could not write).
    func write(_ what: String, _ body: @escaping @Sendable (any ClusterStore) throws -> Void) {
        let (store, logger) = (self.store, self.logger)
        self.writer.submit { state in
            guard case .active = state else { return }
            do { try body(store) } catch {
                logger.warning("cannot update the cluster directory", metadata: ["change": "\(what)", "error": "\(error)"])
            }
        }
    }

}

/// Work at shutdown that must not hold the process: a store call can wait for ever on a
/// PostgreSQL connection that died mid-query (seen when the server stopped at the moment
/// the node did), and a relay that does not exit on SIGTERM needs SIGKILL.
enum BoundedWork {
    /// Runs `body` on a thread of its own and waits for it at most `limit`; false when it
    /// had not finished by then (the thread is left to finish, or to end with the process).
    static func run(within limit: Duration, _ body: @escaping @Sendable () -> Void) async -> Bool {
        let (outcome, continuation) = AsyncStream.makeStream(of: Bool.self, bufferingPolicy: .bufferingNewest(1))
        Thread.detachNewThread {
            body()
            continuation.yield(true)
        }
        let timer = Task {
            try? await Task.sleep(for: limit)
            continuation.yield(false)
        }
        defer { timer.cancel() }
        for await finished in outcome { return finished }
        return false
    }
}
