import Foundation
import GRDB

/// A company that uses the relay: its engineers, enrolled hosts and usage history belong to it.
struct Company: Codable, Sendable, Hashable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "company"
    var id: String
    var name: String
    var adminTokenDigest: Data
    var createdAt: Date
}

/// A support engineer who opens viewers.
struct Engineer: Codable, Sendable, Hashable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "engineer"
    var id: String
    var companyID: String
    var login: String
    var tokenDigest: Data
    var createdAt: Date
}

/// An endpoint PC enrolled for unattended access.
struct EnrolledHost: Codable, Sendable, Hashable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "host"
    var id: String
    var companyID: String
    var name: String
    var secretDigest: Data
    var createdAt: Date
}

/// One authentication event for the access log (kept three months; DESIGN.md).
struct AccessEvent: Codable, Sendable, Hashable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "access_log"
    enum Outcome: String, Codable, Sendable { case accepted, rejected, throttled }
    var id: Int64?
    var at: Date
    /// What was attempted: `viewer_token`, `host_secret`, `support_code`, `admin_token`.
    var event: String
    var outcome: Outcome
    var sourceAddress: String
    var companyID: String?
    /// Who: an engineer login, a host id, or a code's last two digits — never a secret.
    var subject: String?
    var detail: String?
}

/// An error an admin command or the relay reports to a person.
struct StoreError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Companies, engineers, enrolled hosts and the access log, in SQLite under the data folder.
///
/// Admin commands and a running relay open the same file; SQLite's WAL mode lets them
/// work side by side. Every write that removes data runs with `secure_delete` on.
final class AccountStore: Sendable {
    let database: DatabasePool
    let path: String

