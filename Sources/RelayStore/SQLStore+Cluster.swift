public import Foundation

// The records several relay nodes on one database share (``ClusterStore``, issue 15 items
// 3 and 5; tables of SQLite's migration "v9 cluster" and PostgreSQL's "v2 cluster").
//
// Every decision that two nodes could race for is one write transaction: SQLite has one
// writer at a time, and PostgreSQL's writes are SERIALIZABLE, so a transaction that
// conflicts with another node's runs again on what that node wrote (``PostgresDatabase``);
// the records that failures change in bursts wait their turn instead ("Hot records").
// A lease is live while `now < leaseUntil`; a support code while `now < expiresAt`.
//
// All of it is transient (who runs now, which codes wait now, recent failures): `store
// migrate` (``StoreCopy``) leaves these tables out, and a copied store starts with none.
extension SQLStore: ClusterStore {
    // MARK: Leases

    public func acquireNodeLease(_ lease: NodeLease, now: Date) throws -> NodeLease? {
        try self.writing { db in
            let previous = try NodeLease.fetchOne(db, key: lease.name)
            if let previous, previous.instance != lease.instance, previous.leaseUntil > now { return previous }
            // The WHERE repeats the check above in the statement that writes, so that the
            // row is never taken from a live holder whatever ran in between.
            let written = try db.execute(
                NodeLease.insertStatement(columns: NodeLease.columns, values: lease.values)
                    + """
                     ON CONFLICT (name) DO UPDATE SET instance = excluded.instance, clusterAddress = excluded.clusterAddress, \
                    startedAt = excluded.startedAt, leaseUntil = excluded.leaseUntil \
                    WHERE relay_node.leaseUntil <= \(now) OR relay_node.instance = excluded.instance
                    """)
            guard written == 1 else {
                throw StoreError(.unavailable, "the lease on the node name \(lease.name) changed while it was taken; start the node again")
            }
            if let previous, previous.instance != lease.instance {
                // The previous process's hosts and codes: it is gone, and this one starts without them.
                try Self.forgetHostsAndCodes(of: lease.name, db)
            }
            return nil
        }
    }

    public func renewNodeLease(name: String, instance: String, until: Date) throws -> Bool {
        try self.writing { db in
            try db.execute("UPDATE relay_node SET leaseUntil = \(until) WHERE name = \(name) AND instance = \(instance)") == 1
        }
    }

    public func releaseNodeLease(name: String, instance: String) throws {
        try self.writing { db in
            // A time long past rather than the wall clock: the name is free at once on every
            // node, whatever their clocks say. No instance: a renewal that fires late fails.
            // The row stays for closeRecordsOfDeadNodes, should the node have left records open.
            let ended = Date(timeIntervalSince1970: 0)
            let released = try db.execute(
                "UPDATE relay_node SET instance = '', leaseUntil = \(ended) WHERE name = \(name) AND instance = \(instance)")
            guard released == 1 else { return }
            try Self.forgetHostsAndCodes(of: name, db)
        }
    }

    public func liveNodes(now: Date) throws -> [NodeLease] {
        try self.reading { try NodeLease.fetchAll($0, "WHERE leaseUntil > \(now) ORDER BY name") }
    }

    public func closeRecordsOfDeadNodes(expiredBefore: Date, actor: String) throws -> [String: Int] {
        let deadNodes: SQL = "SELECT name FROM relay_node WHERE leaseUntil < \(expiredBefore) ORDER BY name"
        // Every node runs this often, and there is rarely a dead node: a read finds that
        // out without taking SQLite's write lock. The write below looks again.
        guard try self.reading({ try $0.row(deadNodes) }) != nil else { return [:] }
        return try self.writing { db in
            let dead: [String] = try db.rows(deadNodes).map { try $0[0] }
            var closed: [String: Int] = [:]
            let reason = UsageRecord.EndReason.relayRestart
            for name in dead {
                // As closeInterruptedSessions(relayNode:reason:actor:) closes a restarted
                // node's records: at their last checkpoint.
                let count = try db.execute(
                    """
                    UPDATE session SET endedAt = checkpointedAt, durationSeconds = \(sql: db.dialect.greatest("0", "checkpointedAt - startedAt")) / 1000, \
                    endReason = \(reason.rawValue) WHERE endedAt IS NULL AND relayNode = \(name)
                    """)
                if count > 0 {
                    closed[name] = count
                    try AuditEntry(
                        at: self.now(), actor: actor, action: .restartRecovery, detail: "sessions_closed=\(count) reason=\(reason) node=\(name)"
                    ).insert(db)
                }
                try Self.forgetHostsAndCodes(of: name, db)
                // Forgotten, so that the next run finds nothing of it, and so that the dead
                // process, if it was only stalled, fails to renew and learns its records were
                // closed. The name is free for a new process either way.
                try db.execute("DELETE FROM relay_node WHERE name = \(name)")
            }
            return closed
        }
    }

    private static func forgetHostsAndCodes(of node: String, _ db: any SQLConnection) throws {
        try db.execute("DELETE FROM host_presence WHERE node = \(node)")
        try db.execute("DELETE FROM support_code WHERE node = \(node)")
    }

