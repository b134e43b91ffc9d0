import Foundation
internal import Logging
internal import NIOCore
internal import NIOPosix
internal import NIOSSL
internal import PostgresNIO
import Synchronization

/// A PostgreSQL server (postgres-nio), shared by every relay node of a cluster.
///
/// The store's calls are synchronous and come from the relay's thread pools, never from an
/// event loop: each one takes an idle connection (or opens one), runs its transaction with
/// postgres-nio's `EventLoopFuture` API and waits for it on the calling thread, as the
/// SQLite store waits for its disk. Writes are `SERIALIZABLE`, so the store's checks and
/// changes (a support code claimed once, a login added once) hold across nodes as they do
/// in one SQLite file; a transaction the server aborts for a conflict with another node's
/// (SQLSTATE 40001 or 40P01) runs again, at most ``retries`` times.
final class PostgresDatabase: SQLDatabase {
    let target: PostgresTarget
    var dialect: SQLDialect { .postgres }
    var location: String { self.target.description }
    let retries = 8

    private let group: any EventLoopGroup
    private let logger: Logger
    private let idle = Mutex<[PostgresConnection]>([])
    /// Connections kept open between calls; the relay's thread pools make at most a few calls at once.
    private let maximumIdle = 8

    init(target: PostgresTarget, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.target = target
        self.group = group
        var logger = Logger(label: "relay.store.postgres")
        logger.logLevel = .critical
        self.logger = logger
    }

    deinit {
        for connection in self.idle.withLock({ $0 }) { Self.discard(connection) }
    }

    /// Closes a connection without waiting. The closure keeps the connection until it is
    /// closed: postgres-nio requires that of every connection it frees.
    private static func discard(_ connection: PostgresConnection) {
        connection.close().whenComplete { _ in withExtendedLifetime(connection) {} }
    }

    /// Closes the idle connections (the next call opens new ones).
    func close() {
        let connections = self.idle.withLock { idle in
            defer { idle.removeAll() }
            return idle
        }
        for connection in connections { try? connection.close().wait() }
    }

    @discardableResult
    func read<T>(_ body: (any SQLConnection) throws -> T) throws -> T {
        try self.transaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", retries: 0, body)
    }

    @discardableResult
    func write<T>(_ body: (any SQLConnection) throws -> T) throws -> T {
        try self.transaction("BEGIN ISOLATION LEVEL SERIALIZABLE", retries: self.retries, body)
    }

    /// Runs statements outside a transaction: `VACUUM` cannot run inside one.
    @discardableResult
    func withoutTransaction<T>(_ body: (any SQLConnection) throws -> T) throws -> T {
        try self.withConnection { try body(Connection(connection: $0, logger: self.logger, location: self.location)) }
    }

    /// Takes the session-level advisory lock `key` on a connection kept for it: nil if
    /// another session holds it, else the function that unlocks it and frees the
    /// connection. PostgreSQL releases the lock itself if this process dies.
    func tryAdvisoryLock(_ key: Int64) throws -> (@Sendable () -> Void)? {
        let connection = try self.idleConnection() ?? self.connect()
        let sql = Connection(connection: connection, logger: self.logger, location: self.location)
        let locked: Bool
        do {
            locked = try sql.value("SELECT pg_try_advisory_lock(\(key))", as: Bool.self) ?? false
        } catch {
            Self.discard(connection)
            throw error
        }
        guard locked else {
            self.release(connection)
            return nil
        }
        return { [self] in
            if (try? sql.execute("SELECT pg_advisory_unlock(\(key))")) != nil {
                self.release(connection)
            } else {
                Self.discard(connection)
            }
        }
    }

    private func transaction<T>(_ begin: String, retries: Int, _ body: (any SQLConnection) throws -> T) throws -> T {
        var attempt = 0
        var replacedLostConnection = false
        while true {
            do {
                return try self.withConnection { connection in
                    let sql = Connection(connection: connection, logger: self.logger, location: self.location)
                    do {
                        try sql.execute(SQL(stringLiteral: begin))
                    } catch {
                        // An idle connection whose server went away meanwhile (it restarted):
                        // nothing ran on it yet, so once more on a new one.
                        if !replacedLostConnection, connection.isClosed { throw LostBeforeBegin() }
                        throw error
                    }
                    do {
                        let result = try body(sql)
                        try sql.execute("COMMIT")
                        return result
                    } catch {
                        // A broken connection has no transaction left to roll back.
                        _ = try? sql.execute("ROLLBACK")
                        throw error
                    }
                }
            } catch is LostBeforeBegin {
                replacedLostConnection = true
            } catch let conflict as PostgresConflict {
                guard attempt < retries else {
                    throw StoreError(
                        .unavailable,
                        "the change kept conflicting with other relay nodes' changes (\(Self.describe(conflict.error)), \(attempt + 1) attempts); try again"
                    )
                }
                attempt += 1
            }
        }
    }

