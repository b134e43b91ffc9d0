import ArgumentParser
import Foundation
import RelayStore

struct StoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Move the relay's records from SQLite into PostgreSQL, for a cluster of nodes.",
        subcommands: [Migrate.self]
    )

    struct Migrate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Copy a data folder's SQLite records into a new, empty PostgreSQL database, and check the copy.",
            discussion: """
                Every table is copied in key order and then read back from PostgreSQL: its rows are \
                counted and digested (SHA-256 over every column) on both sides, and the migration \
                fails on any difference. The SQLite file is only read: stop the relay first (the \
                migration refuses while a relay runs on the folder), so that nothing is written to \
                it meanwhile, then start the nodes with --store URL. The database must hold no \
                records: make it new, and migrate before any node starts on it (what a node's first \
                start writes, the audit entry of its purge of an empty database, is replaced). One \
                migration at a time: a second one into the same database refuses and changes \
                nothing. See docs/OPERATIONS.md §11 "Scaling out".
                """
        )
        @Option(help: ArgumentHelp("The data folder whose relay.sqlite is copied.", valueName: "DIR")) var from: String
        @Option(
            help: ArgumentHelp(
                "The PostgreSQL database to copy into: postgres://USER:PASSWORD@HOST:PORT/DATABASE. Without it, $RELAY_STORE.", valueName: "URL"))
        var to: String?
        @Flag(help: "Print one JSON object instead of text, for scripts.") var json = false

        func run() throws {
            let tables = try adminAction {
                guard let address = StoreOption.resolve(self.to) else {
                    throw CommandFailure("give the PostgreSQL database with --to postgres://USER:PASSWORD@HOST:PORT/DATABASE (or RELAY_STORE)")
                }
                guard FileManager.default.fileExists(atPath: self.from + "/relay.sqlite") else {
                    throw CommandFailure("\(self.from) has no relay.sqlite: give the relay's data folder with --from DIR")
                }
                if let warning = StoreOption.passwordWarning(self.to, name: "--to") {
                    FileHandle.standardError.write(Data("warning: \(warning)\n".utf8))
                }
                // Held until the copy is checked: a relay cannot start on the folder meanwhile.
                guard let hold = DataFolder.hold(self.from, for: .migration) else {
                    throw CommandFailure(
                        "a relay is running on \(self.from) (it holds the data folder), and what it writes during the copy would be lost: "
                            + "stop it first (systemctl stop supportrelay), then run store migrate again; nothing was copied")
                }
                defer { withExtendedLifetime(hold) {} }
                let source = try Self.openSource(self.from)
                let target = try StoreOption.open(address, dataDirectory: self.from)
                defer { target.close() }
                let progress: (String) -> Void = { line in if !self.json { FileHandle.standardError.write(Data("  \(line)\n".utf8)) } }
                return (try StoreCopy.copy(from: source, to: target, actor: "cli", progress: progress), target.location)
            }
            let (copied, location) = tables
            let rows = copied.reduce(0) { $0 + $1.rows }
            emit(
                json: self.json,
                [
                    "to": location, "rows": rows,
                    "tables": copied.map { ["table": $0.name, "rows": $0.rows, "sha256": $0.digest] as [String: any Sendable] },
                ],
                text: "Copied \(rows) rows in \(copied.count) tables from \(self.from) into \(location); every table's count and digest match.\n"
                    + "Start each node with --store URL (or RELAY_STORE) from now on; the SQLite file is no longer used by them.")
        }

        /// The SQLite store to copy. A file that cannot be opened is reported as what it
        /// is for a migration: the source to repair or restore, never one to set aside.
        static func openSource(_ folder: String) throws -> SQLStore {
            let path = folder + "/relay.sqlite"
            let advice =
                "store migrate copies only an intact relay database: check that --from names the relay's data folder, and if the file is damaged, "
                + "restore it from a backup (sqlite3's .recover may save what is left of it), then migrate again; nothing was copied"
            if let handle = FileHandle(forReadingAtPath: path) {
                let header = (try? handle.read(upToCount: 16)) ?? Data()
                try? handle.close()
                guard header.isEmpty || header == Data("SQLite format 3\u{0}".utf8) else {
                    throw CommandFailure("\(path) is not a SQLite database (it does not start with SQLite's header); \(advice)")
                }
            }
            do {
                return try PrivateDataFolder.openStore(folder).0
            } catch let error as StoreError {
                // SQLStore's own advice (move it aside, start empty) is for a relay, not a copy.
                let reason = error.message.components(separatedBy: "; check the file's permissions").first ?? error.message
                throw CommandFailure("\(reason); \(advice)")
            }
        }
    }
}
