public import Foundation
internal import GRDB

extension SQLiteStore {
    static let sessionColumns = """
        id, companyID, engineerLogin, hostID, hostName, mode, startedAt, endedAt, bytesToViewer, bytesToHost, \
        framesToViewer, framesToHost, endReason, viewerAddress, hostAddress, relayNode, checkpointedAt, viewerClient
        """

    // MARK: Recording

    public func write(_ batch: UsageBatch) throws {
        guard !batch.isEmpty else { return }
        try self.writing { db in
            if !batch.opened.isEmpty {
                // A record written again (a retried batch) keeps what is there.
                let insert = try db.cachedStatement(
                    sql: """
                        INSERT OR IGNORE INTO session (id, companyID, engineerLogin, hostID, hostName, mode, startedAt, endedAt, \
                        durationSeconds, bytesToViewer, bytesToHost, framesToViewer, framesToHost, endReason, viewerAddress, \
                        hostAddress, relayNode, checkpointedAt, viewerClient) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """)
                for record in batch.opened {
                    try insert.execute(arguments: record.statementArguments)
                }
            }
            if !batch.checkpoints.isEmpty {
                let update = try db.cachedStatement(
                    sql: """
                        UPDATE session SET bytesToViewer = ?, bytesToHost = ?, framesToViewer = ?, framesToHost = ?, checkpointedAt = ? \
                        WHERE id = ? AND endedAt IS NULL
                        """)
                for checkpoint in batch.checkpoints {
                    let c = checkpoint.counters
                    try update.execute(arguments: [c.bytesToViewer, c.bytesToHost, c.framesToViewer, c.framesToHost, checkpoint.at, checkpoint.sessionID])
                }
            }
            if !batch.closed.isEmpty {
                let close = try db.cachedStatement(
                    sql: """
                        UPDATE session SET endedAt = ?, durationSeconds = MAX(0, ? - startedAt) / 1000, bytesToViewer = ?, bytesToHost = ?, \
                        framesToViewer = ?, framesToHost = ?, endReason = ?, checkpointedAt = ? WHERE id = ? AND endedAt IS NULL
                        """)
                for closure in batch.closed {
                    let c = closure.counters
                    try close.execute(arguments: [
                        closure.endedAt, closure.endedAt, c.bytesToViewer, c.bytesToHost, c.framesToViewer, c.framesToHost, closure.reason.rawValue,
                        closure.endedAt, closure.sessionID,
                    ])
                }
            }
        }
    }

    public func closeInterruptedSessions(relayNode: String?, reason: UsageRecord.EndReason, actor: String) throws -> Int {
        try self.writing { db in
            var sql = """
                UPDATE session SET endedAt = checkpointedAt, durationSeconds = MAX(0, checkpointedAt - startedAt) / 1000, endReason = ? \
                WHERE endedAt IS NULL
                """
            var arguments: StatementArguments = [reason.rawValue]
            if let relayNode {
                sql += " AND relayNode = ?"
                arguments += [relayNode]
            }
            try db.execute(sql: sql, arguments: arguments)
            let closed = db.changesCount
            if closed > 0 {
                try AuditEntry(at: self.now(), actor: actor, action: .restartRecovery, detail: "sessions_closed=\(closed) reason=\(reason)").insert(db)
            }
            return closed
        }
    }

    public func usageRecord(id: String) throws -> UsageRecord? {
        try self.reading { db in
            try Row.fetchOne(db, sql: "SELECT \(Self.sessionColumns) FROM session WHERE id = ?", arguments: [id]).map(UsageRecord.init(row:))
        }
    }

    public func usagePage(companyID: String, range: ExportRange, after cursor: UsageCursor?, limit: Int) throws -> [UsageRecord] {
        try self.reading { db in
            let rows: RowCursor
            if let cursor {
                // `startedAt >= ?` gives SQLite the index range's lower bound: from the
                // OR alone it scans the company's index from its first row on every page,
                // which made a 1M-row export quadratic (benchmarks/RESULTS.md, store).
                rows = try Row.fetchCursor(
                    db,
                    sql: """
                        SELECT \(Self.sessionColumns) FROM session WHERE companyID = ? AND startedAt >= ? AND startedAt < ? \
                        AND (startedAt > ? OR (startedAt = ? AND id > ?)) ORDER BY startedAt, id LIMIT ?
                        """, arguments: [companyID, cursor.startedAt, range.to, cursor.startedAt, cursor.startedAt, cursor.id, limit])
            } else {
                rows = try Row.fetchCursor(
                    db,
                    sql: """
                        SELECT \(Self.sessionColumns) FROM session WHERE companyID = ? AND startedAt >= ? AND startedAt < ? \
                        ORDER BY startedAt, id LIMIT ?
                        """, arguments: [companyID, range.from, range.to, limit])
            }
            var page: [UsageRecord] = []
            page.reserveCapacity(limit)
            while let row = try rows.next() { page.append(UsageRecord(row: row)) }
            return page
        }
    }

