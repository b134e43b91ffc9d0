import Foundation
import RelayTestSupport
import Testing

@testable import RelayStore

/// What an operator reads when the relay cannot use its PostgreSQL database (outside test
/// 15, F8 to F10): a server that was not reached is told apart from one that answered and
/// refused, each message says what to do, and none is a dump of NIO's errors.
@Suite(.enabled(if: StoreBackend.available.contains(.postgres), "needs PostgreSQL (RELAY_TEST_POSTGRES)"))
struct PostgresConnectionMessageTests {
    static func server() throws -> PostgresTarget {
        guard let server = ProcessInfo.processInfo.environment["RELAY_TEST_POSTGRES"] else {
            throw TestFailure("RELAY_TEST_POSTGRES is not set; scripts/test.sh starts PostgreSQL and sets it")
        }
        return try PostgresTarget(url: server)
    }

    /// The error opening the store at `target` throws.
    static func refusal(_ target: PostgresTarget) throws -> StoreError {
        do {
            let store = try SQLStore(postgres: target.url)
            store.close()
        } catch let error as StoreError {
            return error
        }
        throw TestFailure("\(target) was opened, and it should not have been")
    }

    @Test func aServerWithoutTLSIsNamedAsSuchForSSLModeRequire() throws {
        var target = try Self.server()
        target.tls = .require
        let refused = try Self.refusal(target)
        #expect(refused.message.contains("does not offer TLS"), "\(refused)")
        #expect(refused.message.contains("enable ssl on the server") && refused.message.contains("sslmode=prefer or sslmode=disable"))
        #expect(!refused.message.contains("sslUnsupported") && !refused.message.contains("cannot reach"))
        // libpq's verify-full and verify-ca are taken, as require.
        for mode in ["verify-full", "verify-ca"] {
            #expect(try PostgresTarget(url: "postgres://relay@db.example/relay?sslmode=\(mode)").tls == .require)
        }
        let unknown = #expect(throws: StoreError.self) { try PostgresTarget(url: "postgres://relay@db.example/relay?sslmode=allow") }
        #expect(unknown?.message.contains("verify-full and verify-ca are taken as require") == true)
    }

    @Test func aServerThatAnsweredIsNotCalledUnreachable() throws {
        var target = try Self.server()
        target.database = "relay_test_no_such_database"
        let noDatabase = try Self.refusal(target)
        #expect(noDatabase.message.contains("has no database relay_test_no_such_database"), "\(noDatabase)")
        #expect(noDatabase.message.contains("createdb --owner \(target.user) relay_test_no_such_database"))
        #expect(noDatabase.message.contains("3D000") && !noDatabase.message.contains("cannot reach"))

        target = try Self.server()
        target.user = "relay_test_no_such_role"
        let noRole = try Self.refusal(target)
        #expect(noRole.message.contains("refused the login of the user relay_test_no_such_role"), "\(noRole)")
        #expect(noRole.message.contains("pg_hba.conf") && !noRole.message.contains("cannot reach"))
    }

    @Test func aServerThatWasNotReachedSaysWhyInAFewWords() throws {
        var target = try Self.server()
        target.host = "127.0.0.1"
        target.port = 1
        let refused = try Self.refusal(target)
        #expect(refused.message.contains("cannot reach the PostgreSQL server postgres://\(target.user)@127.0.0.1:1/"), "\(refused)")
        #expect(refused.message.contains("(Connection refused)"))
        #expect(!refused.message.contains("SingleConnectionFailure") && !refused.message.contains("errno"))
    }

    /// A user that may connect but does not own the database cannot make the relay's
    /// tables (PostgreSQL 15 gives the schema public to its owner only): the message says
    /// to make it the owner, as OPERATIONS.md §11 step 1 does.
    @Test func aUserThatDoesNotOwnTheDatabaseIsToldToOwnIt() throws {
        let server = try Self.server()
        let database = try SQLStore.makePostgresDatabase(server: server.url)
        defer { try? SQLStore.dropPostgresDatabase(server: server.url, url: database) }
        let role = "relay_test_weak_\(UUID().uuidString.prefix(8).lowercased())"
        let admin = PostgresDatabase(target: server)
        defer { admin.close() }
        try admin.withoutTransaction { try $0.execute("CREATE ROLE \(raw: role) LOGIN") }
        defer { _ = try? admin.withoutTransaction { try $0.execute("DROP ROLE IF EXISTS \(raw: role)") } }

        var weak = try PostgresTarget(url: database)
        weak.user = role
        let refused = try Self.refusal(weak)
        #expect(refused.message.contains("does not let the user \(role)"), "\(refused)")
        #expect(refused.message.contains("permission denied for schema public"))
        #expect(refused.message.contains("ALTER DATABASE \(weak.database) OWNER TO \(role)") && refused.message.contains("§11 step 1"))
        try SQLStore.dropPostgresDatabase(server: server.url, url: database)
    }

    /// `[::1]`: URLComponents keeps the brackets, and DNS was asked for them.
    @Test func anIPv6AddressInBracketsIsConnectedTo() throws {
        let parsed = try PostgresTarget(url: "postgres://relay:pw@[::1]:5432/relay")
        #expect(parsed.host == "::1")
        #expect(parsed.description == "postgres://relay@[::1]:5432/relay")
        #expect(try PostgresTarget(url: parsed.url).host == "::1")

        let server = try TestPostgresServer(settings: ["listen_addresses=127.0.0.1,::1"])
        let store = try SQLStore(postgres: "postgres://postgres@[::1]:\(server.port)/postgres?sslmode=disable")
        defer { store.close() }
        #expect(try store.companies().isEmpty)
        #expect(store.location == "postgres://postgres@[::1]:\(server.port)/postgres")
    }
}
