import Foundation
import RelaySignIn
import RelayStore
import RelayTestSupport
import Testing

/// `relay-server engineer add`, `engineer signin-link` and `engineer reset-totp`: the
/// one-time sign-in links for the browser (issue 13 item 2), run as the built program.
@Suite struct SignInCommandTests {
    /// Runs `relay-server ARGUMENTS --data DIR` (with `--json` unless `json` is false);
    /// returns its exit status, standard output and standard error.
    static func run(_ arguments: [String], data directory: String, json: Bool = true) throws -> (status: Int32, output: String, errors: String) {
        try BuiltExecutable.run("relay-server", arguments + (json ? ["--json"] : []) + ["--data", directory])
    }

    static func object(_ arguments: [String], data directory: String) throws -> [String: Any] {
        let (status, output, errors) = try Self.run(arguments, data: directory)
        guard status == 0, let object = try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any] else {
            throw TestFailure("relay-server \(arguments.joined(separator: " ")) failed (\(status)): \(errors)")
        }
        return object
    }

    static func withData<T>(_ body: (String, String) throws -> T) throws -> T {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("signin-cli-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let company = try #require(try Self.object(["company", "add", "Acme"], data: directory)["id"] as? String)
        return try body(directory, company)
    }

    static func newKey() -> String { Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString() }

    /// The token in a printed link, as the browser would post it.
    static func token(_ link: String) throws -> SignInSecret {
        let fragment = try #require(link.split(separator: "#").last.map(String.init))
        return try #require(SignInSecret(received: fragment))
    }

    @Test func engineerAddPrintsALinkWhoseDigestIsStored() throws {
        try Self.withData { directory, company in
            let added = try Self.object(["engineer", "add", "--company", company, "kim", "--public-key", Self.newKey()], data: directory)
            let id = try #require(added["id"] as? String)
            #expect(added["login_method"] as? String == "key")
            // `engineer add` prints the first link; a browser-only engineer needs no key.
            let first = try Self.token(try #require(added["signin_link"] as? String))
            let browserOnly = try Self.object(["engineer", "add", "--company", company, "lee"], data: directory)
            #expect(browserOnly["login_method"] as? String == "none" && browserOnly["signin_link"] is String)
            let issued = try Self.object(["engineer", "signin-link", id], data: directory)
            let link = try #require(issued["signin_link"] as? String)
            #expect(link.hasPrefix("https://localhost:7443/signin#"))
            let expires = try #require(issued["signin_link_expires_at"] as? String)
            let expiry = try #require(try? Date(expires, strategy: .iso8601))
            #expect(abs(expiry.timeIntervalSinceNow - 86_400) < 120)

            let store = try SQLStore(dataDirectory: directory)
            let token = try Self.token(link)
            // The audit log names the link's expiry, never its token.
            let audit = try store.auditLog(limit: 10)
            #expect(audit.contains { $0.action == .engineerSignInLink && $0.subject == id })
            #expect(!audit.contains { ($0.detail ?? "").contains(token.value) })
            // The newer link replaced the one `engineer add` printed.
            #expect(try store.useSignInLink(digest: first.digest) == nil)
            let used = try #require(try store.useSignInLink(digest: token.digest))
            #expect(used.engineerID == id)
            #expect(try store.useSignInLink(digest: token.digest) == nil)
        }
    }

    @Test func aNewLinkReplacesTheOldOneAndTakesTheWebAddress() throws {
        try Self.withData { directory, company in
            let added = try Self.object(["engineer", "add", "--company", company, "kim", "--public-key", Self.newKey()], data: directory)
            let id = try #require(added["id"] as? String)
            let first = try Self.token(try #require(try Self.object(["engineer", "signin-link", id], data: directory)["signin_link"] as? String))
            let again = try Self.object(["engineer", "signin-link", id, "--web-url", "https://relay.example.com/"], data: directory)
            let link = try #require(again["signin_link"] as? String)
            #expect(link.hasPrefix("https://relay.example.com/signin#"))
            #expect(again["id"] as? String == id)
            let store = try SQLStore(dataDirectory: directory)
            #expect(try store.useSignInLink(digest: first.digest) == nil)
            #expect(try store.useSignInLink(digest: try Self.token(link).digest)?.engineerID == id)

            // The config file's listen address names the link's host and port.
            let config = URL(fileURLWithPath: directory).appendingPathComponent("relay.json")
            try Data(#"{"listen": "relay.internal:8443"}"#.utf8).write(to: config)
            let configured = try Self.object(["engineer", "signin-link", id, "--config", config.path], data: directory)
            #expect((configured["signin_link"] as? String)?.hasPrefix("https://relay.internal:8443/signin#") == true)

            let plain = try Self.run(["engineer", "signin-link", id, "--web-url", "http://relay.example.com"], data: directory, json: false)
            #expect(plain.status != 0)
            #expect(plain.errors.contains("--web-url must be https://HOST"))
            let unknown = try Self.run(["engineer", "signin-link", "en-missing"], data: directory, json: false)
            #expect(unknown.status != 0)
            #expect(unknown.errors.contains("no engineer with id en-missing"))
        }
    }

    @Test func resetTOTPRemovesTheEnrolment() throws {
        try Self.withData { directory, company in
            let added = try Self.object(["engineer", "add", "--company", company, "kim", "--public-key", Self.newKey()], data: directory)
            let id = try #require(added["id"] as? String)
            do {
                let store = try SQLStore(dataDirectory: directory)
                try store.enrolTwoFactor(
                    engineerID: id, secret: TwoFactor.makeSecret().secret, acceptedStep: 1, recoveryCodeDigests: [Data(repeating: 1, count: 32)],
                    actor: "web")
            }
            let listed = try #require((try Self.object(["engineer", "list"], data: directory)["engineers"] as? [[String: Any]])?.first)
            #expect(listed["web_totp"] as? Bool == true && listed["web_password"] as? Bool == false && listed["recovery_codes_left"] as? Int == 1)
            #expect(listed["totp_secret"] == nil && listed["totpSecret"] == nil)
            let reset = try Self.object(["engineer", "reset-totp", id], data: directory)
            #expect(reset["totp_reset"] as? Bool == true)
            let credentials = try SQLStore(dataDirectory: directory).webCredentials(engineerID: id)
            #expect(credentials.totpSecret == nil && credentials.recoveryCodesLeft == 0)
            let resetText = try Self.run(["engineer", "reset-totp", id], data: directory, json: false)
            #expect(resetText.status == 0 && resetText.output.contains("enrols a new authenticator app"))
            let after = try #require((try Self.object(["engineer", "list"], data: directory)["engineers"] as? [[String: Any]])?.first)
            #expect(after["web_totp"] as? Bool == false && after["recovery_codes_left"] as? Int == 0)
        }
    }
}
