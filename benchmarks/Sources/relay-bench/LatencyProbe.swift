// The latency probe of `relay-bench relay`, in a process of its own.
//
// In the bench process the probe's round trip also waits for the bench's own queues: its
// event loops and Swift's cooperative pool carry 50 senders and 50 receivers, which on a
// 2-core machine are starved of CPU. That queueing belongs to the load generator, not to
// the peer, and it grows with the bytes the peer forwards. Here the probe has its own
// event loop and its own cooperative pool, so an idle probe is scheduled as soon as its
// bytes arrive, and what it measures is the time the bytes spend in the peer (plus the
// kernel's loopback and the CPU contention every process on the machine sees).
//
// Both ends of the probe live in this process for both peers:
// - relay:   host connection (enrolled host) → relay-server → viewer connection, which echoes;
//            both log in with the keys of the parent's accounts (LatencyProbeKeys);
// - haproxy: connection → haproxy (a second frontend) → echo server here (TLS 1.3, the
//            same frame decoder as the sink), which echoes.
//
// Protocol with the parent: this process prints `ready` once connected, waits for a line on
// standard input, then prints `rtt <µs>` per sample and `done` at the end.

import ArgumentParser
import Crypto
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import RelayClient
import RelayWire

struct LatencyProbeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "latency-probe",
        abstract: "Internal: the isolated latency probe that `relay-bench relay` starts.",
        shouldDisplay: false
    )

    @Option var peer: String
    @Option var port: Int
    @Option var fingerprint: String
    @Option var samples: Int
    @Option(name: .customLong("host-id")) var hostID: String?
    @Option var cert: String?
    @Option var key: String?
    @Option(name: .customLong("echo-port")) var echoPort: Int?

    func run() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let trust = RelayTrust.fingerprint(self.fingerprint)
        let address = RelayAddress(host: "127.0.0.1", port: self.port)
        let samples = self.samples
        let measure: @Sendable (RelayConnection) async throws -> Void = { connection in
            Self.emit("ready")
            await Self.waitForStandardInputLine()
            try await probeLatency(connection, samples: samples) { rtt in Self.emit("rtt \(rtt)") }
            Self.emit("done")
        }
        switch self.peer {
        case "relay":
            guard let hostID else { throw ValidationError("relay probe needs --host-id") }
            let keys = try LatencyProbeKeys(environment: ProcessInfo.processInfo.environment)
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                let registered = Signal()
                tasks.addTask {
                    defer { registered.fire() }
                    try await RelayConnection.withConnection(to: address, trust: trust, clientKey: keys.host, group: group) { connection in
                        try await connection.hello(role: .host)
                        _ = try await connection.authenticate(host: .key(hostID: hostID))
                        registered.fire()
                        _ = try await connection.waitForPairing()
                        try await measure(connection)
                    }
                }
                tasks.addTask {
                    await registered.wait()
                    try await RelayConnection.withConnection(to: address, trust: trust, clientKey: keys.engineer, group: group) { connection in
                        try await connection.hello(role: .viewer)
                        _ = try await connection.authenticate(viewer: .key(.connect(hostID: hostID)))
                        try await viewerLoop(connection, counter: Counter())
                    }
                }
                // The host side ends after its samples; the viewer's loop then ends with the connection.
                try await tasks.next()
                tasks.cancelAll()
            }
        case "haproxy":
            guard let cert, let key, let echoPort else { throw ValidationError("haproxy probe needs --cert, --key and --echo-port") }
            let echo = try await Sink.start(
                tls: TLSMaterial(directory: "", certificatePath: cert, keyPath: key, combinedPath: "", fingerprint: self.fingerprint), group: group,
                port: echoPort)
            defer { echo.close() }
            try await RelayConnection.withConnection(to: address, trust: trust, group: group) { connection in
                try await measure(connection)
            }
        default:
            throw ValidationError("--peer is relay or haproxy")
        }
        try await group.shutdownGracefully()
    }

    private static let output = NIOLockedValueBox(0)

    static func emit(_ line: String) {
        output.withLockedValue { _ in FileHandle.standardOutput.write(Data((line + "\n").utf8)) }
    }

    static func waitForStandardInputLine() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            Thread.detachNewThread {
                _ = readLine()
                continuation.resume()
            }
        }
    }
}

