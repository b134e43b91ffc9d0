// `relay-bench cluster`: what relay nodes sharing one PostgreSQL database cost (issue 15
// item 7), in one run, with real `relay-server serve` processes on loopback.
//
// - pairing: pairings per second and their latency with many pairings in flight, for one
//   node on SQLite, one on PostgreSQL (alone, and with the cluster settings), and three
//   nodes on PostgreSQL with the clients spread over the nodes as a balancer spreads them
//   (2 of every 3 pairings cross nodes). Unattended: the engineer asks for an enrolled
//   host by id; attended: the engineer asks for a support code and a host presents it.
// - forwarding: bytes per second and per relay CPU-second of sessions whose host and
//   viewer are on the same node, beside sessions whose viewer is on another node (node A
//   → node link → node B).
// - writes: PostgreSQL transactions and rows written by the nodes' leases alone, and with
//   idle paired sessions whose usage records the nodes checkpoint every 30 s.
//
// The PostgreSQL server is the one RELAY_TEST_POSTGRES names (the bench makes and drops
// databases of its own on it), else a throwaway one the bench starts (BenchPostgres.swift).

import ArgumentParser
import Foundation
import NIOCore
import RelayClient

#if canImport(Glibc)
import Glibc
#endif

// JSON holds values only. Saying so here keeps the compiler from inferring it while it
// checks an array of (String, JSON) pairs, a cycle Swift 6.3 reports as "circular
// reference" (it depends on which file is checked first).
extension JSON: @unchecked Sendable {}

