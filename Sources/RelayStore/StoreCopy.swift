import Crypto
import Foundation

/// Moves a single node's records from its SQLite store into an empty PostgreSQL store
/// (`relay-server store migrate --from DIR --to URL`, issue 15 item 1), table by table,
/// and proves the copy: each table's rows are counted and digested in key order on both
/// sides, from what each database returns, and must agree.
///
/// A digest covers every column of every row in a form both databases give back alike
/// (text as UTF-8, integers and times as 64-bit numbers, times in milliseconds), so a
/// value lost, cut or changed on the way shows as a different digest.
public enum StoreCopy {
    /// One table as copied.
    public struct Table: Sendable, Hashable {
        public let name: String
        public let rows: Int
        /// SHA-256 of the table's rows in key order, hex.
        public let digest: String
    }

    enum Kind {
        case text, integer, blob, bool, date
    }

    struct Spec {
        let name: String
        let columns: [(name: String, kind: Kind)]
        let key: [String]
        /// Columns that point at rows of the same table (a manager): written after all rows.
        var late: [String] = []
    }

    /// Every table of the schema as of SQLite's v8 and PostgreSQL's v1, parents first.
    static let tables: [Spec] = [
        Spec(
            name: "company",
            columns: [
                ("id", .text), ("name", .text), ("adminTokenDigest", .blob), ("createdAt", .date), ("confirmSecurityCode", .bool),
                ("webhookURL", .text), ("webhookSecret", .text),
            ], key: ["id"]),
        Spec(
            name: "engineer",
            columns: [
                ("id", .text), ("companyID", .text), ("login", .text), ("tokenDigest", .blob), ("createdAt", .date), ("publicKey", .blob),
                ("passwordHash", .text), ("passwordSetAt", .date), ("totpSecret", .text), ("totpEnrolledAt", .date), ("totpLastStep", .integer),
                ("role", .text), ("managerID", .text), ("disabledAt", .date),
            ], key: ["id"], late: ["managerID"]),
        Spec(
            name: "host",
            columns: [
                ("id", .text), ("companyID", .text), ("name", .text), ("secretDigest", .blob), ("createdAt", .date), ("publicKey", .blob),
                ("lastSeenAt", .date), ("groupName", .text),
            ], key: ["id"]),
        Spec(name: "manager_group", columns: [("managerID", .text), ("groupName", .text)], key: ["managerID", "groupName"]),
        Spec(name: "recovery_code", columns: [("engineerID", .text), ("digest", .blob), ("createdAt", .date)], key: ["engineerID", "digest"]),
        Spec(
            name: "signin_link", columns: [("digest", .blob), ("engineerID", .text), ("createdAt", .date), ("expiresAt", .date)], key: ["digest"]),
        Spec(
            name: "web_session",
            columns: [("idDigest", .blob), ("engineerID", .text), ("createdAt", .date), ("lastSeenAt", .date), ("sourceAddress", .text)],
            key: ["idDigest"]),
        Spec(
            name: "signin_network", columns: [("engineerID", .text), ("network", .text), ("firstSeenAt", .date)], key: ["engineerID", "network"]),
        Spec(
            name: "api_token",
            columns: [
                ("id", .text), ("companyID", .text), ("name", .text), ("digest", .blob), ("scope", .text), ("createdAt", .date),
                ("createdBy", .text), ("lastUsedAt", .date),
            ], key: ["id"]),
        Spec(name: "legal_hold", columns: [("companyID", .text), ("reason", .text), ("heldAt", .date), ("heldBy", .text)], key: ["companyID"]),
        Spec(
            name: "access_log",
            columns: [
                ("id", .integer), ("at", .date), ("event", .text), ("outcome", .text), ("sourceAddress", .text), ("companyID", .text),
                ("subject", .text), ("detail", .text),
            ], key: ["id"]),
        Spec(
            name: "audit_log",
            columns: [
                ("id", .integer), ("at", .date), ("actor", .text), ("action", .text), ("companyID", .text), ("subject", .text), ("detail", .text),
            ], key: ["id"]),
        Spec(
            name: "security_alert",
            columns: [("id", .integer), ("companyID", .text), ("at", .date), ("kind", .text), ("subject", .text), ("detail", .text)], key: ["id"]),
        Spec(
            name: "session",
            columns: [
                ("id", .text), ("companyID", .text), ("engineerLogin", .text), ("hostID", .text), ("hostName", .text), ("mode", .text),
                ("startedAt", .integer), ("endedAt", .integer), ("durationSeconds", .integer), ("bytesToViewer", .integer),
                ("bytesToHost", .integer), ("framesToViewer", .integer), ("framesToHost", .integer), ("endReason", .text),
                ("viewerAddress", .text), ("hostAddress", .text), ("relayNode", .text), ("checkpointedAt", .integer), ("viewerClient", .text),
            ], key: ["id"]),
    ]

    /// Tables whose ids the database numbers: their sequences continue after the copied ids.
    static let numbered = ["access_log", "audit_log", "security_alert"]

