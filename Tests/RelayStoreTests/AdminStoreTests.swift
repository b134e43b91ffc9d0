import Crypto
import Foundation
import RelayStore
import RelayTestSupport
import Testing

/// The admin console's store (issue 14, ``AdminStore``) on a real SQLite file and a real
/// PostgreSQL database (``StoreBackend``): roles,
/// managers and host groups, disabled engineers (who cannot log in anywhere), hosts'
/// names and groups, filtered usage with its paging and per-day totals across clock
/// changes, one company's purge counts, its logs, API tokens, sign-in networks, alerts,
/// webhooks, the operator's counts, the audit entry of every change, and the migration of
/// a file from before the console.
///
/// Written from the documentation (AdminStore.swift, AdminRecords.swift, the doc comments
/// of ``AccountStore``): what it promises, not what the code happens to do.
@Suite struct AdminStoreTests {
    final class Clock: @unchecked Sendable {
        var now = Date(milliseconds: StoreFixture.milliseconds("2026-11-02T10:00:00Z"))
    }

    static func withStore<T>(_ backend: StoreBackend, _ body: (SQLStore, Clock) throws -> T) throws -> T {
        let clock = Clock()
        return try backend.withStore(now: { clock.now }) { try body($0, clock) }
    }

    static func key() -> Curve25519.Signing.PublicKey { Curve25519.Signing.PrivateKey().publicKey }

    static func digest(_ text: String) -> Data { Data(SHA256.hash(data: Data(text.utf8))) }

    static func date(_ text: String) -> Date { Date(milliseconds: StoreFixture.milliseconds(text)) }

    /// A usage record of `company` as the relay writes it: closed with `reason` when `ended`
    /// is given, open otherwise.
    static func record(
        _ id: String, company: String, login: String = "kim", host: String? = nil, mode: UsageRecord.Mode = .attended, started: String,
        ended: String? = nil, reason: UsageRecord.EndReason = .normal, bytes: Int64 = 100
    ) -> UsageRecord {
        let end = ended.map(StoreFixture.milliseconds)
        return UsageRecord(
            id: id, companyID: company, engineerLogin: login, hostID: host, hostName: host.map { "PC \($0)" } ?? "PC", mode: mode,
            startedAt: StoreFixture.milliseconds(started), endedAt: end, counters: UsageCounters(bytesToViewer: bytes, bytesToHost: bytes / 2),
            endReason: end == nil ? nil : reason, viewerAddress: "10.0.0.1:1000", hostAddress: "10.0.0.2:2000", relayNode: "node-1")
    }

    /// Every record `filter` selects, page after page of `limit`, each page checked
    /// against the limit; stops if the pages do not end.
    static func allPages(_ store: SQLStore, _ filter: UsageFilter, limit: Int = 500) throws -> [UsageRecord] {
        var rows: [UsageRecord] = []
        var cursor: UsageCursor?
        for _ in 0..<1000 {
            let page = try store.usagePage(filter, after: cursor, limit: limit)
            #expect(page.count <= limit)
            rows += page
            guard page.count == limit, let last = page.last else { return rows }
            cursor = UsageCursor(after: last)
        }
        Issue.record("the pages never ended")
        return rows
    }

    static func ids(_ store: SQLStore, _ filter: UsageFilter) throws -> [String] {
        try Self.allPages(store, filter).map(\.id)
    }

    /// The newest audit entry.
    static func lastAudit(_ store: SQLStore) throws -> AuditEntry {
        try #require(try store.auditLog(limit: 1).first)
    }

    /// A record's place in the paging order.
    static func sortKey(_ record: UsageRecord) -> String { "\(record.startedAt) \(record.id)" }

    /// The source addresses of one page of the access log.
    static func sources(_ store: SQLStore, _ filter: LogFilter, limit: Int = 100) throws -> [String] {
        try store.accessPage(filter, limit: limit).map(\.sourceAddress)
    }

    /// An API token's last use as the store has it.
    static func lastUsed(_ store: SQLStore, companyID: String, tokenID: String) throws -> Date? {
        try store.apiTokens(companyID: companyID).first(where: { $0.id == tokenID })?.lastUsedAt
    }

    /// A company's counts as one line, to compare whole rows.
    static func row(_ c: CompanyCounts) -> String {
        "\(c.id) \(c.name) engineers=\(c.engineers) hosts=\(c.hosts) since=\(c.sessionsSince) held=\(c.held)"
    }

    /// The actions of the audit entries `change` added, newest first; checks that it added
    /// exactly one, by `actor`, for `companyID`.
    static func auditedActions(_ store: SQLStore, companyID: String, actor: String, _ change: () throws -> Void) throws -> [String] {
        let before = try store.auditLog(limit: 10_000).count
        try change()
        let entries = try store.auditLog(limit: 10_000)
        #expect(entries.count == before + 1, "one entry per change")
        #expect(entries.first?.actor == actor && entries.first?.companyID == companyID)
        return entries.prefix(max(0, entries.count - before)).map(\.action.rawValue)
    }

    static let everything = ExportRange(from: 0, to: StoreFixture.milliseconds("2100-01-01T00:00:00Z"))

    // MARK: Roles

    @Test func roleNamesAreParsedAndUnknownOnesRefusedWithTheKnownNames() throws {
        #expect(try AccountRole(parsing: "admin") == .admin)
        #expect(try AccountRole(parsing: "Manager") == .manager)
        #expect(try AccountRole(parsing: "ENGINEER") == .engineer)
        #expect(try AccountRole(parsing: "operator") == .operator)
        for text in ["boss", "", "administrator", "other"] {
            let error = #expect(throws: StoreError.self) { try AccountRole(parsing: text) }
            #expect(error?.kind == .invalidInput)
            #expect(error?.message.contains("admin, manager, engineer or operator") == true, "the error says which names work")
        }
        // A value another version stored is kept, not refused.
        #expect(AccountRole(rawValue: "auditor") == .other("auditor"))
        #expect(AccountRole(rawValue: "auditor").rawValue == "auditor")
        #expect(AccountRole.known.map(\.rawValue) == ["admin", "manager", "engineer", "operator"])
        #expect(try TokenScope(parsing: "Export") == .export)
        #expect(try TokenScope(parsing: "admin") == .admin)
        #expect(storeErrorKind { try TokenScope(parsing: "write") } == .invalidInput)
    }

    @Test(arguments: StoreBackend.available) func aRoleIsStoredReturnedAndAudited(_ backend: StoreBackend) throws {
        try Self.withStore(backend) { store, _ in
            let (acme, _) = try store.addCompany(name: "Acme")
            let kim = try store.addEngineer(companyID: acme.id, login: "kim", publicKey: Self.key())
            #expect(kim.role == .engineer, "a new engineer is an engineer")
            let changed = try store.setRole(engineerID: kim.id, role: .admin, actor: "console:alice")
            #expect(changed.id == kim.id && changed.role == .admin && changed.companyName == "Acme")
            #expect(try store.engineer(id: kim.id).role == .admin)
            #expect(try store.engineers(companyID: acme.id).map(\.role) == [.admin])
            let entry = try Self.lastAudit(store)
            #expect(entry.action.rawValue == "engineer_role" && entry.actor == "console:alice")
            #expect(entry.companyID == acme.id && entry.subject == kim.id)
            #expect(entry.detail == "role=admin was=engineer")
            _ = try store.setRole(engineerID: kim.id, role: .operator, actor: "cli")
            #expect(try store.engineer(id: kim.id).role == .operator)
            #expect(storeErrorKind { try store.setRole(engineerID: "en-missing", role: .admin, actor: "cli") } == .notFound)
        }
    }

    @Test(arguments: StoreBackend.available) func demotingAManagerReleasesTheirEngineersAndGroupsOnly(_ backend: StoreBackend) throws {
        try Self.withStore(backend) { store, _ in
            let (acme, _) = try store.addCompany(name: "Acme")
            let lee = try store.addEngineer(companyID: acme.id, login: "lee", publicKey: nil)
            let choi = try store.addEngineer(companyID: acme.id, login: "choi", publicKey: nil)
            let kim = try store.addEngineer(companyID: acme.id, login: "kim", publicKey: nil)
            let park = try store.addEngineer(companyID: acme.id, login: "park", publicKey: nil)
            let han = try store.addEngineer(companyID: acme.id, login: "han", publicKey: nil)
            for manager in [lee, choi] { _ = try store.setRole(engineerID: manager.id, role: .manager, actor: "cli") }
            _ = try store.setManagerGroups(engineerID: lee.id, groups: ["Sales", "Support"], actor: "cli")
            _ = try store.setManagerGroups(engineerID: choi.id, groups: ["Field"], actor: "cli")
            for engineer in [kim, park] { _ = try store.setManager(engineerID: engineer.id, managerID: lee.id, actor: "cli") }
            _ = try store.setManager(engineerID: han.id, managerID: choi.id, actor: "cli")

            let demoted = try store.setRole(engineerID: lee.id, role: .engineer, actor: "console:alice")
            #expect(demoted.role == .engineer && demoted.groups.isEmpty)
            #expect(try store.engineer(id: kim.id).managerID == nil)
            #expect(try store.engineer(id: park.id).managerID == nil)
            // Another manager's engineers and groups stay.
            #expect(try store.engineer(id: han.id).managerID == choi.id)
            #expect(try store.engineer(id: choi.id).groups == ["Field"])
            // The groups are gone, not hidden: made a manager again, lee has none.
            #expect(try store.setRole(engineerID: lee.id, role: .manager, actor: "cli").groups.isEmpty)

            // A manager made an admin is no manager either.
            let promoted = try store.setRole(engineerID: choi.id, role: .admin, actor: "cli")
            #expect(promoted.groups.isEmpty)
            #expect(try store.engineer(id: han.id).managerID == nil)
            #expect(try store.setRole(engineerID: choi.id, role: .manager, actor: "cli").groups.isEmpty)
        }
    }

    @Test(arguments: StoreBackend.available) func aRemovedManagersEngineersHaveNoManager(_ backend: StoreBackend) throws {
        try Self.withStore(backend) { store, _ in
            let (acme, _) = try store.addCompany(name: "Acme")
            let lee = try store.addEngineer(companyID: acme.id, login: "lee", publicKey: nil)
            let kim = try store.addEngineer(companyID: acme.id, login: "kim", publicKey: nil)
            _ = try store.setRole(engineerID: lee.id, role: .manager, actor: "cli")
            _ = try store.setManager(engineerID: kim.id, managerID: lee.id, actor: "cli")
            try store.removeEngineer(id: lee.id)
            #expect(try store.engineer(id: kim.id).managerID == nil, "no engineer points at a manager who is gone")
        }
    }

