// The load generator of `relay-bench relay`: sessions through relay-server or haproxy,
// the same RelayClient connection code on the sending side for both.

import Crypto
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import RelayClient
import RelaySecureChannel
import RelayWire

#if canImport(Glibc)
import Glibc
#endif

struct ThroughputResult {
    var peer: Peer
    var traffic: TrafficMode = .tile
    var sessions: Int
    var bytes: Int
    var wall: Double
    var peerCPU: Double
    var benchCPU: Double
    var errors: Int
    var firstError: String?
    var rtts: [Double]
    /// `--traffic sealed`: seconds each session's end-to-end handshake took, seen from its
    /// viewer (KeyCommit sent → host's Identity verified), all sessions setting up at once.
    var handshakes: [Double] = []

    var megabytesPerSecond: Double { Double(self.bytes) / self.wall / 1e6 }
    var megabytesPerCPUSecond: Double { Double(self.bytes) / self.peerCPU / 1e6 }
    /// Frames received by the viewers (or the sink): every frame has the same size.
    var frames: Double { Double(self.bytes) / Double(self.traffic.wireBytesPerTile) }
    var framesPerSecond: Double { self.frames / self.wall }
    var cpuMicrosecondsPerFrame: Double { self.peerCPU * 1e6 / max(self.frames, 1) }

    var json: JSON {
        let sorted = self.rtts.sorted()
        let handshakes = self.handshakes.sorted()
        return .object([
            ("peer", .string(self.peer.rawValue)), ("traffic", .string(self.traffic.rawValue)), ("sessions", .int(self.sessions)),
            ("bytes", .int(self.bytes)),
            ("wall_seconds", .double(self.wall)), ("mb_per_second", .double(self.megabytesPerSecond)),
            ("peer_cpu_seconds", .double(self.peerCPU)), ("mb_per_peer_cpu_second", .double(self.megabytesPerCPUSecond)),
            ("frames_per_second", .double(self.framesPerSecond)), ("peer_cpu_us_per_frame", .double(self.cpuMicrosecondsPerFrame)),
            ("bench_cpu_seconds", .double(self.benchCPU)), ("errors", .int(self.errors)),
            ("first_error", self.firstError.map { .string($0) } ?? .null),
            ("latency_samples", .int(sorted.count)),
            ("latency_p50_us", sorted.isEmpty ? .null : .double(percentile(sorted, 50))),
            ("latency_p99_us", sorted.isEmpty ? .null : .double(percentile(sorted, 99))),
            ("latency_max_us", sorted.isEmpty ? .null : .double(sorted.last!)),
            ("e2e_handshakes", .int(handshakes.count)),
            ("e2e_handshake_p50_ms", handshakes.isEmpty ? .null : .double(percentile(handshakes, 50) * 1e3)),
            ("e2e_handshake_p99_ms", handshakes.isEmpty ? .null : .double(percentile(handshakes, 99) * 1e3)),
        ])
    }
}

/// What the bulk sessions send (`--traffic`); see RelayBenchmark's discussion.
enum TrafficMode: String, CaseIterable, Sendable {
    /// 64 KiB TileUpdate frames in clear, as before issue 12.
    case tile
    /// Sealed frames (0x49) of the size a sealed 64 KiB TileUpdate has, random bytes that
    /// nobody seals or opens: the relay's work with encryption on, without the agents'.
    case opaque
    /// Real records: each session runs the end-to-end handshake through the peer, the
    /// host seals every 64 KiB TileUpdate (SecureTransport, as relay-agent does) and the
    /// viewer opens and checks every record.
    case sealed

    /// Bytes on the wire per 64 KiB tile: the frame, plus the inner type byte and the tag when sealed.
    var wireBytesPerTile: Int {
        Frame.headerLength + RelayBenchmarkSettings.framePayload + (self == .tile ? 0 : SecureChannelProtocol.recordOverhead)
    }
}