    /// The advisory lock a migration holds on its target from the emptiness check to the
    /// last digest: "RELAYMIG".
    static let lock: Int64 = 0x5245_4C41_594D_4947

    /// Copies every row of `source` (SQLite) into `target` (PostgreSQL, with no records
    /// yet), checks each table's count and digest, and writes one `store_migrate` audit
    /// entry into the target. `progress` hears a line per table and per 100,000 rows.
    ///
    /// One migration at a time: the copy holds an advisory lock on the target, so a second
    /// one refuses before it writes anything, and the first one's check covers everything
    /// in the tables.
    public static func copy(from source: SQLStore, to target: SQLStore, actor: String, progress: (String) -> Void = { _ in }) throws -> [Table] {
        guard source.database.dialect == .sqlite, let postgres = target.database as? PostgresDatabase else {
            throw StoreError(.invalidInput, "the copy goes from a SQLite data folder to a PostgreSQL database; give --from DIR and --to postgres://…")
        }
        guard let unlock = try postgres.tryAdvisoryLock(Self.lock) else {
            throw StoreError(
                .conflict,
                "another `relay-server store migrate` is copying into \(target.location) right now; this one copied nothing. "
                    + "A database takes one migration: let that one finish"
            )
        }
        defer { unlock() }
        let replaced = try Self.takeEmpty(target)
        if replaced > 0 { progress("audit_log: replacing \(replaced) entr\(replaced == 1 ? "y" : "ies") of a node's start-up purge of the empty database") }
        var copied: [Table] = []
        for spec in Self.tables {
            progress("\(spec.name): copying")
            let written: Table
            do {
                written = try Self.copy(spec, from: source, to: target, progress: progress)
            } catch let error as StoreError where error.kind == .conflict {
                // Not the store's advice for a change (list the records and try again).
                throw StoreError(
                    .conflict,
                    "PostgreSQL refused a row of \(spec.name) that \(target.location) holds already: something else wrote into the database "
                        + "during the migration (a relay node started on it?); nothing was changed in the SQLite store: drop and recreate the "
                        + "PostgreSQL database, then run the migration again before any node starts on it"
                )
            }
            let check = try target.reading { try Self.digest(spec, $0) }
            guard check.rows == written.rows, check.digest == written.digest else {
                throw StoreError(
                    .unavailable,
                    "the copy of \(spec.name) does not match: \(written.rows) rows read from \(source.location), \(check.rows) in \(target.location) "
                        + "(digests \(written.digest.prefix(16)) and \(check.digest.prefix(16))); nothing was changed in the SQLite store: "
                        + "drop and recreate the PostgreSQL database, then run the migration again"
                )
            }
            progress("\(spec.name): \(written.rows) rows, digest \(written.digest.prefix(16)) on both sides")
            copied.append(written)
        }
        try target.writing { db in
            for table in Self.numbered {
                try db.execute("SELECT setval(pg_get_serial_sequence(\(table), 'id'), COALESCE((SELECT MAX(id) FROM \(raw: table)), 0) + 1, false)")
            }
        }
        let detail =
            "from=\(source.location) " + copied.map { "\($0.name)=\($0.rows)" }.joined(separator: " ")
            + (replaced > 0 ? " replaced_startup_purge_entries=\(replaced)" : "")
        try target.appendAudit(AuditEntry(at: target.now(), actor: actor, action: .storeMigrate, detail: detail))
        return copied
    }

    /// Makes sure `target` holds no records, as the copy keeps every id as it is, and
    /// returns how many audit entries it removed for that: a relay node that started on
    /// the new database (to try the address, say) left the audit entry of its start-up
    /// purge, which found nothing to destroy. Such entries record nothing about any
    /// record, so the copy replaces them; anything else makes it refuse, naming every
    /// table that holds rows.
    static func takeEmpty(_ target: SQLStore) throws -> Int {
        try target.writing { db in
            var held: [String] = []
            for spec in Self.tables {
                let rows = try db.count("SELECT COUNT(*) FROM \(raw: spec.name)")
                if rows > 0 { held.append("\(rows) in \(spec.name)") }
            }
            guard !held.isEmpty else { return 0 }
            let startUp = try db.count(
                """
                SELECT COUNT(*) FROM audit_log WHERE action IN (\(AuditEntry.Action.purge.rawValue), \(AuditEntry.Action.purgeDryRun.rawValue)) \
                AND detail LIKE 'sessions=0 access_log=0 %'
                """)
            if held.count == 1, held[0] == "\(startUp) in audit_log" {
                try db.execute("DELETE FROM audit_log")
                return startUp
            }
            throw StoreError(
                .conflict,
                "the PostgreSQL database \(target.location) already holds records (\(held.joined(separator: ", "))): a relay node has run on it, "
                    + "or a migration copied into it before. The migration keeps every record's id, so it needs a database without records: "
                    + "drop and recreate it (OPERATIONS.md §11 step 1: dropdb, then createdb --owner), then migrate into it before any node starts on it"
            )
        }
    }

