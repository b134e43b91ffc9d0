import Crypto
import Foundation
import RelayClient
import RelayStore
import RelayTestSupport
import RelayWire
import Testing

@testable import RelayServer

/// The real `relay-agent host` and `relay-agent view` through a real relay, as users run
/// them (docs/SECURITY.md): both log in with their keys; the viewer pins an enrolled host's
/// key on first use and refuses it once it changed; a host with --engineer-keys lets in
/// only listed engineers.
@Suite(.timeLimit(.minutes(2))) struct AgentEndToEndEncryptionTests {
    /// A folder for one agent's keys (its XDG_CONFIG_HOME), removed afterwards.
    final class Folder: Sendable {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("relay-agent-config-\(UUID().uuidString)").path
        deinit { try? FileManager.default.removeItem(atPath: self.path) }
    }

    /// Makes the engineer key in `folder` (as `relay-agent keygen` would) and adds its
    /// engineer to ACME with it (as `relay-server engineer add --public-key` would).
    @discardableResult
    static func engineer(_ relay: TestRelay, in folder: Folder, login: String) throws -> Curve25519.Signing.PublicKey {
        let config = ConfigFolder(path: "\(folder.path)/\(ConfigFolder.name)")
        try config.create()
        let key = try config.engineerKey().key.publicKey
        _ = try relay.store.addEngineer(companyID: relay.acme.id, login: login, publicKey: key, actor: "test")
        return key
    }

    /// Makes ACME's host key in `folder` (`relay-agent keygen --host-id`) and sets it on the
    /// relay (`relay-server host set-key`).
    static func hostKey(_ relay: TestRelay, in folder: Folder) throws {
        let config = ConfigFolder(path: "\(folder.path)/\(ConfigFolder.name)")
        try config.create()
        _ = try relay.store.setHostKey(id: relay.acme.hostID, publicKey: try config.hostKey(hostID: relay.acme.hostID).key.publicKey, actor: "test")
    }

    /// Starts `relay-agent` with `arguments`, its config folder and secrets in the environment.
    static func agent(_ arguments: [String], config: Folder, environment: [String: String]) throws -> (Process, () -> String) {
        let (process, output, _) = try Self.agentWithInput(arguments, config: config, environment: environment, input: false)
        return (process, output)
    }

    /// ``agent(_:config:environment:)`` with, when `input`, a pipe to write the agent's
    /// standard input (nil otherwise: standard input is empty).
    static func agentWithInput(
        _ arguments: [String], config: Folder, environment: [String: String], input: Bool = true
    ) throws -> (Process, () -> String, FileHandle?) {
        let process = Process()
        process.executableURL = try HostSignalTests.agentExecutable()
        process.arguments = arguments
        var variables = ProcessInfo.processInfo.environment
        variables["XDG_CONFIG_HOME"] = config.path
        variables.merge(environment) { $1 }
        process.environment = variables
        let output = Pipe()
        let pipe = input ? Pipe() : nil
        process.standardOutput = output
        process.standardError = output
        process.standardInput = pipe ?? FileHandle.nullDevice
        let collected = CollectedOutput(output)
        try process.run()
        return (process, { collected.text }, pipe?.fileHandleForWriting)
    }

    static func waitForExit(_ process: Process, _ output: () -> String) async throws {
        guard await eventually(within: .seconds(40), { !process.isRunning }) else {
            process.terminate()
            throw TestFailure("relay-agent did not exit: \(output())")
        }
        // The pipe's last bytes may arrive just after the process ended: wait until nothing
        // more has come for 200 ms (at most 5 s).
        var seen = -1
        for _ in 0..<25 where output().utf8.count != seen {
            seen = output().utf8.count
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    /// Runs an enrolled host for one session and a viewer that connects to it; returns
    /// what each printed and the viewer's exit status.
    static func session(
        _ relay: TestRelay, caFile: String, host hostConfig: Folder, viewer viewerConfig: Folder, hostArguments: [String] = ["--any-engineer"]
    ) async throws -> (host: String, viewer: String, viewerStatus: Int32) {
        let trust = ["--relay", "localhost:\(relay.port)", "--ca", caFile]
        let (host, hostOutput) = try Self.agent(
            ["host"] + trust + ["--host-id", relay.acme.hostID, "--once", "--source", "synthetic:scrolling-text", "--fps", "10"] + hostArguments,
            config: hostConfig, environment: [:])
        defer { if host.isRunning { host.terminate() } }
        guard await eventually(within: .seconds(20), { hostOutput().contains("Registered") }) else {
            throw TestFailure("the host did not register: \(hostOutput())")
        }
        let (viewer, viewerOutput) = try Self.agent(
            ["view"] + trust + ["--host", relay.acme.hostID, "--duration", "2", "--name", "kim.minji"], config: viewerConfig, environment: [:])
        defer { if viewer.isRunning { viewer.terminate() } }
        try await Self.waitForExit(viewer, viewerOutput)
        try await Self.waitForExit(host, hostOutput)
        return (hostOutput(), viewerOutput(), viewer.terminationStatus)
    }

    static func withRelay(_ body: (TestRelay, String) async throws -> Void) async throws {
        try await TestRelay.with { relay in
            let caFile = FileManager.default.temporaryDirectory.appendingPathComponent("relay-ca-\(UUID().uuidString).pem").path
            try relay.authority.certificatePEM.write(toFile: caFile, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(atPath: caFile) }
            try await body(relay, caFile)
        }
    }

    @Test func theViewerPinsTheHostsKeyAndRefusesItOnceItChanged() async throws {
        try await Self.withRelay { relay, caFile in
            let hostConfig = Folder()
            let viewerConfig = Folder()
            try Self.hostKey(relay, in: hostConfig)
            try Self.engineer(relay, in: viewerConfig, login: "kim.minji.key")
            let first = try await Self.session(relay, caFile: caFile, host: hostConfig, viewer: viewerConfig)
            #expect(first.viewerStatus == 0, "\(first.viewer)")
            #expect(!first.viewer.contains("Warning") && !first.host.contains("Warning"), "a key login warned: \(first.viewer)\n\(first.host)")
            #expect(first.viewer.contains("pinned its key"), "\(first.viewer)")
            #expect(first.viewer.contains("Received"), "\(first.viewer)")
            #expect(first.host.contains("signed the name \"kim.minji\""), "\(first.host)")

            let second = try await Self.session(relay, caFile: caFile, host: hostConfig, viewer: viewerConfig)
            #expect(second.viewerStatus == 0 && second.viewer.contains("matches the one pinned"), "\(second.viewer)")

            // The host's key is replaced (re-installed, or someone else answers as it) and the
            // relay accepts the new one (its admin set it, or the relay is not honest).
            let keyFile = "\(hostConfig.path)/supportrelay/\(ConfigFolder.hostKeyFileName(hostID: relay.acme.hostID))"
            try FileManager.default.removeItem(atPath: keyFile)
            try Self.hostKey(relay, in: hostConfig)
            let third = try await Self.session(relay, caFile: caFile, host: hostConfig, viewer: viewerConfig)
            #expect(third.viewerStatus != 0, "\(third.viewer)")
            #expect(third.viewer.contains("has changed; the session was not started"), "\(third.viewer)")
            #expect(!third.viewer.contains("Received"), "the viewer saw the screen of a host whose key changed: \(third.viewer)")
        }
    }

    @Test func aHostWithEngineerKeysLetsInOnlyThoseEngineers() async throws {
        try await Self.withRelay { relay, caFile in
            let hostConfig = Folder()
            let listed = Folder()
            let stranger = Folder()
            try Self.hostKey(relay, in: hostConfig)
            // The listed engineer's key, as `relay-agent keygen` prints it; the relay knows both engineers.
            let (keygen, keygenOutput) = try Self.agent(["keygen"], config: listed, environment: [:])
            try await Self.waitForExit(keygen, keygenOutput)
            guard let key = keygenOutput().split(separator: "\n").first(where: { $0.hasPrefix("public key:") })?.split(separator: " ").last,
                let publicKey = PublicKeyText.parse(String(key))
            else {
                throw TestFailure("keygen printed no public key: \(keygenOutput())")
            }
            _ = try relay.store.addEngineer(companyID: relay.acme.id, login: "kim.minji.key", publicKey: publicKey, actor: "test")
            try Self.engineer(relay, in: stranger, login: "stranger")
            try FileManager.default.createDirectory(atPath: hostConfig.path, withIntermediateDirectories: true)
            let list = "\(hostConfig.path)/engineers"
            try "# the support team\ned25519 \(key) kim.minji\n".write(toFile: list, atomically: true, encoding: .utf8)

            let allowed = try await Self.session(relay, caFile: caFile, host: hostConfig, viewer: listed, hostArguments: ["--engineer-keys", list])
            #expect(allowed.viewerStatus == 0 && allowed.viewer.contains("Received"), "\(allowed.viewer)")

            let refused = try await Self.session(relay, caFile: caFile, host: hostConfig, viewer: stranger, hostArguments: ["--engineer-keys", list])
            #expect(refused.host.contains("Refused an engineer whose key"), "\(refused.host)")
            #expect(refused.viewer.contains("lets in only the engineers its administrator listed"), "\(refused.viewer)")
            #expect(!refused.viewer.contains("Screen "), "a refused engineer saw the screen: \(refused.viewer)")
        }
    }

    /// A host enrolled before key login runs with its secret; the admin sets the key the
    /// host printed; the relay ends the secret's registration, and the host comes back with
    /// its key by itself.
    @Test func aHostOnItsSecretMovesToItsKeyOnceTheAdminSetsIt() async throws {
        try await TestRelay.with({ $0.credentialCheckInterval = .milliseconds(200) }) { relay in
            let caFile = FileManager.default.temporaryDirectory.appendingPathComponent("relay-ca-\(UUID().uuidString).pem").path
            try relay.authority.certificatePEM.write(toFile: caFile, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(atPath: caFile) }
            let hostConfig = Folder()
            let trust = ["--relay", "localhost:\(relay.port)", "--ca", caFile]
            let (host, hostOutput) = try Self.agent(
                ["host"] + trust + ["--host-id", relay.acme.hostID, "--any-engineer", "--source", "synthetic:scrolling-text"], config: hostConfig,
                environment: ["RELAY_HOST_SECRET": relay.acme.hostSecret])
            defer { if host.isRunning { host.terminate() } }
            guard await eventually(within: .seconds(20), { hostOutput().contains("Registered") }) else {
                throw TestFailure("the host did not register with its secret: \(hostOutput())")
            }
            #expect(hostOutput().contains("Warning: logging in with the host secret"), "\(hostOutput())")
            // The admin runs the set-key line the host printed.
            guard let line = hostOutput().split(separator: "\n").first(where: { $0.contains("relay-server host set-key") }),
                let key = line.firstMatch(of: /--public-key ([A-Za-z0-9+\/=]{44})/).flatMap({ PublicKeyText.parse(String($0.output.1)) })
            else {
                throw TestFailure("the host printed no set-key line: \(hostOutput())")
            }
            _ = try relay.store.setHostKey(id: relay.acme.hostID, publicKey: key, actor: "test")
            let moved = await eventually(within: .seconds(30)) {
                hostOutput().contains("logging in with its key instead") && hostOutput().components(separatedBy: "Registered").count >= 3
            }
            #expect(moved, "the host did not come back with its key: \(hostOutput())")
            relay.node.relay.flushAccessLog()
            #expect(try relay.store.accessLog(limit: 50).contains { $0.event == .hostKey && $0.outcome == .accepted && $0.subject == relay.acme.hostID })
        }
    }

    /// A company that requires its engineers to confirm the security code: the viewer shows
    /// nothing until the engineer types the code the customer reads out, and ends the session
    /// when it differs.
    @Test(arguments: [true, false])
    func theCompanysPolicyMakesTheEngineerTypeTheCustomersCode(sameCode: Bool) async throws {
        try await Self.withRelay { relay, caFile in
            try relay.store.setConfirmSecurityCode(companyID: relay.acme.id, required: true, actor: "test")
            let trust = ["--relay", "localhost:\(relay.port)", "--ca", caFile]
            let (viewer, viewerOutput, viewerInput) = try Self.agentWithInput(
                ["view"] + trust + ["--new-code", "--duration", "2"], config: Folder(), environment: ["RELAY_TOKEN": relay.acme.engineerToken])
            defer { if viewer.isRunning { viewer.terminate() } }
            var code: Substring?
            _ = await eventually(within: .seconds(20)) {
                code = viewerOutput().firstMatch(of: /Support code: (\d{6})/)?.output.1
                return code != nil
            }
            guard let code else { throw TestFailure("no support code: \(viewerOutput())") }
            // This engineer still logs in with a token from before key login: it works, with a warning.
            #expect(viewerOutput().contains("Warning: logging in with a token"), "\(viewerOutput())")
            let (host, hostOutput) = try Self.agent(
                ["host"] + trust + ["--code", String(code), "--accept", "full", "--source", "synthetic:scrolling-text"], config: Folder(), environment: [:])
            defer { if host.isRunning { host.terminate() } }
            var customerSees: Substring?
            _ = await eventually(within: .seconds(20)) {
                customerSees = hostOutput().firstMatch(of: /Security code: (\d{3} \d{3})/)?.output.1
                return customerSees != nil && viewerOutput().contains("type it here")
            }
            guard let customerSees else { throw TestFailure("the host showed no security code: \(hostOutput())") }
            #expect(!viewerOutput().contains("Screen "), "the screen came before the code was confirmed: \(viewerOutput())")
            let typed = sameCode ? String(customerSees) : (customerSees == "000 000" ? "111 111" : "000 000")
            viewerInput?.write(Data("\(typed)\n".utf8))
            try await Self.waitForExit(viewer, viewerOutput)
            // The pipe's last bytes may arrive just after the process ended.
            _ = await eventually(within: .seconds(5)) { viewerOutput().contains(sameCode ? "Received" : "is not yours") }
            if sameCode {
                #expect(viewer.terminationStatus == 0, "\(viewerOutput())")
                #expect(viewerOutput().contains("The codes match") && viewerOutput().contains("Screen "), "\(viewerOutput())")
            } else {
                #expect(viewer.terminationStatus != 0, "\(viewerOutput())")
                #expect(viewerOutput().contains("is not yours"), "\(viewerOutput())")
                #expect(!viewerOutput().contains("Screen "), "\(viewerOutput())")
                #expect(await eventually(within: .seconds(20)) { !host.isRunning }, "the host went on: \(hostOutput())")
            }
        }
    }
}
