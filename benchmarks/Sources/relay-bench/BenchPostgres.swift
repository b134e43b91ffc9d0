// The PostgreSQL server of `relay-bench cluster`: a throwaway one in a temporary folder
// (as scripts/lib/postgres.sh starts one for the tests), or the server RELAY_TEST_POSTGRES
// names. Either way the bench makes databases of its own on it and drops them afterwards.
// Everything goes through Debian's programs (initdb, pg_ctl, psql): the bench package
// does not link a PostgreSQL client.

import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// One PostgreSQL server the bench may make databases on.
final class BenchPostgres {
    /// An address of the server's `postgres` database, for psql's own queries: they count
    /// in that database's statistics, not in the relay's.
    let serverURL: String
    /// The throwaway server's folder (nil for a server the bench did not start).
    let folder: String?
    private(set) var version: String
    private(set) var fsync: Bool
    /// Whether pg_stat_statements counts statements on this server.
    private(set) var countsStatements = false
    private let binaries: String?
    private let psql: String
    private var databases: [String] = []

    private init(serverURL: String, folder: String?, binaries: String?, psql: String, version: String, fsync: Bool) {
        self.serverURL = serverURL
        self.folder = folder
        self.binaries = binaries
        self.psql = psql
        self.version = version
        self.fsync = fsync
    }