    /// Runs `body` on an idle connection, or a new one; a connection that failed is closed
    /// and not reused.
    private func withConnection<T>(_ body: (PostgresConnection) throws -> T) throws -> T {
        let connection = try self.idleConnection() ?? self.connect()
        do {
            let result = try body(connection)
            self.release(connection)
            return result
        } catch let error as StoreError {
            self.release(connection)
            throw error
        } catch let conflict as PostgresConflict {
            self.release(connection)
            throw conflict
        } catch {
            Self.discard(connection)
            throw error
        }
    }

    /// An idle connection that is still open; the ones the server closed meanwhile (it
    /// restarted) are let go.
    private func idleConnection() -> PostgresConnection? {
        while let connection = self.idle.withLock({ $0.popLast() }) {
            if !connection.isClosed { return connection }
            Self.discard(connection)
        }
        return nil
    }

    private func release(_ connection: PostgresConnection) {
        guard !connection.isClosed else { return }
        let kept = self.idle.withLock { idle in
            guard idle.count < self.maximumIdle else { return false }
            idle.append(connection)
            return true
        }
        if !kept { Self.discard(connection) }
    }

    private func connect() throws -> PostgresConnection {
        do {
            let configuration = try self.target.configuration()
            return try PostgresConnection.connect(
                on: self.group.next(), configuration: configuration, id: Self.nextConnectionID.wrappingAdd(1, ordering: .relaxed).newValue, logger: self.logger
            ).wait()
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError(
                .unavailable,
                "cannot reach the PostgreSQL server \(self.location) (\(Self.describe(error))); check that it runs, that the relay may connect to it, and the --store address"
            )
        }
    }

    private static let nextConnectionID = Atomic<Int>(0)

    /// A postgres-nio error in a sentence: the server's own message where it sent one.
    static func describe(_ error: any Error) -> String {
        guard let error = error as? PSQLError else { return "\(error)" }
        if let message = error.serverInfo?[.message] {
            let state = error.serverInfo?[.sqlState].map { " (SQLSTATE \($0))" } ?? ""
            return message + state
        }
        if let underlying = error.underlying { return "\(underlying)" }
        return error.code.description
    }

    /// A connection found closed at the start of a transaction: it runs on a new one.
    private struct LostBeforeBegin: Error {}

    /// A transaction the server aborted for another one's sake; it runs again.
    struct PostgresConflict: Error {
        let error: any Error
    }

    struct Connection: SQLConnection {
        let connection: PostgresConnection
        let logger: Logger
        let location: String
        var dialect: SQLDialect { .postgres }

        @discardableResult
        func execute(_ statement: SQL) throws -> Int {
            try self.run(statement).metadata.rows ?? 0
        }

        func forEachRow(_ statement: SQL, _ body: (SQLRow) throws -> Void) throws {
            for row in try self.run(statement).rows {
                var values: [SQLValue] = []
                values.reserveCapacity(row.count)
                for cell in row { values.append(try Self.value(cell)) }
                try body(SQLRow(values: values))
            }
        }

        private func run(_ statement: SQL) throws -> PostgresQueryResult {
            let (text, values) = statement.rendered { "$\($0)" }
            var bindings = PostgresBindings(capacity: values.count)
            for value in values {
                switch value {
                case .null: bindings.appendNull()
                case .integer(let integer): bindings.append(integer)
                case .text(let text): bindings.append(text)
                case .blob(let data): bindings.append(ByteBuffer(bytes: data))
                case .bool(let bool): bindings.append(bool)
                case .date(let date): bindings.append(date)
                }
            }
            do {
                return try self.connection.query(PostgresQuery(unsafeSQL: text, binds: bindings), logger: self.logger).wait()
            } catch let error as PSQLError {
                throw self.storeError(error)
            }
        }

        /// A failed statement as the store reports it (and a conflict to retry as ``PostgresConflict``).
        func storeError(_ error: PSQLError) -> any Error {
            let state = error.serverInfo?[.sqlState] ?? ""
            switch state {
            case "40001", "40P01":
                return PostgresConflict(error: error)
            case let state where state.hasPrefix("23"):
                return StoreError(
                    .conflict,
                    "the relay database refused the change, which conflicts with a record it holds (\(PostgresDatabase.describe(error))); list the records and try again"
                )
            case "":
                return StoreError(
                    .unavailable,
                    "the PostgreSQL server \(self.location) could not be used (\(PostgresDatabase.describe(error))); check that it runs and accepts the relay's connections"
                )
            default:
                return StoreError(.unavailable, "the PostgreSQL server \(self.location) failed a statement (\(PostgresDatabase.describe(error)))")
            }
        }

        static func value(_ cell: PostgresCell) throws -> SQLValue {
            guard cell.bytes != nil else { return .null }
            switch cell.dataType {
            case .int2, .int4, .int8: return .integer(try cell.decode(Int64.self))
            case .bool: return .bool(try cell.decode(Bool.self))
            case .text, .varchar, .name, .bpchar: return .text(try cell.decode(String.self))
            case .bytea: return .blob(try cell.decode(Data.self))
            case .timestamptz, .timestamp: return .date(try cell.decode(Date.self))
            case .numeric:
                // SUM of bigint is numeric: whole numbers only here.
                let text = try cell.decode(String.self)
                guard let integer = Int64(text) else { throw SQLDecodingError(expected: "an integer", found: .text(text)) }
                return .integer(integer)
            default:
                throw StoreError(
                    .unavailable, "the relay database returned a column of type \(cell.dataType) (\(cell.columnName)), which the relay does not read")
            }
        }
    }
}

