import Foundation
import RelayStore
import RelayTestSupport
import Testing

/// The usage history in SQLite: recording, restart recovery, retention purge that leaves
/// no trace in the files, legal holds and the audit log (DESIGN.md "Usage history").
@Suite struct UsageStoreTests {
    static func withStore<T>(_ body: (SQLStore, String) throws -> T) throws -> T {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("usage-store-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        return try body(try SQLStore(dataDirectory: directory), directory)
    }

    /// The tests that need no file of their own, on every backend.
    static func withStore<T>(_ backend: StoreBackend, _ body: (SQLStore, String) throws -> T) throws -> T {
        try backend.withStore { try body($0, "") }
    }

    @Test func schemaIsMigratedWithSecureDelete() throws {
        try Self.withStore { store, _ in
            let migrations = try store.appliedMigrations()
            let secureDelete = try store.secureDelete()
            #expect(
                migrations == [
                    "v1 accounts", "v2 usage", "v3 company policy", "v4 account keys", "v5 web sign-in", "v6 browser viewer", "v7 admin console",
                    "v8 usage console indexes", "v9 cluster",
                ])
            #expect(secureDelete == 1)
        }
    }

    @Test(arguments: StoreBackend.available) func recordsCheckpointsAndClosures(_ backend: StoreBackend) throws {
        try Self.withStore(backend) { store, _ in
            var open = StoreFixture.usageRecord("s1", company: "co-a", started: "2026-11-02T01:00:00Z", ended: nil)
            open.counters = .zero
            try store.write(UsageBatch(opened: [open]))
            let at = StoreFixture.milliseconds("2026-11-02T01:00:30Z")
            try store.write(
                UsageBatch(checkpoints: [
                    UsageCheckpoint(sessionID: "s1", counters: UsageCounters(bytesToViewer: 900, bytesToHost: 80, framesToViewer: 9, framesToHost: 8), at: at)
                ]))
            var stored = try #require(try store.usageRecord(id: "s1"))
            #expect(stored.endedAt == nil)
            #expect(stored.counters.bytesToViewer == 900)
            #expect(stored.checkpointedAt == at)
            let end = StoreFixture.milliseconds("2026-11-02T01:01:05.500Z")
            try store.write(
                UsageBatch(closed: [
                    UsageClosure(
                        sessionID: "s1", endedAt: end, counters: UsageCounters(bytesToViewer: 1000, bytesToHost: 90, framesToViewer: 10, framesToHost: 9),
                        reason: .idleTimeout)
                ]))
            // A late checkpoint or a second closure changes nothing.
            try store.write(
                UsageBatch(
                    checkpoints: [UsageCheckpoint(sessionID: "s1", counters: UsageCounters(bytesToViewer: 1), at: end + 1)],
                    closed: [UsageClosure(sessionID: "s1", endedAt: end + 5, counters: .zero, reason: .relayShutdown)]
                ))
            stored = try #require(try store.usageRecord(id: "s1"))
            #expect(stored.endedAt == end)
            #expect(stored.durationSeconds == 65)
            #expect(stored.endReason == .idleTimeout)
            #expect(stored.counters == UsageCounters(bytesToViewer: 1000, bytesToHost: 90, framesToViewer: 10, framesToHost: 9))
        }
    }

    @Test(arguments: StoreBackend.available) func openRecordsAreClosedAtTheirLastCheckpointOnRestart(_ backend: StoreBackend) throws {
        try Self.withStore(backend) { store, _ in
            let start = "2026-11-02T01:00:00Z"
            try store.write(
                UsageBatch(opened: [
                    StoreFixture.usageRecord("a", company: "co-a", started: start, ended: nil),
                    StoreFixture.usageRecord("b", company: "co-a", started: start, ended: nil),
                    StoreFixture.usageRecord("c", company: "co-a", started: start, ended: "2026-11-02T01:10:00Z"),
                ]))
            let checkpoint = StoreFixture.milliseconds("2026-11-02T01:05:00Z")
            try store.write(UsageBatch(checkpoints: [UsageCheckpoint(sessionID: "a", counters: UsageCounters(bytesToViewer: 77), at: checkpoint)]))
            #expect(try store.closeInterruptedSessions(relayNode: nil, reason: .relayRestart, actor: "relay") == 2)
            let a = try #require(try store.usageRecord(id: "a"))
            #expect(a.endedAt == checkpoint)
            #expect(a.endReason == .relayRestart)
            #expect(a.durationSeconds == 300)
            #expect(a.counters.bytesToViewer == 77)
            // Never checkpointed: ended when it started.
            #expect(try store.usageRecord(id: "b")?.endedAt == StoreFixture.milliseconds(start))
            #expect(try store.usageRecord(id: "c")?.endReason == .normal)
            #expect(try store.closeInterruptedSessions(relayNode: nil, reason: .relayRestart, actor: "relay") == 0)
            let audit = try store.auditLog(limit: 1)
            #expect(audit.first?.action == .restartRecovery)
            #expect(audit.first?.detail == "sessions_closed=2 reason=relay_restart")
        }
    }