    @Test(arguments: StoreBackend.available) func setManagerAssignsAManagerOfTheSameCompanyOnly(_ backend: StoreBackend) throws {
        try Self.withStore(backend) { store, _ in
            let (acme, _) = try store.addCompany(name: "Acme")
            let (other, _) = try store.addCompany(name: "Other")
            let lee = try store.addEngineer(companyID: acme.id, login: "lee", publicKey: nil)
            let kim = try store.addEngineer(companyID: acme.id, login: "kim", publicKey: nil)
            let park = try store.addEngineer(companyID: acme.id, login: "park", publicKey: nil)
            let outsider = try store.addEngineer(companyID: other.id, login: "choi", publicKey: nil)
            _ = try store.setRole(engineerID: lee.id, role: .manager, actor: "cli")
            _ = try store.setRole(engineerID: outsider.id, role: .manager, actor: "cli")

            let assigned = try store.setManager(engineerID: kim.id, managerID: lee.id, actor: "console:alice")
            #expect(assigned.managerID == lee.id && assigned.companyName == "Acme")
            #expect(try store.engineers(companyID: acme.id).first { $0.id == kim.id }?.managerID == lee.id)
            let entry = try Self.lastAudit(store)
            #expect(entry.action.rawValue == "engineer_manager" && entry.subject == kim.id && entry.companyID == acme.id)
            #expect(entry.actor == "console:alice" && entry.detail == "manager=\(lee.id)")

            let audited = try store.auditLog(limit: 1000).count
            // park is an engineer, not a manager.
            let notManager = #expect(throws: StoreError.self) { try store.setManager(engineerID: kim.id, managerID: park.id, actor: "cli") }
            #expect(notManager?.kind == .invalidInput)
            #expect(notManager?.message.contains("park") == true)
            // Another company's manager is not one of this company's.
            #expect(storeErrorKind { try store.setManager(engineerID: kim.id, managerID: outsider.id, actor: "cli") } == .notFound)
            #expect(storeErrorKind { try store.setManager(engineerID: outsider.id, managerID: lee.id, actor: "cli") } == .notFound)
            // Not their own manager, even as a manager.
            #expect(storeErrorKind { try store.setManager(engineerID: lee.id, managerID: lee.id, actor: "cli") } == .invalidInput)
            #expect(storeErrorKind { try store.setManager(engineerID: kim.id, managerID: "en-missing", actor: "cli") } == .notFound)
            #expect(storeErrorKind { try store.setManager(engineerID: "en-missing", managerID: lee.id, actor: "cli") } == .notFound)
            // The refusals changed nothing and audited nothing.
            #expect(try store.engineer(id: kim.id).managerID == lee.id)
            #expect(try store.engineer(id: outsider.id).managerID == nil)
            #expect(try store.auditLog(limit: 1000).count == audited)

            let unassigned = try store.setManager(engineerID: kim.id, managerID: nil, actor: "cli")
            #expect(unassigned.managerID == nil)
            #expect(try store.engineer(id: kim.id).managerID == nil)
            #expect(try Self.lastAudit(store).detail == "manager=none")
        }
    }

    @Test(arguments: StoreBackend.available) func managerGroupsAreTrimmedDeduplicatedAndForManagersOnly(_ backend: StoreBackend) throws {
        try Self.withStore(backend) { store, _ in
            let (acme, _) = try store.addCompany(name: "Acme")
            let lee = try store.addEngineer(companyID: acme.id, login: "lee", publicKey: nil)
            let kim = try store.addEngineer(companyID: acme.id, login: "kim", publicKey: nil)
            _ = try store.setRole(engineerID: lee.id, role: .manager, actor: "cli")

            let set = try store.setManagerGroups(engineerID: lee.id, groups: [" Support", "Sales ", "Sales", "Support\t", "Sales"], actor: "console:alice")
            #expect(set.groups == ["Sales", "Support"])
            let entry = try Self.lastAudit(store)
            #expect(entry.action.rawValue == "engineer_groups" && entry.subject == lee.id && entry.actor == "console:alice")
            #expect(entry.companyID == acme.id)
            // The people lists carry a manager's groups; others have none.
            let listed = try store.engineers(companyID: acme.id)
            #expect(listed.first { $0.id == lee.id }?.groups == ["Sales", "Support"])
            #expect(listed.first { $0.id == kim.id }?.groups == [])
            #expect(try store.engineers(companyID: nil).first { $0.id == lee.id }?.groups == ["Sales", "Support"])
            #expect(try store.engineer(id: lee.id).groups == ["Sales", "Support"])

            // Replaced, not added to.
            #expect(try store.setManagerGroups(engineerID: lee.id, groups: ["Field"], actor: "cli").groups == ["Field"])
            #expect(try store.engineers(companyID: acme.id).first { $0.id == lee.id }?.groups == ["Field"])
            #expect(try store.setManagerGroups(engineerID: lee.id, groups: [], actor: "cli").groups == [])

            let audited = try store.auditLog(limit: 1000).count
            let notManager = #expect(throws: StoreError.self) { try store.setManagerGroups(engineerID: kim.id, groups: ["Sales"], actor: "cli") }
            #expect(notManager?.kind == .invalidInput)
            #expect(try store.engineer(id: kim.id).groups == [])
            for bad in ["   ", "Sa\u{7}les", String(repeating: "가", count: 67)] {
                #expect(storeErrorKind { try store.setManagerGroups(engineerID: lee.id, groups: ["Field", bad], actor: "cli") } == .invalidInput)
            }
            #expect(storeErrorKind { try store.setManagerGroups(engineerID: "en-missing", groups: ["Sales"], actor: "cli") } == .notFound)
            #expect(try store.auditLog(limit: 1000).count == audited)
            #expect(try store.engineer(id: lee.id).groups == [], "a refused change keeps the groups as they were")
        }
    }

    // MARK: Disabled engineers

    /// Disabling: no key, no legacy token, no web login by name, no credential digest (the
    /// relay ends live sessions), and the web sessions and sign-in link are deleted at once.
    /// Enabling again restores the logins, not the ended sessions.
    @Test(arguments: StoreBackend.available) func aDisabledEngineerCannotLogInAnywhereUntilEnabled(_ backend: StoreBackend) throws {
        try Self.withStore(backend) { store, clock in
            let (acme, _) = try store.addCompany(name: "Acme")
            let (other, _) = try store.addCompany(name: "Other")
            let kimKey = Self.key()
            let kim = try store.addEngineer(companyID: acme.id, login: "kim", publicKey: kimKey)
            let (lee, leeToken) = try store.addEngineer(companyID: acme.id, login: "lee")
            let otherKim = try store.addEngineer(companyID: other.id, login: "kim", publicKey: Self.key())
            let raw = kimKey.rawRepresentation
            for (name, engineer) in [("kim", kim), ("lee", lee), ("other", otherKim)] {
                try store.startWebSession(
                    WebSession(
                        idDigest: Self.digest("session-\(name)"), engineerID: engineer.id, createdAt: clock.now, lastSeenAt: clock.now,
                        sourceAddress: "10.0.0.9"))
                try store.issueSignInLink(
                    SignInLink(digest: Self.digest("link-\(name)"), engineerID: engineer.id, createdAt: clock.now, expiresAt: clock.now + 86_400), actor: "cli")
            }
            let ids = [kim.id, lee.id, otherKim.id]
            let before = try store.credentialDigests(engineerIDs: ids, hostIDs: [])
            #expect(Set(before.keys) == Set(ids))
            #expect(try store.authenticateEngineer(publicKey: raw)?.id == kim.id)
            #expect(try store.authenticateEngineer(token: leeToken)?.id == lee.id)

            clock.now += 60
            let disabledAt = clock.now
            let disabled = try store.setDisabled(engineerID: kim.id, disabled: true, actor: "console:alice")
            #expect(disabled.disabledAt == disabledAt)
            let entry = try Self.lastAudit(store)
            #expect(entry.action.rawValue == "engineer_disable" && entry.subject == kim.id && entry.companyID == acme.id)
            #expect(entry.actor == "console:alice")
            _ = try store.setDisabled(engineerID: lee.id, disabled: true, actor: "console:alice")

            #expect(try store.authenticateEngineer(publicKey: raw) == nil)
            #expect(try store.authenticateEngineer(token: leeToken) == nil)
            #expect(try store.engineers(login: "kim").map(\.id) == [otherKim.id], "the other company's kim still signs in")
            #expect(try store.engineers(login: "lee").isEmpty)
            let after = try store.credentialDigests(engineerIDs: ids, hostIDs: [])
            #expect(Set(after.keys) == [otherKim.id])
            #expect(after[otherKim.id] == before[otherKim.id])
            #expect(try store.webSession(idDigest: Self.digest("session-kim")) == nil)
            #expect(try store.webSession(idDigest: Self.digest("session-lee")) == nil)
            #expect(try store.useSignInLink(digest: Self.digest("link-kim")) == nil)
            #expect(try store.useSignInLink(digest: Self.digest("link-lee")) == nil)
            // Nobody else's.
            #expect(try store.webSession(idDigest: Self.digest("session-other")) != nil)
            // A disabled engineer keeps their row for the admins.
            let listed = try store.engineers(companyID: acme.id)
            #expect(listed.map(\.id).sorted() == [kim.id, lee.id].sorted())
            #expect(listed.allSatisfy { $0.disabledAt == disabledAt })

            // Disabling again keeps when it first happened.
            clock.now += 60
            #expect(try store.setDisabled(engineerID: kim.id, disabled: true, actor: "cli").disabledAt == disabledAt)

            clock.now += 60
            let enabled = try store.setDisabled(engineerID: kim.id, disabled: false, actor: "console:alice")
            #expect(enabled.disabledAt == nil)
            #expect(try Self.lastAudit(store).action.rawValue == "engineer_enable")
            _ = try store.setDisabled(engineerID: lee.id, disabled: false, actor: "cli")
            #expect(try store.authenticateEngineer(publicKey: raw)?.id == kim.id)
            #expect(try store.authenticateEngineer(token: leeToken)?.id == lee.id)
            #expect(Set(try store.engineers(login: "kim").map(\.id)) == [kim.id, otherKim.id])
            #expect(try store.credentialDigests(engineerIDs: ids, hostIDs: []) == before)
            #expect(try store.webSession(idDigest: Self.digest("session-kim")) == nil, "ended sessions stay ended")
            #expect(storeErrorKind { try store.setDisabled(engineerID: "en-missing", disabled: true, actor: "cli") } == .notFound)
        }
    }

