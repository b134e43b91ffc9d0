// `relay-bench store`: the usage history's costs (issue 5, part 6) on a real SQLite file in
// a fresh temporary data folder, through RelayStore's public API only.
//
// - checkpoint: `--sessions` records opened as the relay opens them at pairing
//   (`UsageStore.write(UsageBatch(opened:))`), then the counters of all of them written as
//   the relay's UsageRecorder writes a checkpoint: one `write(UsageBatch(checkpoints:))`,
//   one transaction. Timed on the fresh file and again once `--rows` history rows are in it.
// - load: `--rows` closed records, all past retention, written with the same `write(_:)`
//   in batches of 10,000 (one transaction each). Reported, not a goal.
// - export: one company's `--rows` records read page by page with `usagePage` (1,000 rows a
//   page, as the admin API and the CLI read them), encoded by `UsageExportEncoder` into a
//   32 KiB buffer (the API's chunk size) written to /dev/null. Each format runs in a child
//   process (this binary re-executed with a hidden flag), so that its peak RSS (VmHWM) is
//   the export's alone: the child reads VmHWM when the store is open, after 10% of the rows
//   and at the end. Flat memory means no growth from 10% to the end.
// - hourly purge: the relay's steady state. A run one hour after the oldest records'
//   retention ended: it deletes the few rows of that hour (about `--rows` / 8,000) and then,
//   because it deleted rows, VACUUMs the whole file (UsageStore.finishPurge), so that no
//   copy of them stays in free space. Timed in two parts (the batches; the end: audit entry,
//   VACUUM, WAL truncate), with the peak sizes of the WAL and of SQLite's temporary files
//   sampled every 10 ms.
// - purge: `UsageStore.purge` with the default policy (one year) removing the `--rows`
//   expired records (5,000 per transaction, then the VACUUM and the WAL truncate
//   checkpoint), with the file sizes before and after.

import ArgumentParser
import Foundation
import NIOConcurrencyHelpers
import RelayStore

#if canImport(Glibc)
import Glibc
#endif

