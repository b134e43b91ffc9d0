internal import GRDB

extension SQLStore {
    /// The schema, one migration per version. A migration that has run is never edited:
    /// a change is a new migration, so every relay's file moves forward the same way.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1 accounts") { db in
            try db.create(table: "company") { t in
                t.primaryKey("id", .text)
                t.column("name", .text).notNull()
                t.column("adminTokenDigest", .blob).notNull()
                t.column("createdAt", .datetime).notNull()
            }
            try db.create(table: "engineer") { t in
                t.primaryKey("id", .text)
                t.column("companyID", .text).notNull().references("company", onDelete: .cascade)
                t.column("login", .text).notNull()
                t.column("tokenDigest", .blob).notNull()
                t.column("createdAt", .datetime).notNull()
                t.uniqueKey(["companyID", "login"])
            }
            try db.create(table: "host") { t in
                t.primaryKey("id", .text)
                t.column("companyID", .text).notNull().references("company", onDelete: .cascade)
                t.column("name", .text).notNull()
                t.column("secretDigest", .blob).notNull()
                t.column("createdAt", .datetime).notNull()
            }
            try db.create(table: "access_log") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("at", .datetime).notNull().indexed()
                t.column("event", .text).notNull()
                t.column("outcome", .text).notNull()
                t.column("sourceAddress", .text).notNull()
                t.column("companyID", .text)
                t.column("subject", .text)
                t.column("detail", .text)
            }
        }
        migrator.registerMigration("v2 usage") { db in
            // The usage history (DESIGN.md "Usage history"). Times are milliseconds since
            // 1970 UTC, so retention bounds and export ranges are exact integer compares.
            // No foreign key to company: a removed company's history is still kept for its
            // retention period (and can still be exported with the CLI).
            try db.create(table: "session") { t in
                t.primaryKey("id", .text)
                t.column("companyID", .text).notNull()
                t.column("engineerLogin", .text).notNull()
                t.column("hostID", .text)
                t.column("hostName", .text).notNull()
                t.column("mode", .text).notNull()
                t.column("startedAt", .integer).notNull()
                t.column("endedAt", .integer)
                t.column("durationSeconds", .integer)
                t.column("bytesToViewer", .integer).notNull().defaults(to: 0)
                t.column("bytesToHost", .integer).notNull().defaults(to: 0)
                t.column("framesToViewer", .integer).notNull().defaults(to: 0)
                t.column("framesToHost", .integer).notNull().defaults(to: 0)
                t.column("endReason", .text)
                t.column("viewerAddress", .text).notNull()
                t.column("hostAddress", .text).notNull()
                t.column("relayNode", .text).notNull()
                t.column("checkpointedAt", .integer).notNull()
            }
            // Exports: one company's sessions by start time, in pages.
            try db.create(index: "session_company_started", on: "session", columns: ["companyID", "startedAt", "id"])
            // Purges (by end time) and restart recovery (open records have no end).
            try db.create(index: "session_ended", on: "session", columns: ["endedAt"])
            try db.create(index: "access_log_company", on: "access_log", columns: ["companyID"])

            try db.create(table: "legal_hold") { t in
                t.primaryKey("companyID", .text)
                t.column("reason", .text).notNull()
                t.column("heldAt", .datetime).notNull()
                t.column("heldBy", .text).notNull()
            }
            // Who did what, with counts, never contents. Not purged: it is the record that
            // purges happened.
            try db.create(table: "audit_log") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("at", .datetime).notNull().indexed()
                t.column("actor", .text).notNull()
                t.column("action", .text).notNull()
                t.column("companyID", .text)
                t.column("subject", .text)
                t.column("detail", .text)
            }
        }
        migrator.registerMigration("v3 company policy") { db in
            // Whether the company's engineers must type the customer's security code before
            // their input is sent (PROTOCOL.md §5.1.5, docs/SECURITY.md §6.2).
            try db.alter(table: "company") { t in
                t.add(column: "confirmSecurityCode", .boolean).notNull().defaults(to: false)
            }
        }
        migrator.registerMigration("v4 account keys") { db in
            // Engineers and hosts log in with Ed25519 keys (issue 12 item 4): the raw public
            // key, NULL for a legacy token or secret account (and a host enrolled without a
            // key). A key names one account; SQLite lets any number of rows be NULL. A key
            // account's tokenDigest or secretDigest is empty: those columns are NOT NULL
            // since v1, and empty means "no token".
            try db.alter(table: "engineer") { t in t.add(column: "publicKey", .blob) }
            try db.create(index: "engineer_public_key", on: "engineer", columns: ["publicKey"], options: .unique)
            try db.alter(table: "host") { t in t.add(column: "publicKey", .blob) }
            try db.create(index: "host_public_key", on: "host", columns: ["publicKey"], options: .unique)
        }
        migrator.registerMigration("v5 web sign-in") { db in
            // Engineers sign in to the web console (issue 13 item 2). The password is a
            // bcrypt hash. The TOTP secret is kept as it is: the relay computes the codes, so
            // it is a secret at rest (like the TLS key in the data folder); totpLastStep is
            // the last time step accepted, so no code works twice. NULL: not set yet.
            try db.alter(table: "engineer") { t in
                t.add(column: "passwordHash", .text)
                t.add(column: "passwordSetAt", .datetime)
                t.add(column: "totpSecret", .text)
                t.add(column: "totpEnrolledAt", .datetime)
                t.add(column: "totpLastStep", .integer)
            }
            // Recovery codes, SHA-256 digests; a used one is deleted.
            try db.create(table: "recovery_code") { t in
                t.column("engineerID", .text).notNull().references("engineer", onDelete: .cascade)
                t.column("digest", .blob).notNull()
                t.column("createdAt", .datetime).notNull()
                t.primaryKey(["engineerID", "digest"])
            }
            // One-time sign-in links, by the SHA-256 digest of their token; at most one per
            // engineer, deleted when used.
            try db.create(table: "signin_link") { t in
                t.primaryKey("digest", .blob)
                t.column("engineerID", .text).notNull().unique().references("engineer", onDelete: .cascade)
                t.column("createdAt", .datetime).notNull()
                t.column("expiresAt", .datetime).notNull()
            }
            // Web sessions, by the SHA-256 digest of the cookie's id.
            try db.create(table: "web_session") { t in
                t.primaryKey("idDigest", .blob)
                t.column("engineerID", .text).notNull().indexed().references("engineer", onDelete: .cascade)
                t.column("createdAt", .datetime).notNull()
                t.column("lastSeenAt", .datetime).notNull()
                t.column("sourceAddress", .text).notNull()
            }
        }
        migrator.registerMigration("v6 browser viewer") { db in
            // The usage history says what the engineer viewed with (issue 13 item 4); rows
            // from before the browser viewer were all `relay-agent view`.
            try db.alter(table: "session") { t in t.add(column: "viewerClient", .text).notNull().defaults(to: "agent") }
            // The console's "recent sessions" of one engineer.
            try db.create(index: "session_engineer", on: "session", columns: ["companyID", "engineerLogin", "startedAt"])
            // The console's host list: when each host was last connected.
            try db.alter(table: "host") { t in t.add(column: "lastSeenAt", .datetime) }
        }
        migrator.registerMigration("v7 admin console") { db in
            // Roles (issue 14 item 1): what each person may do in the admin console; a
            // manager's engineers point at them, and their host groups are rows of
            // manager_group. A disabled engineer keeps their row (and history) but cannot log in.
            try db.alter(table: "engineer") { t in
                t.add(column: "role", .text).notNull().defaults(to: "engineer")
                t.add(column: "managerID", .text).references("engineer", onDelete: .setNull)
                t.add(column: "disabledAt", .datetime)
            }
            try db.alter(table: "host") { t in t.add(column: "groupName", .text).notNull().defaults(to: "") }
            try db.create(table: "manager_group") { t in
                t.column("managerID", .text).notNull().references("engineer", onDelete: .cascade)
                t.column("groupName", .text).notNull()
                t.primaryKey(["managerID", "groupName"])
            }
            // API tokens for scripts (item 8), by the SHA-256 digest of their secret.
            try db.create(table: "api_token") { t in
                t.primaryKey("id", .text)
                t.column("companyID", .text).notNull().indexed().references("company", onDelete: .cascade)
                t.column("name", .text).notNull()
                t.column("digest", .blob).notNull()
                t.column("scope", .text).notNull()
                t.column("createdAt", .datetime).notNull()
                t.column("createdBy", .text).notNull()
                t.column("lastUsedAt", .datetime)
            }
            // Security alerts (item 7) and the networks each person signed in from, which
            // tell a new network from a known one.
            try db.create(table: "security_alert") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("companyID", .text).notNull()
                t.column("at", .datetime).notNull()
                t.column("kind", .text).notNull()
                t.column("subject", .text).notNull()
                t.column("detail", .text).notNull()
            }
            try db.create(index: "security_alert_company", on: "security_alert", columns: ["companyID", "id"])
            try db.create(table: "signin_network") { t in
                t.column("engineerID", .text).notNull().references("engineer", onDelete: .cascade)
                t.column("network", .text).notNull()
                t.column("firstSeenAt", .datetime).notNull()
                t.primaryKey(["engineerID", "network"])
            }
            try db.alter(table: "company") { t in
                t.add(column: "webhookURL", .text)
                t.add(column: "webhookSecret", .text)
            }
            // The console's filters: by host, and each company's logs newest first.
            try db.create(index: "session_host", on: "session", columns: ["companyID", "hostID", "startedAt"])
            try db.create(index: "audit_log_company", on: "audit_log", columns: ["companyID", "id"])
            try db.create(index: "access_log_company_id", on: "access_log", columns: ["companyID", "id"])
        }
        migrator.registerMigration("v8 usage console indexes") { db in
            // Filtered pages: the filter, then the page order (startedAt, id), so that SQLite
            // reads the filter's rows instead of every row of the company. Summaries: the
            // columns they sum, so that they read index entries only and no table row
            // (benchmarks/RESULTS.md, "Admin console (issue 14)"). On a file of 10M sessions
            // this adds about 1 GB of index and takes about 1.5 minutes at the first start.
            let summed = ["durationSeconds", "checkpointedAt", "bytesToViewer", "bytesToHost"]
            try db.drop(index: "session_engineer")
            try db.create(index: "session_engineer", on: "session", columns: ["companyID", "engineerLogin", "startedAt", "id"] + summed)
            try db.drop(index: "session_host")
            try db.create(index: "session_host", on: "session", columns: ["companyID", "hostID", "startedAt", "id"])
            try db.drop(index: "session_company_started")
            try db.create(
                index: "session_company_started", on: "session", columns: ["companyID", "startedAt", "id", "engineerLogin"] + summed)
        }
        migrator.registerMigration("v9 cluster") { db in
            // What several relay nodes on one database share beyond accounts and history
            // (``ClusterStore``, issue 15 items 3 and 5). A single node on SQLite keeps them
            // too, so one relay runs the same way on either database. All of it is
            // transient: `store migrate` does not copy it (``StoreCopy``).
            //
            // Each node's lease on its name: the running process (instance) and until when.
            try db.create(table: "relay_node") { t in
                t.primaryKey("name", .text)
                t.column("instance", .text).notNull()
                t.column("clusterAddress", .text).notNull()
                t.column("startedAt", .datetime).notNull()
                t.column("leaseUntil", .datetime).notNull()
            }
            // The host directory: which node (and instance of it) holds each enrolled host.
            // An entry counts while that node's lease runs under the same instance.
            try db.create(table: "host_presence") { t in
                t.primaryKey("hostID", .text)
                t.column("companyID", .text).notNull()
                t.column("node", .text).notNull().indexed()
                t.column("instance", .text).notNull()
                t.column("since", .datetime).notNull()
            }
            // Live support codes, by their six digits as a number, and the node whose
            // viewer waits with each.
            try db.create(table: "support_code") { t in
                t.primaryKey("code", .integer)
                t.column("node", .text).notNull().indexed()
                t.column("companyID", .text).notNull()
                t.column("engineerID", .text).notNull()
                t.column("expiresAt", .datetime).notNull()
            }
            // Wrong support codes of the last hour, cluster-wide: one row each.
            try db.create(table: "code_failure") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("at", .datetime).notNull().indexed()
            }
            // Per-source penalties (an IPv4 address or an IPv6 /64).
            try db.create(table: "source_penalty") { t in
                t.primaryKey("source", .text)
                t.column("level", .integer).notNull()
                t.column("updatedAt", .datetime).notNull().indexed()
                t.column("blockedUntil", .datetime).notNull()
            }
        }
        return migrator
    }

    /// Creates the database file at `path` with the migrations up to and including
    /// `lastMigration` only, then runs `sql` on it: a file as an older relay left it, for
    /// the tests of later migrations.
    package static func makeFile(path: String, migratedUpTo lastMigration: String, then sql: String) throws {
        let queue = try DatabaseQueue(path: path)
        try Self.migrator.migrate(queue, upTo: lastMigration)
        try queue.write { try $0.execute(sql: sql) }
        try queue.close()
    }
}

