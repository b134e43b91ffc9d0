import Foundation

/// A record the store keeps as one row of one table, its columns written out: the same
/// statements serve SQLite and PostgreSQL, and nothing maps a column by reflection.
protocol SQLRecord {
    static var table: String { get }
    /// The columns, in the order of ``values`` and of ``init(row:)``; the first is the key.
    static var columns: [String] { get }
    /// A row of ``columns``.
    init(row: SQLRow) throws
    var values: [SQLValue] { get }
}

extension SQLRecord {
    /// `a, b, c`: for `SELECT \(raw: Record.columnList) FROM …`.
    static var columnList: String { Self.columns.joined(separator: ", ") }
    static var key: String { Self.columns[0] }

    /// `SELECT columns FROM table` and `tail` (a `WHERE`, `ORDER BY`, `LIMIT`).
    static func select(_ tail: SQL = "") -> SQL { "SELECT \(raw: Self.columnList) FROM \(raw: Self.table) " + tail }

    static func fetchAll(_ db: any SQLConnection, _ tail: SQL = "") throws -> [Self] {
        try db.rows(Self.select(tail)).map(Self.init(row:))
    }

    static func fetchOne(_ db: any SQLConnection, _ tail: SQL) throws -> Self? {
        try db.row(Self.select(tail)).map(Self.init(row:))
    }

    static func fetchOne(_ db: any SQLConnection, key: some SQLValueConvertible) throws -> Self? {
        try Self.fetchOne(db, "WHERE \(raw: Self.key) = \(key)")
    }

    static func exists(_ db: any SQLConnection, key: some SQLValueConvertible) throws -> Bool {
        try db.row("SELECT 1 FROM \(raw: Self.table) WHERE \(raw: Self.key) = \(key)") != nil
    }

    @discardableResult
    static func deleteOne(_ db: any SQLConnection, key: some SQLValueConvertible) throws -> Bool {
        try db.execute("DELETE FROM \(raw: Self.table) WHERE \(raw: Self.key) = \(key)") > 0
    }

    func insert(_ db: any SQLConnection) throws {
        try db.execute(Self.insertStatement(columns: Self.columns, values: self.values))
    }

    /// Writes every column but the key over the row with this record's key.
    func update(_ db: any SQLConnection) throws {
        let values = self.values
        let assignments = zip(Self.columns, values).dropFirst().map { column, value in SQL(parts: [.text("\(column) = "), .value(value)]) }
        try db.execute(
            "UPDATE \(raw: Self.table) SET \(sql: SQL.joined(Array(assignments), separator: ", ")) WHERE \(raw: Self.key) = " + SQL(parts: [.value(values[0])]))
    }

    static func insertStatement(columns: [String], values: [SQLValue]) -> SQL {
        let placeholders = SQL.joined(values.map { SQL(parts: [.value($0)]) }, separator: ", ")
        return "INSERT INTO \(raw: Self.table) (\(raw: columns.joined(separator: ", "))) VALUES (\(sql: placeholders))"
    }
}

/// A record whose key the database numbers (`id`, counting up): inserted without it.
protocol SQLNumberedRecord: SQLRecord {
    var id: Int64? { get set }
}

extension SQLNumberedRecord {
    /// Inserts the record and returns it with its id: the one it has, or else the one the
    /// database gave it.
    @discardableResult
    func inserted(_ db: any SQLConnection) throws -> Self {
        let numbered = self.id == nil
        let statement =
            Self.insertStatement(
                columns: Array(Self.columns.dropFirst(numbered ? 1 : 0)), values: Array(self.values.dropFirst(numbered ? 1 : 0))) + " RETURNING id"
        var record = self
        record.id = try db.value(statement, as: Int64.self)
        return record
    }

    func insert(_ db: any SQLConnection) throws { try self.inserted(db) }
}

extension StoredVocabulary {
    var sqlValue: SQLValue { .text(self.rawValue) }
    init(sqlValue: SQLValue) throws { self.init(rawValue: try String(sqlValue: sqlValue)) }
}

extension Company: SQLRecord {
    static let table = "company"
    static let columns = ["id", "name", "adminTokenDigest", "createdAt", "confirmSecurityCode", "webhookURL", "webhookSecret"]
    init(row: SQLRow) throws {
        self.init(id: try row[0], name: try row[1], adminTokenDigest: try row[2], createdAt: try row[3])
        self.confirmSecurityCode = try row[4]
        self.webhookURL = try row[5]
        self.webhookSecret = try row[6]
    }
    var values: [SQLValue] {
        [
            self.id.sqlValue, self.name.sqlValue, self.adminTokenDigest.sqlValue, self.createdAt.sqlValue, self.confirmSecurityCode.sqlValue,
            self.webhookURL.sqlValue, self.webhookSecret.sqlValue,
        ]
    }
}

extension Engineer: SQLRecord {
    static let table = "engineer"
    /// ``companyName`` and ``confirmSecurityCode`` come from the company, ``groups`` from
    /// `manager_group`; the web sign-in columns are read on their own (``WebCredentials``).
    static let columns = ["id", "companyID", "login", "tokenDigest", "publicKey", "createdAt", "role", "managerID", "disabledAt"]
    init(row: SQLRow) throws {
        self.init(id: try row[0], companyID: try row[1], login: try row[2], tokenDigest: try row[3], publicKey: try row[4], createdAt: try row[5])
        self.role = AccountRole(rawValue: try row[6])
        self.managerID = try row[7]
        self.disabledAt = try row[8]
    }
    var values: [SQLValue] {
        [
            self.id.sqlValue, self.companyID.sqlValue, self.login.sqlValue, self.tokenDigest.sqlValue, self.publicKey.sqlValue,
            self.createdAt.sqlValue, self.role.sqlValue, self.managerID.sqlValue, self.disabledAt.sqlValue,
        ]
    }
}

