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
/// (SQLSTATE 40001 or 40P01) runs again after a short random wait, at most ``retries`` times.
final class PostgresDatabase: SQLDatabase {
    let target: PostgresTarget
    var dialect: SQLDialect { .postgres }
    var location: String { self.target.description }
    let retries = 8

    private let group: any EventLoopGroup
    private let logger: Logger
    private let idle = Mutex<[PostgresConnection]>([])
    private let conflicts = Atomic<Int>(0)
    var conflictsRetried: Int { self.conflicts.load(ordering: .relaxed) }
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
        try self.withConnection { try body(Connection(connection: $0, logger: self.logger, target: self.target)) }
    }

    /// Takes the session-level advisory lock `key` on a connection kept for it: nil if
    /// another session holds it, else the function that unlocks it and frees the
    /// connection. PostgreSQL releases the lock itself if this process dies.
    func tryAdvisoryLock(_ key: Int64) throws -> (@Sendable () -> Void)? {
        let connection = try self.idleConnection() ?? self.connect()
        let sql = Connection(connection: connection, logger: self.logger, target: self.target)
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
                    let sql = Connection(connection: connection, logger: self.logger, target: self.target)
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
                self.conflicts.add(1, ordering: .relaxed)
                // Transactions that conflicted once are likely to meet again if they all
                // start over at once: wait a random while that grows with each attempt
                // (up to 1, 2, 4 … 64 ms; this is a pool thread, never an event loop).
                usleep(UInt32.random(in: 200...(1_000 << min(attempt - 1, 6))))
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
        let configuration = try self.target.configuration()
        do {
            return try PostgresConnection.connect(
                on: self.group.next(), configuration: configuration, id: Self.nextConnectionID.wrappingAdd(1, ordering: .relaxed).newValue, logger: self.logger
            ).wait()
        } catch {
            throw self.target.connectionFailure(error)
        }
    }

    private static let nextConnectionID = Atomic<Int>(0)

    /// A postgres-nio error in a sentence: the server's own message where it sent one,
    /// else what broke, in a few words (never NIO's whole error value).
    static func describe(_ error: any Error) -> String {
        guard let error = error as? PSQLError else { return Self.shortReason(error) }
        if let message = error.serverInfo?[.message] {
            let state = error.serverInfo?[.sqlState].map { " (SQLSTATE \($0))" } ?? ""
            return message + state
        }
        switch error.code {
        case .serverClosedConnection: return "the server closed the connection"
        case .clientClosedConnection, .uncleanShutdown: return "the connection broke"
        case .messageDecodingFailure, .unexpectedBackendMessage, .receivedUnencryptedDataAfterSSLRequest:
            return "the answer was not PostgreSQL's: is the port a PostgreSQL server's?"
        default: break
        }
        if let underlying = error.underlying { return Self.shortReason(underlying) }
        return "\(error.code)"
    }

    /// What a connection attempt ran into, as the operating system says it ("Connection
    /// refused"), not NIO's record of every address it tried.
    static func shortReason(_ error: any Error) -> String {
        var error = error
        if let attempt = error as? NIOConnectionError {
            guard let first = attempt.connectionErrors.first else {
                return attempt.dnsAError != nil || attempt.dnsAAAAError != nil ? "the host name \(attempt.host) is not known" : "no address to connect to"
            }
            error = first.error
        }
        if let io = error as? IOError { return String(cString: strerror(io.errnoCode)) }
        if let channel = error as? ChannelError, case .connectTimeout = channel { return "no answer before the time limit" }
        return "\(error)"
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
        let target: PostgresTarget
        var location: String { self.target.description }
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
            case "42501" where Self.needsOwnership(error):
                return StoreError(
                    .unavailable,
                    "the PostgreSQL server \(self.location) does not let the user \(self.target.user) change the relay's tables (\(PostgresDatabase.describe(error))): "
                        + "the relay's user must own the database and its schema public (OPERATIONS.md §11 step 1): "
                        + "sudo -u postgres psql -d \(self.target.database) -c 'ALTER DATABASE \(self.target.database) OWNER TO \(self.target.user)' "
                        + "-c 'ALTER SCHEMA public OWNER TO \(self.target.user)'"
                )
            default:
                return StoreError(.unavailable, "the PostgreSQL server \(self.location) failed a statement (\(PostgresDatabase.describe(error)))")
            }
        }

        /// A refusal that owning the database cures: the relay creates and changes its own
        /// tables. Other refusals (the purge's `pg_switch_wal()` and `CHECKPOINT`) need
        /// grants, which their callers name.
        static func needsOwnership(_ error: PSQLError) -> Bool {
            let message = error.serverInfo?[.message] ?? ""
            return message.hasPrefix("must be owner of")
                || ["schema", "table", "relation", "sequence", "database"].contains { message.hasPrefix("permission denied for \($0)") }
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
/// name and signed by a CA of the system's or `sslrootcert=FILE`); or, by default, `prefer`
/// (TLS if the server offers it, the certificate unchecked, as libpq does). libpq's
/// `verify-full` and `verify-ca` are taken as `require`: `verify-full` is what `require`
/// checks here, and `verify-ca` is checked as strictly (the name too), never less. A
/// unix socket: `postgres://USER@/DATABASE?host=/var/run/postgresql`. An IPv6 address
/// goes in brackets: `postgres://USER@[::1]:5432/DATABASE`.
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
        let usage = "write it as postgres://USER:PASSWORD@HOST:PORT/DATABASE (optionally ?sslmode=disable|prefer|require; an IPv6 address as [::1])"
        // The address may hold a password: no message repeats it.
        guard let components = URLComponents(string: text), ["postgres", "postgresql"].contains(components.scheme?.lowercased() ?? "") else {
            throw StoreError(
                .invalidInput,
                "the store address is not a PostgreSQL address (it must start with postgres://); \(usage), with @ : / in the password written as %40 %3A %2F")
        }
        let query = Dictionary((components.queryItems ?? []).map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { $1 })
        self.user = components.user.flatMap { $0.removingPercentEncoding }.flatMap { $0.isEmpty ? nil : $0 } ?? "postgres"
        self.password = components.password.flatMap { $0.removingPercentEncoding }
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        guard !path.isEmpty, !path.contains("/") else { throw StoreError(.invalidInput, "the PostgreSQL address names no database; \(usage)") }
        self.database = path.removingPercentEncoding ?? path
        self.port = components.port ?? Int(query["port"] ?? "") ?? 5432
        guard (1...65_535).contains(self.port) else { throw StoreError(.invalidInput, "the PostgreSQL address's port \(self.port) is not 1…65535; \(usage)") }
        if let socket = query["host"], socket.hasPrefix("/") {
            self.socketDirectory = socket
        } else if let host = components.host, !host.isEmpty {
            // URLComponents keeps an IPv6 literal's brackets; the connection wants the address.
            self.host = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        } else {
            throw StoreError(.invalidInput, "the PostgreSQL address names no host; \(usage)")
        }
        let mode = query["sslmode"] ?? "prefer"
        guard let tls = TLSMode(rawValue: ["verify-full", "verify-ca"].contains(mode) ? "require" : mode) else {
            throw StoreError(
                .invalidInput, "sslmode=\(mode) is not one the relay knows; use disable, prefer or require (verify-full and verify-ca are taken as require)")
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
        components.host = self.socketDirectory == nil ? self.bracketedHost : ""
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
        let place = self.socketDirectory.map { "\($0)/.s.PGSQL.\(self.port)" } ?? "\(self.bracketedHost):\(self.port)"
        return "postgres://\(self.user)@\(place)/\(self.database)"
    }

    /// The host as an address writes it: an IPv6 address in brackets.
    private var bracketedHost: String {
        let host = self.host ?? ""
        return host.contains(":") ? "[\(host)]" : host
    }

    /// Why a connection could not be made, for the operator: a server that was not
    /// reached is told apart from one that answered and refused (its reason, and what to
    /// do about it).
    func connectionFailure(_ error: any Error) -> StoreError {
        let server = self.socketDirectory.map { "\($0)/.s.PGSQL.\(self.port)" } ?? "\(self.bracketedHost):\(self.port)"
        guard let error = error as? PSQLError else {
            return StoreError(.unavailable, "cannot connect to the PostgreSQL server \(self) (\(PostgresDatabase.describe(error)))")
        }
        let said = PostgresDatabase.describe(error)
        switch error.code {
        case .sslUnsupported:
            return StoreError(
                .unavailable,
                "the PostgreSQL server at \(server) does not offer TLS, which the store address requires (sslmode=\(self.tls.rawValue)): "
                    + "enable ssl on the server (ssl = on, with a certificate, in postgresql.conf), or use sslmode=prefer or sslmode=disable on a network you trust"
            )
        case .authMechanismRequiresPassword:
            return StoreError(
                .unavailable,
                "the PostgreSQL server at \(server) asks for the password of the user \(self.user), and the store address has none: "
                    + "write it as postgres://USER:PASSWORD@HOST:PORT/DATABASE (@ : / in the password as %40 %3A %2F), or give it in RELAY_STORE"
            )
        case .unsupportedAuthMechanism:
            return StoreError(
                .unavailable,
                "the PostgreSQL server at \(server) asks the user \(self.user) to log in by a method the relay does not speak (\(said)): "
                    + "use scram-sha-256, md5, password or trust for it in the server's pg_hba.conf"
            )
        default:
            break
        }
        guard let state = error.serverInfo?[.sqlState] else {
            return StoreError(
                .unavailable,
                "cannot reach the PostgreSQL server \(self) (\(said)); check that it runs, that this machine may connect to it "
                    + "(its listen_addresses, a firewall), and the host and port of the store address"
            )
        }
        let message: String
        switch state {
        case "3D000":
            message =
                "the PostgreSQL server at \(server) has no database \(self.database) (\(said)): create it, owned by the relay's user "
                + "(OPERATIONS.md §11 step 1): sudo -u postgres createdb --owner \(self.user) \(self.database); or correct the database name in the store address"
        case "28000", "28P01":
            message =
                "the PostgreSQL server at \(server) refused the login of the user \(self.user) to \(self.database) (\(said)): check the user name and "
                + "password in the store address (OPERATIONS.md §11 step 1 makes the user: sudo -u postgres createuser --pwprompt \(self.user)), and "
                + "that the server's pg_hba.conf lets this machine log in"
        case "42501":
            message =
                "the PostgreSQL server at \(server) does not let the user \(self.user) connect to \(self.database) (\(said)): make the relay's user "
                + "own the database (OPERATIONS.md §11 step 1): sudo -u postgres psql -c 'ALTER DATABASE \(self.database) OWNER TO \(self.user)'"
        case "53300":
            message =
                "the PostgreSQL server at \(server) has no connection to spare (\(said)): raise its max_connections, or stop what holds its connections"
        case "57P03":
            message = "the PostgreSQL server at \(server) is starting or stopping (\(said)); try again in a moment"
        default:
            message = "the PostgreSQL server at \(server) refused the connection to \(self.database) (\(said))"
        }
        return StoreError(.unavailable, message)
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

/// What the command line needs to know about a store address (`--store`, `RELAY_STORE`,
/// the config file's `store`) before anything connects.
public enum StoreAddress {
    /// Whether `address` names a PostgreSQL database (else SQLite, or a mistake that
    /// opening it reports).
    public static func isPostgres(_ address: String?) -> Bool {
        guard let scheme = address?.lowercased() else { return false }
        return scheme.hasPrefix("postgres://") || scheme.hasPrefix("postgresql://")
    }

    /// Whether `address` holds a password (which anyone who reads it can use).
    public static func holdsPassword(_ address: String) -> Bool {
        guard Self.isPostgres(address), let components = URLComponents(string: address) else { return false }
        return !(components.password ?? "").isEmpty
    }

    /// `address` with its password, if any, shown as `…`: for a command to repeat.
    public static func withoutPassword(_ address: String) -> String {
        guard Self.holdsPassword(address), let components = URLComponents(string: address), let range = components.rangeOfPassword else { return address }
        return address.replacingCharacters(in: range, with: "…")
    }
}

extension SQLStore {
    /// On PostgreSQL with `wal_recycle = on`: a warning that the purge's rows may outlive
    /// it in WAL files the server renames for reuse instead of deleting (their old pages
    /// stay in them until overwritten). Nil on SQLite, with `wal_recycle = off`, or when
    /// the setting cannot be read (a server before PostgreSQL 12 has none).
    public func writeAheadLogRecycleWarning() -> String? {
        guard self.isPostgres, let setting = try? self.reading({ try $0.value("SHOW wal_recycle", as: String.self) }), setting == "on" else {
            return nil
        }
        return "the PostgreSQL server of \(self.location) has wal_recycle = on: it renames old WAL files for reuse instead of deleting them, "
            + "so purged rows may stay readable in them until they are overwritten; as a superuser, run ALTER SYSTEM SET wal_recycle = off "
            + "and SELECT pg_reload_conf() (OPERATIONS.md §11 \"Retention on PostgreSQL\")"
    }
}
