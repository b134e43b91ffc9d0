import Crypto
import Foundation
import RelayTestSupport
import Testing

@testable import RelayStore

/// `relay-server store migrate` underneath (``StoreCopy``, issue 15 item 1): a SQLite store
/// with something in every table is copied into a new PostgreSQL database, and the copy
/// then answers every question as the original did: logins by key, token and web
/// credentials, manager scopes, API tokens, usage pages and summaries, logs, holds,
/// alerts; new rows continue the copied ids.
@Suite(.enabled(if: StoreBackend.available.contains(.postgres), "needs PostgreSQL (RELAY_TEST_POSTGRES)"))
struct StoreCopyTests {
    static let now = Date(milliseconds: StoreFixture.milliseconds("2026-11-20T09:30:00.125Z"))

    /// A SQLite store, and a new PostgreSQL database's address, for `body`.
    static func withStores<T>(_ body: (SQLStore, String) throws -> T) throws -> T {
        try StoreBackend.sqlite.withStore(now: { Self.now }) { sqlite in
            guard let server = ProcessInfo.processInfo.environment["RELAY_TEST_POSTGRES"] else {
                throw TestFailure("RELAY_TEST_POSTGRES is not set; scripts/test.sh starts PostgreSQL and sets it")
            }
            let database = try SQLStore.makePostgresDatabase(server: server)
            defer { try? SQLStore.dropPostgresDatabase(server: server, url: database) }
            return try body(sqlite, database)
        }
    }

    static func digest(_ text: String) -> Data { Data(SHA256.hash(data: Data(text.utf8))) }

    struct Seeded {
        var company: Company
        var manager: Engineer
        var kim: Engineer
        var kimKey: Curve25519.Signing.PublicKey
        var legacyToken: String
        var host: EnrolledHost
        var apiSecret: String
        var ids: [String]
    }

