// `relay-bench relay`: forwarding throughput, latency at load and idle-session memory of
// relay-server, side by side with haproxy doing the same TLS 1.3 → TLS 1.3 work.
//
// What each side does (both in the same run, driven by the same Swift NIO client code):
//
// - relay:   host (this process, RelayClient, TLS 1.3) → relay-server (decrypt, forward the
//            frame untouched, encrypt) → viewer (this process, RelayClient, TLS 1.3).
// - haproxy: "host" (this process, the same RelayClient connection code, TLS 1.3) → haproxy
//            (mode tcp, terminates TLS 1.3 with the same certificate, connects over TLS 1.3
//            to the sink) → sink (this process, a NIO TLS 1.3 server with the same frame
//            decoder; it plays the viewer: counts TileUpdate bytes, echoes Clipboard frames).
//
// Both peers therefore decrypt and encrypt every byte once. Bytes are counted where the
// viewer/sink decodes TileUpdate frames (or Sealed frames, `--traffic opaque,sealed`). CPU time of relay-server and haproxy comes from
// /proc/PID/stat over the measured window.
//
// The relay's host and viewer log in with Ed25519 keys (Accounts), which TLS proves as
// client certificates (PROTOCOL.md §1.2); haproxy's leg has no login (haproxy ends TLS and
// the sink plays the viewer), so nothing logs in through haproxy. Logins happen while the
// sessions are set up, before the measured window.

import ArgumentParser
import Crypto
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import RelayClient
import RelaySecureChannel
import RelayWire

#if canImport(Glibc)
import Glibc
#endif

