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
                fails on any difference. The SQLite file is only read: stop the relay first, so that \
                nothing is written to it meanwhile, then start the nodes with --store URL. See \
                docs/OPERATIONS.md "Scaling out".
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
                let (source, _) = try PrivateDataFolder.openStore(self.from)
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
    }
}
