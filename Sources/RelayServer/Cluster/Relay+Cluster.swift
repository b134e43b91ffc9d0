import Foundation
import NIOCore
import RelayStore
import RelayWire

/// Pairing across the nodes that share one store (OPERATIONS.md "Several nodes",
/// docs/ARCHITECTURE.md "Several nodes"). A node alone, or one without the cluster
/// settings, pairs in its own ``PairingBook`` only, as it always did. A node of a
/// cluster also:
///
/// - writes every support code it issues into the store, so that the digits are unique in
///   the cluster and any node can find which node's viewer waits with them;
/// - announces its enrolled hosts in the store's host directory (under its lease);
/// - redeems a code, or claims a host, that another node holds through a node link to
///   that node (``NodeLinkHandler``): the other node pairs its agent with the link, and
///   records the session; this node forwards.
extension Relay {
    private typealias Answer = RelayConnectionStateMachine.Answer

    /// The membership, when this node pairs across nodes.
    private var crossNode: ClusterMembership? {
        guard let cluster = self.cluster, cluster.crossNode else { return nil }
        return cluster
    }

    // MARK: Host directory

    func announce(hostID: String, companyID: String) {
        guard let cluster = self.crossNode else { return }
        let (node, instance, now) = (cluster.node, cluster.instance, self.now())
        cluster.write("announce host \(hostID)") { try $0.announceHosts([(hostID: hostID, companyID: companyID)], node: node, instance: instance, at: now) }
    }

    func withdraw(hostID: String) {
        guard let cluster = self.crossNode else { return }
        let node = cluster.node
        cluster.write("withdraw host \(hostID)") { try $0.withdrawHost(hostID: hostID, node: node) }
    }

    /// Announces every host registered here and every live code again, after another node
    /// took this one for dead (its lease ran out while it could not reach the database).
    func announceAgain() {
        guard let cluster = self.crossNode else { return }
        let (hosts, codes) = self.pairing.withLockedValue { book in
            (book.registrations.map { (hostID: $0.key, companyID: $0.value.companyID) }, Array(book.codes.values))
        }
        let (node, instance, now) = (cluster.node, cluster.instance, self.now())
        let validity = TimeInterval(self.connectionLimits.supportCodeValidity.nanoseconds) / 1e9
        let wall = NIODeadline.now()
        cluster.write("announce \(hosts.count) hosts and \(codes.count) codes again") { store in
            try store.announceHosts(hosts, node: node, instance: instance, at: now)
            for issued in codes {
                let left = min(validity, TimeInterval((issued.expiresAt - wall).nanoseconds) / 1e9)
                guard left > 0, let engineerID = issued.engineerID else { continue }
                let shared = SharedSupportCode(
                    code: Int(issued.code.value), node: node, companyID: issued.companyID, engineerID: engineerID, expiresAt: now.addingTimeInterval(left))
                // Digits another node drew meanwhile stay theirs; this code then cannot be
                // redeemed elsewhere, and runs out here.
                _ = try store.insertSupportCode(shared, now: now)
            }
        }
    }

    /// Ends the registrations of hosts that registered with another node since (a second
    /// connection of the same host, or the host moved while this connection hung on): the
    /// directory names the newer one, so this one could never be reached from other nodes.
    /// Checked on the directory's thread, after this node's own announcements.
    func endRegistrationsMovedElsewhere() {
        guard let cluster = self.crossNode else { return }
        let (node, instance) = (cluster.node, cluster.instance)
        cluster.write("check where this node's hosts are registered") { store in
            // Fresh registrations may be announced a moment later than this runs.
            let settled = NIODeadline.now() - cluster.lease
            let registered = self.pairing.withLockedValue { book in
                book.registrations.filter { !$0.value.isBusy && $0.value.since < settled }.map { ($0.key, $0.value.host) }
            }
            guard !registered.isEmpty else { return }
            let announced = try store.announcedHosts(node: node, instance: instance)
            for (hostID, link) in registered where !announced.contains(hostID) {
                self.pairing.withLockedValue { $0.unregister(link, hostID: hostID) }
                link.deliver(.bye(.revoked, "a newer connection of host \(hostID) registered with another node of the relay; this one is closed"))
            }
        }
    }