/// The parent's handle on a `latency-probe` child: start, wait until it is connected,
/// start sampling, collect the samples.
final class LatencyProbeProcess: Sendable {
    private let process: Process
    private let input: Pipe
    private let state = NIOLockedValueBox<(ready: Bool, done: Bool, rtts: [Double], pending: String, log: [String])>((false, false, [], "", []))

    init(arguments: [String], keys: LatencyProbeKeys? = nil) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        process.arguments = ["latency-probe"] + arguments
        if let keys { process.environment = ProcessInfo.processInfo.environment.merging(keys.environment) { _, new in new } }
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = output
        self.process = process
        self.input = input
        let state = self.state
        output.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if data.isEmpty {
                handle.readabilityHandler = nil
                return
            }
            state.withLockedValue { state in
                state.pending += String(decoding: data, as: UTF8.self)
                while let newline = state.pending.firstIndex(of: "\n") {
                    let line = String(state.pending[..<newline])
                    state.pending.removeSubrange(...newline)
                    if line == "ready" {
                        state.ready = true
                    } else if line == "done" {
                        state.done = true
                    } else if line.hasPrefix("rtt "), let rtt = Double(line.dropFirst(4)) {
                        state.rtts.append(rtt)
                    } else {
                        state.log.append(line)
                    }
                }
            }
        }
        try process.run()
    }

    var isReady: Bool { self.state.withLockedValue { $0.ready } }
    var isDone: Bool { self.state.withLockedValue { $0.done } || !self.process.isRunning }
    var rtts: [Double] { self.state.withLockedValue { $0.rtts } }
    /// What the child printed besides its protocol lines (errors), for the bench's message.
    var log: String { self.state.withLockedValue { $0.log.suffix(5).joined(separator: "; ") } }

    func start() {
        self.input.fileHandleForWriting.write(Data("go\n".utf8))
    }

    func stop() {
        if self.process.isRunning { kill(self.process.processIdentifier, SIGKILL) }
        self.process.waitUntilExit()
    }
}

/// The private keys the relay probe logs in with, handed from the parent to the child in
/// its environment: the command line is readable by every user of the machine (`ps`), the
/// environment only by the same user. They are the parent's run-time keys; none is ever
/// written to a file.
struct LatencyProbeKeys {
    static let hostVariable = "RELAY_BENCH_PROBE_HOST_KEY"
    static let engineerVariable = "RELAY_BENCH_PROBE_ENGINEER_KEY"

    var host: Curve25519.Signing.PrivateKey
    var engineer: Curve25519.Signing.PrivateKey

    init(host: Curve25519.Signing.PrivateKey, engineer: Curve25519.Signing.PrivateKey) {
        self.host = host
        self.engineer = engineer
    }

    /// The child's side: both keys, as the parent's `environment` gave them.
    init(environment: [String: String]) throws {
        func key(_ variable: String) throws -> Curve25519.Signing.PrivateKey {
            guard let text = environment[variable], let raw = Data(base64Encoded: text),
                let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: raw)
            else {
                throw ValidationError(
                    "relay probe needs \(variable), the base64 of a 32-byte Ed25519 key; `relay-bench relay` sets it when it starts the probe")
            }
            return key
        }
        self.host = try key(Self.hostVariable)
        self.engineer = try key(Self.engineerVariable)
    }

    /// The parent's side: the variables to add to the child's environment.
    var environment: [String: String] {
        [Self.hostVariable: self.host.rawRepresentation.base64EncodedString(), Self.engineerVariable: self.engineer.rawRepresentation.base64EncodedString()]
    }
}
