public import Crypto
public import Foundation

/// The relay's store: accounts, usage history, logs, on SQLite or PostgreSQL.
///
/// **SQLite** (the default): `relay.sqlite` in the data folder (GRDB, WAL mode). Admin
/// commands and a running relay open the same file; WAL mode lets them work side by side.
/// `secure_delete` is on for every connection, so a deleted row's bytes are overwritten
/// where the row lies. That is not enough: SQLite's page balancing leaves older copies of
/// rows in pages' free space, which no delete touches. So a purge that deleted rows ends
/// with `VACUUM` (a fresh file) and then truncates the write-ahead log, so that no copy of
/// a purged row survives in the file or in `-wal` (``finishPurge(_:actor:)``,
/// OPERATIONS.md "Retention").
///
/// **PostgreSQL** (`--store postgres://…`): one database shared by every relay node of a
/// cluster (OPERATIONS.md "Scaling out"). The same statements run on both (``SQL``); the
/// few places the two differ ask ``SQLConnection/dialect``.
public final class SQLStore: AccountStore, UsageStore, Sendable {
    let database: any SQLDatabase
    /// Where the data is: the SQLite file's path, or the PostgreSQL server and database
    /// (never its password).
    public var location: String { self.database.location }
    /// Transactions PostgreSQL aborted for a conflict with another node's (or thread's) and
    /// that ran again, since this store was opened; 0 on SQLite.
    public var conflictsRetried: Int { self.database.conflictsRetried }
    /// The wall clock of the times the store stamps: accounts' creation, legal holds, the
    /// audit log. Tests pass their own.
    let now: @Sendable () -> Date