    /// FINDING: "a disabled one cannot log in anywhere" (AdminStore.setDisabled), but the
    /// store hands a disabled engineer a working sign-in link: `issueSignInLink` accepts a
    /// new link for them (the console's `POST /api/admin/engineers/link`, the CLI's
    /// sign-in link), and `useSignInLink` returns it. WebSignInVerifier.openLink then only
    /// reads `engineer(id:)`, which does not look at `disabledAt`, so the link signs the
    /// disabled engineer in. Either refusal would keep the promise.
    @Test(arguments: StoreBackend.available) func aDisabledEngineerGetsNoWorkingSignInLink(_ backend: StoreBackend) throws {
        try Self.withStore(backend) { store, clock in
            let (acme, _) = try store.addCompany(name: "Acme")
            let kim = try store.addEngineer(companyID: acme.id, login: "kim", publicKey: Self.key())
            _ = try store.setDisabled(engineerID: kim.id, disabled: true, actor: "console:alice")
            let link = SignInLink(digest: Self.digest("link-after-disable"), engineerID: kim.id, createdAt: clock.now, expiresAt: clock.now + 86_400)
            let refused = storeErrorKind { try store.issueSignInLink(link, actor: "console:alice") } != nil
            if !refused {
                #expect(
                    try store.useSignInLink(digest: link.digest) == nil,
                    "a sign-in link issued to a disabled engineer must not be usable (or issuing it must be refused)")
            }
        }
    }

    /// FINDING (the same promise, the other way in): a sign-in that passed its password
    /// before the engineer was disabled finishes with `startWebSession` after it, and the
    /// store stores the session of the disabled engineer; `webSession(idDigest:)` then
    /// returns it as any other. Disabling deletes web sessions only once, at that moment.
    @Test(arguments: StoreBackend.available) func aDisabledEngineerGetsNoNewWebSession(_ backend: StoreBackend) throws {
        try Self.withStore(backend) { store, clock in
            let (acme, _) = try store.addCompany(name: "Acme")
            let kim = try store.addEngineer(companyID: acme.id, login: "kim", publicKey: Self.key())
            _ = try store.setDisabled(engineerID: kim.id, disabled: true, actor: "console:alice")
            let session = WebSession(idDigest: Self.digest("late"), engineerID: kim.id, createdAt: clock.now, lastSeenAt: clock.now, sourceAddress: "10.0.0.9")
            let refused = storeErrorKind { try store.startWebSession(session) } != nil
            if !refused {
                #expect(try store.webSession(idDigest: session.idDigest) == nil, "a disabled engineer must not hold a web session")
            }
        }
    }

    // MARK: Hosts

    @Test(arguments: StoreBackend.available) func hostsAreRenamedAndGroupedWithValidNames(_ backend: StoreBackend) throws {
        try Self.withStore(backend) { store, _ in
            let (acme, _) = try store.addCompany(name: "Acme")
            let (host, secret) = try store.enrollHost(companyID: acme.id, name: "PC-1")
            #expect(host.groupName == "", "a new host is in no group")

            let renamed = try store.renameHost(id: host.id, name: "  Front desk PC  ", actor: "console:alice")
            #expect(renamed.name == "Front desk PC" && renamed.id == host.id)
            #expect(try store.hosts(companyID: acme.id).map(\.name) == ["Front desk PC"])
            var entry = try Self.lastAudit(store)
            #expect(entry.action.rawValue == "host_rename" && entry.subject == host.id && entry.companyID == acme.id && entry.actor == "console:alice")
            // The name is not the credential: the host still logs in.
            #expect(try store.authenticateHost(id: host.id, secret: secret)?.name == "Front desk PC")

            let grouped = try store.setHostGroup(id: host.id, group: " Sales ", actor: "console:alice")
            #expect(grouped.groupName == "Sales" && grouped.name == "Front desk PC")
            #expect(try store.hosts(companyID: acme.id).map(\.groupName) == ["Sales"])
            entry = try Self.lastAudit(store)
            #expect(entry.action.rawValue == "host_group" && entry.subject == host.id && entry.companyID == acme.id)
            #expect(try store.setHostGroup(id: host.id, group: "", actor: "cli").groupName == "")
            #expect(try store.hosts(companyID: acme.id).map(\.groupName) == [""])
            _ = try store.setHostGroup(id: host.id, group: "Sales", actor: "cli")
            #expect(try store.setHostGroup(id: host.id, group: " \t ", actor: "cli").groupName == "", "blank is no group")

            let audited = try store.auditLog(limit: 1000).count
            let maximum = String(repeating: "가", count: 66) + "ab"  // 200 bytes
            let tooLong = String(repeating: "가", count: 67)  // 201 bytes, 67 characters
            #expect(try store.renameHost(id: host.id, name: maximum, actor: "cli").name == maximum)
            #expect(try store.setHostGroup(id: host.id, group: maximum, actor: "cli").groupName == maximum)
            for bad in ["", "   ", "PC\n2", "PC\u{0}", "\u{1B}[31mPC", tooLong] {
                let rename = #expect(throws: StoreError.self) { try store.renameHost(id: host.id, name: bad, actor: "cli") }
                #expect(rename?.kind == .invalidInput)
                #expect(rename?.message.contains("host name") == true)
            }
            for bad in ["PC\n2", "Sa\u{7}les", tooLong] {
                #expect(storeErrorKind { try store.setHostGroup(id: host.id, group: bad, actor: "cli") } == .invalidInput)
            }
            #expect(storeErrorKind { try store.renameHost(id: "ho-missing", name: "PC", actor: "cli") } == .notFound)
            #expect(storeErrorKind { try store.setHostGroup(id: "ho-missing", group: "Sales", actor: "cli") } == .notFound)
            #expect(try store.auditLog(limit: 1000).count == audited + 2, "only the two changes that were made are audited")
            let stored = try #require(try store.hosts(companyID: acme.id).first)
            #expect(stored.name == maximum && stored.groupName == maximum)
        }
    }

    // MARK: Usage

    /// Company A's day 2026-11-03 (UTC) and its edges, and company B's record with the
    /// same engineer login and host id.
    static func writeScopedRecords(_ store: SQLStore) throws {
        try store.write(
            UsageBatch(opened: [
                Self.record("a-before", company: "co-a", started: "2026-11-02T23:59:59.999Z", ended: "2026-11-03T00:10:00Z"),
                Self.record("a0", company: "co-a", login: "kim", started: "2026-11-03T00:00:00Z", ended: "2026-11-03T00:10:00Z"),
                Self.record("a1", company: "co-a", login: "kim", started: "2026-11-03T09:00:00Z", ended: "2026-11-03T09:10:00Z"),
                Self.record(
                    "a2", company: "co-a", login: "lee", host: "h1", mode: .unattended, started: "2026-11-03T09:05:00Z", ended: "2026-11-03T09:20:00Z",
                    reason: .idleTimeout),
                Self.record("a3", company: "co-a", login: "park", host: "h2", mode: .unattended, started: "2026-11-03T09:10:00Z"),
                Self.record(
                    "a4", company: "co-a", login: "kim", host: "h2", mode: .unattended, started: "2026-11-03T09:15:00Z", ended: "2026-11-03T09:16:00Z",
                    reason: .revoked),
                Self.record("a-end", company: "co-a", login: "lee", started: "2026-11-04T00:00:00Z", ended: "2026-11-04T00:10:00Z"),
                Self.record("b1", company: "co-b", login: "kim", host: "h2", mode: .unattended, started: "2026-11-03T09:00:00Z"),
                Self.record("b2", company: "co-b", login: "lee", host: "h1", started: "2026-11-03T10:00:00Z", ended: "2026-11-03T10:01:00Z"),
            ]))
    }

    @Test(arguments: StoreBackend.available) func usageScopesSelectTheirRecordsAndNeverAnotherCompanys(_ backend: StoreBackend) throws {
        try Self.withStore(backend) { store, _ in
            try Self.writeScopedRecords(store)
            let day = ExportRange(from: StoreFixture.milliseconds("2026-11-03T00:00:00Z"), to: StoreFixture.milliseconds("2026-11-04T00:00:00Z"))
            // From inclusive, to exclusive.
            #expect(try Self.ids(store, UsageFilter(companyID: "co-a", range: day, scope: .company)) == ["a0", "a1", "a2", "a3", "a4"])
            #expect(try Self.ids(store, UsageFilter(companyID: "co-a", range: day, scope: .engineer(login: "kim"))) == ["a0", "a1", "a4"])
            #expect(try Self.ids(store, UsageFilter(companyID: "co-a", range: day, scope: .engineer(login: "nobody"))) == [])
            // A manager's: their engineers' sessions or their hosts' sessions.
            #expect(
                try Self.ids(store, UsageFilter(companyID: "co-a", range: day, scope: .managed(engineerLogins: ["lee"], hostIDs: ["h2"]))) == [
                    "a2", "a3", "a4",
                ])
            #expect(try Self.ids(store, UsageFilter(companyID: "co-a", range: day, scope: .managed(engineerLogins: [], hostIDs: ["h2"]))) == ["a3", "a4"])
            #expect(
                try Self.ids(store, UsageFilter(companyID: "co-a", range: day, scope: .managed(engineerLogins: ["kim", "park"], hostIDs: []))) == [
                    "a0", "a1", "a3", "a4",
                ])
            // A manager with no engineers and no groups sees nothing (not everything).
            #expect(try Self.ids(store, UsageFilter(companyID: "co-a", range: day, scope: .managed(engineerLogins: [], hostIDs: []))) == [])
            #expect(
                try store.usageSummary(UsageFilter(companyID: "co-a", range: day, scope: .managed(engineerLogins: [], hostIDs: [])), timeZone: .utc).sessions
                    == 0)
            // Company B's records, with the same logins and host ids, never show in A's.
            #expect(try Self.ids(store, UsageFilter(companyID: "co-b", range: day)) == ["b1", "b2"])
            #expect(try Self.ids(store, UsageFilter(companyID: "co-b", range: day, scope: .engineer(login: "kim"))) == ["b1"])
            #expect(try Self.ids(store, UsageFilter(companyID: "co-missing", range: day)) == [])
            let wide = try Self.ids(store, UsageFilter(companyID: "co-a", range: Self.everything))
            #expect(wide == ["a-before", "a0", "a1", "a2", "a3", "a4", "a-end"])
            // What a page returns is the whole record.
            let a2 = try #require(try store.usagePage(UsageFilter(companyID: "co-a", range: day, hostID: "h1"), after: nil, limit: 10).first)
            #expect(a2 == (try store.usageRecord(id: "a2")))
        }
    }

    @Test(arguments: StoreBackend.available) func usageFiltersNarrowTheScope(_ backend: StoreBackend) throws {
        try Self.withStore(backend) { store, _ in
            try Self.writeScopedRecords(store)
            let day = ExportRange(from: StoreFixture.milliseconds("2026-11-03T00:00:00Z"), to: StoreFixture.milliseconds("2026-11-04T00:00:00Z"))
            #expect(try Self.ids(store, UsageFilter(companyID: "co-a", range: day, engineerLogin: "lee")) == ["a2"])
            #expect(try Self.ids(store, UsageFilter(companyID: "co-a", range: day, hostID: "h2")) == ["a3", "a4"])
            #expect(try Self.ids(store, UsageFilter(companyID: "co-a", range: day, mode: .unattended)) == ["a2", "a3", "a4"])
            #expect(try Self.ids(store, UsageFilter(companyID: "co-a", range: day, mode: .attended)) == ["a0", "a1"])
            #expect(try Self.ids(store, UsageFilter(companyID: "co-a", range: day, endReason: .idleTimeout)) == ["a2"])
            #expect(try Self.ids(store, UsageFilter(companyID: "co-a", range: day, endReason: .revoked)) == ["a4"])
            #expect(try Self.ids(store, UsageFilter(companyID: "co-a", range: day, openOnly: true)) == ["a3"])
            #expect(try Self.ids(store, UsageFilter(companyID: "co-a", range: day, engineerLogin: "kim", hostID: "h2", mode: .unattended)) == ["a4"])
            // Filters narrow a scope; they never widen it.
            #expect(try Self.ids(store, UsageFilter(companyID: "co-a", range: day, scope: .engineer(login: "kim"), engineerLogin: "lee")) == [])
            #expect(try Self.ids(store, UsageFilter(companyID: "co-a", range: day, scope: .managed(engineerLogins: ["lee"], hostIDs: []), hostID: "h2")) == [])
            #expect(
                try Self.ids(store, UsageFilter(companyID: "co-a", range: day, scope: .managed(engineerLogins: ["lee"], hostIDs: ["h2"]), openOnly: true)) == [
                    "a3"
                ])
            // Range bounds to the millisecond.
            let a1 = StoreFixture.milliseconds("2026-11-03T09:00:00Z")
            #expect(try Self.ids(store, UsageFilter(companyID: "co-a", range: ExportRange(from: a1, to: a1 + 1))) == ["a1"])
            #expect(try Self.ids(store, UsageFilter(companyID: "co-a", range: ExportRange(from: a1 + 1, to: a1 + 2))) == [])
            #expect(try Self.ids(store, UsageFilter(companyID: "co-a", range: ExportRange(from: a1 - 1, to: a1))) == [])
            // The summary counts what the page shows.
            let summary = try store.usageSummary(UsageFilter(companyID: "co-a", range: day, mode: .unattended), timeZone: .utc)
            #expect(summary.sessions == 3)
        }
    }

    /// Keyset paging: every record once, in (startedAt, id) order, with ties on the start
    /// time across page boundaries, another company's records in between and a filter on.
    @Test(arguments: StoreBackend.available) func pagesReturnEveryRecordExactlyOnceInOrder(_ backend: StoreBackend) throws {
        try Self.withStore(backend) { store, _ in
            let times = ["2026-11-03T08:00:00Z", "2026-11-03T09:00:00Z", "2026-11-03T09:00:00.001Z", "2026-11-03T10:00:00Z"]
            var records: [UsageRecord] = []
            // Ids in an order other than their start times', several per start time.
            for index in 0..<37 {
                let id = String(format: "%02d", (index * 17) % 37) + (index % 3 == 0 ? "-x" : "-y")
                let mode: UsageRecord.Mode = index % 4 == 0 ? .attended : .unattended
                records.append(Self.record(id, company: index % 5 == 0 ? "co-b" : "co-a", mode: mode, started: times[index % times.count], ended: nil))
            }
            try store.write(UsageBatch(opened: records))
            let expected = records.filter { $0.companyID == "co-a" }.sorted { ($0.startedAt, $0.id) < ($1.startedAt, $1.id) }
            for limit in [1, 2, 5, 7, 100] {
                let filter = UsageFilter(companyID: "co-a", range: Self.everything)
                let rows = try Self.allPages(store, filter, limit: limit)
                #expect(rows.map(Self.sortKey) == expected.map(Self.sortKey), "limit \(limit)")
                #expect(Set(rows.map(\.id)).count == rows.count)
            }
            let unattended = UsageFilter(companyID: "co-a", range: Self.everything, mode: .unattended)
            #expect(try Self.allPages(store, unattended, limit: 3).map(Self.sortKey) == expected.filter { $0.mode == .unattended }.map(Self.sortKey))
            // The page after the last record is empty.
            let last = try #require(expected.last)
            #expect(try store.usagePage(UsageFilter(companyID: "co-a", range: Self.everything), after: UsageCursor(after: last), limit: 10).isEmpty)
        }
    }

    /// FINDING: a cursor whose start time is before the filter's range widens the range
    /// (SQLStore+Admin.swift `usagePage`: `cursor?.startedAt ?? filter.range.from` is the
    /// lower bound). The console's cursor is an opaque string the browser sends back
    /// (`after=CURSOR`), so a forged one returns records from before `from`. The doc: "One
    /// page of the records `filter` selects".
    @Test(arguments: StoreBackend.available) func aCursorNeverWidensTheRange(_ backend: StoreBackend) throws {
        try Self.withStore(backend) { store, _ in
            try Self.writeScopedRecords(store)
            let day = ExportRange(from: StoreFixture.milliseconds("2026-11-03T00:00:00Z"), to: StoreFixture.milliseconds("2026-11-04T00:00:00Z"))
            let early = UsageCursor(startedAt: StoreFixture.milliseconds("2026-11-01T00:00:00Z"), id: "")
            let page = try store.usagePage(UsageFilter(companyID: "co-a", range: day), after: early, limit: 100)
            #expect(page.map(\.id) == ["a0", "a1", "a2", "a3", "a4"], "a-before started before the range")
        }
    }

    /// Which index each console statement reads, as SQLite plans it without statistics (the
    /// relay never runs ANALYZE). Over millions of rows these decide between milliseconds and
    /// seconds (benchmarks/RESULTS.md, "Admin console (issue 14)"): a filtered page must walk
    /// the filter's index, not the whole company; a summary must read index entries only.
    @Test func consoleStatementsReadTheIndexMadeForThem() throws {
        try Self.withStore(.sqlite) { store, _ in
            try Self.writeScopedRecords(store)
            let month = ExportRange(from: StoreFixture.milliseconds("2026-11-01T00:00:00Z"), to: StoreFixture.milliseconds("2026-12-01T00:00:00Z"))
            func plans(_ filter: UsageFilter) throws -> [String: [String]] { try store.usageQueryPlans(filter, timeZone: .utc) }
            func uses(_ plan: [String]?, _ index: String) -> Bool { plan?.contains { $0.contains("USING \(index) ") } ?? false }

            let company = try plans(UsageFilter(companyID: "co-a", range: month))
            for name in ["page", "deep page"] {
                #expect(uses(company[name], "INDEX session_company_started"), "\(name): \(company[name] ?? [])")
                #expect(company[name]?.contains { $0.contains("TEMP B-TREE") } == false, "\(name) needs no sort: \(company[name] ?? [])")
            }
            for name in ["summary by day", "summary by engineer"] {
                #expect(uses(company[name], "COVERING INDEX session_company_started"), "\(name): \(company[name] ?? [])")
            }

            let host = try plans(UsageFilter(companyID: "co-a", range: month, hostID: "h2"))
            for name in ["page", "deep page"] {
                #expect(uses(host[name], "INDEX session_host"), "\(name): \(host[name] ?? [])")
                #expect(host[name]?.contains { $0.contains("TEMP B-TREE") } == false, "\(name) needs no sort: \(host[name] ?? [])")
            }

            for filter in [
                UsageFilter(companyID: "co-a", range: month, engineerLogin: "kim"),
                UsageFilter(companyID: "co-a", range: month, scope: .engineer(login: "kim")),
            ] {
                let engineer = try plans(filter)
                #expect(uses(engineer["page"], "INDEX session_engineer"), "page: \(engineer["page"] ?? [])")
                for name in ["summary by day", "summary by engineer"] {
                    #expect(uses(engineer[name], "COVERING INDEX session_engineer"), "\(name): \(engineer[name] ?? [])")
                }
            }
        }
    }

    @Test(arguments: StoreBackend.available) func usageSummaryTotalsDaysAndEngineers(_ backend: StoreBackend) throws {
        try Self.withStore(backend) { store, _ in
            let open = Self.record("open", company: "co-a", login: "park", started: "2026-11-05T12:00:00Z", bytes: 40)
            try store.write(
                UsageBatch(opened: [
                    // 10 minutes and 5 minutes on the 3rd, nothing on the 4th, one open on the 5th.
                    Self.record("d1", company: "co-a", login: "kim", started: "2026-11-03T09:00:00Z", ended: "2026-11-03T09:10:00Z", bytes: 1000),
                    Self.record("d2", company: "co-a", login: "lee", started: "2026-11-03T23:59:59Z", ended: "2026-11-04T00:04:59Z", bytes: 10),
                    open,
                    Self.record("b", company: "co-b", login: "kim", started: "2026-11-03T09:00:00Z", ended: "2026-11-03T12:00:00Z", bytes: 1),
                    Self.record("late", company: "co-a", login: "kim", started: "2026-11-06T00:00:00Z", ended: "2026-11-06T01:00:00Z"),
                ]))
            // A running session counts up to its last checkpoint.
            try store.write(
                UsageBatch(checkpoints: [
                    UsageCheckpoint(sessionID: "open", counters: UsageCounters(bytesToViewer: 40, bytesToHost: 20), at: open.startedAt + 90_500)
                ]))
            let range = ExportRange(from: StoreFixture.milliseconds("2026-11-03T00:00:00Z"), to: StoreFixture.milliseconds("2026-11-06T00:00:00Z"))
            let summary = try store.usageSummary(UsageFilter(companyID: "co-a", range: range), timeZone: .utc)
            #expect(summary.sessions == 3)
            #expect(summary.seconds == 600 + 300 + 90)
            #expect(summary.bytes == (1000 + 500) + (10 + 5) + (40 + 20))
            #expect(summary.byDay.map(\.key) == ["2026-11-03", "2026-11-04", "2026-11-05"])
            #expect(summary.byDay.map(\.sessions) == [2, 0, 1])
            #expect(summary.byDay.map(\.seconds) == [900, 0, 90])
            #expect(summary.byEngineer.map(\.key) == ["kim", "lee", "park"])
            #expect(summary.byEngineer.map(\.seconds) == [600, 300, 90])
            #expect(summary.byEngineer.map(\.sessions) == [1, 1, 1])

            // Scoped: one engineer's own.
            let own = try store.usageSummary(UsageFilter(companyID: "co-a", range: range, scope: .engineer(login: "lee")), timeZone: .utc)
            #expect(own.sessions == 1 && own.seconds == 300 && own.bytes == 15)
            #expect(own.byDay.map(\.sessions) == [1, 0, 0])
            #expect(own.byEngineer.map(\.key) == ["lee"])
            // An empty selection still has every day.
            let none = try store.usageSummary(UsageFilter(companyID: "co-a", range: range, engineerLogin: "nobody"), timeZone: .utc)
            #expect(none.sessions == 0 && none.seconds == 0 && none.bytes == 0 && none.byEngineer.isEmpty)
            #expect(none.byDay.map(\.key) == ["2026-11-03", "2026-11-04", "2026-11-05"])
            #expect(none.byDay.allSatisfy { $0.sessions == 0 && $0.seconds == 0 })

            // A range that starts and ends inside days: partial first and last days.
            let partial = ExportRange(from: StoreFixture.milliseconds("2026-11-03T12:00:00Z"), to: StoreFixture.milliseconds("2026-11-05T06:00:00Z"))
            let inside = try store.usageSummary(UsageFilter(companyID: "co-a", range: partial), timeZone: .utc)
            #expect(inside.byDay.map(\.key) == ["2026-11-03", "2026-11-04", "2026-11-05"])
            #expect(inside.byDay.map(\.sessions) == [1, 0, 0])
            #expect(inside.sessions == 1)
        }
    }

    @Test(arguments: StoreBackend.available) func byEngineerIsOrderedByTimeThenSessionsThenLoginAndHasAtMostTwenty(_ backend: StoreBackend) throws {
        try Self.withStore(backend) { store, _ in
            var records: [UsageRecord] = []
            // 25 engineers, e00 … e24, with 1 … 25 minutes.
            for index in 0..<25 {
                let minutes = index + 1
                records.append(
                    Self.record(
                        "r\(index)", company: "co-a", login: String(format: "e%02d", index), started: "2026-11-03T01:00:00Z",
                        ended: String(format: "2026-11-03T01:%02d:00Z", minutes)))
            }
            // Ties: "tie-b" has 10 minutes in two sessions, "tie-a" and "tie-c" 10 minutes in one.
            records.append(Self.record("ta", company: "co-a", login: "tie-a", started: "2026-11-03T02:00:00Z", ended: "2026-11-03T02:10:00Z"))
            records.append(Self.record("tb1", company: "co-a", login: "tie-b", started: "2026-11-03T02:00:00Z", ended: "2026-11-03T02:05:00Z"))
            records.append(Self.record("tb2", company: "co-a", login: "tie-b", started: "2026-11-03T03:00:00Z", ended: "2026-11-03T03:05:00Z"))
            records.append(Self.record("tc", company: "co-a", login: "tie-c", started: "2026-11-03T02:00:00Z", ended: "2026-11-03T02:10:00Z"))
            try store.write(UsageBatch(opened: records))
            let range = ExportRange(from: StoreFixture.milliseconds("2026-11-03T00:00:00Z"), to: StoreFixture.milliseconds("2026-11-04T00:00:00Z"))
            let summary = try store.usageSummary(UsageFilter(companyID: "co-a", range: range), timeZone: .utc)
            #expect(summary.sessions == 29)
            #expect(summary.byEngineer.count == UsageSummary.topEngineers)
            #expect(UsageSummary.topEngineers == 20)
            let seconds = summary.byEngineer.map(\.seconds)
            #expect(seconds == seconds.sorted(by: >))
            #expect(summary.byEngineer.prefix(3).map(\.key) == ["e24", "e23", "e22"])
            let tied = summary.byEngineer.filter { $0.seconds == 600 }.map(\.key)
            #expect(tied == ["tie-b", "e09", "tie-a", "tie-c"])
            // The totals are over everyone, not the top 20.
            #expect(summary.seconds == Int64((1...25).reduce(0, +) * 60 + 3 * 600))
        }
    }

    /// Days are local days: New York's 25-hour 1 November 2026 (clocks back at 02:00 EDT)
    /// and 23-hour 8 March 2026, and Santiago's 6 September 2026, which has no midnight.
    @Test(arguments: StoreBackend.available) func daysFollowTheTimeZoneAcrossClockChanges(_ backend: StoreBackend) throws {
        try Self.withStore(backend) { store, _ in
            let newYork = try ExportTimeZone(parsing: "America/New_York")
            try store.write(
                UsageBatch(opened: [
                    Self.record("before", company: "co-a", started: "2026-10-30T23:59:59-04:00", ended: "2026-10-31T00:10:00-04:00"),
                    Self.record("oct31-late", company: "co-a", started: "2026-10-31T23:59:59-04:00", ended: "2026-11-01T00:00:59-04:00"),
                    Self.record("nov1-0030", company: "co-a", started: "2026-11-01T00:30:00-04:00", ended: "2026-11-01T00:31:00-04:00"),
                    Self.record("nov1-0130-edt", company: "co-a", started: "2026-11-01T01:30:00-04:00", ended: "2026-11-01T01:31:00-04:00"),
                    Self.record("nov1-0130-est", company: "co-a", started: "2026-11-01T01:30:00-05:00", ended: "2026-11-01T01:31:00-05:00"),
                    // The 25th hour: a day of 24 hours from 04:00Z would put this in 2 November.
                    Self.record("nov1-2330", company: "co-a", started: "2026-11-01T23:30:00-05:00", ended: "2026-11-01T23:31:00-05:00"),
                    Self.record("nov2-0030", company: "co-a", started: "2026-11-02T00:30:00-05:00", ended: "2026-11-02T00:31:00-05:00"),
                    Self.record("after", company: "co-a", started: "2026-11-03T00:00:00-05:00", ended: "2026-11-03T00:01:00-05:00"),
                ]))
            let autumn = try ExportRange.parse(from: "2026-10-31", to: "2026-11-02", timeZone: newYork)
            let fall = try store.usageSummary(UsageFilter(companyID: "co-a", range: autumn), timeZone: newYork)
            #expect(fall.byDay.map(\.key) == ["2026-10-31", "2026-11-01", "2026-11-02"])
            #expect(fall.byDay.map(\.sessions) == [1, 4, 1])
            #expect(fall.byDay.map(\.seconds) == [60, 240, 60])
            #expect(fall.sessions == 6)

            try store.write(
                UsageBatch(opened: [
                    Self.record("mar8-0130", company: "co-a", started: "2026-03-08T01:30:00-05:00", ended: "2026-03-08T01:31:00-05:00"),
                    Self.record("mar8-0330", company: "co-a", started: "2026-03-08T03:30:00-04:00", ended: "2026-03-08T03:31:00-04:00"),
                    // A day of 24 hours from 05:00Z would put this in 8 March.
                    Self.record("mar9-0030", company: "co-a", started: "2026-03-09T00:30:00-04:00", ended: "2026-03-09T00:31:00-04:00"),
                    Self.record("mar8-2330", company: "co-a", started: "2026-03-08T23:30:00-04:00", ended: "2026-03-08T23:31:00-04:00"),
                ]))
            let spring = try store.usageSummary(
                UsageFilter(companyID: "co-a", range: try ExportRange.parse(from: "2026-03-07", to: "2026-03-09", timeZone: newYork)), timeZone: newYork)
            #expect(spring.byDay.map(\.key) == ["2026-03-07", "2026-03-08", "2026-03-09"])
            #expect(spring.byDay.map(\.sessions) == [0, 3, 1])

            // Santiago: 6 September 2026 starts at 01:00 (-03), straight after 23:59:59 (-04).
            let santiago = try ExportTimeZone(parsing: "America/Santiago")
            try store.write(
                UsageBatch(opened: [
                    Self.record("sep5-2330", company: "co-a", started: "2026-09-05T23:30:00-04:00", ended: "2026-09-05T23:31:00-04:00"),
                    Self.record("sep6-0130", company: "co-a", started: "2026-09-06T01:30:00-03:00", ended: "2026-09-06T01:31:00-03:00"),
                    Self.record("sep6-2330", company: "co-a", started: "2026-09-06T23:30:00-03:00", ended: "2026-09-06T23:31:00-03:00"),
                ]))
            let gap = try store.usageSummary(
                UsageFilter(companyID: "co-a", range: try ExportRange.parse(from: "2026-09-05", to: "2026-09-06", timeZone: santiago)), timeZone: santiago)
            #expect(gap.byDay.map(\.key) == ["2026-09-05", "2026-09-06"])
            #expect(gap.byDay.map(\.sessions) == [1, 2])

            // A fixed offset: Seoul's day 3 November is 2 November 15:00Z to 3 November 15:00Z.
            let seoul = try ExportTimeZone(parsing: "+09:00")
            try store.write(
                UsageBatch(opened: [
                    Self.record("kst-1", company: "co-b", started: "2026-11-02T14:59:59Z", ended: "2026-11-02T15:00:59Z"),
                    Self.record("kst-2", company: "co-b", started: "2026-11-02T15:00:00Z", ended: "2026-11-02T15:01:00Z"),
                ]))
            let kst = try store.usageSummary(
                UsageFilter(companyID: "co-b", range: try ExportRange.parse(from: "2026-11-02", to: "2026-11-03", timeZone: seoul)), timeZone: seoul)
            #expect(kst.byDay.map(\.key) == ["2026-11-02", "2026-11-03"])
            #expect(kst.byDay.map(\.sessions) == [1, 1])
        }
    }

    @Test(arguments: StoreBackend.available) func aSummaryRangeMustBeNonEmptyAndAtMost400Days(_ backend: StoreBackend) throws {
        try Self.withStore(backend) { store, _ in
            let start = StoreFixture.milliseconds("2026-01-01T00:00:00Z")
            let day: Int64 = 86_400_000
            let longest = try store.usageSummary(UsageFilter(companyID: "co-a", range: ExportRange(from: start, to: start + 400 * day)), timeZone: .utc)
            #expect(longest.byDay.count == UsageSummary.maximumDays)
            #expect(longest.byDay.first?.key == "2026-01-01" && longest.byDay.last?.key == "2027-02-04")
            let tooLong = #expect(throws: StoreError.self) {
                try store.usageSummary(UsageFilter(companyID: "co-a", range: ExportRange(from: start, to: start + 401 * day)), timeZone: .utc)
            }
            #expect(tooLong?.kind == .invalidInput)
            #expect(tooLong?.message.contains("400") == true)
            let years = ExportRange(from: start, to: StoreFixture.milliseconds("2036-01-01T00:00:00Z"))
            #expect(storeErrorKind { try store.usageSummary(UsageFilter(companyID: "co-a", range: years), timeZone: .utc) } == .invalidInput)
            #expect(
                storeErrorKind { try store.usageSummary(UsageFilter(companyID: "co-a", range: ExportRange(from: start, to: start)), timeZone: .utc) }
                    == .invalidInput)
            #expect(
                storeErrorKind { try store.usageSummary(UsageFilter(companyID: "co-a", range: ExportRange(from: start, to: start - 1)), timeZone: .utc) }
                    == .invalidInput)
        }
    }

    /// FINDING (fixed: `days(of:timeZone:)` checks the range before any arithmetic). "The longest range a summary covers"
    /// is 400 days, and longer ones are refused with invalidInput; the widest range of all
    /// (`ExportRange(from: .min, to: .max)`, what `relay-server usage` passes to usagePage
    /// for "all of it") traps on Int64 overflow in `SQLStore.days(of:timeZone:)`
    /// (SQLStore+Admin.swift 208 and 213, `start + offset * 1000` and the day's
    /// midnight in milliseconds) before the 400-day check is reached.
    @Test(arguments: StoreBackend.available) func theWidestRangeIsRefusedNotATrap(_ backend: StoreBackend) throws {
        try Self.withStore(backend) { store, _ in
            let all = ExportRange(from: .min, to: .max)
            #expect(storeErrorKind { try store.usageSummary(UsageFilter(companyID: "co-a", range: all), timeZone: .utc) } == .invalidInput)
            let newYork = try ExportTimeZone(parsing: "America/New_York")
            #expect(storeErrorKind { try store.usageSummary(UsageFilter(companyID: "co-a", range: all), timeZone: newYork) } == .invalidInput)
        }
    }

    // MARK: Purge counts

    @Test(arguments: StoreBackend.available) func purgeCountsOfOneCompanyWithAndWithoutALegalHold(_ backend: StoreBackend) throws {
        try Self.withStore(backend) { store, _ in
            let (acme, _) = try store.addCompany(name: "Acme")
            let (globex, _) = try store.addCompany(name: "Globex")
            try store.write(
                UsageBatch(opened: [
                    Self.record("old", company: acme.id, started: "2025-10-01T09:00:00Z", ended: "2025-10-01T10:00:00Z"),
                    Self.record("edge", company: acme.id, started: "2025-11-02T09:00:00Z", ended: "2025-11-02T10:00:00.001Z"),
                    Self.record("open", company: acme.id, started: "2024-01-01T09:00:00Z"),
                    Self.record("new", company: acme.id, started: "2026-10-01T09:00:00Z", ended: "2026-10-01T10:00:00Z"),
                    Self.record("globex-old", company: globex.id, started: "2025-01-01T09:00:00Z", ended: "2025-01-01T10:00:00Z"),
                ]))
            try store.record([
                AccessEvent(at: Self.date("2026-07-01T00:00:00Z"), event: .webPassword, outcome: .accepted, sourceAddress: "1.2.3.4", companyID: acme.id),
                AccessEvent(at: Self.date("2026-09-01T00:00:00Z"), event: .webPassword, outcome: .accepted, sourceAddress: "1.2.3.4", companyID: acme.id),
                AccessEvent(at: Self.date("2026-07-01T00:00:00Z"), event: .webPassword, outcome: .rejected, sourceAddress: "1.2.3.4", companyID: globex.id),
                AccessEvent(at: Self.date("2026-07-01T00:00:00Z"), event: .webPassword, outcome: .rejected, sourceAddress: "1.2.3.4"),
            ])
            let now = Self.date("2026-11-02T10:00:00Z")
            let policy = RetentionPolicy.default
            let free = try store.purgeCounts(companyID: acme.id, policy: policy, now: now)
            #expect(free.sessions == 1 && free.accessLogEntries == 1)
            #expect(free.heldSessions == 0 && free.heldAccessLogEntries == 0)
            #expect(free.dryRun)
            #expect(free.usageCutoff.milliseconds == policy.usageCutoff(now: now))
            #expect(free.accessLogCutoff.milliseconds == policy.accessLogCutoff(now: now))

            _ = try store.placeHold(companyID: acme.id, reason: "case 2026-117", actor: "cli")
            let held = try store.purgeCounts(companyID: acme.id, policy: policy, now: now)
            #expect(held.sessions == 0 && held.accessLogEntries == 0)
            #expect(held.heldSessions == 1 && held.heldAccessLogEntries == 1)
            // Acme's hold is not Globex's.
            let other = try store.purgeCounts(companyID: globex.id, policy: policy, now: now)
            #expect(other.sessions == 1 && other.accessLogEntries == 1 && other.heldSessions == 0)
            // Counting destroys nothing.
            #expect(try store.usageCount() == 5)
            #expect(try store.accessLog(limit: 10).count == 4)
            // A shorter policy reaches the newer records.
            let short = try store.purgeCounts(companyID: globex.id, policy: RetentionPolicy(usageMonths: 1, accessLogMonths: 1), now: now)
            #expect(short.sessions == 1 && short.accessLogEntries == 1)
            try store.releaseHold(companyID: acme.id, actor: "cli")
            let shortAcme = try store.purgeCounts(companyID: acme.id, policy: RetentionPolicy(usageMonths: 1, accessLogMonths: 1), now: now)
            #expect(shortAcme.sessions == 3 && shortAcme.accessLogEntries == 2)
        }
    }

    // MARK: Logs

    @Test(arguments: StoreBackend.available) func auditPagesAreTheCompanysNewestFirstFilteredAndPaged(_ backend: StoreBackend) throws {
        try Self.withStore(backend) { store, clock in
            clock.now = Self.date("2026-11-03T08:00:00Z")
            let (acme, _) = try store.addCompany(name: "Acme", actor: "cli")
            let (other, _) = try store.addCompany(name: "Other", actor: "cli")
            var hosts: [EnrolledHost] = []
            for index in 0..<5 {
                clock.now = Self.date("2026-11-03T09:00:00Z") + Double(index) * 60
                hosts.append(try store.enrollHost(companyID: acme.id, name: "PC-\(index)", publicKey: nil, actor: index % 2 == 0 ? "console:alice" : "cli"))
                _ = try store.enrollHost(companyID: other.id, name: "Other-\(index)", publicKey: nil, actor: "console:alice")
            }
            clock.now = Self.date("2026-11-03T10:00:00Z")
            _ = try store.renameHost(id: hosts[0].id, name: "Front desk", actor: "console:alice")
            let day = ExportRange(from: StoreFixture.milliseconds("2026-11-03T00:00:00Z"), to: StoreFixture.milliseconds("2026-11-04T00:00:00Z"))

            let all = try store.auditPage(LogFilter(companyID: acme.id, range: day), limit: 100)
            #expect(all.count == 7)
            #expect(all.allSatisfy { $0.companyID == acme.id })
            let ids = all.compactMap(\.id)
            #expect(ids == ids.sorted(by: >), "newest first")
            #expect(all.first?.action.rawValue == "host_rename")
            #expect(all.last?.action.rawValue == "company_add")

            let alice = try store.auditPage(LogFilter(companyID: acme.id, range: day, who: "console:alice"), limit: 100)
            #expect(alice.count == 4 && alice.allSatisfy { $0.actor == "console:alice" })
            let enrolled = try store.auditPage(LogFilter(companyID: acme.id, range: day, what: "host_enroll"), limit: 100)
            #expect(enrolled.map(\.subject) == hosts.reversed().map(\.id))
            let both = try store.auditPage(LogFilter(companyID: acme.id, range: day, who: "cli", what: "host_enroll"), limit: 100)
            #expect(both.map(\.subject) == [hosts[3].id, hosts[1].id])
            // From inclusive, to exclusive.
            let window = ExportRange(from: StoreFixture.milliseconds("2026-11-03T09:01:00Z"), to: StoreFixture.milliseconds("2026-11-03T09:03:00Z"))
            #expect(try store.auditPage(LogFilter(companyID: acme.id, range: window), limit: 100).map(\.subject) == [hosts[2].id, hosts[1].id])

            // Pages of two, each before the last one's id: all of them once.
            var paged: [AuditEntry] = []
            var before: Int64?
            for _ in 0..<10 {
                let page = try store.auditPage(LogFilter(companyID: acme.id, range: day, before: before), limit: 2)
                #expect(page.count <= 2)
                paged += page
                guard let last = page.last?.id else { break }
                before = last
            }
            #expect(paged == all)
            #expect(try store.auditPage(LogFilter(companyID: "co-missing", range: day), limit: 100).isEmpty)
        }
    }

    @Test(arguments: StoreBackend.available) func accessPagesAreTheCompanysNewestFirstFilteredAndPaged(_ backend: StoreBackend) throws {
        try Self.withStore(backend) { store, _ in
            var events: [AccessEvent] = []
            let outcomes: [AccessEvent.Outcome] = [.accepted, .rejected, .throttled]
            let kinds: [AccessEvent.Kind] = [.webPassword, .engineerKey, .webTOTP]
            for index in 0..<12 {
                events.append(
                    AccessEvent(
                        at: Self.date("2026-11-03T09:00:00Z") + Double(index) * 60, event: kinds[index % 3], outcome: outcomes[(index / 3) % 3],
                        sourceAddress: "10.0.0.\(index)", companyID: index % 4 == 3 ? "co-b" : "co-a", subject: index % 2 == 0 ? "kim" : "lee"))
            }
            events.append(
                AccessEvent(at: Self.date("2026-11-03T09:30:00Z"), event: .webPassword, outcome: .rejected, sourceAddress: "10.9.9.9", subject: "kim"))
            try store.record(events)
            let day = ExportRange(from: StoreFixture.milliseconds("2026-11-03T00:00:00Z"), to: StoreFixture.milliseconds("2026-11-04T00:00:00Z"))
            let expected = events.enumerated().filter { $0.offset < 12 && $0.offset % 4 != 3 }.map(\.element)
            #expect(try Self.sources(store, LogFilter(companyID: "co-a", range: day)) == expected.reversed().map(\.sourceAddress))
            #expect(try store.accessPage(LogFilter(companyID: "co-a", range: day), limit: 100).allSatisfy { $0.companyID == "co-a" })
            #expect(
                try Self.sources(store, LogFilter(companyID: "co-a", range: day, who: "kim"))
                    == expected.filter { $0.subject == "kim" }.reversed().map(\.sourceAddress))
            #expect(
                try Self.sources(store, LogFilter(companyID: "co-a", range: day, what: "engineer_key"))
                    == expected.filter { $0.event == .engineerKey }.reversed().map(\.sourceAddress))
            #expect(
                try Self.sources(store, LogFilter(companyID: "co-a", range: day, outcome: "rejected"))
                    == expected.filter { $0.outcome == .rejected }.reversed().map(\.sourceAddress))
            #expect(
                try Self.sources(store, LogFilter(companyID: "co-a", range: day, who: "lee", what: "web_password", outcome: "accepted"))
                    == expected.filter { $0.subject == "lee" && $0.event == .webPassword && $0.outcome == .accepted }.reversed().map(\.sourceAddress))
            // From inclusive, to exclusive.
            let window = ExportRange(from: StoreFixture.milliseconds("2026-11-03T09:01:00Z"), to: StoreFixture.milliseconds("2026-11-03T09:04:00Z"))
            #expect(try Self.sources(store, LogFilter(companyID: "co-a", range: window)) == ["10.0.0.2", "10.0.0.1"])
            // Paged by `before`.
            var paged: [String] = []
            var before: Int64?
            for _ in 0..<20 {
                let page = try store.accessPage(LogFilter(companyID: "co-a", range: day, before: before), limit: 4)
                paged += page.map(\.sourceAddress)
                guard let last = page.last?.id else { break }
                before = last
            }
            #expect(paged == expected.reversed().map(\.sourceAddress))
            #expect(try Self.sources(store, LogFilter(companyID: "co-b", range: day)) == ["10.0.0.11", "10.0.0.7", "10.0.0.3"])
        }
    }

    // MARK: API tokens

    /// The secret with one character changed to another: a forgery that surely differs.
    static func forged(_ secret: String) -> String {
        var characters = Array(secret)
        let last = characters.count - 1
        characters[last] = characters[last] == "A" ? "B" : "A"
        return String(characters)
    }

    @Test(arguments: StoreBackend.available) func apiTokensAreMadeAuthenticatedAndRevokedPerCompany(_ backend: StoreBackend) throws {
        try Self.withStore(backend) { store, clock in
            let (acme, _) = try store.addCompany(name: "Acme")
            let (other, _) = try store.addCompany(name: "Other")
            let (token, secret) = try store.createAPIToken(companyID: acme.id, name: "  nightly export ", scope: .export, actor: "console:alice")
            #expect(secret.hasPrefix("sra_\(token.id)."))
            let secretPart = String(secret.dropFirst("sra_\(token.id).".count))
            #expect(secretPart.count >= 40, "256 random bits")
            #expect(token.companyID == acme.id && token.name == "nightly export" && token.scope == .export)
            #expect(token.createdBy == "console:alice" && token.createdAt == clock.now && token.lastUsedAt == nil)
            let entry = try Self.lastAudit(store)
            #expect(entry.action.rawValue == "token_create" && entry.subject == token.id && entry.companyID == acme.id && entry.actor == "console:alice")
            #expect(entry.detail?.contains(secretPart) == false)
            #expect(try store.apiTokens(companyID: acme.id).map(\.id) == [token.id])
            #expect(try store.apiTokens(companyID: other.id).isEmpty)

            let authenticated = try #require(try store.authenticateAPIToken(secret, at: clock.now))
            #expect(authenticated.id == token.id && authenticated.companyID == acme.id && authenticated.scope == .export)
            let forgery = Self.forged(secret)
            #expect(forgery != secret && forgery.count == secret.count)
            #expect(try store.authenticateAPIToken(forgery, at: clock.now) == nil)
            #expect(try store.authenticateAPIToken(String(secret.dropFirst(4)), at: clock.now) == nil, "without sra_")
            #expect(try store.authenticateAPIToken("SRA_" + secret.dropFirst(4), at: clock.now) == nil)
            #expect(try store.authenticateAPIToken(secret + "x", at: clock.now) == nil)
            #expect(try store.authenticateAPIToken("sra_\(token.id).", at: clock.now) == nil)
            #expect(try store.authenticateAPIToken("sra_", at: clock.now) == nil)
            #expect(try store.authenticateAPIToken("", at: clock.now) == nil)
            // The secret of one token with the id of another.
            let (admin, adminSecret) = try store.createAPIToken(companyID: acme.id, name: "deploy", scope: .admin, actor: "cli")
            #expect(try store.authenticateAPIToken(adminSecret, at: clock.now)?.scope == .admin)
            #expect(try store.authenticateAPIToken("sra_\(admin.id).\(secretPart)", at: clock.now) == nil)

            // Another company's admin cannot revoke it.
            let audited = try store.auditLog(limit: 1000).count
            #expect(storeErrorKind { try store.revokeAPIToken(id: token.id, companyID: other.id, actor: "console:mallory") } == .notFound)
            #expect(storeErrorKind { try store.revokeAPIToken(id: "tk-missing", companyID: acme.id, actor: "cli") } == .notFound)
            #expect(try store.auditLog(limit: 1000).count == audited)
            #expect(try store.authenticateAPIToken(secret, at: clock.now) != nil)

            try store.revokeAPIToken(id: token.id, companyID: acme.id, actor: "console:alice")
            let revoked = try Self.lastAudit(store)
            #expect(revoked.action.rawValue == "token_revoke" && revoked.subject == token.id && revoked.companyID == acme.id)
            #expect(try store.authenticateAPIToken(secret, at: clock.now) == nil)
            #expect(try store.apiTokens(companyID: acme.id).map(\.id) == [admin.id])
            #expect(storeErrorKind { try store.revokeAPIToken(id: token.id, companyID: acme.id, actor: "cli") } == .notFound)

            // Checked input, and a company that exists.
            #expect(storeErrorKind { try store.createAPIToken(companyID: acme.id, name: "  ", scope: .export, actor: "cli") } == .invalidInput)
            #expect(storeErrorKind { try store.createAPIToken(companyID: "co-missing", name: "x", scope: .export, actor: "cli") } == .notFound)
            // A removed company's tokens stop working.
            try store.removeCompany(id: acme.id)
            #expect(try store.authenticateAPIToken(adminSecret, at: clock.now) == nil)
        }
    }

    @Test(arguments: StoreBackend.available) func anAPITokensLastUseIsWrittenAtMostOnceAMinute(_ backend: StoreBackend) throws {
        try Self.withStore(backend) { store, clock in
            let (acme, _) = try store.addCompany(name: "Acme")
            let (token, secret) = try store.createAPIToken(companyID: acme.id, name: "script", scope: .export, actor: "cli")
            let first = clock.now + 10
            #expect(try store.authenticateAPIToken(secret, at: first)?.lastUsedAt == first)
            #expect(try Self.lastUsed(store, companyID: acme.id, tokenID: token.id) == first)
            // Within the minute: not written again.
            _ = try store.authenticateAPIToken(secret, at: first + 30)
            _ = try store.authenticateAPIToken(secret, at: first + 59)
            #expect(try Self.lastUsed(store, companyID: acme.id, tokenID: token.id) == first)
            // A minute on: written.
            #expect(try store.authenticateAPIToken(secret, at: first + 60)?.lastUsedAt == first + 60)
            #expect(try Self.lastUsed(store, companyID: acme.id, tokenID: token.id) == first + 60)
            // A failed attempt is no use.
            _ = try store.authenticateAPIToken(Self.forged(secret), at: first + 600)
            #expect(try Self.lastUsed(store, companyID: acme.id, tokenID: token.id) == first + 60)
        }
    }

    // MARK: Alerts and webhooks

    @Test(arguments: StoreBackend.available) func aNewSignInNetworkIsOneAfterAKnownOne(_ backend: StoreBackend) throws {
        try Self.withStore(backend) { store, clock in
            let (acme, _) = try store.addCompany(name: "Acme")
            let kim = try store.addEngineer(companyID: acme.id, login: "kim", publicKey: nil)
            let lee = try store.addEngineer(companyID: acme.id, login: "lee", publicKey: nil)
            #expect(try !store.noteSignInNetwork(engineerID: kim.id, network: "203.0.113.0/24", at: clock.now), "the first sign-in sets no alert")
            #expect(try !store.noteSignInNetwork(engineerID: kim.id, network: "203.0.113.0/24", at: clock.now + 60))
            #expect(try store.noteSignInNetwork(engineerID: kim.id, network: "198.51.100.0/24", at: clock.now + 120))
            #expect(try !store.noteSignInNetwork(engineerID: kim.id, network: "198.51.100.0/24", at: clock.now + 180))
            #expect(try store.noteSignInNetwork(engineerID: kim.id, network: "2001:db8:1::/48", at: clock.now + 240))
            // Each person's networks are their own.
            #expect(try !store.noteSignInNetwork(engineerID: lee.id, network: "198.51.100.0/24", at: clock.now))
            #expect(try store.noteSignInNetwork(engineerID: lee.id, network: "203.0.113.0/24", at: clock.now))
        }
    }

    @Test(arguments: StoreBackend.available) func alertsAreNumberedAndListedNewestFirstPerCompany(_ backend: StoreBackend) throws {
        try Self.withStore(backend) { store, _ in
            var acme: [SecurityAlert] = []
            for index in 0..<7 {
                let kind: SecurityAlert.Kind = [.newSignInNetwork, .unattendedSession, .hostRemoved][index % 3]
                let alert = SecurityAlert(
                    companyID: "co-a", at: Self.date("2026-11-03T09:00:00Z") + Double(index), kind: kind, subject: "kim", detail: "alert \(index)")
                let added = try store.addAlert(alert)
                #expect(added.id != nil)
                var expected = alert
                expected.id = added.id
                #expect(added == expected)
                acme.append(added)
                _ = try store.addAlert(SecurityAlert(companyID: "co-b", at: alert.at, kind: .hostRemoved, subject: "PC", detail: "other \(index)"))
            }
            let ids = acme.compactMap(\.id)
            #expect(Set(ids).count == 7 && ids == ids.sorted())
            let listed = try store.alerts(companyID: "co-a", before: nil, limit: 100)
            #expect(listed == Array(acme.reversed()))
            #expect(try store.alerts(companyID: "co-a", before: nil, limit: 3) == Array(acme.reversed().prefix(3)))
            #expect(try store.alerts(companyID: "co-a", before: ids[4], limit: 2) == [acme[3], acme[2]])
            #expect(try store.alerts(companyID: "co-a", before: ids[0], limit: 10).isEmpty)
            #expect(try store.alerts(companyID: "co-b", before: nil, limit: 100).allSatisfy { $0.companyID == "co-b" && $0.detail.hasPrefix("other") })
            #expect(try store.alerts(companyID: "co-missing", before: nil, limit: 100).isEmpty)
            // A kind of a newer version is kept as it is.
            let future = try store.addAlert(
                SecurityAlert(companyID: "co-a", at: Self.date("2026-11-04T00:00:00Z"), kind: .other("impossible_travel"), subject: "kim", detail: "x"))
            #expect(try store.alerts(companyID: "co-a", before: nil, limit: 1).first?.kind.rawValue == "impossible_travel")
            // An id given by the caller is not the one stored.
            let again = try store.addAlert(future)
            #expect(again.id != future.id)
        }
    }

    @Test(arguments: StoreBackend.available) func aWebhookIsSetWithANewSecretAndRemoved(_ backend: StoreBackend) throws {
        try Self.withStore(backend) { store, _ in
            let (acme, _) = try store.addCompany(name: "Acme")
            let (other, _) = try store.addCompany(name: "Other")
            #expect(try store.webhook(companyID: acme.id) == nil)
            let set = try #require(try store.setWebhook(companyID: acme.id, url: "https://hooks.example.com/relay", actor: "console:alice"))
            #expect(set.url == "https://hooks.example.com/relay")
            #expect(set.secret.count >= 40)
            #expect(try store.webhook(companyID: acme.id) == set)
            #expect(try store.webhook(companyID: other.id) == nil)
            var entry = try Self.lastAudit(store)
            #expect(entry.action.rawValue == "webhook_set" && entry.companyID == acme.id && entry.actor == "console:alice")
            #expect(entry.detail?.contains(set.secret) != true)

            let again = try #require(try store.setWebhook(companyID: acme.id, url: "https://hooks.example.com/relay", actor: "cli"))
            #expect(again.secret != set.secret, "every setting makes a new signing secret")
            #expect(try store.webhook(companyID: acme.id) == again)

            #expect(try store.setWebhook(companyID: acme.id, url: nil, actor: "console:alice") == nil)
            #expect(try store.webhook(companyID: acme.id) == nil)
            entry = try Self.lastAudit(store)
            #expect(entry.action.rawValue == "webhook_set" && entry.detail == "removed")
            #expect(try store.auditPage(LogFilter(companyID: acme.id, range: Self.everything, what: "webhook_set"), limit: 10).count == 3)
            #expect(storeErrorKind { try store.setWebhook(companyID: "co-missing", url: "https://x.example", actor: "cli") } == .notFound)
            #expect(storeErrorKind { try store.webhook(companyID: "co-missing") } == .notFound)
        }
    }

    // MARK: Operator

    @Test(arguments: StoreBackend.available) func companyCountsAreCountsOnly(_ backend: StoreBackend) throws {
        try Self.withStore(backend) { store, _ in
            let (acme, _) = try store.addCompany(name: "Acme")
            let (globex, _) = try store.addCompany(name: "Globex")
            let (empty, _) = try store.addCompany(name: "Beta")
            let kim = try store.addEngineer(companyID: acme.id, login: "kim", publicKey: nil)
            _ = try store.addEngineer(companyID: acme.id, login: "lee", publicKey: nil)
            _ = try store.setDisabled(engineerID: kim.id, disabled: true, actor: "cli")
            _ = try store.enrollHost(companyID: acme.id, name: "PC", publicKey: nil)
            _ = try store.enrollHost(companyID: globex.id, name: "PC-1", publicKey: nil)
            _ = try store.enrollHost(companyID: globex.id, name: "PC-2", publicKey: nil)
            try store.write(
                UsageBatch(opened: [
                    Self.record("a-old", company: acme.id, started: "2026-10-01T00:00:00Z", ended: "2026-10-01T01:00:00Z"),
                    Self.record("a-edge", company: acme.id, started: "2026-10-03T00:00:00Z", ended: "2026-10-03T01:00:00Z"),
                    Self.record("a-new", company: acme.id, started: "2026-10-20T00:00:00Z"),
                    Self.record("gone", company: "co-removed", started: "2026-10-20T00:00:00Z"),
                ]))
            _ = try store.placeHold(companyID: globex.id, reason: "case 7", actor: "cli")
            let counts = try store.companyCounts(sessionsSince: Self.date("2026-10-03T00:00:00Z"))
            #expect(counts.map(\.name) == ["Acme", "Beta", "Globex"])
            #expect(
                counts.map(Self.row) == [
                    "\(acme.id) Acme engineers=2 hosts=1 since=2 held=false",
                    "\(empty.id) Beta engineers=0 hosts=0 since=0 held=false",
                    "\(globex.id) Globex engineers=0 hosts=2 since=0 held=true",
                ])
        }
    }

    // MARK: Audit

    /// Every change of the admin store leaves one entry, with the documented action name.
    @Test(arguments: StoreBackend.available) func everyChangeLeavesOneAuditEntryWithItsAction(_ backend: StoreBackend) throws {
        try Self.withStore(backend) { store, _ in
            let (acme, _) = try store.addCompany(name: "Acme")
            let lee = try store.addEngineer(companyID: acme.id, login: "lee", publicKey: nil)
            let kim = try store.addEngineer(companyID: acme.id, login: "kim", publicKey: nil)
            let host = try store.enrollHost(companyID: acme.id, name: "PC", publicKey: nil)
            let actor = "console:alice"
            let id = acme.id
            #expect(
                try Self.auditedActions(store, companyID: id, actor: actor) { _ = try store.setRole(engineerID: lee.id, role: .manager, actor: actor) } == [
                    "engineer_role"
                ])
            #expect(
                try Self.auditedActions(store, companyID: id, actor: actor) { _ = try store.setManager(engineerID: kim.id, managerID: lee.id, actor: actor) }
                    == ["engineer_manager"])
            #expect(
                try Self.auditedActions(store, companyID: id, actor: actor) {
                    _ = try store.setManagerGroups(engineerID: lee.id, groups: ["Sales"], actor: actor)
                } == ["engineer_groups"])
            #expect(
                try Self.auditedActions(store, companyID: id, actor: actor) { _ = try store.setDisabled(engineerID: kim.id, disabled: true, actor: actor) } == [
                    "engineer_disable"
                ])
            #expect(
                try Self.auditedActions(store, companyID: id, actor: actor) { _ = try store.setDisabled(engineerID: kim.id, disabled: false, actor: actor) }
                    == ["engineer_enable"])
            #expect(
                try Self.auditedActions(store, companyID: id, actor: actor) { _ = try store.renameHost(id: host.id, name: "PC-2", actor: actor) } == [
                    "host_rename"
                ])
            #expect(
                try Self.auditedActions(store, companyID: id, actor: actor) { _ = try store.setHostGroup(id: host.id, group: "Sales", actor: actor) } == [
                    "host_group"
                ])
            #expect(
                try Self.auditedActions(store, companyID: id, actor: actor) {
                    _ = try store.createAPIToken(companyID: id, name: "t", scope: .export, actor: actor)
                } == ["token_create"])
            let tokenID = try #require(try store.apiTokens(companyID: id).first?.id)
            #expect(
                try Self.auditedActions(store, companyID: id, actor: actor) { try store.revokeAPIToken(id: tokenID, companyID: id, actor: actor) } == [
                    "token_revoke"
                ])
            #expect(
                try Self.auditedActions(store, companyID: id, actor: actor) {
                    _ = try store.setWebhook(companyID: id, url: "https://x.example/h", actor: actor)
                } == ["webhook_set"])
            #expect(
                try Self.auditedActions(store, companyID: id, actor: actor) { _ = try store.setWebhook(companyID: id, url: nil, actor: actor) } == [
                    "webhook_set"
                ])
            // The raw values read back as the known cases.
            let actions = try store.auditLog(limit: 11).map(\.action)
            #expect(
                Set(actions) == [
                    .engineerRole, .engineerManager, .engineerGroups, .engineerDisable, .engineerEnable, .hostRename, .hostGroup, .tokenCreate, .tokenRevoke,
                    .webhookSet,
                ])
        }
    }

    // MARK: Migration

    /// A file of the v6 schema (before the console), with an engineer and a host, opens with
    /// this version: the engineer is an engineer, enabled and without a manager or groups,
    /// and still logs in; the host is in no group.
    @Test func aVersion6FileMigrates() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("admin-migrate-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("relay.sqlite").path
        let secret = "legacy-secret-of-kim"
        let digest = Self.digest(secret).map { String(format: "%02x", $0) }.joined()
        try SQLStore.makeFile(
            path: path, migratedUpTo: "v6 browser viewer",
            then: """
                INSERT INTO company (id, name, adminTokenDigest, createdAt) VALUES ('co-1', 'Acme', x'00', '2026-01-01 00:00:00.000');
                INSERT INTO engineer (id, companyID, login, tokenDigest, createdAt) VALUES ('en-1', 'co-1', 'kim', x'\(digest)', '2026-01-01 00:00:00.000');
                INSERT INTO host (id, companyID, name, secretDigest, createdAt, lastSeenAt)
                    VALUES ('ho-1', 'co-1', 'PC-1', x'02', '2026-01-01 00:00:00.000', '2026-02-01 00:00:00.000');
                """)
        let store = try SQLStore(path: path)
        #expect(try store.appliedMigrations().last == "v9 cluster")
        let kim = try store.engineer(id: "en-1")
        #expect(kim.role == .engineer && kim.role.rawValue == "engineer")
        #expect(kim.managerID == nil && kim.disabledAt == nil && kim.groups.isEmpty)
        #expect(try store.authenticateEngineer(token: "en-1.\(secret)")?.id == "en-1")
        #expect(try store.engineers(login: "kim").map(\.id) == ["en-1"])
        #expect(try store.credentialDigests(engineerIDs: ["en-1"], hostIDs: ["ho-1"]).count == 2)
        let host = try #require(try store.hosts(companyID: "co-1").first)
        #expect(host.groupName == "" && host.name == "PC-1" && host.lastSeenAt == Self.date("2026-02-01T00:00:00Z"))
        #expect(try store.webhook(companyID: "co-1") == nil)
        #expect(try store.apiTokens(companyID: "co-1").isEmpty)
        // And the new columns work on the old rows.
        #expect(try store.setRole(engineerID: "en-1", role: .manager, actor: "cli").role == .manager)
        #expect(try store.setHostGroup(id: "ho-1", group: "Sales", actor: "cli").groupName == "Sales")
    }
}
