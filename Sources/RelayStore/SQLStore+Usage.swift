public import Foundation
internal import GRDB

extension SQLStore {
    static let sessionColumns = """
        id, companyID, engineerLogin, hostID, hostName, mode, startedAt, endedAt, bytesToViewer, bytesToHost, \
        framesToViewer, framesToHost, endReason, viewerAddress, hostAddress, relayNode, checkpointedAt, viewerClient
        """

    /// The columns a new usage record is written with, in the order of ``UsageRecord/sqlValues``.
    static let insertedSessionColumns = """
        id, companyID, engineerLogin, hostID, hostName, mode, startedAt, endedAt, durationSeconds, bytesToViewer, bytesToHost, \
        framesToViewer, framesToHost, endReason, viewerAddress, hostAddress, relayNode, checkpointedAt, viewerClient
        """

    // MARK: Recording

    public func write(_ batch: UsageBatch) throws {
        guard !batch.isEmpty else { return }
        try self.writing { db in
            // Every statement names its one row, and a row's lock orders two writers of it
            // (a node's checkpoint, a survivor's relay_restart closure): as SERIALIZABLE,
            // the predicate locks of a batch of hundreds of rows grew to the whole table and
            // the batches of nodes that checkpoint at the same moment ran again each time.
            try Self.readCommitted(db)
            // A record written again (a retried batch) keeps what is there.
            for record in batch.opened {
                try db.execute(
                    "INSERT INTO session (\(raw: Self.insertedSessionColumns)) VALUES (\(sql: record.sqlValues)) ON CONFLICT (id) DO NOTHING")
            }
            // Only the process that runs a session writes its checkpoints and its closure. A
            // record closed as relay_restart while that process still ran (another node of a
            // cluster closed it when this node's lease ran out: cut off from the database,
            // not dead) is therefore opened again by a checkpoint, and takes the real
            // closure: the history ends up as if the node had never been cut off.
            let restart = UsageRecord.EndReason.relayRestart.rawValue
            for checkpoint in batch.checkpoints {
                let c = checkpoint.counters
                try db.execute(
                    """
                    UPDATE session SET bytesToViewer = \(c.bytesToViewer), bytesToHost = \(c.bytesToHost), framesToViewer = \(c.framesToViewer), \
                    framesToHost = \(c.framesToHost), checkpointedAt = \(checkpoint.at), endedAt = NULL, durationSeconds = NULL, endReason = NULL \
                    WHERE id = \(checkpoint.sessionID) AND (endedAt IS NULL OR endReason = \(restart))
                    """)
            }
            for closure in batch.closed {
                let c = closure.counters
                try db.execute(
                    """
                    UPDATE session SET endedAt = \(closure.endedAt), \
                    durationSeconds = \(sql: db.dialect.greatest("0", "\(closure.endedAt) - startedAt")) / 1000, \
                    bytesToViewer = \(c.bytesToViewer), bytesToHost = \(c.bytesToHost), framesToViewer = \(c.framesToViewer), \
                    framesToHost = \(c.framesToHost), endReason = \(closure.reason.rawValue), checkpointedAt = \(closure.endedAt) \
                    WHERE id = \(closure.sessionID) AND (endedAt IS NULL OR endReason = \(restart))
                    """)
            }
        }
    }

    public func closeInterruptedSessions(relayNode: String?, reason: UsageRecord.EndReason, actor: String) throws -> Int {
        try self.writing { db in
            var sql: SQL = """
                UPDATE session SET endedAt = checkpointedAt, durationSeconds = \(sql: db.dialect.greatest("0", "checkpointedAt - startedAt")) / 1000, \
                endReason = \(reason.rawValue) WHERE endedAt IS NULL
                """
            if let relayNode { sql += " AND relayNode = \(relayNode)" }
            let closed = try db.execute(sql)
            if closed > 0 {
                try AuditEntry(at: self.now(), actor: actor, action: .restartRecovery, detail: "sessions_closed=\(closed) reason=\(reason)").insert(db)
            }
            return closed
        }
    }

    public func usageRecord(id: String) throws -> UsageRecord? {
        try self.reading { db in
            try db.row("SELECT \(raw: Self.sessionColumns) FROM session WHERE id = \(id)").map(UsageRecord.init(row:))
        }
    }

