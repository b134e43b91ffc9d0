import Foundation
import RelayStore
import RelayTestSupport
import Testing

/// The store's own times (accounts' creation, legal holds, the audit log) come from the
/// clock it is given (issue 11 item 7, REVIEW §3 "Time is not injected consistently").
@Suite struct StoreClockTests {
    static let now = Date(milliseconds: StoreFixture.milliseconds("2026-11-02T10:00:00Z"))

    static func withStore<T>(_ backend: StoreBackend, now: @escaping @Sendable () -> Date, _ body: (SQLStore) throws -> T) throws -> T {
        try backend.withStore(now: now, body)
    }

    /// Before, the store read `Date()` for each of them.
    @Test(arguments: StoreBackend.available) func theStoreStampsItsRecordsWithItsClock(_ backend: StoreBackend) throws {
        let fixed = Date(milliseconds: StoreFixture.milliseconds("2031-05-06T07:08:09Z"))
        try Self.withStore(backend, now: { fixed }) { store in
            let (company, _) = try store.addCompany(name: "ACME")
            let (engineer, _) = try store.addEngineer(companyID: company.id, login: "kim.minji")
            let (host, _) = try store.enrollHost(companyID: company.id, name: "PC-03")
            let hold = try store.placeHold(companyID: company.id, reason: "case 2031-1", actor: "cli")
            _ = try store.purge(policy: .default, now: Self.now, dryRun: false, actor: "cli")
            // A whole second, compared in milliseconds: the file keeps datetimes as text.
            let ms = fixed.milliseconds
            #expect(engineer.createdAt == fixed && host.createdAt == fixed && hold.heldAt == fixed)
            #expect(try store.company(id: company.id).createdAt.milliseconds == ms)
            #expect(try store.engineers(companyID: company.id).map(\.createdAt.milliseconds) == [ms])
            #expect(try store.hosts(companyID: company.id).map(\.createdAt.milliseconds) == [ms])
            #expect(try store.legalHolds().map(\.heldAt.milliseconds) == [ms])
            let audit = try store.auditLog(limit: 100)
            #expect(audit.count == 5)
            #expect(audit.allSatisfy { $0.at.milliseconds == ms })
        }
    }

    /// An export's audit entry has the time of the export's clock.
    @Test func anExportIsAuditedAtItsClocksTime() async throws {
        let fixed = Date(milliseconds: StoreFixture.milliseconds("2031-05-06T07:08:09Z"))
        let export = UsageExport(
            companyID: "co-a", range: ExportRange(from: 0, to: .max), encoder: try UsageExportEncoder(format: .csv, timeZone: .utc, byteOrderMark: false),
            now: { fixed }
        )
        var entries: [AuditEntry] = []
        _ = try await export.run(actor: "cli", readPage: { _ in [] }, write: { _ in }, audit: { entries.append($0) })
        #expect(entries.map(\.at) == [fixed])
    }
}