    @Test(arguments: StoreBackend.available) func purgeFollowsTheOneYearRuleAndLegalHolds(_ backend: StoreBackend) throws {
        try Self.withStore(backend) { store, _ in
            let (acme, _) = try store.addCompany(name: "ACME")
            let (globex, _) = try store.addCompany(name: "Globex")
            try store.write(
                UsageBatch(opened: [
                    StoreFixture.usageRecord("old-acme", company: acme.id, started: "2025-11-01T09:00:00Z", ended: "2025-11-01T10:00:00Z"),
                    StoreFixture.usageRecord("edge-acme", company: acme.id, started: "2025-11-01T09:00:00Z", ended: "2025-11-02T10:00:00.001Z"),
                    StoreFixture.usageRecord("old-globex", company: globex.id, started: "2025-10-01T09:00:00Z", ended: "2025-10-01T10:00:00Z"),
                    StoreFixture.usageRecord("open-globex", company: globex.id, started: "2024-01-01T09:00:00Z", ended: nil),
                    StoreFixture.usageRecord("new-globex", company: globex.id, started: "2026-10-01T09:00:00Z", ended: "2026-10-01T10:00:00Z"),
                ]))
            try store.record([
                AccessEvent(
                    at: Date(milliseconds: StoreFixture.milliseconds("2026-07-01T00:00:00Z")), event: .viewerToken, outcome: .accepted,
                    sourceAddress: "1.2.3.4:5", companyID: acme.id),
                AccessEvent(
                    at: Date(milliseconds: StoreFixture.milliseconds("2026-07-01T00:00:00Z")), event: .viewerToken, outcome: .rejected,
                    sourceAddress: "1.2.3.4:6"),
                AccessEvent(
                    at: Date(milliseconds: StoreFixture.milliseconds("2026-08-03T00:00:00Z")), event: .viewerToken, outcome: .rejected,
                    sourceAddress: "1.2.3.4:7"),
            ])
            _ = try store.placeHold(companyID: globex.id, reason: "case 2026-117", actor: "cli")
            #expect(storeErrorKind { try store.placeHold(companyID: globex.id, reason: "again", actor: "cli") } == .conflict)
            #expect(storeErrorKind { try store.placeHold(companyID: "co-nosuch", reason: "x", actor: "cli") } == .notFound)
            #expect(storeErrorKind { try store.placeHold(companyID: acme.id, reason: "  ", actor: "cli") } == .invalidInput)

            let now = Date(milliseconds: StoreFixture.milliseconds("2026-11-02T10:00:00Z"))
            let dry = try store.purge(policy: .default, now: now, dryRun: true, actor: "cli")
            #expect(dry.sessions == 1)
            #expect(dry.heldSessions == 1)
            #expect(dry.accessLogEntries == 2)
            #expect(try store.usageCount() == 5)

            let report = try store.purge(policy: .default, now: now, dryRun: false, actor: "cli")
            #expect(report.sessions == 1)
            #expect(report.accessLogEntries == 2)
            #expect(try store.usageRecord(id: "old-acme") == nil)
            // Exactly one year and a millisecond ago: still kept.
            #expect(try store.usageRecord(id: "edge-acme") != nil)
            #expect(try store.usageRecord(id: "old-globex") != nil)
            #expect(try store.usageRecord(id: "open-globex") != nil)
            #expect(try store.accessLog(limit: 10).count == 1)

            try store.releaseHold(companyID: globex.id, actor: "cli")
            #expect(storeErrorKind { try store.releaseHold(companyID: globex.id, actor: "cli") } == .notFound)
            let after = try store.purge(policy: .default, now: now.addingTimeInterval(0.001), dryRun: false, actor: "relay")
            #expect(after.sessions == 2)
            #expect(try store.usageRecord(id: "old-globex") == nil)
            #expect(try store.usageRecord(id: "edge-acme") == nil)
            #expect(try store.usageRecord(id: "open-globex") != nil)

            // The audit log: counts, never contents.
            let audit = try store.auditLog(limit: 20)
            let actions = audit.map(\.action)
            #expect(Array(actions.prefix(5)) == [.purge, .release, .purge, .purgeDryRun, .hold])
            #expect(audit[0].actor == "relay")
            #expect(audit[0].detail?.hasPrefix("sessions=2 access_log=0 held_sessions=0 held_access_log=0") == true)
            #expect(audit[2].detail?.hasPrefix("sessions=1 access_log=2 held_sessions=1 held_access_log=0") == true)
            #expect(audit[4].companyID == globex.id)
            for entry in audit {
                #expect(!(entry.detail ?? "").contains("case 2026-117"))
                #expect(!(entry.detail ?? "").contains("kim.minji"))
            }
            #expect(actions.contains(.companyAdd))
        }
    }

