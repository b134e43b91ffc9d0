import Foundation
import RelayStore
import RelayTestSupport
import Synchronization
import Testing

/// The export's row encoding and range parsing, without I/O (OPERATIONS.md "Export").
@Suite struct UsageExportTests {
    static func record(
        _ id: String = "0123456789abcdef0123456789abcdef", engineer: String = "kim.minji", hostName: String = "회계팀 PC-03", ended: Bool = true
    ) -> UsageRecord {
        let started = StoreFixture.milliseconds("2026-11-02T01:00:00Z")
        return UsageRecord(
            id: id, companyID: "co-2qfx2xxwc5", engineerLogin: engineer, hostID: ended ? "ho-aawvbeke34" : nil, hostName: hostName,
            mode: ended ? .unattended : .attended, startedAt: started, endedAt: ended ? started + 3_725_999 : nil,
            counters: UsageCounters(bytesToViewer: 123_456_789, bytesToHost: 4_096, framesToViewer: 2_000, framesToHost: 17),
            endReason: ended ? .normal : nil, viewerAddress: "203.0.113.7:50123", hostAddress: "[2001:db8::5]:443", relayNode: "relay-seoul-1"
        )
    }

    static func encode(_ records: [UsageRecord], format: UsageExportFormat, timeZone: ExportTimeZone = .utc, bom: Bool = false) throws -> [UInt8] {
        var encoder = try UsageExportEncoder(format: format, timeZone: timeZone, byteOrderMark: bom)
        var output: [UInt8] = []
        encoder.header(into: &output)
        for record in records { encoder.encode(record, into: &output) }
        return output
    }