    /// Something in every table, with the values that are easy to lose: Korean text, bytes,
    /// times with milliseconds, NULLs, booleans, a manager's self-reference, open sessions.
    static func seed(_ store: SQLStore) throws -> Seeded {
        let (company, _) = try store.addCompany(name: "ACME 코리아", actor: "cli")
        try store.setConfirmSecurityCode(companyID: company.id, required: true, actor: "cli")
        _ = try store.setWebhook(companyID: company.id, url: "https://hooks.example/relay", actor: "cli")
        let (other, _) = try store.addCompany(name: "Globex", actor: "cli")
        let manager = try store.addEngineer(companyID: company.id, login: "park.manager", publicKey: nil, actor: "cli")
        _ = try store.setRole(engineerID: manager.id, role: .manager, actor: "cli")
        _ = try store.setManagerGroups(engineerID: manager.id, groups: ["회계팀", "front"], actor: "cli")
        let kimKey = Curve25519.Signing.PrivateKey().publicKey
        var kim = try store.addEngineer(companyID: company.id, login: "kim.minji", publicKey: kimKey, actor: "cli")
        kim = try store.setManager(engineerID: kim.id, managerID: manager.id, actor: "cli")
        try store.setPassword(engineerID: kim.id, hash: "$2b$12$abcdefghijklmnopqrstuv", actor: "cli")
        try store.enrolTwoFactor(
            engineerID: kim.id, secret: "JBSWY3DPEHPK3PXP", acceptedStep: 59_000_001, recoveryCodeDigests: [Self.digest("r1"), Self.digest("r2")],
            actor: "cli")
        try store.issueSignInLink(
            SignInLink(digest: Self.digest("link"), engineerID: manager.id, createdAt: Self.now, expiresAt: Self.now + 86_400), actor: "cli")
        try store.startWebSession(
            WebSession(idDigest: Self.digest("cookie"), engineerID: kim.id, createdAt: Self.now, lastSeenAt: Self.now + 0.5, sourceAddress: "203.0.113.9"))
        _ = try store.noteSignInNetwork(engineerID: kim.id, network: "203.0.113.0/24", at: Self.now)
        let (_, legacyToken) = try store.addEngineer(companyID: other.id, login: "hank", actor: "cli")
        let disabled = try store.addEngineer(companyID: other.id, login: "gone", publicKey: nil, actor: "cli")
        _ = try store.setDisabled(engineerID: disabled.id, disabled: true, actor: "cli")
        var host = try store.enrollHost(companyID: company.id, name: "회계팀 PC-03", publicKey: Curve25519.Signing.PrivateKey().publicKey, actor: "cli")
        host = try store.setHostGroup(id: host.id, group: "회계팀", actor: "cli")
        try store.markHostsSeen(ids: [host.id], at: Self.now)
        let (_, apiSecret) = try store.createAPIToken(companyID: company.id, name: "nightly export", scope: .export, actor: "cli")
        _ = try store.addAlert(
            SecurityAlert(companyID: company.id, at: Self.now, kind: .unattendedSession, subject: "kim.minji → 회계팀 PC-03", detail: "started"))
        try store.record([
            AccessEvent(at: Self.now, event: .engineerKey, outcome: .accepted, sourceAddress: "203.0.113.9", companyID: company.id, subject: "kim.minji"),
            AccessEvent(at: Self.now, event: .supportCode, outcome: .rejected, sourceAddress: "198.51.100.7", detail: "code ..42"),
        ])
        var ids: [String] = []
        var opened: [UsageRecord] = []
        for index in 0..<250 {
            let id = String(format: "%032x", index * 7919)
            ids.append(id)
            opened.append(
                StoreFixture.usageRecord(
                    id, company: index % 5 == 0 ? other.id : company.id, hostName: index % 2 == 0 ? "회계팀 PC-03" : "=cmd|' /C calc'!A0",
                    started: "2026-11-\(String(format: "%02d", 1 + index % 28))T0\(index % 10):00:00Z", ended: nil))
        }
        try store.write(UsageBatch(opened: opened))
        try store.write(
            UsageBatch(
                closed: ids.prefix(200).map {
                    UsageClosure(
                        sessionID: $0, endedAt: StoreFixture.milliseconds("2026-11-29T00:00:00Z"),
                        counters: UsageCounters(bytesToViewer: 1 << 40, bytesToHost: 12_345, framesToViewer: 77, framesToHost: 3), reason: .peerLeft)
                }))
        _ = try store.placeHold(companyID: other.id, reason: "case 2026-114", actor: "cli")
        return Seeded(company: company, manager: manager, kim: kim, kimKey: kimKey, legacyToken: legacyToken, host: host, apiSecret: apiSecret, ids: ids)
    }

