public import Foundation

/// The admin console's queries and changes (``AdminStore``).
extension SQLStore: AdminStore {
    // MARK: People

    public func setRole(engineerID: String, role: AccountRole, actor: String) throws -> Engineer {
        try self.changeEngineer(engineerID, action: .engineerRole, actor: actor) { engineer, db in
            let before = engineer.role
            engineer.role = role
            if before == .manager, role != .manager {
                // No longer a manager: their engineers and groups go.
                try db.execute("UPDATE engineer SET managerID = NULL WHERE managerID = \(engineerID)")
                try db.execute("DELETE FROM manager_group WHERE managerID = \(engineerID)")
            }
            return "role=\(role.rawValue) was=\(before.rawValue)"
        }
    }

    public func setManager(engineerID: String, managerID: String?, actor: String) throws -> Engineer {
        try self.changeEngineer(engineerID, action: .engineerManager, actor: actor) { engineer, db in
            if let managerID {
                guard managerID != engineerID else { throw StoreError(.invalidInput, "an engineer cannot be their own manager; choose another person") }
                guard let manager = try Engineer.fetchOne(db, key: managerID), manager.companyID == engineer.companyID else {
                    throw StoreError(.notFound, "no manager with id \(managerID) in company \(engineer.companyID); the engineers list shows the ids")
                }
                guard manager.role == .manager else {
                    throw StoreError(.invalidInput, "\(manager.login) is not a manager; make them one first (their role), then assign engineers to them")
                }
            }
            engineer.managerID = managerID
            return "manager=\(managerID ?? "none")"
        }
    }

    public func setManagerGroups(engineerID: String, groups: [String], actor: String) throws -> Engineer {
        let names = try Array(Set(groups.map { try Self.validName($0, what: "group name") })).sorted()
        return try self.changeEngineer(engineerID, action: .engineerGroups, actor: actor) { engineer, db in
            guard engineer.role == .manager else {
                throw StoreError(.invalidInput, "\(engineer.login) is not a manager; only managers have host groups")
            }
            try db.execute("DELETE FROM manager_group WHERE managerID = \(engineerID)")
            for name in names {
                try db.execute("INSERT INTO manager_group (managerID, groupName) VALUES (\(engineerID), \(name))")
            }
            return "groups=\(names.count)"
        }
    }

    public func setDisabled(engineerID: String, disabled: Bool, actor: String) throws -> Engineer {
        try self.changeEngineer(engineerID, action: disabled ? .engineerDisable : .engineerEnable, actor: actor) { engineer, db in
            engineer.disabledAt = disabled ? (engineer.disabledAt ?? self.now()) : nil
            if disabled {
                // Signed-in browsers and an unused invitation end now; the relay ends live
                // sessions at its next credential check.
                try db.execute("DELETE FROM web_session WHERE engineerID = \(engineerID)")
                try db.execute("DELETE FROM signin_link WHERE engineerID = \(engineerID)")
            }
            return nil
        }
    }

    /// Changes one engineer with its audit entry and returns them as they are now (with
    /// company name and groups).
    private func changeEngineer(
        _ id: String, action: AuditEntry.Action, actor: String, _ change: (inout Engineer, any SQLConnection) throws -> String?
    ) throws -> Engineer {
        try self.changeAccount(Engineer.self, id: id, kind: "engineer", action: action, actor: actor, companyID: \.companyID) { engineer, db in
            let detail = try change(&engineer, db)
            try engineer.update(db)
            engineer = try Self.withCompanyNames([engineer], db)[0]
            return detail
        }
    }

    // MARK: Hosts

    public func renameHost(id: String, name: String, actor: String) throws -> EnrolledHost {
        let name = try Self.validName(name, what: "host name")
        return try self.changeAccount(EnrolledHost.self, id: id, kind: "host", action: .hostRename, actor: actor, companyID: \.companyID) { host, db in
            host.name = name
            try host.update(db)
            return nil
        }
    }

    public func setHostGroup(id: String, group: String, actor: String) throws -> EnrolledHost {
        let trimmed = group.trimmingCharacters(in: .whitespacesAndNewlines)
        let group = trimmed.isEmpty ? "" : try Self.validName(trimmed, what: "group name")
        return try self.changeAccount(EnrolledHost.self, id: id, kind: "host", action: .hostGroup, actor: actor, companyID: \.companyID) { host, db in
            host.groupName = group
            try host.update(db)
            return nil
        }
    }

