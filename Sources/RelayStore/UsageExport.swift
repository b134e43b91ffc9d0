public import Foundation

/// The formats of a usage export (OPERATIONS.md "Export").
public enum UsageExportFormat: String, Sendable, CaseIterable {
    /// RFC 4180: comma-separated, CRLF line ends, a header line, UTF-8.
    case csv
    /// JSON Lines: one JSON object per line, keys in column order, times in ISO 8601.
    case jsonl

    public init(parsing text: String) throws {
        guard let format = UsageExportFormat(rawValue: text.lowercased()) else {
            throw StoreError(.invalidInput, "unknown format \"\(text)\"; use csv or jsonl")
        }
        self = format
    }

    public var contentType: String {
        switch self {
        case .csv: "text/csv; charset=utf-8; header=present"
        case .jsonl: "application/jsonl; charset=utf-8"
        }
    }

    public var fileExtension: String { self.rawValue }
}

/// One company's usage export, streamed (OPERATIONS.md "Export"): the records that
/// started in a range, read from the store a page at a time and handed out as chunks of
/// encoded bytes, so memory stays flat however many rows there are. The command line
/// (`relay-server usage export`) and the admin API (`GET /v1/usage`) both run this, so
/// they produce the same bytes and the same audit entry.
public struct UsageExport: Sendable {
    /// Rows read from the store per page.
    public static let pageSize = 1_000
    /// Bytes collected before each write (each write of the admin API flushes).
    public static let chunkSize = 32 * 1024

    public let companyID: String
    public let range: ExportRange
    public let encoder: UsageExportEncoder
    /// The wall clock of the audit entry's time; the relay passes its own.
    public let now: @Sendable () -> Date

    public init(companyID: String, range: ExportRange, encoder: UsageExportEncoder, now: @escaping @Sendable () -> Date = { Date() }) {
        self.companyID = companyID
        self.range = range
        self.encoder = encoder
        self.now = now
    }

    /// Reads every page with `readPage` (the next page after a cursor, at most
    /// ``pageSize`` records: ``UsageStore/usagePage(companyID:range:after:limit:)``, on a
    /// thread pool if the caller must not block), hands the bytes to `write` in chunks of
    /// about ``chunkSize``, and returns how many rows it wrote. The next page is read by a
    /// child task while the current one is encoded and written, so that a second core can
    /// take the reading.
    ///
    /// Whether it finishes or fails, it ends by passing its audit entry to `audit`: who
    /// (`actor`), the rows written so far, the format and range, the `source` address if
    /// given, and `incomplete=true` if it did not finish. The audit log says that personal
    /// data left the relay, even when the transfer broke off.
    public func run(
        actor: String, source: String? = nil,
        readPage: @escaping @Sendable (UsageCursor?) async throws -> [UsageRecord],
        write: ([UInt8]) async throws -> Void,
        audit: (AuditEntry) -> Void
    ) async throws -> Int {
        var rows = 0
        var complete = false
        defer { audit(self.auditEntry(actor: actor, source: source, rows: rows, complete: complete, at: self.now())) }
        var encoder = self.encoder
        var output: [UInt8] = []
        output.reserveCapacity(Self.chunkSize + 4096)
        encoder.header(into: &output)
        var page = try await readPage(nil)
        while true {
            // The next page is read while this one is encoded and written: its cursor is this page's last row.
            let cursor = page.count >= Self.pageSize ? page.last.map(UsageCursor.init(after:)) : nil
            async let following = Self.page(after: cursor, readPage)
            for record in page {
                encoder.encode(record, into: &output)
                if output.count >= Self.chunkSize {
                    try await write(output)
                    output.removeAll(keepingCapacity: true)
                }
            }
            rows += page.count
            page = try await following
            if cursor == nil { break }
        }
        if !output.isEmpty { try await write(output) }
        complete = true
        return rows
    }

    /// The page after `cursor`; none when there is no cursor (the last page was short).
    private static func page(
        after cursor: UsageCursor?, _ readPage: @Sendable (UsageCursor?) async throws -> [UsageRecord]
    ) async throws -> [UsageRecord] {
        guard let cursor else { return [] }
        return try await readPage(cursor)
    }

    /// ``run(actor:source:readPage:write:audit:)`` reading from `store` on the calling
    /// thread: for the command line, which has nothing else to do meanwhile.
    public func run(
        from store: some UsageStore, actor: String, write: ([UInt8]) async throws -> Void, audit: (AuditEntry) -> Void
    ) async throws -> Int {
        try await self.run(
            actor: actor,
            readPage: { try store.usagePage(companyID: self.companyID, range: self.range, after: $0, limit: Self.pageSize) },
            write: write, audit: audit
        )
    }