    /// Opens (creating if needed) `relay.sqlite` in `dataDirectory` and migrates it.
    public convenience init(dataDirectory: String, now: @escaping @Sendable () -> Date = { Date() }) throws {
        let directory = URL(fileURLWithPath: dataDirectory, isDirectory: true)
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw StoreError(
                .unavailable, "cannot create the data folder \(directory.path): \(error.localizedDescription); pass --data DIR with a writable folder")
        }
        try self.init(path: directory.appendingPathComponent("relay.sqlite").path, now: now)
    }

    /// Opens (creating if needed) the SQLite file at `path` and migrates it.
    public init(path: String, now: @escaping @Sendable () -> Date = { Date() }) throws {
        self.now = now
        do {
            let database = try SQLiteDatabase(path: path)
            try Self.migrator.migrate(database.pool)
            self.database = database
        } catch {
            throw StoreError(.unavailable, "cannot open the relay database \(path): \(error); check the file's permissions, or move it aside to start empty")
        }
    }

    /// Connects to the PostgreSQL database at `url` (`postgres://USER:PASSWORD@HOST:PORT/DATABASE`)
    /// and migrates it; every node of a cluster may do so at once.
    public init(postgres url: String, now: @escaping @Sendable () -> Date = { Date() }) throws {
        self.now = now
        let database = PostgresDatabase(target: try PostgresTarget(url: url))
        try PostgresSchema.migrate(database)
        self.database = database
    }

    /// Closes the database connections the store keeps open (PostgreSQL's; the SQLite
    /// file closes with the store). The store opens new ones if it is used again.
    public func close() {
        (self.database as? PostgresDatabase)?.close()
    }

    /// The same database opened again, as another relay node or command would: for tests.
    package func reopened() throws -> SQLStore {
        switch self.database {
        case let postgres as PostgresDatabase: try SQLStore(postgres: postgres.target.url, now: self.now)
        default: try SQLStore(path: self.location, now: self.now)
        }
    }

    /// Makes a new, empty database on the PostgreSQL server `server` (an address of any of
    /// its databases, as a user who may create databases) and returns its address: for the
    /// tests of the PostgreSQL store.
    package static func makePostgresDatabase(server: String) throws -> String {
        let target = try PostgresTarget(url: server)
        let name = "relay_test_" + Secrets.makeID(prefix: "db").replacingOccurrences(of: "-", with: "_").lowercased()
        let admin = PostgresDatabase(target: target)
        defer { admin.close() }
        try admin.withoutTransaction { try $0.execute("CREATE DATABASE \(raw: name)") }
        var made = target
        made.database = name
        return made.url
    }

    /// Drops a database that ``makePostgresDatabase(server:)`` made, ending its connections.
    package static func dropPostgresDatabase(server: String, url: String) throws {
        let name = try PostgresTarget(url: url).database
        guard name.hasPrefix("relay_test_"), name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else { return }
        let admin = PostgresDatabase(target: try PostgresTarget(url: server))
        defer { admin.close() }
        try admin.withoutTransaction { try $0.execute("DROP DATABASE IF EXISTS \(raw: name) WITH (FORCE)") }
    }

    /// Reads in a snapshot.
    @discardableResult
    func reading<T>(_ body: (any SQLConnection) throws -> T) throws -> T {
        try self.database.read(body)
    }

    /// Writes in one transaction.
    @discardableResult
    func writing<T>(_ body: (any SQLConnection) throws -> T) throws -> T {
        try self.database.write(body)
    }

    /// Which database the store runs on.
    public var isPostgres: Bool { self.database.dialect == .postgres }

    /// `PRAGMA secure_delete` as the SQLite store's connections see it (1: on); nil on PostgreSQL.
    public func secureDelete() throws -> Int? {
        guard self.database.dialect == .sqlite else { return nil }
        return try self.reading { try $0.count("PRAGMA secure_delete") }
    }

    /// The migrations applied to the database, oldest first.
    public func appliedMigrations() throws -> [String] {
        switch self.database {
        case let sqlite as SQLiteDatabase: try sqlite.mapErrors { try sqlite.pool.read { try Self.migrator.appliedMigrations($0) } }
        default: try self.reading { try PostgresSchema.appliedMigrations($0) }
        }
    }

    // MARK: Companies

    public func addCompany(name: String, actor: String) throws -> (Company, token: String) {
        let name = try Self.validName(name, what: "company name")
        let id = Secrets.makeID(prefix: "co")
        let secret = Secrets.makeSecret()
        let company = Company(id: id, name: name, adminTokenDigest: Secrets.digest(secret), createdAt: self.now())
        try self.writing { db in
            try company.insert(db)
            try AuditEntry(at: self.now(), actor: actor, action: .companyAdd, companyID: id).insert(db)
        }
        return (company, "\(id).\(secret)")
    }

    public func companies() throws -> [Company] {
        try self.reading { try Company.fetchAll($0, "ORDER BY createdAt, id") }
    }

    public func company(id: String) throws -> Company {
        guard let company = try self.reading({ try Company.fetchOne($0, key: id) }) else {
            throw Self.noCompany(id)
        }
        return company
    }

    static func noCompany(_ id: String) -> StoreError {
        StoreError(.notFound, "no company with id \(id); `relay-server company list` shows the ids")
    }

    /// Removes a company with its engineers and hosts. Its usage history stays until its
    /// retention ends (the enterprise may still ask for it).
    public func removeCompany(id: String, actor: String) throws {
        try self.writing { db in
            guard try Company.deleteOne(db, key: id) else { throw Self.noCompany(id) }
            try AuditEntry(at: self.now(), actor: actor, action: .companyRemove, companyID: id).insert(db)
        }
    }

    public func rotateCompanyToken(id: String, actor: String) throws -> String {
        let secret = Secrets.makeSecret()
        try self.writing { db in
            guard var company = try Company.fetchOne(db, key: id) else { throw Self.noCompany(id) }
            company.adminTokenDigest = Secrets.digest(secret)
            try company.update(db)
            try AuditEntry(at: self.now(), actor: actor, action: .companyRotate, companyID: id).insert(db)
        }
        return "\(id).\(secret)"
    }

    /// Sets the company's policy on confirming the security code (``Company/confirmSecurityCode``).
    public func setConfirmSecurityCode(companyID: String, required: Bool, actor: String) throws {
        try self.writing { db in
            guard var company = try Company.fetchOne(db, key: companyID) else { throw Self.noCompany(companyID) }
            company.confirmSecurityCode = required
            try company.update(db)
            try AuditEntry(at: self.now(), actor: actor, action: .companyPolicy, companyID: companyID, detail: "confirm_security_code=\(required)")
                .insert(db)
        }
    }

    public func authenticateAdmin(token: String) throws -> Company? {
        guard let (id, secret) = Secrets.splitToken(token),
            let company = try self.reading({ try Company.fetchOne($0, key: id) }),
            Secrets.matches(secret, digest: company.adminTokenDigest)
        else { return nil }
        return company
    }

    // MARK: Engineers

    public func addEngineer(companyID: String, login: String, publicKey: Curve25519.Signing.PublicKey?, actor: String) throws -> Engineer {
        let key = publicKey?.rawRepresentation
        let engineer = Engineer(
            id: Secrets.makeID(prefix: "en"), companyID: companyID, login: try Self.validName(login, what: "engineer login"), tokenDigest: Data(),
            publicKey: key, createdAt: self.now())
        let detail = key.map { "key=\(AccountKey.fingerprint(rawPublicKey: $0))" } ?? "browser only (no key)"
        return try self.writing { db in try self.insert(engineer, detail: detail, actor: actor, db) }
    }

    /// The legacy token path: the command line no longer offers it (see ``AccountStore``).
    public func addEngineer(companyID: String, login: String, actor: String) throws -> (Engineer, token: String) {
        let secret = Secrets.makeSecret()
        let engineer = Engineer(
            id: Secrets.makeID(prefix: "en"), companyID: companyID, login: try Self.validName(login, what: "engineer login"),
            tokenDigest: Secrets.digest(secret), createdAt: self.now())
        let added = try self.writing { db in try self.insert(engineer, detail: nil, actor: actor, db) }
        return (added, "\(engineer.id).\(secret)")
    }

    /// Inserts a new engineer with its audit entry, unless their login or key is taken;
    /// returns them with their company's name and policy.
    private func insert(_ engineer: Engineer, detail: String?, actor: String, _ db: any SQLConnection) throws -> Engineer {
        guard try Company.exists(db, key: engineer.companyID) else { throw Self.noCompany(engineer.companyID) }
        if try db.row("SELECT 1 FROM engineer WHERE companyID = \(engineer.companyID) AND login = \(engineer.login)") != nil {
            throw StoreError(
                .conflict,
                "company \(engineer.companyID) already has an engineer \"\(engineer.login)\"; to give them a new key, use `relay-server engineer set-key ID --public-key KEY` (`relay-server engineer list` shows the id)"
            )
        }
        if let key = engineer.publicKey { try Self.refuseKeyInUse(Engineer.self, key: key, except: engineer.id, db) }
        try engineer.insert(db)
        try AuditEntry(at: self.now(), actor: actor, action: .engineerAdd, companyID: engineer.companyID, subject: engineer.id, detail: detail).insert(db)
        return try Self.withCompanyNames([engineer], db)[0]
    }

    public func engineers(companyID: String?) throws -> [Engineer] {
        try self.reading { db in
            let filter: SQL = companyID.map { "WHERE companyID = \($0) " } ?? ""
            return try Self.withCompanyNames(try Engineer.fetchAll(db, filter + "ORDER BY companyID, login"), db)
        }
    }

    public func removeEngineer(id: String, actor: String) throws {
        try self.changeAccount(Engineer.self, id: id, kind: "engineer", action: .engineerRemove, actor: actor, companyID: \.companyID) { engineer, db in
            try Engineer.deleteOne(db, key: engineer.id)
            return nil
        }
    }

    public func setEngineerKey(id: String, publicKey: Curve25519.Signing.PublicKey, actor: String) throws -> Engineer {
        let key = publicKey.rawRepresentation
        return try self.changeAccount(Engineer.self, id: id, kind: "engineer", action: .engineerSetKey, actor: actor, companyID: \.companyID) {
            engineer, db in
            try Self.refuseKeyInUse(Engineer.self, key: key, except: id, db)
            let replaced = Self.describe(engineer.loginMethod)
            engineer.publicKey = key
            engineer.tokenDigest = Data()
            try engineer.update(db)
            engineer = try Self.withCompanyNames([engineer], db)[0]
            return "key=\(AccountKey.fingerprint(rawPublicKey: key)) replaced=\(replaced)"
        }
    }

    /// Changes (or removes) one engineer or host in one transaction with its audit entry;
    /// `change` returns the entry's detail (never a credential). An unknown `kind` id says
    /// where to find the ids. Returns the account as changed.
    @discardableResult
    func changeAccount<Account: SQLRecord>(
        _ type: Account.Type, id: String, kind: String, action: AuditEntry.Action, actor: String,
        companyID: KeyPath<Account, String>, _ change: (inout Account, any SQLConnection) throws -> String?
    ) throws -> Account {
        try self.writing { db in
            guard var account = try Account.fetchOne(db, key: id) else {
                throw StoreError(.notFound, "no \(kind) with id \(id); `relay-server \(kind) list` shows the ids")
            }
            let detail = try change(&account, db)
            try AuditEntry(at: self.now(), actor: actor, action: action, companyID: account[keyPath: companyID], subject: id, detail: detail).insert(db)
            return account
        }
    }

    /// Refuses a login key that another account of the same kind (`engineer` or `host`)
    /// has: a key names one account (the relay looks engineers up by key), and two
    /// machines that share a private key cannot be told apart or revoked one at a time.
    private static func refuseKeyInUse<Account: SQLRecord & KeyAccount>(_ type: Account.Type, key: Data, except id: String, _ db: any SQLConnection) throws {
        let other = try db.value("SELECT id FROM \(raw: Account.table) WHERE publicKey = \(key) AND id <> \(id)", as: String.self)
        guard let other else { return }
        throw StoreError(.conflict, Account.keyInUse(fingerprint: AccountKey.fingerprint(rawPublicKey: key), other: other))
    }

    /// A login method as the audit log's detail names it.
    private static func describe(_ method: LoginMethod) -> String {
        switch method {
        case .key(let fingerprint): fingerprint
        case .token: "token"
        case .noKey: "none"
        }
    }

    public func credentialDigests(engineerIDs: [String], hostIDs: [String]) throws -> [String: Data] {
        try self.reading { db in
            var digests: [String: Data] = [:]
            // A disabled engineer counts as removed: their live sessions end.
            if !engineerIDs.isEmpty {
                for engineer in try Engineer.fetchAll(db, "WHERE id IN (\(list: engineerIDs))") where engineer.disabledAt == nil {
                    digests[engineer.id] = engineer.credentialDigest
                }
            }
            if !hostIDs.isEmpty {
                for host in try EnrolledHost.fetchAll(db, "WHERE id IN (\(list: hostIDs))") { digests[host.id] = host.credentialDigest }
            }
            return digests
        }
    }

    /// The engineer whose legacy token this is, with their company's name
    /// (``Engineer/companyName``), or nil. An engineer with a key never logs in by token,
    /// and an emptied digest never matches (checked here, not left to the digest compare).
    public func authenticateEngineer(token: String) throws -> Engineer? {
        guard let (id, secret) = Secrets.splitToken(token),
            let engineer = try self.reading({ db in
                try Engineer.fetchOne(db, key: id).map { try Self.withCompanyNames([$0], db)[0] }
            }),
            engineer.publicKey == nil, !engineer.tokenDigest.isEmpty, engineer.disabledAt == nil,
            Secrets.matches(secret, digest: engineer.tokenDigest)
        else { return nil }
        return engineer
    }

    public func authenticateEngineer(publicKey: Data) throws -> Engineer? {
        guard publicKey.count == AccountKey.rawCount else { return nil }
        return try self.reading { db in
            try Engineer.fetchOne(db, "WHERE publicKey = \(publicKey) AND disabledAt IS NULL").map { try Self.withCompanyNames([$0], db)[0] }
        }
    }

    /// `engineers` with ``Engineer/companyName`` filled from the `company` table, and
    /// managers' ``Engineer/groups`` from `manager_group`.
    static func withCompanyNames(_ engineers: [Engineer], _ db: any SQLConnection) throws -> [Engineer] {
        guard !engineers.isEmpty else { return engineers }
        let companies = Dictionary(
            uniqueKeysWithValues: try Company.fetchAll(db, "WHERE id IN (\(list: Set(engineers.map(\.companyID)).sorted()))").map { ($0.id, $0) })
        let managers = engineers.filter { $0.role == .manager }.map(\.id)
        var groups: [String: [String]] = [:]
        if !managers.isEmpty {
            for row in try db.rows("SELECT managerID, groupName FROM manager_group WHERE managerID IN (\(list: managers)) ORDER BY groupName") {
                groups[try row[0], default: []].append(try row[1])
            }
        }
        return engineers.map { engineer in
            var engineer = engineer
            // A company's removal cascades to its engineers, so the company is always there.
            engineer.companyName = companies[engineer.companyID]?.name ?? ""
            engineer.confirmSecurityCode = companies[engineer.companyID]?.confirmSecurityCode ?? false
            engineer.groups = groups[engineer.id] ?? []
            return engineer
        }
    }

    // MARK: Hosts

    public func enrollHost(companyID: String, name: String, publicKey: Curve25519.Signing.PublicKey?, actor: String) throws -> EnrolledHost {
        let key = publicKey?.rawRepresentation
        let host = EnrolledHost(
            id: Secrets.makeID(prefix: "ho"), companyID: companyID, name: try Self.validName(name, what: "host name"), secretDigest: Data(),
            publicKey: key, createdAt: self.now())
        try self.writing { db in
            try self.insert(host, detail: "key=\(key.map { AccountKey.fingerprint(rawPublicKey: $0) } ?? "none")", actor: actor, db)
        }
        return host
    }

    /// The legacy secret path: the command line no longer offers it (see ``AccountStore``).
    public func enrollHost(companyID: String, name: String, actor: String) throws -> (EnrolledHost, secret: String) {
        let secret = Secrets.makeSecret()
        let host = EnrolledHost(
            id: Secrets.makeID(prefix: "ho"), companyID: companyID, name: try Self.validName(name, what: "host name"),
            secretDigest: Secrets.digest(secret), createdAt: self.now())
        try self.writing { db in try self.insert(host, detail: nil, actor: actor, db) }
        return (host, secret)
    }

    /// Inserts a new host with its audit entry, unless its key is taken.
    private func insert(_ host: EnrolledHost, detail: String?, actor: String, _ db: any SQLConnection) throws {
        guard try Company.exists(db, key: host.companyID) else { throw Self.noCompany(host.companyID) }
        if let key = host.publicKey { try Self.refuseKeyInUse(EnrolledHost.self, key: key, except: host.id, db) }
        try host.insert(db)
        try AuditEntry(at: self.now(), actor: actor, action: .hostEnroll, companyID: host.companyID, subject: host.id, detail: detail).insert(db)
    }

    public func hosts(companyID: String?) throws -> [EnrolledHost] {
        try self.reading { db in
            let filter: SQL = companyID.map { "WHERE companyID = \($0) " } ?? ""
            return try EnrolledHost.fetchAll(db, filter + "ORDER BY companyID, name, id")
        }
    }

    public func removeHost(id: String, actor: String) throws {
        try self.changeAccount(EnrolledHost.self, id: id, kind: "host", action: .hostRemove, actor: actor, companyID: \.companyID) { host, db in
            try EnrolledHost.deleteOne(db, key: host.id)
            return nil
        }
    }

    public func setHostKey(id: String, publicKey: Curve25519.Signing.PublicKey, actor: String) throws -> EnrolledHost {
        let key = publicKey.rawRepresentation
        return try self.changeAccount(EnrolledHost.self, id: id, kind: "host", action: .hostSetKey, actor: actor, companyID: \.companyID) { host, db in
            try Self.refuseKeyInUse(EnrolledHost.self, key: key, except: id, db)
            let replaced = Self.describe(host.loginMethod)
            host.publicKey = key
            host.secretDigest = Data()
            try host.update(db)
            return "key=\(AccountKey.fingerprint(rawPublicKey: key)) replaced=\(replaced)"
        }
    }

    /// The host with this id and legacy secret, or nil. A host with a key, or enrolled
    /// without a secret, never logs in by secret (checked here, not left to the digest compare).
    public func authenticateHost(id: String, secret: String) throws -> EnrolledHost? {
        guard id.utf8.count <= 64, let host = try self.reading({ try EnrolledHost.fetchOne($0, key: id) }),
            host.publicKey == nil, !host.secretDigest.isEmpty,
            Secrets.matches(secret, digest: host.secretDigest)
        else { return nil }
        return host
    }

    public func authenticateHost(id: String, publicKey: Data) throws -> EnrolledHost? {
        guard id.utf8.count <= 64, publicKey.count == AccountKey.rawCount,
            let host = try self.reading({ try EnrolledHost.fetchOne($0, key: id) }),
            host.publicKey == publicKey
        else { return nil }
        return host
    }

    public func markHostsSeen(ids: [String], at: Date) throws {
        guard !ids.isEmpty else { return }
        try self.writing { db in
            for id in ids { try db.execute("UPDATE host SET lastSeenAt = \(at) WHERE id = \(id)") }
        }
    }

    public func tokenAccountCounts() throws -> (engineers: Int, hosts: Int) {
        try self.reading { db in
            let row = try db.row(
                """
                SELECT (SELECT count(*) FROM engineer WHERE publicKey IS NULL AND length(tokenDigest) > 0),
                       (SELECT count(*) FROM host WHERE publicKey IS NULL AND length(secretDigest) > 0)
                """)
            return (try row?[0] ?? 0, try row?[1] ?? 0)
        }
    }

    // MARK: Access log

    public func record(_ events: [AccessEvent]) throws {
        guard !events.isEmpty else { return }
        try self.writing { db in
            for event in events { try event.insert(db) }
        }
    }

    public func accessLog(limit: Int = 100) throws -> [AccessEvent] {
        try self.reading { try AccessEvent.fetchAll($0, "ORDER BY id DESC LIMIT \(limit)") }
    }

    // MARK: Audit log

    public func appendAudit(_ entry: AuditEntry) throws {
        try self.writing { try entry.insert($0) }
    }

    public func auditLog(limit: Int = 100) throws -> [AuditEntry] {
        try self.reading { try AuditEntry.fetchAll($0, "ORDER BY id DESC LIMIT \(limit)") }
    }

    static func validName(_ raw: String, what: String) throws -> String {
        let name = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !name.isEmpty else { throw StoreError(.invalidInput, "the \(what) is empty; give a name") }
        guard name.utf8.count <= 200 else { throw StoreError(.invalidInput, "the \(what) is \(name.utf8.count) bytes; at most 200 are allowed") }
        guard !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw StoreError(.invalidInput, "the \(what) contains control characters; use printable text")
        }
        return name
    }
}

