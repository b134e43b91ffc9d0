// The load of `relay-bench cluster`: pairing workers (unattended by host id, attended by
// support code), bulk sessions for forwarding throughput, and idle sessions for the
// database's write rate. Every agent is a RelayClient connection with a key login, as
// relay-agent's are.

import Crypto
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import RelayClient
import RelayWire

#if canImport(Glibc)
import Glibc
#endif

/// A value handed over once, which tasks can wait for.
final class Mailbox<Value: Sendable>: Sendable {
    private let state = NIOLockedValueBox<(value: Value?, waiters: [CheckedContinuation<Value, Never>])>((nil, []))

    /// Fills the box; later calls change nothing.
    func fill(_ value: Value) {
        let waiters = self.state.withLockedValue { state -> [CheckedContinuation<Value, Never>] in
            guard state.value == nil else { return [] }
            state.value = value
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(returning: value) }
    }

    var isFilled: Bool { self.state.withLockedValue { $0.value != nil } }

    func wait() async -> Value {
        await withCheckedContinuation { (continuation: CheckedContinuation<Value, Never>) in
            let value = self.state.withLockedValue { state -> Value? in
                if let value = state.value { return value }
                state.waiters.append(continuation)
                return nil
            }
            if let value { continuation.resume(returning: value) }
        }
    }
}

enum PairingKind: String, CaseIterable, Sendable {
    /// The engineer asks for an enrolled host by id; the host was registered before.
    case unattended
    /// The engineer asks for a support code; a host presents it.
    case attended

    /// The steps of one pairing, in order, as ``PairingSample/phases`` holds them.
    var phaseNames: [String] {
        switch self {
        case .unattended: ["viewer TCP + TLS", "viewer Hello → HelloAck", "ViewerAuth → Paired", "host's Paired after the viewer's"]
        case .attended:
            [
                "viewer TCP + TLS", "viewer Hello → HelloAck", "ViewerAuth → CodeIssued", "host TCP + TLS", "host Hello → HelloAck", "HostAuth → Paired",
                "viewer's Paired after the host's",
            ]
        }
    }
}

/// Instants a pairing's two sides note as they go.
final class PhaseMarks: Sendable {
    private let box = NIOLockedValueBox<[String: ContinuousClock.Instant]>([:])
    func mark(_ name: String) { self.box.withLockedValue { $0[name] = ContinuousClock.now } }
    subscript(_ name: String) -> ContinuousClock.Instant? { self.box.withLockedValue { $0[name] } }
}

/// One pairing: from the viewer's TCP connect to the moment both sides hold Paired.
struct PairingSample: Sendable {
    var start: ContinuousClock.Instant
    var end: ContinuousClock.Instant
    var crossNode: Bool
    /// Seconds of each step (``PairingKind/phaseNames``).
    var phases: [Double]
}

final class PairingLog: Sendable {
    private let box = NIOLockedValueBox<[PairingSample]>([])
    func add(_ sample: PairingSample) { self.box.withLockedValue { $0.append(sample) } }
    var samples: [PairingSample] { self.box.withLockedValue { $0 } }
}

/// What every pairing worker shares.
struct PairingLoad: Sendable {
    var nodes: [RelayAddress]
    var tls: AgentTLS
    var stop: StopFlag
    var log: PairingLog
    var errors: ErrorLog
    /// Unattended: the viewer's node did not find the host in the cluster's directory yet
    /// (a node announces a host that registered off its event loop, a moment later), and
    /// asked again.
    var directoryMisses: Counter
    var finished: Counter
}

/// One registration of an enrolled host: the viewer worker that takes it waits on `paired`
/// for the host's side of the pairing (nil: the connection ended unpaired).
final class HostRound: Sendable {
    let paired = Mailbox<ContinuousClock.Instant?>()
}

