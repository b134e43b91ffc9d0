import Foundation
internal import GRDB

/// The embedded database: one SQLite file through GRDB's `DatabasePool` (WAL mode:
/// readers and one writer side by side, so the admin commands and a running relay can
/// open the same file).
final class SQLiteDatabase: SQLDatabase {
    let pool: DatabasePool
    let path: String
    var dialect: SQLDialect { .sqlite }
    var location: String { self.path }

    /// Opens (creating if needed) the file at `path`; every connection has `secure_delete`
    /// and foreign keys on.
    init(path: String) throws {
        self.path = path
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA secure_delete = ON")
            try db.execute(sql: "PRAGMA foreign_keys = ON")
        }
        self.pool = try DatabasePool(path: path, configuration: configuration)
    }

    @discardableResult
    func read<T>(_ body: (any SQLConnection) throws -> T) throws -> T {
        try self.mapErrors { try self.pool.read { try body(Connection(db: $0)) } }
    }

    @discardableResult
    func write<T>(_ body: (any SQLConnection) throws -> T) throws -> T {
        try self.mapErrors { try self.pool.write { try body(Connection(db: $0)) } }
    }

    /// GRDB's errors as the store reports them; the store's own errors pass through.
    func mapErrors<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as DatabaseError {
            throw self.storeError(error)
        }
    }

    /// An SQLite failure as the store reports it: a violated constraint is a
    /// ``StoreError/Kind/conflict`` (two admins adding the same login at once); anything
    /// else (busy past the 10 s timeout, disk full, I/O error, a read-only file) is
    /// ``StoreError/Kind/unavailable``: the database cannot be used right now.
    func storeError(_ error: DatabaseError) -> StoreError {
        switch error.resultCode {
        case .SQLITE_CONSTRAINT:
            StoreError(
                .conflict,
                "the relay database refused the change, which conflicts with a record it holds (\(error.message ?? "\(error)")); list the records and try again"
            )
        case .SQLITE_BUSY, .SQLITE_LOCKED:
            StoreError(.unavailable, "the relay database \(self.path) stayed locked for more than 10 s; try again, and look for a stuck relay-server command")
        default:
            StoreError(.unavailable, "the relay database \(self.path) failed (\(error)); check the free disk space and the file's permissions")
        }
    }

    /// A time as SQLite files keep it (GRDB's UTC text), read back.
    static func date(_ text: String) -> Date? { Date.fromDatabaseValue(text.databaseValue) }

    /// One transaction's statements on a GRDB `Database`. Statements are prepared once per
    /// connection and reused (GRDB's statement cache): the usage recorder and the export
    /// run the same few statements many times.
    struct Connection: SQLConnection {
        let db: Database
        var dialect: SQLDialect { .sqlite }

        @discardableResult
        func execute(_ statement: SQL) throws -> Int {
            let (text, values) = statement.rendered { _ in "?" }
            try self.db.cachedStatement(sql: text).execute(arguments: Self.arguments(values))
            return self.db.changesCount
        }

        func forEachRow(_ statement: SQL, _ body: (SQLRow) throws -> Void) throws {
            let (text, values) = statement.rendered { _ in "?" }
            let rows = try Row.fetchCursor(self.db.cachedStatement(sql: text), arguments: Self.arguments(values))
            while let row = try rows.next() { try body(SQLRow(sqlite: row)) }
        }

        static func arguments(_ values: [SQLValue]) -> StatementArguments {
            StatementArguments(values.map(Self.databaseValue))
        }

        static func databaseValue(_ value: SQLValue) -> DatabaseValue {
            switch value {
            case .null: .null
            case .integer(let integer): integer.databaseValue
            case .text(let text): text.databaseValue
            case .blob(let data): data.databaseValue
            case .bool(let bool): bool.databaseValue
            case .date(let date): date.databaseValue
            }
        }

        static func value(_ value: DatabaseValue) -> SQLValue {
            switch value.storage {
            case .null: .null
            case .int64(let integer): .integer(integer)
            case .double(let double): .integer(Int64(double))
            case .string(let text): .text(text)
            case .blob(let data): .blob(data)
            }
        }
    }
}
