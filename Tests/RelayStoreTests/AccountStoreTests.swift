import Foundation
import RelayStore
import Testing

/// Accounts in SQLite: what authentication returns about an engineer.
@Suite struct AccountStoreTests {
    static func withStore<T>(_ body: (SQLiteStore) throws -> T) throws -> T {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("account-store-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        return try body(try SQLiteStore(dataDirectory: directory))
    }

    /// The customer is shown the engineer's company as the relay verified it (issue 10 item 13).
    @Test func authenticatedEngineerCarriesTheCompanyName() throws {
        try Self.withStore { store in
            let (acme, _) = try store.addCompany(name: "Acme Support 주식회사")
            let (other, _) = try store.addCompany(name: "Other Co")
            let (added, token) = try store.addEngineer(companyID: acme.id, login: "kim.minji")
            _ = try store.addEngineer(companyID: other.id, login: "lee")
            #expect(added.companyName == "Acme Support 주식회사")

            let engineer = try #require(try store.authenticateEngineer(token: token))
            #expect(engineer.id == added.id)
            #expect(engineer.companyName == "Acme Support 주식회사")
            #expect(try store.authenticateEngineer(token: token + "x") == nil)

            let listed = try store.engineers(companyID: nil)
            #expect(Set(listed.map(\.companyName)) == ["Acme Support 주식회사", "Other Co"])
        }
    }
}