    // MARK: Purged rows leave no trace

    /// After a purge, the bytes of the database and its -wal and -shm files hold nothing
    /// of a purged row: not its host name, engineer login, viewer address or id, nor an
    /// access-log entry's source address.
    ///
    /// `secure_delete` zeroes a deleted row where it lies, but SQLite's page balancing
    /// leaves older copies of cells in the free space of the pages it rebuilds, in table
    /// and index pages; the purge's VACUUM removes them (SQLStore+Usage.swift, "Why a
    /// VACUUM"). Rows of varied sizes written in rounds, grown by checkpoints and closures
    /// in shuffled order (in the middle of full pages), and a purge of many batches make
    /// such copies: the test first checks that the batches alone leave them, so it cannot
    /// pass by luck of the layout.
    @Test func purgedRowsCannotBeRecoveredFromTheFiles() throws {
        try Self.withStore { store, directory in
            let (acme, _) = try store.addCompany(name: "ACME")
            let (globex, _) = try store.addCompany(name: "Globex")
            let stamp = UUID().uuidString.prefix(8)
            var random = SeededRandom(seed: 0x5EC0_DE1E)
            let day: Milliseconds = 86_400_000
            let oldDay = StoreFixture.milliseconds("2024-03-01T00:00:00Z")
            let newDay = StoreFixture.milliseconds("2026-10-01T00:00:00Z")
            var keptRows = 0
            var serial = 0
            for _ in 0..<6 {
                var opened: [UsageRecord] = []
                for _ in 0..<700 {
                    serial += 1
                    let old = random.int(0..<5) < 3
                    let tag = old ? "purged" : "kept"
                    if !old { keptRows += 1 }
                    let padding = String(repeating: "x", count: random.pick([0, 8, 40, 120, 300]))
                    opened.append(
                        UsageRecord(
                            id: "\(tag)-\(stamp)-\(serial)", companyID: random.oneIn(2) ? acme.id : globex.id,
                            engineerLogin: "\(tag).login.\(stamp).\(serial)" + String(repeating: "y", count: random.pick([0, 20, 60])), hostID: nil,
                            hostName: "\(tag)-host-\(stamp)-\(serial)-\(padding)", mode: .attended,
                            startedAt: (old ? oldDay : newDay) + Milliseconds(random.int(0..<Int(day))),
                            viewerAddress: "\(tag)-addr-\(stamp)-\(serial):40000", hostAddress: "203.0.113.9:50000", relayNode: "test-node"
                        ))
                }
                try store.write(UsageBatch(opened: opened))
                // Counters and closures make the rows grow where they lie, in no order.
                opened.shuffle(using: &random)
                try store.write(
                    UsageBatch(
                        checkpoints: opened.prefix(350).map {
                            UsageCheckpoint(sessionID: $0.id, counters: UsageCounters(bytesToViewer: Int64(random.int(1..<1 << 20))), at: $0.startedAt + 30_000)
                        }))
                opened.shuffle(using: &random)
                for chunk in stride(from: 0, to: opened.count, by: 100) {
                    try store.write(
                        UsageBatch(
                            closed: opened[chunk..<min(chunk + 100, opened.count)].map {
                                UsageClosure(
                                    sessionID: $0.id, endedAt: $0.startedAt + 3_600_000,
                                    counters: UsageCounters(bytesToViewer: Int64(random.int(1..<1 << 40)), bytesToHost: Int64(random.int(1..<1 << 30))),
                                    reason: .normal)
                            }))
                }
            }
            // Access-log entries: three months are kept, so July's go and October's stay.
            let july = Date(milliseconds: StoreFixture.milliseconds("2026-07-01T00:00:00Z"))
            let october = Date(milliseconds: StoreFixture.milliseconds("2026-10-20T00:00:00Z"))
            try store.record(
                (0..<600).map { index in
                    let old = index % 3 != 0
                    return AccessEvent(
                        at: old ? july : october, event: .engineerKey, outcome: .accepted,
                        sourceAddress: "\(old ? "purged" : "kept")-source-\(stamp)-\(index):5000", companyID: acme.id)
                })
            try store.truncateWriteAheadLog()

            // The relay's steps (RetentionScheduler): the counts, the batches, the end.
            let now = Date(milliseconds: StoreFixture.milliseconds("2026-11-02T00:00:00Z"))
            var report = try store.purgeCounts(policy: .default, now: now).purging()
            var batch: PurgeBatchResult
            repeat {
                batch = try store.purgeBatch(policy: .default, now: now, limit: 500)
                report.add(batch)
            } while batch.hasMore
            #expect(report.sessions == serial - keptRows)
            #expect(report.accessLogEntries == 400)
            #expect(try store.hasPurgedRowsSinceVacuum())

            let purged = ["purged-host-\(stamp)", "purged.login.\(stamp)", "purged-addr-\(stamp)", "purged-\(stamp)-", "purged-source-\(stamp)"]
            // Without the VACUUM, copies of purged rows are still there, zeroed rows and a
            // truncated write-ahead log notwithstanding: host names and logins at least.
            try store.truncateWriteAheadLog()
            let before = StoreFiles(directory: directory)
            #expect(before.count(of: "purged-host-\(stamp)") > 0)
            #expect(before.count(of: "purged.login.\(stamp)") > 0)

            try store.finishPurge(report, actor: "cli")
            #expect(try !store.hasPurgedRowsSinceVacuum())
            let after = StoreFiles(directory: directory)
            // The scan finds what is there: every kept row's strings…
            #expect(after.count(of: "kept-host-\(stamp)") >= keptRows)
            #expect(after.count(of: "kept.login.\(stamp)") >= keptRows)
            #expect(after.count(of: "kept-source-\(stamp)") >= 200)
            // …and nothing of what was purged, not even the common prefixes.
            for prefix in purged {
                #expect(after.count(of: prefix) == 0, "\(prefix) is still in the files")
            }
            #expect(try store.usageCount() == keptRows)
        }
    }

