// `relay-bench soak`: does relay-server give back the memory of connections that are gone?
//
// Starts a release relay-server (as `relay-bench relay` does), then opens and closes
// --connections connections in bursts of --concurrency, in the ways of SoakClient.swift:
// clean logins with Bye, pairings, resets, frames cut off mid-way, TLS handshakes cut off,
// pre-authentication claims of a 1 MiB Hello, failed logins. It reads the relay's RSS
// (/proc/PID/status VmRSS; VmHWM for the kernel's own peak) before, at each burst's peak,
// and after everything closed and --settle seconds passed, and reports what stayed behind
// per connection. With --max-growth-mb it exits 1 when the RSS after the run exceeds the
// RSS after the warm-up by more than that.

import ArgumentParser
import Crypto
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import RelayWire

#if canImport(Glibc)
import Glibc
#endif

struct SoakBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "soak",
        abstract: "Opens and closes many connections in mixed ways; relay-server RSS before, at peak and after.",
        discussion: """
            Starts relay-server (--relay-binary) on loopback with a freshly generated certificate, \
            a company, and one enrolled host and one engineer per concurrent connection. Runs \
            --warmup connections, waits --settle seconds and reads the baseline RSS; then \
            --connections connections in bursts of --concurrency; then waits --settle seconds \
            and reads the RSS again. Modes for --mix (NAME=WEIGHT, comma-separated): \
            clean (Hello, valid login, Bye), pair (two connections paired; Bye or a frame cut \
            mid-way), reset (TCP RST after HelloAck), midframe (half a big frame, then close), \
            handshake (closed mid TLS handshake), claim (before Hello, a header announcing a \
            --claim-bytes Hello and all but --claim-short of its bytes, held until the whole \
            burst is connected and the relay has read what it sent), authfail (a key login with a key that is not the account's). \
            Engineers and hosts log in with keys made for the run, proved as TLS client certificates. The relay's config file \
            (--relay-config, or a default one that lifts the auth-failure throttle, which would \
            otherwise refuse the failed logins of the mix) is printed with the results.
            """
    )

    @Flag(name: .long, help: "Print one JSON object with all figures instead of tables.")
    var json = false

    @Option(name: .long, help: "Connections to open and close after the warm-up (a pair unit counts 2).")
    var connections: Int = 100_000

    @Option(name: .long, help: "Connections open at once: each burst opens this many, waits until all have done their part, then closes them.")
    var concurrency: Int = 200

    @Option(name: .long, help: "Weights of the modes, NAME=WEIGHT,… (modes: \(SoakMode.allCases.map(\.rawValue).joined(separator: ", "))).")
    var mix: String = "clean=3,pair=2,reset=2,midframe=2,handshake=2,claim=1,authfail=2"

    @Option(name: .long, help: "Connections, same mix, before the baseline is read (first-use allocations are not per-connection growth).")
    var warmup: Int = 2_000

    @Option(name: .long, help: "Seconds to wait after the last connection closed before RSS is read (also after the warm-up).")
    var settle: Double = 20

    @Option(name: .customLong("claim-bytes"), help: "The Hello payload length a claim announces (default: the relay's default payload limit, 1 MiB).")
    var claimBytes: Int = Frame.defaultMaximumPayloadLength

    @Option(name: .customLong("claim-short"), help: "Bytes of the announced payload a claim leaves unsent.")
    var claimShort: Int = 1

    @Option(name: .long, help: "Distinct local source addresses (127.0.0.2 and up) the connections come from, round robin.")
    var sources: Int = 64

    @Option(
        name: .customLong("client-tls"), help: "TLS version the soak's clients offer: 1.3 (as the agents do), 1.2, or mixed (every other cycle of the mix).")
    var clientTLS: ClientTLS = .mixed

    enum ClientTLS: String, ExpressibleByArgument, CaseIterable {
        case tls13 = "1.3"
        case tls12 = "1.2"
        case mixed
    }

    @Option(name: .customLong("connection-deadline"), help: "Seconds after which a connection the relay has not finished is closed (counted as unexpected).")
    var connectionDeadline: Int = 30

    @Option(name: .customLong("max-growth-mb"), help: "Exit 1 when RSS after the run minus RSS after the warm-up exceeds this many MiB.")
    var maxGrowthMiB: Double?

    @Option(
        name: .customLong("stop-at-rss-mb"),
        help: "Stop opening connections once the relay's RSS passes this many MiB (a leaking relay on a shared machine); the report says where it stopped.")
    var stopAtRSSMiB: Double?

    @Option(name: .customLong("relay-binary"), help: "The release relay-server binary.")
    var relayBinary: String = ".build/release/relay-server"

    @Option(name: .customLong("relay-config"), help: "A relay config file (JSON) to use instead of the bench's default one.")
    var relayConfig: String?

    @Option(
        name: .customLong("relay-wrapper"),
        help: "A command the relay runs under, e.g. \"heaptrack -o /tmp/relay\" (RSS is read from the process whose command line is the relay's).")
    var relayWrapper: String?

    @Option(
        name: .customLong("inspect-command"),
        help: ArgumentHelp(
            "A shell command run on the relay at the baseline and at the end, {pid} replaced by its pid; RSS is read again after it.",
            discussion:
                "E.g. \"benchmarks/malloc-probe/ask.sh /tmp/mp\" with --relay-wrapper \"env LD_PRELOAD=benchmarks/malloc-probe/.build/libmalloc-probe.so MALLOC_PROBE_DIR=/tmp/mp\": glibc's bytes in use and free, then RSS once free memory is given back (malloc_trim). Its output and the relay's new log lines are printed with the results. Calling malloc functions from gdb instead can hang the relay: gdb stops every thread, possibly inside malloc."
        ))
    var inspectCommand: String?

    @Option(name: .customLong("keep-logs"), help: "Copy the relay's log here at the end.")
    var keepLogs: String?

    func validate() throws {
        guard self.connections > 0, self.concurrency > 0, self.warmup >= 0 else {
            throw ValidationError("--connections and --concurrency must be positive, --warmup ≥ 0")
        }
        guard self.settle >= 0 else { throw ValidationError("--settle must be ≥ 0 seconds") }
        guard (1...250).contains(self.sources) else { throw ValidationError("--sources must be 1…250") }
        guard (0...Frame.maximumEncodablePayloadLength).contains(self.claimBytes), self.claimShort >= 0 else {
            throw ValidationError("--claim-bytes must be 0…\(Frame.maximumEncodablePayloadLength), --claim-short ≥ 0")
        }
        _ = try self.schedule()
    }

    /// The modes in the order units run them: each mode repeated by its weight, interleaved.
    func schedule() throws -> [SoakMode] {
        var weights: [(SoakMode, Int)] = []
        for item in self.mix.split(separator: ",") {
            let parts = item.split(separator: "=").map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, let mode = SoakMode(rawValue: parts[0]), let weight = Int(parts[1]), weight >= 0 else {
                throw ValidationError("--mix takes NAME=WEIGHT,… with NAME one of \(SoakMode.allCases.map(\.rawValue).joined(separator: ", ")); got '\(item)'")
            }
            weights.append((mode, weight))
        }
        var schedule: [SoakMode] = []
        let rounds = weights.map(\.1).max() ?? 0
        for round in 0..<rounds {
            for (mode, weight) in weights where round < weight { schedule.append(mode) }
        }
        guard !schedule.isEmpty else { throw ValidationError("--mix gives every mode weight 0") }
        return schedule
    }

    static let defaultRelayConfig = """
        {
          "free_auth_failures_per_source": 1000000,
          "code_guesses_per_minute": 1000000,
          "code_guesses_per_hour": 1000000,
          "maximum_connections_per_source": 100000,
          "maximum_unauthenticated_per_source": 100000,
          "maximum_unauthenticated": 100000,
          "unauthenticated_early_drop_start": 100000,
          "usage_checkpoint_seconds": 5
        }

        """

    func run() async throws {
        let schedule = try self.schedule()
        _ = raiseFileDescriptorLimit()
        guard FileManager.default.isExecutableFile(atPath: self.relayBinary) else {
            throw BenchError("no relay-server at \(self.relayBinary); build it with `swift build -c release --product relay-server` and pass --relay-binary")
        }
        let directory = NSTemporaryDirectory() + "relay-bench-soak-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let tls = try TLSMaterial.generate(in: directory)
        let data = "\(directory)/data"
        let configPath = "\(directory)/relay.json"
        let configText = try self.relayConfig.map { try String(contentsOfFile: $0, encoding: .utf8) } ?? Self.defaultRelayConfig
        try configText.write(toFile: configPath, atomically: true, encoding: .utf8)

        let slots = min(self.concurrency, 1_000)
        progress("soak: enrolling \(slots) hosts and \(slots) engineers")
        let credentials = try SoakAccounts.create(binary: self.relayBinary, data: data, count: slots)

        let relay = try await SoakRelay.start(
            binary: self.relayBinary, wrapper: self.relayWrapper, data: data, config: configPath, tls: tls, directory: directory
        )
        defer {
            relay.stop()
            if let keepLogs { try? FileManager.default.copyItem(atPath: relay.child.logPath, toPath: keepLogs) }
        }
        let pid = relay.pid
        progress("soak: relay-server pid \(pid) port \(relay.port)")

        let target = SoakTarget(
            port: relay.port, sources: (0..<self.sources).map { "127.0.0.\($0 + 2)" },
            anonymous: try SoakClientTLS(presenting: nil), group: MultiThreadedEventLoopGroup.singleton,
            deadline: .seconds(Int64(self.connectionDeadline)), claimBytes: self.claimBytes, claimShort: self.claimShort
        )

        let sampler = RSSSampler(pid: pid)
        let samplerTask = Task { await sampler.run() }
        defer { samplerTask.cancel() }

        try await Task.sleep(for: .seconds(2))
        let start = SoakReading(pid: pid)
        var runner = SoakRunner(
            schedule: schedule, concurrency: self.concurrency, target: target, credentials: credentials, pid: pid, clientTLS: self.clientTLS,
            stopAtRSSKiB: self.stopAtRSSMiB.map { Int($0 * 1024) }
        )

        var warm = SoakPhase()
        if self.warmup > 0 {
            progress("soak: warm-up, \(self.warmup) connections")
            warm = await runner.run(connections: self.warmup, checkpoints: 1)
            try await self.settleDown(pid: pid, openAtStart: start.fds)
        }
        let baseline = SoakReading(pid: pid)
        let baselineInspection = self.inspect(pid: pid, log: relay.child.logPath)
        sampler.reset()
        progress("soak: baseline RSS \(baseline.rssKiB) KiB; \(self.connections) connections, \(self.concurrency) at a time")
        let main = await runner.run(connections: self.connections, checkpoints: 10)
        let closed = SoakReading(pid: pid)
        try await self.settleDown(pid: pid, openAtStart: start.fds)
        let after = SoakReading(pid: pid)
        let endInspection = self.inspect(pid: pid, log: relay.child.logPath)
        let peakKiB = max(sampler.maximumKiB, main.burstPeakKiB)

        // MARK: Report
        let growthKiB = after.rssKiB - baseline.rssKiB
        let bytesPerConnection = Double(growthKiB) * 1024 / Double(max(main.connections, 1))
        let growthMiB = Double(growthKiB) / 1024
        let passed = self.maxGrowthMiB.map { growthMiB <= $0 }

        let machine = MachineInfo.current
        let command = (["relay-bench"] + CommandLine.arguments.dropFirst()).joined(separator: " ")
        var lines: [String] = []
        lines.append("relay-bench soak")
        lines.append("command: \(command)")
        lines.append("machine: \(machine.cpuModel), \(machine.cores) cores, \(machine.os)")
        lines.append("date:    \(machine.date)   load average: \(machine.loadAverage)")
        lines.append(
            "relay:   \(self.relayBinary)\(self.relayWrapper.map { " under `\($0)`" } ?? ""), config \(configText.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " "))"
        )
        lines.append(
            "mix:     \(self.mix) (one cycle: \(schedule.map(\.rawValue).joined(separator: " "))); claim \(self.claimBytes) bytes announced, \(max(0, self.claimBytes - self.claimShort)) sent; \(self.sources) source addresses; client TLS \(self.clientTLS.rawValue)"
        )
        lines.append("")
        var table = Table(columns: [
            .init("point", .left), .init("connections", .right), .init("VmRSS KiB", .right), .init("VmHWM KiB", .right),
            .init("relay fds", .right), .init("relay CPU s", .right),
        ])
        table.add(["relay started", "0", "\(start.rssKiB)", "\(start.hwmKiB)", "\(start.fds)", formatFixed(start.cpuSeconds, 1)])
        if self.warmup > 0 {
            table.add([
                "after warm-up + settle (baseline)", "\(warm.connections)", "\(baseline.rssKiB)", "\(baseline.hwmKiB)", "\(baseline.fds)",
                formatFixed(baseline.cpuSeconds, 1),
            ])
        }
        for checkpoint in main.checkpoints {
            table.add([
                "after a burst closed", "\(checkpoint.connections)", "\(checkpoint.reading.rssKiB)", "\(checkpoint.reading.hwmKiB)",
                "\(checkpoint.reading.fds)", formatFixed(checkpoint.reading.cpuSeconds, 1),
            ])
        }
        table.add(["peak (sampled every 200 ms and at each burst's peak)", "", "\(peakKiB)", "", "", ""])
        table.add(["all closed", "\(main.connections)", "\(closed.rssKiB)", "\(closed.hwmKiB)", "\(closed.fds)", formatFixed(closed.cpuSeconds, 1)])
        table.add([
            "after \(formatFixed(self.settle, 0)) s settle", "\(main.connections)", "\(after.rssKiB)", "\(after.hwmKiB)", "\(after.fds)",
            formatFixed(after.cpuSeconds, 1),
        ])
        for (name, inspection) in [("baseline", baselineInspection), ("end", endInspection)] {
            guard let reading = inspection?.reading else { continue }
            table.add(["\(name), after --inspect-command", "", "\(reading.rssKiB)", "\(reading.hwmKiB)", "\(reading.fds)", formatFixed(reading.cpuSeconds, 1)])
        }
        lines.append(table.rendered)
        lines.append("")
        lines.append(
            "\(main.connections) connections in \(formatFixed(main.seconds, 1)) s (\(formatFixed(Double(main.connections) / main.seconds, 0))/s), "
                + "\(main.bursts) bursts; relay CPU \(formatFixed(after.cpuSeconds - baseline.cpuSeconds, 1)) s"
        )
        if let stopped = main.stoppedAtRSSKiB {
            lines.append(
                "STOPPED EARLY: after \(main.connections) of \(self.connections) connections the relay's RSS was \(formatFixed(Double(stopped) / 1024, 1)) MiB, "
                    + "over --stop-at-rss-mb \(formatFixed(self.stopAtRSSMiB ?? 0, 0))"
            )
        }
        lines.append(
            "RSS before \(formatFixed(Double(baseline.rssKiB) / 1024, 1)) MiB, peak \(formatFixed(Double(peakKiB) / 1024, 1)) MiB, "
                + "after \(formatFixed(Double(after.rssKiB) / 1024, 1)) MiB: growth \(formatFixed(growthMiB, 1)) MiB, "
                + "\(formatFixed(bytesPerConnection, 0)) bytes per connection left behind"
                + (passed.map { $0 ? " → PASS" : " → FAIL" } ?? "")
                + (self.maxGrowthMiB.map { " (--max-growth-mb \(formatFixed($0, 1)))" } ?? "")
        )
        lines.append("")
        var modes = Table(columns: [
            .init("mode", .left), .init("units", .right), .init("connections", .right), .init("expected", .right),
            .init("unexpected", .right), .init("what happened (count)", .left),
        ])
        for mode in SoakMode.allCases {
            guard let tally = main.tallies[mode] else { continue }
            let outcomes = tally.texts.sorted { $0.value > $1.value }.prefix(4).map { "\($0.key) (\($0.value))" }.joined(separator: "; ")
            modes.add(["\(mode.rawValue)", "\(tally.units)", "\(tally.units * mode.connections)", "\(tally.expected)", "\(tally.unexpected)", outcomes])
        }
        lines.append(modes.rendered)
        for (name, inspection) in [("baseline", baselineInspection), ("end", endInspection)] {
            guard let inspection else { continue }
            lines.append("")
            lines.append("--inspect-command at the \(name) (exit \(inspection.status)):")
            lines.append(inspection.output.trimmingCharacters(in: .whitespacesAndNewlines))
        }

        if self.json {
            func reading(_ r: SoakReading) -> JSON {
                .object([("rss_kib", .int(r.rssKiB)), ("hwm_kib", .int(r.hwmKiB)), ("fds", .int(r.fds)), ("cpu_seconds", .double(r.cpuSeconds))])
            }
            let object: JSON = .object([
                ("benchmark", .string("soak")),
                ("command", .string(command)),
                ("machine", machine.json),
                (
                    "settings",
                    .object([
                        ("connections", .int(self.connections)), ("concurrency", .int(self.concurrency)), ("mix", .string(self.mix)),
                        ("warmup", .int(self.warmup)), ("settle_seconds", .double(self.settle)), ("claim_bytes", .int(self.claimBytes)),
                        ("claim_short", .int(self.claimShort)), ("sources", .int(self.sources)), ("client_tls", .string(self.clientTLS.rawValue)),
                        ("relay_binary", .string(self.relayBinary)),
                        ("relay_wrapper", self.relayWrapper.map { .string($0) } ?? .null),
                        ("stop_at_rss_mb", self.stopAtRSSMiB.map { .double($0) } ?? .null), ("relay_config", .string(configText)),
                    ])
                ),
                (
                    "results",
                    .object([
                        ("start", reading(start)), ("baseline", reading(baseline)), ("peak_rss_kib", .int(peakKiB)),
                        ("all_closed", reading(closed)), ("after_settle", reading(after)),
                        ("checkpoints", .array(main.checkpoints.map { .object([("connections", .int($0.connections)), ("reading", reading($0.reading))]) })),
                        ("connections", .int(main.connections)), ("seconds", .double(main.seconds)), ("bursts", .int(main.bursts)),
                        ("stopped_at_rss_kib", main.stoppedAtRSSKiB.map { .int($0) } ?? .null),
                        ("growth_kib", .int(growthKiB)), ("bytes_per_connection", .double(bytesPerConnection)),
                        ("pass", passed.map { .bool($0) } ?? .null),
                        (
                            "inspections",
                            .object(
                                [("baseline", baselineInspection), ("end", endInspection)].compactMap { name, inspection in
                                    inspection.map {
                                        (name, .object([("status", .int(Int($0.status))), ("output", .string($0.output)), ("after", reading($0.reading))]))
                                    }
                                })
                        ),
                        (
                            "modes",
                            .object(
                                SoakMode.allCases.compactMap { mode in
                                    main.tallies[mode].map { tally in
                                        (
                                            mode.rawValue,
                                            .object([
                                                ("units", .int(tally.units)), ("expected", .int(tally.expected)), ("unexpected", .int(tally.unexpected)),
                                                ("outcomes", .object(tally.texts.sorted { $0.value > $1.value }.map { ($0.key, .int($0.value)) })),
                                            ])
                                        )
                                    }
                                })
                        ),
                    ])
                ),
            ])
            print(object.serialized())
        } else {
            print(lines.joined(separator: "\n"))
        }
        if passed == false { throw ExitCode(1) }
    }

    /// Runs --inspect-command on the relay: its output (standard output and error), the
    /// lines the relay logged meanwhile, and a reading taken after it.
    private func inspect(pid: Int32, log: String) -> (status: Int32, output: String, reading: SoakReading)? {
        guard let command = self.inspectCommand else { return nil }
        let logBefore = (try? FileManager.default.attributesOfItem(atPath: log)[.size] as? Int) ?? 0
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command.replacingOccurrences(of: "{pid}", with: "\(pid)")]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        var text = ""
        var status: Int32 = -1
        do {
            try process.run()
            text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            status = process.terminationStatus
        } catch {
            text = "could not run /bin/sh -c: \(error)"
        }
        if let handle = FileHandle(forReadingAtPath: log) {
            try? handle.seek(toOffset: UInt64(logBefore))
            let added = String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
            try? handle.close()
            if !added.isEmpty { text += "\n[relay log meanwhile]\n" + added }
        }
        return (status, text, SoakReading(pid: pid))
    }

    /// Waits --settle seconds, and at least until the relay holds no more descriptors than
    /// when it started (every connection really closed) or 60 s have passed.
    private func settleDown(pid: Int32, openAtStart: Int) async throws {
        let clock = ContinuousClock()
        let start = clock.now
        _ = try await waitUntil({ openFileDescriptors(pid: pid) <= openAtStart }, timeout: 60)
        let left = self.settle - (clock.now - start).seconds
        if left > 0 { try await Task.sleep(for: .seconds(left)) }
    }
}

