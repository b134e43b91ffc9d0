public import Foundation
internal import GRDB

/// A value a statement binds or a row holds, in the few kinds both databases store.
///
/// Times are ``date(_:)``: SQLite keeps them as GRDB's UTC text (`YYYY-MM-DD HH:MM:SS.SSS`,
/// the format of files written before PostgreSQL support), PostgreSQL as `timestamptz`;
/// both compare and sort them as times. Usage times are integer milliseconds in both.
enum SQLValue: Sendable, Hashable {
    case null
    case integer(Int64)
    case text(String)
    case blob(Data)
    case bool(Bool)
    case date(Date)
}

/// A Swift type a statement binds and a row column decodes to.
protocol SQLValueConvertible {
    var sqlValue: SQLValue { get }
    /// The value of a column; throws when the column holds another kind.
    init(sqlValue: SQLValue) throws
    /// Column `index` of a SQLite row: GRDB's own decoding where it reads the column
    /// straight from SQLite, which an export of a million rows notices.
    static func decode(sqlite row: Row, at index: Int) throws -> Self
}

extension SQLValueConvertible {
    static func decode(sqlite row: Row, at index: Int) throws -> Self {
        try Self(sqlValue: SQLiteDatabase.Connection.value(row[index] as DatabaseValue))
    }
}

/// A column that did not hold what the store expected: a schema the store does not know.
struct SQLDecodingError: Error, CustomStringConvertible {
    let expected: String
    let found: SQLValue
    var description: String { "a column held \(self.found), where \(self.expected) was expected" }
}

extension String: SQLValueConvertible {
    var sqlValue: SQLValue { .text(self) }
    static func decode(sqlite row: Row, at index: Int) throws -> Self { try row.decode(String.self, atIndex: index) }
    init(sqlValue: SQLValue) throws {
        guard case .text(let text) = sqlValue else { throw SQLDecodingError(expected: "text", found: sqlValue) }
        self = text
    }
}

extension Int64: SQLValueConvertible {
    var sqlValue: SQLValue { .integer(self) }
    static func decode(sqlite row: Row, at index: Int) throws -> Self { try row.decode(Int64.self, atIndex: index) }
    init(sqlValue: SQLValue) throws {
        switch sqlValue {
        case .integer(let value): self = value
        case .bool(let value): self = value ? 1 : 0
        default: throw SQLDecodingError(expected: "an integer", found: sqlValue)
        }
    }
}

extension Int: SQLValueConvertible {
    var sqlValue: SQLValue { .integer(Int64(self)) }
    static func decode(sqlite row: Row, at index: Int) throws -> Self { try row.decode(Int.self, atIndex: index) }
    init(sqlValue: SQLValue) throws { self = Int(try Int64(sqlValue: sqlValue)) }
}

extension Bool: SQLValueConvertible {
    var sqlValue: SQLValue { .bool(self) }
    init(sqlValue: SQLValue) throws {
        switch sqlValue {
        case .bool(let value): self = value
        case .integer(let value): self = value != 0
        default: throw SQLDecodingError(expected: "a boolean", found: sqlValue)
        }
    }
}

extension Data: SQLValueConvertible {
    var sqlValue: SQLValue { .blob(self) }
    init(sqlValue: SQLValue) throws {
        guard case .blob(let data) = sqlValue else { throw SQLDecodingError(expected: "bytes", found: sqlValue) }
        self = data
    }
}

extension Date: SQLValueConvertible {
    var sqlValue: SQLValue { .date(self) }
    init(sqlValue: SQLValue) throws {
        switch sqlValue {
        case .date(let date): self = date
        case .text(let text):
            guard let date = SQLiteDatabase.date(text) else { throw SQLDecodingError(expected: "a time", found: sqlValue) }
            self = date
        default: throw SQLDecodingError(expected: "a time", found: sqlValue)
        }
    }
}

extension Optional: SQLValueConvertible where Wrapped: SQLValueConvertible {
    var sqlValue: SQLValue { self?.sqlValue ?? .null }
    static func decode(sqlite row: Row, at index: Int) throws -> Self {
        row.hasNull(atIndex: index) ? nil : try Wrapped.decode(sqlite: row, at: index)
    }
    init(sqlValue: SQLValue) throws {
        self = sqlValue == .null ? nil : try Wrapped(sqlValue: sqlValue)
    }
}

/// A statement with its values, written as one interpolated string: `"… WHERE id = \(id)"`
/// binds `id` (never splices it into the text), `\(list: ids)` binds a comma-separated
/// list, `\(sql: fragment)` splices another statement. Each database renders the
/// placeholders its way (`?` or `$1`).
struct SQL: Sendable, ExpressibleByStringInterpolation {
    enum Part: Sendable {
        case text(String)
        case value(SQLValue)
    }

    var parts: [Part]

    init(parts: [Part]) { self.parts = parts }

    init(stringLiteral text: String) { self.parts = [.text(text)] }

    init(stringInterpolation: StringInterpolation) { self.parts = stringInterpolation.parts }

    struct StringInterpolation: StringInterpolationProtocol {
        var parts: [Part] = []

        init(literalCapacity: Int, interpolationCount: Int) { self.parts.reserveCapacity(interpolationCount * 2 + 1) }

        mutating func appendLiteral(_ text: String) {
            if !text.isEmpty { self.parts.append(.text(text)) }
        }

        /// Binds `value`.
        mutating func appendInterpolation(_ value: some SQLValueConvertible) { self.parts.append(.value(value.sqlValue)) }

        /// Binds `value`, or NULL.
        mutating func appendInterpolation<Value: SQLValueConvertible>(_ value: Value?) { self.parts.append(.value(value.sqlValue)) }

