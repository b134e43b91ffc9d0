import Foundation

/// A PostgreSQL server of one test's own, which the test may stop and start again (the
/// shared server of `RELAY_TEST_POSTGRES` must keep running for the others): a new
/// cluster in a temporary folder on a free loopback port, from Debian's `postgresql`
/// programs, run as the `postgres` user when the tests run as root (initdb refuses root).
public final class TestPostgresServer: @unchecked Sendable {
    public let port: Int
    /// The cluster's files (`base/`, `pg_wal/`, …).
    public var dataDirectory: String { "\(self.folder)/data" }
    private let folder: String
    private let settings: [String]
    private let programs: String
    /// `postgres://postgres@127.0.0.1:PORT/postgres?sslmode=disable`.
    public var url: String { "postgres://postgres@127.0.0.1:\(self.port)/postgres?sslmode=disable" }

    /// Makes and starts the server with these `settings` (`name=value`, as `postgres -c`);
    /// throws with the server's own output if it cannot.
    public init(settings: [String] = []) throws {
        self.settings = settings
        let root = "/usr/lib/postgresql"
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        guard let version = versions.compactMap(Int.init).max() else {
            throw TestFailure("PostgreSQL's programs are not installed in \(root) (Debian: apt-get install postgresql)")
        }
        self.programs = "\(root)/\(version)/bin"
        self.folder = NSTemporaryDirectory() + "relay-pg-\(UUID().uuidString)"
        self.port = try Self.freePort()
        try FileManager.default.createDirectory(atPath: self.folder, withIntermediateDirectories: true)
        if getuid() == 0 {
            try FileManager.default.setAttributes([.ownerAccountName: "postgres", .posixPermissions: 0o700], ofItemAtPath: self.folder)
        }
        try self.run("initdb", ["-D", "\(self.folder)/data", "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
        try self.start()
    }

    deinit {
        _ = try? self.run("pg_ctl", ["-D", "\(self.folder)/data", "-m", "immediate", "stop"])
        try? FileManager.default.removeItem(atPath: self.folder)
    }

    /// Starts the server (again) and waits until it accepts connections.
    public func start() throws {
        try self.run(
            "pg_ctl",
            [
                "-D", "\(self.folder)/data", "-l", "\(self.folder)/server.log", "-w", "-t", "60", "-o",
                "-p \(self.port) -k \(self.folder) -c listen_addresses=127.0.0.1 -c fsync=off"
                    + self.settings.map { " -c \($0)" }.joined(),
                "start",
            ])
    }

    /// Stops the server at once (`immediate`: as a crash or a cut cable looks to its clients).
    public func stop() throws {
        try self.run("pg_ctl", ["-D", "\(self.folder)/data", "-m", "immediate", "-w", "stop"])
    }

    /// Runs `program` and waits for it with `waitpid`: Foundation's `Process` did not
    /// notice `runuser` ending when waited for from a test's task.
    @discardableResult
    private func run(_ program: String, _ arguments: [String]) throws -> String {
        let executable = "\(self.programs)/\(program)"
        let command = getuid() == 0 ? ["/usr/sbin/runuser", "-u", "postgres", "--", executable] + arguments : [executable] + arguments
        // A file, not a pipe: the server pg_ctl starts may keep a pipe open for its life.
        let outputPath = NSTemporaryDirectory() + "relay-pg-\(UUID().uuidString).out"
        defer { try? FileManager.default.removeItem(atPath: outputPath) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var argv: [UnsafeMutablePointer<CChar>?] = command.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, command[0], &actions, nil, &argv, environ)
        guard spawned == 0 else { throw TestFailure("cannot run \(command[0]): \(String(cString: strerror(spawned)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1, errno == EINTR {}
        let printed = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        // WIFEXITED and WEXITSTATUS, which Swift does not import.
        guard status & 0x7F == 0, (status >> 8) & 0xFF == 0 else {
            let log = (try? String(contentsOfFile: "\(self.folder)/server.log", encoding: .utf8)) ?? ""
            throw TestFailure("\(program) \(arguments.joined(separator: " ")) failed (status \(status)): \(printed)\n\(log.suffix(2000))")
        }
        return printed
    }

    private static func freePort() throws -> Int {
        let socket = Foundation.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { throw TestFailure("no socket for a free port") }
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, length) == 0 && getsockname(socket, $0, &length) == 0 }
        }
        guard bound else { throw TestFailure("cannot bind a free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