struct RelayBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "relay",
        abstract: "Relay forwarding throughput, latency at load and idle-session memory, beside haproxy.",
        discussion: """
            Starts relay-server (--relay-binary) and haproxy on loopback with a freshly generated \
            ECDSA P-256 certificate (temporary directory, deleted afterwards). Throughput: 64 KiB \
            TileUpdate frames host → viewer for --seconds per case. Latency: 32-byte Clipboard \
            frames echoed by the far side at ~100 Hz during the largest load. Idle: --idle paired \
            idle sessions on a fresh relay-server, RSS before and after. --traffic picks what the \
            bulk sessions send, each mode a case of its own beside haproxy: tile (64 KiB TileUpdate \
            frames in clear), opaque (Sealed frames of a sealed 64 KiB tile's size, random bytes \
            nobody seals or opens: the relay's work with encryption on) and sealed (real records: \
            the end-to-end handshake through the peer, SecureTransport seals every tile on the host \
            and the viewer, or the sink behind haproxy, opens every record). The latency probe \
            stays in clear. Small frames: --frame-bytes sets each TileUpdate's payload, and \
            --frame-rate makes every session send one frame per write at that many frames per \
            second (a support session's updates) instead of as fast as it can; the report gives \
            each peer's CPU per forwarded frame.
            """
    )

    @Flag(name: .long, help: "Print one JSON object with all figures instead of tables.")
    var json = false

    @Option(name: .long, help: "Seconds of measurement per throughput case.")
    var seconds: Double = 10

    @Option(name: .long, help: "Comma-separated concurrent session counts for throughput.")
    var sessions: String = "1,50"

    @Option(name: .customLong("relay-binary"), help: "The release relay-server binary.")
    var relayBinary: String = ".build/release/relay-server"

    @Option(name: .long, help: "Paired idle sessions for the memory case (0: skip).")
    var idle: Int = 10_000

    @Option(
        name: .customLong("idle-warm"),
        help:
            "KiB each idle session's host sends its viewer (in 64 KiB TileUpdates) before the session goes still, as a session whose screen stopped changing (default 0: sessions that never carried a frame)."
    )
    var idleWarmKiB: Int = 0

    @Option(name: .customLong("latency-samples"), help: "Round trips measured during the largest load (0: skip).")
    var latencySamples: Int = 1000

    @Option(name: .long, help: "Cap the load at this many MB/s in total, for both peers, so latency compares at equal load (default: as fast as possible).")
    var rate: Double?

    @Option(
        name: .long,
        help:
            "Where the latency probe runs: 'isolated', a process of its own (default), or 'shared', a session of the bench process beside the load (runs 1–4 in RESULTS.md)."
    )
    var probe: ProbePlacement = .isolated

    @Option(
        name: .long,
        help:
            "Comma-separated traffic of the bulk sessions, each a case of its own: tile (TileUpdate in clear), opaque (Sealed-sized random frames), sealed (real end-to-end records)."
    )
    var traffic: String = "tile"

    @Option(name: .customLong("frame-bytes"), help: "Payload bytes of each TileUpdate the bulk sessions send (1 to 1,048,576).")
    var frameBytes: Int = 64 * 1024

    @Option(
        name: .customLong("frame-rate"),
        help: "Frames per second each bulk session sends, one frame per write, at a random phase (default: as fast as it can, 4 frames per write)."
    )
    var frameRate: Double?

    @Flag(name: .customLong("skip-throughput"), help: "Skip throughput and latency.")
    var skipThroughput = false

    @Option(name: .customLong("haproxy-threads"), help: "haproxy nbthread (relay-server uses one event loop per core).")
    var haproxyThreads: Int = System.coreCount

    static let framesPerWrite = 4
    static let warmup = Duration.seconds(1)

    var sessionCounts: [Int] { self.sessions.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) } }
    var trafficModes: [TrafficMode] { self.traffic.split(separator: ",").compactMap { TrafficMode(rawValue: $0.trimmingCharacters(in: .whitespaces)) } }

    func validate() throws {
        guard self.seconds > 0 else { throw ValidationError("--seconds must be positive") }
        guard !self.sessionCounts.isEmpty, self.sessionCounts.allSatisfy({ $0 > 0 }) else {
            throw ValidationError("--sessions takes positive counts, e.g. 1,50")
        }
        guard self.idle >= 0, self.latencySamples >= 0, self.idleWarmKiB >= 0 else {
            throw ValidationError("--idle, --idle-warm and --latency-samples must be ≥ 0")
        }
        if let rate, !(rate > 0) { throw ValidationError("--rate must be a positive number of MB/s") }
        guard (1...(1 << 20)).contains(self.frameBytes) else {
            throw ValidationError("--frame-bytes takes 1 to 1048576 (the TileUpdate payload of each frame)")
        }
        if let frameRate, !(frameRate > 0 && frameRate <= 10_000) {
            throw ValidationError("--frame-rate takes a number of frames per second per session above 0 and at most 10000")
        }
        if self.frameRate != nil, self.rate != nil { throw ValidationError("--frame-rate and --rate both pace the senders: give one of them") }
        guard !self.trafficModes.isEmpty, self.trafficModes.count == self.traffic.split(separator: ",").count else {
            throw ValidationError("--traffic takes tile, opaque or sealed, comma-separated, e.g. tile,sealed")
        }
    }

    func run() async throws {
        RelayBenchmarkSettings.seconds = self.seconds
        RelayBenchmarkSettings.framePayload = self.frameBytes
        RelayBenchmarkSettings.frameRate = self.frameRate
        let limits = raiseFileDescriptorLimit()
        guard FileManager.default.isExecutableFile(atPath: self.relayBinary) else {
            throw BenchError("no relay-server at \(self.relayBinary); build it with `swift build -c release --product relay-server` and pass --relay-binary")
        }
        let directory = NSTemporaryDirectory() + "relay-bench-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let tls = try TLSMaterial.generate(in: directory)
        let trust = RelayTrust.fingerprint(tls.fingerprint)

        var notes: [String] = []
        var results: [(String, JSON)] = []
        var lines: [String] = []
        let machine = MachineInfo.current
        lines.append("relay-bench relay")
        lines.append("command: " + (["relay-bench"] + CommandLine.arguments.dropFirst()).joined(separator: " "))
        lines.append("machine: \(machine.cpuModel), \(machine.cores) cores, \(machine.os)")
        lines.append("date:    \(machine.date)   load average: \(machine.loadAverage)")

        // Accounts: one company, one engineer, enough enrolled hosts.
        let throughputHosts = self.skipThroughput ? 0 : self.sessionCounts.reduce(0) { $0 + $1 + 1 } * self.trafficModes.count
        let idleSessions = min(self.idle, (limits.soft - 400) / 2, 9_900)
        if idleSessions < self.idle {
            notes.append(
                "idle sessions limited to \(idleSessions) (RLIMIT_NOFILE \(limits.soft): each session is 2 fds here and 2 in relay-server; relay maximum_connections 20000)"
            )
        }
        let data = "\(directory)/data"
        progress("enrolling \(max(throughputHosts, idleSessions)) hosts")
        let accounts = try Accounts.create(binary: self.relayBinary, data: data, hosts: max(throughputHosts, idleSessions))
        notes.append(
            "enrolled \(accounts.hosts.count) hosts with `relay-server host enroll` in \(formatFixed(accounts.enrollSeconds, 1)) s (\(formatFixed(accounts.enrollSeconds * 1000 / Double(max(accounts.hosts.count, 1)), 1)) ms each, 8 at a time)"
        )
        var nextHost = 0

        let group = MultiThreadedEventLoopGroup.singleton
        if !self.skipThroughput {
            let relay = try await RelayProcess.start(binary: self.relayBinary, data: data, tls: tls, directory: directory)
            defer { relay.child.stop() }
            let sink = try await Sink.start(tls: tls, group: group)
            let haproxy = try await HAProxy.start(tls: tls, backendPort: sink.port, threads: self.haproxyThreads, directory: directory)
            defer { haproxy.child.stop() }
            progress("relay-server pid \(relay.child.pid) port \(relay.port), haproxy pid \(haproxy.child.pid) port \(haproxy.port), sink port \(sink.port)")
            let relayCipher = negotiatedCipher(port: relay.port, alpn: RelayProtocol.alpnToken)
            let haproxyCipher = negotiatedCipher(port: haproxy.port, alpn: RelayProtocol.alpnToken)
            let sinkCipher = negotiatedCipher(port: sink.port, alpn: nil)
            notes.append(
                "TLS 1.3 suites negotiated (client offering AES-128-GCM first, as BoringSSL does): relay \(relayCipher), haproxy front \(haproxyCipher), sink (haproxy's backend leg is pinned to TLS_AES_128_GCM_SHA256) \(sinkCipher)"
            )
            notes.append(
                "relay-server: \(System.coreCount) event loop threads (default); haproxy 2.6: nbthread \(self.haproxyThreads), mode tcp, tune defaults")

            var table = Table(columns: [
                .init("sessions", .right), .init("traffic", .left), .init("peer", .left), .init("MB/s", .right), .init("peer CPU s", .right),
                .init("peer CPU/wall", .right), .init("MB per peer CPU-s", .right), .init("frames/s", .right), .init("peer CPU µs per frame", .right),
                .init("bench CPU/wall", .right), .init("errors", .right),
            ])
            var latencyTable = Table(columns: [
                .init("peer", .left), .init("traffic", .left), .init("samples", .right), .init("p50 µs", .right), .init("p99 µs", .right),
                .init("max µs", .right),
                .init("load sessions", .right),
            ])
            var ratios: [String] = []
            var handshakeLines: [String] = []
            let largest = self.sessionCounts.max()!
            for count in self.sessionCounts {
                var byTraffic: [TrafficMode: ThroughputResult] = [:]
                for traffic in self.trafficModes {
                    var pair: [String: ThroughputResult] = [:]
                    for peer in [Peer.relay, .haproxy] {
                        let hosts = peer == .relay ? Array(accounts.hosts[nextHost..<(nextHost + count + 1)]) : []
                        if peer == .relay { nextHost += count + 1 }
                        let withLatency = count == largest && self.latencySamples > 0
                        progress("throughput: \(peer.rawValue), \(count) sessions, \(traffic.rawValue)")
                        let result = try await runThroughput(
                            peer: peer, traffic: traffic, sessions: count, latencySamples: withLatency ? self.latencySamples : 0, probe: self.probe,
                            rateMegabytesPerSecond: self.rate,
                            relay: relay, haproxy: haproxy, sink: sink, accounts: accounts, hosts: hosts, tls: tls, trust: trust, group: group
                        )
                        pair[peer.rawValue] = result
                        if peer == .relay { byTraffic[traffic] = result }
                        table.add([
                            "\(count)", traffic.rawValue, peer.rawValue, formatFixed(result.megabytesPerSecond, 1), formatFixed(result.peerCPU, 2),
                            formatFixed(result.peerCPU / result.wall, 2), formatFixed(result.megabytesPerCPUSecond, 1),
                            formatFixed(result.framesPerSecond, 0), formatFixed(result.cpuMicrosecondsPerFrame, 2),
                            formatFixed(result.benchCPU / result.wall, 2), "\(result.errors)",
                        ])
                        if let first = result.firstError {
                            notes.append("\(peer.rawValue), \(count) sessions, \(traffic.rawValue): \(result.errors) errors, first: \(first)")
                        }
                        if !result.handshakes.isEmpty {
                            let sorted = result.handshakes.sorted()
                            handshakeLines.append(
                                "end-to-end handshake through \(peer.rawValue), \(count) sessions setting up at once: \(sorted.count) handshakes, p50 \(formatFixed(percentile(sorted, 50) * 1e3, 2)) ms, p99 \(formatFixed(percentile(sorted, 99) * 1e3, 2)) ms, max \(formatFixed(sorted.last! * 1e3, 2)) ms (viewer side: KeyCommit sent → host's Identity verified)"
                            )
                        }
                        if !result.rtts.isEmpty {
                            let sorted = result.rtts.sorted()
                            latencyTable.add([
                                peer.rawValue, traffic.rawValue, "\(sorted.count)", formatFixed(percentile(sorted, 50), 0),
                                formatFixed(percentile(sorted, 99), 0),
                                formatFixed(sorted.last!, 0), "\(count)",
                            ])
                        }
                        results.append(("throughput_\(peer.rawValue)_\(count)\(traffic == .tile ? "" : "_" + traffic.rawValue)", result.json))
                    }
                    if let r = pair["relay"], let h = pair["haproxy"] {
                        let wallRatio = r.megabytesPerSecond / h.megabytesPerSecond
                        let cpuRatio = r.megabytesPerCPUSecond / h.megabytesPerCPUSecond
                        ratios.append(
                            "\(count) sessions, \(traffic.rawValue): relay/haproxy \(formatFixed(wallRatio, 2)) by wall clock, \(formatFixed(cpuRatio, 2)) per peer CPU-second → \(cpuRatio >= 1 ? "PASS" : "FAIL") (target ≥ 1.0 per busy core)"
                        )
                        results.append(
                            (
                                "ratio_\(count)\(traffic == .tile ? "" : "_" + traffic.rawValue)",
                                .object([("wall", .double(wallRatio)), ("per_cpu_second", .double(cpuRatio)), ("pass", .bool(cpuRatio >= 1))])
                            ))
                        if !r.rtts.isEmpty, !h.rtts.isEmpty {
                            let rp99 = percentile(r.rtts.sorted(), 99)
                            let hp99 = percentile(h.rtts.sorted(), 99)
                            ratios.append(
                                "latency at \(count) sessions, \(traffic.rawValue): relay p99 \(formatFixed(rp99, 0)) µs vs haproxy \(formatFixed(hp99, 0)) µs → \(rp99 <= hp99 ? "PASS" : "FAIL") (target p99 ≤ haproxy)"
                            )
                            results.append(("latency_pass\(traffic == .tile ? "" : "_" + traffic.rawValue)", .bool(rp99 <= hp99)))
                        }
                    }
                }
                // Encryption is the agents' work: the relay's bytes per CPU-second must not drop.
                if let plain = byTraffic[.tile] {
                    for traffic in self.trafficModes where traffic != .tile {
                        guard let encrypted = byTraffic[traffic] else { continue }
                        let ratio = encrypted.megabytesPerCPUSecond / plain.megabytesPerCPUSecond
                        ratios.append(
                            "\(count) sessions: relay MB per CPU-second, \(traffic.rawValue)/tile \(formatFixed(ratio, 2)) (\(formatFixed(encrypted.megabytesPerCPUSecond, 1)) vs \(formatFixed(plain.megabytesPerCPUSecond, 1)))"
                        )
                        results.append(("relay_\(traffic.rawValue)_over_tile_\(count)", .double(ratio)))
                    }
                }
            }
            lines.append("")
            lines.append(
                "throughput: TileUpdate frames of \(self.frameBytes) payload bytes host → viewer (sealed: inside Sealed records), \(self.frameRate.map { "\(formatFixed($0, 0)) frames/s per session, one per write" } ?? "as fast as possible, \(Self.framesPerWrite) per write"), \(formatFixed(self.seconds, 0)) s per case after \(Self.warmup) warm-up; MB = 10^6 bytes of frames on the wire (header + payload, tag included) received"
            )
            lines.append(table.rendered)
            if !latencyTable.rows.isEmpty {
                lines.append("")
                lines.append(
                    "latency: 32-byte Clipboard frame, far side echoes it, ~100 Hz, round trip, during the load above; probe \(self.probe == .isolated ? "in a process of its own" : "in the bench process")"
                )
                lines.append(latencyTable.rendered)
            }
            lines.append("")
            lines.append(contentsOf: ratios)
            lines.append(contentsOf: handshakeLines)
            sink.close()
        }

        if idleSessions > 0 {
            let relay = try await RelayProcess.start(binary: self.relayBinary, data: data, tls: tls, directory: directory)
            defer { relay.child.stop() }
            progress("idle: \(idleSessions) sessions")
            let result = try await runIdle(
                sessions: idleSessions, relay: relay, accounts: accounts, hosts: Array(accounts.hosts[0..<idleSessions]), trust: trust,
                warmBytes: self.idleWarmKiB * 1024, group: group)
            results.append(("idle", result.json))
            lines.append("")
            if self.idleWarmKiB > 0 {
                lines.append("idle: each session first carried \(self.idleWarmKiB) KiB host → viewer (\(result.warmedSessions) of \(idleSessions) did)")
            }
            lines.append(
                "idle: \(result.paired) of \(idleSessions) sessions paired in \(formatFixed(result.setupSeconds, 1)) s (relay CPU \(formatFixed(result.setupCPU, 1)) s, \(formatFixed(result.setupCPU * 1000 / Double(max(result.paired * 2, 1)), 2)) ms per connection)"
            )
            lines.append(
                "  relay-server RSS before \(result.rssBefore) KiB, after \(result.rssAfter) KiB, delta \(result.rssAfter - result.rssBefore) KiB; fds \(result.fdsBefore) → \(result.fds), so \(result.live) sessions open when RSS was read"
            )
            lines.append(
                "  per session: \(formatFixed(result.kibPerSession, 1)) KiB → \(result.kibPerSession <= 32 ? "PASS" : "FAIL") against issue 16's ≤ 32 KiB (\(result.kibPerSession <= 64 ? "PASS" : "FAIL") against the earlier ≤ 64 KiB)"
            )
            if let first = result.firstError { notes.append("idle: \(result.errors) errors, first: \(first)") }
        }

        if !notes.isEmpty {
            lines.append("")
            lines.append(contentsOf: notes.map { "note: \($0)" })
        }
        if self.json {
            let object: JSON = .object([
                ("benchmark", .string("relay")),
                ("command", .string((["relay-bench"] + CommandLine.arguments.dropFirst()).joined(separator: " "))),
                ("machine", machine.json),
                (
                    "settings",
                    .object([
                        ("seconds", .double(self.seconds)), ("sessions", .string(self.sessions)), ("idle", .int(idleSessions)),
                        ("latency_samples", .int(self.latencySamples)), ("rate_mb_per_second", self.rate.map { .double($0) } ?? .null),
                        ("traffic", .string(self.traffic)),
                        ("tile_payload_bytes", .int(self.frameBytes)), ("frame_rate_per_session", self.frameRate.map { .double($0) } ?? .null),
                        ("frames_per_write", .int(self.frameRate == nil ? Self.framesPerWrite : 1)), ("haproxy_threads", .int(self.haproxyThreads)),
                        ("probe", .string(self.probe.rawValue)),
                    ])
                ),
                ("results", .object(results)),
                ("notes", .array(notes.map { .string($0) })),
            ])
            print(object.serialized())
        } else {
            print(lines.joined(separator: "\n"))
        }
    }
}