/// Where a PostgreSQL store is: `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=…]`.
///
/// `sslmode`: `disable`; `require` (TLS, and the server's certificate must be valid for its
/// name and signed by a CA of the system's or `sslrootcert=FILE`; libpq's `verify-full`
/// and `verify-ca` mean the same here); or, by default, `prefer` (TLS if the server offers
/// it, the certificate unchecked, as libpq does). A unix socket:
/// `postgres://USER@/DATABASE?host=/var/run/postgresql`.
struct PostgresTarget: Sendable, CustomStringConvertible {
    enum TLSMode: String, Sendable { case disable, prefer, require }

    var host: String?
    var socketDirectory: String?
    var port: Int
    var user: String
    var password: String?
    var database: String
    var tls: TLSMode
    var rootCertificate: String?

    init(url text: String) throws {
        let usage = "write it as postgres://USER:PASSWORD@HOST:PORT/DATABASE (optionally ?sslmode=disable|prefer|require)"
        // The address may hold a password: no message repeats it.
        guard let components = URLComponents(string: text), ["postgres", "postgresql"].contains(components.scheme?.lowercased() ?? "") else {
            throw StoreError(
                .invalidInput,
                "the store address is not a PostgreSQL address (it must start with postgres://); \(usage), with @ : / in the password written as %40 %3A %2F")
        }
        let query = Dictionary((components.queryItems ?? []).map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { $1 })
        self.user = components.user.flatMap { $0.removingPercentEncoding } ?? "postgres"
        self.password = components.password.flatMap { $0.removingPercentEncoding }
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        guard !path.isEmpty, !path.contains("/") else { throw StoreError(.invalidInput, "the PostgreSQL address names no database; \(usage)") }
        self.database = path.removingPercentEncoding ?? path
        self.port = components.port ?? Int(query["port"] ?? "") ?? 5432
        guard (1...65_535).contains(self.port) else { throw StoreError(.invalidInput, "the PostgreSQL address's port \(self.port) is not 1…65535; \(usage)") }
        if let socket = query["host"], socket.hasPrefix("/") {
            self.socketDirectory = socket
        } else if let host = components.host, !host.isEmpty {
            self.host = host
        } else {
            throw StoreError(.invalidInput, "the PostgreSQL address names no host; \(usage)")
        }
        let mode = query["sslmode"] ?? "prefer"
        guard let tls = TLSMode(rawValue: ["verify-full", "verify-ca"].contains(mode) ? "require" : mode) else {
            throw StoreError(.invalidInput, "sslmode=\(mode) is not one the relay knows; use disable, prefer or require")
        }
        self.tls = tls
        self.rootCertificate = query["sslrootcert"]
    }

    /// The address again, password included: for the tests' databases.
    var url: String {
        var components = URLComponents()
        components.scheme = "postgres"
        components.user = self.user
        components.password = self.password
        components.host = self.socketDirectory == nil ? self.host : ""
        components.port = self.port
        components.path = "/" + self.database
        var query = [URLQueryItem(name: "sslmode", value: self.tls.rawValue)]
        if let directory = self.socketDirectory { query.append(URLQueryItem(name: "host", value: directory)) }
        if let root = self.rootCertificate { query.append(URLQueryItem(name: "sslrootcert", value: root)) }
        components.queryItems = query
        return components.string ?? ""
    }

    /// The server and database, never the password: for messages and logs.
    var description: String {
        let place = self.socketDirectory.map { "\($0)/.s.PGSQL.\(self.port)" } ?? "\(self.host ?? ""):\(self.port)"
        return "postgres://\(self.user)@\(place)/\(self.database)"
    }

    func configuration() throws -> PostgresConnection.Configuration {
        if let directory = self.socketDirectory {
            return PostgresConnection.Configuration(
                unixSocketPath: "\(directory)/.s.PGSQL.\(self.port)", username: self.user, password: self.password, database: self.database)
        }
        let tls: PostgresConnection.Configuration.TLS
        switch self.tls {
        case .disable:
            tls = .disable
        case .prefer, .require:
            var configuration = TLSConfiguration.makeClientConfiguration()
            if let rootCertificate = self.rootCertificate { configuration.trustRoots = .file(rootCertificate) }
            if self.tls == .prefer { configuration.certificateVerification = .none }
            let context: NIOSSLContext
            do {
                context = try NIOSSLContext(configuration: configuration)
            } catch {
                throw StoreError(.invalidInput, "cannot use the certificate authority \(self.rootCertificate ?? "of the system") for PostgreSQL: \(error)")
            }
            tls = self.tls == .require ? .require(context) : .prefer(context)
        }
        return PostgresConnection.Configuration(
            host: self.host ?? "", port: self.port, username: self.user, password: self.password, database: self.database, tls: tls)
    }
}