    // MARK: Usage

    /// The `WHERE` terms of `filter` other than its time range, for the `session` table (as `s`).
    static func usageConditions(_ filter: UsageFilter) -> SQL {
        var sql: SQL = "s.companyID = \(filter.companyID)"
        switch filter.scope {
        case .company:
            break
        case .engineer(let login):
            sql += " AND s.engineerLogin = \(login)"
        case .managed(let logins, let hostIDs):
            var either: [SQL] = []
            if !logins.isEmpty { either.append("s.engineerLogin IN (\(list: logins))") }
            if !hostIDs.isEmpty { either.append("s.hostID IN (\(list: hostIDs))") }
            sql += either.isEmpty ? " AND 1 = 0" : " AND (\(sql: SQL.joined(either, separator: " OR ")))"
        }
        if let login = filter.engineerLogin { sql += " AND s.engineerLogin = \(login)" }
        if let hostID = filter.hostID { sql += " AND s.hostID = \(hostID)" }
        if let mode = filter.mode { sql += " AND s.mode = \(mode.rawValue)" }
        if let reason = filter.endReason { sql += " AND s.endReason = \(reason.rawValue)" }
        if filter.openOnly { sql += " AND s.endedAt IS NULL" }
        return sql
    }

    /// The page of `filter` after `cursor`, in page order (startedAt, id).
    static func usagePageStatement(_ filter: UsageFilter, after cursor: UsageCursor?, limit: Int) -> SQL {
        var sql = Self.usageConditions(filter)
        // The cursor's start time is the range's lower bound too (never below the range's),
        // so that SQLite starts the index range there (see usagePage(companyID:…)).
        sql += " AND s.startedAt >= \(max(cursor?.startedAt ?? filter.range.from, filter.range.from)) AND s.startedAt < \(filter.range.to)"
        if let cursor {
            sql += " AND (s.startedAt > \(cursor.startedAt) OR (s.startedAt = \(cursor.startedAt) AND s.id > \(cursor.id)))"
        }
        let columns = Self.sessionColumns.split(separator: ",").map { "s." + $0.trimmingCharacters(in: .whitespacesAndNewlines) }.joined(separator: ", ")
        return "SELECT \(raw: columns) FROM session s WHERE \(sql: sql) ORDER BY s.startedAt, s.id LIMIT \(max(1, limit))"
    }

    public func usagePage(_ filter: UsageFilter, after cursor: UsageCursor?, limit: Int) throws -> [UsageRecord] {
        let statement = Self.usagePageStatement(filter, after: cursor, limit: limit)
        return try self.reading { db in try Self.records(statement, limit: limit, db) }
    }

    /// The usage records a query of ``sessionColumns`` returns, into an array reserved for `limit`.
    static func records(_ statement: SQL, limit: Int, _ db: any SQLConnection) throws -> [UsageRecord] {
        var page: [UsageRecord] = []
        page.reserveCapacity(max(1, limit))
        try db.forEachRow(statement) { page.append(try UsageRecord(row: $0)) }
        return page
    }

    public func usageCount(_ filter: UsageFilter) throws -> Int {
        var sql = Self.usageConditions(filter)
        sql += " AND s.startedAt >= \(filter.range.from) AND s.startedAt < \(filter.range.to)"
        return try self.reading { try $0.count("SELECT COUNT(*) FROM session s WHERE \(sql: sql)") }
    }

    /// A session's length in seconds: its duration, or, still running, up to its last checkpoint.
    private static let sessionSeconds: SQL = "COALESCE(s.durationSeconds, (s.checkpointedAt - s.startedAt) / 1000)"