    /// The layout that showed the copies first: migration v6's index on engineer logins
    /// moved the rows so that a purge left one host name in a live page.
    @Test func purgedRowsCannotBeRecoveredFromTheFilesInTheLayoutOfMigrationV6() throws {
        try Self.withStore { store, directory in
            let (company, _) = try store.addCompany(name: "ACME")
            let stamp = UUID().uuidString.prefix(8)
            var kept = 0
            var batch = UsageBatch()
            for index in 0..<3_000 {
                let old = index % 3 != 0
                if !old { kept += 1 }
                batch.opened.append(
                    StoreFixture.usageRecord(
                        "\(stamp)-\(index)", company: company.id, hostName: (old ? "PURGED" : "KEPT") + "-\(stamp)-\(index)-호스트",
                        started: old ? "2024-03-01T09:00:00Z" : "2026-10-01T09:00:00Z", ended: old ? "2024-03-01T10:00:00Z" : "2026-10-01T10:00:00Z"
                    ))
            }
            // Several transactions, so rows travel through the WAL and into the main file.
            for chunk in stride(from: 0, to: batch.opened.count, by: 500) {
                try store.write(UsageBatch(opened: Array(batch.opened[chunk..<min(chunk + 500, batch.opened.count)])))
            }
            try store.truncateWriteAheadLog()
            // Updates leave older page images behind too.
            try store.write(
                UsageBatch(opened: [StoreFixture.usageRecord("late", company: company.id, hostName: "late", started: "2026-10-02T09:00:00Z", ended: nil)]))

            let report = try store.purge(
                policy: .default, now: Date(milliseconds: StoreFixture.milliseconds("2026-11-02T00:00:00Z")), dryRun: false, actor: "cli")
            #expect(report.sessions == 2_000)
            let files = StoreFiles(directory: directory)
            #expect(files.count(of: "KEPT-\(stamp)") >= kept)
            #expect(files.count(of: "PURGED-\(stamp)") == 0)
        }
    }