/// One connection's sending loop: batches of 64 KiB tiles until `stop`.
/// Bytes handed to RelayConnection.send by all senders (diagnostics).
let sentBytes = Counter()

/// Bytes a sender may run ahead of what the viewers have received, per session. Without
/// it, RelayConnection.send returns long before the bytes are on the socket (writability
/// reaches the writer late when the event loops are busy), senders queue tens of GB and
/// the bench's event loops stop reading for the viewers.
let windowPerSession = 4 << 20

/// With `bytesPerSecond`, the connection sends no faster than that (`--rate`, split over
/// the sessions), so both peers can be compared at the same offered load.
func sendTiles(
    _ sender: some FrameSender, traffic: TrafficMode, stop: StopFlag, sent: Counter, window: Int, bytesPerSecond: Double? = nil,
    received: @escaping @Sendable () -> Int
) async throws {
    var payload = ByteBuffer()
    let frame: Frame
    if traffic == .opaque {
        // What a sealed 64 KiB TileUpdate looks like to the relay: type 0x49, random bytes.
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<(RelayBenchmarkSettings.framePayload + SecureChannelProtocol.recordOverhead) {
            payload.writeInteger(UInt8.random(in: 0...255, using: &generator))
        }
        frame = try Frame(type: .sealed, payload: payload)
    } else {
        // `tile` in clear; `sealed`: the sender is a SecureSender, which seals each frame as it goes out.
        payload.writeRepeatingByte(0xA5, count: RelayBenchmarkSettings.framePayload)
        frame = try Frame(type: .tileUpdate, payload: payload)
    }
    // With --frame-rate, one frame per write at that rate, from a random phase so that the
    // sessions' frames do not arrive in step.
    let frameRate = RelayBenchmarkSettings.frameRate
    let framesPerWrite = frameRate == nil ? RelayBenchmark.framesPerWrite : 1
    let wireBytes = framesPerWrite * traffic.wireBytesPerTile
    let batch = Array(repeating: frame, count: framesPerWrite)
    let clock = ContinuousClock()
    let start = clock.now
    var sentHere = 0
    var framesHere = 0
    if let frameRate { try await Task.sleep(for: .microseconds(Int.random(in: 0..<Int(1e6 / frameRate)))) }
    let paced = clock.now
    while !stop.isSet {
        while sent.value - received() > window, !stop.isSet {
            try await Task.sleep(for: .microseconds(500))
        }
        if let bytesPerSecond {
            let ahead = Double(sentHere) / bytesPerSecond - (clock.now - start).seconds
            if ahead > 0 { try await Task.sleep(for: .microseconds(Int(ahead * 1e6))) }
        }
        if let frameRate {
            let ahead = Double(framesHere) / frameRate - (clock.now - paced).seconds
            if ahead > 0 { try await Task.sleep(for: .microseconds(Int(ahead * 1e6))) }
        }
        framesHere += framesPerWrite
        sentHere += wireBytes
        try await sender.send(frames: batch)
        sentBytes.add(wireBytes)
        sent.add(wireBytes)
        await Task.yield()
    }
}

/// Viewer side through the relay: counts TileUpdate bytes, echoes Clipboard frames.
func viewerLoop(_ connection: RelayConnection, counter: Counter) async throws {
    while let frame = try await connection.receiveFrame() {
        switch frame.type {
        case .tileUpdate, .sealed: counter.add(frame.bytes.readableBytes)
        case .clipboard: try await connection.send(frame: frame)
        case .ping:
            if case .ping(let ping) = try RelayMessage(frame) { try await connection.send(.pong(Pong(nonce: ping.nonce))) }
        case .bye: return
        default: continue
        }
    }
}