    /// The summary's two statements: sessions, seconds and bytes of each day, and the top
    /// engineers. On SQLite both read index entries only (migration v8's covering indexes):
    /// every column they use is in `session_company_started` and in `session_engineer`.
    static func usageSummaryStatements(
        _ filter: UsageFilter, days: [(key: String, from: Milliseconds, to: Milliseconds)], dialect: SQLDialect
    ) -> (byDay: SQL, byEngineer: SQL) {
        let conditions = Self.usageConditions(filter)
        let seconds = Self.sessionSeconds
        // One index range per day: each day's bounds are local midnights, so a day of a
        // clock change has its 23 or 25 hours.
        let values = SQL.joined(days.map { day in "(\(day.key), \(day.from), \(day.to))" }, separator: ", ")
        // Sums as BIGINT: PostgreSQL's SUM of bigint is numeric.
        let byDay: SQL = """
            WITH days(day, lo, hi) AS (VALUES \(sql: values))
            SELECT days.day, COUNT(s.id), CAST(COALESCE(SUM(\(sql: seconds)), 0) AS BIGINT), \
            CAST(COALESCE(SUM(s.bytesToViewer + s.bytesToHost), 0) AS BIGINT) FROM days
            LEFT JOIN session s ON s.startedAt >= days.lo AND s.startedAt < days.hi AND \(sql: conditions)
            GROUP BY days.day, days.lo ORDER BY days.lo
            """
        // SQLite, `+s.engineerLogin`: grouping by the plain column makes SQLite walk the
        // company's whole `session_engineer` to save the sort; the range alone is far smaller.
        let group = dialect == .sqlite ? "+s.engineerLogin" : "s.engineerLogin"
        let byEngineer: SQL = """
            SELECT s.engineerLogin, COUNT(*) AS n, CAST(COALESCE(SUM(\(sql: seconds)), 0) AS BIGINT) AS t
            FROM session s WHERE \(sql: conditions) AND s.startedAt >= \(filter.range.from) AND s.startedAt < \(filter.range.to)
            GROUP BY \(raw: group) ORDER BY t DESC, n DESC, s.engineerLogin LIMIT \(UsageSummary.topEngineers)
            """
        return (byDay, byEngineer)
    }

    public func usageSummary(_ filter: UsageFilter, timeZone: ExportTimeZone) throws -> UsageSummary {
        let days = try Self.days(of: filter.range, timeZone: timeZone)
        return try self.reading { db in
            let statements = Self.usageSummaryStatements(filter, days: days, dialect: db.dialect)
            let dayRows = try db.rows(statements.byDay)
            let byDay = try dayRows.map { UsageSummary.Bucket(key: try $0[0], sessions: try $0[1], seconds: try $0[2]) }
            let bytes = try dayRows.reduce(Int64(0)) { $0 + (try $1[3] as Int64) }
            let byEngineer = try db.rows(statements.byEngineer).map { UsageSummary.Bucket(key: try $0[0], sessions: try $0[1], seconds: try $0[2]) }
            // The days cover the range exactly, so their sums are the totals: one pass less.
            return UsageSummary(
                sessions: byDay.reduce(0) { $0 + $1.sessions }, seconds: byDay.reduce(0) { $0 + $1.seconds }, bytes: bytes, byDay: byDay,
                byEngineer: byEngineer)
        }
    }

    /// The database's plan for each statement the console runs for `filter`: `page`,
    /// `deep page` (after a cursor), `summary by day`, `summary by engineer` (SQLite:
    /// `EXPLAIN QUERY PLAN` details; PostgreSQL: `EXPLAIN` lines). For the tests that pin
    /// which index each one reads.
    package func usageQueryPlans(_ filter: UsageFilter, timeZone: ExportTimeZone) throws -> [String: [String]] {
        let days = try Self.days(of: filter.range, timeZone: timeZone)
        return try self.reading { db in
            let summary = Self.usageSummaryStatements(filter, days: days, dialect: db.dialect)
            let statements: [String: SQL] = [
                "page": Self.usagePageStatement(filter, after: nil, limit: 50),
                "deep page": Self.usagePageStatement(filter, after: UsageCursor(startedAt: filter.range.from, id: "se-"), limit: 50),
                "summary by day": summary.byDay,
                "summary by engineer": summary.byEngineer,
            ]
            let explain: SQL = db.dialect == .sqlite ? "EXPLAIN QUERY PLAN " : "EXPLAIN "
            let detail = db.dialect == .sqlite ? 3 : 0
            return try statements.mapValues { statement in try db.rows(explain + statement).map { try $0[detail] as String } }
        }
    }