extension EnrolledHost: SQLRecord {
    static let table = "host"
    static let columns = ["id", "companyID", "name", "secretDigest", "publicKey", "createdAt", "lastSeenAt", "groupName"]
    init(row: SQLRow) throws {
        self.init(id: try row[0], companyID: try row[1], name: try row[2], secretDigest: try row[3], publicKey: try row[4], createdAt: try row[5])
        self.lastSeenAt = try row[6]
        self.groupName = try row[7]
    }
    var values: [SQLValue] {
        [
            self.id.sqlValue, self.companyID.sqlValue, self.name.sqlValue, self.secretDigest.sqlValue, self.publicKey.sqlValue,
            self.createdAt.sqlValue, self.lastSeenAt.sqlValue, self.groupName.sqlValue,
        ]
    }
}

extension AccessEvent: SQLNumberedRecord {
    static let table = "access_log"
    static let columns = ["id", "at", "event", "outcome", "sourceAddress", "companyID", "subject", "detail"]
    init(row: SQLRow) throws {
        self.init(
            id: try row[0], at: try row[1], event: Kind(rawValue: try row[2]), outcome: try Outcome.stored(try row[3]), sourceAddress: try row[4],
            companyID: try row[5], subject: try row[6], detail: try row[7])
    }
    var values: [SQLValue] {
        [
            self.id.sqlValue, self.at.sqlValue, self.event.sqlValue, self.outcome.rawValue.sqlValue, self.sourceAddress.sqlValue,
            self.companyID.sqlValue, self.subject.sqlValue, self.detail.sqlValue,
        ]
    }
}

extension AccessEvent.Outcome {
    static func stored(_ text: String) throws -> Self {
        guard let outcome = Self(rawValue: text) else { throw SQLDecodingError(expected: "an access outcome", found: .text(text)) }
        return outcome
    }
}

extension AuditEntry: SQLNumberedRecord {
    static let table = "audit_log"
    static let columns = ["id", "at", "actor", "action", "companyID", "subject", "detail"]
    init(row: SQLRow) throws {
        self.init(
            id: try row[0], at: try row[1], actor: try row[2], action: Action(rawValue: try row[3]), companyID: try row[4], subject: try row[5],
            detail: try row[6])
    }
    var values: [SQLValue] {
        [
            self.id.sqlValue, self.at.sqlValue, self.actor.sqlValue, self.action.sqlValue, self.companyID.sqlValue, self.subject.sqlValue,
            self.detail.sqlValue,
        ]
    }
}

extension LegalHold: SQLRecord {
    static let table = "legal_hold"
    static let columns = ["companyID", "reason", "heldAt", "heldBy"]
    init(row: SQLRow) throws {
        self.init(companyID: try row[0], reason: try row[1], heldAt: try row[2], heldBy: try row[3])
    }
    var values: [SQLValue] { [self.companyID.sqlValue, self.reason.sqlValue, self.heldAt.sqlValue, self.heldBy.sqlValue] }
}

extension APIToken: SQLRecord {
    static let table = "api_token"
    static let columns = ["id", "companyID", "name", "digest", "scope", "createdAt", "createdBy", "lastUsedAt"]
    init(row: SQLRow) throws {
        let scope: String = try row[4]
        guard let known = TokenScope(rawValue: scope) else { throw SQLDecodingError(expected: "a token scope", found: .text(scope)) }
        self.init(
            id: try row[0], companyID: try row[1], name: try row[2], digest: try row[3], scope: known, createdAt: try row[5], createdBy: try row[6],
            lastUsedAt: try row[7])
    }
    var values: [SQLValue] {
        [
            self.id.sqlValue, self.companyID.sqlValue, self.name.sqlValue, self.digest.sqlValue, self.scope.rawValue.sqlValue, self.createdAt.sqlValue,
            self.createdBy.sqlValue, self.lastUsedAt.sqlValue,
        ]
    }
}

extension SecurityAlert: SQLNumberedRecord {
    static let table = "security_alert"
    static let columns = ["id", "companyID", "at", "kind", "subject", "detail"]
    init(row: SQLRow) throws {
        self.init(id: try row[0], companyID: try row[1], at: try row[2], kind: Kind(rawValue: try row[3]), subject: try row[4], detail: try row[5])
    }
    var values: [SQLValue] {
        [self.id.sqlValue, self.companyID.sqlValue, self.at.sqlValue, self.kind.sqlValue, self.subject.sqlValue, self.detail.sqlValue]
    }
}

extension SignInLink: SQLRecord {
    static let table = "signin_link"
    static let columns = ["digest", "engineerID", "createdAt", "expiresAt"]
    init(row: SQLRow) throws {
        self.init(digest: try row[0], engineerID: try row[1], createdAt: try row[2], expiresAt: try row[3])
    }
    var values: [SQLValue] { [self.digest.sqlValue, self.engineerID.sqlValue, self.createdAt.sqlValue, self.expiresAt.sqlValue] }
}

extension WebSession: SQLRecord {
    static let table = "web_session"
    static let columns = ["idDigest", "engineerID", "createdAt", "lastSeenAt", "sourceAddress"]
    init(row: SQLRow) throws {
        self.init(idDigest: try row[0], engineerID: try row[1], createdAt: try row[2], lastSeenAt: try row[3], sourceAddress: try row[4])
    }
    var values: [SQLValue] {
        [self.idDigest.sqlValue, self.engineerID.sqlValue, self.createdAt.sqlValue, self.lastSeenAt.sqlValue, self.sourceAddress.sqlValue]
    }
}