    /// A VACUUM that did not happen (a crash, a full disk) is done by the next real purge,
    /// even one that finds nothing to delete; a dry run does none.
    @Test func theNextPurgeFinishesAVacuumThatDidNotHappen() throws {
        try Self.withStore { store, directory in
            let (company, _) = try store.addCompany(name: "ACME")
            try store.write(
                UsageBatch(
                    opened: (0..<400).map {
                        StoreFixture.usageRecord("old-\($0)", company: company.id, started: "2024-03-01T09:00:00Z", ended: "2024-03-01T10:00:00Z")
                    }))
            let now = Date(milliseconds: StoreFixture.milliseconds("2026-11-02T00:00:00Z"))
            #expect(try !store.hasPurgedRowsSinceVacuum())
            // The batches ran; the run stopped before its end.
            while try store.purgeBatch(policy: .default, now: now, limit: 150).hasMore {}
            #expect(try store.usageCount() == 0)
            #expect(try store.hasPurgedRowsSinceVacuum())
            try store.truncateWriteAheadLog()
            let database = directory + "/relay.sqlite"
            let size = try #require(try FileManager.default.attributesOfItem(atPath: database)[.size] as? Int)

            _ = try store.purge(policy: .default, now: now, dryRun: true, actor: "cli")
            #expect(try store.hasPurgedRowsSinceVacuum())
            let report = try store.purge(policy: .default, now: now, dryRun: false, actor: "cli")
            #expect(report.sessions == 0)
            #expect(try !store.hasPurgedRowsSinceVacuum())
            // The VACUUM dropped the pages the deleted rows had filled.
            let vacuumed = try #require(try FileManager.default.attributesOfItem(atPath: database)[.size] as? Int)
            #expect(vacuumed < size)
        }
    }

    @Test(arguments: StoreBackend.available) func exportPagesStayWithinTheCompanyAndRange(_ backend: StoreBackend) throws {
        try Self.withStore(backend) { store, _ in
            var batch = UsageBatch()
            for index in 0..<2_500 {
                let company = index % 2 == 0 ? "co-a" : "co-b"
                let start = StoreFixture.milliseconds("2026-11-01T00:00:00Z") + Int64(index / 10) * 1000  // ten per second: ties
                var record = StoreFixture.usageRecord(String(format: "%05d", index), company: company, started: "2026-11-01T00:00:00Z", ended: nil)
                record.startedAt = start
                batch.opened.append(record)
            }
            try store.write(batch)
            let range = try ExportRange.parse(from: "2026-11-01T00:00:10Z", to: "2026-11-01T00:03:00Z", timeZone: .utc)
            var cursor: UsageCursor?
            var ids: [String] = []
            while true {
                let page = try store.usagePage(companyID: "co-b", range: range, after: cursor, limit: 7)
                #expect(page.allSatisfy { $0.companyID == "co-b" && $0.startedAt >= range.from && $0.startedAt < range.to })
                ids += page.map(\.id)
                guard page.count == 7, let last = page.last else { break }
                cursor = UsageCursor(after: last)
            }
            // Seconds 10..<180, 5 of company B each.
            #expect(ids.count == 170 * 5)
            #expect(Set(ids).count == ids.count)
        }
    }
}

/// The bytes of the store's files (the database, `-wal`, `-shm`), searched as bytes.
private struct StoreFiles {
    let bytes: Data

    init(directory: String) {
        var bytes = Data()
        for suffix in ["", "-wal", "-shm"] {
            if let data = FileManager.default.contents(atPath: directory + "/relay.sqlite" + suffix) { bytes.append(data) }
        }
        self.bytes = bytes
    }

    /// How many times `text` (UTF-8) occurs.
    func count(of text: String) -> Int {
        let needle = Data(text.utf8)
        var count = 0
        var from = self.bytes.startIndex
        while let found = self.bytes.range(of: needle, in: from..<self.bytes.endIndex) {
            count += 1
            from = found.upperBound
        }
        return count
    }
}