    /// Deletes codes this node no longer holds (withdrawn, expired, their viewer left).
    func forget(_ codes: [SupportCode]) {
        guard let cluster = self.crossNode, !codes.isEmpty else { return }
        let node = cluster.node
        cluster.write("delete \(codes.count) support codes") { try $0.deleteSupportCodes(codes.map { Int($0.value) }, node: node) }
    }

    // MARK: Per-source penalties

    /// This node's throttle first (no store call for a source it already blocks); in a
    /// cluster, then the source's shared record, which every node's failures raise.
    func throttle(source: SourceKey, on loop: any EventLoop) -> EventLoopFuture<RelayConnectionStateMachine.Answer> {
        if let wait = self.retryAfter(source: source) {
            return loop.makeSucceededFuture(.throttle(retryAfter: wait, source: source))
        }
        guard let cluster = self.crossNode else { return loop.makeSucceededFuture(.throttle(retryAfter: nil, source: source)) }
        return self.threadPool.runIfActive(eventLoop: loop) { () throws -> RelayConnectionStateMachine.Answer in
            let now = self.now()
            guard let record = try cluster.store.sourcePenalty(source: "\(source)"), record.blockedUntil > now else {
                return .throttle(retryAfter: nil, source: source)
            }
            let wait = TimeAmount.nanoseconds(Int64(record.blockedUntil.timeIntervalSince(now) * 1e9))
            return .throttle(retryAfter: wait, source: source)
        }.recover { error in
            // The store is away: this node's own penalties still hold; the credential
            // check that follows reports the outage.
            self.logger.warning("cannot read the cluster's penalties of a source", metadata: ["error": "\(error)"])
            return .throttle(retryAfter: nil, source: source)
        }
    }

    /// Counts a failure of `source` in the cluster's shared record (on the directory's
    /// writer, in order).
    func shareFailure(of source: SourceKey) {
        guard let cluster = self.crossNode else { return }
        let (policy, now) = (self.configuration.sourcePenalties, self.now())
        cluster.write("count a failure of \(source)") { store in
            try store.updateSourcePenalty(source: "\(source)") { SourcePenalties.afterFailure($0, now: now, policy: policy) }
        }
    }

    // MARK: Support codes

    func issueCode(for link: ConnectionLink, engineerID: String, companyID: String) -> EventLoopFuture<RelayConnectionStateMachine.Answer> {
        let loop = link.channel.eventLoop
        let validity = self.connectionLimits.supportCodeValidity
        guard let cluster = self.crossNode else {
            return loop.makeSucceededFuture(.codeIssued(self.issueLocalCode(for: link, engineerID: engineerID, companyID: companyID), validFor: validity))
        }
        return self.threadPool.runIfActive(eventLoop: loop) { () throws -> SupportCode in
            // Draw until the digits are free in the whole cluster: with N live codes in a
            // million, a second draw is rare, a sixth all but impossible.
            for _ in 0..<6 {
                let code = self.issueLocalCode(for: link, engineerID: engineerID, companyID: companyID)
                let now = self.now()
                let shared = SharedSupportCode(
                    code: Int(code.value), node: cluster.node, companyID: companyID, engineerID: engineerID,
                    expiresAt: now.addingTimeInterval(TimeInterval(validity.nanoseconds) / 1e9))
                if try cluster.store.insertSupportCode(shared, now: now) { return code }
                self.pairing.withLockedValue { $0.withdraw(code) }
            }
            throw StoreError(.conflict, "no free support code was found in six draws")
        }.map { code in
            Answer.codeIssued(code, validFor: validity)
        }.recover { error in
            self.logger.error("cannot issue a support code", metadata: ["error": "\(error)"])
            self.forget(self.pairing.withLockedValue { $0.withdrawCode(of: link) })
            return .clusterFailed(
                "the relay cannot issue a support code right now (its database is unavailable or too busy); try again in a minute, and tell the relay's operator if it goes on"
            )
        }
    }

