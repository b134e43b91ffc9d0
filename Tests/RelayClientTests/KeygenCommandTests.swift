import Foundation
import RelayClient
import RelayTestSupport
import RelayWire
import Testing

/// `relay-agent keygen`, the built executable, end to end: in a temporary config folder
/// given by XDG_CONFIG_HOME, with HOME pointing at a folder that must stay untouched.
@Suite struct KeygenCommandTests {
    /// The `relay-agent` executable built beside this test bundle (`swift build --build-tests`).
    static func agentExecutable() throws -> URL { try BuiltExecutable.url("relay-agent") }

    struct Run {
        var status: Int32
        var output: String
        var error: String
    }

    /// Runs `relay-agent keygen ARGUMENTS` with only PATH, HOME and XDG_CONFIG_HOME set.
    static func keygen(_ arguments: [String], folder: TemporaryFolder) throws -> Run {
        let ran = try SpawnedProgram.run(
            path: try Self.agentExecutable().path, arguments: ["keygen"] + arguments,
            environment: ["PATH": "/usr/bin:/bin", "HOME": folder.file("home"), "XDG_CONFIG_HOME": folder.file("config")])
        return Run(status: ran.status, output: String(decoding: ran.output, as: UTF8.self), error: String(decoding: ran.errors, as: UTF8.self))
    }

    /// The value after `label` on its line of `text`.
    static func field(_ label: String, in text: String) -> String? {
        text.split(separator: "\n").first { $0.hasPrefix(label) }.map { $0.dropFirst(label.count).trimmingCharacters(in: .whitespaces) }
    }

    @Test("keygen makes the engineer key (0600 in a 0700 folder), prints its public key and fingerprint, refuses to replace it; --show prints them again")
    func engineerKey() throws {
        let folder = try TemporaryFolder()
        let path = folder.file("config/supportrelay/engineer.key")
        let made = try Self.keygen([], folder: folder)
        #expect(made.status == 0, "\(made.error)")
        let key = try IdentityKeyFile.load(at: path).publicKey
        #expect(try FileModes.mode(path) == 0o600)
        #expect(try FileModes.mode(folder.file("config/supportrelay")) == 0o700)
        #expect(made.output.contains(path))
        #expect(Self.field("public key:", in: made.output) == KeyFingerprint.base64(key))
        #expect(Self.field("fingerprint:", in: made.output) == KeyFingerprint.of(key))
        // The private key is never printed.
        let secret = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")[1]
        #expect(!made.output.contains(secret) && !made.error.contains(secret))

        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        let again = try Self.keygen([], folder: folder)
        #expect(again.status != 0)
        for part in ["never replaces", KeyFingerprint.of(key), "relay-agent keygen --show", "rm \(path)"] {
            #expect(again.error.contains(part), "missing \(part): \(again.error)")
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)

        let shown = try Self.keygen(["--show"], folder: folder)
        #expect(shown.status == 0, "\(shown.error)")
        #expect(Self.field("fingerprint:", in: shown.output) == KeyFingerprint.of(key))
        #expect(Self.field("public key:", in: shown.output) == KeyFingerprint.base64(key))
        #expect(!FileManager.default.fileExists(atPath: folder.file("home")), "HOME was not touched")
    }

    @Test("keygen --host-id makes that host's key, --show needs an existing one, --key-file puts a key elsewhere")
    func hostKeyAndKeyFile() throws {
        let folder = try TemporaryFolder()
        let missing = try Self.keygen(["--show", "--host-id", "ho_1"], folder: folder)
        #expect(missing.status != 0)
        #expect(missing.error.contains("relay-agent keygen --host-id ho_1"))

        let made = try Self.keygen(["--host-id", "ho_1"], folder: folder)
        #expect(made.status == 0, "\(made.error)")
        let path = folder.file("config/supportrelay/host-ho_1.key")
        let key = try IdentityKeyFile.load(at: path).publicKey
        #expect(try FileModes.mode(path) == 0o600)
        #expect(Self.field("fingerprint:", in: made.output) == KeyFingerprint.of(key))
        #expect(made.output.contains("pin"))
        let refused = try Self.keygen(["--host-id", "ho_1"], folder: folder)
        #expect(refused.status != 0)
        #expect(refused.error.contains("--forget-host ho_1"), "says what replacing a host key does to viewers: \(refused.error)")
        let shown = try Self.keygen(["--show", "--host-id", "ho_1"], folder: folder)
        #expect(Self.field("fingerprint:", in: shown.output) == KeyFingerprint.of(key))

        let elsewhere = folder.file("elsewhere.key")
        let custom = try Self.keygen(["--key-file", elsewhere], folder: folder)
        #expect(custom.status == 0, "\(custom.error)")
        #expect(Self.field("fingerprint:", in: custom.output) == KeyFingerprint.of(try IdentityKeyFile.load(at: elsewhere).publicKey))
        // A key file others can read is refused with the fix.
        try FileModes.set(elsewhere, 0o644)
        let exposed = try Self.keygen(["--show", "--key-file", elsewhere], folder: folder)
        #expect(exposed.status != 0)
        #expect(exposed.error.contains("chmod 600 \(elsewhere)"))
    }

    @Test("keygen --forget-host ID --relay R removes only that pin from the config folder's known_hosts")
    func forgetHost() throws {
        let folder = try TemporaryFolder()
        let knownHosts = ConfigFolder(path: folder.file("config/supportrelay")).knownHosts
        let first = try IdentityKeyFile.create(at: folder.file("a.key")).publicKey
        let second = try IdentityKeyFile.create(at: folder.file("b.key")).publicKey
        try knownHosts.pin(relay: "relay.example.com:7443", hostID: "ho_1", key: first)
        try knownHosts.pin(relay: "relay.example.com:7443", hostID: "ho_2", key: second)

        let forgot = try Self.keygen(["--forget-host", "ho_1", "--relay", "relay.example.com"], folder: folder)
        #expect(forgot.status == 0, "\(forgot.error)")
        #expect(forgot.output.contains("Removed"))
        #expect(try knownHosts.check(relay: "relay.example.com:7443", hostID: "ho_1", key: first) == .unknown)
        #expect(try knownHosts.check(relay: "relay.example.com:7443", hostID: "ho_2", key: second) == .known)

        let nothing = try Self.keygen(["--forget-host", "ho_1", "--relay", "relay.example.com:7443"], folder: folder)
        #expect(nothing.status == 0)
        #expect(nothing.output.contains("nothing changed"))

        let noRelay = try Self.keygen(["--forget-host", "ho_1"], folder: folder)
        #expect(noRelay.status != 0)
        #expect(noRelay.error.contains("--relay HOST:PORT"))
        #expect(!FileManager.default.fileExists(atPath: folder.file("home")), "HOME was not touched")
    }

    @Test("keygen --help says what the keys are for, where they live and their modes")
    func help() throws {
        let folder = try TemporaryFolder()
        let help = try Self.keygen(["--help"], folder: folder)
        #expect(help.status == 0)
        let text = help.output.replacingOccurrences(of: "\n", with: " ").split(separator: " ").joined(separator: " ")
        for part in [
            "end to end", "pins the key", "known_hosts", "~/.config/supportrelay", "XDG_CONFIG_HOME", "0600", "0700", "--forget-host", "never replaces",
        ] {
            #expect(text.contains(part), "missing \(part)")
        }
    }
}