// MARK: - Readings

struct SoakReading {
    var rssKiB: Int
    var hwmKiB: Int
    var fds: Int
    var cpuSeconds: Double

    init(pid: Int32) {
        self.rssKiB = processStatusKiB(pid: pid, field: "VmRSS")
        self.hwmKiB = processStatusKiB(pid: pid, field: "VmHWM")
        self.fds = openFileDescriptors(pid: pid)
        self.cpuSeconds = processCPUSeconds(pid: pid)
    }
}

/// Reads VmRSS every 200 ms and keeps the largest value.
final class RSSSampler: Sendable {
    private let pid: Int32
    private let maximum = NIOLockedValueBox(0)

    init(pid: Int32) { self.pid = pid }

    var maximumKiB: Int { self.maximum.withLockedValue { $0 } }
    func reset() { self.maximum.withLockedValue { $0 = 0 } }

    func run() async {
        while !Task.isCancelled {
            let rss = processStatusKiB(pid: self.pid)
            self.maximum.withLockedValue { $0 = max($0, rss) }
            try? await Task.sleep(for: .milliseconds(200))
        }
    }
}

// MARK: - Running units in bursts

struct SoakTally {
    var units = 0
    var expected = 0
    var unexpected = 0
    var texts: [String: Int] = [:]