    // MARK: Host directory

    /// Hosts per statement: 5 values each, well under both databases' limits on bound values.
    private static let announcedPerStatement = 1_000

    public func announceHosts(_ hosts: [(hostID: String, companyID: String)], node: String, instance: String, at: Date) throws {
        // One entry per host id (PostgreSQL refuses a statement that updates a row twice);
        // a later one in the list wins.
        var companies: [String: String] = [:]
        var order: [String] = []
        for host in hosts {
            if companies.updateValue(host.companyID, forKey: host.hostID) == nil { order.append(host.hostID) }
        }
        guard !order.isEmpty else { return }
        try self.writing { db in
            for start in stride(from: 0, to: order.count, by: Self.announcedPerStatement) {
                let rows = order[start..<min(start + Self.announcedPerStatement, order.count)].map { hostID -> SQL in
                    "(\(hostID), \(companies[hostID] ?? ""), \(node), \(instance), \(at))"
                }
                try db.execute(
                    """
                    INSERT INTO host_presence (hostID, companyID, node, instance, since) VALUES \(sql: SQL.joined(rows, separator: ", ")) \
                    ON CONFLICT (hostID) DO UPDATE SET companyID = excluded.companyID, node = excluded.node, instance = excluded.instance, \
                    since = excluded.since
                    """)
            }
        }
    }

    public func announcedHosts(node: String, instance: String) throws -> Set<String> {
        try self.reading { db in
            Set(try db.rows("SELECT hostID FROM host_presence WHERE node = \(node) AND instance = \(instance)").map { try $0[0] as String })
        }
    }

    public func withdrawHost(hostID: String, node: String) throws {
        try self.writing { db in
            try db.execute("DELETE FROM host_presence WHERE hostID = \(hostID) AND node = \(node)")
        }
    }

    public func hostLocation(hostID: String, companyID: String, now: Date) throws -> NodeLease? {
        try self.reading { db in
            // Liveness is the node's lease under the instance that wrote the entry.
            try db.row(
                """
                SELECT \(raw: NodeLease.columns.map { "relay_node." + $0 }.joined(separator: ", ")) FROM host_presence \
                JOIN relay_node ON relay_node.name = host_presence.node AND relay_node.instance = host_presence.instance \
                WHERE host_presence.hostID = \(hostID) AND host_presence.companyID = \(companyID) AND relay_node.leaseUntil > \(now)
                """
            ).map(NodeLease.init(row:))
        }
    }

    // MARK: Support codes

    public func insertSupportCode(_ code: SharedSupportCode, now: Date) throws -> Bool {
        try self.writing { db in
            // The unique key decides between two nodes that drew the same digits, so this
            // needs no SERIALIZABLE: as such, fifty issues at once on three nodes ran out
            // of retries on each other's predicate locks (relay-bench cluster found it).
            try Self.readCommitted(db)
            try db.execute("DELETE FROM support_code WHERE code = \(code.code) AND expiresAt <= \(now)")
            return try db.execute(
                SharedSupportCode.insertStatement(columns: SharedSupportCode.columns, values: code.values) + " ON CONFLICT (code) DO NOTHING") == 1
        }
    }

    public func claimSupportCode(_ code: Int, now: Date) throws -> SharedSupportCode? {
        try self.writing { db in
            // One statement finds and deletes: of two claimers, the second waits for the
            // first one's row lock and then finds the row gone (READ COMMITTED re-reads it).
            try Self.readCommitted(db)
            return try db.row("DELETE FROM support_code WHERE code = \(code) AND expiresAt > \(now) RETURNING \(raw: SharedSupportCode.columnList)")
                .map(SharedSupportCode.init(row:))
        }
    }

    public func deleteSupportCodes(_ codes: [Int], node: String) throws {
        guard !codes.isEmpty else { return }
        try self.writing { db in
            try db.execute("DELETE FROM support_code WHERE node = \(node) AND code IN (\(list: codes))")
        }
    }

    // MARK: Wrong support codes

    public func recordWrongSupportCode(at: Date) throws -> (lastMinute: Int, lastHour: Int) {
        try self.writing { db in
            try Self.oneAtATime(key: Self.wrongCodeLock, db)
            try db.execute("INSERT INTO code_failure (at) VALUES (\(at))")
            try db.execute("DELETE FROM code_failure WHERE at <= \(at.addingTimeInterval(-3_600))")
            let row = try db.row(
                """
                SELECT (SELECT COUNT(*) FROM code_failure WHERE at > \(at.addingTimeInterval(-60))), (SELECT COUNT(*) FROM code_failure)
                """)
            return (try row?[0] ?? 0, try row?[1] ?? 0)
        }
    }

    // MARK: Per-source penalties

    public func sourcePenalty(source: String) throws -> SourcePenaltyRecord? {
        try self.reading { try Self.sourcePenalty(source, $0) }
    }