    public func usagePage(companyID: String, range: ExportRange, after cursor: UsageCursor?, limit: Int) throws -> [UsageRecord] {
        var sql: SQL = "SELECT \(raw: Self.sessionColumns) FROM session WHERE companyID = \(companyID) "
        if let cursor {
            // `startedAt >= ?` gives SQLite the index range's lower bound: from the
            // OR alone it scans the company's index from its first row on every page,
            // which made a 1M-row export quadratic (benchmarks/RESULTS.md, store).
            sql += """
                AND startedAt >= \(cursor.startedAt) AND startedAt < \(range.to) \
                AND (startedAt > \(cursor.startedAt) OR (startedAt = \(cursor.startedAt) AND id > \(cursor.id))) ORDER BY startedAt, id LIMIT \(limit)
                """
        } else {
            sql += "AND startedAt >= \(range.from) AND startedAt < \(range.to) ORDER BY startedAt, id LIMIT \(limit)"
        }
        return try self.reading { db in try Self.records(sql, limit: limit, db) }
    }

    public func recentSessions(companyID: String, engineerLogin: String, limit: Int) throws -> [UsageRecord] {
        try self.reading { db in
            try db.rows(
                """
                SELECT \(raw: Self.sessionColumns) FROM session WHERE companyID = \(companyID) AND engineerLogin = \(engineerLogin) \
                ORDER BY startedAt DESC, id DESC LIMIT \(limit)
                """
            ).map(UsageRecord.init(row:))
        }
    }

    /// Usage records in the file, for tests and tools.
    public func usageCount() throws -> Int {
        try self.reading { try $0.count("SELECT COUNT(*) FROM session") }
    }

    // MARK: Retention

    /// The rows past retention at `now`: usage records that ended before the usage cutoff,
    /// access-log entries (and security alerts) from before the access-log cutoff.
    private static func expired(policy: RetentionPolicy, now: Date) -> (sessions: SQL, access: SQL) {
        let usage = policy.usageCutoff(now: now)
        let access = Date(milliseconds: policy.accessLogCutoff(now: now))
        return ("endedAt IS NOT NULL AND endedAt < \(usage)", "at < \(access)")
    }

    private static let held: SQL = "SELECT companyID FROM legal_hold"

    public func purgeCounts(policy: RetentionPolicy, now: Date) throws -> PurgeReport {
        let (sessions, access) = Self.expired(policy: policy, now: now)
        let held = Self.held
        return try self.reading { db in
            PurgeReport(
                sessions: try db.count("SELECT COUNT(*) FROM session WHERE \(sql: sessions) AND companyID NOT IN (\(sql: held))"),
                accessLogEntries: try db.count(
                    """
                    SELECT (SELECT COUNT(*) FROM access_log WHERE \(sql: access) AND (companyID IS NULL OR companyID NOT IN (\(sql: held)))) \
                    + (SELECT COUNT(*) FROM security_alert WHERE \(sql: access) AND companyID NOT IN (\(sql: held)))
                    """),
                heldSessions: try db.count("SELECT COUNT(*) FROM session WHERE \(sql: sessions) AND companyID IN (\(sql: held))"),
                heldAccessLogEntries: try db.count("SELECT COUNT(*) FROM access_log WHERE \(sql: access) AND companyID IN (\(sql: held))"),
                usageCutoff: Date(milliseconds: policy.usageCutoff(now: now)), accessLogCutoff: Date(milliseconds: policy.accessLogCutoff(now: now)),
                dryRun: true
            )
        }
    }

