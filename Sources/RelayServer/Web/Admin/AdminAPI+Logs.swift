import Foundation
import NIOCore
import RelayStore

/// Retention and legal hold (item 5), the audit and access logs (item 6), and API
/// tokens (item 8). The logs are read only here: no route changes or deletes an entry.
extension AdminAPI {
    // MARK: Retention and legal hold

    private struct HoldRow: Encodable {
        let reason: String
        let heldAt: Date
        let heldBy: String
    }

    private struct NextPurge: Encodable {
        let at: Date
        let sessions: Int
        let accessEvents: Int
        let heldSessions: Int
        let heldAccessEvents: Int
    }

    private struct Retention: Encodable {
        let usageMonths: Int
        let accessMonths: Int
        @Nullable var hold: HoldRow?
        let nextPurge: NextPurge
    }

    func retention(_ caller: AdminCaller) async throws -> WebReply {
        try self.require(.manageRetention, caller)
        let (store, companyID) = (self.store, caller.companyID)
        let policy = self.relay.configuration.retention
        // What the purge that runs within the next interval destroys: counted as of then.
        let at = self.relay.now().addingTimeInterval(TimeInterval(self.relay.configuration.purgeInterval.components.seconds))
        let (holds, counts) = try await self.run {
            (try store.legalHolds(), try store.purgeCounts(companyID: companyID, policy: policy, now: at))
        }
        let hold = holds.first { $0.companyID == companyID }.map { HoldRow(reason: $0.reason, heldAt: $0.heldAt, heldBy: $0.heldBy) }
        return .json(
            Retention(
                usageMonths: policy.usageMonths, accessMonths: policy.accessLogMonths, hold: hold,
                nextPurge: NextPurge(
                    at: at, sessions: counts.sessions, accessEvents: counts.accessLogEntries, heldSessions: counts.heldSessions,
                    heldAccessEvents: counts.heldAccessLogEntries)))
    }

    private struct HoldForm: Decodable { let reason: String }

    func hold(_ caller: AdminCaller, _ request: WebRequest) async throws -> WebReply {
        try self.require(.manageRetention, caller)
        let form = try WebApplication.decode(HoldForm.self, request)
        let reason = form.reason.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !reason.isEmpty, reason.utf8.count <= 500 else {
            throw WebFailure(.badRequest, "give the hold's reason (an investigation's name or number), at most 500 bytes")
        }
        let (store, companyID, actor) = (self.store, caller.companyID, caller.actor)
        let hold = try await self.run { try store.placeHold(companyID: companyID, reason: reason, actor: actor) }
        return .json(["hold": HoldRow(reason: hold.reason, heldAt: hold.heldAt, heldBy: hold.heldBy)])
    }

    func releaseHold(_ caller: AdminCaller) async throws -> WebReply {
        try self.require(.manageRetention, caller)
        let (store, companyID, actor) = (self.store, caller.companyID, caller.actor)
        try await self.run { try store.releaseHold(companyID: companyID, actor: actor) }
        return .json([String: String]())
    }

    // MARK: Logs

    enum Log: String { case audit, access }

    /// The filter of a log request: `from`/`to` default to the last 90 days.
    private func logFilter(_ caller: AdminCaller, _ query: AdminQuery, log: Log) throws -> (LogFilter, ExportTimeZone) {
        try self.require(.readLogs, caller)
        let timeZone = try query["tz"].map { try ExportTimeZone(parsing: $0) } ?? .utc
        let now = self.relay.now().milliseconds
        var range = ExportRange(from: now - 90 * 86_400_000, to: now + 60_000)
        if query["from"] != nil || query["to"] != nil {
            guard let from = query["from"], let to = query["to"] else {
                throw WebFailure(.badRequest, "give both from and to, or neither (the last 90 days)")
            }
            range = try ExportRange.parse(from: from, to: to, timeZone: timeZone, fromName: "from", toName: "to")
        }
        let before = try query.before()
        let who = log == .audit ? query["actor"] : query["subject"]
        let what = log == .audit ? query["action"] : query["event"]
        return (LogFilter(companyID: caller.companyID, range: range, who: who, what: what, outcome: query["outcome"], before: before), timeZone)
    }

    private struct AuditRow: Encodable {
        let id: Int64
        let at: Date
        let actor: String
        let action: String
        @Nullable var subject: String?
        @Nullable var detail: String?
    }