    mutating func add(_ outcome: SoakOutcome) {
        self.units += 1
        switch outcome {
        case .expected(let text):
            self.expected += 1
            self.texts[text, default: 0] += 1
        case .unexpected(let text):
            self.unexpected += 1
            // Keep the table short: texts that carry ids or numbers are cut at the first digit run.
            self.texts["UNEXPECTED: " + String(text.prefix(120)), default: 0] += 1
        }
    }
}

struct SoakPhase {
    var connections = 0
    var bursts = 0
    var seconds = 0.0
    var burstPeakKiB = 0
    var checkpoints: [(connections: Int, reading: SoakReading)] = []
    var tallies: [SoakMode: SoakTally] = [:]
    /// The RSS (KiB) that stopped the phase before all its connections (--stop-at-rss-mb).
    var stoppedAtRSSKiB: Int?
}

struct SoakRunner {
    let schedule: [SoakMode]
    let concurrency: Int
    let target: SoakTarget
    let credentials: [SoakCredentials]
    let pid: Int32
    let clientTLS: SoakBenchmark.ClientTLS
    /// Stop the phase after the burst that leaves the relay above this RSS.
    var stopAtRSSKiB: Int?
    /// Units started so far over all phases: picks the mode, the variant and the source.
    var unitIndex = 0

