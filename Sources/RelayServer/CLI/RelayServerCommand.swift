import ArgumentParser
import Foundation
import RelayStore

@main
struct RelayServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "relay-server",
        abstract: "SupportRelay's relay: pairs support engineers with endpoint PCs and forwards their sessions over TLS.",
        discussion: """
            With no arguments, `relay-server` runs `serve`: the relay on 0.0.0.0:7443, the admin \
            endpoint on 127.0.0.1:7444, data in ./relay-data, and a self-signed certificate made \
            on first run. Admin commands (company, engineer, host, usage, audit) work on the same \
            records whether or not the relay is running: give them the relay's --config FILE, or \
            the same --data DIR and --store (or RELAY_STORE). See docs/OPERATIONS.md.
            """,
        version: "0.1.0",
        subcommands: [ServeCommand.self, CompanyCommand.self, EngineerCommand.self, HostCommand.self, UsageCommand.self, AuditCommand.self, StoreCommand.self],
        defaultSubcommand: ServeCommand.self
    )
}

/// Options every admin command takes: where the relay's records are, found as `serve`
/// finds them (OPERATIONS.md §2): a flag, then `RELAY_STORE` (for the store), then the
/// config file, then the default.
struct DataOptions: ParsableArguments {
    @Option(
        name: .customLong("data"),
        help: ArgumentHelp("The relay's data folder (without it, the config file's data_directory, else ./relay-data).", valueName: "DIR"))
    var dataDirectory: String?

    @Option(help: StoreOption.help)
    var store: String?

    @Option(
        help: ArgumentHelp(
            "The relay's JSON config file, as `serve --config` reads it: its store and data_directory apply unless --store, $RELAY_STORE or --data "
                + "say otherwise, and its retention settings and listen address where the command needs them.",
            valueName: "FILE"))
    var config: String?

    @Flag(help: "Print one JSON object instead of text, for scripts.")
    var json = false

    /// The config file (if given) with the flags and `RELAY_STORE` over it.
    func configuration() throws -> RelayConfiguration {
        var configuration = RelayConfiguration()
        do {
            if let config { try ConfigFile.apply(config, to: &configuration) }
        } catch {
            throw CommandFailure("\(error)")
        }
        if let dataDirectory { configuration.dataDirectory = dataDirectory }
        if let store = StoreOption.resolve(self.store) { configuration.store = store }
        return configuration
    }

    func openStore() throws -> SQLStore {
        try self.openStore(self.configuration())
    }

    /// Opens the store `configuration` names. A PostgreSQL store leaves the data folder
    /// alone: an admin command has nothing to keep there.
    func openStore(_ configuration: RelayConfiguration) throws -> SQLStore {
        if let warning = StoreOption.passwordWarning(self.store) {
            FileHandle.standardError.write(Data("warning: \(warning)\n".utf8))
        }
        do {
            let (store, changes) = try PrivateDataFolder.openStore(configuration.dataDirectory, store: configuration.store)
            if !changes.isEmpty {
                FileHandle.standardError.write(Data("note: \(PrivateDataFolder.summary(changes))\n".utf8))
            }
            return store
        } catch {
            throw CommandFailure("\(error)")
        }
    }

    /// The flags that chose the store, as a next command printed for the operator must
    /// repeat them (` --store 'postgres://relay:…@db/relay'`, or ""): without them it
    /// would go to another store. A password is shown as `…`; the operator types it, or
    /// leaves `--store` out and sets `RELAY_STORE`.
    var repeated: String {
        var flags: [String] = []
        if let config { flags += ["--config", ShellWord.quoted(config)] }
        if let dataDirectory { flags += ["--data", ShellWord.quoted(dataDirectory)] }
        if let store { flags += ["--store", ShellWord.quoted(StoreAddress.withoutPassword(store))] }
        return flags.map { " " + $0 }.joined()
    }
}

