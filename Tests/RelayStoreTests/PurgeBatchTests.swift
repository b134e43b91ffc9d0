import Foundation
import RelayStore
import RelayTestSupport
import Testing

/// The retention purge in batches (issue 11 item 7): each batch is one short transaction
/// that says whether more is left, and a run of many batches leaves one audit entry with
/// the whole run's counts, as the purge in one piece did.
@Suite struct PurgeBatchTests {
    static let now = Date(milliseconds: StoreFixture.milliseconds("2026-11-02T10:00:00Z"))

    static func withStore<T>(_ backend: StoreBackend, now: @escaping @Sendable () -> Date = { Date() }, _ body: (SQLStore) throws -> T) throws -> T {
        try backend.withStore(now: now, body)
    }

    /// `count` records of `company` that ended two years before ``now``: past retention.
    static func expired(_ count: Int, company: String, prefix: String) -> [UsageRecord] {
        (0..<count).map { StoreFixture.usageRecord("\(prefix)-\($0)", company: company, started: "2024-10-01T09:00:00Z", ended: "2024-10-01T10:00:00Z") }
    }

    @Test(arguments: StoreBackend.available) func aBatchDestroysAtMostItsLimitAndSaysWhetherMoreIsLeft(_ backend: StoreBackend) throws {
        try Self.withStore(backend) { store in
            let (acme, _) = try store.addCompany(name: "ACME")
            let (globex, _) = try store.addCompany(name: "Globex")
            try store.write(
                UsageBatch(
                    opened: Self.expired(25, company: acme.id, prefix: "acme") + Self.expired(5, company: globex.id, prefix: "globex") + [
                        StoreFixture.usageRecord("recent", company: acme.id, started: "2026-10-01T09:00:00Z", ended: "2026-10-01T10:00:00Z"),
                        StoreFixture.usageRecord("open", company: acme.id, started: "2024-10-01T09:00:00Z", ended: nil),
                    ]))
            let old = Date(milliseconds: StoreFixture.milliseconds("2026-07-01T00:00:00Z"))
            try store.record((0..<4).map { AccessEvent(at: old, event: .viewerToken, outcome: .rejected, sourceAddress: "192.0.2.1:\($0)") })
            _ = try store.placeHold(companyID: globex.id, reason: "case 2026-117", actor: "cli")
            let auditBefore = try store.auditLog(limit: 100).count

            let counts = try store.purgeCounts(policy: .default, now: Self.now)
            #expect(counts.sessions == 25)
            #expect(counts.accessLogEntries == 4)
            #expect(counts.heldSessions == 5)
            #expect(counts.dryRun)

            // Usage records first, then the access log with what is left of the limit.
            var batches: [PurgeBatchResult] = []
            repeat {
                batches.append(try store.purgeBatch(policy: .default, now: Self.now, limit: 10))
            } while batches.last?.hasMore == true && batches.count < 10
            #expect(
                batches == [
                    PurgeBatchResult(sessions: 10, accessLogEntries: 0, hasMore: true),
                    PurgeBatchResult(sessions: 10, accessLogEntries: 0, hasMore: true),
                    PurgeBatchResult(sessions: 5, accessLogEntries: 4, hasMore: false),
                ])
            let after = try store.purgeCounts(policy: .default, now: Self.now)
            #expect(after.sessions == 0)
            #expect(after.accessLogEntries == 0)
            #expect(after.heldSessions == 5)
            // The held company's, the recent and the open record stay.
            #expect(try store.usageCount() == 7)
            // Batches write no audit entry: the run's end does, once.
            #expect(try store.auditLog(limit: 100).count == auditBefore)
        }
    }

    @Test(arguments: StoreBackend.available) func aPurgeOfManyBatchesLeavesOneAuditEntryForTheWholeRun(_ backend: StoreBackend) throws {
        try Self.withStore(backend) { store in
            let (acme, _) = try store.addCompany(name: "ACME")
            try store.write(UsageBatch(opened: Self.expired(50, company: acme.id, prefix: "acme")))
            let dry = try store.purge(policy: .default, now: Self.now, dryRun: true, actor: "cli", batchSize: 7)
            #expect(dry.sessions == 50)
            #expect(try store.usageCount() == 50)

            let report = try store.purge(policy: .default, now: Self.now, dryRun: false, actor: "cli", batchSize: 7)
            #expect(report.sessions == 50)
            #expect(!report.dryRun)
            #expect(try store.usageCount() == 0)
            let audit = try store.auditLog(limit: 100)
            #expect(audit.filter { $0.action == .purge }.count == 1)
            #expect(audit.filter { $0.action == .purgeDryRun }.count == 1)
            #expect(audit.first?.action == .purge)
            #expect(audit.first?.detail?.hasPrefix("sessions=50 access_log=0 held_sessions=0") == true)
        }
    }

    /// Nodes that share a PostgreSQL database take turns to purge (issue 15 item 2): while
    /// one holds the turn, another's purge is refused with a sentence, and the turn passes
    /// on when it ends. SQLite orders its writers itself and always gives the turn.
    @Test(arguments: StoreBackend.available) func onePurgeAtATimeOnASharedDatabase(_ backend: StoreBackend) throws {
        try Self.withStore(backend) { store in
            let node = try store.reopened()
            defer { node.close() }
            let turn = try #require(try store.beginPurgeTurn())
            let policy = RetentionPolicy.default
            switch backend {
            case .sqlite:
                let second = try #require(try node.beginPurgeTurn())
                second.end()
                _ = try node.purge(policy: policy, now: Date(), dryRun: true, actor: "cli")
            case .postgres:
                #expect(try node.beginPurgeTurn() == nil)
                let refused = #expect(throws: StoreError.self) { try node.purge(policy: policy, now: Date(), dryRun: true, actor: "cli") }
                #expect(refused?.kind == .conflict)
                #expect(refused?.message.contains("another relay node is purging the same database right now") == true)
            }
            turn.end()
            let next = try #require(try node.beginPurgeTurn(), "the turn passes on when it ends")
            #expect(try store.beginPurgeTurn() == nil || backend == .sqlite)
            next.end()
            _ = try store.purge(policy: policy, now: Date(), dryRun: true, actor: "cli")
        }
    }
}