    @Test func csvHeaderAndRowInColumnOrder() throws {
        let text = String(decoding: try Self.encode([Self.record()], format: .csv, timeZone: ExportTimeZone(parsing: "Asia/Seoul")), as: UTF8.self)
        #expect(
            text == """
                session_id,company_id,engineer,host_id,host_name,mode,started_at,ended_at,duration_s,bytes_to_viewer,bytes_to_host,frames_to_viewer,frames_to_host,end_reason,viewer_addr,host_addr,relay_node,viewer_client\r
                0123456789abcdef0123456789abcdef,co-2qfx2xxwc5,kim.minji,ho-aawvbeke34,회계팀 PC-03,unattended,2026-11-02T10:00:00+09:00,2026-11-02T11:02:05+09:00,3725,123456789,4096,2000,17,normal,203.0.113.7:50123,[2001:db8::5]:443,relay-seoul-1,agent\r

                """)
    }

    @Test func openSessionsHaveEmptyCells() throws {
        let text = String(decoding: try Self.encode([Self.record(ended: false)], format: .csv), as: UTF8.self)
        #expect(text.hasSuffix("relay-seoul-1,agent\r\n"))
        #expect(text.contains(",attended,2026-11-02T01:00:00Z,,,123456789,4096,2000,17,,203.0.113.7:50123,"))
        #expect(text.contains("co-2qfx2xxwc5,kim.minji,,회계팀 PC-03,"))
    }

    @Test func byteOrderMarkOnlyWhenAskedAndOnlyForCSV() throws {
        let plain = try Self.encode([], format: .csv)
        let marked = try Self.encode([], format: .csv, bom: true)
        #expect(Array(marked.prefix(3)) == [0xEF, 0xBB, 0xBF])
        #expect(Array(marked.dropFirst(3)) == plain)
        #expect(plain.first == UInt8(ascii: "s"))
        #expect(storeErrorKind { try UsageExportEncoder(format: .jsonl, byteOrderMark: true) } == .invalidInput)
    }

    @Test func rfc4180QuotingAndFormulaInjection() {
        func cell(_ text: String) -> String {
            var output: [UInt8] = []
            UsageExportEncoder.appendCSVCell(text, to: &output)
            return String(decoding: output, as: UTF8.self)
        }
        #expect(cell("plain") == "plain")
        #expect(cell("김민지") == "김민지")
        #expect(cell("a,b") == #""a,b""#)
        #expect(cell(#"say "hi""#) == #""say ""hi""""#)
        #expect(cell("two\r\nlines") == "\"two\r\nlines\"")
        #expect(cell("line\nfeed") == "\"line\nfeed\"")
        // OWASP CSV injection: a leading = + - @ tab or CR makes Excel evaluate the cell.
        #expect(cell("=HYPERLINK(\"http://evil\",\"x\")") == #""'=HYPERLINK(""http://evil"",""x"")""#)
        #expect(cell("+1+1") == #""'+1+1""#)
        #expect(cell("-2+3") == #""'-2+3""#)
        #expect(cell("@SUM(A1)") == #""'@SUM(A1)""#)
        #expect(cell("\t=1") == "\"'\t=1\"")
        #expect(cell("\r=1") == "\"'\r=1\"")
        // Only the first character matters.
        #expect(cell("PC-03=1") == "PC-03=1")
        #expect(cell("") == "")
    }

    @Test func hostileNamesStayInTheirCells() throws {
        let record = Self.record(engineer: "=cmd|' /C calc'!A0", hostName: "경리, \"본사\"\r\n2층")
        let text = String(decoding: try Self.encode([record], format: .csv), as: UTF8.self)
        #expect(text.contains(#","'=cmd|' /C calc'!A0","#))
        #expect(text.contains(",\"경리, \"\"본사\"\"\r\n2층\","))
    }

    @Test func jsonLinesCarryValuesUnchanged() throws {
        let record = Self.record(engineer: "=kim \"the\" \\ minji\u{1}", hostName: "회계팀 PC-03")
        let lines = String(
            decoding: try Self.encode([record, Self.record(ended: false)], format: .jsonl, timeZone: ExportTimeZone(parsing: "+09:00")), as: UTF8.self
        )
        .split(separator: "\n")
        #expect(lines.count == 2)
        let first = try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as! [String: Any]
        #expect(first["engineer"] as? String == "=kim \"the\" \\ minji\u{1}")
        #expect(first["host_name"] as? String == "회계팀 PC-03")
        #expect(first["started_at"] as? String == "2026-11-02T10:00:00+09:00")
        #expect(first["duration_s"] as? Int == 3725)
        #expect(first["bytes_to_viewer"] as? Int == 123_456_789)
        let second = try JSONSerialization.jsonObject(with: Data(lines[1].utf8)) as! [String: Any]
        #expect(second["ended_at"] is NSNull)
        #expect(second["host_id"] is NSNull)
        // Keys in column order.
        let keys = lines[0].split(separator: ",").compactMap { part -> String? in
            guard let colon = part.firstIndex(of: ":"), part.hasPrefix("\"") || part.hasPrefix("{\"") else { return nil }
            return String(part[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "{\""))
        }
        #expect(Array(keys.filter { UsageExportEncoder.columns.contains($0) }) == UsageExportEncoder.columns)
    }

    @Test func timestampsFollowDaylightSaving() throws {
        var formatter = TimestampFormatter(timeZone: try ExportTimeZone(parsing: "America/New_York"))
        #expect(formatter.format(StoreFixture.milliseconds("2026-03-08T06:59:59Z")) == "2026-03-08T01:59:59-05:00")
        #expect(formatter.format(StoreFixture.milliseconds("2026-03-08T07:00:00Z")) == "2026-03-08T03:00:00-04:00")
        #expect(formatter.format(StoreFixture.milliseconds("2026-11-01T05:59:59Z")) == "2026-11-01T01:59:59-04:00")
        #expect(formatter.format(StoreFixture.milliseconds("2026-11-01T06:00:00Z")) == "2026-11-01T01:00:00-05:00")
        // Going back in time after the cache was filled.
        #expect(formatter.format(StoreFixture.milliseconds("2026-01-15T12:00:00Z")) == "2026-01-15T07:00:00-05:00")
        var utc = TimestampFormatter(timeZone: .utc)
        #expect(utc.format(0) == "1970-01-01T00:00:00Z")
    }

    // MARK: Ranges

    @Test func datesAreWholeDaysInTheExportTimeZone() throws {
        let seoul = try ExportTimeZone(parsing: "Asia/Seoul")
        let november = try ExportRange.parse(from: "2026-11-01", to: "2026-11-30", timeZone: seoul)
        #expect(november.from == StoreFixture.milliseconds("2026-11-01T00:00:00+09:00"))
        #expect(november.to == StoreFixture.milliseconds("2026-12-01T00:00:00+09:00"))
        let utc = try ExportRange.parse(from: "2026-11-01", to: "2026-11-01", timeZone: .utc)
        #expect(utc.to - utc.from == 86_400_000)
        // A date-time end is exclusive; its own offset wins over --tz.
        let times = try ExportRange.parse(from: "2026-11-01T09:30", to: "2026-11-01T10:00:00.5Z", timeZone: seoul)
        #expect(times.from == StoreFixture.milliseconds("2026-11-01T00:30:00Z"))
        #expect(times.to == StoreFixture.milliseconds("2026-11-01T10:00:00.500Z"))
        let offset = try ExportRange.parse(from: "2026-11-01T00:00:00-05:00", to: "2026-11-02", timeZone: .utc)
        #expect(offset.from == StoreFixture.milliseconds("2026-11-01T05:00:00Z"))
        // New York's day of the autumn change has 25 hours.
        let newYork = try ExportTimeZone(parsing: "America/New_York")
        let long = try ExportRange.parse(from: "2026-11-01", to: "2026-11-01", timeZone: newYork)
        #expect(long.to - long.from == 25 * 3_600_000)
    }

    @Test func badRangesSayWhatToWrite() throws {
        func message(_ from: String, _ to: String, _ zone: ExportTimeZone = .utc) -> String {
            do {
                _ = try ExportRange.parse(from: from, to: to, timeZone: zone)
                return "no error"
            } catch {
                return "\(error)"
            }
        }
        #expect(message("2026-11-30", "2026-11-01").contains("is not before --to"))
        #expect(message("2026-11-01T10:00Z", "2026-11-01T10:00Z").contains("the range is empty"))
        #expect(message("2026-13-01", "2026-12-01").contains("no such day"))
        #expect(message("2026-02-29", "2026-03-01").contains("no such day"))
        #expect(message("yesterday", "2026-03-01").contains("write YYYY-MM-DD"))
        #expect(message("2026-11-01T25:00", "2026-12-01").contains("no such time"))
        #expect(message("2026-11-01T10:00+25:00", "2026-12-01").contains("bad offset"))
        #expect(message("2026-11-01", "2026-12-01T10:00:00Zjunk").contains("--to"))
    }

    @Test func timeZones() throws {
        #expect(try ExportTimeZone(parsing: "Asia/Seoul").offset(at: 0) == 9 * 3600)
        #expect(try ExportTimeZone(parsing: "+09:00").offset(at: 0) == 9 * 3600)
        #expect(try ExportTimeZone(parsing: "-0530").offset(at: 0) == -(5 * 3600 + 1800))
        #expect(try ExportTimeZone(parsing: "UTC") == .utc)
        #expect(storeErrorKind { try ExportTimeZone(parsing: "Mars/Olympus_Mons") } == .invalidInput)
        #expect(storeErrorKind { try ExportTimeZone(parsing: "+9:0") } == .invalidInput)
        #expect(storeErrorKind { try ExportTimeZone(parsing: "+19:00") } == .invalidInput)
        #expect(storeErrorKind { try UsageExportFormat(parsing: "xlsx") } == .invalidInput)
    }

    @Test func checkpointsOfSessionsClosedInTheSameBatchAreDropped() {
        var batch = UsageBatch()
        batch.closed.append(UsageClosure(sessionID: "a", endedAt: 10, counters: .zero, reason: .normal))
        batch.addCheckpoints([
            UsageCheckpoint(sessionID: "a", counters: UsageCounters(bytesToViewer: 1), at: 11),
            UsageCheckpoint(sessionID: "b", counters: UsageCounters(bytesToViewer: 2), at: 11),
        ])
        #expect(batch.checkpoints.map(\.sessionID) == ["b"])
        #expect(!batch.isEmpty)
        #expect(UsageBatch().isEmpty)
    }

    /// Issue 11 item 6: the command line and the admin API ran two copies of this loop,
    /// with different chunk sizes and audit texts; both now run ``UsageExport``.
    @Test func theStreamingExportPagesChunksAndAuditsOnce() async throws {
        let records = (0..<2_500).map { Self.record(String(repeating: "0", count: 28) + String(1000 + $0)) }
        let export = UsageExport(companyID: "co-2qfx2xxwc5", range: ExportRange(from: 0, to: 5_000), encoder: try UsageExportEncoder(format: .jsonl))
        // The next page is read while the current one is written (on another task).
        let cursors = Mutex<[UsageCursor?]>([])
        var chunks: [[UInt8]] = []
        var audits: [AuditEntry] = []
        let rows = try await export.run(
            actor: "api:co-2qfx2xxwc5", source: "192.0.2.9",
            readPage: { cursor in
                cursors.withLock { $0.append(cursor) }
                let start = cursor.map { after in records.firstIndex { $0.id == after.id }! + 1 } ?? 0
                return Array(records[start..<min(records.count, start + UsageExport.pageSize)])
            },
            write: { chunks.append($0) },
            audit: { audits.append($0) }
        )
        #expect(rows == 2_500)
        #expect(cursors.withLock { $0 } == [nil, UsageCursor(after: records[999]), UsageCursor(after: records[1999])])
        #expect(chunks.flatMap { $0 } == (try Self.encode(records, format: .jsonl)))
        let rowBytes = (try Self.encode([records[0]], format: .jsonl)).count
        for chunk in chunks.dropLast() {
            #expect(chunk.count >= UsageExport.chunkSize && chunk.count < UsageExport.chunkSize + rowBytes + 16)
        }
        #expect(audits.count == 1)
        #expect(audits.first?.action == .export)
        #expect(audits.first?.actor == "api:co-2qfx2xxwc5")
        #expect(audits.first?.companyID == "co-2qfx2xxwc5")
        #expect(audits.first?.detail == "rows=2500 format=jsonl from=1970-01-01T00:00:00Z to=1970-01-01T00:00:05Z source=192.0.2.9")
    }

    struct BrokenPipe: Error {}

    /// An export that breaks off still leaves its audit entry, marked incomplete.
    @Test func aBrokenExportIsAuditedAsIncomplete() async throws {
        let records = (0..<1_500).map { Self.record(String(repeating: "0", count: 28) + String(1000 + $0)) }
        let export = UsageExport(companyID: "co-1", range: ExportRange(from: 0, to: 5_000), encoder: try UsageExportEncoder(format: .csv, byteOrderMark: true))
        var audits: [AuditEntry] = []
        var writes = 0
        await #expect(throws: BrokenPipe.self) {
            _ = try await export.run(
                actor: "cli",
                readPage: { cursor in cursor == nil ? Array(records[0..<1_000]) : Array(records[1_000...]) },
                write: { _ in
                    writes += 1
                    if writes == 3 { throw BrokenPipe() }
                },
                audit: { audits.append($0) }
            )
        }
        #expect(audits.map(\.detail) == ["rows=0 format=csv from=1970-01-01T00:00:00Z to=1970-01-01T00:00:05Z incomplete=true"])
    }
}