/// An enrolled host that registers, waits to be paired, and registers again once its
/// session ends, as relay-agent host does; each registration is handed to the viewer
/// worker that owns the host.
final class HostAgent: Sendable {
    let host: Accounts.Host
    let node: Int
    let rounds: AsyncStream<HostRound>
    private let continuation: AsyncStream<HostRound>.Continuation

    init(host: Accounts.Host, node: Int) {
        self.host = host
        self.node = node
        (self.rounds, self.continuation) = AsyncStream.makeStream(of: HostRound.self)
    }

    func finish() { self.continuation.finish() }

    func run(_ load: PairingLoad) async {
        while !load.stop.isSet, !Task.isCancelled {
            let round = HostRound()
            var registered = false
            do {
                let context = try load.tls.context(for: self.host.key)
                try await AgentLink.withLink(to: load.nodes[self.node], context: context) { link in
                    try await link.hello(role: .host)
                    try await link.send(.hostAuth(.key(hostID: self.host.id)))
                    _ = try await link.expect("HostRegistered") { if case .hostRegistered = $0 { true } else { false } }
                    registered = true
                    self.continuation.yield(round)
                    _ = try await link.expect("Paired") { if case .paired = $0 { true } else { false } }
                    round.paired.fill(ContinuousClock.now)
                    // The viewer ends the session with Bye; the relay says Bye(peer_left) and closes.
                    try await link.waitForEnd()
                }
            } catch {
                if !load.stop.isSet, !Task.isCancelled, !round.paired.isFilled { load.errors.record(error) }
            }
            round.paired.fill(nil)
            if !registered { try? await Task.sleep(for: .milliseconds(100)) }
        }
    }
}

/// The viewer side of unattended pairings: asks for its hosts in turn, each as soon as it
/// has registered again.
func unattendedWorker(
    _ load: PairingLoad, engineer: ClusterAccounts.Engineer, viewerNode: Int, hosts: [HostAgent]
) async {
    defer { load.finished.add(1) }
    var iterators = hosts.map { $0.rounds.makeAsyncIterator() }
    var turn = 0
    while !load.stop.isSet {
        let index = turn % hosts.count
        turn += 1
        guard let round = await iterators[index].next() else { return }
        // A registration whose connection already ended is stale: take the next one.
        if round.paired.isFilled { continue }
        let agent = hosts[index]
        for attempt in 0... {
            let start = ContinuousClock.now
            do {
                let context = try load.tls.context(for: engineer.key)
                let (end, phases) = try await AgentLink.withLink(to: load.nodes[viewerNode], context: context) {
                    link -> (ContinuousClock.Instant, [Double]) in
                    let connected = ContinuousClock.now
                    try await link.hello(role: .viewer)
                    let acknowledged = ContinuousClock.now
                    try await link.send(.viewerAuth(.key(.connect(hostID: agent.host.id))))
                    _ = try await link.expect("Paired") { if case .paired = $0 { true } else { false } }
                    let viewerPaired = ContinuousClock.now
                    let hostPaired = await round.paired.wait()
                    try? await link.send(.bye(Bye(reason: .normal, text: "relay-bench: pairing measured")))
                    guard let hostPaired else { throw BenchError("the host's connection ended before it was paired") }
                    let phases = [connected - start, acknowledged - connected, viewerPaired - acknowledged, max(.zero, hostPaired - viewerPaired)]
                    return (max(viewerPaired, hostPaired), phases.map(\.seconds))
                }
                load.log.add(PairingSample(start: start, end: end, crossNode: viewerNode != agent.node, phases: phases))
            } catch let error as AgentRefusal where error.code == .noSuchHost && attempt < 250 && !load.stop.isSet {
                load.directoryMisses.add(1)
                try? await Task.sleep(for: .milliseconds(10))
                continue
            } catch {
                if !load.stop.isSet { load.errors.record(error) }
                try? await Task.sleep(for: .milliseconds(100))
            }
            break
        }
    }
}