/// A word as a POSIX shell reads it back: as it is when it holds nothing the shell
/// treats specially, else in single quotes.
enum ShellWord {
    static func quoted(_ word: String) -> String {
        let plain =
            !word.isEmpty
            && word.unicodeScalars.allSatisfy { $0.properties.isAlphabetic || $0.properties.numericType != nil || "@%+=:,./_-".unicodeScalars.contains($0) }
        return plain ? word : "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}

/// `--config FILE`, as every command that takes it reads it.
enum ConfigFile {
    /// Applies the config file at `path` over `configuration`. A file that holds a
    /// database password (in `store`) must be as private as a key file
    /// (``DataFolder/privateFileProblem(_:holding:)``): the relay refuses it otherwise.
    static func apply(_ path: String, to configuration: inout RelayConfiguration) throws {
        var file = RelayConfiguration()
        try file.apply(configFile: path)
        if let store = file.store, StoreAddress.holdsPassword(store),
            let problem = DataFolder.privateFileProblem(path, holding: "a database password (in its store key)")
        {
            throw ConfigurationError(.file, problem + ", or give the address in RELAY_STORE instead")
        }
        try configuration.apply(configFile: path)
    }
}

/// `--store`: which database the relay's records are in.
enum StoreOption {
    static let help = ArgumentHelp(
        "The database: sqlite (the default: relay.sqlite in the data folder), or postgres://USER:PASSWORD@HOST:PORT/DATABASE[?sslmode=require] "
            + "shared by the nodes of a cluster. Without this flag, $RELAY_STORE (which keeps the password out of the process list), "
            + "else the config file's store.",
        valueName: "STORE")

    /// The flag's value, else `RELAY_STORE`, else nil (the config file's, or SQLite).
    static func resolve(_ flag: String?) -> String? {
        flag ?? ProcessInfo.processInfo.environment["RELAY_STORE"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// A warning for a password given on the command line (`flag`, `--store`'s value),
    /// where every user of the machine can read it (`ps`); nil without one.
    static func passwordWarning(_ flag: String?, name: String = "--store") -> String? {
        guard let flag, StoreAddress.holdsPassword(flag) else { return nil }
        return "the \(name) address holds a password, which other users of this machine can read in the process list (ps) while relay-server runs; "
            + "give the address in RELAY_STORE, or in the config file's store key (a file only the relay's user can read), instead"
    }

    /// Opens the store `store` names (nil or `sqlite`: the file in `dataDirectory`).
    static func open(_ store: String?, dataDirectory: String) throws -> SQLStore {
        switch store {
        case nil, "sqlite":
            return try SQLStore(dataDirectory: dataDirectory)
        case let address? where StoreAddress.isPostgres(address):
            return try SQLStore(postgres: address)
        case let other?:
            // Never repeated whole: it may hold a password.
            let scheme = other.range(of: "://").map { " (" + other[..<$0.lowerBound].prefix(20) + "://…)" } ?? ""
            throw StoreError(
                .invalidInput,
                "the store\(scheme) is not a database the relay knows; give sqlite, or postgres://USER:PASSWORD@HOST:PORT/DATABASE")
        }
    }
}

/// Opening the data folder the way every command does: private (OPERATIONS.md "Data folder").
enum PrivateDataFolder {
    /// Opens the store (`store`, see ``StoreOption``; by default the SQLite file in
    /// `dataDirectory`). For SQLite it creates the folder if needed, and makes the folder
    /// and its files private (``DataFolder/makePrivate(_:)``) before and after opening
    /// (SQLite creates its `-wal` and `-shm` files with the database file's mode). Files
    /// this process creates are private from the start (umask 077). A PostgreSQL store
    /// leaves the folder alone. Returns what was changed, for the log.
    static func openStore(_ dataDirectory: String, store address: String? = nil) throws -> (SQLStore, [DataFolder.PermissionChange]) {
        umask(0o077)
        guard !StoreAddress.isPostgres(address) else { return (try StoreOption.open(address, dataDirectory: dataDirectory), []) }
        var changes = try Self.create(dataDirectory)
        let store = try StoreOption.open(address, dataDirectory: dataDirectory)
        changes += try DataFolder.makePrivate(dataDirectory)
        return (store, changes)
    }

    /// Creates the data folder if needed (mode 0700) and makes it private.
    static func create(_ dataDirectory: String) throws -> [DataFolder.PermissionChange] {
        umask(0o077)
        do {
            try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw StoreError(
                .unavailable, "cannot create the data folder \(dataDirectory): \(error.localizedDescription); pass --data DIR with a writable folder")
        }
        return try DataFolder.makePrivate(dataDirectory)
    }

    /// One line for the log: what was made private.
    static func summary(_ changes: [DataFolder.PermissionChange]) -> String {
        "made the data folder private (it was readable by other users): " + changes.map(\.description).joined(separator: ", ")
    }
}

/// An error shown to the user as one line, with exit code 1.
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Prints a result: a JSON object with `--json`, else readable lines; on standard output,
/// or on standard error when standard output carries the command's data (an export).
func emit(json: Bool, _ object: [String: any Sendable], text: String, toStandardError: Bool = false) {
    let line: String
    if json {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        line = String(decoding: data, as: UTF8.self)
    } else {
        line = text
    }
    if toStandardError {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    } else {
        print(line)
    }
}

/// Runs an admin action, turning store errors into a one-line message.
func adminAction<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch {
        throw CommandFailure(reporting: error)
    }
}

func adminAction<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch {
        throw CommandFailure(reporting: error)
    }
}

extension CommandFailure {
    init(reporting error: any Error) {
        if let failure = error as? CommandFailure {
            self = failure
        } else {
            self.init("\(error)")
        }
    }
}

/// An ISO-8601 UTC timestamp for listings.
func iso8601(_ date: Date) -> String { date.formatted(.iso8601) }