/// Viewer side with `--traffic sealed`: the end-to-end handshake as relay-agent runs it,
/// then every record opened (SecureTransport checks each one); counts wire bytes.
func secureViewerLoop(_ connection: RelayConnection, sessionID: SessionID, counter: Counter, handshakes: HandshakeLog) async throws {
    let local = SecureHandshake.Local(role: .viewer, identity: .init(), name: "bench.engineer", organization: "bench")
    let start = ContinuousClock.now
    guard case .established(let transport) = try await SecureTransport.establish(over: connection, local: local, sessionID: sessionID) else {
        throw BenchError("the end-to-end handshake did not complete (the host left)")
    }
    handshakes.record((ContinuousClock.now - start).seconds)
    while let frame = try await transport.receiveFrame() {
        switch frame.type {
        case .tileUpdate: counter.add(frame.bytes.readableBytes + SecureChannelProtocol.recordOverhead)
        case .bye: return
        default: continue
        }
    }
}

/// Host side with `--traffic sealed`: the end-to-end handshake, then `body` with the sealing sender.
func withSecureHost(
    _ connection: RelayConnection, sessionID: SessionID, index: Int, _ body: (SecureSender<RelaySender>) async throws -> Void
) async throws {
    let local = SecureHandshake.Local(role: .host, identity: .init(), name: "bench-host-\(index)", organization: "bench")
    guard case .established(let transport) = try await SecureTransport.establish(over: connection, local: local, sessionID: sessionID) else {
        throw BenchError("the end-to-end handshake did not complete (the viewer left)")
    }
    try await body(transport.sender)
}

/// End-to-end handshake durations (seconds) of one case.
final class HandshakeLog: Sendable {
    private let box = NIOLockedValueBox<[Double]>([])
    func record(_ seconds: Double) { self.box.withLockedValue { $0.append(seconds) } }
    var values: [Double] { self.box.withLockedValue { $0 } }
}

/// Round trips of a 32-byte Clipboard frame at ~100 Hz, in µs, each handed to `record`
/// as it is measured (a case that ends before all samples are in still reports those it has).
func probeLatency(_ connection: RelayConnection, samples: Int, record: @Sendable (Double) -> Void) async throws {
    var payload = ByteBuffer()
    payload.writeRepeatingByte(0x5A, count: 32)
    let frame = try Frame(type: .clipboard, payload: payload)
    let clock = ContinuousClock()
    var next = clock.now
    for _ in 0..<samples {
        next = next.advanced(by: .milliseconds(10))
        let start = clock.now
        try await connection.send(frame: frame)
        while true {
            guard let answer = try await connection.receiveFrame() else { throw BenchError("the latency connection closed") }
            if answer.type == .clipboard { break }
            if answer.type == .ping, case .ping(let ping) = try RelayMessage(answer) {
                try await connection.send(.pong(Pong(nonce: ping.nonce)))
            }
        }
        record((clock.now - start).seconds * 1e6)
        if next > clock.now { try await Task.sleep(until: next, clock: clock) } else { next = clock.now }
    }
}

enum SessionRole { case bulk, probe, idle }

/// Opens one paired relay session and runs `hostBody` on the host side; the viewer runs
/// `viewerBody` (by default `viewerLoop`). Both tasks go into `group`.
func addRelaySession(
    to group: inout ThrowingTaskGroup<Void, any Error>, relay: RelayAddress, trust: RelayTrust, engineerKey: Curve25519.Signing.PrivateKey,
    host: Accounts.Host,
    established: Counter, errors: ErrorLog, counter: Counter, paired: Counter = Counter(),
    hostBody: @escaping @Sendable (RelayConnection, Paired) async throws -> Void,
    viewerBody: (@Sendable (RelayConnection, Paired, Counter) async throws -> Void)? = nil
) {
    let registered = Signal()
    group.addTask {
        defer { registered.fire() }
        do {
            try await RelayConnection.withConnection(to: relay, trust: trust, clientKey: host.key, keepalive: benchKeepalive) { connection in
                try await connection.hello(role: .host)
                _ = try await connection.authenticate(host: .key(hostID: host.id))
                registered.fire()
                let pairing = try await connection.waitForPairing()
                established.add(1)
                try await hostBody(connection, pairing)
            }
        } catch {
            errors.record(error)
            established.add(1)
        }
    }
    group.addTask {
        await registered.wait()
        do {
            try await RelayConnection.withConnection(to: relay, trust: trust, clientKey: engineerKey, keepalive: benchKeepalive) { connection in
                try await connection.hello(role: .viewer)
                let answer = try await connection.authenticate(viewer: .key(.connect(hostID: host.id)))
                established.add(1)
                paired.add(1)
                if let viewerBody, case .paired(let pairing) = answer {
                    try await viewerBody(connection, pairing, counter)
                } else {
                    try await viewerLoop(connection, counter: counter)
                }
            }
        } catch {
            errors.record(error)
            established.add(1)
        }
    }
}