struct StoreBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Usage history: checkpoint cost of live sessions, export rows/s and peak memory, purge time.",
        discussion: """
            Creates a fresh data folder (relay.sqlite, WAL, secure_delete) under --dir, opens \
            --sessions live session records and times checkpoints of all of them (one \
            transaction, median of --checkpoints), loads --rows expired records, exports them \
            as CSV and JSON Lines in child processes (rows/s, VmHWM), and purges them (time, \
            file sizes). The folder is deleted afterwards unless --keep.
            """
    )

    @Flag(name: .long, help: "Print one JSON object with all figures instead of tables.")
    var json = false

    @Option(name: .long, help: "Expired history rows to load, export and purge.")
    var rows: Int = 1_000_000

    @Option(name: .long, help: "Live sessions whose counters each checkpoint writes.")
    var sessions: Int = 10_000

    @Option(name: .long, help: "Timed checkpoints per case, after one untimed (the median is reported).")
    var checkpoints: Int = 9

    @Option(name: .long, help: "Folder in which the temporary data folder is made.")
    var dir: String = "/tmp"

    @Flag(name: .long, help: "Keep the data folder.")
    var keep = false

    // The export child (this binary re-executed).
    @Option(name: .customLong("export-child"), help: .private) var exportChild: String?
    @Option(name: .customLong("child-db"), help: .private) var childDatabase: String?
    @Option(name: .customLong("child-company"), help: .private) var childCompany: String?
    @Option(name: .customLong("child-from"), help: .private) var childFrom: Int64 = 0
    @Option(name: .customLong("child-to"), help: .private) var childTo: Int64 = 0
    @Option(name: .customLong("child-rows"), help: .private) var childRows: Int = 0

    /// As the admin API reads and writes an export (AdminServer.pageSize, .writeSize).
    static let pageSize = 1_000
    static let writeSize = 32 * 1024
    static let loadBatch = 10_000
    static let day: Int64 = 86_400_000

    func validate() throws {
        guard self.rows > 0, self.sessions > 0 else { throw ValidationError("--rows and --sessions must be positive") }
        guard self.checkpoints > 0 else { throw ValidationError("--checkpoints must be positive") }
    }

    func run() throws {
        if let exportChild {
            try self.runExportChild(format: exportChild)
            return
        }
        let machine = MachineInfo.current
        let command = (["relay-bench"] + CommandLine.arguments.dropFirst()).joined(separator: " ")
        var template = Array("\(self.dir)/relay-bench-store-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw BenchError("cannot make a temporary folder in \(self.dir)") }
        let folder = String(cString: made)
        defer { if !self.keep { try? FileManager.default.removeItem(atPath: folder) } }
        let data = folder + "/data"
        let store = try SQLStore(dataDirectory: data)
        let databasePath = store.location
        let exported = try store.addCompany(name: "Bench Export Co", actor: "bench").0.id
        let liveCompany = try store.addCompany(name: "Bench Live Co", actor: "bench").0.id
        var notes: [String] = []
        var results: [(String, JSON)] = []
        var lines: [String] = [
            "relay-bench store",
            "command: \(command)",
            "machine: \(machine.cpuModel), \(machine.cores) cores, \(machine.os)",
            "swift:   \(machine.swiftVersion)",
            "date:    \(machine.date)   load average: \(machine.loadAverage)",
            "settings: rows=\(self.rows), sessions=\(self.sessions), checkpoints=\(self.checkpoints) (+1 warm-up), data folder \(data) (secure_delete=\((try store.secureDelete()).map(String.init) ?? "n/a"))",
        ]

        // MARK: Live sessions, opened as at pairing
        let now = Date().milliseconds
        let runID = String(UInt64.random(in: 0..<UInt64.max), radix: 16)
        let live = (0..<self.sessions).map { index in
            Self.record(runID: runID, serial: 0x1_0000_0000 + index, companyID: liveCompany, startedAt: now - Int64(index % 3600) * 1000, endedAt: nil)
        }
        progress("opening \(self.sessions) live sessions")
        let openWatch = Stopwatch()
        try store.write(UsageBatch(opened: live))
        let openWall = openWatch.wall.seconds
        let openCPU = openWatch.cpu.seconds

        var round = 0
        func checkpointCase(_ name: String, historyRows: Int) throws -> (json: JSON, row: [String]) {
            var walls: [Double] = []
            var cpus: [Double] = []
            for attempt in 0...self.checkpoints {
                round += 1
                let at = Date().milliseconds
                let batch = UsageBatch(
                    checkpoints: live.enumerated().map { index, record in
                        let n = Int64(round * 1_000 + index % 1_000)
                        return UsageCheckpoint(
                            sessionID: record.id,
                            counters: UsageCounters(bytesToViewer: n * 65_536, bytesToHost: n * 48, framesToViewer: n * 30, framesToHost: n * 2),
                            at: at
                        )
                    })
                let watch = Stopwatch()
                try store.write(batch)
                if attempt > 0 {
                    walls.append(watch.wall.seconds * 1000)
                    cpus.append(watch.cpu.seconds * 1000)
                }
            }
            let median = Self.median(walls)
            let cpuShare = cpus.reduce(0, +) / walls.reduce(0, +)
            return (
                .object([
                    ("case", .string(name)), ("sessions", .int(self.sessions)), ("history_rows", .int(historyRows)),
                    ("checkpoints", .int(walls.count)), ("median_ms", .double(median)), ("min_ms", .double(walls.min() ?? 0)),
                    ("max_ms", .double(walls.max() ?? 0)), ("median_cpu_ms", .double(Self.median(cpus))),
                    ("us_per_session", .double(median * 1000 / Double(self.sessions))), ("cpu_share", .double(cpuShare)),
                    ("all_ms", .array(walls.map { .double($0) })),
                ]),
                [
                    name, String(self.sessions), String(historyRows), formatFixed(median, 1), formatFixed(walls.min() ?? 0, 1),
                    formatFixed(walls.max() ?? 0, 1), formatFixed(Self.median(cpus), 1), formatFixed(median * 1000 / Double(self.sessions), 2),
                    formatFixed(cpuShare, 2),
                ]
            )
        }
        progress("checkpoints on the fresh file")
        let fresh = try checkpointCase("fresh file", historyRows: 0)

        // MARK: History: expired records, evenly spread over 330 days, 730 to 400 days ago
        let historyStart = now - 730 * Self.day
        let historySpan = 330 * Self.day
        let step = max(1, historySpan / Int64(self.rows))
        progress("loading \(self.rows) expired rows")
        let loadWatch = Stopwatch()
        var loaded = 0
        while loaded < self.rows {
            let count = min(Self.loadBatch, self.rows - loaded)
            let batch = (loaded..<(loaded + count)).map { index -> UsageRecord in
                let started = historyStart + Int64(index) * step
                return Self.record(
                    runID: runID, serial: index, companyID: exported, startedAt: started, endedAt: started + 60_000 + Int64(index % 10_800) * 1000)
            }
            try store.write(UsageBatch(opened: batch))
            loaded += count
        }
        let loadWall = loadWatch.wall.seconds
        let loadCPU = loadWatch.cpu.seconds
        guard try store.usageCount() == self.rows + self.sessions else {
            throw BenchError("the file holds \(try store.usageCount()) records, expected \(self.rows + self.sessions)")
        }

        progress("checkpoints with \(self.rows) history rows")
        let loadedCase = try checkpointCase("with history", historyRows: self.rows)

        var checkpointTable = Table(columns: [
            .init("case", .left), .init("sessions", .right), .init("history rows", .right), .init("median ms", .right),
            .init("min ms", .right), .init("max ms", .right), .init("cpu ms", .right), .init("µs/session", .right), .init("cpu/wall", .right),
        ])
        checkpointTable.add(fresh.row)
        checkpointTable.add(loadedCase.row)
        lines.append("")
        lines.append(
            "checkpoint: one UsageStore.write(UsageBatch(checkpoints:)) of every live session (one transaction), median of \(self.checkpoints) after 1 warm-up")
        lines.append(checkpointTable.rendered)
        lines.append(
            "  opening the \(self.sessions) records (one write(UsageBatch(opened:))): \(formatFixed(openWall * 1000, 1)) ms, \(formatFixed(openWall * 1e6 / Double(self.sessions), 2)) µs/session, cpu/wall \(formatFixed(openCPU / openWall, 2))"
        )
        lines.append("")
        lines.append(
            "load: \(self.rows) expired records with write(UsageBatch(opened:)), \(Self.loadBatch) per transaction: \(formatFixed(loadWall, 1)) s, \(formatCount(Double(self.rows) / loadWall)) rows/s, cpu/wall \(formatFixed(loadCPU / loadWall, 2)); file \(Self.mebibytes(Self.fileSize(databasePath))) MiB + WAL \(Self.mebibytes(Self.fileSize(databasePath + "-wal"))) MiB"
        )
        results.append(("checkpoint", .array([fresh.json, loadedCase.json])))
        results.append(
            ("open_sessions", .object([("sessions", .int(self.sessions)), ("ms", .double(openWall * 1000)), ("cpu_share", .double(openCPU / openWall))])))
        results.append(
            (
                "load",
                .object([
                    ("rows", .int(self.rows)), ("rows_per_transaction", .int(Self.loadBatch)), ("seconds", .double(loadWall)),
                    ("rows_per_second", .double(Double(self.rows) / loadWall)), ("cpu_share", .double(loadCPU / loadWall)),
                    ("database_bytes", .int(Self.fileSize(databasePath))), ("wal_bytes", .int(Self.fileSize(databasePath + "-wal"))),
                ])
            ))

        // MARK: Export, one child process per format
        var exportTable = Table(columns: [
            .init("format", .left), .init("rows", .right), .init("seconds", .right), .init("rows/s", .right), .init("MB", .right),
            .init("MB/s", .right), .init("cpu/wall", .right), .init("RSS at open", .right), .init("HWM at 10%", .right),
            .init("HWM at end", .right), .init("growth 10%→end", .right), .init("growth open→end", .right),
        ])
        var exports: [JSON] = []
        for format in UsageExportFormat.allCases {
            progress("exporting \(self.rows) rows as \(format.rawValue) in a child process")
            let child = try Self.runChild([
                "store", "--export-child", format.rawValue, "--child-db", databasePath, "--child-company", exported,
                "--child-from", String(historyStart), "--child-to", String(historyStart + historySpan), "--child-rows", String(self.rows),
            ])
            func value(_ key: String) throws -> Double {
                guard let text = child[key], let number = Double(text) else { throw BenchError("the export child did not report \(key): \(child)") }
                return number
            }
            let rows = try value("rows")
            let bytes = try value("bytes")
            let wall = try value("wall")
            let cpu = try value("cpu")
            let rssOpen = try value("rss_open_kib")
            let hwmOpen = try value("hwm_open_kib")
            let hwm10 = try value("hwm_10_kib")
            let hwmEnd = try value("hwm_end_kib")
            guard Int(rows) == self.rows else { throw BenchError("the \(format.rawValue) export wrote \(Int(rows)) rows, expected \(self.rows)") }
            exportTable.add([
                format.rawValue, String(Int(rows)), formatFixed(wall, 2), formatCount(rows / wall), formatFixed(bytes / 1e6, 1),
                formatFixed(bytes / 1e6 / wall, 1), formatFixed(cpu / wall, 2), "\(formatFixed(rssOpen / 1024, 1)) MiB",
                "\(formatFixed(hwm10 / 1024, 1)) MiB", "\(formatFixed(hwmEnd / 1024, 1)) MiB",
                "\(formatFixed((hwmEnd - hwm10) / 1024, 2)) MiB", "\(formatFixed((hwmEnd - max(hwmOpen, rssOpen)) / 1024, 2)) MiB",
            ])
            exports.append(
                .object([
                    ("format", .string(format.rawValue)), ("rows", .int(Int(rows))), ("bytes", .int(Int(bytes))), ("seconds", .double(wall)),
                    ("cpu_seconds", .double(cpu)), ("rows_per_second", .double(rows / wall)), ("mb_per_second", .double(bytes / 1e6 / wall)),
                    ("rows_per_cpu_second", .double(rows / cpu)), ("cpu_share", .double(cpu / wall)),
                    ("rss_at_open_kib", .int(Int(rssOpen))), ("hwm_at_open_kib", .int(Int(hwmOpen))), ("hwm_at_10_percent_kib", .int(Int(hwm10))),
                    ("hwm_at_end_kib", .int(Int(hwmEnd))), ("growth_10_percent_to_end_kib", .int(Int(hwmEnd - hwm10))),
                ]))
        }
        lines.append("")
        lines.append(
            "export: usagePage (\(Self.pageSize) rows a page) → UsageExportEncoder (UTC, no BOM) → \(Self.writeSize / 1024) KiB writes to /dev/null; one child process per format; RSS and VmHWM of the child from /proc/self/status"
        )
        lines.append(exportTable.rendered)
        results.append(("export", .array(exports)))

        // MARK: Hourly purge: the first hour of the history past retention, then the VACUUM
        try store.truncateWriteAheadLog()
        let hourlyNow = Date(milliseconds: RetentionPolicy.expiry(of: historyStart + 3_600_000, months: 12))
        let hourlyBefore = Self.fileSize(databasePath)
        progress("an hourly purge of a store with \(self.rows) rows")
        let peaks = DiskPeaks(walPath: databasePath + "-wal")
        let hourlyWatch = Stopwatch()
        var hourly = try store.purgeCounts(policy: .default, now: hourlyNow).purging()
        var hourlyBatch: PurgeBatchResult
        repeat {
            hourlyBatch = try store.purgeBatch(policy: .default, now: hourlyNow, limit: PurgeBatchResult.defaultLimit)
            hourly.add(hourlyBatch)
        } while hourlyBatch.hasMore
        let deleteWall = hourlyWatch.wall.seconds
        let finishWatch = Stopwatch()
        try store.finishPurge(hourly, actor: "bench")
        let finishWall = finishWatch.wall.seconds
        let finishCPU = finishWatch.cpu.seconds
        let (walPeak, temporaryPeak) = peaks.stop()
        let hourlyAfter = Self.fileSize(databasePath)
        guard hourly.sessions > 0, try store.usageCount() == self.rows + self.sessions - hourly.sessions else {
            throw BenchError("the hourly purge removed \(hourly.sessions) records; expected a few, and the rest left")
        }
        var hourlyTable = Table(columns: [
            .init("purged", .right), .init("delete s", .right), .init("VACUUM + truncate s", .right), .init("total s", .right),
            .init("cpu/wall (end)", .right), .init("file before", .right), .init("file after", .right), .init("WAL peak", .right),
            .init("temp peak", .right),
        ])
        hourlyTable.add([
            String(hourly.sessions), formatFixed(deleteWall, 3), formatFixed(finishWall, 2), formatFixed(deleteWall + finishWall, 2),
            formatFixed(finishCPU / finishWall, 2), "\(Self.mebibytes(hourlyBefore)) MiB", "\(Self.mebibytes(hourlyAfter)) MiB",
            "\(Self.mebibytes(walPeak)) MiB", "\(Self.mebibytes(temporaryPeak)) MiB",
        ])
        lines.append("")
        lines.append(
            "hourly purge: the rows whose retention ended in the last hour, then UsageStore.finishPurge (audit entry, VACUUM because rows were deleted, WAL truncate)"
        )
        lines.append(hourlyTable.rendered)
        results.append(
            (
                "hourly_purge",
                .object([
                    ("rows", .int(hourly.sessions)), ("delete_seconds", .double(deleteWall)), ("finish_seconds", .double(finishWall)),
                    ("finish_cpu_share", .double(finishCPU / finishWall)), ("database_bytes_before", .int(hourlyBefore)),
                    ("database_bytes_after", .int(hourlyAfter)), ("wal_peak_bytes", .int(walPeak)), ("temporary_peak_bytes", .int(temporaryPeak)),
                ])
            ))

        // MARK: Purge
        try store.truncateWriteAheadLog()  // start from an empty WAL, so the purge's own checkpoint is what is timed
        let databaseBefore = Self.fileSize(databasePath)
        let walBefore = Self.fileSize(databasePath + "-wal")
        progress("purging \(self.rows) expired rows")
        let purgeWatch = Stopwatch()
        let report = try store.purge(policy: .default, now: Date(), dryRun: false, actor: "bench")
        let purgeWall = purgeWatch.wall.seconds
        let purgeCPU = purgeWatch.cpu.seconds
        let databaseAfter = Self.fileSize(databasePath)
        let walAfter = Self.fileSize(databasePath + "-wal")
        let left = try store.usageCount()
        guard report.sessions == self.rows - hourly.sessions, left == self.sessions else {
            throw BenchError(
                "the purge removed \(report.sessions) records (expected \(self.rows - hourly.sessions)) and left \(left) (expected \(self.sessions))")
        }
        var purgeTable = Table(columns: [
            .init("purged", .right), .init("seconds", .right), .init("rows/s", .right), .init("cpu/wall", .right),
            .init("file before", .right), .init("WAL before", .right), .init("file after", .right), .init("WAL after", .right), .init("records left", .right),
        ])
        purgeTable.add([
            String(report.sessions), formatFixed(purgeWall, 2), formatCount(Double(report.sessions) / purgeWall), formatFixed(purgeCPU / purgeWall, 2),
            "\(Self.mebibytes(databaseBefore)) MiB", "\(Self.mebibytes(walBefore)) MiB", "\(Self.mebibytes(databaseAfter)) MiB",
            "\(Self.mebibytes(walAfter)) MiB", String(left),
        ])
        lines.append("")
        lines.append(
            "purge: UsageStore.purge(policy: .default) of the other expired records, \(5_000) per transaction, then the VACUUM and the WAL truncate checkpoint (secure_delete on)"
        )
        lines.append(purgeTable.rendered)
        results.append(
            (
                "purge",
                .object([
                    ("rows", .int(report.sessions)), ("seconds", .double(purgeWall)), ("rows_per_second", .double(Double(report.sessions) / purgeWall)),
                    ("cpu_share", .double(purgeCPU / purgeWall)), ("database_bytes_before", .int(databaseBefore)), ("wal_bytes_before", .int(walBefore)),
                    ("database_bytes_after", .int(databaseAfter)), ("wal_bytes_after", .int(walAfter)), ("records_left", .int(left)),
                ])
            ))

        notes.append(
            "a purge that deleted rows ends with a VACUUM of the whole file (its cost grows with the file, not with the rows deleted) and the file shrinks to its live rows"
        )
        notes.append("the WAL was truncated before each purge, so its time holds only the purge's own writes, VACUUM and checkpoint")
        notes.append("SQLite writes the VACUUM's copy to its temporary folder ($SQLITE_TMPDIR, else $TMPDIR, else /var/tmp): temp peak")
        notes.append("the data folder is on the filesystem of \(self.dir); WAL mode as the store sets it (GRDB DatabasePool)")
        lines.append("")
        lines.append(contentsOf: notes.map { "note: \($0)" })

        if self.json {
            let object: JSON = .object([
                ("benchmark", .string("store")),
                ("command", .string(command)),
                ("machine", machine.json),
                (
                    "settings",
                    .object([
                        ("rows", .int(self.rows)), ("sessions", .int(self.sessions)), ("checkpoints", .int(self.checkpoints)),
                        ("page_size", .int(Self.pageSize)), ("write_size", .int(Self.writeSize)), ("load_batch", .int(Self.loadBatch)),
                        ("dir", .string(self.dir)),
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

    // MARK: - Export child

    /// Exports one company's range as the admin API does and prints `key=value` figures.
    func runExportChild(format name: String) throws {
        guard let path = self.childDatabase, let company = self.childCompany else { throw BenchError("--export-child needs --child-db and --child-company") }
        let format = try UsageExportFormat(parsing: name)
        let store = try SQLStore(path: path)
        var encoder = try UsageExportEncoder(format: format)
        let range = ExportRange(from: self.childFrom, to: self.childTo)
        let sink = open("/dev/null", O_WRONLY)
        guard sink >= 0 else { throw BenchError("cannot open /dev/null") }
        defer { close(sink) }
        let rssOpen = Self.procStatus("VmRSS")
        let hwmOpen = Self.procStatus("VmHWM")
        var hwm10: Int?
        var rows = 0
        var bytes = 0
        let watch = Stopwatch()
        var output: [UInt8] = []
        output.reserveCapacity(Self.writeSize + 4096)
        func flush() {
            bytes += output.count
            output.withUnsafeBytes { _ = write(sink, $0.baseAddress, $0.count) }
            output.removeAll(keepingCapacity: true)
        }
        encoder.header(into: &output)
        var cursor: UsageCursor?
        while true {
            let page = try store.usagePage(companyID: company, range: range, after: cursor, limit: Self.pageSize)
            for record in page {
                encoder.encode(record, into: &output)
                if output.count >= Self.writeSize { flush() }
            }
            rows += page.count
            if hwm10 == nil, rows * 10 >= self.childRows { hwm10 = Self.procStatus("VmHWM") }
            guard page.count == Self.pageSize, let last = page.last else { break }
            cursor = UsageCursor(after: last)
        }
        if !output.isEmpty { flush() }
        let wall = watch.wall.seconds
        let cpu = watch.cpu.seconds
        let hwmEnd = Self.procStatus("VmHWM")
        print(
            "rows=\(rows) bytes=\(bytes) wall=\(wall) cpu=\(cpu) rss_open_kib=\(rssOpen) hwm_open_kib=\(hwmOpen) hwm_10_kib=\(hwm10 ?? hwmEnd) hwm_end_kib=\(hwmEnd)"
        )
    }

    static func runChild(_ arguments: [String]) throws -> [String: String] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw BenchError("the export child failed (status \(process.terminationStatus))") }
        var fields: [String: String] = [:]
        for pair in String(decoding: output, as: UTF8.self).split(whereSeparator: { $0 == " " || $0 == "\n" }) {
            let parts = pair.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { fields[String(parts[0])] = String(parts[1]) }
        }
        return fields
    }

    // MARK: - Helpers

    static let engineers = ["kim.minjun", "lee.seoyeon", "park.jihoon", "choi.yuna", "jung.doyun", "kang.haeun", "cho.siwoo", "yoon.jiwoo"]
    static let hostNames = ["영업팀-노트북", "회계팀-PC", "DESKTOP-7QK2M", "front-desk", "물류센터-키오스크", "=HYPERLINK(\"x\")", "design, studio", "reception-02"]
    static let endReasons: [UsageRecord.EndReason] = [.normal, .peerLeft, .idleTimeout, .other("viewer_closed")]

    /// A usage record like the relay's; `endedAt` nil for a live session.
    static func record(runID: String, serial: Int, companyID: String, startedAt: Milliseconds, endedAt: Milliseconds?) -> UsageRecord {
        let hex = String(serial, radix: 16)
        let id = String(runID.prefix(16)).padding(toLength: 16, withPad: "0", startingAt: 0) + String(repeating: "0", count: max(0, 16 - hex.count)) + hex
        let unattended = serial % 4 != 0
        let n = Int64(serial % 5_000)
        return UsageRecord(
            id: id, companyID: companyID, engineerLogin: Self.engineers[serial % Self.engineers.count],
            hostID: unattended ? "ho_\(serial % 2_000)" : nil, hostName: "\(Self.hostNames[serial % Self.hostNames.count])-\(serial % 2_000)",
            mode: unattended ? .unattended : .attended, startedAt: startedAt, endedAt: endedAt,
            counters: endedAt == nil
                ? .zero : UsageCounters(bytesToViewer: n * 1_048_576, bytesToHost: n * 4_096, framesToViewer: n * 900, framesToHost: n * 60),
            endReason: endedAt == nil ? nil : Self.endReasons[serial % Self.endReasons.count],
            viewerAddress: "198.51.100.\(serial % 250 + 1):\(40_000 + serial % 20_000)",
            hostAddress: "203.0.113.\(serial % 250 + 1):\(50_000 + serial % 10_000)",
            relayNode: "relay-1"
        )
    }

    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return 0 }
        return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }

    static func fileSize(_ path: String) -> Int {
        var info = stat()
        return stat(path, &info) == 0 ? Int(info.st_size) : 0
    }

    static func mebibytes(_ bytes: Int) -> String { formatFixed(Double(bytes) / 1_048_576, 1) }

    /// A `VmRSS`/`VmHWM` line of /proc/self/status, in KiB.
    static func procStatus(_ key: String) -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix(key + ":") {
            return Int(line.dropFirst(key.count + 1).split(whereSeparator: { $0 == " " || $0 == "\t" }).first ?? "") ?? 0
        }
        return 0
    }
}

/// The largest sizes seen while a purge runs, sampled every 10 ms on a thread of its own:
/// the write-ahead log, and SQLite's temporary files (unlinked as soon as they are opened,
/// so found as `etilqs_*` among the process's open files).
final class DiskPeaks: Sendable {
    private let walPath: String
    private let state = NIOLockedValueBox<(wal: Int, temporary: Int, stop: Bool, stopped: Bool)>((0, 0, false, false))

    init(walPath: String) {
        self.walPath = walPath
        let thread = Thread { [self] in
            while !self.state.withLockedValue({ $0.stop }) {
                let wal = StoreBenchmark.fileSize(self.walPath)
                let temporary = Self.temporaryFileBytes()
                self.state.withLockedValue {
                    $0.wal = max($0.wal, wal)
                    $0.temporary = max($0.temporary, temporary)
                }
                usleep(10_000)
            }
            self.state.withLockedValue { $0.stopped = true }
        }
        thread.start()
    }

    /// Stops the sampling and returns the peaks.
    func stop() -> (wal: Int, temporary: Int) {
        self.state.withLockedValue { $0.stop = true }
        while !self.state.withLockedValue({ $0.stopped }) { usleep(1_000) }
        return self.state.withLockedValue { ($0.wal, $0.temporary) }
    }

    static func temporaryFileBytes() -> Int {
        guard let descriptors = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") else { return 0 }
        var total = 0
        for descriptor in descriptors {
            let link = "/proc/self/fd/" + descriptor
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: link), target.contains("etilqs_") else { continue }
            var info = stat()
            if stat(link, &info) == 0 { total += Int(info.st_size) }
        }
        return total
    }
}
