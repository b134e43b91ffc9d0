// `relay-bench seal`: the end-to-end encryption of issue 12 (PROTOCOL.md §5.3), in process,
// on one thread.
//
// records:   RecordSealer.seal(type:payload:) (the sending agent) and RecordOpener.open(_:)
//            (the receiving agent), each timed on its own, for a 5-byte input event, a 64 KiB
//            TileUpdate part and the largest record a relay with the default 1 MiB payload
//            limit forwards (1 MiB − 17 B inner payload). Beside them the floor: AES-256-GCM
//            from swift-crypto called directly (AES.GCM.seal / AES.GCM.open) on the same
//            plaintext (inner type byte + payload), with the same additional data and a fresh
//            nonce per record, so what the record layer adds (copies, buffers) is visible.
//            And one plain copy of the payload into a new buffer, for scale.
// handshake: SecureHandshake driven back to back in memory, viewer and host in turn, with
//            fresh ephemeral keys (generated inside the timing) and the identity keys made
//            once; the CPU time of each side's steps and the wall time of the whole.
//
// A round seals a batch of records and then opens the same batch in order (sequence numbers
// must match), timing the two phases apart with this thread's CPU clock and the wall clock.

import ArgumentParser
import Crypto
import NIOCore
import RelaySecureChannel
import RelayWire

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