    /// The audit entry of an export: `rows=N format=F from=MS to=MS[ source=ADDR][ incomplete=true]`.
    public func auditEntry(actor: String, source: String? = nil, rows: Int, complete: Bool, at: Date) -> AuditEntry {
        var detail = "rows=\(rows) format=\(self.encoder.format.rawValue) \(self.range.auditText)"
        if let source { detail += " source=\(source)" }
        if !complete { detail += " incomplete=true" }
        return AuditEntry(at: at, actor: actor, action: .export, companyID: self.companyID, detail: detail)
    }
}

/// Turns usage records into export bytes, one row at a time (no I/O, no whole-file buffer).
///
/// Columns, in this order (OPERATIONS.md documents each): session_id, company_id,
/// engineer, host_id, host_name, mode, started_at, ended_at, duration_s, bytes_to_viewer,
/// bytes_to_host, frames_to_viewer, frames_to_host, end_reason, viewer_addr, host_addr,
/// relay_node.
///
/// CSV cells that a spreadsheet would run as a formula — starting with `=`, `+`, `-`, `@`,
/// tab or carriage return (OWASP "CSV injection") — get a leading `'` and are quoted, so
/// Excel shows them as text. JSON Lines carries the values unchanged.
public struct UsageExportEncoder: Sendable {
    public static let columns = [
        "session_id", "company_id", "engineer", "host_id", "host_name", "mode", "started_at", "ended_at", "duration_s",
        "bytes_to_viewer", "bytes_to_host", "frames_to_viewer", "frames_to_host", "end_reason", "viewer_addr",
        "host_addr", "relay_node", "viewer_client",
    ]

    /// The UTF-8 byte order mark, which makes Excel read a CSV file as UTF-8.
    public static let byteOrderMark: [UInt8] = [0xEF, 0xBB, 0xBF]

    public let format: UsageExportFormat
    public let byteOrderMarked: Bool
    private var timestamps: TimestampFormatter

    /// `byteOrderMark` applies to CSV only: a BOM would make the first JSON line invalid.
    public init(format: UsageExportFormat, timeZone: ExportTimeZone = .utc, byteOrderMark: Bool = false) throws {
        if byteOrderMark && format != .csv {
            throw StoreError(.invalidInput, "a byte order mark (bom) is for CSV only; JSON Lines is always plain UTF-8, so leave it out")
        }
        self.format = format
        self.byteOrderMarked = byteOrderMark
        self.timestamps = TimestampFormatter(timeZone: timeZone)
    }

    /// What comes before the first row: the BOM if asked for, and the CSV header line.
    public func header(into output: inout [UInt8]) {
        guard self.format == .csv else { return }
        if self.byteOrderMarked { output.append(contentsOf: Self.byteOrderMark) }
        for (index, column) in Self.columns.enumerated() {
            if index > 0 { output.append(UInt8(ascii: ",")) }
            output.append(contentsOf: column.utf8)
        }
        output.append(contentsOf: [0x0D, 0x0A])
    }