/// Every agent connection of the benchmark Pings every 30 s (PROTOCOL.md §8.4), which keeps
/// the relay's 120 s idle timeout away however long the set-up of the other sessions
/// takes. No silence limit: an idle or bulk host never reads, so it would not see the Pongs.
let benchKeepalive = Keepalive(interval: .seconds(30), silenceLimit: nil)

func waitUntil(_ condition: () -> Bool, timeout: Double) async throws -> Bool {
    let deadline = ContinuousClock.now + .seconds(timeout)
    while !condition() {
        if ContinuousClock.now > deadline { return false }
        try await Task.sleep(for: .milliseconds(20))
    }
    return true
}

func runThroughput(
    peer: Peer, traffic: TrafficMode = .tile, sessions: Int, latencySamples: Int, probe placement: ProbePlacement, rateMegabytesPerSecond: Double? = nil,
    relay: RelayProcess,
    haproxy: HAProxy, sink: Sink, accounts: Accounts, hosts: [Accounts.Host], tls: TLSMaterial, trust: RelayTrust, group eventLoops: any EventLoopGroup
) async throws -> ThroughputResult {
    let stop = StopFlag()
    let established = Counter()
    let errors = ErrorLog()
    let viewerCounter = Counter()
    let rttBox = NIOLockedValueBox<[Double]>([])
    let probeDone = StopFlag()
    let startProbe = Signal()
    let pid = peer == .relay ? relay.child.pid : haproxy.child.pid
    let seconds = RelayBenchmarkSettings.seconds

    let handshakes = HandshakeLog()
    sink.traffic = traffic
    sink.handshakes = handshakes
    return try await withThrowingTaskGroup(of: Void.self) { group in
        let probeBody: @Sendable (RelayConnection) async throws -> Void = { connection in
            await startProbe.wait()
            defer { probeDone.set() }
            try await probeLatency(connection, samples: latencySamples) { rtt in rttBox.withLockedValue { $0.append(rtt) } }
        }
        // Senders start only when every session is set up, so that set-up is not starved.
        let go = Signal()
        let caseSent = Counter()
        let sinkBaseline = sink.receivedBytes
        let window = windowPerSession * sessions
        let isRelay = peer == .relay
        let receivedSoFar: @Sendable () -> Int = { isRelay ? viewerCounter.value : sink.receivedBytes - sinkBaseline }
        let bytesPerSecond = rateMegabytesPerSecond.map { $0 * 1e6 / Double(sessions) }
        // The handshake runs during set-up, before `go`, as it would right after pairing.
        let bulkBody: @Sendable (RelayConnection, SessionID, Int) async throws -> Void = {
            (connection: RelayConnection, sessionID: SessionID, index: Int) async throws in
            if traffic == .sealed {
                try await withSecureHost(connection, sessionID: sessionID, index: index) { sender in
                    await go.wait()
                    try await sendTiles(
                        sender, traffic: traffic, stop: stop, sent: caseSent, window: window, bytesPerSecond: bytesPerSecond, received: receivedSoFar)
                }
            } else {
                await go.wait()
                try await sendTiles(
                    connection.sender, traffic: traffic, stop: stop, sent: caseSent, window: window, bytesPerSecond: bytesPerSecond,
                    received: receivedSoFar)
            }
        }
        let secureViewer: (@Sendable (RelayConnection, Paired, Counter) async throws -> Void)?
        if traffic == .sealed {
            secureViewer = { (connection: RelayConnection, pairing: Paired, counter: Counter) async throws in
                try await secureViewerLoop(connection, sessionID: pairing.sessionID, counter: counter, handshakes: handshakes)
            }
        } else {
            secureViewer = nil
        }
        // The isolated probe is a process of its own (LatencyProbe.swift); the shared one is
        // one more session of this process.
        let isolated = latencySamples > 0 && placement == .isolated
        let total = sessions + (latencySamples > 0 && !isolated ? 1 : 0)
        var probeProcess: LatencyProbeProcess?
        if isolated {
            var arguments = ["--fingerprint", tls.fingerprint, "--samples", "\(latencySamples)"]
            var keys: LatencyProbeKeys?
            switch peer {
            case .relay:
                let host = hosts[sessions]
                arguments += [
                    "--peer", "relay", "--port", "\(relay.port)", "--host-id", host.id,
                ]
                keys = LatencyProbeKeys(host: host.key, engineer: accounts.engineerKey)
            case .haproxy:
                arguments += [
                    "--peer", "haproxy", "--port", "\(haproxy.probePort)", "--cert", tls.certificatePath, "--key", tls.keyPath,
                    "--echo-port", "\(haproxy.probeEchoPort)",
                ]
            }
            probeProcess = try LatencyProbeProcess(arguments: arguments, keys: keys)
        }
        defer { probeProcess?.stop() }
        switch peer {
        case .relay:
            for index in 0..<total {
                let isBulk = index < sessions
                let hostBody: @Sendable (RelayConnection, Paired) async throws -> Void = { (connection: RelayConnection, pairing: Paired) async throws in
                    if isBulk {
                        try await bulkBody(connection, pairing.sessionID, index)
                    } else {
                        try await probeBody(connection)
                    }
                }
                addRelaySession(
                    to: &group, relay: relay.address, trust: trust, engineerKey: accounts.engineerKey, host: hosts[index],
                    established: established, errors: errors, counter: viewerCounter, hostBody: hostBody,
                    viewerBody: isBulk ? secureViewer : nil
                )
            }
        case .haproxy:
            let address = RelayAddress(host: "127.0.0.1", port: haproxy.port)
            for index in 0..<total {
                let isBulk = index < sessions
                group.addTask {
                    do {
                        try await RelayConnection.withConnection(to: address, trust: trust) { connection in
                            if isBulk {
                                // The sink plays the viewer, and counts the session as up once its handshake is done.
                                if traffic != .sealed { established.add(2) }
                                try await bulkBody(connection, Sink.sessionID, index)
                            } else {
                                established.add(2)
                                try await probeBody(connection)
                            }
                        }
                    } catch {
                        errors.record(error)
                        established.add(2)
                    }
                }
            }
        }
        let isSealedHAProxy = peer == .haproxy && traffic == .sealed
        let ready: @Sendable () -> Bool = {
            let up = established.value + (isSealedHAProxy ? 2 * handshakes.values.count : 0)
            return up >= 2 * total && (!isRelay || traffic != .sealed || handshakes.values.count >= sessions)
        }
        guard try await waitUntil({ ready() && probeProcess?.isReady != false }, timeout: 60) else {
            stop.set()
            go.fire()
            startProbe.fire()
            group.cancelAll()
            let probeState = probeProcess.map { "; latency probe \($0.isReady ? "ready" : "not ready"): \($0.log)" } ?? ""
            throw BenchError(
                "\(peer.rawValue): only \(established.value / 2) of \(total) sessions set up in 60 s; errors: \(errors.first ?? "none")\(probeState)")
        }
        progress("  \((established.value + (isSealedHAProxy ? 2 * handshakes.values.count : 0)) / 2) sessions up")
        go.fire()
        let counter = peer == .relay ? viewerCounter : nil
        func received() -> Int { counter?.value ?? sink.receivedBytes }
        try await Task.sleep(for: RelayBenchmark.warmup)

        let bytes0 = received()
        let cpu0 = processCPUSeconds(pid: pid)
        let bench0 = processCPUTime()
        let start = ContinuousClock.now
        startProbe.fire()
        probeProcess?.start()
        // Watchdog: RelayConnection.send does not always wait for the socket (see RESULTS.md);
        // stop the case early if this process's RSS runs away.
        let runaway = StopFlag()
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(200))
            if processStatusKiB(pid: getpid()) > 3_000_000 {
                runaway.set()
                errors.record(
                    BenchError(
                        "bench RSS above 3 GB after \(formatFixed((ContinuousClock.now - start).seconds, 1)) s: sends were not back-pressured; case stopped early"
                    ))
                probeDone.set()
                break
            }
        }
        if latencySamples > 0 {
            _ = try await waitUntil({ probeProcess?.isDone ?? probeDone.isSet }, timeout: Double(latencySamples) / 50 + 30)
        }
        let bytes1 = received()
        let cpu1 = processCPUSeconds(pid: pid)
        let bench1 = processCPUTime()
        let wall = (ContinuousClock.now - start).seconds
        // Errors until now; the teardown below cancels connections on purpose.
        let errorCount = errors.count
        let firstError = errors.first
        progress(
            "  measured; closing (handed to send: \(sentBytes.value / 1_000_000) MB in total so far, received in window: \((bytes1 - bytes0) / 1_000_000) MB)")
        stop.set()
        // Let the senders notice, then close everything that is still open.
        _ = try await waitUntil({ false }, timeout: 0.5)
        group.cancelAll()
        while true {
            do { guard try await group.next() != nil else { break } } catch {}
        }
        return ThroughputResult(
            peer: peer, traffic: traffic, sessions: sessions, bytes: bytes1 - bytes0, wall: wall, peerCPU: cpu1 - cpu0, benchCPU: (bench1 - bench0).seconds,
            errors: errorCount, firstError: firstError, rtts: probeProcess?.rtts ?? rttBox.withLockedValue { $0 }, handshakes: handshakes.values
        )
    }
}