    /// Issues a code in this node's book; tells the viewer of a code it displaced.
    private func issueLocalCode(for link: ConnectionLink, engineerID: String, companyID: String) -> SupportCode {
        var generator = SystemRandomNumberGenerator()
        let (issue, withdrawnText) = self.pairing.withLockedValue { book in
            let issue = book.issueCode(for: link, engineerID: engineerID, companyID: companyID, now: .now(), using: &generator)
            return (issue, issue.withdrawn.map { book.withdrawnForNewerCodeMessage($0) })
        }
        if let withdrawn = issue.withdrawn, let withdrawnText {
            self.forget([withdrawn.code])
            withdrawn.viewer.deliver(.codeWithdrawn(.invalidCode, withdrawnText))
        }
        return issue.issued.code
    }

    /// Redeems a code a host presented here. Alone: in this node's book, within its guess
    /// budget. In a cluster: claimed in the store (one node gets it), charged to the
    /// cluster's budget when no live code has the digits, and paired through a node link
    /// when another node's viewer holds it.
    func redeem(_ code: SupportCode, host: Party, for link: ConnectionLink) -> EventLoopFuture<RelayConnectionStateMachine.Answer> {
        let loop = link.channel.eventLoop
        guard let cluster = self.crossNode else {
            return loop.makeSucceededFuture(.redeemed(self.pairing.withLockedValue { $0.attemptRedemption(of: code, now: .now()) }))
        }
        if let wait = self.pairing.withLockedValue({ $0.redemptionPausedFor(now: .now()) }) {
            return loop.makeSucceededFuture(.redeemed(.paused(retryAfter: wait)))
        }
        enum Found {
            case paused(TimeAmount)
            case wrong(pausedFor: TimeAmount?)
            case here
            case elsewhere(SharedSupportCode, address: String?)
        }
        // One redemption at a time per node, on the directory's serial thread, with the
        // pause looked at again there: attempts that arrive together are checked one after
        // another, so the cluster's count stops them as it stops attempts one at a time
        // (at most one attempt in flight per other node passes a full window).
        return cluster.writer.runIfActive(eventLoop: loop) { () throws -> Found in
            if let wait = self.pairing.withLockedValue({ $0.redemptionPausedFor(now: .now()) }) { return .paused(wait) }
            let now = self.now()
            guard let shared = try cluster.store.claimSupportCode(Int(code.value), now: now) else {
                let counts = try cluster.store.recordWrongSupportCode(at: now)
                let paused = self.pairing.withLockedValue { $0.recordWrongCode(clusterMinute: counts.lastMinute, clusterHour: counts.lastHour, now: .now()) }
                return .wrong(pausedFor: paused)
            }
            if shared.node == cluster.node { return .here }
            return .elsewhere(shared, address: try cluster.address(of: shared.node, now: now))
        }.flatMap { found -> EventLoopFuture<Answer> in
            switch found {
            case .paused(let wait):
                return loop.makeSucceededFuture(.redeemed(.paused(retryAfter: wait)))
            case .wrong(let paused):
                return loop.makeSucceededFuture(.redeemed(.invalid(pausedFor: paused)))
            case .here:
                return loop.makeSucceededFuture(
                    .redeemed(self.pairing.withLockedValue { $0.takeCode(code, now: .now()) }.map { .paired($0) } ?? .invalid(pausedFor: nil)))
            case .elsewhere(let shared, let address):
                guard let address, !address.isEmpty else {
                    // Its node is gone, and with it the engineer who waited with the code.
                    return loop.makeSucceededFuture(.clusterFailed("the engineer's connection to the relay ended; ask the engineer for a new code"))
                }
                let request = NodeLinkHandler.Request(
                    address: address, node: shared.node,
                    hello: Hello(version: RelayProtocol.version, role: .host, capabilities: host.capabilities, software: host.software),
                    auth: NodeAuth(node: cluster.node, agentAddress: link.remoteAddress, request: .redeem(code: code, hostName: host.name)),
                    peer: Party(name: "", companyID: shared.companyID, software: "", capabilities: [])
                )
                return self.dial(request, cluster: cluster, on: loop).map { outcome in
                    switch outcome {
                    case .paired(let viewer, _):
                        let issued = RelayConnectionStateMachine.Pairing.IssuedCode(
                            code: code, viewer: viewer, companyID: shared.companyID, expiresAt: .now(), engineerID: shared.engineerID)
                        return .redeemed(.paired(issued))
                    case .refused(.invalidCode, _):
                        return .redeemed(.invalid(pausedFor: nil))
                    case .refused:
                        // The link failed (logged in dial): the code goes back, so that the
                        // customer can try again while the engineer still waits with it.
                        cluster.write("give support code back") { _ = try $0.insertSupportCode(shared, now: self.now()) }
                        return .clusterFailed(
                            "the relay could not reach the engineer's connection just now; try the same code again in a minute, or ask the engineer for a new one"
                        )
                    }
                }
            }
        }.recover { error in
            self.logger.error("cannot redeem a support code in the cluster's database", metadata: ["error": "\(error)"])
            return .verificationFailed
        }
    }