    /// Opens `connections` connections in bursts; reads RSS at each burst's peak and at
    /// `checkpoints` evenly spaced points after a burst has closed.
    mutating func run(connections total: Int, checkpoints: Int) async -> SoakPhase {
        var phase = SoakPhase()
        let clock = ContinuousClock()
        let start = clock.now
        var nextCheckpoint = 1
        while phase.connections < total {
            var burst: [(mode: SoakMode, variant: Int, tls12: Bool, source: String, credentials: SoakCredentials)] = []
            var burstConnections = 0
            while burstConnections < self.concurrency, phase.connections + burstConnections < total {
                let mode = self.schedule[self.unitIndex % self.schedule.count]
                let variant = (self.unitIndex / self.schedule.count) % 2
                let tls12 =
                    switch self.clientTLS {
                    case .tls13: false
                    case .tls12: true
                    case .mixed: (self.unitIndex / (2 * self.schedule.count)) % 2 == 1
                    }
                let source = self.target.sources[self.unitIndex % self.target.sources.count]
                burst.append((mode, variant, tls12, source, self.credentials[burst.count % self.credentials.count]))
                burstConnections += mode.connections
                self.unitIndex += 1
            }
            let arrived = NIOLockedValueBox(0)
            let everyoneArrived = Signal()
            let release = Signal()
            let count = burst.count
            let target = self.target
            let outcomes = await withTaskGroup(of: (SoakMode, SoakOutcome).self) { group in
                for unit in burst {
                    group.addTask {
                        let outcome = await runSoakUnit(
                            unit.mode, variant: unit.variant, tls12: unit.tls12, target: target, source: unit.source, credentials: unit.credentials,
                            arrived: {
                                if arrived.withLockedValue({
                                    $0 += 1
                                    return $0
                                }) == count {
                                    everyoneArrived.fire()
                                }
                            },
                            release: release
                        )
                        return (unit.mode, outcome)
                    }
                }
                await everyoneArrived.wait()
                // A claim "arrives" once its bytes are in its socket; the relay may not have
                // read them yet. Hold the burst until nothing sent to or from the relay waits
                // in a loopback socket queue, so that the peak is read with the claims inside
                // the relay (or refused by it), not in the kernel.
                if burst.contains(where: { $0.mode == .claim }) {
                    let port = target.port
                    _ = try? await waitUntil({ loopbackQueuedBytes(port: port) == 0 }, timeout: 15)
                }
                phase.burstPeakKiB = max(phase.burstPeakKiB, processStatusKiB(pid: self.pid))
                release.fire()
                var outcomes: [(SoakMode, SoakOutcome)] = []
                for await outcome in group { outcomes.append(outcome) }
                return outcomes
            }
            for (mode, outcome) in outcomes { phase.tallies[mode, default: SoakTally()].add(outcome) }
            phase.connections += burstConnections
            phase.bursts += 1
            if phase.connections * checkpoints >= nextCheckpoint * total {
                phase.checkpoints.append((phase.connections, SoakReading(pid: self.pid)))
                let unexpected = phase.tallies.values.reduce(0) { $0 + $1.unexpected }
                progress("soak: \(phase.connections) connections, relay RSS \(processStatusKiB(pid: self.pid)) KiB, \(unexpected) unexpected")
                while phase.connections * checkpoints >= nextCheckpoint * total { nextCheckpoint += 1 }
            }
            if let stop = self.stopAtRSSKiB, phase.connections < total, processStatusKiB(pid: self.pid) > stop {
                let reading = SoakReading(pid: self.pid)
                if phase.checkpoints.last?.connections != phase.connections { phase.checkpoints.append((phase.connections, reading)) }
                phase.stoppedAtRSSKiB = reading.rssKiB
                progress("soak: stopping after \(phase.connections) connections: relay RSS \(reading.rssKiB) KiB is over --stop-at-rss-mb")
                break
            }
        }
        phase.seconds = (clock.now - start).seconds
        return phase
    }
}

