import Foundation
import RelayTestSupport
import Testing

@testable import RelayServer

/// What the command line reads and prints around the store, run as the built program
/// (outside test 15): the admin commands' `--config` (F4), a password the config file or
/// the command line would show to others (F11), `serve --help`'s config keys (F16), and
/// an export to standard output with `--json` (F17). SQLite only: these run everywhere.
@Suite struct CommandOptionsTests {
    /// `RELAY_STORE` unset, whatever the test runner's environment holds.
    static func run(_ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, output: String, errors: String) {
        try BuiltExecutable.run("relay-server", arguments, environment: ["RELAY_STORE": ""].merging(environment) { $1 })
    }

    static func json(_ arguments: [String]) throws -> [String: Any] {
        let (status, output, errors) = try Self.run(arguments + ["--json"])
        guard status == 0, let object = try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any] else {
            throw TestFailure("relay-server \(arguments.joined(separator: " ")) failed (\(status)): \(errors)")
        }
        return object
    }

    static func withFolder<T>(_ body: (String) throws -> T) throws -> T {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("options-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        return try body(directory)
    }

    /// Before the fix, `company add --config FILE` wrote into ./relay-data.
    @Test func theConfigFileNamesTheAdminCommandsDataFolder() throws {
        try Self.withFolder { directory in
            let data = directory + "/data"
            let config = directory + "/relay.json"
            try FileModes.write(config, #"{"data_directory": "\#(data)", "usage_retention_months": 24}"#, mode: 0o644)
            let added = try Self.json(["company", "add", "--config", config, "Config Co"])
            #expect(added["name"] as? String == "Config Co")
            let listed = try Self.json(["company", "list", "--data", data])
            #expect((listed["companies"] as? [[String: Any]])?.first?["name"] as? String == "Config Co")
            // `usage purge` takes the data folder and the retention settings from it.
            let purged = try Self.json(["usage", "purge", "--config", config, "--dry-run"])
            let cutoff = try #require(purged["usage_cutoff"] as? String)
            #expect(cutoff.hasPrefix("\(Calendar(identifier: .gregorian).component(.year, from: Date()) - 2)-"))
            // --data over the config file; the hint repeats both.
            let other = try Self.run(["company", "list", "--config", config, "--data", directory + "/other"])
            #expect(other.output.contains("No companies yet. Add one: relay-server company add --config \(config) --data \(directory)/other NAME"))
        }
    }

    /// A config file whose `store` holds a password must not be readable by others, as a
    /// key file must not (F11); a password on the command line is warned about.
    @Test func aPasswordOthersCanReadIsRefusedOrWarnedAbout() throws {
        try Self.withFolder { directory in
            let config = directory + "/relay.json"
            let secret = "postgres://relay:s3cret@127.0.0.1:1/relay?sslmode=disable"
            try FileModes.write(config, #"{"store": "\#(secret)", "listen": "127.0.0.1:0", "admin_listen": "127.0.0.1:0"}"#, mode: 0o644)
            let serve = ["serve", "--config", config, "--data", directory + "/data"]
            let refused = try Self.run(serve)
            #expect(refused.status != 0)
            #expect(refused.errors.contains("holds a database password") && refused.errors.contains("chmod 600 \(config)"), "\(refused.errors)")
            #expect(refused.errors.contains("RELAY_STORE") && !refused.errors.contains("s3cret"))
            let admin = try Self.run(["company", "list", "--config", config])
            #expect(admin.status != 0 && admin.errors.contains("chmod 600 \(config)"))
            // Private: taken (and then no server answers on port 1).
            try FileModes.set(config, 0o600)
            let taken = try Self.run(serve)
            #expect(taken.status != 0 && taken.errors.contains("cannot reach the PostgreSQL server"), "\(taken.errors)")
            #expect(!taken.errors.contains("process list"))

            let flags = ["serve", "--data", directory + "/data", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"]
            let onCommandLine = try Self.run(flags + ["--store", secret])
            #expect(onCommandLine.status != 0)
            #expect(onCommandLine.errors.contains("process list (ps)") && onCommandLine.errors.contains("RELAY_STORE"), "\(onCommandLine.errors)")
            #expect(!onCommandLine.errors.contains("s3cret"))
            let fromEnvironment = try Self.run(flags, environment: ["RELAY_STORE": secret])
            #expect(fromEnvironment.status != 0 && !fromEnvironment.errors.contains("process list"))
        }
    }

    /// `serve --help` lists the keys the config file takes, from the list the parser checks
    /// against, which in turn holds every field of the file (F16).
    @Test func serveHelpListsExactlyTheConfigKeys() throws {
        let fields = Set(Mirror(reflecting: RelayConfiguration.File()).children.compactMap(\.label).map(Self.snakeCase))
        #expect(fields == RelayConfiguration.fileKeys)

        let help = try Self.run(["serve", "--help"])
        #expect(help.status == 0)
        let words = Set(help.output.split { !($0.isLowercase || $0 == "_") }.map(String.init))
        #expect(RelayConfiguration.fileKeys.subtracting(words).isEmpty, "missing: \(RelayConfiguration.fileKeys.subtracting(words).sorted())")
        #expect(words.isDisjoint(with: RelayConfiguration.retiredFileKeys.keys))
    }

    static func snakeCase(_ name: String) -> String {
        name.reduce(into: "") { snake, character in
            if character.isUppercase { snake += "_" + character.lowercased() } else { snake.append(character) }
        }
    }

    /// Standard output carries the export; the summary, with --json too, goes to standard
    /// error unless --output took the export (F17).
    @Test func anExportOnStandardOutputKeepsItsSummaryOffIt() throws {
        try Self.withFolder { directory in
            let company = try #require(try Self.json(["company", "add", "ACME", "--data", directory])["id"] as? String)
            let export = ["usage", "export", "--data", directory, "--company", company, "--from", "2026-01-01", "--to", "2026-12-31", "--json"]
            let onStandardOutput = try Self.run(export)
            #expect(onStandardOutput.status == 0)
            #expect(!onStandardOutput.output.contains("{") && onStandardOutput.output.contains(","), "\(onStandardOutput.output)")
            let summary = try JSONSerialization.jsonObject(with: Data(onStandardOutput.errors.utf8)) as? [String: Any]
            #expect(summary?["rows"] as? Int == 0 && summary?["output"] as? String == "-")

            let file = directory + "/export.csv"
            let toFile = try Self.run(export + ["--output", file])
            let printed = try JSONSerialization.jsonObject(with: Data(toFile.output.utf8)) as? [String: Any]
            #expect(printed?["output"] as? String == file)
            let help = try Self.run(["usage", "export", "--help"])
            #expect(help.output.contains("standard error"))
        }
    }
}