    private struct AccessRow: Encodable {
        let id: Int64
        let at: Date
        let event: String
        let outcome: String
        let sourceAddress: String
        @Nullable var subject: String?
        @Nullable var detail: String?
    }

    private struct Page<Row: Encodable>: Encodable {
        let rows: [Row]
        @Nullable var next: String?
    }

    func audit(_ caller: AdminCaller, _ query: AdminQuery) async throws -> WebReply {
        let (filter, _) = try self.logFilter(caller, query, log: .audit)
        let limit = try query.limit(default: Self.defaultPageSize, maximum: Self.maximumPageSize)
        let store = self.store
        let entries = try await self.query { try store.auditPage(filter, limit: limit + 1) }
        let rows = entries.prefix(limit).map {
            AuditRow(id: $0.id ?? 0, at: $0.at, actor: $0.actor, action: $0.action.rawValue, subject: $0.subject, detail: $0.detail)
        }
        return .json(Page(rows: Array(rows), next: entries.count > limit ? rows.last.map { String($0.id) } : nil))
    }

    func access(_ caller: AdminCaller, _ query: AdminQuery) async throws -> WebReply {
        let (filter, _) = try self.logFilter(caller, query, log: .access)
        let limit = try query.limit(default: Self.defaultPageSize, maximum: Self.maximumPageSize)
        let store = self.store
        let events = try await self.query { try store.accessPage(filter, limit: limit + 1) }
        let rows = events.prefix(limit).map {
            AccessRow(
                id: $0.id ?? 0, at: $0.at, event: $0.event.rawValue, outcome: $0.outcome.rawValue, sourceAddress: $0.sourceAddress, subject: $0.subject,
                detail: $0.detail)
        }
        return .json(Page(rows: Array(rows), next: events.count > limit ? rows.last.map { String($0.id) } : nil))
    }

    /// A log as CSV (with a BOM, formula-looking cells escaped) or JSON Lines, newest first,
    /// read a page at a time. The export itself is audited.
    func logExport(_ caller: AdminCaller, _ query: AdminQuery, _ request: WebRequest, log: Log) async throws -> WebReply {
        let (first, timeZone) = try self.logFilter(caller, query, log: log)
        try self.admitExport(caller, request)
        let format = try UsageExportFormat(parsing: query["format"] ?? "csv")
        let (store, relay, actor, source) = (self.store, self.relay, caller.actor, request.address)
        let columns =
            log == .audit ? ["id", "at", "actor", "action", "subject", "detail"] : ["id", "at", "event", "outcome", "source_addr", "subject", "detail"]
        let filename =
            "\(log.rawValue)-\(caller.companyID)-\(Self.day(first.range.from, timeZone))-\(Self.day(first.range.to - 1, timeZone)).\(format.fileExtension)"
        return .download(contentType: format.contentType, filename: filename) { writer in
            var filter = first
            var rows = 0
            var complete = false
            defer {
                var detail = "log=\(log.rawValue) rows=\(rows) format=\(format.rawValue) \(filter.range.auditText) source=\(source)"
                if !complete { detail += " incomplete=true" }
                relay.audit(AuditEntry(at: relay.now(), actor: actor, action: .export, companyID: filter.companyID, detail: detail))
            }
            var table = LogTable(format: format, columns: columns, timeZone: timeZone)
            var output: [UInt8] = []
            table.header(into: &output)
            while true {
                let pageFilter = filter
                let page: [[LogTable.Value]] = try await relay.backgroundPool.runIfActive {
                    let filter = pageFilter
                    switch log {
                    case .audit:
                        let entries = try store.auditPage(filter, limit: UsageExport.pageSize)
                        return entries.map {
                            [.number($0.id ?? 0), .time($0.at), .text($0.actor), .text($0.action.rawValue), .optional($0.subject), .optional($0.detail)]
                        }
                    case .access:
                        let events = try store.accessPage(filter, limit: UsageExport.pageSize)
                        return events.map {
                            [
                                .number($0.id ?? 0), .time($0.at), .text($0.event.rawValue), .text($0.outcome.rawValue), .text($0.sourceAddress),
                                .optional($0.subject),
                                .optional($0.detail),
                            ]
                        }
                    }
                }
                for row in page { table.append(row, into: &output) }
                rows += page.count
                if output.count >= UsageExport.chunkSize || page.count < UsageExport.pageSize {
                    try await writer.write(ByteBuffer(bytes: output))
                    output.removeAll(keepingCapacity: true)
                }
                guard page.count == UsageExport.pageSize, case .number(let last) = page.last?.first else { break }
                filter.before = last
            }
            complete = true
        }
    }

