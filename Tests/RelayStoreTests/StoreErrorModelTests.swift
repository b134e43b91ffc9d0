import Crypto
import Foundation
import RelayStore
import RelayTestSupport
import Testing

/// The kind of the ``StoreError`` `body` throws; nil if it throws something else or nothing.
func storeErrorKind<T>(_ body: () throws -> T) -> StoreError.Kind? {
    do {
        _ = try body()
        return nil
    } catch let error as StoreError {
        return error.kind
    } catch {
        return nil
    }
}

/// The store's error kinds and the closed sets of its records (issue 11, item 5): every
/// throw site says what kind of failure it is, and the text columns hold exactly the
/// documented values while a value another version wrote is read, not refused.
@Suite struct StoreErrorModelTests {
    static func withStore<T>(_ body: (SQLStore, String) throws -> T) throws -> T {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("store-errors-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try SQLStore(dataDirectory: directory)
        return try body(store, store.location)
    }

    @Test func accountChangesSayWhatKindOfFailureTheyAre() throws {
        try Self.withStore { store, _ in
            let (acme, _) = try store.addCompany(name: "ACME")
            let (engineer, _) = try store.addEngineer(companyID: acme.id, login: "kim")
            #expect(storeErrorKind { try store.addEngineer(companyID: acme.id, login: "kim") } == .conflict)
            #expect(storeErrorKind { try store.addEngineer(companyID: "co-nosuch", login: "lee") } == .notFound)
            #expect(storeErrorKind { try store.addEngineer(companyID: acme.id, login: "  ") } == .invalidInput)
            #expect(storeErrorKind { try store.addCompany(name: String(repeating: "x", count: 201)) } == .invalidInput)
            #expect(storeErrorKind { try store.addCompany(name: "tab\u{7}bell") } == .invalidInput)
            #expect(storeErrorKind { try store.company(id: "co-nosuch") } == .notFound)
            #expect(storeErrorKind { try store.removeCompany(id: "co-nosuch") } == .notFound)
            #expect(storeErrorKind { try store.rotateCompanyToken(id: "co-nosuch") } == .notFound)
            #expect(storeErrorKind { try store.removeEngineer(id: "en-nosuch") } == .notFound)
            #expect(storeErrorKind { try store.setHostKey(id: "ho-nosuch", publicKey: Curve25519.Signing.PrivateKey().publicKey) } == .notFound)
            #expect(storeErrorKind { try store.setEngineerKey(id: "en-nosuch", publicKey: Curve25519.Signing.PrivateKey().publicKey) } == .notFound)
            #expect(storeErrorKind { try store.enrollHost(companyID: "co-nosuch", name: "pc") } == .notFound)
            try store.removeEngineer(id: engineer.id)
            // The message still says what to do.
            do {
                _ = try store.removeHost(id: "ho-nosuch")
                Issue.record("removing an unknown host succeeded")
            } catch let error as StoreError {
                #expect(error.description == "no host with id ho-nosuch; `relay-server host list` shows the ids")
            }
        }
    }

    /// SQLite's own refusals reach callers as store errors too, never as GRDB's types.
    @Test func aConstraintTheDatabaseEnforcesIsAConflict() throws {
        try Self.withStore { store, _ in
            let event = AccessEvent(id: 7, at: Date(), event: .viewerToken, outcome: .accepted, sourceAddress: "192.0.2.1")
            try store.record([event])
            #expect(storeErrorKind { try store.record([event]) } == .conflict)
            #expect(try store.accessLog(limit: 5).count == 1)
        }
    }

    @Test func aDatabaseThatCannotBeOpenedIsUnavailable() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("store-unavailable-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // A folder where the database file should be.
        try FileManager.default.createDirectory(atPath: directory + "/relay.sqlite", withIntermediateDirectories: true)
        #expect(storeErrorKind { try SQLStore(dataDirectory: directory) } == .unavailable)
    }

    @Test func everyKnownValueRoundTripsThroughItsText() {
        func check<V: StoredVocabulary>(_: V.Type) {
            #expect(Set(V.known.map(\.rawValue)).count == V.known.count, "\(V.self): two cases share a text")
            for value in V.known {
                #expect(V(rawValue: value.rawValue) == value)
                #expect(value.description == value.rawValue)
            }
        }
        check(UsageRecord.Mode.self)
        check(UsageRecord.EndReason.self)
        check(AccessEvent.Kind.self)
        check(AuditEntry.Action.self)
        // Texts of OPERATIONS.md "Columns", "Access log" and "Audit log".
        #expect(UsageRecord.Mode.known.map(\.rawValue) == ["attended", "unattended"])
        #expect(
            AccessEvent.Kind.known.map(\.rawValue) == [
                "viewer_token", "host_secret", "engineer_key", "host_key", "support_code", "admin_token",
                "web_password", "web_totp", "web_recovery_code", "web_signin_link", "web_session", "api_token",
            ])
        #expect(
            AuditEntry.Action.known.map(\.rawValue) == [
                "purge", "purge_dry_run", "export", "hold", "release", "company_add", "company_remove", "company_rotate", "engineer_add",
                "engineer_remove", "engineer_rotate", "host_enroll", "host_remove", "host_rotate", "restart_recovery", "company_policy",
                "engineer_set_key", "host_set_key", "engineer_set_password", "engineer_enrol_totp", "engineer_reset_totp", "engineer_signin_link",
                "engineer_recovery_code", "engineer_role", "engineer_manager", "engineer_groups", "engineer_disable", "engineer_enable",
                "host_rename", "host_group", "token_create", "token_revoke", "webhook_set", "store_migrate",
            ]
        )
        // An unknown text is kept, and equals its case if it names one.
        #expect(UsageRecord.EndReason(rawValue: "unknown_42") == .other("unknown_42"))
        #expect(UsageRecord.EndReason.other("normal") == .normal)
        #expect(Set([UsageRecord.EndReason.other("normal"), .normal]).count == 1)
    }

    static let sqlite3 = "/usr/bin/sqlite3"

    /// Runs SQL on the database file with the sqlite3 tool: a reader and writer independent of the store.
    static func sql(_ path: String, _ statement: String) throws -> String {
        let ran = try SpawnedProgram.run(path: Self.sqlite3, arguments: [path, statement], environment: ProcessInfo.processInfo.environment)
        #expect(ran.status == 0, "sqlite3 \(statement): \(String(decoding: ran.errors, as: UTF8.self))")
        return String(decoding: ran.output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: sqlite3)))
    func theColumnsHoldTheDocumentedText() throws {
        try Self.withStore { store, path in
            let (acme, _) = try store.addCompany(name: "ACME")
            try store.write(UsageBatch(opened: [Self.record("s1", mode: .unattended)]))
            try store.write(UsageBatch(closed: [UsageClosure(sessionID: "s1", endedAt: 2_000, counters: .zero, reason: .peerLeft)]))
            try store.record([AccessEvent(at: Date(), event: .supportCode, outcome: .rejected, sourceAddress: "192.0.2.1")])
            _ = try store.placeHold(companyID: acme.id, reason: "case 7", actor: "cli")
            #expect(try Self.sql(path, "SELECT mode || '|' || endReason FROM session") == "unattended|peer_left")
            #expect(try Self.sql(path, "SELECT event || '|' || outcome FROM access_log") == "support_code|rejected")
            #expect(try Self.sql(path, "SELECT group_concat(action, ',') FROM (SELECT action FROM audit_log ORDER BY id)") == "company_add,hold")
        }
    }

    /// Rows another version wrote, with values this one does not know, are read and
    /// exported as they are: an export must never fail on one odd row.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: sqlite3)))
    func valuesAnotherVersionWroteAreReadAsTheyAre() throws {
        try Self.withStore { store, path in
            try store.write(UsageBatch(opened: [Self.record("s1", mode: .attended)]))
            _ = try Self.sql(
                path,
                """
                UPDATE session SET mode = 'shared', endReason = 'unknown_42', endedAt = 2000, durationSeconds = 1 WHERE id = 's1';
                INSERT INTO access_log (at, event, outcome, sourceAddress) VALUES ('2026-11-01 00:00:00.000', 'pin_code', 'accepted', '192.0.2.1');
                INSERT INTO audit_log (at, actor, action) VALUES ('2026-11-01 00:00:00.000', 'cli', 'rekey');
                """)
            let record = try #require(try store.usageRecord(id: "s1"))
            #expect(record.mode == .other("shared"))
            #expect(record.endReason == .other("unknown_42"))
            #expect(try store.accessLog(limit: 1).first?.event == .other("pin_code"))
            #expect(try store.auditLog(limit: 1).first?.action == .other("rekey"))

            var encoder = try UsageExportEncoder(format: .csv)
            var output: [UInt8] = []
            encoder.encode(record, into: &output)
            #expect(String(decoding: output, as: UTF8.self).contains(",pc-1,shared,1970-01-01T00:00:01Z,1970-01-01T00:00:02Z,1,0,0,0,0,unknown_42,"))
        }
    }

    static func record(_ id: String, mode: UsageRecord.Mode) -> UsageRecord {
        UsageRecord(
            id: id, companyID: "co-1", engineerLogin: "kim", hostID: nil, hostName: "pc-1", mode: mode, startedAt: 1_000,
            viewerAddress: "192.0.2.1", hostAddress: "192.0.2.2", relayNode: "node-1"
        )
    }
}
