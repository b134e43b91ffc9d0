import Foundation
import RelayStore
import RelayTestSupport
import Testing

/// Accounts in SQLite: what authentication returns about an engineer.
@Suite struct AccountStoreTests {
    static func withStore<T>(_ backend: StoreBackend, _ body: (SQLStore) throws -> T) throws -> T {
        try backend.withStore(body)
    }

    /// The customer is shown the engineer's company as the relay verified it (issue 10 item 13).
    @Test(arguments: StoreBackend.available) func authenticatedEngineerCarriesTheCompanyName(_ backend: StoreBackend) throws {
        try Self.withStore(backend) { store in
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

    /// A company's security-code policy: off by default, set for one company only, read
    /// with the engineer who logs in, and audited.
    @Test(arguments: StoreBackend.available) func theSecurityCodePolicyIsPerCompanyAndAudited(_ backend: StoreBackend) throws {
        try Self.withStore(backend) { store in
            let (acme, _) = try store.addCompany(name: "Acme")
            let (other, _) = try store.addCompany(name: "Other")
            let (_, kim) = try store.addEngineer(companyID: acme.id, login: "kim")
            let (_, lee) = try store.addEngineer(companyID: other.id, login: "lee")
            #expect(try store.authenticateEngineer(token: kim)?.confirmSecurityCode == false)
            try store.setConfirmSecurityCode(companyID: acme.id, required: true, actor: "cli")
            #expect(try store.company(id: acme.id).confirmSecurityCode)
            #expect(try store.authenticateEngineer(token: kim)?.confirmSecurityCode == true)
            #expect(try store.authenticateEngineer(token: lee)?.confirmSecurityCode == false)
            let entry = try #require(try store.auditLog(limit: 1).first)
            #expect(entry.action == .companyPolicy && entry.companyID == acme.id && entry.detail == "confirm_security_code=true")
            #expect(throws: StoreError.self) { try store.setConfirmSecurityCode(companyID: "co-missing", required: true, actor: "cli") }
        }
    }
}