    // MARK: API tokens

    private struct TokenRow: Encodable {
        let id: String
        let name: String
        let scope: String
        let createdAt: Date
        let createdBy: String
        @Nullable var lastUsedAt: Date?

        init(_ token: APIToken) {
            self.id = token.id
            self.name = token.name
            self.scope = token.scope.rawValue
            self.createdAt = token.createdAt
            self.createdBy = token.createdBy
            self.lastUsedAt = token.lastUsedAt
        }
    }

    func tokens(_ caller: AdminCaller) async throws -> WebReply {
        try self.require(.manageTokens, caller)
        let (store, companyID) = (self.store, caller.companyID)
        let tokens = try await self.run { try store.apiTokens(companyID: companyID) }
        return .json(["tokens": tokens.map(TokenRow.init)])
    }

    private struct TokenForm: Decodable {
        let name: String
        let scope: String
    }

    private struct MadeToken: Encodable {
        let token: TokenRow
        let secret: String
    }

    func createToken(_ caller: AdminCaller, _ request: WebRequest) async throws -> WebReply {
        try self.require(.manageTokens, caller)
        let form = try WebApplication.decode(TokenForm.self, request)
        let scope = try TokenScope(parsing: form.scope)
        let (store, companyID, actor) = (self.store, caller.companyID, caller.actor)
        let (token, secret) = try await self.run { try store.createAPIToken(companyID: companyID, name: form.name, scope: scope, actor: actor) }
        return .json(MadeToken(token: TokenRow(token), secret: secret))
    }

    private struct IDForm: Decodable { let id: String }

    func revokeToken(_ caller: AdminCaller, _ request: WebRequest) async throws -> WebReply {
        try self.require(.manageTokens, caller)
        let form = try WebApplication.decode(IDForm.self, request)
        let (store, companyID, actor) = (self.store, caller.companyID, caller.actor)
        try await self.run { try store.revokeAPIToken(id: form.id, companyID: companyID, actor: actor) }
        return .json([String: String]())
    }
}

/// The rows of a log export as CSV or JSON Lines, in the usage export's conventions: CSV
/// with a BOM and CRLF, formula-looking cells escaped; times in ISO 8601 in the chosen zone.
struct LogTable {
    enum Value {
        case number(Int64)
        case time(Date)
        case text(String)
        case optional(String?)
    }

    let format: UsageExportFormat
    let columns: [String]
    var timestamps: TimestampFormatter

    init(format: UsageExportFormat, columns: [String], timeZone: ExportTimeZone) {
        self.format = format
        self.columns = columns
        self.timestamps = TimestampFormatter(timeZone: timeZone)
    }

    func header(into output: inout [UInt8]) {
        guard self.format == .csv else { return }
        output.append(contentsOf: UsageExportEncoder.byteOrderMark)
        output.append(contentsOf: self.columns.joined(separator: ",").utf8)
        output.append(contentsOf: [0x0D, 0x0A])
    }

    mutating func append(_ row: [Value], into output: inout [UInt8]) {
        if self.format == .jsonl { output.append(UInt8(ascii: "{")) }
        for (index, value) in row.enumerated() {
            if index > 0 { output.append(UInt8(ascii: ",")) }
            if self.format == .jsonl {
                UsageExportEncoder.appendJSONString(self.columns[index], to: &output)
                output.append(UInt8(ascii: ":"))
            }
            switch value {
            case .number(let number):
                output.append(contentsOf: String(number).utf8)
            case .time(let date):
                let text = self.timestamps.format(date.milliseconds)
                self.format == .csv ? UsageExportEncoder.appendCSVCell(text, to: &output) : UsageExportEncoder.appendJSONString(text, to: &output)
            case .text(let text), .optional(.some(let text)):
                self.format == .csv ? UsageExportEncoder.appendCSVCell(text, to: &output) : UsageExportEncoder.appendJSONString(text, to: &output)
            case .optional(.none):
                if self.format == .jsonl { output.append(contentsOf: "null".utf8) }
            }
        }
        if self.format == .jsonl {
            output.append(contentsOf: "}\n".utf8)
        } else {
            output.append(contentsOf: [0x0D, 0x0A])
        }
    }
}