enum Peer: String { case relay, haproxy }

/// Where the latency probe runs (LatencyProbe.swift says why it has a process of its own).
enum ProbePlacement: String, ExpressibleByArgument, CaseIterable { case isolated, shared }

// MARK: - Accounts

/// The relay's accounts for a run: one engineer and `hosts` enrolled hosts, each logging in
/// with an Ed25519 key of its own (PROTOCOL.md §1.2). The private keys live only in this
/// process (and the latency probe's, LatencyProbe.swift); the relay gets the public halves.
struct Accounts {
    struct Host {
        var id: String
        var key: Curve25519.Signing.PrivateKey
    }
    var engineerKey: Curve25519.Signing.PrivateKey
    var hosts: [Host]
    var enrollSeconds: Double

    static func create(binary: String, data: String, hosts count: Int) throws -> Accounts {
        func object(_ text: String) throws -> [String: Any] {
            guard let data = text.data(using: .utf8), let value = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw BenchError("not a JSON object: \(text)")
            }
            return value
        }
        let company = try object(try runTool(binary, ["company", "add", "bench", "--json", "--data", data]))
        guard let companyID = company["id"] as? String else { throw BenchError("company add: no id") }
        let engineerKey = Curve25519.Signing.PrivateKey()
        let engineer = try object(
            try runTool(
                binary, ["engineer", "add", "--company", companyID, "bench.engineer", "--public-key", publicKeyArgument(engineerKey), "--json", "--data", data])
        )
        guard engineer["login_method"] as? String == "key" else { throw BenchError("engineer add: the engineer does not log in with a key: \(engineer)") }
        let start = ContinuousClock.now
        // Up to 8 `host enroll` processes at a time (each is mostly SQLite commit latency).
        var hosts: [Host] = []
        hosts.reserveCapacity(count)
        var running: [(Process, Pipe, Pipe, Curve25519.Signing.PrivateKey)] = []
        var index = 0
        func finishOldest() throws {
            let (process, output, errors, key) = running.removeFirst()
            process.waitUntilExit()
            let data = output.fileHandleForReading.readDataToEndOfFile()
            guard process.terminationStatus == 0 else {
                throw BenchError("host enroll failed: \(String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))")
            }
            let host = try object(String(decoding: data, as: UTF8.self))
            guard let id = host["id"] as? String, host["login_method"] as? String == "key" else {
                throw BenchError("host enroll: no id, or the host does not log in with a key: \(host)")
            }
            hosts.append(Host(id: id, key: key))
        }
        while index < count || !running.isEmpty {
            if index < count, running.count < 8 {
                let key = Curve25519.Signing.PrivateKey()
                let process = Process()
                process.executableURL = URL(fileURLWithPath: binary)
                process.arguments = [
                    "host", "enroll", "--company", companyID, "bench-host-\(index)", "--public-key", publicKeyArgument(key), "--json", "--data", data,
                ]
                let output = Pipe()
                let errors = Pipe()
                process.standardOutput = output
                process.standardError = errors
                process.standardInput = FileHandle.nullDevice
                try process.run()
                running.append((process, output, errors, key))
                index += 1
            } else {
                try finishOldest()
            }
        }
        return Accounts(engineerKey: engineerKey, hosts: hosts, enrollSeconds: (ContinuousClock.now - start).seconds)
    }
}