    /// The local days `range` touches, each as its name and its part of the range.
    static func days(of range: ExportRange, timeZone: ExportTimeZone) throws -> [(key: String, from: Milliseconds, to: Milliseconds)] {
        guard range.from < range.to else { throw StoreError(.invalidInput, "the range is empty: its end is not after its start") }
        // Checked before any day arithmetic: an unbounded range (Int64.min…max) must not overflow.
        let longest = Int64(UsageSummary.maximumDays + 1) * Civil.millisecondsPerDay
        guard range.from > Int64.min / 2, range.to < Int64.max / 2, range.to - range.from <= longest else {
            throw StoreError(.invalidInput, "the range spans more than \(UsageSummary.maximumDays) days; choose a shorter one for the chart")
        }
        var days: [(key: String, from: Milliseconds, to: Milliseconds)] = []
        var start = range.from
        var wall = Civil(start + Int64(timeZone.offset(at: start)) * 1000)
        while start < range.to {
            guard days.count < UsageSummary.maximumDays else {
                throw StoreError(.invalidInput, "the range spans more than \(UsageSummary.maximumDays) days; choose a shorter one for the chart")
            }
            let next = Civil(Civil(year: wall.year, month: wall.month, day: wall.day, millisecondOfDay: 0).milliseconds + Civil.millisecondsPerDay)
            let end = min(range.to, ExportRange.localMidnight(year: next.year, month: next.month, day: next.day, timeZone: timeZone))
            days.append((Self.dayName(wall), start, max(end, start + 1)))
            start = max(end, start + 1)
            wall = next
        }
        return days
    }

