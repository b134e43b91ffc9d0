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
            data folder whether or not the relay is running. See docs/OPERATIONS.md.
            """,
        version: "0.1.0",
        subcommands: [ServeCommand.self, CompanyCommand.self, EngineerCommand.self, HostCommand.self, UsageCommand.self, AuditCommand.self, StoreCommand.self],
        defaultSubcommand: ServeCommand.self
    )
}

/// Options every admin command takes.
struct DataOptions: ParsableArguments {
    @Option(name: .customLong("data"), help: ArgumentHelp("The relay's data folder.", valueName: "DIR"))
    var dataDirectory = "./relay-data"

    @Option(help: StoreOption.help)
    var store: String?

    @Flag(help: "Print one JSON object instead of text, for scripts.")
    var json = false

    func openStore() throws -> SQLStore {
        do {
            let (store, changes) = try PrivateDataFolder.openStore(self.dataDirectory, store: StoreOption.resolve(self.store))
            if !changes.isEmpty {
                FileHandle.standardError.write(Data("note: \(PrivateDataFolder.summary(changes))\n".utf8))
            }
            return store
        } catch {
            throw CommandFailure("\(error)")
        }
    }
}

/// `--store`: which database the relay's records are in.
enum StoreOption {
    static let help = ArgumentHelp(
        "The database: sqlite (the default: relay.sqlite in the data folder), or postgres://USER:PASSWORD@HOST:PORT/DATABASE[?sslmode=require] "
            + "shared by the nodes of a cluster. Without this flag, $RELAY_STORE (which keeps the password out of the process list).",
        valueName: "STORE")

    /// The flag's value, else `RELAY_STORE`, else nil (the config file's, or SQLite).
    static func resolve(_ flag: String?) -> String? {
        flag ?? ProcessInfo.processInfo.environment["RELAY_STORE"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Opens the store `store` names (nil or `sqlite`: the file in `dataDirectory`).
    static func open(_ store: String?, dataDirectory: String) throws -> SQLStore {
        switch store {
        case nil, "sqlite":
            return try SQLStore(dataDirectory: dataDirectory)
        case let address? where address.lowercased().hasPrefix("postgres://") || address.lowercased().hasPrefix("postgresql://"):
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
    /// `dataDirectory`), creating the folder if needed, and makes the folder and its files
    /// private (``DataFolder/makePrivate(_:)``) before and after opening (SQLite creates its
    /// `-wal` and `-shm` files with the database file's mode). Files this process creates
    /// are private from the start (umask 077). Returns what was changed, for the log.
    static func openStore(_ dataDirectory: String, store address: String? = nil) throws -> (SQLStore, [DataFolder.PermissionChange]) {
        umask(0o077)
        do {
            try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw StoreError(
                .unavailable, "cannot create the data folder \(dataDirectory): \(error.localizedDescription); pass --data DIR with a writable folder")
        }
        var changes = try DataFolder.makePrivate(dataDirectory)
        let store = try StoreOption.open(address, dataDirectory: dataDirectory)
        changes += try DataFolder.makePrivate(dataDirectory)
        return (store, changes)
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

/// Prints a result: a JSON object with `--json`, else readable lines.
func emit(json: Bool, _ object: [String: any Sendable], text: String) {
    if json {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        print(String(decoding: data, as: UTF8.self))
    } else {
        print(text)
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