// MARK: - Accounts and the relay process

enum SoakAccounts {
    /// One company; `count` engineers and `count` enrolled hosts, so that every unit of a
    /// burst has credentials of its own. Each logs in with an Ed25519 key made here, in
    /// memory; the relay gets the public halves (`--public-key`).
    static func create(binary: String, data: String, count: Int) throws -> [SoakCredentials] {
        func object(_ text: String) throws -> [String: Any] {
            guard let data = text.data(using: .utf8), let value = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw BenchError("not a JSON object: \(text)")
            }
            return value
        }
        let company = try object(try runTool(binary, ["company", "add", "soak", "--json", "--data", data]))
        guard let companyID = company["id"] as? String else { throw BenchError("company add: no id") }
        let engineerKeys = (0..<count).map { _ in Curve25519.Signing.PrivateKey() }
        let hostKeys = (0..<count).map { _ in Curve25519.Signing.PrivateKey() }
        let engineers = try runInParallel(
            binary: binary,
            (0..<count).map {
                [
                    "engineer", "add", "--company", companyID, "soak.engineer.\($0)", "--public-key", publicKeyArgument(engineerKeys[$0]), "--json", "--data",
                    data,
                ]
            })
        let hosts = try runInParallel(
            binary: binary,
            (0..<count).map {
                ["host", "enroll", "--company", companyID, "soak-host-\($0)", "--public-key", publicKeyArgument(hostKeys[$0]), "--json", "--data", data]
            })
        return try (0..<count).map { index in
            let engineer = try object(engineers[index])
            let host = try object(hosts[index])
            guard engineer["login_method"] as? String == "key" else { throw BenchError("engineer add: the engineer does not log in with a key: \(engineer)") }
            guard let id = host["id"] as? String, host["login_method"] as? String == "key" else {
                throw BenchError("host enroll: no id, or the host does not log in with a key: \(host)")
            }
            return SoakCredentials(
                hostID: id, host: try SoakClientTLS(presenting: hostKeys[index]), engineer: try SoakClientTLS(presenting: engineerKeys[index]))
        }
    }

    /// Runs `binary` once per argument list, 8 at a time; standard outputs in order.
    static func runInParallel(binary: String, _ argumentLists: [[String]]) throws -> [String] {
        var outputs: [String] = []
        var running: [(Process, Pipe, Pipe)] = []
        var next = 0
        func finishOldest() throws {
            let (process, output, errors) = running.removeFirst()
            let data = output.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            guard process.terminationStatus == 0 else {
                throw BenchError("\(binary) failed: \(String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))")
            }
            outputs.append(String(decoding: data, as: UTF8.self))
        }
        while next < argumentLists.count || !running.isEmpty {
            if next < argumentLists.count, running.count < 8 {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: binary)
                process.arguments = argumentLists[next]
                let output = Pipe()
                let errors = Pipe()
                process.standardOutput = output
                process.standardError = errors
                process.standardInput = FileHandle.nullDevice
                try process.run()
                running.append((process, output, errors))
                next += 1
            } else {
                try finishOldest()
            }
        }
        return outputs
    }
}