/// Seconds per throughput case, set once from the command line.
enum RelayBenchmarkSettings {
    nonisolated(unsafe) static var seconds: Double = 10
    /// `--frame-bytes`: the TileUpdate payload of each bulk frame.
    nonisolated(unsafe) static var framePayload = 64 * 1024
    /// `--frame-rate`: frames per second per bulk session, one per write (nil: as fast as possible).
    nonisolated(unsafe) static var frameRate: Double?
}

struct IdleResult {
    var paired: Int
    var setupSeconds: Double
    var setupCPU: Double
    var rssBefore: Int
    var rssAfter: Int
    var fdsBefore: Int
    var fds: Int
    var errors: Int
    var firstError: String?
    /// Sessions whose viewer received all of `--idle-warm` before RSS was read.
    var warmedSessions: Int
    /// Sessions still open when RSS was read: each is two sockets in relay-server.
    var live: Int { (self.fds - self.fdsBefore) / 2 }
    var kibPerSession: Double { Double(self.rssAfter - self.rssBefore) / Double(max(min(self.paired, self.live), 1)) }

    var json: JSON {
        .object([
            ("paired_sessions", .int(self.paired)), ("setup_seconds", .double(self.setupSeconds)), ("relay_setup_cpu_seconds", .double(self.setupCPU)),
            ("rss_before_kib", .int(self.rssBefore)), ("rss_after_kib", .int(self.rssAfter)), ("kib_per_session", .double(self.kibPerSession)),
            ("relay_fds", .int(self.fds)), ("relay_fds_before", .int(self.fdsBefore)), ("live_sessions", .int(self.live)), ("errors", .int(self.errors)),
            ("first_error", self.firstError.map { .string($0) } ?? .null), ("warmed_sessions", .int(self.warmedSessions)),
            ("pass", .bool(self.kibPerSession <= 64)),
        ])
    }
}