    @Test func everyTableArrivesAndAnswersAsBefore() throws {
        try Self.withStores { sqlite, address in
            let seeded = try Self.seed(sqlite)
            let target = try SQLStore(postgres: address, now: { Self.now + 60 })
            defer { target.close() }
            var lines: [String] = []
            let tables = try StoreCopy.copy(from: sqlite, to: target, actor: "cli") { lines.append($0) }
            #expect(tables.count == 14)
            #expect(tables.first { $0.name == "session" }?.rows == 250)
            #expect(lines.contains { $0.hasPrefix("session: 250 rows, digest") })

            // The audit log as it was, and the migration at its end (before the checks below add to it).
            let audit = try target.auditLog(limit: 1_000)
            #expect(audit.first?.action == .storeMigrate)
            #expect(audit.first?.detail?.contains("session=250") == true)
            #expect(Array(audit.dropFirst()) == (try sqlite.auditLog(limit: 1_000)))

            // Accounts, as the relay reads them.
            #expect(try target.companies() == sqlite.companies())
            #expect(try target.engineers(companyID: nil) == sqlite.engineers(companyID: nil))
            #expect(try target.hosts(companyID: nil) == sqlite.hosts(companyID: nil))
            #expect(try target.authenticateEngineer(publicKey: seeded.kimKey.rawRepresentation)?.id == seeded.kim.id)
            #expect(try target.authenticateEngineer(token: seeded.legacyToken)?.login == "hank")
            #expect(try target.engineer(id: seeded.kim.id).managerID == seeded.manager.id)
            #expect(try target.engineer(id: seeded.manager.id).groups == ["front", "회계팀"])
            #expect(try target.webCredentials(engineerID: seeded.kim.id) == sqlite.webCredentials(engineerID: seeded.kim.id))
            #expect(try target.webSession(idDigest: Self.digest("cookie")) == sqlite.webSession(idDigest: Self.digest("cookie")))
            #expect(try target.useSignInLink(digest: Self.digest("link"))?.engineerID == seeded.manager.id)
            #expect(try target.acceptTOTPStep(engineerID: seeded.kim.id, step: 59_000_001) == false, "the last accepted step came along")
            #expect(try target.useRecoveryCode(engineerID: seeded.kim.id, digest: Self.digest("r2")))
            #expect(try target.authenticateAPIToken(seeded.apiSecret, at: Self.now)?.scope == .export)
            #expect(try target.webhook(companyID: seeded.company.id) == sqlite.webhook(companyID: seeded.company.id))
            #expect(try target.noteSignInNetwork(engineerID: seeded.kim.id, network: "203.0.113.0/24", at: Self.now) == false, "a known network")

            // History and logs.
            let all = ExportRange(from: 0, to: StoreFixture.milliseconds("2027-01-01T00:00:00Z"))
            for company in try sqlite.companies() {
                let before = try sqlite.usagePage(companyID: company.id, range: all, after: nil, limit: 1_000)
                #expect(!before.isEmpty)
                #expect(try target.usagePage(companyID: company.id, range: all, after: nil, limit: 1_000) == before)
                let november = ExportRange(from: StoreFixture.milliseconds("2026-11-01T00:00:00Z"), to: StoreFixture.milliseconds("2026-12-01T00:00:00Z"))
                let filter = UsageFilter(companyID: company.id, range: november)
                #expect(try target.usageSummary(filter, timeZone: .utc) == sqlite.usageSummary(filter, timeZone: .utc))
            }
            #expect(try target.legalHolds() == sqlite.legalHolds())
            #expect(try target.accessLog(limit: 100) == sqlite.accessLog(limit: 100))
            #expect(
                try target.alerts(companyID: seeded.company.id, before: nil, limit: 10) == sqlite.alerts(companyID: seeded.company.id, before: nil, limit: 10))

            // New rows are numbered after the copied ones.
            let lastAlert = try #require(try sqlite.alerts(companyID: seeded.company.id, before: nil, limit: 1).first?.id)
            let alert = try target.addAlert(SecurityAlert(companyID: seeded.company.id, at: Self.now, kind: .hostRemoved, subject: "x", detail: "y"))
            #expect(try #require(alert.id) > lastAlert)
            try target.record([AccessEvent(at: Self.now, event: .hostKey, outcome: .accepted, sourceAddress: "192.0.2.1")])
            #expect(try target.accessLog(limit: 1).first?.event == .hostKey)
        }
    }

    @Test func aDatabaseWithRecordsIsRefusedAndLeftAlone() throws {
        try Self.withStores { sqlite, address in
            _ = try Self.seed(sqlite)
            let target = try SQLStore(postgres: address)
            defer { target.close() }
            _ = try StoreCopy.copy(from: sqlite, to: target, actor: "cli")
            let companies = try target.companies()
            let again = #expect(throws: StoreError.self) { try StoreCopy.copy(from: sqlite, to: target, actor: "cli") }
            #expect(again?.kind == .conflict)
            // Every table that holds rows, in the order of the copy.
            let held = StoreCopy.tables.map(\.name).filter { table in again?.message.contains(" in \(table)") == true }
            #expect(held == StoreCopy.tables.map(\.name), "\(again?.message ?? "")")
            #expect(again?.message.contains("already holds records (2 in company, 4 in engineer") == true)
            #expect(again?.message.contains("a relay node has run on it") == true)
            #expect(again?.message.contains("drop and recreate it") == true)
            #expect(try target.companies() == companies)
        }
    }

    /// A node started on the new database once (to try the address) before the migration:
    /// its start-up purge's audit entry, about a database with nothing to purge, is all it
    /// holds, and the copy replaces it (outside test 15, F12).
    @Test func whatANodesFirstStartWroteIsReplaced() throws {
        try Self.withStores { sqlite, address in
            let seeded = try Self.seed(sqlite)
            let target = try SQLStore(postgres: address)
            defer { target.close() }
            _ = try target.purge(policy: .default, now: Self.now, dryRun: false, actor: "relay")
            _ = try target.purge(policy: .default, now: Self.now, dryRun: true, actor: "cli")
            #expect(try target.auditLog(limit: 10).count == 2)
            var lines: [String] = []
            let copied = try StoreCopy.copy(from: sqlite, to: target, actor: "cli") { lines.append($0) }
            #expect(lines.contains { $0.contains("replacing 2 entries of a node's start-up purge") })
            let sqliteAudit = try sqlite.auditLog(limit: 1000).count
            #expect(copied.first { $0.name == "audit_log" }?.rows == sqliteAudit)
            let migrated = try #require(try target.auditLog(limit: 1).first)
            #expect(migrated.action == .storeMigrate && migrated.detail?.hasSuffix(" replaced_startup_purge_entries=2") == true)
            #expect(try target.companies().map(\.id).contains(seeded.company.id))
        }
    }

    /// A purge that destroyed something is a record of its own: not replaced.
    @Test func aPurgeThatDestroyedRowsIsNotReplaced() throws {
        try Self.withStores { sqlite, address in
            _ = try Self.seed(sqlite)
            let target = try SQLStore(postgres: address)
            defer { target.close() }
            try target.appendAudit(
                AuditEntry(
                    at: Self.now, actor: "relay", action: .purge,
                    detail: "sessions=3 access_log=0 held_sessions=0 held_access_log=0 usage_cutoff=x access_log_cutoff=y"))
            let refused = #expect(throws: StoreError.self) { try StoreCopy.copy(from: sqlite, to: target, actor: "cli") }
            #expect(refused?.message.contains("already holds records (1 in audit_log)") == true)
        }
    }

    /// Two migrations into one database: the second refuses before it writes anything,
    /// and never with the advice for a change (list the records and try again) (F6).
    @Test func aSecondMigrationIntoTheSameDatabaseWaitsForNothingAndWritesNothing() throws {
        try Self.withStores { sqlite, address in
            _ = try Self.seed(sqlite)
            let target = try SQLStore(postgres: address)
            defer { target.close() }
            // The lock a running migration holds, from another session.
            let other = PostgresDatabase(target: try PostgresTarget(url: address))
            defer { other.close() }
            let unlock = try #require(try other.tryAdvisoryLock(StoreCopy.lock))
            let refused = #expect(throws: StoreError.self) { try StoreCopy.copy(from: sqlite, to: target, actor: "cli") }
            #expect(refused?.kind == .conflict)
            #expect(refused?.message.contains("another `relay-server store migrate` is copying into") == true, "\(refused?.message ?? "")")
            #expect(refused?.message.contains("list the records") == false)
            #expect(try target.companies().isEmpty && target.auditLog(limit: 10).isEmpty)
            unlock()
            _ = try StoreCopy.copy(from: sqlite, to: target, actor: "cli")
            #expect(try target.companies().count == 2)
        }
    }

    @Test func onlySQLiteIntoPostgreSQL() throws {
        try Self.withStores { sqlite, address in
            let target = try SQLStore(postgres: address)
            defer { target.close() }
            let backwards = #expect(throws: StoreError.self) { try StoreCopy.copy(from: target, to: sqlite, actor: "cli") }
            #expect(backwards?.kind == .invalidInput)
        }
    }
}