    /// The server `url` names (RELAY_TEST_POSTGRES): the bench needs a user who may create
    /// databases.
    static func external(url: String) throws -> BenchPostgres {
        guard let psql = which("psql") ?? Self.serverBinaries().map({ $0 + "/psql" }) else {
            throw BenchError("psql is missing (Debian: apt-get install postgresql-client)")
        }
        let server = BenchPostgres(serverURL: url, folder: nil, binaries: nil, psql: psql, version: "", fsync: true)
        server.version = try server.query("SHOW server_version")
        server.fsync = try server.query("SHOW fsync") == "on"
        server.postmasterPID = server.findPostmaster()
        // Statements are counted where the server loads pg_stat_statements and the bench may
        // make the extension's view.
        server.countsStatements =
            (try? server.query("SHOW shared_preload_libraries"))?.contains("pg_stat_statements") == true
            && (try? server.query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")) != nil
        return server
    }

    /// A new server in a temporary folder on a free loopback port, trusting local
    /// connections; as root its programs run as the `postgres` user (initdb refuses root).
    /// `fsync` off is what the tests use; on is PostgreSQL's default and a production
    /// server's setting.
    static func startThrowaway(fsync: Bool) throws -> BenchPostgres {
        guard let binaries = Self.serverBinaries() else {
            throw BenchError("PostgreSQL's server programs are missing (Debian: apt-get install postgresql), and RELAY_TEST_POSTGRES is not set")
        }
        var template = Array("/tmp/relay-bench-postgres-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw BenchError("cannot make a temporary folder in /tmp for PostgreSQL") }
        let folder = String(cString: made)
        let asRoot = getuid() == 0
        if asRoot {
            guard let user = getpwnam("postgres") else {
                try? FileManager.default.removeItem(atPath: folder)
                throw BenchError("running as root, the bench starts PostgreSQL as the user postgres, and there is none (Debian's postgresql package makes it)")
            }
            chown(folder, user.pointee.pw_uid, user.pointee.pw_gid)
        }
        func asPostgres(_ program: String, _ arguments: [String]) throws {
            if asRoot {
                guard let runuser = which("runuser") else { throw BenchError("runuser is missing (util-linux)") }
                try Self.run(runuser, ["-u", "postgres", "--", program] + arguments, log: folder + "/programs.log")
            } else {
                try Self.run(program, arguments, log: folder + "/programs.log")
            }
        }
        do {
            try asPostgres(binaries + "/initdb", ["-D", folder + "/data", "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            let port = try freePort()
            // pg_stat_statements counts each statement the relays run (see statistics(of:)).
            let options =
                "-p \(port) -k \(folder) -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=\(fsync ? "on" : "off") "
                + "-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.max=5000"
            try asPostgres(binaries + "/pg_ctl", ["-D", folder + "/data", "-l", folder + "/server.log", "-w", "-t", "60", "-o", options, "start"])
            let url = "postgres://postgres@127.0.0.1:\(port)/postgres?sslmode=disable"
            // "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)": the third word.
            let words = try runTool(binaries + "/postgres", ["--version"]).split(separator: " ")
            let version = words.count > 2 ? String(words[2]).trimmingWhitespace : words.joined(separator: " ")
            let server = BenchPostgres(serverURL: url, folder: folder, binaries: binaries, psql: binaries + "/psql", version: version, fsync: fsync)
            server.postmasterPID = server.findPostmaster()
            server.countsStatements = (try? server.query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")) != nil
            return server
        } catch {
            let log = ["/programs.log", "/server.log"].compactMap { try? String(contentsOfFile: folder + $0, encoding: .utf8) }.joined(separator: "\n")
            try? asPostgres(binaries + "/pg_ctl", ["-D", folder + "/data", "-m", "immediate", "stop"])
            try? FileManager.default.removeItem(atPath: folder)
            throw BenchError("PostgreSQL did not start: \(error)\n\(log)")
        }
    }

    /// Runs a program to its end with its output appended to `log`. Not with Foundation's
    /// Process: it learns that a child ended when a socket the child inherited closes, and
    /// the server pg_ctl starts inherits it too and keeps it open, so the wait never ends.
    private static func run(_ program: String, _ arguments: [String], log: String) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv: [UnsafeMutablePointer<CChar>?] = ([program] + arguments).map { strdup($0) } + [nil]
        defer { for argument in argv { free(argument) } }
        var pid = pid_t()
        let spawned = posix_spawn(&pid, program, &actions, nil, argv, environ)
        guard spawned == 0 else { throw BenchError("cannot start \(program): \(String(cString: strerror(spawned)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0, errno == EINTR {}
        // WIFEXITED and WEXITSTATUS, which Swift does not import.
        guard status & 0x7f == 0, (status >> 8) & 0xff == 0 else {
            throw BenchError("\(program) \(arguments.joined(separator: " ")) failed (wait status \(status); its output is in \(log))")
        }
    }

    /// The newest /usr/lib/postgresql/N/bin with initdb.
    private static func serverBinaries() -> String? {
        let root = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).compactMap(Int.init).sorted()
        return versions.reversed().map { "\(root)/\($0)/bin" }.first { FileManager.default.isExecutableFile(atPath: $0 + "/initdb") }
    }

    /// Stops the throwaway server and deletes its folder; drops the bench's databases on
    /// a server it did not start.
    func stop() {
        for database in self.databases { try? self.dropDatabase(database) }
        guard let folder, let binaries else { return }
        let arguments = ["-D", folder + "/data", "-m", "fast", "stop"]
        if getuid() == 0, let runuser = which("runuser") {
            try? Self.run(runuser, ["-u", "postgres", "--", binaries + "/pg_ctl"] + arguments, log: folder + "/programs.log")
        } else {
            try? Self.run(binaries + "/pg_ctl", arguments, log: folder + "/programs.log")
        }
        try? FileManager.default.removeItem(atPath: folder)
    }

    // MARK: Databases

    /// Makes an empty database and returns its name.
    func createDatabase(_ label: String) throws -> String {
        let name = "relay_bench_\(getpid())_\(label)"
        try self.query("CREATE DATABASE \(name)")
        self.databases.append(name)
        return name
    }

    func dropDatabase(_ name: String) throws {
        try self.query("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
        self.databases.removeAll { $0 == name }
    }

    /// The address of database `name` on this server (the server address with another path).
    func url(of name: String) -> String {
        let (base, query) =
            self.serverURL.firstIndex(of: "?").map { (String(self.serverURL[..<$0]), String(self.serverURL[$0...])) } ?? (self.serverURL, "")
        let afterScheme = base.range(of: "://").map { base[$0.upperBound...] } ?? base[...]
        let authority = afterScheme.firstIndex(of: "/").map { afterScheme[..<$0] } ?? afterScheme
        let scheme = base.range(of: "://").map { String(base[..<$0.upperBound]) } ?? "postgres://"
        return scheme + authority + "/" + name + query
    }

    /// Runs one statement in the server's `postgres` database; returns psql's unaligned output.
    @discardableResult
    func query(_ sql: String) throws -> String {
        try runTool(self.psql, ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", self.serverURL, "-c", sql]).trimmingWhitespace
    }

    // MARK: Statistics

    /// pg_stat_database's counters of database `name`, its tables' row counts, and the
    /// server's WAL position, read in that database: the reading is itself one transaction
    /// there, which ``DatabaseStatistics/-`` takes off again. PostgreSQL 15 backends report
    /// their counts when they go idle, at most once a second, so a reading lags the work
    /// by about that much.
    func statistics(of name: String) throws -> DatabaseStatistics {
        let output = try runTool(
            self.psql,
            [
                "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", self.url(of: name), "-c",
                """
                SELECT '', xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted, \
                pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint FROM pg_stat_database WHERE datname = current_database() \
                UNION ALL SELECT relname, 0, 0, n_tup_ins, n_tup_upd, n_tup_del, 0 FROM pg_stat_user_tables
                """,
            ])
        var statistics: DatabaseStatistics?
        var tables: [String: TableWrites] = [:]
        for line in output.split(separator: "\n") {
            let fields = line.split(separator: "|", omittingEmptySubsequences: false).map { String($0).trimmingWhitespace }
            let values = fields.dropFirst().compactMap { Int($0) }
            guard fields.count == 7, values.count == 6 else { throw BenchError("unexpected statistics row for \(name): \(line)") }
            if fields[0].isEmpty {
                statistics = DatabaseStatistics(
                    commits: values[0], rollbacks: values[1], inserted: values[2], updated: values[3], deleted: values[4], walBytes: values[5])
            } else {
                tables[fields[0]] = TableWrites(inserted: values[2], updated: values[3], deleted: values[4])
            }
        }
        guard var statistics else { throw BenchError("pg_stat_database has no row for \(name)") }
        statistics.tables = tables
        if self.countsStatements {
            // psql's field separator is "|", which no statement of the relay's holds; the
            // bench's own readings are left out.
            let rows = try self.query(
                """
                SELECT calls, rows, regexp_replace(query, '\\s+', ' ', 'g') FROM pg_stat_statements \
                WHERE dbid = (SELECT oid FROM pg_database WHERE datname = '\(name)') AND query NOT LIKE '%pg_stat_%' AND query <> 'ANALYZE'
                """)
            for line in rows.split(separator: "\n") {
                let fields = line.split(separator: "|", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
                guard fields.count == 3, let calls = Int(fields[0]), let rowCount = Int(fields[1]) else { continue }
                let text = fields[2].trimmingWhitespace
                let earlier = statistics.statements[text] ?? StatementCount(calls: 0, rows: 0)
                statistics.statements[text] = StatementCount(calls: earlier.calls + calls, rows: earlier.rows + rowCount)
            }
        }
        return statistics
    }

    /// Runs ANALYZE in database `name`, so that autovacuum has no statistics to gather
    /// (and rows to write into the catalogs) during a measured window.
    func analyze(_ name: String) throws {
        try runTool(self.psql, ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", self.url(of: name), "-c", "ANALYZE"])
    }

    /// The postmaster's process id when the server runs on this machine and its data
    /// folder is readable here (the throwaway server always); nil otherwise.
    private(set) var postmasterPID: Int32?

    private func findPostmaster() -> Int32? {
        let folder = self.folder.map { $0 + "/data" } ?? (try? self.query("SHOW data_directory"))
        guard let folder, let text = try? String(contentsOfFile: folder + "/postmaster.pid", encoding: .utf8),
            let first = text.split(separator: "\n").first, let pid = Int32(String(first).trimmingWhitespace)
        else { return nil }
        return pid
    }

    /// CPU seconds of the whole server: the postmaster, its children now, and the children
    /// that ended (in the postmaster's cutime and cstime). Nil when the server is not here.
    /// On a server other programs use too, this counts their work as well.
    func cpuSeconds() -> Double? {
        guard let root = self.postmasterPID, let own = ProcessStat(pid: root) else { return nil }
        var total = own.user + own.system + own.childrenUser + own.childrenSystem
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry), pid != root, let stat = ProcessStat(pid: pid), stat.parent == root else { continue }
            total += stat.user + stat.system
        }
        return total
    }
}

/// How often one statement ran and the rows it returned or changed (pg_stat_statements).
struct StatementCount {
    var calls: Int
    var rows: Int
}

/// Rows one table gained, changed and lost (pg_stat_user_tables).
struct TableWrites {
    var inserted: Int
    var updated: Int
    var deleted: Int

    var total: Int { self.inserted + self.updated + self.deleted }
}

/// pg_stat_database counters of one database (and the server's WAL bytes), or their
/// difference between two readings.
struct DatabaseStatistics {
    var commits: Int
    var rollbacks: Int
    var inserted: Int
    var updated: Int
    var deleted: Int
    /// Server-wide: every database's writes, and PostgreSQL's own.
    var walBytes: Int
    /// By table, for the tables that were written.
    var tables: [String: TableWrites] = [:]
    /// By statement (normalized text), where the server counts statements.
    var statements: [String: StatementCount] = [:]

    /// Rows of the relay's tables inserted, updated or deleted. The database's own counters
    /// (``inserted`` and so on) also count the catalogs' rows, which ANALYZE writes.
    var rowsWritten: Int { self.tables.values.reduce(0) { $0 + $1.total } }

    /// The difference between two readings, less the first reading's own transaction.
    static func - (after: DatabaseStatistics, before: DatabaseStatistics) -> DatabaseStatistics {
        var tables: [String: TableWrites] = [:]
        for (name, writes) in after.tables {
            let earlier = before.tables[name] ?? TableWrites(inserted: 0, updated: 0, deleted: 0)
            let difference = TableWrites(
                inserted: writes.inserted - earlier.inserted, updated: writes.updated - earlier.updated, deleted: writes.deleted - earlier.deleted)
            if difference.total != 0 { tables[name] = difference }
        }
        var statements: [String: StatementCount] = [:]
        for (text, count) in after.statements {
            let earlier = before.statements[text] ?? StatementCount(calls: 0, rows: 0)
            if count.calls > earlier.calls { statements[text] = StatementCount(calls: count.calls - earlier.calls, rows: count.rows - earlier.rows) }
        }
        return DatabaseStatistics(
            commits: after.commits - before.commits - 1, rollbacks: after.rollbacks - before.rollbacks, inserted: after.inserted - before.inserted,
            updated: after.updated - before.updated, deleted: after.deleted - before.deleted, walBytes: after.walBytes - before.walBytes, tables: tables,
            statements: statements)
    }

    /// "session 300 upd, relay_node 24 upd", largest first.
    var tableSummary: String {
        let sorted = self.tables.sorted { $0.value.total != $1.value.total ? $0.value.total > $1.value.total : $0.key < $1.key }
        return sorted.map { name, writes in
            let parts = [(writes.inserted, "ins"), (writes.updated, "upd"), (writes.deleted, "del")].filter { $0.0 != 0 }.map { "\($0.0) \($0.1)" }
            return ([name] + parts).joined(separator: " ")
        }.joined(separator: ", ")
    }

    var json: JSON {
        .object([
            ("transactions", .int(self.commits)), ("rollbacks", .int(self.rollbacks)), ("rows_written", .int(self.rowsWritten)),
            ("database_rows_inserted", .int(self.inserted)), ("database_rows_updated", .int(self.updated)),
            ("database_rows_deleted", .int(self.deleted)), ("wal_bytes", .int(self.walBytes)),
            (
                "tables",
                .object(
                    self.tables.sorted { $0.key < $1.key }.map { name, writes in
                        (name, .object([("inserted", .int(writes.inserted)), ("updated", .int(writes.updated)), ("deleted", .int(writes.deleted))]))
                    })
            ),
            (
                "statements",
                .array(
                    self.statements.sorted { $0.value.calls > $1.value.calls }.map { text, count in
                        .object([("calls", .int(count.calls)), ("rows", .int(count.rows)), ("statement", .string(text))])
                    })
            ),
        ])
    }
}

/// The fields of /proc/PID/stat the bench reads, in seconds.
struct ProcessStat {
    var parent: Int32
    var user: Double
    var system: Double
    var childrenUser: Double
    var childrenSystem: Double

    init?(pid: Int32) {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = text.lastIndex(of: ")") else { return nil }
        // After the command's closing parenthesis: field 3 (state) is [0], ppid (4) is [1],
        // utime (14) [11], stime (15) [12], cutime (16) [13], cstime (17) [14].
        let fields = text[text.index(after: close)...].split(separator: " ")
        let tick = Double(sysconf(Int32(_SC_CLK_TCK)))
        guard fields.count > 14, let parent = Int32(fields[1]), let user = Double(fields[11]), let system = Double(fields[12]),
            let childrenUser = Double(fields[13]), let childrenSystem = Double(fields[14])
        else { return nil }
        self.parent = parent
        self.user = user / tick
        self.system = system / tick
        self.childrenUser = childrenUser / tick
        self.childrenSystem = childrenSystem / tick
    }
}