struct SealBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "seal",
        abstract: "End-to-end encryption: record sealing and opening per side beside raw AES-256-GCM, and handshake time (one thread).",
        discussion: """
            records: RecordSealer.seal(type:payload:) and RecordOpener.open(_:) for 5 B, 64 KiB and \
            1 MiB − 17 B inner payloads, each side timed on its own; the floor is AES.GCM.seal and \
            AES.GCM.open of swift-crypto on the same plaintext and additional data. handshake: \
            --handshakes complete SecureHandshake runs, viewer and host back to back in memory: \
            median, p99 and mean of the wall time and of each side's CPU time.
            """
    )

    @OptionGroup var common: CommonOptions

    @Option(name: .long, help: "Handshakes to time (after 20 untimed ones); 0 skips the handshake cases.")
    var handshakes: Int = 1000

    @Option(
        name: .long, help: "Run only the payload sizes whose label contains this text (e.g. \"64 KiB\"); the handshake always runs (--handshakes 0 skips it).")
    var filter: String?

    @Option(
        name: .long,
        help:
            "Comma-separated inner payload sizes in bytes (default: 5, a Pointer; 65536, a TileUpdate part; 1048559, the largest record a relay with the default 1 MiB payload limit forwards)."
    )
    var payloads: String = "5,65536,1048559"

    /// The cases: payloads below 64 bytes are input events (Pointer), larger ones TileUpdate parts.
    var cases: [(label: String, length: Int, type: MessageType)] {
        self.payloads.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }.map { length in
            let label = length == Frame.defaultMaximumPayloadLength - SecureChannelProtocol.recordOverhead ? "1 MiB - 17 B" : formatBytes(length)
            return (label, length, length < 64 ? MessageType.pointer : .tileUpdate)
        }
    }

    func validate() throws {
        guard self.handshakes >= 0 else { throw ValidationError("--handshakes must be ≥ 0") }
        let limit = Frame.maximumEncodablePayloadLength - SecureChannelProtocol.recordOverhead
        guard !self.cases.isEmpty, self.cases.count == self.payloads.split(separator: ",").count, self.cases.allSatisfy({ (1...limit).contains($0.length) })
        else {
            throw ValidationError("--payloads takes sizes in bytes from 1 to \(limit), comma-separated, e.g. 5,65536")
        }
    }

    func run() throws {
        let seconds = self.common.seconds
        var report = Report(benchmark: "seal")
        report.settings = [
            ("seconds_per_case", .double(seconds)), ("handshakes", .int(self.handshakes)), ("payloads", .string(self.payloads)), ("threads", .int(1)),
            ("cpu_clock", .string("CLOCK_THREAD_CPUTIME_ID")),
        ]

        // One handshake gives the sealer (host → viewer) and the matching opener.
        let host = SecureHandshake.Local(role: .host, identity: .init(), name: "bench-host", organization: "bench")
        let viewer = SecureHandshake.Local(role: .viewer, identity: .init(), name: "bench.engineer", organization: "bench")
        var timing = HandshakeTiming()
        let (hostSide, viewerSide) = try Self.handshake(host: host, viewer: viewer, sessionID: SessionID(high: 1, low: 2), timing: &timing)
        try report.checks.append(Self.checkChannel(hostSide, viewerSide))

        // Both stand at sequence number 1 (after the Identity records); copies start there.
        let firstSealer = hostSide.sealer
        let firstOpener = viewerSide.opener
        var overheadRows: [[String]] = []
        var overheadJSON: [JSON] = []
        for (label, length, type) in self.cases {
            guard self.selected(label) else { continue }
            let payload = Self.payload(length: length)
            let batch = max(4, min(4096, (4 << 20) / length))
            // Sending side: seal a record, hand it on (dropped here), seal the next.
            var sealer = firstSealer
            let sealing = try Self.rounds(seconds: seconds, batch: batch) {
                var sink = 0
                for _ in 0..<batch { sink &+= try sealer.seal(type: type.rawValue, payload: payload).bytes.readableBytes }
                return sink
            }
            // Receiving side: one batch of records, sealed untimed, opened again and again by
            // copies of the opener that stand at the batch's first sequence number.
            var batchSealer = firstSealer
            let records = try (0..<batch).map { _ in try batchSealer.seal(type: type.rawValue, payload: payload) }
            let opening = try Self.rounds(seconds: seconds, batch: batch) {
                var copy = firstOpener
                var sink = 0
                for record in records {
                    let opened = try copy.open(record)
                    sink &+= Int(opened.type) &+ opened.payload.readableBytes
                }
                return sink
            }
            var floorCipher = AESFloor(length: length, type: type)
            let floorSealing = try Self.rounds(seconds: seconds, batch: batch) {
                var sink = 0
                for _ in 0..<batch { sink &+= try floorCipher.seal().tag.count }
                return sink
            }
            var floorStart = floorCipher
            floorStart.opened = floorCipher.sealed
            let boxes = try (0..<batch).map { _ in try floorCipher.seal() }
            let floorOpening = try Self.rounds(seconds: seconds, batch: batch) {
                var copy = floorStart
                var sink = 0
                for box in boxes { sink &+= try copy.open(box) }
                return sink
            }
            let copy = Self.copyRounds(seconds: seconds, batch: batch, payload: payload)
            let ours = (seal: sealing, open: opening)
            let floor = (seal: floorSealing, open: floorOpening)

            let rows: [(String, String, SideTotals)] = [
                ("seal (sending side)", "RecordSealer.seal(type:payload:)", ours.seal),
                ("seal (sending side)", "AES.GCM.seal (floor)", floor.seal),
                ("open (receiving side)", "RecordOpener.open(_:)", ours.open),
                ("open (receiving side)", "AES.GCM.open (floor)", floor.open),
                ("copy (for scale)", "one copy of the payload", copy),
            ]
            for (group, name, totals) in rows {
                var measurement = Measurement(
                    group: group, name: name, payloadBytes: length, unit: "records", operations: totals.records, bytes: totals.records * length,
                    wall: totals.wall, cpu: totals.cpu)
                let cpuPerGB = totals.cpu.seconds / (Double(totals.records * length) / 1e9)
                measurement.note =
                    "\(formatFixed(cpuPerGB, 3)) CPU-s/GB, \(formatFixed(totals.cpu.seconds * 1e9 / Double(totals.records), 0)) CPU-ns/record, \(formatFixed(totals.faultsPerRecord, 1)) page faults/record"
                report.measurements.append(measurement)
            }
            for (side, mine, base) in [("seal", ours.seal, floor.seal), ("open", ours.open, floor.open)] {
                let mineNs = mine.cpu.seconds * 1e9 / Double(mine.records)
                let baseNs = base.cpu.seconds * 1e9 / Double(base.records)
                let mineGB = mine.cpu.seconds / (Double(mine.records * length) / 1e9)
                let baseGB = base.cpu.seconds / (Double(base.records * length) / 1e9)
                overheadRows.append([
                    label, side, formatFixed(mineGB, 3), formatFixed(baseGB, 3), formatFixed(mineNs, 0), formatFixed(baseNs, 0),
                    formatFixed(mineNs - baseNs, 0), formatFixed((mineNs / baseNs - 1) * 100, 0) + "%", formatFixed(mine.faultsPerRecord, 1),
                    formatFixed(base.faultsPerRecord, 1),
                ])
                overheadJSON.append(
                    .object([
                        ("payload", .string(label)), ("payload_bytes", .int(length)), ("side", .string(side)),
                        ("cpu_seconds_per_gb", .double(mineGB)), ("floor_cpu_seconds_per_gb", .double(baseGB)),
                        ("cpu_ns_per_record", .double(mineNs)), ("floor_cpu_ns_per_record", .double(baseNs)),
                        ("overhead_percent", .double((mineNs / baseNs - 1) * 100)), ("page_faults_per_record", .double(mine.faultsPerRecord)),
                        ("floor_page_faults_per_record", .double(base.faultsPerRecord)),
                    ]))
            }
        }
        if !overheadRows.isEmpty {
            var table = Table(columns: [
                .init("payload", .left), .init("side", .left), .init("CPU-s/GB", .right), .init("floor CPU-s/GB", .right),
                .init("CPU-ns/record", .right), .init("floor CPU-ns", .right), .init("added ns", .right), .init("added", .right),
                .init("faults/record", .right), .init("floor faults", .right),
            ])
            for row in overheadRows { table.add(row) }
            report.sections.append(
                (title: "record layer against the AES-256-GCM floor (per CPU-second of this thread)", table: table, json: .array(overheadJSON)))
        }

        if self.handshakes > 0 {
            var timings = HandshakeTiming()
            for index in 0..<(20 + self.handshakes) {
                var one = HandshakeTiming()
                let id = SessionID(high: UInt64.random(in: .min ... .max), low: UInt64(index))
                _ = try Self.handshake(host: host, viewer: viewer, sessionID: id, timing: &one)
                if index >= 20 { timings.append(one) }
            }
            let (table, json) = timings.summary()
            report.sections.append(
                (
                    title:
                        "handshake, \(self.handshakes) complete runs back to back in memory (no network): wall = all steps of both sides; CPU per side",
                    table: table, json: json
                ))
        }
        report.notes = [
            "CPU time is this thread's (CLOCK_THREAD_CPUTIME_ID); CPU-s/GB counts inner payload bytes (10^9), not the type byte, tag or header.",
            "The floor seals the same plaintext (inner type byte + payload) with the same additional data (the Sealed frame header) and builds a nonce per record; its output is swift-crypto's SealedBox (one new Data), and it opens a SealedBox it already holds.",
            "The sending side seals one record after the other and drops each (as a sender hands it to the socket). The receiving side opens one batch of up to 4 MiB (4 to 4,096 records, sealed untimed) again and again, each time with a copy of the opener that stands at the batch's first sequence number, so its input stays in cache as after a socket read and nothing but the opened payloads is allocated.",
            "cpu/wall well below 1.00 means the thread waited for a CPU (a loaded machine): then read the CPU figures, not the wall-clock rate.",
        ]
        report.emit(json: self.common.json)
    }

    func selected(_ label: String) -> Bool {
        guard let filter else { return true }
        return label.contains(filter)
    }

    static func payload(length: Int) -> ByteBuffer {
        var generator = SystemRandomNumberGenerator()
        var payload = ByteBufferAllocator().buffer(capacity: length)
        for _ in 0..<length { payload.writeInteger(UInt8.random(in: 0...255, using: &generator)) }
        return payload
    }

    // MARK: - Records

    struct SideTotals {
        var wall: Duration = .zero
        var cpu: Duration = .zero
        var records = 0
        /// Minor page faults of this thread (memory the allocator got from the kernel anew).
        var faults = 0

        var faultsPerRecord: Double { Double(self.faults) / Double(max(self.records, 1)) }
    }

    /// Runs `round` (which handles `batch` records) once untimed, then until `seconds` of
    /// wall time have passed.
    static func rounds(seconds: Double, batch: Int, _ round: () throws -> Int) throws -> SideTotals {
        var sink = try round()
        var totals = SideTotals()
        repeat {
            let timer = SideTimer()
            sink &+= try round()
            timer.add(to: &totals, records: batch)
        } while totals.wall.seconds < seconds
        blackHole(sink)
        return totals
    }

    /// One copy of the payload into a new buffer per record: what a copy costs beside AES.
    static func copyRounds(seconds: Double, batch: Int, payload: ByteBuffer) -> SideTotals {
        let allocator = ByteBufferAllocator()
        var totals = SideTotals()
        var sink = 0
        repeat {
            let timer = SideTimer()
            for _ in 0..<batch {
                var copy = allocator.buffer(capacity: payload.readableBytes)
                copy.writeImmutableBuffer(payload)
                sink &+= copy.readableBytes
            }
            timer.add(to: &totals, records: batch)
        } while totals.wall.seconds < seconds
        blackHole(sink)
        return totals
    }

    /// AES-256-GCM straight from swift-crypto, with everything the record needs and nothing more.
    struct AESFloor {
        let key = SymmetricKey(size: .bits256)
        let plaintext: [UInt8]
        let header: [UInt8]
        var nonceBytes = [UInt8](repeating: 0, count: 12)
        var sealed: UInt64 = 0
        var opened: UInt64 = 0

        init(length: Int, type: MessageType) {
            var bytes = [type.rawValue]
            var generator = SystemRandomNumberGenerator()
            for _ in 0..<length { bytes.append(UInt8.random(in: 0...255, using: &generator)) }
            self.plaintext = bytes
            let body = bytes.count + Sealed.tagLength
            self.header = [
                MessageType.sealed.rawValue, UInt8(truncatingIfNeeded: body >> 16), UInt8(truncatingIfNeeded: body >> 8), UInt8(truncatingIfNeeded: body),
            ]
        }

        mutating func nonce(_ sequence: UInt64) throws -> AES.GCM.Nonce {
            for index in 0..<8 { self.nonceBytes[4 + index] = UInt8(truncatingIfNeeded: sequence >> (56 - 8 * index)) }
            return try AES.GCM.Nonce(data: self.nonceBytes)
        }

        mutating func seal() throws -> AES.GCM.SealedBox {
            let nonce = try self.nonce(self.sealed)
            self.sealed += 1
            return try AES.GCM.seal(self.plaintext, using: self.key, nonce: nonce, authenticating: self.header)
        }

        mutating func open(_ box: AES.GCM.SealedBox) throws -> Int {
            // The receiver builds the nonce from its own count, as RecordOpener does.
            let expected = try self.nonce(self.opened)
            let inOrder = expected.withUnsafeBytes { mine in box.nonce.withUnsafeBytes { theirs in mine.elementsEqual(theirs) } }
            guard inOrder else { throw BenchError("AES floor: records out of order") }
            self.opened += 1
            return try AES.GCM.open(box, using: self.key, authenticating: self.header).count
        }
    }

    // MARK: - Handshake

    /// One complete handshake, both sides in turn: viewer start → host (KeyCommit) → viewer
    /// (host's KeyShare) → host (viewer's KeyShare) → host (viewer's Identity) → viewer
    /// (host's Identity). Each side's steps, including making its ephemeral key, go into
    /// `timing`.
    static func handshake(
        host: SecureHandshake.Local, viewer: SecureHandshake.Local, sessionID: SessionID, timing: inout HandshakeTiming
    ) throws -> (host: SecureHandshake.Established, viewer: SecureHandshake.Established) {
        let wall = ContinuousClock.now
        var clock = StepClock()

        var viewerSide = SecureHandshake(viewer, sessionID: sessionID, ephemeral: Curve25519.KeyAgreement.PrivateKey())
        let commit = try viewerSide.start()
        let viewer1 = clock.lap()

        var hostSide = SecureHandshake(host, sessionID: sessionID, ephemeral: Curve25519.KeyAgreement.PrivateKey())
        let hostShare = try Self.frames(hostSide.received(Self.single(commit)))
        let host1 = clock.lap()

        let viewerShareAndIdentity = try Self.frames(viewerSide.received(Self.single(hostShare)))
        let viewer2 = clock.lap()

        guard viewerShareAndIdentity.count == 2 else {
            throw BenchError("handshake: the viewer sent \(viewerShareAndIdentity.count) frames, not KeyShare and Identity")
        }
        let hostIdentity = try Self.frames(hostSide.received(viewerShareAndIdentity[0]))
        guard case .established(_, let hostEstablished) = try hostSide.received(viewerShareAndIdentity[1]) else {
            throw BenchError("handshake: the host was not established after the viewer's Identity")
        }
        let host2 = clock.lap()

        guard case .established(_, let viewerEstablished) = try viewerSide.received(Self.single(hostIdentity)) else {
            throw BenchError("handshake: the viewer was not established after the host's Identity")
        }
        let viewer3 = clock.lap()

        timing.wall.append((ContinuousClock.now - wall).seconds)
        timing.viewerCPU.append((viewer1 + viewer2 + viewer3).seconds)
        timing.hostCPU.append((host1 + host2).seconds)
        return (hostEstablished, viewerEstablished)
    }

    static func frames(_ step: SecureHandshake.Step) throws -> [Frame] {
        guard case .send(let frames) = step else { throw BenchError("handshake: a side was established too early") }
        return frames
    }

    static func single(_ frames: [Frame]) throws -> Frame {
        guard frames.count == 1 else { throw BenchError("handshake: expected one frame, got \(frames.count)") }
        return frames[0]
    }

    /// Outside timing: both sides show the same code, and records go through both ways.
    static func checkChannel(
        _ host: SecureHandshake.Established, _ viewer: SecureHandshake.Established
    ) throws -> (
        name: String, passed: Bool, detail: String
    ) {
        var hostSealer = host.sealer
        var viewerOpener = viewer.opener
        var viewerSealer = viewer.sealer
        var hostOpener = host.opener
        var text = ByteBuffer()
        text.writeString("relay-bench")
        let down = try viewerOpener.open(hostSealer.seal(type: MessageType.clipboard.rawValue, payload: text))
        let up = try hostOpener.open(viewerSealer.seal(type: MessageType.clipboard.rawValue, payload: text))
        let same = host.secrets.shortAuthenticationString == viewer.secrets.shortAuthenticationString
        let passed = same && down.payload == text && up.payload == text && host.peer.name == "bench.engineer" && viewer.peer.name == "bench-host"
        return (
            "handshake agrees", passed,
            "both sides show \(host.secrets.shortAuthenticationString) / \(viewer.secrets.shortAuthenticationString); a record opens each way; each side saw the other's signed name"
        )
    }
}