func runIdle(
    sessions: Int, relay: RelayProcess, accounts: Accounts, hosts: [Accounts.Host], trust: RelayTrust, warmBytes: Int = 0,
    group eventLoops: any EventLoopGroup
) async throws -> IdleResult {
    let established = Counter()
    let errors = ErrorLog()
    let counter = Counter()
    let release = Signal()
    let pairedCount = Counter()
    try await Task.sleep(for: .seconds(1))
    let pid = relay.child.pid
    let rssBefore = processStatusKiB(pid: pid)
    let fdsBefore = openFileDescriptors(pid: pid)
    let cpu0 = processCPUSeconds(pid: pid)
    let start = ContinuousClock.now
    return try await withThrowingTaskGroup(of: Void.self) { group in
        // With `warmBytes`, the host first sends that much screen to its viewer; then the
        // connection's keepalive Pings while the session idles.
        let frames = (warmBytes + 65_535) / 65_536
        let warmed = Counter()
        let body: @Sendable (RelayConnection, Paired) async throws -> Void = { connection, _ in
            if frames > 0 {
                var payload = ByteBuffer()
                payload.writeRepeatingByte(0xA5, count: 65_536)
                let frame = try Frame(type: .tileUpdate, payload: payload)
                for _ in 0..<frames { try await connection.send(frame: frame) }
            }
            await release.wait()
        }
        let viewer: @Sendable (RelayConnection, Paired, Counter) async throws -> Void = { connection, _, _ in
            var received = 0
            var counted = frames == 0
            if counted { warmed.add(1) }
            while let frame = try await connection.receiveFrame() {
                switch frame.type {
                case .tileUpdate: received += frame.bytes.readableBytes
                case .ping:
                    if case .ping(let ping) = try RelayMessage(frame) { try await connection.send(.pong(Pong(nonce: ping.nonce))) }
                case .bye: return
                default: continue
                }
                if !counted, received >= frames * 65_536 {
                    counted = true
                    warmed.add(1)
                }
            }
        }
        let batch = 100
        var launched = 0
        while launched < sessions {
            let end = min(launched + batch, sessions)
            for index in launched..<end {
                addRelaySession(
                    to: &group, relay: relay.address, trust: trust, engineerKey: accounts.engineerKey, host: hosts[index],
                    established: established, errors: errors, counter: counter, paired: pairedCount, hostBody: body, viewerBody: viewer
                )
            }
            launched = end
            _ = try await waitUntil({ established.value >= 2 * launched }, timeout: 60)
        }
        _ = try await waitUntil({ warmed.value + errors.count >= sessions }, timeout: 120)
        let setup = (ContinuousClock.now - start).seconds
        let cpu1 = processCPUSeconds(pid: pid)
        try await Task.sleep(for: .seconds(3))
        let rssAfter = processStatusKiB(pid: pid)
        let errorCount = errors.count
        let firstError = errors.first
        let fds = openFileDescriptors(pid: pid)
        let paired = pairedCount.value
        release.fire()
        _ = try await waitUntil({ false }, timeout: 1)
        group.cancelAll()
        while true {
            do { guard try await group.next() != nil else { break } } catch {}
        }
        return IdleResult(
            paired: paired, setupSeconds: setup, setupCPU: cpu1 - cpu0, rssBefore: rssBefore, rssAfter: rssAfter, fdsBefore: fdsBefore, fds: fds,
            errors: errorCount, firstError: firstError, warmedSessions: warmed.value
        )
    }
}