/// What `relay-server engineer add` and `host enroll` take as `--public-key`: the raw
/// 32-byte Ed25519 public key in base64 (what `relay-agent keygen --show` prints).
func publicKeyArgument(_ key: Curve25519.Signing.PrivateKey) -> String {
    key.publicKey.rawRepresentation.base64EncodedString()
}

// MARK: - Peers

struct RelayProcess {
    var child: ChildProcess
    var port: Int
    var address: RelayAddress { RelayAddress(host: "127.0.0.1", port: self.port) }

    static func start(binary: String, data: String, tls: TLSMaterial, directory: String) async throws -> RelayProcess {
        let port = try freePort()
        let admin = try freePort()
        // Every load connection comes from 127.0.0.1: lift the per-source caps (OPERATIONS.md
        // "Abuse resistance"), which exist for the internet, not for a load generator.
        let config = "\(directory)/relay-bench-config.json"
        try
            #"{"maximum_connections_per_source": 100000, "maximum_unauthenticated_per_source": 100000, "maximum_unauthenticated": 100000, "unauthenticated_early_drop_start": 100000}"#
            .write(toFile: config, atomically: true, encoding: .utf8)
        let child = try ChildProcess(
            name: "relay-server", executable: binary,
            arguments: [
                "serve", "--config", config, "--listen", "127.0.0.1:\(port)", "--admin-listen", "127.0.0.1:\(admin)", "--data", data,
                "--cert", tls.certificatePath, "--key", tls.keyPath,
            ],
            logPath: "\(directory)/relay-\(port).log"
        )
        try await waitForListener(port: port, timeout: 30, child: child)
        return RelayProcess(child: child, port: port)
    }
}