struct ClusterBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "Relay nodes on one PostgreSQL database: pairings per second and latency, cross-node forwarding, database writes.",
        discussion: """
            Starts release relay-server processes (--relay-binary) on loopback: one node on SQLite, one on \
            PostgreSQL (alone, and with the cluster settings), and three nodes sharing one PostgreSQL \
            database and cluster secret. A pairing is the viewer's connect and login with its request \
            until both sides hold Paired; --pairs workers pair at once, for --seconds after --warmup. \
            With three nodes, 2 of every 3 pairings cross nodes. Forwarding: 64 KiB TileUpdate frames \
            host → viewer, host and viewer on one node or on two. Writes: pg_stat_database of the \
            cluster's database over --lease-seconds with no session (the node leases), then over \
            --idle-seconds with --idle-sessions idle paired sessions (usage checkpoints every 30 s). \
            PostgreSQL: the server RELAY_TEST_POSTGRES names (a database of the bench's own is made \
            and dropped), else a throwaway server in /tmp (as root its programs run as postgres).
            """
    )

    enum Part: String, CaseIterable { case pairing, forwarding, writes }

    @Flag(name: .long, help: "Print one JSON object with all figures instead of tables.")
    var json = false

    @Option(name: .customLong("relay-binary"), help: "The release relay-server binary.")
    var relayBinary: String = ".build/release/relay-server"

    @Option(name: .long, help: "Comma-separated setups: sqlite, postgres, postgres-cluster, cluster3.")
    var setups: String = "sqlite,postgres,postgres-cluster,cluster3"

    @Option(name: .long, help: "Comma-separated parts: pairing, forwarding (3 nodes), writes (3 nodes).")
    var parts: String = "pairing,forwarding,writes"

    @Option(name: .long, help: "Comma-separated pairing modes: unattended (by host id), attended (by support code).")
    var modes: String = "unattended,attended"

    @Option(name: .long, help: "Comma-separated counts of pairings in flight, a case each: one worker per pairing, with an engineer of its own.")
    var pairs: String = "1,50"

    @Option(name: .long, help: "Enrolled hosts per unattended worker, asked for in turn (each registers again after its session).")
    var ring: Int = 3

    @Option(name: .long, help: "Seconds of measurement per pairing case.")
    var seconds: Double = 10

    @Option(name: .long, help: "Seconds of pairing before each pairing case is measured.")
    var warmup: Double = 2

    @Option(name: .customLong("forward-sessions"), help: "Comma-separated session counts for forwarding.")
    var forwardSessions: String = "1,10"

    @Option(name: .customLong("forward-seconds"), help: "Seconds of measurement per forwarding case (after 1 s).")
    var forwardSeconds: Double = 10

    @Option(name: .customLong("idle-sessions"), help: "Idle paired sessions while the database's writes are counted.")
    var idleSessions: Int = 1000

    @Option(
        name: .customLong("idle-placement"),
        help:
            "Where the idle sessions' viewers are: mix (every host node, viewer node pair in turn, as a balancer spreads them), same (the host's node) or cross (another node)."
    )
    var idlePlacement: String = "mix"

    @Option(name: .customLong("idle-seconds"), help: "Seconds the writes of the idle sessions are counted (a multiple of 30 counts whole checkpoints).")
    var idleSeconds: Double = 120

    @Option(name: .customLong("lease-seconds"), help: "Seconds the writes of the node leases alone are counted.")
    var leaseSeconds: Double = 120

    @Option(name: .long, help: "A folder to copy every node's log into (relay-server's output), for a look afterwards.")
    var logs: String?

    @Option(name: .customLong("postgres-fsync"), help: "fsync of the throwaway PostgreSQL server: on (PostgreSQL's default) or off (as the tests run it).")
    var postgresFsync: String = "on"

    var setupKinds: [ClusterSetupKind] { Self.list(self.setups).compactMap(ClusterSetupKind.init(rawValue:)) }
    var partList: [Part] { Self.list(self.parts).compactMap(Part.init(rawValue:)) }
    var modeList: [PairingKind] { Self.list(self.modes).compactMap(PairingKind.init(rawValue:)) }
    var forwardCounts: [Int] { Self.list(self.forwardSessions).compactMap { Int($0) } }
    var pairCounts: [Int] { Self.list(self.pairs).compactMap { Int($0) } }

    static func list(_ text: String) -> [String] { text.split(separator: ",").map { String($0).trimmingWhitespace } }

    func validate() throws {
        guard !self.setupKinds.isEmpty, self.setupKinds.count == Self.list(self.setups).count else {
            throw ValidationError("--setups takes sqlite, postgres, postgres-cluster or cluster3, comma-separated")
        }
        guard !self.partList.isEmpty, self.partList.count == Self.list(self.parts).count else {
            throw ValidationError("--parts takes pairing, forwarding or writes, comma-separated")
        }
        guard !self.modeList.isEmpty, self.modeList.count == Self.list(self.modes).count else {
            throw ValidationError("--modes takes unattended or attended, comma-separated")
        }
        guard !self.forwardCounts.isEmpty, self.forwardCounts.allSatisfy({ $0 > 0 }), self.forwardCounts.count == Self.list(self.forwardSessions).count else {
            throw ValidationError("--forward-sessions takes positive counts, e.g. 1,10")
        }
        guard !self.pairCounts.isEmpty, self.pairCounts.allSatisfy({ $0 > 0 }), self.pairCounts.count == Self.list(self.pairs).count else {
            throw ValidationError("--pairs takes positive counts, e.g. 1,50")
        }
        guard self.ring > 0, self.idleSessions >= 0 else { throw ValidationError("--ring must be positive, --idle-sessions ≥ 0") }
        for (name, value) in [
            ("--seconds", self.seconds), ("--forward-seconds", self.forwardSeconds), ("--idle-seconds", self.idleSeconds),
            ("--lease-seconds", self.leaseSeconds),
        ] where !(value > 0) {
            throw ValidationError("\(name) must be a positive number of seconds")
        }
        guard IdlePlacement(rawValue: self.idlePlacement) != nil else { throw ValidationError("--idle-placement takes mix, same or cross") }
        guard self.warmup >= 0 else { throw ValidationError("--warmup must be ≥ 0") }
        guard self.postgresFsync == "on" || self.postgresFsync == "off" else { throw ValidationError("--postgres-fsync takes on or off") }
    }

    func run() async throws {
        _ = raiseFileDescriptorLimit()
        guard FileManager.default.isExecutableFile(atPath: self.relayBinary) else {
            throw BenchError(
                "no relay-server at \(self.relayBinary); build it with `swift build -c release --scratch-path .build-release --product relay-server` and pass --relay-binary"
            )
        }
        let directory = NSTemporaryDirectory() + "relay-bench-cluster-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let tls = try TLSMaterial.generate(in: directory)
        let trust = RelayTrust.fingerprint(tls.fingerprint)
        let agentTLS = try AgentTLS(tls: tls)
        let secretFile = directory + "/cluster.secret"
        try writeClusterSecret(to: secretFile)

        var postgres: BenchPostgres?
        if self.setupKinds.contains(where: \.usesPostgres) {
            if let url = ProcessInfo.processInfo.environment["RELAY_TEST_POSTGRES"], !url.isEmpty {
                progress("PostgreSQL: the server RELAY_TEST_POSTGRES names")
                postgres = try BenchPostgres.external(url: url)
            } else {
                progress("PostgreSQL: starting a throwaway server (fsync \(self.postgresFsync))")
                postgres = try BenchPostgres.startThrowaway(fsync: self.postgresFsync == "on")
            }
        }
        defer { postgres?.stop() }

        var pairings: [PairingResult] = []
        var forwarding: [ForwardingResult] = []
        var leases: WriteWindow?
        var idle: WriteWindow?
        var notes: [String] = []
        let engineersNeeded = max(self.pairCounts.max() ?? 1, self.forwardCounts.max() ?? 1)
        let hostsNeeded = max(engineersNeeded * self.ring, self.idleSessions, self.forwardCounts.max() ?? 0)

        for kind in self.setupKinds {
            let wantsPairing = self.partList.contains(.pairing)
            let wantsForwarding = kind == .cluster3 && self.partList.contains(.forwarding)
            let wantsWrites = kind == .cluster3 && self.partList.contains(.writes)
            guard wantsPairing || wantsForwarding || wantsWrites else { continue }
            progress("\(kind.label): accounts (\(engineersNeeded) engineers, \(hostsNeeded) hosts) and nodes")
            let setup = try await BenchSetup.start(
                kind, binary: self.relayBinary, postgres: postgres, tls: tls, secretFile: secretFile, directory: directory, engineers: engineersNeeded,
                hosts: hostsNeeded)
            notes.append(
                "\(kind.label): accounts made through RelayStore in \(formatFixed(setup.accounts.seconds, 1)) s; nodes \(setup.nodes.map { "\($0.name) pid \($0.pid)" }.joined(separator: ", "))"
            )
            do {
                if wantsWrites, let postgres {
                    progress("\(kind.label): node leases alone, \(formatFixed(self.leaseSeconds, 0)) s")
                    leases = try await measureWrites(setup: setup, trust: trust, postgres: postgres, sessions: 0, settle: 10, seconds: self.leaseSeconds)
                    progress("\(kind.label): \(self.idleSessions) idle sessions, \(formatFixed(self.idleSeconds, 0)) s")
                    idle = try await measureWrites(
                        setup: setup, trust: trust, postgres: postgres, sessions: self.idleSessions,
                        placement: IdlePlacement(rawValue: self.idlePlacement) ?? .mix,
                        settle: 10, seconds: self.idleSeconds)
                }
                if wantsForwarding {
                    for count in self.forwardCounts {
                        for (hostNode, viewerNode) in [(0, 0), (0, 1)] {
                            progress("\(kind.label): forwarding, \(count) sessions, host on node \(hostNode), viewer on node \(viewerNode)")
                            let hosts = setup.accounts.hosts[0..<count]
                            forwarding.append(
                                try await runForwardingCase(
                                    setup: setup, trust: trust, sessions: count, hostNode: hostNode, viewerNode: viewerNode, hosts: hosts, warmup: 1,
                                    seconds: self.forwardSeconds))
                        }
                    }
                }
                if wantsPairing {
                    for mode in self.modeList {
                        for count in self.pairCounts {
                            progress("\(kind.label): \(mode.rawValue) pairings, \(count) in flight")
                            let result = try await runPairingCase(
                                mode: mode, setup: setup, tls: agentTLS, inFlight: count, ring: self.ring, warmup: self.warmup, seconds: self.seconds,
                                postgres: kind.usesPostgres ? postgres : nil)
                            progress(
                                "  \(result.completed) pairings, \(formatFixed(result.pairingsPerSecond, 1))/s, \(result.errors) errors\(result.firstError.map { ", first: \($0)" } ?? "")"
                            )
                            pairings.append(result)
                        }
                    }
                }
            } catch {
                let tails = setup.logTails
                setup.stop()
                if let logs = self.logs { setup.copyLogs(to: logs) }
                throw BenchError("\(kind.label): \(error)\nnode logs:\n\(tails)")
            }
            setup.stop()
            if let logs = self.logs { setup.copyLogs(to: logs) }
        }

        notes += [
            "a pairing runs from the viewer's TCP connect (TLS with its key, Hello, ViewerAuth) until both sides hold Paired; unattended: the host registered before (it registers again after each session, off the clock, while its worker pairs its other hosts); attended: the host's whole connection (TLS, Hello, HostAuth with the code) is inside the pairing",
            "relay ms/pairing, PG ms/pairing, bench ms/pairing: CPU of all relay-server processes (/proc/PID/stat), of the PostgreSQL server (postmaster, its children, and the children that ended), and of this process, over the window, per pairing completed in it",
            "PG xact and rows per pairing: pg_stat_database of the setup's database (commits, rows inserted + updated + deleted), read before and after the window; backends report when they go idle, so a reading lags the work by about a second",
            "this machine has \(System.coreCount) cores: the relays, PostgreSQL and this load generator share them, and cpu/wall of all of them together shows whether the machine was the limit",
        ]
        if let postgres, postgres.folder != nil, !postgres.fsync {
            notes.append("the throwaway PostgreSQL ran with fsync off: commits do not wait for the disk")
        }
        self.emit(pairings: pairings, forwarding: forwarding, leases: leases, idle: idle, notes: notes, postgres: postgres)
    }

    /// Prints the tables or the JSON object. Not async: the report's JSON values never
    /// cross an await.
    func emit(pairings: [PairingResult], forwarding: [ForwardingResult], leases: WriteWindow?, idle: WriteWindow?, notes: [String], postgres: BenchPostgres?) {
        var report = Report(benchmark: "cluster")
        report.settings = [
            ("relay_binary", .string(self.relayBinary)), ("setups", .string(self.setups)), ("parts", .string(self.parts)),
            ("modes", .string(self.modes)), ("pairs_in_flight", .string(self.pairs)), ("hosts_per_worker", .int(self.ring)),
            ("pairing_seconds", .double(self.seconds)), ("warmup_seconds", .double(self.warmup)), ("forward_sessions", .string(self.forwardSessions)),
            ("forward_seconds", .double(self.forwardSeconds)), ("idle_sessions", .int(self.idleSessions)), ("idle_placement", .string(self.idlePlacement)),
            ("idle_seconds", .double(self.idleSeconds)),
            ("lease_seconds", .double(self.leaseSeconds)),
            ("postgres", Self.postgresSettings(postgres)),
            ("usage_checkpoint_seconds", .int(30)), ("node_lease_seconds", .int(15)), ("event_loop_threads", .string("default (one per core)")),
        ]

        report.sections += Self.pairingSections(pairings)
        if !forwarding.isEmpty { report.sections.append(Self.forwardingSection(forwarding)) }
        if let leases, let idle {
            report.sections.append(Self.writeSection(leases: leases, idle: idle))
            var tables = Table(columns: [
                .init("window", .left), .init("table", .left), .init("inserted", .right), .init("updated", .right), .init("deleted", .right),
            ])
            for (name, window) in [("node leases alone", leases), ("leases + idle sessions", idle)] {
                for (table, writes) in window.database.tables.sorted(by: { $0.key < $1.key }) {
                    tables.add([name, table, "\(writes.inserted)", "\(writes.updated)", "\(writes.deleted)"])
                }
            }
            report.sections.append(("PostgreSQL rows written by table (pg_stat_user_tables) in those windows", tables, .array([])))
            var memory = Table(columns: [
                .init("sessions", .right), .init("RSS before, by node KiB", .left), .init("RSS after, by node KiB", .left), .init("KiB per session", .right),
                .init("fds added per session", .right),
            ])
            memory.add([
                "\(idle.sessions)", idle.rssBefore.map(String.init).joined(separator: " / "), idle.rssAfter.map(String.init).joined(separator: " / "),
                formatFixed(idle.kibPerSession, 1), formatFixed(idle.descriptorsPerSession, 2),
            ])
            report.sections.append(
                (
                    "idle sessions' memory over the three nodes (RSS and sockets added by the sessions, read 10 s after the last paired; a cross-node session holds 2 sockets on each of two nodes)",
                    memory, .array([])
                ))
            if let statements = Self.statementSection(
                title: "PostgreSQL statements in those windows (pg_stat_statements), per node-minute",
                rows: [
                    ("node leases alone", leases.database, Double(leases.nodes) * leases.minutes, "node-min"),
                    ("leases + idle sessions", idle.database, Double(idle.nodes) * idle.minutes, "node-min"),
                ], limit: 12)
            {
                report.sections.append(statements)
            }
        }
        let statementCases = pairings.filter { $0.database.map { !$0.statements.isEmpty } ?? false && $0.inFlight > 1 }
        if let statements = Self.statementSection(
            title: "PostgreSQL statements per pairing (pg_stat_statements; the most frequent of each case with pairings in flight)",
            rows: statementCases.map { ("\($0.setup.label), \($0.mode.rawValue)", $0.database!, Double(max($0.completed, 1)), "pairing") }, limit: 10)
        {
            report.sections.append(statements)
        }
        report.notes = notes
        report.emit(json: self.json)
    }

    // MARK: Sections

    static func postgresSettings(_ server: BenchPostgres?) -> JSON {
        guard let server else { return .null }
        return .object([
            ("server", .string(server.folder == nil ? "RELAY_TEST_POSTGRES" : "throwaway")), ("version", .string(server.version)),
            ("fsync", .bool(server.fsync)), ("cpu_measured", .bool(server.cpuSeconds() != nil)),
        ])
    }

    static func milliseconds(_ sorted: [Double], _ p: Double) -> String {
        sorted.isEmpty ? "" : formatFixed(percentile(sorted, p) * 1e3, 1)
    }

    static func pairingSections(_ results: [PairingResult]) -> [(title: String, table: Table, json: JSON)] {
        guard !results.isEmpty else { return [] }
        var table = Table(columns: [
            .init("setup", .left), .init("mode", .left), .init("in flight", .right), .init("pairings/s", .right), .init("p50 ms", .right),
            .init("p90 ms", .right), .init("p99 ms", .right), .init("max ms", .right), .init("cross-node", .right), .init("relay cpu/wall", .right),
            .init("PG cpu/wall", .right),
            .init("bench cpu/wall", .right), .init("relay ms/pairing", .right), .init("PG ms/pairing", .right), .init("bench ms/pairing", .right),
            .init("PG xact/pairing", .right), .init("PG rows/pairing", .right), .init("PG rollbacks", .right), .init("errors", .right),
            .init("dir. misses", .right),
        ])
        var placement = Table(columns: [
            .init("setup", .left), .init("mode", .left), .init("in flight", .right), .init("placement", .left), .init("samples", .right),
            .init("p50 ms", .right),
            .init("p90 ms", .right), .init("p99 ms", .right), .init("max ms", .right),
        ])
        for result in results {
            let sorted = result.latencies.sorted()
            let perPairing: (Int) -> String = { formatFixed(Double($0) / Double(max(result.completed, 1)), 2) }
            table.add([
                result.setup.label, result.mode.rawValue, "\(result.inFlight)", formatFixed(result.pairingsPerSecond, 1), milliseconds(sorted, 50),
                milliseconds(sorted, 90),
                milliseconds(sorted, 99), sorted.last.map { formatFixed($0 * 1e3, 1) } ?? "",
                "\(result.crossLatencies.count)/\(result.latencies.count)", formatFixed(result.relayCPUTotal / result.wall, 2),
                result.postgresCPU.map { formatFixed($0 / result.wall, 2) } ?? "", formatFixed(result.benchCPU / result.wall, 2),
                formatFixed(result.perPairing(result.relayCPUTotal) ?? 0, 2), result.perPairing(result.postgresCPU).map { formatFixed($0, 2) } ?? "",
                formatFixed(result.perPairing(result.benchCPU) ?? 0, 2), result.database.map { perPairing($0.commits) } ?? "",
                result.database.map { perPairing($0.rowsWritten) } ?? "", result.database.map { "\($0.rollbacks)" } ?? "", "\(result.errors)",
                "\(result.directoryMisses)",
            ])
            if result.setup.nodeCount > 1 {
                for (name, values) in [("cross-node", result.crossLatencies), ("same node", result.sameLatencies)] {
                    let sorted = values.sorted()
                    placement.add([
                        result.setup.label, result.mode.rawValue, "\(result.inFlight)", name, "\(sorted.count)", milliseconds(sorted, 50),
                        milliseconds(sorted, 90),
                        milliseconds(sorted, 99), sorted.last.map { formatFixed($0 * 1e3, 1) } ?? "",
                    ])
                }
            }
        }
        var sections: [(title: String, table: Table, json: JSON)] = [
            ("pairings: latency from the viewer's connect until both sides hold Paired", table, .array(results.map(\.json)))
        ]
        if !placement.rows.isEmpty {
            sections.append(("pairing latency by placement (viewer and host on the same node or not)", placement, .array([])))
        }
        for mode in PairingKind.allCases {
            let ofMode = results.filter { $0.mode == mode }
            guard !ofMode.isEmpty else { continue }
            var phases = Table(
                columns: [.init("setup", .left), .init("in flight", .right)] + mode.phaseNames.map { .init($0, .right) } + [.init("whole, p50", .right)])
            for result in ofMode {
                phases.add(
                    [result.setup.label, "\(result.inFlight)"] + result.phaseMedians.map { formatFixed($0 * 1e3, 1) }
                        + [milliseconds(result.latencies.sorted(), 50)])
            }
            sections.append(("where a\(mode == .attended ? "n attended" : "n unattended") pairing's time goes: median ms of each step", phases, .array([])))
        }
        return sections
    }

    static func forwardingSection(_ results: [ForwardingResult]) -> (title: String, table: Table, json: JSON) {
        var table = Table(columns: [
            .init("placement", .left), .init("sessions", .right), .init("MB/s", .right), .init("relay CPU s", .right), .init("relay cpu/wall", .right),
            .init("MB per relay CPU-s", .right), .init("CPU s by node", .left), .init("bench cpu/wall", .right), .init("errors", .right),
        ])
        for result in results {
            table.add([
                result.crossNode ? "cross-node (A → link → B)" : "same node (A)", "\(result.sessions)", formatFixed(result.megabytesPerSecond, 1),
                formatFixed(result.relayCPUTotal, 2), formatFixed(result.relayCPUTotal / result.wall, 2), formatFixed(result.megabytesPerRelayCPUSecond, 1),
                result.relayCPU.map { formatFixed($0, 2) }.joined(separator: " / "), formatFixed(result.benchCPU / result.wall, 2), "\(result.errors)",
            ])
        }
        var json = results.map(\.json)
        for count in Set(results.map(\.sessions)).sorted() {
            guard let same = results.first(where: { $0.sessions == count && !$0.crossNode }),
                let cross = results.first(where: { $0.sessions == count && $0.crossNode })
            else { continue }
            json.append(
                .object([
                    ("sessions", .int(count)), ("cross_over_same_mb_per_second", .double(cross.megabytesPerSecond / same.megabytesPerSecond)),
                    ("cross_over_same_mb_per_relay_cpu_second", .double(cross.megabytesPerRelayCPUSecond / same.megabytesPerRelayCPUSecond)),
                ]))
        }
        return (
            "forwarding, 3 nodes: 64 KiB TileUpdate frames host → viewer, flat out (4 MiB window per session); MB = 10^6 bytes received by the viewers; relay CPU = all three nodes",
            table, .array(json)
        )
    }

    static func writeSection(leases: WriteWindow, idle: WriteWindow) -> (title: String, table: Table, json: JSON) {
        var table = Table(columns: [
            .init("window", .left), .init("nodes", .right), .init("sessions", .right), .init("seconds", .right), .init("transactions", .right),
            .init("rollbacks", .right), .init("rows written", .right), .init("WAL KiB", .right), .init("PG CPU s", .right),
            .init("xact per node-min", .right), .init("rows per node-min", .right), .init("WAL KiB per node-min", .right),
        ])
        for window in [leases, idle] {
            let nodeMinutes = Double(window.nodes) * window.minutes
            table.add([
                window.sessions == 0 ? "node leases alone" : "leases + idle sessions", "\(window.nodes)", "\(window.sessions)",
                formatFixed(window.seconds, 1), "\(window.database.commits)", "\(window.database.rollbacks)", "\(window.database.rowsWritten)",
                formatFixed(Double(window.database.walBytes) / 1024, 1), window.postgresCPU.map { formatFixed($0, 2) } ?? "",
                formatFixed(Double(window.database.commits) / nodeMinutes, 2), formatFixed(Double(window.database.rowsWritten) / nodeMinutes, 2),
                formatFixed(Double(window.database.walBytes) / 1024 / nodeMinutes, 2),
            ])
        }
        // The sessions' own writes: the idle window less the leases' rate over its length.
        let scale = idle.seconds / leases.seconds
        let sessionMinutes = Double(max(idle.sessions, 1)) * idle.minutes
        let netCommits = Double(idle.database.commits) - Double(leases.database.commits) * scale
        let netRows = Double(idle.database.rowsWritten) - Double(leases.database.rowsWritten) * scale
        let netWAL = Double(idle.database.walBytes) - Double(leases.database.walBytes) * scale
        let netCPU = idle.postgresCPU.flatMap { cpu in leases.postgresCPU.map { cpu - $0 * scale } }
        table.add([
            "per session-minute (idle less leases)", "", "", "", formatFixed(netCommits / sessionMinutes, 3), "", formatFixed(netRows / sessionMinutes, 3),
            formatFixed(netWAL / sessionMinutes / 1024, 2), netCPU.map { formatFixed($0 * 1000 / sessionMinutes, 2) + " ms" } ?? "", "", "", "",
        ])
        func perNodeMinute(_ window: WriteWindow) -> JSON {
            let nodeMinutes = Double(window.nodes) * window.minutes
            return .object([
                ("transactions", .double(Double(window.database.commits) / nodeMinutes)),
                ("rows_written", .double(Double(window.database.rowsWritten) / nodeMinutes)),
                ("wal_bytes", .double(Double(window.database.walBytes) / nodeMinutes)),
            ])
        }
        let json: JSON = .object([
            ("leases", leases.json), ("idle_sessions", idle.json), ("per_node_minute_leases", perNodeMinute(leases)),
            ("per_node_minute_with_sessions", perNodeMinute(idle)),
            (
                "per_session_minute",
                .object([
                    ("transactions", .double(netCommits / sessionMinutes)), ("rows_written", .double(netRows / sessionMinutes)),
                    ("wal_bytes", .double(netWAL / sessionMinutes)), ("postgres_cpu_ms", netCPU.map { .double($0 * 1000 / sessionMinutes) } ?? .null),
                ])
            ),
        ])
        return (
            "PostgreSQL writes (the cluster's database: transactions and rollbacks from pg_stat_database, rows written to the relay's tables from pg_stat_user_tables; WAL is the whole server's): usage_checkpoint_seconds 30, node_lease_seconds 15 (renewed every 5 s)",
            table, json
        )
    }

    /// The statements of each window, most frequent first, `limit` of them.
    static func statementSection(
        title: String, rows: [(label: String, statistics: DatabaseStatistics, per: Double, perName: String)], limit: Int
    ) -> (title: String, table: Table, json: JSON)? {
        var table = Table(columns: [
            .init("case", .left), .init("calls", .right), .init("per \(rows.first?.perName ?? "")", .right), .init("rows", .right), .init("statement", .left),
        ])
        for row in rows {
            for (text, count) in row.statistics.statements.sorted(by: { $0.value.calls > $1.value.calls }).prefix(limit) {
                let shown = text.count > 110 ? String(text.prefix(107)) + "…" : text
                table.add([row.label, "\(count.calls)", formatFixed(Double(count.calls) / row.per, 3), "\(count.rows)", shown])
            }
        }
        return table.rows.isEmpty ? nil : (title, table, .array([]))
    }
}