    /// Appends one row.
    public mutating func encode(_ record: UsageRecord, into output: inout [UInt8]) {
        let started = self.timestamps.format(record.startedAt)
        let ended = record.endedAt.map { self.timestamps.format($0) }
        let values: [Value] = [
            .text(record.id), .text(record.companyID), .text(record.engineerLogin), .optionalText(record.hostID),
            .text(record.hostName), .text(record.mode.rawValue), .text(started), .optionalText(ended),
            .optionalNumber(record.durationSeconds), .number(record.counters.bytesToViewer), .number(record.counters.bytesToHost),
            .number(record.counters.framesToViewer), .number(record.counters.framesToHost), .optionalText(record.endReason?.rawValue),
            .text(record.viewerAddress), .text(record.hostAddress), .text(record.relayNode), .text(record.viewerClient.rawValue),
        ]
        switch self.format {
        case .csv:
            for (index, value) in values.enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                switch value {
                case .text(let text), .optionalText(.some(let text)): Self.appendCSVCell(text, to: &output)
                case .number(let number), .optionalNumber(.some(let number)): output.append(contentsOf: String(number).utf8)
                case .optionalText(.none), .optionalNumber(.none): break
                }
            }
            output.append(contentsOf: [0x0D, 0x0A])
        case .jsonl:
            output.append(UInt8(ascii: "{"))
            for (index, value) in values.enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                output.append(UInt8(ascii: "\""))
                output.append(contentsOf: Self.columns[index].utf8)
                output.append(contentsOf: "\":".utf8)
                switch value {
                case .text(let text), .optionalText(.some(let text)): Self.appendJSONString(text, to: &output)
                case .number(let number), .optionalNumber(.some(let number)): output.append(contentsOf: String(number).utf8)
                case .optionalText(.none), .optionalNumber(.none): output.append(contentsOf: "null".utf8)
                }
            }
            output.append(contentsOf: "}\n".utf8)
        }
    }

    private enum Value {
        case text(String)
        case optionalText(String?)
        case number(Int64)
        case optionalNumber(Int64?)
    }

    /// One CSV cell (RFC 4180 §2.5–2.7), defused against formula injection.
    public static func appendCSVCell(_ text: String, to output: inout [UInt8]) {
        let bytes = text.utf8
        let formula = bytes.first.map { [UInt8(ascii: "="), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "@"), 0x09, 0x0D].contains($0) } ?? false
        let needsQuotes = formula || bytes.contains { $0 == UInt8(ascii: ",") || $0 == UInt8(ascii: "\"") || $0 == 0x0A || $0 == 0x0D }
        guard needsQuotes else {
            output.append(contentsOf: bytes)
            return
        }
        output.append(UInt8(ascii: "\""))
        if formula { output.append(UInt8(ascii: "'")) }
        for byte in bytes {
            if byte == UInt8(ascii: "\"") { output.append(byte) }
            output.append(byte)
        }
        output.append(UInt8(ascii: "\""))
    }

    /// A JSON string (RFC 8259 §7): quotes, backslashes and control characters escaped,
    /// everything else as UTF-8.
    public static func appendJSONString(_ text: String, to output: inout [UInt8]) {
        output.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): output.append(contentsOf: [0x5C, 0x22])
            case UInt8(ascii: "\\"): output.append(contentsOf: [0x5C, 0x5C])
            case 0x0A: output.append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case 0x0D: output.append(contentsOf: [0x5C, UInt8(ascii: "r")])
            case 0x09: output.append(contentsOf: [0x5C, UInt8(ascii: "t")])
            case 0x00..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                output.append(contentsOf: [0x5C, UInt8(ascii: "u"), 0x30, 0x30, hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]])
            default: output.append(byte)
            }
        }
        output.append(UInt8(ascii: "\""))
    }
}

/// ISO 8601 times with the export time zone's offset, to the second:
/// `2026-11-23T19:05:07+09:00`, or `…Z` in UTC. The offset is looked up once per
/// daylight-saving period rather than per row.
public struct TimestampFormatter: Sendable {
    public let timeZone: ExportTimeZone
    private var cachedRange: Range<Milliseconds> = 0..<0
    private var cachedOffset = 0

    public init(timeZone: ExportTimeZone) {
        self.timeZone = timeZone
    }

    public mutating func format(_ instant: Milliseconds) -> String {
        let offset = self.offset(at: instant)
        let local = Civil(instant + Int64(offset) * 1000)
        let seconds = Int(local.millisecondOfDay / 1000)
        var text = Self.digits(local.year, 4) + "-" + Self.digits(local.month, 2) + "-" + Self.digits(local.day, 2)
        text += "T" + Self.digits(seconds / 3600, 2) + ":" + Self.digits(seconds / 60 % 60, 2) + ":" + Self.digits(seconds % 60, 2)
        if self.timeZone == .utc {
            text += "Z"
        } else {
            let magnitude = abs(offset) / 60
            text += (offset < 0 ? "-" : "+") + Self.digits(magnitude / 60, 2) + ":" + Self.digits(magnitude % 60, 2)
        }
        return text
    }

    private mutating func offset(at instant: Milliseconds) -> Int {
        if self.cachedRange.contains(instant) { return self.cachedOffset }
        let zone = self.timeZone.timeZone
        let date = Date(milliseconds: instant)
        let offset = zone.secondsFromGMT(for: date)
        // Valid from this instant until the next transition (or for ever, for fixed offsets).
        let next = zone.nextDaylightSavingTimeTransition(after: date).map { $0.milliseconds } ?? Milliseconds.max
        self.cachedRange = instant..<max(instant + 1, next)
        self.cachedOffset = offset
        return offset
    }

    private static func digits(_ value: Int, _ width: Int) -> String {
        let text = String(value)
        return text.count >= width ? text : String(repeating: "0", count: width - text.count) + text
    }
}