/// What retention destroys on PostgreSQL is gone from the server's files (issue 15 item 2):
/// a session past retention is purged with the clock a year and more ahead, and no file of
/// the cluster (tables, indexes, the write-ahead log) still holds its id, on a server set
/// up as OPERATIONS.md §11 says (`wal_recycle = off`). Before the purge the same search
/// finds it, so the search can see what it looks for.
@Suite(.enabled(if: StoreBackend.available.contains(.postgres), "needs PostgreSQL (RELAY_TEST_POSTGRES)"))
struct PostgresPurgeFilesTests {
    static func files(containing needle: String, under root: String) -> [String] {
        let bytes = Data(needle.utf8)
        var found: [String] = []
        let enumerator = FileManager.default.enumerator(atPath: root)
        while let path = enumerator?.nextObject() as? String {
            let full = root + "/" + path
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: full, isDirectory: &isDirectory), !isDirectory.boolValue,
                let data = FileManager.default.contents(atPath: full), data.range(of: bytes) != nil
            else { continue }
            found.append(path)
        }
        return found
    }

    @Test func aPurgedSessionIsInNoFileOfTheServer() throws {
        let server = try TestPostgresServer(settings: ["wal_recycle=off"])
        let clock = Date(milliseconds: StoreFixture.milliseconds("2026-11-20T00:00:00Z"))
        let store = try SQLStore(postgres: server.url, now: { clock })
        defer { store.close() }
        let (company, _) = try store.addCompany(name: "Acme", actor: "cli")
        let purged = "purgedsession" + String(format: "%019d", Int.random(in: 0..<Int.max))
        let kept = "keptsession" + String(format: "%021d", Int.random(in: 0..<Int.max))
        try store.write(
            UsageBatch(opened: [
                StoreFixture.usageRecord(purged, company: company.id, hostName: "old-pc", started: "2026-01-01T09:00:00Z", ended: "2026-01-01T10:00:00Z"),
                StoreFixture.usageRecord(kept, company: company.id, hostName: "new-pc", started: "2027-12-01T09:00:00Z", ended: "2027-12-01T10:00:00Z"),
            ]))
        #expect(!Self.files(containing: purged, under: server.dataDirectory).isEmpty, "before the purge the search finds the id")

        let later = Date(milliseconds: StoreFixture.milliseconds("2027-12-25T00:00:00Z"))
        let report = try store.purge(policy: .default, now: later, dryRun: false, actor: "cli")
        #expect(report.sessions == 1)
        #expect(try store.usageRecord(id: purged) == nil)
        #expect(try store.usageRecord(id: kept) != nil)
        #expect(try store.hasPurgedRowsSinceVacuum() == false)
        #expect(Self.files(containing: purged, under: server.dataDirectory) == [], "no file of the server holds the purged session")
        #expect(!Self.files(containing: kept, under: server.dataDirectory).isEmpty, "the kept session is still there")
    }
}
