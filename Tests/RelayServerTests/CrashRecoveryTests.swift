import Foundation
import NIOCore
import NIOPosix
import RelayClient
import RelayStore
import RelayTestSupport
import RelayWire
import Synchronization
import Testing

@testable import RelayServer

/// `kill -9` of a real `relay-server serve` process during 20 active sessions loses no
/// session and at most one checkpoint of counters (DESIGN.md "Usage history").
@Suite struct CrashRecoveryTests {
    /// The `relay-server` executable built beside this test bundle.
    static func relayServerExecutable() throws -> URL { try BuiltExecutable.url("relay-server") }

    /// A running `relay-server serve`, with what its banner said.
    final class ServerProcess: @unchecked Sendable {
        let process = Process()
        let port: Int
        let fingerprint: String
        let banner: String

        init(executable: URL, dataDirectory: String, configFile: String) throws {
            self.process.executableURL = executable
            self.process.arguments = ["serve", "--data", dataDirectory, "--config", configFile, "--log-level", "error"]
            let output = Pipe()
            self.process.standardOutput = output
            self.process.standardError = FileHandle.nullDevice
            try self.process.run()
            var banner = ""
            let deadline = Date().addingTimeInterval(30)
            while !banner.contains("fingerprint:") || !banner.contains("\n", after: "fingerprint:") {
                let chunk = output.fileHandleForReading.availableData
                if chunk.isEmpty {
                    guard Date() < deadline, self.process.isRunning else { throw TestFailure("relay-server stopped before its banner: \(banner)") }
                    continue
                }
                banner += String(decoding: chunk, as: UTF8.self)
            }
            func value(after label: String) -> String? {
                banner.split(separator: "\n").first { $0.contains(label) }.map { String($0.split(separator: label)[1]).trimmingCharacters(in: .whitespaces) }
            }
            guard let relayLine = value(after: "relay:"), let portText = relayLine.split(separator: " ").first?.split(separator: ":").last,
                let port = Int(portText), let fingerprint = value(after: "fingerprint:")
            else { throw TestFailure("unexpected banner: \(banner)") }
            self.port = port
            self.fingerprint = fingerprint
            self.banner = banner
        }

        func kill(_ signal: Int32) {
            Foundation.kill(self.process.processIdentifier, signal)
            self.process.waitUntilExit()
        }
    }

    @Test(.timeLimit(.minutes(3))) func killedRelayLosesNoSessionAndAtMostOneCheckpoint() async throws {
        let executable = try Self.relayServerExecutable()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("relay-kill-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try SQLStore(dataDirectory: directory)
        let (company, _) = try store.addCompany(name: "ACME 코리아")
        let (_, token) = try store.addEngineer(companyID: company.id, login: "kim.minji")
        let configFile = directory + "/relay.json"
        try Data(
            """
            {"listen": "127.0.0.1:0", "admin_listen": "127.0.0.1:0", "node_name": "kill-test", "usage_checkpoint_seconds": 1, "event_loop_threads": 2,
             "maximum_unauthenticated_per_source": 1000, "support_codes_per_engineer": 20}
            """.utf8
        ).write(to: URL(fileURLWithPath: configFile))

        let server = try ServerProcess(executable: executable, dataDirectory: directory, configFile: configFile)
        let address = RelayAddress(host: "localhost", port: server.port)
        let trust = RelayTrust.fingerprint(server.fingerprint)
        let sessions = 20
        let payload = ByteBuffer(repeating: 0x42, count: 512)

        let progress = Progress(sessions: sessions)

        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<sessions {
                group.addTask {
                    do {
                        try await RelayConnection.withConnection(to: address, trust: trust) { viewer in
                            try await viewer.hello(role: .viewer)
                            guard case .codeIssued(let issued) = try await viewer.authenticate(viewer: ViewerAuth(token: token, request: .newSupportCode))
                            else {
                                throw TestFailure("no code")
                            }
                            try await withThrowingTaskGroup(of: Void.self) { pair in
                                pair.addTask {
                                    try await RelayConnection.withConnection(to: address, trust: trust) { host in
                                        try await host.hello(role: .host)
                                        guard case .paired = try await host.authenticate(host: .supportCode(issued.code)) else {
                                            throw TestFailure("not paired")
                                        }
                                        progress.paired.add(1, ordering: .relaxed)
                                        for _ in 0..<200 {
                                            try await host.send(.tileUpdate(TileUpdate(body: payload)))
                                            progress.sentBeforePause.withLock { $0[index] += 1 }
                                            progress.sentTotal.withLock { $0[index] += 1 }
                                        }
                                        while progress.phase.load(ordering: .relaxed) < 2 { try await Task.sleep(for: .milliseconds(10)) }
                                        // Keep sending until the relay is killed under us.
                                        while true {
                                            try await host.send(.tileUpdate(TileUpdate(body: payload)))
                                            progress.sentTotal.withLock { $0[index] += 1 }
                                            try await Task.sleep(for: .milliseconds(2))
                                        }
                                    }
                                }
                                _ = try await viewer.waitForPairing()
                                while try await viewer.receiveFrame() != nil {}
                                try await pair.waitForAll()
                            }
                        }
                    } catch {
                        // The relay was killed: every connection ends with an error. An
                        // error before that is a failure (it once left this test waiting
                        // for 20 pairings when the relay allowed an engineer 5 codes).
                        if progress.phase.load(ordering: .relaxed) < 2 {
                            progress.earlyFailure.withLock { $0 = $0 ?? "session \(index): \(error)" }
                        }
                    }
                }
            }
            group.addTask {
                // All paired and the first bursts sent, then a pause of more than one
                // checkpoint interval, so the first bursts are certainly checkpointed.
                while progress.paired.load(ordering: .relaxed) < sessions || progress.sentBeforePause.withLock({ $0.min()! }) < 200 {
                    if let failure = progress.earlyFailure.withLock({ $0 }) {
                        server.kill(SIGKILL)
                        throw TestFailure("a session failed before the relay was killed: \(failure)")
                    }
                    try await Task.sleep(for: .milliseconds(20))
                }
                progress.phase.store(1, ordering: .relaxed)
                try await Task.sleep(for: .milliseconds(2_500))
                progress.phase.store(2, ordering: .relaxed)
                try await Task.sleep(for: .milliseconds(2_300))
                server.kill(SIGKILL)
            }
            try await group.waitForAll()
        }
        #expect(server.process.terminationReason == .uncaughtSignal)

        // Restart: the relay closes the records the crash left open, then stops cleanly.
        let restarted = try ServerProcess(executable: executable, dataDirectory: directory, configFile: configFile)
        restarted.kill(SIGTERM)
        #expect(restarted.process.terminationStatus == 0)

        let records = try store.usagePage(companyID: company.id, range: ExportRange(from: 0, to: .max), after: nil, limit: 100)
        #expect(records.count == sessions)
        let before = progress.sentBeforePause.withLock { $0 }.reduce(0, +)
        let total = progress.sentTotal.withLock { $0 }.reduce(0, +)
        #expect(total > before)
        for record in records {
            #expect(record.endReason == .relayRestart)
            #expect(record.endedAt == record.checkpointedAt)
            #expect(record.relayNode == "kill-test")
            #expect(record.counters.framesToViewer >= 200)
            #expect(record.counters.bytesToViewer >= record.counters.framesToViewer * 512)
        }
        let recorded = records.reduce(0) { $0 + Int($1.counters.framesToViewer) }
        #expect(recorded >= before)
        #expect(recorded <= total)
        #expect(try store.auditLog(limit: 5).contains { $0.action == .restartRecovery && $0.detail == "sessions_closed=20 reason=relay_restart" })
    }