struct SoakRelay {
    var child: ChildProcess
    var port: Int
    /// The relay itself (not the wrapper's process, with --relay-wrapper).
    var pid: Int32

    static func start(binary: String, wrapper: String?, data: String, config: String, tls: TLSMaterial, directory: String) async throws -> SoakRelay {
        let port = try freePort()
        let admin = try freePort()
        let serve = [
            "serve", "--config", config, "--listen", "127.0.0.1:\(port)", "--admin-listen", "127.0.0.1:\(admin)", "--data", data,
            "--cert", tls.certificatePath, "--key", tls.keyPath,
        ]
        var executable = binary
        var arguments = serve
        if let wrapper {
            let words = wrapper.split(separator: " ").map(String.init)
            guard let first = words.first, let path = which(first) else { throw BenchError("--relay-wrapper: cannot find '\(wrapper)' on PATH") }
            executable = path
            arguments = Array(words.dropFirst()) + [binary] + serve
        }
        let child = try ChildProcess(name: "relay-server", executable: executable, arguments: arguments, logPath: "\(directory)/relay-\(port).log")
        try await waitForListener(port: port, timeout: wrapper == nil ? 30 : 300, child: child)
        let pid = wrapper == nil ? child.pid : (Self.findProcess(commandLineContaining: "127.0.0.1:\(port)") ?? child.pid)
        return SoakRelay(child: child, port: port, pid: pid)
    }