    /// One short transaction: usage records first, then access-log entries with what is
    /// left of `limit`. On SQLite rows are picked by rowid, so each batch is an index
    /// range, and a purge interrupted between batches (a crash) leaves only expired rows
    /// for the next run. A batch that deleted rows marks the database for
    /// ``finishPurge(_:actor:)``'s rewrite, in the same transaction, so the mark survives a
    /// crash: on SQLite `secure_delete` overwrites each deleted row where it lies, but not
    /// the older copies of it that page balancing may have left in the free space of other
    /// pages; PostgreSQL overwrites nothing at all.
    public func purgeBatch(policy: RetentionPolicy, now: Date, limit: Int) throws -> PurgeBatchResult {
        let limit = max(1, limit)
        let (sessions, access) = Self.expired(policy: policy, now: now)
        let held = Self.held
        return try self.writing { db in
            let row = db.dialect == .sqlite ? "rowid" : "id"
            var batch = PurgeBatchResult(sessions: 0, accessLogEntries: 0, hasMore: false)
            batch.sessions = try db.execute(
                """
                DELETE FROM session WHERE \(raw: row) IN (SELECT \(raw: row) FROM session WHERE \(sql: sessions) \
                AND companyID NOT IN (\(sql: held)) LIMIT \(limit))
                """)
            if batch.sessions < limit {
                batch.accessLogEntries = try db.execute(
                    """
                    DELETE FROM access_log WHERE id IN (SELECT id FROM access_log WHERE \(sql: access) \
                    AND (companyID IS NULL OR companyID NOT IN (\(sql: held))) LIMIT \(limit - batch.sessions))
                    """)
            }
            if batch.sessions + batch.accessLogEntries < limit {
                // Security alerts name people and addresses: kept as long as the access log.
                batch.accessLogEntries += try db.execute(
                    """
                    DELETE FROM security_alert WHERE id IN (SELECT id FROM security_alert WHERE \(sql: access) \
                    AND companyID NOT IN (\(sql: held)) LIMIT \(limit - batch.sessions - batch.accessLogEntries))
                    """)
            }
            // A full batch may have left more behind; one that was not full took the last.
            batch.hasMore = batch.sessions + batch.accessLogEntries == limit
            if batch.sessions + batch.accessLogEntries > 0 { try Self.markDeleted(db) }
            return batch
        }
    }

    public func beginPurgeTurn() throws -> PurgeTurn? {
        guard let postgres = self.database as? PostgresDatabase else { return PurgeTurn() }
        return try postgres.tryAdvisoryLock(Self.purgeLock).map { PurgeTurn(release: $0) }
    }

    /// The advisory lock of the purge's turn: "RELAYPRG".
    static let purgeLock: Int64 = 0x5245_4C41_5950_5247

    /// The audit entry of the run; after a real purge, the database's rewrite if rows were
    /// deleted since the last one, so that no copy of a purged row survives in its files
    /// (docs/OPERATIONS.md "Retention"): on SQLite a VACUUM and the write-ahead log's
    /// truncation, on PostgreSQL a `VACUUM FULL` of the purged tables.
    public func finishPurge(_ report: PurgeReport, actor: String) throws {
        try self.appendAudit(AuditEntry(at: self.now(), actor: actor, action: report.dryRun ? .purgeDryRun : .purge, detail: Self.describe(report)))
        guard !report.dryRun else { return }
        switch self.database {
        case let sqlite as SQLiteDatabase:
            // The truncation also when the VACUUM failed: the rows' page images in `-wal` go.
            let vacuum = Result { try Self.vacuumAfterDeletion(sqlite) }
            try Self.truncateWriteAheadLog(sqlite)
            try vacuum.get()
        case let postgres as PostgresDatabase:
            // The mark is cleared only once the WAL is past the rows too: a purge that could
            // not finish it does it all again next time.
            if let marks = try Self.vacuumAfterDeletion(postgres) {
                try Self.retireWriteAheadLog(postgres)
                try postgres.write { try $0.execute("UPDATE purge_state SET marks = 0 WHERE marks = \(marks)") }
            }
        default:
            break
        }
    }

    // Why a VACUUM. When SQLite rebalances a b-tree (a row inserted or grown by an update
    // into a full page, a page left underfull by a delete, the purge's own deletes among
    // them), it moves cells between neighbouring pages, and a page it rebuilds from scratch
    // (btree.c `rebuildPage`, the fallback of `editPage` in `balance_nonroot`) keeps its
    // old bytes below the new cell content: copies of cells that now live elsewhere.
    // `secure_delete` zeroes a row where it lies when it is deleted, and pages that become
    // free, but never those older copies, in table and index pages alike (host names,
    // addresses, engineer logins). VACUUM rebuilds the file from the live rows only, which
    // SQLite documents as removing all traces of deleted content. It costs a pass over the
    // whole file, so it runs once per purge run, and only if rows were deleted since the
    // last one (benchmarks/RESULTS.md, "the purge's VACUUM").
    //
    // PostgreSQL's DELETE only marks a row version dead, and its plain VACUUM makes the
    // space reusable without overwriting it; `VACUUM FULL` writes each table and its
    // indexes anew from the live rows into new files and removes the old ones.