    /// Issue 10 item 5 (REVIEW D5): a node that starts closes its own open records only.
    /// Two nodes share one SQLite file; node-b's open record is a live session of node-b.
    @Test func restartRecoveryClosesOnlyThisNodesRecords() async throws {
        let own = StoreFixture.usageRecord("own-open", company: "co-a", started: "2026-11-02T01:00:00Z", ended: nil, node: "node-a")
        let other = StoreFixture.usageRecord("other-open", company: "co-a", started: "2026-11-02T01:00:00Z", ended: nil, node: "node-b")
        try await TestRelay.with({ configuration in
            configuration.nodeName = "node-a"
            // The shared file as node-b left it, before node-a starts (`try!`: configure cannot throw).
            try! SQLStore(dataDirectory: configuration.dataDirectory).write(UsageBatch(opened: [own, other]))
        }) { relay in
            let ownAfter = try #require(try relay.store.usageRecord(id: "own-open"))
            #expect(ownAfter.endReason == .relayRestart)
            #expect(ownAfter.endedAt == own.checkpointedAt)
            let otherAfter = try #require(try relay.store.usageRecord(id: "other-open"))
            #expect(otherAfter.endedAt == nil)
            #expect(otherAfter.endReason == nil)
            #expect(try relay.store.auditLog(limit: 10).contains { $0.action == .restartRecovery && $0.detail == "sessions_closed=1 reason=relay_restart" })
        }
    }
}

/// What the agents did, shared by their tasks.
final class Progress: Sendable {
    /// Frames each host sent before the pause (all checkpointed) and in all.
    let sentBeforePause: Mutex<[Int]>
    let sentTotal: Mutex<[Int]>
    let paired = Atomic<Int>(0)
    /// 0: first bursts, 1: pause, 2: second bursts until the kill.
    let phase = Atomic<Int>(0)
    /// The first error of a session before the kill.
    let earlyFailure = Mutex<String?>(nil)

    init(sessions: Int) {
        self.sentBeforePause = Mutex(Array(repeating: 0, count: sessions))
        self.sentTotal = Mutex(Array(repeating: 0, count: sessions))
    }
}

extension String {
    fileprivate func contains(_ other: String, after marker: String) -> Bool {
        guard let range = self.range(of: marker) else { return false }
        return self[range.upperBound...].contains(other)
    }
}