/// Attended pairings: the viewer asks for a support code on its node, a new host presents
/// it on `hostNode(n)` for the worker's n-th pairing, both wait for Paired.
func attendedWorker(
    _ load: PairingLoad, worker: Int, engineer: ClusterAccounts.Engineer, viewerNode: Int, hostNode: @escaping @Sendable (Int) -> Int
) async {
    defer { load.finished.add(1) }
    var turn = 0
    while !load.stop.isSet {
        let target = hostNode(turn)
        turn += 1
        let start = ContinuousClock.now
        let code = Mailbox<SupportCode?>()
        let hostPaired = Mailbox<ContinuousClock.Instant?>()
        let marks = PhaseMarks()
        do {
            let end = try await withThrowingTaskGroup(of: ContinuousClock.Instant?.self) { group in
                group.addTask {
                    defer { code.fill(nil) }
                    let context = try load.tls.context(for: engineer.key)
                    return try await AgentLink.withLink(to: load.nodes[viewerNode], context: context) { link -> ContinuousClock.Instant? in
                        marks.mark("viewer connected")
                        try await link.hello(role: .viewer)
                        marks.mark("viewer acknowledged")
                        try await link.send(.viewerAuth(.key(.newSupportCode)))
                        guard case .codeIssued(let issued) = try await link.expect("CodeIssued", { if case .codeIssued = $0 { true } else { false } }) else {
                            throw BenchError("the relay did not issue a support code")
                        }
                        marks.mark("code issued")
                        code.fill(issued.code)
                        _ = try await link.expect("Paired") { if case .paired = $0 { true } else { false } }
                        marks.mark("viewer paired")
                        _ = await hostPaired.wait()
                        try? await link.send(.bye(Bye(reason: .normal, text: "relay-bench: pairing measured")))
                        return marks["viewer paired"]
                    }
                }
                group.addTask {
                    defer { hostPaired.fill(nil) }
                    guard let issued = await code.wait() else { return nil }
                    let context = try load.tls.context(for: nil)
                    return try await AgentLink.withLink(to: load.nodes[target], context: context) { link -> ContinuousClock.Instant? in
                        marks.mark("host connected")
                        try await link.hello(role: .host)
                        marks.mark("host acknowledged")
                        try await link.send(.hostAuth(.namedSupportCode(issued, machineName: "BENCH-PC-\(worker)")))
                        _ = try await link.expect("Paired") { if case .paired = $0 { true } else { false } }
                        marks.mark("host paired")
                        let paired = marks["host paired"]
                        hostPaired.fill(paired)
                        try await link.waitForEnd()
                        return paired
                    }
                }
                // A side that never got its turn returns nil; the other side's error, if it
                // threw one, is what the loop rethrows.
                var instants: [ContinuousClock.Instant] = []
                for try await instant in group {
                    if let instant { instants.append(instant) }
                }
                guard instants.count == 2 else { throw BenchError("one side of the pairing ended before Paired") }
                return instants.max()
            }
            let steps = [
                ("viewer connected", nil), ("viewer acknowledged", "viewer connected"), ("code issued", "viewer acknowledged"),
                ("host connected", "code issued"), ("host acknowledged", "host connected"), ("host paired", "host acknowledged"),
                ("viewer paired", "host paired"),
            ]
            let phases = steps.map { name, after -> Double in
                let from: ContinuousClock.Instant? = after.map { marks[$0] } ?? start
                guard let at = marks[name], let from else { return 0 }
                return max(.zero, at - from).seconds
            }
            if let end { load.log.add(PairingSample(start: start, end: end, crossNode: viewerNode != target, phases: phases)) }
        } catch {
            if !load.stop.isSet { load.errors.record(error) }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }
}

/// One pairing case's figures, over the measured window.
struct PairingResult {
    var setup: ClusterSetupKind
    var mode: PairingKind
    var inFlight: Int
    var wall: Double
    /// Pairings that completed in the window.
    var completed: Int
    /// Latencies (s) of the pairings that started and completed in the window.
    var latencies: [Double]
    var crossLatencies: [Double]
    var sameLatencies: [Double]
    /// The median seconds of each step (``PairingKind/phaseNames``) over those pairings.
    var phaseMedians: [Double]
    var relayCPU: [Double]
    var postgresCPU: Double?
    var benchCPU: Double
    var database: DatabaseStatistics?
    var errors: Int
    var firstError: String?
    var directoryMisses: Int

    var pairingsPerSecond: Double { Double(self.completed) / self.wall }
    var relayCPUTotal: Double { self.relayCPU.reduce(0, +) }

    /// Milliseconds of `cpu` per completed pairing.
    func perPairing(_ cpu: Double?) -> Double? { cpu.map { $0 * 1000 / Double(max(self.completed, 1)) } }

    var json: JSON {
        let sorted = self.latencies.sorted()
        func latency(_ values: [Double]) -> JSON {
            let sorted = values.sorted()
            guard !sorted.isEmpty else { return .null }
            return .object([
                ("samples", .int(sorted.count)), ("p50_ms", .double(percentile(sorted, 50) * 1e3)), ("p90_ms", .double(percentile(sorted, 90) * 1e3)),
                ("p99_ms", .double(percentile(sorted, 99) * 1e3)), ("max_ms", .double(sorted.last! * 1e3)),
            ])
        }
        return .object([
            ("setup", .string(self.setup.rawValue)), ("mode", .string(self.mode.rawValue)), ("in_flight", .int(self.inFlight)),
            ("wall_seconds", .double(self.wall)), ("pairings", .int(self.completed)), ("pairings_per_second", .double(self.pairingsPerSecond)),
            ("latency", latency(sorted)), ("latency_cross_node", latency(self.crossLatencies)), ("latency_same_node", latency(self.sameLatencies)),
            (
                "phase_medians_ms",
                .object(zip(self.mode.phaseNames, self.phaseMedians).map { name, value in (name, .double(value * 1e3)) })
            ),
            ("relay_cpu_seconds", .array(self.relayCPU.map { .double($0) })), ("postgres_cpu_seconds", self.postgresCPU.map { .double($0) } ?? .null),
            ("bench_cpu_seconds", .double(self.benchCPU)),
            ("relay_cpu_ms_per_pairing", .double(self.perPairing(self.relayCPUTotal) ?? 0)),
            ("postgres_cpu_ms_per_pairing", self.perPairing(self.postgresCPU).map { .double($0) } ?? .null),
            ("bench_cpu_ms_per_pairing", .double(self.perPairing(self.benchCPU) ?? 0)),
            ("database", self.database?.json ?? .null), ("errors", .int(self.errors)), ("first_error", self.firstError.map { .string($0) } ?? .null),
            ("directory_misses", .int(self.directoryMisses)),
        ])
    }
}

/// Runs `inFlight` pairing workers against `setup` for `warmup` + `seconds`; the figures
/// cover the last `seconds`.
func runPairingCase(
    mode: PairingKind, setup: BenchSetup, tls: AgentTLS, inFlight: Int, ring: Int, warmup: Double, seconds: Double, postgres: BenchPostgres?
) async throws -> PairingResult {
    let nodeCount = setup.nodes.count
    let load = PairingLoad(
        nodes: setup.nodes.map(\.address), tls: tls, stop: StopFlag(), log: PairingLog(), errors: ErrorLog(), directoryMisses: Counter(),
        finished: Counter())
    let accounts = setup.accounts
    // Clients spread over the nodes as a balancer spreads them: worker i's viewer on node
    // i mod N; its hosts (or its n-th support-code host) on the next nodes in turn, so
    // that with 3 nodes 2 of every 3 pairings cross nodes.
    let agents: [[HostAgent]] =
        mode == .unattended
        ? (0..<inFlight).map { worker in
            (0..<ring).map { slot in HostAgent(host: accounts.hosts[worker * ring + slot], node: (worker + 1 + slot) % nodeCount) }
        } : []
    return try await withThrowingTaskGroup(of: Void.self) { group in
        for worker in 0..<inFlight {
            let engineer = accounts.engineers[worker]
            let viewerNode = worker % nodeCount
            switch mode {
            case .unattended:
                for agent in agents[worker] { group.addTask { await agent.run(load) } }
                let hosts = agents[worker]
                group.addTask { await unattendedWorker(load, engineer: engineer, viewerNode: viewerNode, hosts: hosts) }
            case .attended:
                group.addTask {
                    await attendedWorker(load, worker: worker, engineer: engineer, viewerNode: viewerNode) { turn in (viewerNode + 1 + turn) % nodeCount }
                }
            }
        }
        try await Task.sleep(for: .seconds(warmup))
        let cpu0 = setup.relayCPU()
        let postgres0 = postgres?.cpuSeconds()
        let database0 = try setup.database.flatMap { try postgres?.statistics(of: $0) }
        let bench0 = processCPUTime()
        let start = ContinuousClock.now
        try await Task.sleep(for: .seconds(seconds))
        let end = ContinuousClock.now
        let cpu1 = setup.relayCPU()
        let postgres1 = postgres?.cpuSeconds()
        let bench1 = processCPUTime()
        let database1 = try setup.database.flatMap { try postgres?.statistics(of: $0) }
        let errors = (load.errors.count, load.errors.first)
        load.stop.set()
        for agent in agents.joined() { agent.finish() }
        _ = try await waitUntil({ load.finished.value >= inFlight }, timeout: 10)
        group.cancelAll()
        while true {
            do { guard try await group.next() != nil else { break } } catch {}
        }
        let samples = load.log.samples
        let inWindow = samples.filter { $0.start >= start && $0.end <= end }
        func latency(_ sample: PairingSample) -> Double { (sample.end - sample.start).seconds }
        return PairingResult(
            setup: setup.kind, mode: mode, inFlight: inFlight, wall: (end - start).seconds,
            completed: samples.filter { $0.end >= start && $0.end <= end }.count,
            latencies: inWindow.map(latency), crossLatencies: inWindow.filter(\.crossNode).map(latency),
            sameLatencies: inWindow.filter { !$0.crossNode }.map(latency),
            phaseMedians: mode.phaseNames.indices.map { index in
                let values = inWindow.map { $0.phases[index] }.sorted()
                return values.isEmpty ? 0 : percentile(values, 50)
            },
            relayCPU: zip(cpu1, cpu0).map { $0 - $1 }, postgresCPU: postgres1.flatMap { after in postgres0.map { after - $0 } },
            benchCPU: (bench1 - bench0).seconds, database: database1.flatMap { after in database0.map { after - $0 } },
            errors: errors.0, firstError: errors.1, directoryMisses: load.directoryMisses.value
        )
    }
}

// MARK: - Sessions that stay paired

/// Opens a paired session: the host registers on `hostNode`, then the engineer asks for it
/// on `viewerNode` (again while the viewer's node does not find it in the directory yet).
/// `established` counts each side once it is paired.
func addClusterSession(
    to group: inout ThrowingTaskGroup<Void, any Error>, setup: BenchSetup, trust: RelayTrust, host: Accounts.Host, hostNode: Int,
    engineer: ClusterAccounts.Engineer, viewerNode: Int, established: Counter, errors: ErrorLog, misses: Counter,
    hostBody: @escaping @Sendable (RelayConnection) async throws -> Void, viewerBody: @escaping @Sendable (RelayConnection) async throws -> Void
) {
    let registered = Signal()
    let hostAddress = setup.nodes[hostNode].address
    let viewerAddress = setup.nodes[viewerNode].address
    group.addTask {
        defer { registered.fire() }
        do {
            try await RelayConnection.withConnection(to: hostAddress, trust: trust, clientKey: host.key, keepalive: benchKeepalive) { connection in
                try await connection.hello(role: .host)
                _ = try await connection.authenticate(host: .key(hostID: host.id))
                registered.fire()
                _ = try await connection.waitForPairing()
                established.add(1)
                try await hostBody(connection)
            }
        } catch {
            errors.record(error)
            established.add(1)
        }
    }
    group.addTask {
        await registered.wait()
        for attempt in 0... {
            do {
                try await RelayConnection.withConnection(to: viewerAddress, trust: trust, clientKey: engineer.key, keepalive: benchKeepalive) { connection in
                    try await connection.hello(role: .viewer)
                    _ = try await connection.authenticate(viewer: .key(.connect(hostID: host.id)))
                    established.add(1)
                    try await viewerBody(connection)
                }
            } catch let error as RelayClientError where error.code == .noSuchHost && attempt < 500 {
                misses.add(1)
                try? await Task.sleep(for: .milliseconds(10))
                continue
            } catch {
                errors.record(error)
                established.add(1)
            }
            return
        }
    }
}

/// Forwarding throughput of one placement: `sessions` hosts on `hostNode` send 64 KiB
/// TileUpdate frames as fast as the connection takes them (the 4 MiB-per-session window
/// of `relay-bench relay`) to viewers on `viewerNode`.
struct ForwardingResult {
    var crossNode: Bool
    var sessions: Int
    var bytes: Int
    var wall: Double
    var relayCPU: [Double]
    var benchCPU: Double
    var errors: Int
    var firstError: String?

    var relayCPUTotal: Double { self.relayCPU.reduce(0, +) }
    var megabytesPerSecond: Double { Double(self.bytes) / self.wall / 1e6 }
    var megabytesPerRelayCPUSecond: Double { Double(self.bytes) / self.relayCPUTotal / 1e6 }

    var json: JSON {
        .object([
            ("placement", .string(self.crossNode ? "cross-node" : "same-node")), ("sessions", .int(self.sessions)), ("bytes", .int(self.bytes)),
            ("wall_seconds", .double(self.wall)), ("mb_per_second", .double(self.megabytesPerSecond)),
            ("relay_cpu_seconds", .array(self.relayCPU.map { .double($0) })), ("mb_per_relay_cpu_second", .double(self.megabytesPerRelayCPUSecond)),
            ("bench_cpu_seconds", .double(self.benchCPU)), ("errors", .int(self.errors)), ("first_error", self.firstError.map { .string($0) } ?? .null),
        ])
    }
}

func runForwardingCase(
    setup: BenchSetup, trust: RelayTrust, sessions: Int, hostNode: Int, viewerNode: Int, hosts: ArraySlice<Accounts.Host>, warmup: Double, seconds: Double
) async throws -> ForwardingResult {
    let established = Counter()
    let errors = ErrorLog()
    let misses = Counter()
    let received = Counter()
    let sent = Counter()
    let stop = StopFlag()
    let go = Signal()
    let window = windowPerSession * sessions
    return try await withThrowingTaskGroup(of: Void.self) { group in
        for (index, host) in hosts.prefix(sessions).enumerated() {
            addClusterSession(
                to: &group, setup: setup, trust: trust, host: host, hostNode: hostNode, engineer: setup.accounts.engineers[index], viewerNode: viewerNode,
                established: established, errors: errors, misses: misses,
                hostBody: { connection in
                    await go.wait()
                    try await sendTiles(connection.sender, traffic: .tile, stop: stop, sent: sent, window: window, received: { received.value })
                },
                viewerBody: { connection in try await viewerLoop(connection, counter: received) }
            )
        }
        guard try await waitUntil({ established.value >= 2 * sessions }, timeout: 60), errors.count == 0 else {
            stop.set()
            go.fire()
            group.cancelAll()
            throw BenchError("forwarding: \(established.value / 2) of \(sessions) sessions set up in 60 s; errors: \(errors.first ?? "none")")
        }
        go.fire()
        try await Task.sleep(for: .seconds(warmup))
        let bytes0 = received.value
        let cpu0 = setup.relayCPU()
        let bench0 = processCPUTime()
        let start = ContinuousClock.now
        try await Task.sleep(for: .seconds(seconds))
        let bytes1 = received.value
        let cpu1 = setup.relayCPU()
        let bench1 = processCPUTime()
        let wall = (ContinuousClock.now - start).seconds
        let errorCount = errors.count
        let firstError = errors.first
        stop.set()
        _ = try await waitUntil({ false }, timeout: 0.5)
        group.cancelAll()
        while true {
            do { guard try await group.next() != nil else { break } } catch {}
        }
        return ForwardingResult(
            crossNode: hostNode != viewerNode, sessions: sessions, bytes: bytes1 - bytes0, wall: wall, relayCPU: zip(cpu1, cpu0).map { $0 - $1 },
            benchCPU: (bench1 - bench0).seconds, errors: errorCount, firstError: firstError)
    }
}

// MARK: - The database's write rate

/// Where the idle sessions' viewers are, against their hosts (`--idle-placement`).
enum IdlePlacement: String, CaseIterable, Sendable {
    /// As a balancer spreads clients: every (host node, viewer node) pair in turn.
    case mix
    /// Viewer and host on one node.
    case same
    /// Viewer on the node after the host's.
    case cross
}

/// Database counters over one quiet window of a cluster: its nodes' leases alone
/// (`sessions` 0), or with that many idle paired sessions whose usage records the nodes
/// checkpoint every `usage_checkpoint_seconds`.
struct WriteWindow {
    var sessions: Int
    var nodes: Int
    /// Each node's VmRSS (KiB) and open descriptors before the sessions were set up and
    /// when the window began.
    var rssBefore: [Int]
    var rssAfter: [Int]
    var descriptorsBefore: [Int]
    var descriptorsAfter: [Int]
    var seconds: Double
    var database: DatabaseStatistics
    var postgresCPU: Double?
    var relayCPU: [Double]
    var errors: Int
    var firstError: String?

    var minutes: Double { self.seconds / 60 }
    /// RSS the sessions added over all nodes, per session.
    var kibPerSession: Double { Double(self.rssAfter.reduce(0, +) - self.rssBefore.reduce(0, +)) / Double(max(self.sessions, 1)) }
    /// Sockets the sessions added over all nodes, per session: 2 on one node for a session
    /// within a node, 4 over two nodes (the agents' and the node link's) for one across.
    var descriptorsPerSession: Double {
        Double(self.descriptorsAfter.reduce(0, +) - self.descriptorsBefore.reduce(0, +)) / Double(max(self.sessions, 1))
    }

    var json: JSON {
        .object([
            ("sessions", .int(self.sessions)), ("nodes", .int(self.nodes)), ("seconds", .double(self.seconds)), ("database", self.database.json),
            ("rss_kib_before", .array(self.rssBefore.map { .int($0) })), ("rss_kib_after", .array(self.rssAfter.map { .int($0) })),
            ("descriptors_before", .array(self.descriptorsBefore.map { .int($0) })),
            ("descriptors_after", .array(self.descriptorsAfter.map { .int($0) })),
            ("kib_per_session", self.sessions > 0 ? .double(self.kibPerSession) : .null),
            ("descriptors_per_session", self.sessions > 0 ? .double(self.descriptorsPerSession) : .null),
            ("postgres_cpu_seconds", self.postgresCPU.map { .double($0) } ?? .null), ("relay_cpu_seconds", .array(self.relayCPU.map { .double($0) })),
            ("errors", .int(self.errors)), ("first_error", self.firstError.map { .string($0) } ?? .null),
        ])
    }
}

/// Reads the database's counters before and after `seconds` with `sessions` idle paired
/// sessions open (set up before the window, 50 at a time, spread over the nodes as a
/// balancer spreads them). Every agent Pings every 30 s, as relay-agent does. The nodes'
/// RSS and descriptors are read before the set-up and when the window begins.
func measureWrites(
    setup: BenchSetup, trust: RelayTrust, postgres: BenchPostgres, sessions: Int, placement: IdlePlacement = .mix, settle: Double, seconds: Double
) async throws -> WriteWindow {
    guard let database = setup.database else { throw BenchError("the write rate is measured on PostgreSQL only") }
    let established = Counter()
    let errors = ErrorLog()
    let misses = Counter()
    let release = Signal()
    let nodeCount = setup.nodes.count
    let rssBefore = setup.nodes.map { processStatusKiB(pid: $0.pid) }
    let descriptorsBefore = setup.nodes.map { openFileDescriptors(pid: $0.pid) }
    return try await withThrowingTaskGroup(of: Void.self) { group in
        var launched = 0
        while launched < sessions {
            let end = min(launched + 50, sessions)
            for index in launched..<end {
                let hostNode = index % nodeCount
                let viewerNode =
                    switch placement {
                    // All nine (host node, viewer node) pairs in turn with 3 nodes.
                    case .mix: (index + index / nodeCount) % nodeCount
                    case .same: hostNode
                    case .cross: (hostNode + 1) % nodeCount
                    }
                addClusterSession(
                    to: &group, setup: setup, trust: trust, host: setup.accounts.hosts[index], hostNode: hostNode,
                    engineer: setup.accounts.engineers[index % setup.accounts.engineers.count], viewerNode: viewerNode,
                    established: established, errors: errors, misses: misses,
                    hostBody: { _ in await release.wait() },
                    viewerBody: { connection in try await viewerLoop(connection, counter: Counter()) }
                )
            }
            launched = end
            guard try await waitUntil({ established.value >= 2 * launched }, timeout: 60) else {
                release.fire()
                group.cancelAll()
                throw BenchError("idle sessions: \(established.value / 2) of \(launched) set up in 60 s; errors: \(errors.first ?? "none")")
            }
        }
        if sessions > 0 { progress("  \(sessions) idle sessions paired (\(errors.count) errors); settling \(formatFixed(settle, 0)) s") }
        try await Task.sleep(for: .seconds(settle))
        // Statistics now, so that autovacuum's ANALYZE does not write the catalogs in the window.
        try postgres.analyze(database)
        try await Task.sleep(for: .seconds(2))
        let rssAfter = setup.nodes.map { processStatusKiB(pid: $0.pid) }
        let descriptorsAfter = setup.nodes.map { openFileDescriptors(pid: $0.pid) }
        let before = try postgres.statistics(of: database)
        let postgres0 = postgres.cpuSeconds()
        let cpu0 = setup.relayCPU()
        let start = ContinuousClock.now
        try await Task.sleep(for: .seconds(seconds))
        let after = try postgres.statistics(of: database)
        let postgres1 = postgres.cpuSeconds()
        let cpu1 = setup.relayCPU()
        let wall = (ContinuousClock.now - start).seconds
        let errorCount = errors.count
        let firstError = errors.first
        release.fire()
        _ = try await waitUntil({ false }, timeout: 0.5)
        group.cancelAll()
        while true {
            do { guard try await group.next() != nil else { break } } catch {}
        }
        return WriteWindow(
            sessions: sessions, nodes: nodeCount, rssBefore: rssBefore, rssAfter: rssAfter, descriptorsBefore: descriptorsBefore,
            descriptorsAfter: descriptorsAfter, seconds: wall, database: after - before,
            postgresCPU: postgres1.flatMap { after in postgres0.map { after - $0 } }, relayCPU: zip(cpu1, cpu0).map { $0 - $1 }, errors: errorCount,
            firstError: firstError)
    }
}
