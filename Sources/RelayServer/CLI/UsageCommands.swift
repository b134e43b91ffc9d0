import ArgumentParser
import Foundation
import RelayStore

struct UsageCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "usage",
        abstract: "Export the usage history, or purge what is past retention.",
        subcommands: [Export.self, Purge.self]
    )

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Export one company's sessions in a time range as CSV or JSON Lines.",
            discussion: """
                Sessions that started in the range are exported, oldest first. A date as --to \
                includes that whole day: --from 2026-11-01 --to 2026-11-30 is November. Dates \
                are read, and times printed, in --tz (default UTC). For Excel, use --format csv \
                --bom so that Korean names show correctly. Without --output the export goes to \
                standard output, and the summary line (with --json, the summary object) to \
                standard error, so that the two never mix. See docs/OPERATIONS.md "Export".
                """
        )
        @OptionGroup var options: DataOptions
        @Option(help: "The company id (see `relay-server company list`).") var company: String
        @Option(help: ArgumentHelp("First day (YYYY-MM-DD) or time (YYYY-MM-DDTHH:MM[:SS][Z|±HH:MM]).", valueName: "DATE")) var from: String
        @Option(help: ArgumentHelp("Last day (inclusive), or an exclusive end time.", valueName: "DATE")) var to: String
        @Option(help: "csv or jsonl.") var format: String = "csv"
        @Flag(help: "Start the CSV with a UTF-8 byte order mark, for Excel.") var bom = false
        @Option(help: ArgumentHelp("Time zone for the dates and the printed times: an IANA name (Asia/Seoul), UTC, or +09:00.", valueName: "ZONE"))
        var tz: String = "UTC"
        @Option(help: ArgumentHelp("Write to this file (made with mode 0600) instead of standard output.", valueName: "FILE")) var output: String?

        func run() async throws {
            let summary = try await adminAction {
                let format = try UsageExportFormat(parsing: self.format)
                let timeZone = try ExportTimeZone(parsing: self.tz)
                let range = try ExportRange.parse(from: self.from, to: self.to, timeZone: timeZone)
                let encoder = try UsageExportEncoder(format: format, timeZone: timeZone, byteOrderMark: self.bom)
                let store = try options.openStore()
                try Self.checkCompany(self.company, in: store)
                let sink = try OutputSink(path: self.output)
                let export = UsageExport(companyID: self.company, range: range, encoder: encoder)
                let rows = try await export.run(from: store, actor: "cli", write: { try sink.write($0) }) { entry in
                    try? store.appendAudit(entry)
                }
                try sink.close()
                return (rows, range, timeZone)
            }
            let (rows, range, timeZone) = summary
            var formatter = TimestampFormatter(timeZone: timeZone)
            let message =
                "Exported \(rows) session\(rows == 1 ? "" : "s") of \(self.company) that started from \(formatter.format(range.from)) until before \(formatter.format(range.to))\(self.output.map { " to \($0)" } ?? "")."
            // Standard output carries the export itself unless --output took it.
            emit(
                json: self.options.json,
                [
                    "company_id": self.company, "rows": rows, "from": formatter.format(range.from), "to": formatter.format(range.to),
                    "output": self.output ?? "-",
                ], text: message, toStandardError: self.output == nil)
        }

        /// A company that exists, or one removed whose history is still kept.
        static func checkCompany(_ id: String, in store: SQLStore) throws {
            if (try? store.company(id: id)) != nil { return }
            let any = try store.usagePage(companyID: id, range: ExportRange(from: .min, to: .max), after: nil, limit: 1)
            guard !any.isEmpty else {
                throw StoreError(.notFound, "no company with id \(id), and no usage history under that id; `relay-server company list` shows the ids")
            }
        }
    }

    struct Purge: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Destroy usage records and access-log entries past retention (held companies' are kept).",
            discussion: """
                The relay runs this every hour by itself. Retention comes from the config file \
                given with --config (usage_retention_months, default 12; \
                access_log_retention_months, default 3), whose store and data_directory it uses \
                too. The deleted rows are then made unrecoverable from the database's files. \
                SQLite: they are overwritten where they lay (secure_delete), the file is \
                rebuilt (VACUUM) and its write-ahead log truncated. PostgreSQL: the purged \
                tables are rewritten (VACUUM FULL), and the write-ahead log is moved past them \
                (pg_switch_wal and CHECKPOINT, which need the grants of OPERATIONS.md §11); a \
                server with wal_recycle = on may keep old pages in recycled WAL files, which \
                the command warns about. Backups, archived WAL and standbys keep their copies. \
                See docs/OPERATIONS.md "Retention" and §11 "Retention on PostgreSQL".
                """
        )
        @OptionGroup var options: DataOptions
        @Flag(help: "Only count what would be purged.") var dryRun = false

        func run() throws {
            let (report, warning) = try adminAction {
                let configuration = try options.configuration()
                let store = try options.openStore(configuration)
                let report = try store.purge(policy: configuration.retention, now: Date(), dryRun: dryRun, actor: "cli")
                return (report, store.writeAheadLogRecycleWarning())
            }
            if let warning { FileHandle.standardError.write(Data("warning: \(warning)\n".utf8)) }
            let verb = report.dryRun ? "Would purge" : "Purged"
            emit(
                json: options.json,
                [
                    "dry_run": report.dryRun, "sessions": report.sessions, "access_log": report.accessLogEntries,
                    "held_sessions": report.heldSessions, "held_access_log": report.heldAccessLogEntries,
                    "usage_cutoff": iso8601(report.usageCutoff), "access_log_cutoff": iso8601(report.accessLogCutoff),
                ],
                text: """
                    \(verb) \(report.sessions) usage record\(report.sessions == 1 ? "" : "s") (ended before \(iso8601(report.usageCutoff))) \
                    and \(report.accessLogEntries) access-log entr\(report.accessLogEntries == 1 ? "y" : "ies") (before \(iso8601(report.accessLogCutoff))).
                    Kept under legal hold: \(report.heldSessions) usage records, \(report.heldAccessLogEntries) access-log entries.
                    """)
        }
    }
}

struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Show the audit log: purges, exports, legal holds and account changes, newest first."
    )
    @OptionGroup var options: DataOptions
    @Option(help: "How many entries.") var limit: Int = 50

    func run() throws {
        let entries = try adminAction { try options.openStore().auditLog(limit: max(1, limit)) }
        let rows: [[String: any Sendable]] = entries.map {
            [
                "at": iso8601($0.at), "actor": $0.actor, "action": $0.action.rawValue, "company_id": $0.companyID ?? "", "subject": $0.subject ?? "",
                "detail": $0.detail ?? "",
            ]
        }
        emit(
            json: options.json, ["entries": rows],
            text: entries.isEmpty
                ? "The audit log is empty."
                : entries.map { "\(iso8601($0.at))  \($0.actor)  \($0.action)  \($0.companyID ?? "-")  \($0.subject ?? "-")  \($0.detail ?? "")" }.joined(
                    separator: "\n"))
    }
}

/// Standard output, or a new file readable by its owner only (an export is personal data).
final class OutputSink {
    private let handle: FileHandle
    private let path: String?

    init(path: String?) throws {
        self.path = path
        guard let path else {
            self.handle = FileHandle.standardOutput
            return
        }
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard descriptor >= 0 else {
            throw ConfigurationError(.file, "cannot write \(path): \(String(cString: strerror(errno))); choose another --output")
        }
        self.handle = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
    }

    func write(_ bytes: [UInt8]) throws {
        guard !bytes.isEmpty else { return }
        do {
            try self.handle.write(contentsOf: bytes)
        } catch {
            throw ConfigurationError(
                .file, "cannot write \(self.path ?? "standard output"): \(error.localizedDescription); check the free space, or choose another --output")
        }
    }

    func close() throws {
        guard self.path != nil else { return }
        try self.handle.synchronize()
        try self.handle.close()
    }
}