// MARK: Usage records as rows

extension UsageRecord {
    /// Reads a `session` row; the column order of ``SQLStore/sessionColumns``.
    init(row: SQLRow) throws {
        self.init(
            id: try row[0], companyID: try row[1], engineerLogin: try row[2], hostID: try row[3], hostName: try row[4],
            mode: UsageRecord.Mode(rawValue: try row[5]), startedAt: try row[6], endedAt: try row[7],
            counters: UsageCounters(bytesToViewer: try row[8], bytesToHost: try row[9], framesToViewer: try row[10], framesToHost: try row[11]),
            endReason: (try row[12] as String?).map(UsageRecord.EndReason.init(rawValue:)), viewerAddress: try row[13], hostAddress: try row[14],
            relayNode: try row[15], viewerClient: UsageRecord.ViewerClient(rawValue: try row[17]), checkpointedAt: try row[16]
        )
    }

    /// The values of ``SQLStore/insertedSessionColumns``, comma-separated.
    var sqlValues: SQL {
        """
        \(self.id), \(self.companyID), \(self.engineerLogin), \(self.hostID), \(self.hostName), \(self.mode.rawValue), \(self.startedAt), \
        \(self.endedAt), \(self.durationSeconds), \(self.counters.bytesToViewer), \(self.counters.bytesToHost), \(self.counters.framesToViewer), \
        \(self.counters.framesToHost), \(self.endReason?.rawValue), \(self.viewerAddress), \(self.hostAddress), \(self.relayNode), \
        \(self.checkpointedAt), \(self.viewerClient.rawValue)
        """
    }
}
