public import Foundation
public import RelayStore

/// Usage-history records and times that the store's tests and the relay's tests both
/// build (RelayStoreTests, and RelayServerTests for the recorder and restart recovery).
public enum StoreFixture {
    /// Milliseconds since 1970 UTC of an ISO 8601 time with an offset, with or without
    /// fractional seconds: `"2026-11-02T01:00:00Z"`, `"2026-11-01T00:00:00+09:00"`.
    public static func milliseconds(_ text: String) -> Milliseconds {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return date.milliseconds }
        formatter.formatOptions = [.withInternetDateTime]
        guard let date = formatter.date(from: text) else { preconditionFailure("not an ISO 8601 time: \(text)") }
        return date.milliseconds
    }

    /// An attended session of engineer `kim.minji` at `company` that started at `started`
    /// and ended at `ended` (nil: still open, as the relay writes it at pairing), with
    /// small non-zero counters.
    public static func usageRecord(
        _ id: String, company: String, hostName: String = "PC", started: String, ended: String?, node: String = "test-node"
    ) -> UsageRecord {
        UsageRecord(
            id: id, companyID: company, engineerLogin: "kim.minji", hostID: nil, hostName: hostName, mode: .attended,
            startedAt: Self.milliseconds(started), endedAt: ended.map(Self.milliseconds),
            counters: UsageCounters(bytesToViewer: 10, bytesToHost: 5, framesToViewer: 2, framesToHost: 1),
            endReason: ended == nil ? nil : .normal, viewerAddress: "127.0.0.1:1000", hostAddress: "127.0.0.1:2000", relayNode: node
        )
    }
}

/// The databases a store test runs on: SQLite always, and PostgreSQL at the server
/// `RELAY_TEST_POSTGRES` names (`postgres://postgres@127.0.0.1:PORT/postgres`), which
/// scripts/test.sh starts. Under CI (`CI=true`) PostgreSQL is never left out: without the
/// variable its tests fail and say why.
public enum StoreBackend: String, CaseIterable, Sendable, CustomStringConvertible {
    case sqlite
    case postgres

    public var description: String { self.rawValue }

    /// The backends of this run.
    public static var available: [StoreBackend] {
        let environment = ProcessInfo.processInfo.environment
        return environment["RELAY_TEST_POSTGRES"] != nil || environment["CI"] == "true" ? [.sqlite, .postgres] : [.sqlite]
    }

    /// A new, empty store on this backend for `body`: an SQLite file in a new folder, or a
    /// new PostgreSQL database, dropped afterwards.
    public func withStore<T>(now: @escaping @Sendable () -> Date = { Date() }, _ body: (SQLStore) throws -> T) throws -> T {
        switch self {
        case .sqlite:
            let directory = NSTemporaryDirectory() + "relay-store-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: directory) }
            return try body(try SQLStore(dataDirectory: directory, now: now))
        case .postgres:
            guard let server = ProcessInfo.processInfo.environment["RELAY_TEST_POSTGRES"] else {
                throw TestFailure("RELAY_TEST_POSTGRES is not set, so the PostgreSQL store cannot be tested; scripts/test.sh starts a server and sets it")
            }
            let database = try SQLStore.makePostgresDatabase(server: server)
            defer { try? SQLStore.dropPostgresDatabase(server: server, url: database) }
            let store = try SQLStore(postgres: database, now: now)
            defer { store.close() }
            return try body(store)
        }
    }
}