    /// Opens (creating if needed) `relay.sqlite` in `dataDirectory` and migrates it.
    init(dataDirectory: String) throws {
        let directory = URL(fileURLWithPath: dataDirectory, isDirectory: true)
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw StoreError("cannot create the data folder \(directory.path): \(error.localizedDescription); pass --data DIR with a writable folder")
        }
        self.path = directory.appendingPathComponent("relay.sqlite").path
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA secure_delete = ON")
            try db.execute(sql: "PRAGMA foreign_keys = ON")
        }
        do {
            self.database = try DatabasePool(path: self.path, configuration: configuration)
            try Self.migrator.migrate(self.database)
        } catch {
            throw StoreError("cannot open the relay database \(self.path): \(error); check the file's permissions, or move it aside to start empty")
        }
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1 accounts") { db in
            try db.create(table: "company") { t in
                t.primaryKey("id", .text)
                t.column("name", .text).notNull()
                t.column("adminTokenDigest", .blob).notNull()
                t.column("createdAt", .datetime).notNull()
            }
            try db.create(table: "engineer") { t in
                t.primaryKey("id", .text)
                t.column("companyID", .text).notNull().references("company", onDelete: .cascade)
                t.column("login", .text).notNull()
                t.column("tokenDigest", .blob).notNull()
                t.column("createdAt", .datetime).notNull()
                t.uniqueKey(["companyID", "login"])
            }
            try db.create(table: "host") { t in
                t.primaryKey("id", .text)
                t.column("companyID", .text).notNull().references("company", onDelete: .cascade)
                t.column("name", .text).notNull()
                t.column("secretDigest", .blob).notNull()
                t.column("createdAt", .datetime).notNull()
            }
            try db.create(table: "access_log") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("at", .datetime).notNull().indexed()
                t.column("event", .text).notNull()
                t.column("outcome", .text).notNull()
                t.column("sourceAddress", .text).notNull()
                t.column("companyID", .text)
                t.column("subject", .text)
                t.column("detail", .text)
            }
        }
        return migrator
    }

    // MARK: Companies

    /// Adds a company; returns it with its admin token, which is not stored and never shown again.
    func addCompany(name: String) throws -> (Company, token: String) {
        let name = try Self.validName(name, what: "company name")
        let id = Secrets.makeID(prefix: "co")
        let secret = Secrets.makeSecret()
        let company = Company(id: id, name: name, adminTokenDigest: Secrets.digest(secret), createdAt: Date())
        try self.database.write { try company.insert($0) }
        return (company, "\(id).\(secret)")
    }

    func companies() throws -> [Company] {
        try self.database.read { try Company.order(Column("createdAt")).fetchAll($0) }
    }

    func company(id: String) throws -> Company {
        guard let company = try self.database.read({ try Company.fetchOne($0, key: id) }) else {
            throw StoreError("no company with id \(id); `relay-server company list` shows the ids")
        }
        return company
    }

    /// Removes a company with its engineers and hosts.
    func removeCompany(id: String) throws {
        let deleted = try self.database.write { try Company.deleteOne($0, key: id) }
        guard deleted else { throw StoreError("no company with id \(id); `relay-server company list` shows the ids") }
    }

    /// Replaces a company's admin token; the old one stops working at once.
    func rotateCompanyToken(id: String) throws -> String {
        let secret = Secrets.makeSecret()
        try self.database.write { db in
            guard var company = try Company.fetchOne(db, key: id) else {
                throw StoreError("no company with id \(id); `relay-server company list` shows the ids")
            }
            company.adminTokenDigest = Secrets.digest(secret)
            try company.update(db)
        }
        return "\(id).\(secret)"
    }

    /// The company whose admin token this is, or nil.
    func authenticateAdmin(token: String) throws -> Company? {
        guard let (id, secret) = Secrets.splitToken(token),
            let company = try self.database.read({ try Company.fetchOne($0, key: id) }),
            Secrets.matches(secret, digest: company.adminTokenDigest)
        else { return nil }
        return company
    }

    // MARK: Engineers

    func addEngineer(companyID: String, login: String) throws -> (Engineer, token: String) {
        let login = try Self.validName(login, what: "engineer login")
        let id = Secrets.makeID(prefix: "en")
        let secret = Secrets.makeSecret()
        let engineer = Engineer(id: id, companyID: companyID, login: login, tokenDigest: Secrets.digest(secret), createdAt: Date())
        try self.database.write { db in
            guard try Company.exists(db, key: companyID) else {
                throw StoreError("no company with id \(companyID); `relay-server company list` shows the ids")
            }
            if try Engineer.filter(Column("companyID") == companyID && Column("login") == login).fetchCount(db) > 0 {
                throw StoreError("company \(companyID) already has an engineer \"\(login)\"; use `relay-server engineer rotate` for a new token")
            }
            try engineer.insert(db)
        }
        return (engineer, "\(id).\(secret)")
    }

    func engineers(companyID: String?) throws -> [Engineer] {
        try self.database.read { db in
            var request = Engineer.order(Column("companyID"), Column("login"))
            if let companyID { request = request.filter(Column("companyID") == companyID) }
            return try request.fetchAll(db)
        }
    }

    func removeEngineer(id: String) throws {
        let deleted = try self.database.write { try Engineer.deleteOne($0, key: id) }
        guard deleted else { throw StoreError("no engineer with id \(id); `relay-server engineer list` shows the ids") }
    }

    func rotateEngineerToken(id: String) throws -> String {
        let secret = Secrets.makeSecret()
        try self.database.write { db in
            guard var engineer = try Engineer.fetchOne(db, key: id) else {
                throw StoreError("no engineer with id \(id); `relay-server engineer list` shows the ids")
            }
            engineer.tokenDigest = Secrets.digest(secret)
            try engineer.update(db)
        }
        return "\(id).\(secret)"
    }

    /// The engineer whose token this is, or nil. `engineerID` is the id part, for throttling.
    func authenticateEngineer(token: String) throws -> Engineer? {
        guard let (id, secret) = Secrets.splitToken(token),
            let engineer = try self.database.read({ try Engineer.fetchOne($0, key: id) }),
            Secrets.matches(secret, digest: engineer.tokenDigest)
        else { return nil }
        return engineer
    }

    // MARK: Hosts

    func enrollHost(companyID: String, name: String) throws -> (EnrolledHost, secret: String) {
        let name = try Self.validName(name, what: "host name")
        let secret = Secrets.makeSecret()
        let host = EnrolledHost(id: Secrets.makeID(prefix: "ho"), companyID: companyID, name: name, secretDigest: Secrets.digest(secret), createdAt: Date())
        try self.database.write { db in
            guard try Company.exists(db, key: companyID) else {
                throw StoreError("no company with id \(companyID); `relay-server company list` shows the ids")
            }
            try host.insert(db)
        }
        return (host, secret)
    }

    func hosts(companyID: String?) throws -> [EnrolledHost] {
        try self.database.read { db in
            var request = EnrolledHost.order(Column("companyID"), Column("name"))
            if let companyID { request = request.filter(Column("companyID") == companyID) }
            return try request.fetchAll(db)
        }
    }

    func removeHost(id: String) throws {
        let deleted = try self.database.write { try EnrolledHost.deleteOne($0, key: id) }
        guard deleted else { throw StoreError("no host with id \(id); `relay-server host list` shows the ids") }
    }

    func rotateHostSecret(id: String) throws -> String {
        let secret = Secrets.makeSecret()
        try self.database.write { db in
            guard var host = try EnrolledHost.fetchOne(db, key: id) else {
                throw StoreError("no host with id \(id); `relay-server host list` shows the ids")
            }
            host.secretDigest = Secrets.digest(secret)
            try host.update(db)
        }
        return secret
    }

    /// The enrolled host if `secret` is its secret, or nil.
    func authenticateHost(id: String, secret: String) throws -> EnrolledHost? {
        guard id.utf8.count <= 64, let host = try self.database.read({ try EnrolledHost.fetchOne($0, key: id) }),
            Secrets.matches(secret, digest: host.secretDigest)
        else { return nil }
        return host
    }

    // MARK: Access log

    func record(_ events: [AccessEvent]) throws {
        guard !events.isEmpty else { return }
        try self.database.write { db in
            for event in events { try event.insert(db) }
        }
    }

    func accessLog(limit: Int = 100) throws -> [AccessEvent] {
        try self.database.read { try AccessEvent.order(Column("id").desc).limit(limit).fetchAll($0) }
    }

    private static func validName(_ raw: String, what: String) throws -> String {
        let name = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !name.isEmpty else { throw StoreError("the \(what) is empty; give a name") }
        guard name.utf8.count <= 200 else { throw StoreError("the \(what) is \(name.utf8.count) bytes; at most 200 are allowed") }
        guard !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw StoreError("the \(what) contains control characters; use printable text")
        }
        return name
    }
}