/// This thread's CPU time (ns resolution; the benchmark runs on one thread).
func threadCPUTime() -> Duration {
    var time = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
    return .seconds(Int64(time.tv_sec)) + .nanoseconds(Int64(time.tv_nsec))
}

/// This thread's minor page faults so far (getrusage RUSAGE_THREAD).
func threadMinorFaults() -> Int {
    var usage = rusage()
    #if canImport(Glibc)
    getrusage(__rusage_who_t(1), &usage)  // RUSAGE_THREAD
    #else
    getrusage(RUSAGE_SELF, &usage)
    #endif
    return Int(usage.ru_minflt)
}

/// Wall and thread CPU time, and page faults, of one phase.
struct SideTimer {
    let wall = ContinuousClock.now
    let faults = threadMinorFaults()
    let cpu = threadCPUTime()

    func add(to totals: inout SealBenchmark.SideTotals, records: Int) {
        totals.cpu += threadCPUTime() - self.cpu
        totals.faults += threadMinorFaults() - self.faults
        totals.wall += ContinuousClock.now - self.wall
        totals.records += records
    }
}

/// The CPU time of consecutive steps.
struct StepClock {
    var last = threadCPUTime()

    mutating func lap() -> Duration {
        let now = threadCPUTime()
        defer { self.last = now }
        return now - self.last
    }
}