    // MARK: Enrolled hosts

    /// Claims an enrolled host: in this node's book, and with `anywhere`, on the node the
    /// host directory names, through a node link.
    func claim(hostID: String, companyID: String, anywhere: Bool, for link: ConnectionLink) -> EventLoopFuture<RelayConnectionStateMachine.Answer> {
        let loop = link.channel.eventLoop
        let local = self.pairing.withLockedValue { $0.claim(hostID: hostID, companyID: companyID) }
        guard case .noSuchHost = local, anywhere, let cluster = self.crossNode, let viewer = link.party else {
            return loop.makeSucceededFuture(.claimed(local, hostID: hostID))
        }
        return self.threadPool.runIfActive(eventLoop: loop) { () throws -> NodeLease? in
            try cluster.store.hostLocation(hostID: hostID, companyID: companyID, now: self.now())
        }.flatMap { location -> EventLoopFuture<Answer> in
            guard let location, location.name != cluster.node, !location.clusterAddress.isEmpty else {
                return loop.makeSucceededFuture(.claimed(.noSuchHost, hostID: hostID))
            }
            let request = NodeLinkHandler.Request(
                address: location.clusterAddress, node: location.name,
                hello: Hello(version: RelayProtocol.version, role: .viewer, capabilities: viewer.capabilities, software: viewer.software),
                auth: NodeAuth(
                    node: cluster.node, agentAddress: link.remoteAddress,
                    request: .connect(
                        hostID: hostID, companyID: companyID, engineer: viewer.name, organization: viewer.organization, inBrowser: viewer.inBrowser)),
                peer: Party(name: "", companyID: companyID, software: "", capabilities: [], hostID: hostID)
            )
            return self.dial(request, cluster: cluster, on: loop).map { outcome in
                switch outcome {
                case .paired(let host, _): return .claimed(.claimed(host), hostID: hostID)
                case .refused(.noSuchHost, _): return .claimed(.noSuchHost, hostID: hostID)
                case .refused(.hostBusy, _): return .claimed(.busy, hostID: hostID)
                case .refused:
                    // What failed is the operator's to see (dial logs it), not the engineer's.
                    return .clusterFailed(
                        "host \(hostID) is connected to another node of this relay, which could not be reached just now; try again in a minute, and tell the relay's operator if it goes on"
                    )
                }
            }
        }.recover { error in
            self.logger.error("cannot look a host up in the cluster's directory", metadata: ["error": "\(error)"])
            return .verificationFailed
        }
    }

    private func dial(_ request: NodeLinkHandler.Request, cluster: ClusterMembership, on loop: any EventLoop) -> EventLoopFuture<NodeLinkHandler.Outcome> {
        guard let identity = cluster.identity else {
            return loop.makeSucceededFuture(.refused(.internalError, "this node has no cluster secret"))
        }
        self.metrics.nodeLinksDialled.increment()
        let logger = self.logger
        return NodeLinkHandler.dial(request, identity: identity, limits: self.connectionLimits, metrics: self.metrics, logger: self.logger, on: loop)
            .map { outcome in
                // A refusal the other node decided (no such host, busy, a used code) is the
                // agent's business; a link that failed is the operator's.
                if case .refused(.internalError, let text) = outcome {
                    logger.error("a node link failed", metadata: ["node": "\(request.node)", "address": "\(request.address)", "reason": "\(text)"])
                }
                return outcome
            }
    }
}