struct HAProxy {
    var child: ChildProcess
    var port: Int
    /// A second frontend, the same in every respect, whose backend is the isolated latency
    /// probe's echo server on `probeEchoPort` (see LatencyProbe.swift).
    var probePort: Int
    var probeEchoPort: Int

    static func start(tls: TLSMaterial, backendPort: Int, threads: Int, directory: String) async throws -> HAProxy {
        guard let haproxy = which("haproxy") else { throw BenchError("haproxy is not installed (apt-get install -y haproxy)") }
        let port = try freePort()
        let probePort = try freePort()
        let probeEchoPort = try freePort()
        let configuration = """
            global
                nbthread \(threads)
                maxconn 9000
                ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256
                ssl-default-bind-options ssl-min-ver TLSv1.3
                ssl-default-server-ciphersuites TLS_AES_128_GCM_SHA256
                ssl-default-server-options ssl-min-ver TLSv1.3
            defaults
                mode tcp
                timeout connect 5s
                timeout client 300s
                timeout server 300s
            frontend relay_in
                bind 127.0.0.1:\(port) ssl crt \(tls.combinedPath) alpn \(RelayProtocol.alpnToken)
                default_backend sink
            backend sink
                server sink 127.0.0.1:\(backendPort) ssl verify none
            frontend probe_in
                bind 127.0.0.1:\(probePort) ssl crt \(tls.combinedPath) alpn \(RelayProtocol.alpnToken)
                default_backend probe_echo
            backend probe_echo
                server echo 127.0.0.1:\(probeEchoPort) ssl verify none

            """
        let path = "\(directory)/haproxy.cfg"
        try configuration.write(toFile: path, atomically: true, encoding: .utf8)
        let child = try ChildProcess(name: "haproxy", executable: haproxy, arguments: ["-f", path, "-db"], logPath: "\(directory)/haproxy.log")
        try await waitForListener(port: port, timeout: 10, child: child)
        return HAProxy(child: child, port: port, probePort: probePort, probeEchoPort: probeEchoPort)
    }
}

