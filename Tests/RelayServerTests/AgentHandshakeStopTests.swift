import Foundation
import RelayClient
import RelayTestSupport
import RelayWire
import Testing

@testable import RelayServer

/// Found by an outside review of issue 12: HostCommand.session (and ViewCommand.connect) call
/// `stop.sessionStarts()` before the end-to-end handshake, so a Ctrl-C during the handshake
/// goes to a session stream nobody reads yet. Against a peer that never handshakes (an old
/// relay-agent), the agent says "Stopping (SIGINT): ending the session…" and then does
/// nothing until the 30 s handshake deadline.
@Suite(.timeLimit(.minutes(1))) struct AgentHandshakeStopTests {
    @Test func ctrlCDuringTheHandshakeStopsTheHostPromptly() async throws {
        try await TestRelay.with { relay in
            let caFile = FileManager.default.temporaryDirectory.appendingPathComponent("relay-ca-\(UUID().uuidString).pem").path
            try relay.authority.certificatePEM.write(toFile: caFile, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(atPath: caFile) }
            let config = FileManager.default.temporaryDirectory.appendingPathComponent("relay-config-\(UUID().uuidString)").path
            defer { try? FileManager.default.removeItem(atPath: config) }

            try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { viewer in
                try await viewer.hello(role: .viewer)
                guard
                    case .codeIssued(let issued) = try await viewer.authenticate(viewer: ViewerAuth(token: relay.acme.engineerToken, request: .newSupportCode))
                else { throw TestFailure("no code issued") }
                let host = Process()
                host.executableURL = try HostSignalTests.agentExecutable()
                host.arguments = [
                    "host", "--relay", "localhost:\(relay.port)", "--ca", caFile, "--code", "\(issued.code)", "--accept", "full",
                    "--source", "synthetic:scrolling-text",
                ]
                let output = Pipe()
                host.standardOutput = output
                host.standardError = output
                host.standardInput = FileHandle.nullDevice
                host.environment = ProcessInfo.processInfo.environment.merging(["XDG_CONFIG_HOME": config]) { $1 }
                let collected = CollectedOutput(output)
                try host.run()
                defer { if host.isRunning { host.terminate() } }

                // Paired; this viewer plays an old relay-agent: it never sends KeyCommit.
                _ = try await viewer.waitForPairing()
                try await Task.sleep(for: .seconds(1))  // the host is in the handshake now
                let signalled = ContinuousClock.now
                kill(host.processIdentifier, SIGINT)
                let stopped = await eventually(within: .seconds(5)) { !host.isRunning }
                let exitedAt: String
                if stopped {
                    exitedAt = "within 5 s"
                } else {
                    let late = await eventually(within: .seconds(35)) { !host.isRunning }
                    exitedAt = late ? "only after \(ContinuousClock.now - signalled) (the handshake deadline)" : "not within 40 s"
                }
                #expect(stopped, "the host did not stop within 5 s of Ctrl-C during the handshake; it exited \(exitedAt): \(collected.text)")
            }
        }
    }
}