    private static func dayName(_ day: Civil) -> String {
        func two(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(day.year)-\(two(day.month))-\(two(day.day))"
    }

    public func purgeCounts(companyID: String, policy: RetentionPolicy, now: Date) throws -> PurgeReport {
        let usageCutoff = policy.usageCutoff(now: now)
        let accessCutoff = Date(milliseconds: policy.accessLogCutoff(now: now))
        return try self.reading { db in
            let held = try LegalHold.exists(db, key: companyID)
            let sessions = try db.count("SELECT COUNT(*) FROM session WHERE companyID = \(companyID) AND endedAt IS NOT NULL AND endedAt < \(usageCutoff)")
            let access = try db.count("SELECT COUNT(*) FROM access_log WHERE companyID = \(companyID) AND at < \(accessCutoff)")
            return PurgeReport(
                sessions: held ? 0 : sessions, accessLogEntries: held ? 0 : access, heldSessions: held ? sessions : 0,
                heldAccessLogEntries: held ? access : 0, usageCutoff: Date(milliseconds: usageCutoff), accessLogCutoff: accessCutoff, dryRun: true)
        }
    }

    // MARK: Logs

    public func auditPage(_ filter: LogFilter, limit: Int) throws -> [AuditEntry] {
        var sql = Self.logConditions(filter)
        if let who = filter.who { sql += " AND actor = \(who)" }
        if let what = filter.what { sql += " AND action = \(what)" }
        return try self.reading { db in try AuditEntry.fetchAll(db, sql + " ORDER BY id DESC LIMIT \(max(1, limit))") }
    }

    public func accessPage(_ filter: LogFilter, limit: Int) throws -> [AccessEvent] {
        var sql = Self.logConditions(filter)
        if let who = filter.who { sql += " AND subject = \(who)" }
        if let what = filter.what { sql += " AND event = \(what)" }
        if let outcome = filter.outcome { sql += " AND outcome = \(outcome)" }
        return try self.reading { db in try AccessEvent.fetchAll(db, sql + " ORDER BY id DESC LIMIT \(max(1, limit))") }
    }

    /// A log page's company, time range and `before` cursor, as a `WHERE` clause.
    private static func logConditions(_ filter: LogFilter) -> SQL {
        var sql: SQL = """
            WHERE companyID = \(filter.companyID) AND at >= \(Date(milliseconds: filter.range.from)) \
            AND at < \(Date(milliseconds: filter.range.to))
            """
        if let before = filter.before { sql += " AND id < \(before)" }
        return sql
    }

    // MARK: API tokens

    /// What every API token starts with, so that secret scanners can find leaked ones.
    public static let apiTokenPrefix = "sra_"

    public func createAPIToken(companyID: String, name: String, scope: TokenScope, actor: String) throws -> (APIToken, secret: String) {
        let name = try Self.validName(name, what: "token name")
        let secret = Secrets.makeSecret()
        let token = APIToken(
            id: Secrets.makeID(prefix: "tk"), companyID: companyID, name: name, digest: Secrets.digest(secret), scope: scope, createdAt: self.now(),
            createdBy: actor)
        try self.writing { db in
            guard try Company.exists(db, key: companyID) else { throw Self.noCompany(companyID) }
            try token.insert(db)
            try AuditEntry(at: self.now(), actor: actor, action: .tokenCreate, companyID: companyID, subject: token.id, detail: "scope=\(scope.rawValue)")
                .insert(db)
        }
        return (token, Self.apiTokenPrefix + token.id + "." + secret)
    }

    public func apiTokens(companyID: String) throws -> [APIToken] {
        try self.reading { try APIToken.fetchAll($0, "WHERE companyID = \(companyID) ORDER BY createdAt, id") }
    }

    public func revokeAPIToken(id: String, companyID: String, actor: String) throws {
        try self.writing { db in
            guard let token = try APIToken.fetchOne(db, key: id), token.companyID == companyID else {
                throw StoreError(.notFound, "no API token with id \(id) in your company; the tokens list shows the ids")
            }
            try APIToken.deleteOne(db, key: token.id)
            try AuditEntry(at: self.now(), actor: actor, action: .tokenRevoke, companyID: companyID, subject: id).insert(db)
        }
    }

    public func authenticateAPIToken(_ text: String, at: Date) throws -> APIToken? {
        guard text.hasPrefix(Self.apiTokenPrefix), let (id, secret) = Secrets.splitToken(String(text.dropFirst(Self.apiTokenPrefix.count))) else {
            return nil
        }
        guard var token = try self.reading({ try APIToken.fetchOne($0, key: id) }), Secrets.matches(secret, digest: token.digest) else { return nil }
        // The last use to the minute: one write a minute at most, whatever a script sends.
        if token.lastUsedAt.map({ at.timeIntervalSince($0) >= 60 }) ?? true {
            token.lastUsedAt = at
            try self.writing { db in try db.execute("UPDATE api_token SET lastUsedAt = \(at) WHERE id = \(id)") }
        }
        return token
    }

    // MARK: Alerts

    public func noteSignInNetwork(engineerID: String, network: String, at: Date) throws -> Bool {
        try self.writing { db in
            let known = try db.count("SELECT COUNT(*) FROM signin_network WHERE engineerID = \(engineerID)")
            let added = try db.execute(
                """
                INSERT INTO signin_network (engineerID, network, firstSeenAt) VALUES (\(engineerID), \(network), \(at)) \
                ON CONFLICT (engineerID, network) DO NOTHING
                """)
            return known > 0 && added > 0
        }
    }

    public func addAlert(_ alert: SecurityAlert) throws -> SecurityAlert {
        try self.writing { db in
            var alert = alert
            alert.id = nil
            return try alert.inserted(db)
        }
    }

    public func alerts(companyID: String, before: Int64?, limit: Int) throws -> [SecurityAlert] {
        var sql: SQL = "WHERE companyID = \(companyID)"
        if let before { sql += " AND id < \(before)" }
        return try self.reading { db in try SecurityAlert.fetchAll(db, sql + " ORDER BY id DESC LIMIT \(max(1, limit))") }
    }

    public func setWebhook(companyID: String, url: String?, actor: String) throws -> Webhook? {
        let webhook = url.map { Webhook(url: $0, secret: Secrets.makeSecret()) }
        try self.writing { db in
            guard var company = try Company.fetchOne(db, key: companyID) else { throw Self.noCompany(companyID) }
            company.webhookURL = webhook?.url
            company.webhookSecret = webhook?.secret
            try company.update(db)
            try AuditEntry(at: self.now(), actor: actor, action: .webhookSet, companyID: companyID, detail: webhook == nil ? "removed" : "set").insert(db)
        }
        return webhook
    }

    public func webhook(companyID: String) throws -> Webhook? {
        let company = try self.company(id: companyID)
        guard let url = company.webhookURL, let secret = company.webhookSecret else { return nil }
        return Webhook(url: url, secret: secret)
    }

    // MARK: Operator

    public func companyCounts(sessionsSince: Date) throws -> [CompanyCounts] {
        try self.reading { db in
            try db.rows(
                """
                SELECT c.id, c.name,
                  (SELECT COUNT(*) FROM engineer e WHERE e.companyID = c.id),
                  (SELECT COUNT(*) FROM host h WHERE h.companyID = c.id),
                  (SELECT COUNT(*) FROM session s WHERE s.companyID = c.id AND s.startedAt >= \(sessionsSince.milliseconds)),
                  EXISTS (SELECT 1 FROM legal_hold l WHERE l.companyID = c.id)
                FROM company c ORDER BY c.name, c.id
                """
            ).map { CompanyCounts(id: try $0[0], name: try $0[1], engineers: try $0[2], hosts: try $0[3], sessionsSince: try $0[4], held: try $0[5]) }
        }
    }
}