    @discardableResult
    public func updateSourcePenalty(
        source: String, _ update: @Sendable (SourcePenaltyRecord?) -> SourcePenaltyRecord?
    ) throws
        -> SourcePenaltyRecord?
    {
        try self.writing { db in
            try Self.oneAtATime(key: Self.penaltyLock, Self.lockKey(source), db)
            let current = try Self.sourcePenalty(source, db)
            let next = update(current)
            if let next {
                // An upsert: two nodes that both found no record cannot both insert one.
                try db.execute(
                    """
                    INSERT INTO source_penalty (source, level, updatedAt, blockedUntil) \
                    VALUES (\(source), \(next.level), \(next.updatedAt), \(next.blockedUntil)) \
                    ON CONFLICT (source) DO UPDATE SET level = excluded.level, updatedAt = excluded.updatedAt, blockedUntil = excluded.blockedUntil
                    """)
            } else if current != nil {
                try db.execute("DELETE FROM source_penalty WHERE source = \(source)")
            }
            return next
        }
    }

    public func pruneSourcePenalties(updatedBefore before: Date, now: Date) throws {
        try self.writing { db in
            try db.execute("DELETE FROM source_penalty WHERE blockedUntil <= \(now) AND updatedAt < \(before)")
        }
    }

    // MARK: Hot records on PostgreSQL

    // Failures come in bursts, from many connections on several nodes at once, and they
    // all change the same few rows: one source's penalty, the one count of wrong codes. As
    // SERIALIZABLE transactions they would conflict with one another and run again until
    // the retries ran out (two dozen at once did, in a trial of ClusterStoreTests' races). So these wait for
    // their turn instead: a transaction-level advisory lock, under READ COMMITTED, where a
    // statement after the wait sees what the previous holder committed. They touch only
    // their own rows, which the lock guards. SQLite has one writer at a time anyway.

    /// The advisory lock of the wrong-code count: "RELAYWRN".
    private static let wrongCodeLock: Int64 = 0x5245_4C41_5957_524E
    /// The first half of the two-part advisory locks of source penalties: "PENA". (Two-part
    /// keys never clash with the one-part keys of the store's other locks.)
    private static let penaltyLock: Int32 = 0x5045_4E41

    /// On PostgreSQL: makes this transaction READ COMMITTED (so it must come first) and
    /// waits until no other transaction holds the advisory lock `key`; the lock ends with
    /// the transaction.
    private static func oneAtATime(key: Int64, _ db: any SQLConnection) throws {
        guard db.dialect == .postgres else { return }
        try db.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        try db.execute("SELECT pg_advisory_xact_lock(\(key))")
    }

    /// On PostgreSQL: makes this transaction READ COMMITTED (so it must come first), for a
    /// change of one statement whose row locks and unique keys already decide races.
    static func readCommitted(_ db: any SQLConnection) throws {
        guard db.dialect == .postgres else { return }
        try db.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
    }

    /// ``oneAtATime(key:_:)`` with a two-part key.
    private static func oneAtATime(key: Int32, _ part: Int32, _ db: any SQLConnection) throws {
        guard db.dialect == .postgres else { return }
        try db.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        try db.execute("SELECT pg_advisory_xact_lock(CAST(\(Int64(key)) AS INTEGER), CAST(\(Int64(part)) AS INTEGER))")
    }

    /// A text's lock key, the same on every node (FNV-1a; Swift's own hash differs per
    /// process). Two texts with one key only wait for each other.
    private static func lockKey(_ text: String) -> Int32 {
        var hash: UInt32 = 0x811C_9DC5
        for byte in text.utf8 {
            hash = (hash ^ UInt32(byte)) &* 0x0100_0193
        }
        return Int32(bitPattern: hash)
    }

    private static func sourcePenalty(_ source: String, _ db: any SQLConnection) throws -> SourcePenaltyRecord? {
        try db.row("SELECT level, updatedAt, blockedUntil FROM source_penalty WHERE source = \(source)").map { row in
            SourcePenaltyRecord(level: try row[0], updatedAt: try row[1], blockedUntil: try row[2])
        }
    }
}

extension NodeLease: SQLRecord {
    static let table = "relay_node"
    static let columns = ["name", "instance", "clusterAddress", "startedAt", "leaseUntil"]
    init(row: SQLRow) throws {
        self.init(name: try row[0], instance: try row[1], clusterAddress: try row[2], startedAt: try row[3], leaseUntil: try row[4])
    }
    var values: [SQLValue] {
        [self.name.sqlValue, self.instance.sqlValue, self.clusterAddress.sqlValue, self.startedAt.sqlValue, self.leaseUntil.sqlValue]
    }
}

extension SharedSupportCode: SQLRecord {
    static let table = "support_code"
    static let columns = ["code", "node", "companyID", "engineerID", "expiresAt"]
    init(row: SQLRow) throws {
        self.init(code: try row[0], node: try row[1], companyID: try row[2], engineerID: try row[3], expiresAt: try row[4])
    }
    var values: [SQLValue] {
        [self.code.sqlValue, self.node.sqlValue, self.companyID.sqlValue, self.engineerID.sqlValue, self.expiresAt.sqlValue]
    }
}