    /// Rows per INSERT: PostgreSQL binds at most 65,535 values per statement.
    static func batchSize(_ spec: Spec) -> Int { max(1, 20_000 / spec.columns.count) }

    /// Copies one table in key order, in batches of one transaction each; returns what was read.
    static func copy(_ spec: Spec, from source: SQLStore, to target: SQLStore, progress: (String) -> Void) throws -> Table {
        var digest = TableDigest()
        var batch: [[SQLValue]] = []
        var rows = 0
        let late = spec.late.compactMap { name in spec.columns.firstIndex { $0.name == name } }
        var laterUpdates: [[SQLValue]] = []
        func flush() throws {
            guard !batch.isEmpty else { return }
            let values = batch.map { row in "(" + SQL.joined(row.map { SQL(parts: [.value($0)]) }, separator: ", ") + ")" }
            let columns = spec.columns.map(\.name).joined(separator: ", ")
            try target.writing { try $0.execute("INSERT INTO \(raw: spec.name) (\(raw: columns)) VALUES \(sql: SQL.joined(values, separator: ", "))") }
            batch.removeAll(keepingCapacity: true)
        }
        try source.reading { db in
            let columns = spec.columns.map(\.name).joined(separator: ", ")
            try db.forEachRow("SELECT \(raw: columns) FROM \(raw: spec.name) ORDER BY \(raw: spec.key.joined(separator: ", "))") { row in
                var values = try spec.columns.indices.map { try Self.canonical(row.value(at: $0), spec.columns[$0].kind) }
                digest.add(values)
                if !late.isEmpty {
                    laterUpdates.append([values[0]] + late.map { values[$0] })
                    for index in late { values[index] = .null }
                }
                batch.append(values)
                rows += 1
                if batch.count >= Self.batchSize(spec) { try flush() }
                if rows % 100_000 == 0 { progress("\(spec.name): \(rows) rows") }
            }
        }
        try flush()
        if !late.isEmpty {
            try target.writing { db in
                for update in laterUpdates where update.dropFirst().contains(where: { $0 != .null }) {
                    let assignments = SQL.joined(
                        late.enumerated().map { offset, index in "\(raw: spec.columns[index].name) = " + SQL(parts: [.value(update[offset + 1])]) },
                        separator: ", ")
                    try db.execute("UPDATE \(raw: spec.name) SET \(sql: assignments) WHERE \(raw: spec.key[0]) = " + SQL(parts: [.value(update[0])]))
                }
            }
        }
        return Table(name: spec.name, rows: rows, digest: digest.hex)
    }

    /// Counts and digests a table as `db` returns it.
    static func digest(_ spec: Spec, _ db: any SQLConnection) throws -> Table {
        var digest = TableDigest()
        var rows = 0
        let columns = spec.columns.map(\.name).joined(separator: ", ")
        try db.forEachRow("SELECT \(raw: columns) FROM \(raw: spec.name) ORDER BY \(raw: spec.key.joined(separator: ", "))") { row in
            digest.add(try spec.columns.indices.map { try Self.canonical(row.value(at: $0), spec.columns[$0].kind) })
            rows += 1
        }
        return Table(name: spec.name, rows: rows, digest: digest.hex)
    }

    /// A column's value as the target stores it: SQLite's times (text) as times, its
    /// booleans (0 and 1) as booleans.
    static func canonical(_ value: SQLValue, _ kind: Kind) throws -> SQLValue {
        guard value != .null else { return .null }
        switch kind {
        case .date: return .date(try Date(sqlValue: value))
        case .bool: return .bool(try Bool(sqlValue: value))
        case .integer: return .integer(try Int64(sqlValue: value))
        case .text: return .text(try String(sqlValue: value))
        case .blob: return .blob(try Data(sqlValue: value))
        }
    }

    /// SHA-256 over rows, each value tagged with its kind and length.
    struct TableDigest {
        private var hash = SHA256()

        mutating func add(_ row: [SQLValue]) {
            var bytes: [UInt8] = []
            for value in row {
                switch value {
                case .null: bytes.append(0)
                case .integer(let integer): Self.append(1, integer, to: &bytes)
                case .bool(let bool): bytes += [2, bool ? 1 : 0]
                case .date(let date): Self.append(3, Int64((date.timeIntervalSince1970 * 1000).rounded()), to: &bytes)
                case .text(let text): Self.append(4, Array(text.utf8), to: &bytes)
                case .blob(let data): Self.append(5, Array(data), to: &bytes)
                }
            }
            bytes.append(0xFF)
            self.hash.update(data: bytes)
        }

        private static func append(_ tag: UInt8, _ integer: Int64, to bytes: inout [UInt8]) {
            bytes.append(tag)
            withUnsafeBytes(of: integer.bigEndian) { bytes += $0 }
        }

        private static func append(_ tag: UInt8, _ body: [UInt8], to bytes: inout [UInt8]) {
            Self.append(tag, Int64(body.count), to: &bytes)
            bytes += body
        }

        var hex: String { self.hash.finalize().map { String(format: "%02x", $0) }.joined() }
    }
}