    public func recentSessions(companyID: String, engineerLogin: String, limit: Int) throws -> [UsageRecord] {
        try self.reading { db in
            try Row.fetchAll(
                db,
                sql: "SELECT \(Self.sessionColumns) FROM session WHERE companyID = ? AND engineerLogin = ? ORDER BY startedAt DESC, id DESC LIMIT ?",
                arguments: [companyID, engineerLogin, limit]
            ).map(UsageRecord.init(row:))
        }
    }

    /// Usage records in the file, for tests and tools.
    public func usageCount() throws -> Int {
        try self.reading { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM session") ?? 0 }
    }

    // MARK: Retention

    /// The rows past retention at `now`: usage records that ended before the usage cutoff,
    /// access-log entries from before the access-log cutoff. `held` picks the rows of
    /// companies under legal hold, `!held` the others.
    private static func expired(policy: RetentionPolicy, now: Date) -> (sessions: String, access: String, arguments: (usage: Milliseconds, access: Date)) {
        // access_log.at is a GRDB datetime (text, UTC): bind a Date for the same format.
        ("endedAt IS NOT NULL AND endedAt < ?", "at < ?", (policy.usageCutoff(now: now), Date(milliseconds: policy.accessLogCutoff(now: now))))
    }

    private static let held = "SELECT companyID FROM legal_hold"

    public func purgeCounts(policy: RetentionPolicy, now: Date) throws -> PurgeReport {
        let (sessions, access, cutoff) = Self.expired(policy: policy, now: now)
        let held = Self.held
        return try self.reading { db in
            PurgeReport(
                sessions: try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM session WHERE \(sessions) AND companyID NOT IN (\(held))", arguments: [cutoff.usage])
                    ?? 0,
                accessLogEntries: try Int.fetchOne(
                    db,
                    sql: """
                        SELECT (SELECT COUNT(*) FROM access_log WHERE \(access) AND (companyID IS NULL OR companyID NOT IN (\(held)))) \
                        + (SELECT COUNT(*) FROM security_alert WHERE \(access) AND companyID NOT IN (\(held)))
                        """, arguments: [cutoff.access, cutoff.access]
                ) ?? 0,
                heldSessions: try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM session WHERE \(sessions) AND companyID IN (\(held))", arguments: [cutoff.usage])
                    ?? 0,
                heldAccessLogEntries: try Int.fetchOne(
                    db, sql: "SELECT COUNT(*) FROM access_log WHERE \(access) AND companyID IN (\(held))", arguments: [cutoff.access]) ?? 0,
                usageCutoff: Date(milliseconds: cutoff.usage), accessLogCutoff: cutoff.access, dryRun: true
            )
        }
    }

    /// One short transaction: usage records first, then access-log entries with what is
    /// left of `limit`. Rows are picked by rowid, so each batch is an index range, and a
    /// purge interrupted between batches (a crash) leaves only expired rows for the next
    /// run. `secure_delete` overwrites each deleted row where it lies, but not the older
    /// copies of it that SQLite's page balancing may have left in the free space of other
    /// pages: a batch that deleted rows marks the file for ``finishPurge(_:actor:)``'s
    /// VACUUM, in the same transaction, so the mark survives a crash.
    public func purgeBatch(policy: RetentionPolicy, now: Date, limit: Int) throws -> PurgeBatchResult {
        let limit = max(1, limit)
        let (sessions, access, cutoff) = Self.expired(policy: policy, now: now)
        let held = Self.held
        return try self.writing { db in
            try db.execute(
                sql: """
                    DELETE FROM session WHERE rowid IN (SELECT rowid FROM session WHERE \(sessions) \
                    AND companyID NOT IN (\(held)) LIMIT ?)
                    """, arguments: [cutoff.usage, limit])
            var batch = PurgeBatchResult(sessions: db.changesCount, accessLogEntries: 0, hasMore: false)
            if batch.sessions < limit {
                try db.execute(
                    sql: """
                        DELETE FROM access_log WHERE id IN (SELECT id FROM access_log WHERE \(access) \
                        AND (companyID IS NULL OR companyID NOT IN (\(held))) LIMIT ?)
                        """, arguments: [cutoff.access, limit - batch.sessions])
                batch.accessLogEntries = db.changesCount
            }
            if batch.sessions + batch.accessLogEntries < limit {
                // Security alerts name people and addresses: kept as long as the access log.
                try db.execute(
                    sql: """
                        DELETE FROM security_alert WHERE id IN (SELECT id FROM security_alert WHERE \(access) \
                        AND companyID NOT IN (\(held)) LIMIT ?)
                        """, arguments: [cutoff.access, limit - batch.sessions - batch.accessLogEntries])
                batch.accessLogEntries += db.changesCount
            }
            // A full batch may have left more behind; one that was not full took the last.
            batch.hasMore = batch.sessions + batch.accessLogEntries == limit
            if batch.sessions + batch.accessLogEntries > 0 { try Self.markDeletedSinceVacuum(db) }
            return batch
        }
    }

    /// The audit entry of the run; after a real purge, a VACUUM if rows were deleted since
    /// the last one, and the write-ahead log's truncation, so that no copy of a purged row
    /// survives in the database file or in `-wal` (docs/OPERATIONS.md "Retention").
    public func finishPurge(_ report: PurgeReport, actor: String) throws {
        try self.appendAudit(AuditEntry(at: self.now(), actor: actor, action: report.dryRun ? .purgeDryRun : .purge, detail: Self.describe(report)))
        guard !report.dryRun else { return }
        // The truncation also when the VACUUM failed: the rows' page images in `-wal` go.
        let vacuum = Result { try self.vacuumAfterDeletion() }
        try self.truncateWriteAheadLog()
        try vacuum.get()
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

    /// The header field `PRAGMA user_version` as the purge uses it: 0 when no row was
    /// deleted by a purge since the last VACUUM; otherwise it counts the purge batches that
    /// deleted rows since then. It lives in the database header, so a batch sets it in its
    /// own transaction and a crash cannot lose it. The schema's version is GRDB's
    /// `grdb_migrations` table; nothing else uses this field.
    private static func markDeletedSinceVacuum(_ db: Database) throws {
        let marks = try Int32.fetchOne(db, sql: "PRAGMA user_version") ?? 0
        try db.execute(sql: "PRAGMA user_version = \(marks == .max ? 1 : marks + 1)")
    }

    /// Whether rows were purged since the last VACUUM (``markDeletedSinceVacuum(_:)``).
    package func hasPurgedRowsSinceVacuum() throws -> Bool {
        try self.reading { try Int32.fetchOne($0, sql: "PRAGMA user_version") ?? 0 } != 0
    }

    /// VACUUM, if a purge deleted rows since the last one: SQLite rebuilds the database
    /// from its live rows (in a temporary file, then into the database through the
    /// write-ahead log), so no copy of a deleted row stays in the free space of a page.
    /// The mark is cleared only if no other process deleted rows while the VACUUM ran.
    private func vacuumAfterDeletion() throws {
        do {
            try self.database.writeWithoutTransaction { db in
                let marks = try Int32.fetchOne(db, sql: "PRAGMA user_version") ?? 0
                guard marks != 0 else { return }
                try db.execute(sql: "VACUUM")
                try db.inTransaction(.immediate) {
                    if try Int32.fetchOne(db, sql: "PRAGMA user_version") == marks { try db.execute(sql: "PRAGMA user_version = 0") }
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

    /// Copies the write-ahead log into the database and truncates it to zero bytes, so the
    /// page images it held (with deleted rows in them) are gone (NOTES.md "SQLite").
    public func truncateWriteAheadLog() throws {
        do {
            _ = try self.database.writeWithoutTransaction { try $0.checkpoint(.truncate) }
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
                || (try Int.fetchOne(db, sql: "SELECT 1 FROM session WHERE companyID = ? LIMIT 1", arguments: [companyID]) != nil)
            guard known else { throw Self.noCompany(companyID) }
            if try LegalHold.exists(db, key: companyID) {
                throw StoreError(.conflict, "company \(companyID) is already under legal hold; `relay-server company release \(companyID)` lifts it")
            }
            try hold.insert(db)
            let sessions = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM session WHERE companyID = ?", arguments: [companyID]) ?? 0
            try AuditEntry(at: self.now(), actor: actor, action: .hold, companyID: companyID, detail: "sessions=\(sessions)").insert(db)
        }
        return hold
    }

    public func releaseHold(companyID: String, actor: String) throws {
        try self.writing { db in
            guard try LegalHold.deleteOne(db, key: companyID) else {
                throw StoreError(.notFound, "company \(companyID) is not under legal hold; `relay-server company holds` lists the holds")
            }
            let sessions = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM session WHERE companyID = ?", arguments: [companyID]) ?? 0
            try AuditEntry(at: self.now(), actor: actor, action: .release, companyID: companyID, detail: "sessions=\(sessions)").insert(db)
        }
    }

    public func legalHolds() throws -> [LegalHold] {
        try self.reading { try LegalHold.order(Column("heldAt")).fetchRecords($0) }
    }
}
