import Foundation
import RelayStore
import RelayTestSupport
import Testing

@testable import RelayServer

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
            #expect(again.errors.contains("already holds records") && again.errors.contains("drop and recreate it"))
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
            #expect(unreachable.errors.contains("cannot reach the PostgreSQL server postgres://relay@127.0.0.1:1/relay (Connection refused)"))
            #expect(!unreachable.errors.contains("s3cret") && !unreachable.errors.contains("SingleConnectionFailure"))
        }
    }

    /// The config file's `store` and `data_directory` choose the store of the admin
    /// commands as they do `serve`'s, under --store, RELAY_STORE and --data (F4); a
    /// PostgreSQL store makes no data folder, and the next commands printed carry the flags
    /// that chose the store, without a password (F15).
    @Test func theConfigFileChoosesTheStoreAndTheHintsRepeatTheFlags() throws {
        try Self.withFolderAndDatabase { directory, database in
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let config = directory + "/relay.json"
            let data = directory + "/data"
            try FileModes.write(config, #"{"store": "\#(database)", "data_directory": "\#(data)"}"#, mode: 0o600)
            let unset = ["RELAY_STORE": ""]
            let added = try Self.run(["company", "add", "--config", config, "Config Co"], environment: unset)
            #expect(added.status == 0, "\(added.errors)")
            #expect(added.output.contains("Next: relay-server engineer add --config \(config) --company co-"), "\(added.output)")
            #expect(!FileManager.default.fileExists(atPath: data))
            let inPostgres = try Self.json(["company", "list", "--store", database])
            #expect("\(inPostgres)".contains("Config Co"))
            // RELAY_STORE over the config file (SQLite, in the config file's data folder), --store over both.
            let sqlite = try Self.json(["company", "list", "--config", config], environment: ["RELAY_STORE": "sqlite"])
            #expect((sqlite["companies"] as? [Any])?.isEmpty == true)
            #expect(FileManager.default.fileExists(atPath: data + "/relay.sqlite"))
            let flag = try Self.json(["company", "list", "--config", config, "--store", database], environment: ["RELAY_STORE": "sqlite"])
            #expect("\(flag)".contains("Config Co"))
            // `usage purge --config` purges the config file's store: its audit entry is in PostgreSQL.
            let purged = try Self.run(["usage", "purge", "--config", config, "--dry-run"], environment: unset)
            #expect(purged.status == 0, "\(purged.errors)")
            let audit = try Self.run(["audit", "--store", database])
            #expect(audit.output.contains("purge_dry_run"))

            // A password on the command line is warned about, and the hints leave it out.
            let withPassword = database.replacingOccurrences(of: "postgres://postgres@", with: "postgres://postgres:s3cret@")
            let never = directory + "/never"
            let hinted = try Self.run(["company", "add", "--store", withPassword, "--data", never, "Hinted Co"])
            #expect(hinted.status == 0, "\(hinted.errors)")
            #expect(hinted.errors.contains("process list (ps)"))
            #expect(hinted.output.contains("Next: relay-server engineer add --data \(never) --store 'postgres://postgres:…@127.0.0.1:"), "\(hinted.output)")
            #expect(!hinted.output.contains("s3cret") && !hinted.errors.contains("s3cret"))
            #expect(!FileManager.default.fileExists(atPath: never))
        }
    }

    /// A purge on a server that renames old WAL files for reuse says that the purged rows
    /// may live on in them (F5); a server with `wal_recycle = off` gets no such warning.
    @Test(arguments: [true, false]) func aPurgeSaysWhenTheServerRecyclesItsWAL(recycles: Bool) throws {
        let server = try TestPostgresServer(settings: recycles ? [] : ["wal_recycle=off"])
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("purge-wal-\(UUID().uuidString)").path
        let purged = try Self.run(["usage", "purge", "--store", server.url, "--data", folder])
        #expect(purged.status == 0, "\(purged.errors)")
        #expect(purged.output.contains("Purged 0 usage records"))
        #expect(purged.errors.contains("has wal_recycle = on") == recycles, "\(purged.errors)")
        if recycles { #expect(purged.errors.contains("ALTER SYSTEM SET wal_recycle = off") && purged.errors.contains("OPERATIONS.md §11")) }
        let help = try Self.run(["usage", "purge", "--help"])
        #expect(help.output.contains("VACUUM FULL") && help.output.contains("wal_recycle"))
    }

    /// Two migrations from different folders into one new database at the same moment: one
    /// copies, the other refuses and leaves nothing behind, so the first one's check holds
    /// for the whole database (F6).
    @Test func twoMigrationsAtOnceCopyOnce() async throws {
        guard let server = ProcessInfo.processInfo.environment["RELAY_TEST_POSTGRES"] else {
            throw TestFailure("RELAY_TEST_POSTGRES is not set; scripts/test.sh starts PostgreSQL and sets it")
        }
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("store-race-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let folders = [root + "/first", root + "/second"]
        for (folder, name) in zip(folders, ["First Co", "Second Co"]) {
            _ = try Self.json(["company", "add", name, "--data", folder])
        }
        for _ in 0..<3 {
            let database = try SQLStore.makePostgresDatabase(server: server)
            defer { try? SQLStore.dropPostgresDatabase(server: server, url: database) }
            async let first = Self.run(["store", "migrate", "--from", folders[0], "--to", database])
            async let second = Self.run(["store", "migrate", "--from", folders[1], "--to", database])
            let runs = try await [first, second]
            let copied = runs.indices.filter { runs[$0].status == 0 }
            #expect(copied.count == 1, "\(runs.map(\.errors))")
            guard let winner = copied.first else { continue }
            let loser = runs[1 - winner]
            #expect(
                loser.errors.contains("another `relay-server store migrate` is copying into") || loser.errors.contains("already holds records"),
                "\(loser.errors)")
            #expect(!loser.errors.contains("list the records"))
            let companies = try #require(try Self.json(["company", "list", "--store", database])["companies"] as? [[String: Any]])
            #expect(companies.map { $0["name"] as? String } == [winner == 0 ? "First Co" : "Second Co"])
        }
    }

    /// `store migrate` refuses a folder whose relay is running, and says to stop it (F13).
    @Test(.timeLimit(.minutes(2))) func aRunningRelayKeepsItsFolderFromBeingMigrated() throws {
        try Self.withFolderAndDatabase { directory, database in
            _ = try Self.json(["company", "add", "ACME", "--data", directory])
            let config = directory + "/relay.json"
            try FileModes.write(config, #"{"listen": "127.0.0.1:0", "admin_listen": "127.0.0.1:0"}"#, mode: 0o600)
            let refused: (status: Int32, output: String, errors: String)
            do {
                let relay = try CrashRecoveryTests.ServerProcess(
                    executable: try BuiltExecutable.url("relay-server"), dataDirectory: directory, configFile: config)
                defer { relay.kill(SIGTERM) }
                refused = try Self.run(["store", "migrate", "--from", directory, "--to", database])
            }
            #expect(refused.status != 0)
            #expect(refused.errors.contains("a relay is running on \(directory)") && refused.errors.contains("stop it first"), "\(refused.errors)")
            let untouched = try Self.json(["company", "list", "--store", database])
            #expect((untouched["companies"] as? [Any])?.isEmpty == true)
            let migrated = try Self.run(["store", "migrate", "--from", directory, "--to", database])
            #expect(migrated.status == 0, "\(migrated.errors)")
        }
    }

    /// A damaged SQLite file is the source to restore, not one to move aside (F14).
    @Test func aDamagedSourceIsToBeRestoredNotSetAside() throws {
        try Self.withFolderAndDatabase { directory, database in
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let noise = Data((0..<8192).map { _ in UInt8.random(in: 0...255) })
            for contents in [noise, Data("SQLite format 3\u{0}".utf8) + noise] {
                try contents.write(to: URL(fileURLWithPath: directory + "/relay.sqlite"))
                let refused = try Self.run(["store", "migrate", "--from", directory, "--to", database])
                #expect(refused.status != 0)
                #expect(!refused.errors.contains("move it aside") && !refused.errors.contains("start empty"), "\(refused.errors)")
                #expect(refused.errors.contains("restore it from a backup") && refused.errors.contains("nothing was copied"))
            }
        }
    }
}