/// Per-handshake seconds, in the order run.
struct HandshakeTiming {
    var wall: [Double] = []
    var viewerCPU: [Double] = []
    var hostCPU: [Double] = []

    mutating func append(_ other: HandshakeTiming) {
        self.wall += other.wall
        self.viewerCPU += other.viewerCPU
        self.hostCPU += other.hostCPU
    }

    func summary() -> (Table, JSON) {
        var table = Table(columns: [
            .init("what", .left), .init("median ms", .right), .init("p99 ms", .right), .init("mean ms", .right), .init("min ms", .right),
            .init("max ms", .right), .init("per CPU-s", .right),
        ])
        var json: [(String, JSON)] = [("handshakes", .int(self.wall.count))]
        let both = zip(self.viewerCPU, self.hostCPU).map { $0 + $1 }
        for (name, key, values) in [
            ("wall, whole handshake", "wall", self.wall), ("CPU, viewer side", "viewer_cpu", self.viewerCPU), ("CPU, host side", "host_cpu", self.hostCPU),
            ("CPU, both sides", "both_cpu", both),
        ] {
            let sorted = values.sorted()
            let mean = values.reduce(0, +) / Double(max(values.count, 1))
            table.add([
                name, formatFixed(percentile(sorted, 50) * 1e3, 3), formatFixed(percentile(sorted, 99) * 1e3, 3), formatFixed(mean * 1e3, 3),
                formatFixed(sorted.first! * 1e3, 3), formatFixed(sorted.last! * 1e3, 3), key == "wall" ? "" : formatCount(1 / mean) + " handshakes",
            ])
            json.append(
                (
                    key,
                    .object([
                        ("median_ms", .double(percentile(sorted, 50) * 1e3)), ("p99_ms", .double(percentile(sorted, 99) * 1e3)),
                        ("mean_ms", .double(mean * 1e3)), ("min_ms", .double(sorted.first! * 1e3)), ("max_ms", .double(sorted.last! * 1e3)),
                    ])
                ))
        }
        let cpuShare = both.reduce(0, +) / self.wall.reduce(0, +)
        table.add(["cpu/wall (both sides' CPU over the wall time)", formatFixed(cpuShare, 2), "", "", "", "", ""])
        json.append(("cpu_share", .double(cpuShare)))
        return (table, .object(json))
    }
}