extension AccountStore {
    // Admin actions by the command line (`actor: "cli"`), for tests and tools.
    public func addCompany(name: String) throws -> (Company, token: String) { try self.addCompany(name: name, actor: "cli") }
    public func removeCompany(id: String) throws { try self.removeCompany(id: id, actor: "cli") }
    public func rotateCompanyToken(id: String) throws -> String { try self.rotateCompanyToken(id: id, actor: "cli") }
    public func addEngineer(companyID: String, login: String, publicKey: Curve25519.Signing.PublicKey?) throws -> Engineer {
        try self.addEngineer(companyID: companyID, login: login, publicKey: publicKey, actor: "cli")
    }
    /// The legacy token path (see ``AccountStore/addEngineer(companyID:login:actor:)``).
    public func addEngineer(companyID: String, login: String) throws -> (Engineer, token: String) {
        try self.addEngineer(companyID: companyID, login: login, actor: "cli")
    }
    public func removeEngineer(id: String) throws { try self.removeEngineer(id: id, actor: "cli") }
    public func setEngineerKey(id: String, publicKey: Curve25519.Signing.PublicKey) throws -> Engineer {
        try self.setEngineerKey(id: id, publicKey: publicKey, actor: "cli")
    }
    public func enrollHost(companyID: String, name: String, publicKey: Curve25519.Signing.PublicKey?) throws -> EnrolledHost {
        try self.enrollHost(companyID: companyID, name: name, publicKey: publicKey, actor: "cli")
    }
    /// The legacy secret path (see ``AccountStore/enrollHost(companyID:name:actor:)``).
    public func enrollHost(companyID: String, name: String) throws -> (EnrolledHost, secret: String) {
        try self.enrollHost(companyID: companyID, name: name, actor: "cli")
    }
    public func removeHost(id: String) throws { try self.removeHost(id: id, actor: "cli") }
    public func setHostKey(id: String, publicKey: Curve25519.Signing.PublicKey) throws -> EnrolledHost {
        try self.setHostKey(id: id, publicKey: publicKey, actor: "cli")
    }
}
