public import Foundation
internal import GRDB

/// The admin console's queries and changes (``AdminStore``).
extension SQLiteStore: AdminStore {
    // MARK: People

    public func setRole(engineerID: String, role: AccountRole, actor: String) throws -> Engineer {
        try self.changeEngineer(engineerID, action: .engineerRole, actor: actor) { engineer, db in
            let before = engineer.role
            engineer.role = role
            if before == .manager, role != .manager {
                // No longer a manager: their engineers and groups go.
                try db.execute(sql: "UPDATE engineer SET managerID = NULL WHERE managerID = ?", arguments: [engineerID])
                try db.execute(sql: "DELETE FROM manager_group WHERE managerID = ?", arguments: [engineerID])
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
            try db.execute(sql: "DELETE FROM manager_group WHERE managerID = ?", arguments: [engineerID])
            for name in names {
                try db.execute(sql: "INSERT INTO manager_group (managerID, groupName) VALUES (?, ?)", arguments: [engineerID, name])
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
                try db.execute(sql: "DELETE FROM web_session WHERE engineerID = ?", arguments: [engineerID])
                try db.execute(sql: "DELETE FROM signin_link WHERE engineerID = ?", arguments: [engineerID])
            }
            return nil
        }
    }

    /// Changes one engineer with its audit entry and returns them as they are now (with
    /// company name and groups).
    private func changeEngineer(
        _ id: String, action: AuditEntry.Action, actor: String, _ change: (inout Engineer, Database) throws -> String?
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

    /// The `WHERE` terms of `filter` other than its time range, for the `session` table
    /// (as `s`), with their arguments.
    static func usageConditions(_ filter: UsageFilter) -> (sql: String, arguments: StatementArguments) {
        var terms = ["s.companyID = ?"]
        var arguments: StatementArguments = [filter.companyID]
        switch filter.scope {
        case .company:
            break
        case .engineer(let login):
            terms.append("s.engineerLogin = ?")
            arguments += [login]
        case .managed(let logins, let hostIDs):
            var either: [String] = []
            if !logins.isEmpty {
                either.append("s.engineerLogin IN (\(Self.placeholders(logins.count)))")
                arguments += StatementArguments(logins)
            }
            if !hostIDs.isEmpty {
                either.append("s.hostID IN (\(Self.placeholders(hostIDs.count)))")
                arguments += StatementArguments(hostIDs)
            }
            terms.append(either.isEmpty ? "0" : "(" + either.joined(separator: " OR ") + ")")
        }
        if let login = filter.engineerLogin {
            terms.append("s.engineerLogin = ?")
            arguments += [login]
        }
        if let hostID = filter.hostID {
            terms.append("s.hostID = ?")
            arguments += [hostID]
        }
        if let mode = filter.mode {
            terms.append("s.mode = ?")
            arguments += [mode.rawValue]
        }
        if let reason = filter.endReason {
            terms.append("s.endReason = ?")
            arguments += [reason.rawValue]
        }
        if filter.openOnly { terms.append("s.endedAt IS NULL") }
        return (terms.joined(separator: " AND "), arguments)
    }

    /// One SQL statement and its arguments.
    typealias Statement = (sql: String, arguments: StatementArguments)

    /// The page of `filter` after `cursor`, in page order (startedAt, id).
    static func usagePageStatement(_ filter: UsageFilter, after cursor: UsageCursor?, limit: Int) -> Statement {
        var (sql, arguments) = Self.usageConditions(filter)
        // The cursor's start time is the range's lower bound too (never below the range's),
        // so that SQLite starts the index range there (see usagePage(companyID:…)).
        sql += " AND s.startedAt >= ? AND s.startedAt < ?"
        arguments += [max(cursor?.startedAt ?? filter.range.from, filter.range.from), filter.range.to]
        if let cursor {
            sql += " AND (s.startedAt > ? OR (s.startedAt = ? AND s.id > ?))"
            arguments += [cursor.startedAt, cursor.startedAt, cursor.id]
        }
        arguments += [max(1, limit)]
        let columns = Self.sessionColumns.split(separator: ",").map { "s." + $0.trimmingCharacters(in: .whitespacesAndNewlines) }.joined(separator: ", ")
        return ("SELECT \(columns) FROM session s WHERE \(sql) ORDER BY s.startedAt, s.id LIMIT ?", arguments)
    }

    public func usagePage(_ filter: UsageFilter, after cursor: UsageCursor?, limit: Int) throws -> [UsageRecord] {
        let statement = Self.usagePageStatement(filter, after: cursor, limit: limit)
        return try self.reading { db in
            // A cursor into a reserved array: no copy of each row as `Row.fetchAll` makes.
            let rows = try Row.fetchCursor(db, sql: statement.sql, arguments: statement.arguments)
            var page: [UsageRecord] = []
            page.reserveCapacity(max(1, limit))
            while let row = try rows.next() { page.append(UsageRecord(row: row)) }
            return page
        }
    }

    public func usageCount(_ filter: UsageFilter) throws -> Int {
        var (sql, arguments) = Self.usageConditions(filter)
        sql += " AND s.startedAt >= ? AND s.startedAt < ?"
        arguments += [filter.range.from, filter.range.to]
        return try self.reading { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM session s WHERE \(sql)", arguments: arguments) ?? 0 }
    }

    /// A session's length in seconds: its duration, or, still running, up to its last checkpoint.
    private static let sessionSeconds = "COALESCE(s.durationSeconds, (s.checkpointedAt - s.startedAt) / 1000)"

    /// The summary's two statements: sessions, seconds and bytes of each day, and the top
    /// engineers. Both read index entries only (migration v8's covering indexes): every
    /// column they use is in `session_company_started` and in `session_engineer`.
    static func usageSummaryStatements(
        _ filter: UsageFilter, days: [(key: String, from: Milliseconds, to: Milliseconds)]
    ) -> (byDay: Statement, byEngineer: Statement) {
        let (conditions, arguments) = Self.usageConditions(filter)
        let seconds = Self.sessionSeconds
        // One index range per day: each day's bounds are local midnights, so a day of a
        // clock change has its 23 or 25 hours.
        var dayArguments = StatementArguments()
        for day in days { dayArguments += [day.key, day.from, day.to] }
        let values = Array(repeating: "(?, ?, ?)", count: days.count).joined(separator: ", ")
        let byDay = """
            WITH days(day, lo, hi) AS (VALUES \(values))
            SELECT days.day, COUNT(s.id), COALESCE(SUM(\(seconds)), 0), COALESCE(SUM(s.bytesToViewer + s.bytesToHost), 0) FROM days
            LEFT JOIN session s ON s.startedAt >= days.lo AND s.startedAt < days.hi AND \(conditions)
            GROUP BY days.day ORDER BY days.lo
            """
        // `+s.engineerLogin`: grouping by the plain column makes SQLite walk the company's
        // whole `session_engineer` to save the sort; the range alone is far smaller.
        let byEngineer = """
            SELECT s.engineerLogin, COUNT(*) AS n, COALESCE(SUM(\(seconds)), 0) AS t
            FROM session s WHERE \(conditions) AND s.startedAt >= ? AND s.startedAt < ?
            GROUP BY +s.engineerLogin ORDER BY t DESC, n DESC, s.engineerLogin LIMIT ?
            """
        return (
            (byDay, dayArguments + arguments),
            (byEngineer, arguments + [filter.range.from, filter.range.to, UsageSummary.topEngineers])
        )
    }

    public func usageSummary(_ filter: UsageFilter, timeZone: ExportTimeZone) throws -> UsageSummary {
        let statements = Self.usageSummaryStatements(filter, days: try Self.days(of: filter.range, timeZone: timeZone))
        return try self.reading { db in
            let dayRows = try Row.fetchAll(db, sql: statements.byDay.sql, arguments: statements.byDay.arguments)
            let byDay = dayRows.map { UsageSummary.Bucket(key: $0[0], sessions: $0[1], seconds: $0[2]) }
            let bytes = dayRows.reduce(Int64(0)) { $0 + ($1[3] as Int64) }
            let byEngineer = try Row.fetchAll(db, sql: statements.byEngineer.sql, arguments: statements.byEngineer.arguments)
                .map { UsageSummary.Bucket(key: $0[0], sessions: $0[1], seconds: $0[2]) }
            // The days cover the range exactly, so their sums are the totals: one pass less.
            return UsageSummary(
                sessions: byDay.reduce(0) { $0 + $1.sessions }, seconds: byDay.reduce(0) { $0 + $1.seconds }, bytes: bytes, byDay: byDay,
                byEngineer: byEngineer)
        }
    }

    /// SQLite's plan (`EXPLAIN QUERY PLAN` details) for each statement the console runs for
    /// `filter`: `page`, `deep page` (after a cursor), `summary by day`, `summary by engineer`.
    /// For the tests that pin which index each one reads.
    package func usageQueryPlans(_ filter: UsageFilter, timeZone: ExportTimeZone) throws -> [String: [String]] {
        let summary = Self.usageSummaryStatements(filter, days: try Self.days(of: filter.range, timeZone: timeZone))
        let statements: [String: Statement] = [
            "page": Self.usagePageStatement(filter, after: nil, limit: 50),
            "deep page": Self.usagePageStatement(filter, after: UsageCursor(startedAt: filter.range.from, id: "se-"), limit: 50),
            "summary by day": summary.byDay,
            "summary by engineer": summary.byEngineer,
        ]
        return try self.reading { db in
            try statements.mapValues { statement in
                try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + statement.sql, arguments: statement.arguments).map { $0["detail"] as String }
            }
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
            let held = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM legal_hold WHERE companyID = ?", arguments: [companyID]) ?? 0 > 0
            let sessions =
                try Int.fetchOne(
                    db, sql: "SELECT COUNT(*) FROM session WHERE companyID = ? AND endedAt IS NOT NULL AND endedAt < ?", arguments: [companyID, usageCutoff])
                ?? 0
            let access =
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM access_log WHERE companyID = ? AND at < ?", arguments: [companyID, accessCutoff]) ?? 0
            return PurgeReport(
                sessions: held ? 0 : sessions, accessLogEntries: held ? 0 : access, heldSessions: held ? sessions : 0,
                heldAccessLogEntries: held ? access : 0, usageCutoff: Date(milliseconds: usageCutoff), accessLogCutoff: accessCutoff, dryRun: true)
        }
    }

    // MARK: Logs

    public func auditPage(_ filter: LogFilter, limit: Int) throws -> [AuditEntry] {
        try self.reading { db in
            var request = AuditEntry.filter(
                Column("companyID") == filter.companyID && Column("at") >= Date(milliseconds: filter.range.from)
                    && Column("at") < Date(milliseconds: filter.range.to))
            if let who = filter.who { request = request.filter(Column("actor") == who) }
            if let what = filter.what { request = request.filter(Column("action") == what) }
            if let before = filter.before { request = request.filter(Column("id") < before) }
            return try request.order(Column("id").desc).limit(max(1, limit)).fetchRecords(db)
        }
    }

    public func accessPage(_ filter: LogFilter, limit: Int) throws -> [AccessEvent] {
        try self.reading { db in
            var request = AccessEvent.filter(
                Column("companyID") == filter.companyID && Column("at") >= Date(milliseconds: filter.range.from)
                    && Column("at") < Date(milliseconds: filter.range.to))
            if let who = filter.who { request = request.filter(Column("subject") == who) }
            if let what = filter.what { request = request.filter(Column("event") == what) }
            if let outcome = filter.outcome { request = request.filter(Column("outcome") == outcome) }
            if let before = filter.before { request = request.filter(Column("id") < before) }
            return try request.order(Column("id").desc).limit(max(1, limit)).fetchRecords(db)
        }
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
        try self.reading { try APIToken.filter(Column("companyID") == companyID).order(Column("createdAt")).fetchRecords($0) }
    }

    public func revokeAPIToken(id: String, companyID: String, actor: String) throws {
        try self.writing { db in
            guard let token = try APIToken.fetchOne(db, key: id), token.companyID == companyID else {
                throw StoreError(.notFound, "no API token with id \(id) in your company; the tokens list shows the ids")
            }
            try token.delete(db)
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
            try self.writing { db in try db.execute(sql: "UPDATE api_token SET lastUsedAt = ? WHERE id = ?", arguments: [at, id]) }
        }
        return token
    }

    // MARK: Alerts

    public func noteSignInNetwork(engineerID: String, network: String, at: Date) throws -> Bool {
        try self.writing { db in
            let known = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM signin_network WHERE engineerID = ?", arguments: [engineerID]) ?? 0
            try db.execute(
                sql: "INSERT OR IGNORE INTO signin_network (engineerID, network, firstSeenAt) VALUES (?, ?, ?)", arguments: [engineerID, network, at])
            return known > 0 && db.changesCount > 0
        }
    }

    public func addAlert(_ alert: SecurityAlert) throws -> SecurityAlert {
        try self.writing { db in
            var alert = alert
            alert.id = nil
            try alert.insert(db)
            alert.id = db.lastInsertedRowID
            return alert
        }
    }

    public func alerts(companyID: String, before: Int64?, limit: Int) throws -> [SecurityAlert] {
        try self.reading { db in
            var request = SecurityAlert.filter(Column("companyID") == companyID)
            if let before { request = request.filter(Column("id") < before) }
            return try request.order(Column("id").desc).limit(max(1, limit)).fetchRecords(db)
        }
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
            try Row.fetchAll(
                db,
                sql: """
                    SELECT c.id, c.name,
                      (SELECT COUNT(*) FROM engineer e WHERE e.companyID = c.id),
                      (SELECT COUNT(*) FROM host h WHERE h.companyID = c.id),
                      (SELECT COUNT(*) FROM session s WHERE s.companyID = c.id AND s.startedAt >= ?),
                      EXISTS (SELECT 1 FROM legal_hold l WHERE l.companyID = c.id)
                    FROM company c ORDER BY c.name, c.id
                    """, arguments: [sessionsSince.milliseconds]
            ).map { CompanyCounts(id: $0[0], name: $0[1], engineers: $0[2], hosts: $0[3], sessionsSince: $0[4], held: $0[5]) }
        }
    }
}