/// The viewer behind haproxy: a NIO TLS 1.3 server with the same frame decoder as the
/// RelayClient viewer; counts TileUpdate bytes and echoes Clipboard frames. With `--traffic
/// opaque` it counts Sealed frames; with `sealed` it runs the viewer's end-to-end handshake
/// on each new connection and opens every record, as the relay's viewer does.
final class Sink: Sendable {
    /// The session id both ends of a sealed session through haproxy use (there is no pairing).
    static let sessionID = SessionID(high: 0x7265_6C61_792D_6265, low: 0x6E63_6800_0000_0000)

    let port: Int
    private let mode: NIOLockedValueBox<(traffic: TrafficMode, handshakes: HandshakeLog)>

    /// What new connections carry (set before each case).
    var traffic: TrafficMode {
        get { self.mode.withLockedValue { $0.traffic } }
        set { self.mode.withLockedValue { $0.traffic = newValue } }
    }
    /// Where new connections' handshake durations go.
    var handshakes: HandshakeLog {
        get { self.mode.withLockedValue { $0.handshakes } }
        set { self.mode.withLockedValue { $0.handshakes = newValue } }
    }
    private let channel: NIOAsyncChannel<NIOAsyncChannel<Frame, Frame>, Never>
    private let task: Task<Void, Never>

