import Foundation
import Testing

@testable import RelayAgent

/// Secrets come from a private file, standard input or the environment, never needing the
/// command line (issue 10, item 12).
@Suite struct SecretInputTests {
    static func sources(environment: [String: String] = [:], files: [String: (UInt16, String)] = [:], standardInput: String? = nil) -> SecretInput.Sources {
        SecretInput.Sources(
            environment: environment,
            readFile: { path in
                guard let file = files[path] else { throw SecretInputError("No such file or directory") }
                return (mode: file.0, contents: file.1)
            },
            readStandardInput: { standardInput }
        )
    }

    let token = SecretInput.engineerToken

    @Test("the flag wins and warns; then the file; then the environment")
    func resolutionOrder() throws {
        let all = Self.sources(environment: ["RELAY_TOKEN": "from-env"], files: ["/t": (0o600, "from-file\n")], standardInput: "from-stdin\n")
        let flag = try token.resolve(flagValue: "from-flag", file: nil, from: all)
        #expect(flag.value == "from-flag")
        #expect(flag.warning?.contains("ps") == true)
        #expect(flag.warning?.contains("--token-file") == true)
        #expect(try token.resolve(flagValue: nil, file: "/t", from: all) == .init(value: "from-file"))
        #expect(try token.resolve(flagValue: nil, file: "-", from: all) == .init(value: "from-stdin"))
        #expect(try token.resolve(flagValue: nil, file: nil, from: all) == .init(value: "from-env"))
        #expect(
            try SecretInput.hostSecret.resolve(flagValue: nil, file: nil, from: Self.sources(environment: ["RELAY_HOST_SECRET": " s3cret "]))
                == .init(value: "s3cret"))
        #expect(throws: SecretInputError.self) { try token.resolve(flagValue: "a", file: "/t", from: all) }
    }

    @Test("a file others can read is refused with the chmod that fixes it", arguments: [0o644, 0o640, 0o604, 0o660, 0o666, 0o610])
    func laxFileIsRefused(mode: UInt16) {
        let error = #expect(throws: SecretInputError.self) {
            try token.resolve(flagValue: nil, file: "/home/kim/relay token", from: Self.sources(files: ["/home/kim/relay token": (mode, "t")]))
        }
        #expect(error?.description.contains("chmod 600 '/home/kim/relay token'") == true, "\(error?.description ?? "")")
        #expect(error?.description.contains(String(mode, radix: 8)) == true)
    }

    @Test("owner-only modes are accepted", arguments: [0o600, 0o400, 0o700])
    func privateFileIsAccepted(mode: UInt16) throws {
        #expect(try token.resolve(flagValue: nil, file: "/t", from: Self.sources(files: ["/t": (mode, "t\n")])).value == "t")
    }

    @Test("missing, empty, multi-line and unreadable secrets say how to give one")
    func unusableSecrets() {
        let none = #expect(throws: SecretInputError.self) { try token.resolve(flagValue: nil, file: nil, from: Self.sources()) }
        #expect(none?.description.contains("RELAY_TOKEN") == true)
        #expect(throws: SecretInputError.self) { try token.resolve(flagValue: nil, file: "/e", from: Self.sources(files: ["/e": (0o600, "\n")])) }
        #expect(throws: SecretInputError.self) { try token.resolve(flagValue: nil, file: "/m", from: Self.sources(files: ["/m": (0o600, "a\nb\n")])) }
        #expect(throws: SecretInputError.self) { try token.resolve(flagValue: nil, file: "/missing", from: Self.sources()) }
        #expect(throws: SecretInputError.self) { try token.resolve(flagValue: nil, file: "-", from: Self.sources(standardInput: "")) }
        // An empty variable counts as not set.
        #expect(!token.isGiven(flagValue: nil, file: nil, environment: ["RELAY_TOKEN": ""]))
        #expect(token.isGiven(flagValue: nil, file: nil, environment: ["RELAY_TOKEN": "x"]))
    }

    @Test("the real file system: a 0644 file is refused, a 0600 file is read")
    func realFiles() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("relay-secret-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try "tok-123\n".write(toFile: path, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: path)
        #expect(throws: SecretInputError.self) { try token.resolve(flagValue: nil, file: path, from: .system) }
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
        #expect(try token.resolve(flagValue: nil, file: path, from: .system).value == "tok-123")
    }
}