    /// How many purge batches deleted rows since the last rewrite: 0 when none did. SQLite
    /// keeps it in the header field `PRAGMA user_version` (GRDB's `grdb_migrations` table
    /// holds the schema's version; nothing else uses the field), PostgreSQL in
    /// `purge_state`. A batch sets it in its own transaction, so a crash cannot lose it.
    private static func deletionMarks(_ db: any SQLConnection) throws -> Int64 {
        switch db.dialect {
        case .sqlite: try db.value("PRAGMA user_version", as: Int64.self) ?? 0
        case .postgres: try db.value("SELECT marks FROM purge_state", as: Int64.self) ?? 0
        }
    }

    private static func markDeleted(_ db: any SQLConnection) throws {
        switch db.dialect {
        case .sqlite:
            let marks = try Self.deletionMarks(db)
            try db.execute("PRAGMA user_version = \(raw: String(marks >= Int64(Int32.max) ? 1 : marks + 1))")
        case .postgres:
            try db.execute("UPDATE purge_state SET marks = marks + 1")
        }
    }

    /// Whether rows were purged since the last rewrite (``deletionMarks(_:)``).
    package func hasPurgedRowsSinceVacuum() throws -> Bool {
        try self.reading { try Self.deletionMarks($0) } != 0
    }

    /// VACUUM, if a purge deleted rows since the last one: SQLite rebuilds the database
    /// from its live rows (in a temporary file, then into the database through the
    /// write-ahead log), so no copy of a deleted row stays in the free space of a page.
    /// The mark is cleared only if no other process deleted rows while the VACUUM ran.
    private static func vacuumAfterDeletion(_ sqlite: SQLiteDatabase) throws {
        do {
            try sqlite.pool.writeWithoutTransaction { db in
                let connection = SQLiteDatabase.Connection(db: db)
                let marks = try Self.deletionMarks(connection)
                guard marks != 0 else { return }
                try db.execute(sql: "VACUUM")
                try db.inTransaction(.immediate) {
                    if try Self.deletionMarks(connection) == marks { try db.execute(sql: "PRAGMA user_version = 0") }
                    return .commit
                }
            }
        } catch {
            throw StoreError(
                .unavailable,
                "the purge deleted the rows, but VACUUM could not rewrite the database (\(error)), so copies of them may remain in the file's free space; VACUUM needs free disk space of about twice the database's size (a copy in the temporary folder, $SQLITE_TMPDIR, else $TMPDIR, else /var/tmp, and the write-ahead log beside the database): make room, then run `relay-server usage purge`, which finishes it"
            )
        }
    }

    /// `VACUUM FULL` of the purged tables, if a purge deleted rows since the last one. It
    /// locks each table while it copies it: other nodes' usage writes wait (their
    /// recorders keep them meanwhile).
    /// Returns the deletion marks it covered, nil if there were none.
    private static func vacuumAfterDeletion(_ postgres: PostgresDatabase) throws -> Int64? {
        do {
            return try postgres.withoutTransaction { db in
                let marks = try Self.deletionMarks(db)
                guard marks != 0 else { return nil }
                try db.execute("VACUUM FULL session, access_log, security_alert")
                return marks
            }
        } catch let error as StoreError {
            throw StoreError(
                .unavailable,
                "the purge deleted the rows, but VACUUM FULL could not rewrite the tables (\(error.message)), so copies of them remain in the database's files; it needs free disk space of about the tables' size: make room, then run `relay-server usage purge`, which finishes it"
            )
        }
    }