    static func start(tls: TLSMaterial, group: any EventLoopGroup, port: Int = 0) async throws -> Sink {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(tls.certificatePath).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: tls.keyPath, format: .pem))
        )
        configuration.minimumTLSVersion = .tlsv13
        let context = try NIOSSLContext(configuration: configuration)
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .bind(host: "127.0.0.1", port: port) { child in
                child.eventLoop.makeCompletedFuture {
                    try child.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
                    try child.pipeline.syncOperations.addHandler(
                        ByteToMessageHandler(frameDecoderWithMaximumPayloadLength: Frame.maximumEncodablePayloadLength))
                    try child.pipeline.syncOperations.addHandler(FrameEncoder())
                    return try NIOAsyncChannel<Frame, Frame>(wrappingChannelSynchronously: child)
                }
            }
        let port = channel.channel.localAddress?.port ?? 0
        let counter = Counter()
        let mode = NIOLockedValueBox((traffic: TrafficMode.tile, handshakes: HandshakeLog()))
        let task = Task<Void, Never> {
            _ = try? await channel.executeThenClose { inbound in
                try await withThrowingDiscardingTaskGroup { group in
                    for try await connection in inbound {
                        let (traffic, handshakes) = mode.withLockedValue { $0 }
                        group.addTask {
                            try? await connection.executeThenClose { frames, outbound in
                                var iterator = frames.makeAsyncIterator()
                                var opener: RecordOpener?
                                var pending: Frame?
                                if traffic == .sealed {
                                    (opener, pending) = try await Self.viewerHandshake(&iterator, outbound, handshakes)
                                }
                                while true {
                                    let next: Frame?
                                    if let first = pending {
                                        pending = nil
                                        next = first
                                    } else {
                                        next = try await iterator.next()
                                    }
                                    guard let frame = next else { break }
                                    switch frame.type {
                                    case .tileUpdate:
                                        counter.add(frame.bytes.readableBytes)
                                    case .sealed:
                                        if opener != nil {
                                            let opened = try opener!.open(frame)
                                            if opened.type == MessageType.tileUpdate.rawValue { counter.add(frame.bytes.readableBytes) }
                                        } else {
                                            counter.add(frame.bytes.readableBytes)
                                        }
                                    case .clipboard:
                                        try await outbound.write(frame)
                                    default:
                                        continue
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        let sink = Sink(port: port, channel: channel, task: task, counter: counter, mode: mode)
        return sink
    }

    /// The viewer's side of the end-to-end handshake (the host starts it through haproxy).
    /// A connection whose first frame is no handshake frame (the shared latency probe) stays
    /// in clear: that frame is handed back.
    private static func viewerHandshake(
        _ frames: inout NIOAsyncChannelInboundStream<Frame>.AsyncIterator, _ outbound: NIOAsyncChannelOutboundWriter<Frame>, _ log: HandshakeLog
    ) async throws -> (RecordOpener?, Frame?) {
        let start = ContinuousClock.now
        var handshake = SecureHandshake(
            SecureHandshake.Local(role: .viewer, identity: .init(), name: "bench.engineer", organization: "bench"), sessionID: Self.sessionID)
        try await outbound.write(contentsOf: try handshake.start())
        while let frame = try await frames.next() {
            guard frame.type == .keyShare || frame.type == .sealed else { return (nil, frame) }
            switch try handshake.received(frame) {
            case .send(let out):
                try await outbound.write(contentsOf: out)
            case .established(let out, let established):
                try await outbound.write(contentsOf: out)
                log.record((ContinuousClock.now - start).seconds)
                return (established.opener, nil)
            }
        }
        return (nil, nil)
    }

    private init(
        port: Int, channel: NIOAsyncChannel<NIOAsyncChannel<Frame, Frame>, Never>, task: Task<Void, Never>, counter: Counter,
        mode: NIOLockedValueBox<(traffic: TrafficMode, handshakes: HandshakeLog)>
    ) {
        self.port = port
        self.mode = mode
        self.channel = channel
        self.task = task
        self.receivedBox = counter
    }

    private let receivedBox: Counter
    var receivedBytes: Int { self.receivedBox.value }

    func close() {
        self.channel.channel.close(promise: nil)
        self.task.cancel()
    }
}