        /// Binds each of `values`, separated by commas: for `IN (…)`. An empty list binds a
        /// single NULL, which no `IN` matches.
        mutating func appendInterpolation(list values: some Collection<some SQLValueConvertible>) {
            guard !values.isEmpty else { return self.parts.append(.value(.null)) }
            for (index, value) in values.enumerated() {
                if index > 0 { self.parts.append(.text(", ")) }
                self.parts.append(.value(value.sqlValue))
            }
        }

        /// Splices `fragment`, with its values.
        mutating func appendInterpolation(sql fragment: SQL) { self.parts.append(contentsOf: fragment.parts) }

        /// Splices trusted text: a column list or a name the store itself wrote, never input.
        mutating func appendInterpolation(raw text: String) { self.parts.append(.text(text)) }
    }

    static func + (lhs: SQL, rhs: SQL) -> SQL { SQL(parts: lhs.parts + rhs.parts) }
    static func += (lhs: inout SQL, rhs: SQL) { lhs.parts += rhs.parts }

    /// The fragments joined by `separator`.
    static func joined(_ fragments: [SQL], separator: String) -> SQL {
        var parts: [Part] = []
        for (index, fragment) in fragments.enumerated() {
            if index > 0 { parts.append(.text(separator)) }
            parts += fragment.parts
        }
        return SQL(parts: parts)
    }

    /// The text with `placeholder(n)` for the n-th value (from 1), and the values in order.
    func rendered(placeholder: (Int) -> String) -> (text: String, values: [SQLValue]) {
        var text = ""
        var values: [SQLValue] = []
        for part in self.parts {
            switch part {
            case .text(let fragment): text += fragment
            case .value(let value):
                values.append(value)
                text += placeholder(values.count)
            }
        }
        return (text, values)
    }
}

/// One row of a result, its columns in the statement's order. A row that
/// ``SQLConnection/forEachRow(_:_:)`` passes is valid during that call only (SQLite's rows
/// are read in place); ``copied()`` keeps one.
struct SQLRow {
    private enum Storage {
        case values([SQLValue])
        case sqlite(Row)
    }

    private let storage: Storage

    init(values: [SQLValue]) { self.storage = .values(values) }
    init(sqlite row: Row) { self.storage = .sqlite(row) }

    /// Column `index` (from 0) as `T`.
    subscript<T: SQLValueConvertible>(_ index: Int) -> T {
        get throws {
            switch self.storage {
            case .values(let values): try T(sqlValue: index < values.count ? values[index] : .null)
            case .sqlite(let row): try T.decode(sqlite: row, at: index)
            }
        }
    }

    /// Column `index` as the database returned it.
    func value(at index: Int) -> SQLValue {
        switch self.storage {
        case .values(let values): index < values.count ? values[index] : .null
        case .sqlite(let row): SQLiteDatabase.Connection.value(row[index] as DatabaseValue)
        }
    }

    /// This row, kept after the call that passed it.
    func copied() -> SQLRow {
        switch self.storage {
        case .values: self
        case .sqlite(let row): SQLRow(sqlite: row.copy())
        }
    }
}

/// Which database runs the statements, for the few places the two speak differently.
enum SQLDialect: Sendable {
    case sqlite
    case postgres

    /// The larger of two integer expressions (`MAX(a, b)` in SQLite, `GREATEST(a, b)` in PostgreSQL).
    func greatest(_ a: SQL, _ b: SQL) -> SQL {
        switch self {
        case .sqlite: "MAX(\(sql: a), \(sql: b))"
        case .postgres: "GREATEST(\(sql: a), \(sql: b))"
        }
    }
}

/// One transaction's view of the database: statements run in order, all or nothing.
protocol SQLConnection {
    var dialect: SQLDialect { get }
    /// Runs a statement that returns no rows; returns how many rows it changed.
    @discardableResult func execute(_ statement: SQL) throws -> Int
    /// Runs a query and calls `body` with each row as it is read.
    func forEachRow(_ statement: SQL, _ body: (SQLRow) throws -> Void) throws
}

extension SQLConnection {
    /// Every row of a query.
    func rows(_ statement: SQL) throws -> [SQLRow] {
        var rows: [SQLRow] = []
        try self.forEachRow(statement) { rows.append($0.copied()) }
        return rows
    }

    /// The first row of a query, if any.
    func row(_ statement: SQL) throws -> SQLRow? { try self.rows(statement).first }

    /// The first column of the first row, if there is a row and it is not NULL.
    func value<T: SQLValueConvertible>(_ statement: SQL, as type: T.Type = T.self) throws -> T? {
        guard let row = try self.row(statement) else { return nil }
        return try row[0] as T?
    }

    /// `SELECT COUNT(*) …` and other queries of one integer; 0 without a row.
    func count(_ statement: SQL) throws -> Int { try self.value(statement, as: Int.self) ?? 0 }
}

/// A database the store runs on: SQLite (``SQLiteDatabase``) or PostgreSQL (``PostgresDatabase``).
///
/// Calls block their thread until the database answers: the relay makes them on its
/// thread pools (NIOThreadPool), the command line on its own thread.
protocol SQLDatabase: Sendable {
    var dialect: SQLDialect { get }
    /// Where the data is, for messages: a file path, or the server without its password.
    var location: String { get }
    /// Runs `body` in a read-only transaction (a consistent snapshot).
    @discardableResult func read<T>(_ body: (any SQLConnection) throws -> T) throws -> T
    /// Runs `body` in a read-write transaction, committed when it returns.
    @discardableResult func write<T>(_ body: (any SQLConnection) throws -> T) throws -> T
    /// Transactions the server aborted for a conflict with another connection's and that
    /// ran again, since this database was opened (0 where writers take turns, as in SQLite).
    var conflictsRetried: Int { get }
}

extension SQLDatabase {
    var conflictsRetried: Int { 0 }
}
