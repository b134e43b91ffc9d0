import Foundation
import RelayStore
import Testing

@testable import RelayServer

/// The admin API's one decision table (issue 14 item 1), in memory: what each role and
/// token scope may do, which tabs the console shows, and whose sessions each sees.
@Suite struct AdminPolicyTests {
    typealias Permission = AdminPolicy.Permission

    static func policy(_ role: AccountRole) -> AdminPolicy { AdminPolicy(caller: .person(role)) }
    static func policy(_ scope: TokenScope) -> AdminPolicy { AdminPolicy(caller: .token(scope)) }

    @Test func anAdminDoesEverythingOfTheCompanyButNothingOfTheRelay() {
        let admin = Self.policy(AccountRole.admin)
        for permission in Permission.allCases {
            #expect(admin.allows(permission) == (permission != .readRelay), "\(permission)")
        }
        #expect(admin.sections == ["usage", "hosts", "engineers", "retention", "audit", "tokens", "alerts"])
    }

    @Test func aManagerReadsTheirScopeAndChangesNothing() {
        let manager = Self.policy(AccountRole.manager)
        #expect(manager.permissions == [.readUsage, .readHosts, .readEngineers])
        #expect(manager.sections == ["usage", "hosts", "engineers"])
    }

    @Test func anEngineerSeesTheirOwnUsageOnly() {
        let engineer = Self.policy(AccountRole.engineer)
        #expect(engineer.permissions == [.readUsage])
        #expect(engineer.sections == ["usage"])
    }

    @Test func anOperatorSeesTheRelayAndNoCompanyContent() {
        let relayOperator = Self.policy(AccountRole.operator)
        #expect(relayOperator.permissions == [.readRelay])
        #expect(relayOperator.sections == ["relay"])
    }

    @Test func anUnknownRoleMayDoNothing() {
        #expect(Self.policy(AccountRole(rawValue: "superuser")).permissions.isEmpty)
        #expect(Self.policy(AccountRole(rawValue: "superuser")).sections.isEmpty)
    }

    @Test func anExportTokenOnlyReads() {
        let token = Self.policy(TokenScope.export)
        #expect(token.permissions == [.readUsage, .readLogs])
    }

    @Test func anAdminTokenCannotMakeTokensNorSeeTheRelay() {
        let token = Self.policy(TokenScope.admin)
        #expect(!token.allows(.manageTokens))
        #expect(!token.allows(.readRelay))
        #expect(token.allows(.manageEngineers) && token.allows(.manageHosts) && token.allows(.manageRetention))
    }

    @Test func usageScopes() {
        #expect(AdminPolicy.usageScope(caller: .person(.admin), login: "a", managedLogins: ["x"], groupHostIDs: ["h"]) == .company)
        #expect(AdminPolicy.usageScope(caller: .token(.export), login: "", managedLogins: [], groupHostIDs: []) == .company)
        #expect(
            AdminPolicy.usageScope(caller: .person(.manager), login: "m", managedLogins: ["x", "y"], groupHostIDs: ["h"])
                == .managed(engineerLogins: ["m", "x", "y"], hostIDs: ["h"]))
        #expect(AdminPolicy.usageScope(caller: .person(.engineer), login: "e", managedLogins: ["x"], groupHostIDs: ["h"]) == .engineer(login: "e"))
        // Anyone else who reaches a usage query sees at most their own sessions.
        #expect(AdminPolicy.usageScope(caller: .person(.operator), login: "o", managedLogins: [], groupHostIDs: []) == .engineer(login: "o"))
    }

    @Test func rolesParseAndRefuseUnknownNames() throws {
        #expect(try AccountRole(parsing: "Admin") == .admin)
        #expect(throws: StoreError.self) { try AccountRole(parsing: "root") }
        #expect(try TokenScope(parsing: "EXPORT") == .export)
        #expect(throws: StoreError.self) { try TokenScope(parsing: "write") }
    }

    @Test func queriesDecodeAsFormsSendThem() throws {
        let query = AdminQuery("from=2026-11-01&to=2026-11-30&tz=%2B09:00&engineer=kim+minji&host=&limit=20&tz=UTC")
        #expect(query["from"] == "2026-11-01")
        #expect(query["tz"] == "+09:00")
        #expect(query["engineer"] == "kim minji")
        #expect(query["host"] == nil)
        #expect(try query.limit(default: 50, maximum: 500) == 20)
        #expect(throws: WebFailure.self) { try AdminQuery("limit=0").limit(default: 50, maximum: 500) }
        #expect(throws: WebFailure.self) { try AdminQuery("limit=501").limit(default: 50, maximum: 500) }
        // An offset's plus sign survives in tz, from and to, even unencoded.
        #expect(AdminQuery("from=2026-11-01T09:00+09:00")["from"] == "2026-11-01T09:00+09:00")
    }

    @Test func usageCursorsRoundTripAndRefuseGarbage() throws {
        let cursor = try AdminAPI.cursor(parsing: "1764547200000:se-abc")
        #expect(cursor == UsageCursor(startedAt: 1_764_547_200_000, id: "se-abc"))
        #expect(throws: WebFailure.self) { try AdminAPI.cursor(parsing: "yesterday") }
        #expect(throws: WebFailure.self) { try AdminAPI.cursor(parsing: "12:" + String(repeating: "x", count: 65)) }
    }

    @Test func webhookTargetsAreHTTPSOrLoopback() throws {
        #expect(try WebhookTarget("https://hooks.example.com/relay?k=1", allowLoopback: false).path == "/relay?k=1")
        #expect(try WebhookTarget("http://127.0.0.1:9000/hook", allowLoopback: true).port == 9000)
        #expect(try WebhookTarget("https://hooks.example.com/a%20b/", allowLoopback: false).path == "/a%20b/")
        #expect(try WebhookTarget("https://10.0.0.5/hook", allowLoopback: false).isAddress)
        #expect(try !WebhookTarget("https://hooks.example.com/hook", allowLoopback: false).isAddress)
        #expect(throws: WebhookError.self) { try WebhookTarget("http://hooks.example.com/relay", allowLoopback: true) }
        // The relay machine itself only where the operator allows it.
        #expect(throws: WebhookError.self) { try WebhookTarget("http://127.0.0.1:9000/hook", allowLoopback: false) }
        #expect(throws: WebhookError.self) { try WebhookTarget("https://localhost/hook", allowLoopback: false) }
        #expect(throws: WebhookError.self) { try WebhookTarget("ftp://hooks.example.com/", allowLoopback: false) }
        #expect(throws: WebhookError.self) { try WebhookTarget("https://user:pw@hooks.example.com/", allowLoopback: false) }
        #expect(throws: WebhookError.self) { try WebhookTarget("not a url", allowLoopback: false) }
    }

    @Test func networksOfAddresses() {
        #expect(SecurityAlerts.network(of: "203.0.113.77") == "203.0.113.0/24")
        #expect(SecurityAlerts.network(of: "2001:db8:abcd:12::1") == "2001:db8:abcd::/48")
        #expect(SecurityAlerts.network(of: "::ffff:203.0.113.77") == "203.0.113.0/24")
    }

    @Test func webhookSignaturesAreHMACSHA256() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let signature = SecurityAlerts.signature(of: Array("what do ya want for nothing?".utf8).withUnsafeBytes { Data($0) }, secret: "Jefe")
        #expect(signature == "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }
}