    /// The newest process whose command line contains `text` (the relay under a wrapper).
    static func findProcess(commandLineContaining text: String) -> Int32? {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return nil }
        var found: Int32?
        for entry in entries {
            guard let pid = Int32(entry), let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline") else { continue }
            let words = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            guard words.contains(text), words.contains("serve") else { continue }
            // A shell script wrapper (heaptrack) also has the relay's arguments; the relay is its newest descendant.
            if let first = words.first, first.hasSuffix("sh") { continue }
            found = max(found ?? pid, pid)
        }
        return found
    }

    func stop() {
        if self.pid != self.child.pid { kill(self.pid, SIGTERM) }
        self.child.stop()
    }
}

/// Bytes waiting in the send or receive queues of IPv4 TCP sockets whose local or remote
/// port is `port` (/proc/net/tcp, columns tx_queue:rx_queue): 0 once everything sent to
/// the relay over loopback has been read by it, and everything it sent by its peers.
func loopbackQueuedBytes(port: Int) -> Int {
    guard let text = try? String(contentsOfFile: "/proc/net/tcp", encoding: .utf8) else { return 0 }
    var total = 0
    for line in text.split(separator: "\n").dropFirst() {
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count > 4 else { continue }
        func portNumber(_ address: Substring) -> Int? { address.split(separator: ":").last.flatMap { Int($0, radix: 16) } }
        guard portNumber(fields[1]) == port || portNumber(fields[2]) == port else { continue }
        let queues = fields[4].split(separator: ":").compactMap { Int($0, radix: 16) }
        total += queues.reduce(0, +)
    }
    return total
}