    /// After a `VACUUM FULL`, moves PostgreSQL's write-ahead log past the deletes and the
    /// rewrite: a new WAL file, then a checkpoint, twice. The checkpoint unlinks the old
    /// tables' files (PostgreSQL defers that to it) and the WAL files from before, which held
    /// the deleted rows' page images, if the server removes WAL files instead of renaming
    /// them for reuse (`wal_recycle = off`) and keeps none for a standby or an archive.
    /// Needs the roles `pg_checkpoint` and the right to run `pg_switch_wal()`
    /// (OPERATIONS.md §11 "Retention on PostgreSQL").
    private static func retireWriteAheadLog(_ postgres: PostgresDatabase) throws {
        do {
            try postgres.withoutTransaction { db in
                for _ in 0..<2 {
                    try db.execute("SELECT pg_switch_wal()")
                    try db.execute("CHECKPOINT")
                }
            }
        } catch let error as StoreError {
            throw StoreError(
                .unavailable,
                "the purge deleted the rows and rewrote the tables, but could not move the write-ahead log past them (\(error.message)), so PostgreSQL's WAL files may still hold them: grant the relay's database user pg_checkpoint and EXECUTE ON FUNCTION pg_switch_wal() (OPERATIONS.md §11), then run `relay-server usage purge` again"
            )
        }
    }

    /// SQLite: copies the write-ahead log into the database and truncates it to zero bytes,
    /// so the page images it held (with deleted rows in them) are gone (NOTES.md "SQLite").
    /// PostgreSQL has no such file of the relay's: nothing to do.
    public func truncateWriteAheadLog() throws {
        if let sqlite = self.database as? SQLiteDatabase { try Self.truncateWriteAheadLog(sqlite) }
    }

    private static func truncateWriteAheadLog(_ sqlite: SQLiteDatabase) throws {
        do {
            _ = try sqlite.pool.writeWithoutTransaction { try $0.checkpoint(.truncate) }
        } catch {
            throw StoreError(
                .unavailable,
                "the purge removed the rows, but the write-ahead log could not be truncated (\(error)): a long-running reader, such as an export, holds it; run `relay-server usage purge` again when it has finished"
            )
        }
    }

    static func describe(_ report: PurgeReport) -> String {
        "sessions=\(report.sessions) access_log=\(report.accessLogEntries) held_sessions=\(report.heldSessions) "
            + "held_access_log=\(report.heldAccessLogEntries) usage_cutoff=\(report.usageCutoff.formatted(.iso8601)) "
            + "access_log_cutoff=\(report.accessLogCutoff.formatted(.iso8601))"
    }

    // MARK: Legal holds

    public func placeHold(companyID: String, reason: String, actor: String) throws -> LegalHold {
        let reason = reason.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !reason.isEmpty else { throw StoreError(.invalidInput, "a legal hold needs a reason (--reason TEXT), e.g. the case number") }
        guard reason.utf8.count <= 500 else { throw StoreError(.invalidInput, "the reason is \(reason.utf8.count) bytes; at most 500 are allowed") }
        let hold = LegalHold(companyID: companyID, reason: reason, heldAt: self.now(), heldBy: actor)
        try self.writing { db in
            // A company removed since may still have history under retention: allow a hold on it.
            let known =
                try Company.exists(db, key: companyID)
                || (try db.row("SELECT 1 FROM session WHERE companyID = \(companyID) LIMIT 1") != nil)
            guard known else { throw Self.noCompany(companyID) }
            if try LegalHold.exists(db, key: companyID) {
                throw StoreError(.conflict, "company \(companyID) is already under legal hold; `relay-server company release \(companyID)` lifts it")
            }
            try hold.insert(db)
            let sessions = try db.count("SELECT COUNT(*) FROM session WHERE companyID = \(companyID)")
            try AuditEntry(at: self.now(), actor: actor, action: .hold, companyID: companyID, detail: "sessions=\(sessions)").insert(db)
        }
        return hold
    }

    public func releaseHold(companyID: String, actor: String) throws {
        try self.writing { db in
            guard try LegalHold.deleteOne(db, key: companyID) else {
                throw StoreError(.notFound, "company \(companyID) is not under legal hold; `relay-server company holds` lists the holds")
            }
            let sessions = try db.count("SELECT COUNT(*) FROM session WHERE companyID = \(companyID)")
            try AuditEntry(at: self.now(), actor: actor, action: .release, companyID: companyID, detail: "sessions=\(sessions)").insert(db)
        }
    }

    public func legalHolds() throws -> [LegalHold] {
        try self.reading { try LegalHold.fetchAll($0, "ORDER BY heldAt, companyID") }
    }
}
