import Foundation
import RelayStore
import RelayTestSupport
import Testing

/// `relay-server store migrate` and `--store` on the admin commands, run as the built
/// program the way OPERATIONS.md "Scaling out" tells an operator to (issue 15 item 1).
@Suite(.enabled(if: StoreBackend.available.contains(.postgres), "needs PostgreSQL (RELAY_TEST_POSTGRES)"))
struct StoreCommandTests {
    /// Runs `relay-server ARGUMENTS` with `environment` added; returns its status and output.
    static func run(_ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, output: String, errors: String) {
        try BuiltExecutable.run("relay-server", arguments, environment: environment)
    }

    static func json(_ arguments: [String], environment: [String: String] = [:]) throws -> [String: Any] {
        let (status, output, errors) = try Self.run(arguments + ["--json"], environment: environment)
        guard status == 0, let object = try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any] else {
            throw TestFailure("relay-server \(arguments.joined(separator: " ")) failed (\(status)): \(errors)")
        }
        return object
    }

    /// A data folder and a new PostgreSQL database's address.
    static func withFolderAndDatabase<T>(_ body: (String, String) throws -> T) throws -> T {
        guard let server = ProcessInfo.processInfo.environment["RELAY_TEST_POSTGRES"] else {
            throw TestFailure("RELAY_TEST_POSTGRES is not set; scripts/test.sh starts PostgreSQL and sets it")
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("store-cli-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let database = try SQLStore.makePostgresDatabase(server: server)
        defer { try? SQLStore.dropPostgresDatabase(server: server, url: database) }
        return try body(directory, database)
    }

    @Test func aFolderMovesIntoPostgreSQLAndTheCommandsFollowTheStore() throws {
        try Self.withFolderAndDatabase { directory, database in
            let company = try #require(try Self.json(["company", "add", "ACME 코리아", "--data", directory])["id"] as? String)
            let key = Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
            _ = try Self.json(["engineer", "add", "--company", company, "kim.minji", "--public-key", key, "--data", directory])

            let migrated = try Self.json(["store", "migrate", "--from", directory, "--to", database])
            #expect(migrated["rows"] as? Int ?? 0 >= 4)
            let tables = try #require(migrated["tables"] as? [[String: Any]])
            #expect(tables.count == 14)
            #expect(tables.allSatisfy { ($0["sha256"] as? String)?.count == 64 })
            #expect(migrated["to"] as? String == database.replacingOccurrences(of: "?sslmode=disable", with: ""))

            // The admin commands read and write PostgreSQL with --store, or RELAY_STORE.
            let listed = try Self.json(["engineer", "list", "--store", database, "--data", directory])
            #expect("\(listed)".contains("kim.minji"))
            _ = try Self.json(["engineer", "add", "--company", company, "lee", "--data", directory], environment: ["RELAY_STORE": database])
            let both = try Self.json(["engineer", "list", "--data", directory], environment: ["RELAY_STORE": database])
            #expect("\(both)".contains("kim.minji") && "\(both)".contains("lee"))
            // The SQLite file was only read.
            let sqlite = try Self.json(["engineer", "list", "--data", directory])
            #expect(!"\(sqlite)".contains("lee"))
            let audit = try Self.run(["audit", "--store", database, "--data", directory])
            #expect(audit.status == 0 && audit.output.contains("store_migrate"))

            // Twice is refused, and says why.
            let again = try Self.run(["store", "migrate", "--from", directory, "--to", database])
            #expect(again.status != 0)
            #expect(again.errors.contains("already holds records") && again.errors.contains("new, empty database"))
            #expect(!again.errors.contains("PSQLError"))
        }
    }

    @Test func mistakesSayWhatToDo() throws {
        try Self.withFolderAndDatabase { directory, database in
            let noFolder = try Self.run(["store", "migrate", "--from", directory, "--to", database])
            #expect(noFolder.status != 0 && noFolder.errors.contains("has no relay.sqlite"))
            let notPostgres = try Self.run(["company", "list", "--store", "mysql://relay:s3cret@db/relay", "--data", directory])
            #expect(notPostgres.status != 0 && notPostgres.errors.contains("(mysql://…) is not a database the relay knows"))
            #expect(!notPostgres.errors.contains("s3cret"))
            // A mistyped scheme or a stray @ in the password: the message never repeats the address.
            for address in ["postgres:/relay:s3cret@db/relay", "postgres//relay:s3cret@db/relay", "postgres://relay:s3c@ret@db:5432/relay"] {
                let refused = try Self.run(["company", "list", "--store", address, "--data", directory])
                #expect(refused.status != 0)
                #expect(!refused.errors.contains("s3c"), "\(address): \(refused.errors)")
            }
            let port = try Self.run(["company", "list", "--store", "postgres://relay@127.0.0.1:99999/relay", "--data", directory])
            #expect(port.status != 0 && port.errors.contains("port 99999 is not 1…65535"))
            // Nothing listens on port 1: the message names the server, without the password.
            let unreachable = try Self.run(["company", "list", "--store", "postgres://relay:s3cret@127.0.0.1:1/relay", "--data", directory])
            #expect(unreachable.status != 0)
            #expect(unreachable.errors.contains("cannot reach the PostgreSQL server postgres://relay@127.0.0.1:1/relay"))
            #expect(!unreachable.errors.contains("s3cret"))
        }
    }
}
