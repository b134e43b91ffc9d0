import Foundation
import NIOCore
import RelayStore

/// The usage history (issue 14 item 2): a page of sessions, totals per day and engineer,
/// and exports of the filtered range as CSV, JSON Lines or XLSX.
extension AdminAPI {
    /// The filter of a usage request: its range and filters, narrowed to what the caller
    /// may see (``AdminPolicy/usageScope(caller:login:managedLogins:groupHostIDs:)``).
    func usageFilter(_ caller: AdminCaller, _ query: AdminQuery) async throws -> (UsageFilter, ExportTimeZone) {
        try self.require(.readUsage, caller)
        let timeZone = try query["tz"].map { try ExportTimeZone(parsing: $0) } ?? .utc
        guard let from = query["from"], let to = query["to"] else {
            throw WebFailure(.badRequest, "from and to are required, e.g. ?from=2026-11-01&to=2026-11-30 (dates include the whole day)")
        }
        let range = try ExportRange.parse(from: from, to: to, timeZone: timeZone, fromName: "from", toName: "to")
        var filter = UsageFilter(companyID: caller.companyID, range: range, scope: try await self.usageScope(caller))
        filter.engineerLogin = query["engineer"]
        filter.hostID = query["host"]
        if let mode = query["mode"] {
            guard let known = UsageRecord.Mode.known.first(where: { $0.rawValue == mode }) else {
                throw WebFailure(.badRequest, "mode must be attended or unattended, got \"\(mode)\"")
            }
            filter.mode = known
        }
        if let reason = query["reason"] {
            if reason == "open" {
                filter.openOnly = true
            } else {
                guard let known = UsageRecord.EndReason.known.first(where: { $0.rawValue == reason }) else {
                    let names = (UsageRecord.EndReason.known.map(\.rawValue) + ["open"]).joined(separator: ", ")
                    throw WebFailure(.badRequest, "reason must be one of \(names); got \"\(reason)\"")
                }
                filter.endReason = known
            }
        }
        return (filter, timeZone)
    }

    /// Which of the company's sessions the caller sees.
    func usageScope(_ caller: AdminCaller) async throws -> UsageScope {
        guard let engineer = caller.engineer, engineer.role == .manager else {
            return AdminPolicy.usageScope(caller: caller.policy.caller, login: caller.engineer?.login ?? "", managedLogins: [], groupHostIDs: [])
        }
        let (logins, hostIDs) = try await self.managedScope(of: engineer)
        return AdminPolicy.usageScope(caller: caller.policy.caller, login: engineer.login, managedLogins: logins, groupHostIDs: hostIDs)
    }

    /// A manager's engineers (logins) and the ids of their groups' hosts.
    func managedScope(of manager: Engineer) async throws -> (logins: [String], hostIDs: [String]) {
        let store = self.store
        return try await self.run {
            let logins = try store.engineers(companyID: manager.companyID).filter { $0.managerID == manager.id }.map(\.login)
            let groups = Set(manager.groups)
            let hostIDs = try store.hosts(companyID: manager.companyID).filter { !$0.groupName.isEmpty && groups.contains($0.groupName) }.map(\.id)
            return (logins, hostIDs)
        }
    }

    // MARK: Page

    struct UsageRow: Encodable {
        let id: String
        let engineer: String
        @Nullable var hostID: String?
        let hostName: String
        let mode: String
        let viewerClient: String
        let startedAt: Date
        @Nullable var endedAt: Date?
        @Nullable var durationSeconds: Int64?
        @Nullable var endReason: String?
        let bytesToViewer: Int64
        let bytesToHost: Int64
        let viewerAddress: String
        let hostAddress: String

        init(_ record: UsageRecord) {
            self.id = record.id
            self.engineer = record.engineerLogin
            self.hostID = record.hostID
            self.hostName = record.hostName
            self.mode = record.mode.rawValue
            self.viewerClient = record.viewerClient.rawValue
            self.startedAt = Date(milliseconds: record.startedAt)
            self.endedAt = record.endedAt.map(Date.init(milliseconds:))
            self.durationSeconds = record.durationSeconds
            self.endReason = record.endReason?.rawValue
            self.bytesToViewer = record.counters.bytesToViewer
            self.bytesToHost = record.counters.bytesToHost
            self.viewerAddress = record.viewerAddress
            self.hostAddress = record.hostAddress
        }
    }

    private struct UsagePage: Encodable {
        let rows: [UsageRow]
        @Nullable var next: String?
    }

    func usage(_ caller: AdminCaller, _ query: AdminQuery) async throws -> WebReply {
        let (filter, _) = try await self.usageFilter(caller, query)
        let limit = try query.limit(default: Self.defaultPageSize, maximum: Self.maximumPageSize)
        let cursor = try query["after"].map(Self.cursor(parsing:))
        let store = self.store
        // One more than asked: whether there is a next page.
        let records = try await self.query { try store.usagePage(filter, after: cursor, limit: limit + 1) }
        let page = Array(records.prefix(limit))
        let next = records.count > limit ? page.last.map { "\($0.startedAt):\($0.id)" } : nil
        return .json(UsagePage(rows: page.map(UsageRow.init), next: next))
    }

    /// `STARTED:ID`, as `next` gave it.
    static func cursor(parsing text: String) throws -> UsageCursor {
        let parts = text.split(separator: ":", maxSplits: 1)
        guard parts.count == 2, let started = Int64(parts[0]), parts[1].utf8.count <= 64 else {
            throw WebFailure(.badRequest, "after must be the next value of the previous page, as it was given; start again from the first page")
        }
        return UsageCursor(startedAt: started, id: String(parts[1]))
    }

    // MARK: Summary

    private struct Summary: Encodable {
        let sessions: Int
        let seconds: Int64
        let bytes: Int64
        let byDay: [[String: AnyEncodableValue]]
        let byEngineer: [[String: AnyEncodableValue]]
    }

    func usageSummary(_ caller: AdminCaller, _ query: AdminQuery) async throws -> WebReply {
        let (filter, timeZone) = try await self.usageFilter(caller, query)
        let store = self.store
        let summary = try await self.query { try store.usageSummary(filter, timeZone: timeZone) }
        func rows(_ buckets: [UsageSummary.Bucket], key: String) -> [[String: AnyEncodableValue]] {
            buckets.map { [key: .text($0.key), "sessions": .number(Int64($0.sessions)), "seconds": .number($0.seconds)] }
        }
        return .json(
            Summary(
                sessions: summary.sessions, seconds: summary.seconds, bytes: summary.bytes, byDay: rows(summary.byDay, key: "day"),
                byEngineer: rows(summary.byEngineer, key: "engineer")))
    }

    // MARK: Export

    func usageExport(_ caller: AdminCaller, _ query: AdminQuery, _ request: WebRequest) async throws -> WebReply {
        let (filter, timeZone) = try await self.usageFilter(caller, query)
        try self.admitExport(caller, request)
        let format = query["format"] ?? "csv"
        let store = self.store
        let relay = self.relay
        let (actor, source) = (caller.actor, request.address)
        let filename = "usage-\(caller.companyID)-\(Self.day(filter.range.from, timeZone))-\(Self.day(filter.range.to - 1, timeZone))"
        let readPage: @Sendable (UsageCursor?) async throws -> [UsageRecord] = { after in
            try await relay.backgroundPool.runIfActive { try store.usagePage(filter, after: after, limit: UsageExport.pageSize) }
        }
        switch format {
        case "csv", "jsonl":
            let exportFormat = try UsageExportFormat(parsing: format)
            let export = UsageExport(
                companyID: caller.companyID, range: filter.range,
                encoder: try UsageExportEncoder(format: exportFormat, timeZone: timeZone, byteOrderMark: exportFormat == .csv), now: relay.now)
            return .download(contentType: exportFormat.contentType, filename: "\(filename).\(format)") { writer in
                _ = try await export.run(
                    actor: actor, source: source, readPage: readPage, write: { try await writer.write(ByteBuffer(bytes: $0)) },
                    audit: { relay.audit($0) })
            }
        case "xlsx":
            // Known before the answer starts: a workbook cannot hold more rows than Excel's.
            let count = try await self.query { try store.usageCount(filter) }
            guard count <= XLSXWriter.maximumRows else {
                throw WebFailure(
                    .badRequest,
                    "the range holds \(count) sessions, more than an Excel sheet's \(XLSXWriter.maximumRows) rows; export CSV (which has no limit) or choose a shorter range"
                )
            }
            let columns = UsageExportEncoder.columns
            return .download(contentType: XLSXExport.contentType, filename: "\(filename).xlsx") { writer in
                let export = XLSXExport(relay: relay, sheetName: "Usage", columns: columns, timeZone: timeZone)
                var rows = 0
                var complete = false
                defer {
                    var detail = "rows=\(rows) format=xlsx \(filter.range.auditText) source=\(source)"
                    if !complete { detail += " incomplete=true" }
                    relay.audit(AuditEntry(at: relay.now(), actor: actor, action: .export, companyID: filter.companyID, detail: detail))
                }
                rows = try await export.run(writer: writer) { (sheet: inout XLSXWriter, cursor: UsageCursor?) in
                    let page = try store.usagePage(filter, after: cursor, limit: UsageExport.pageSize)
                    for record in page { try sheet.append(XLSXExport.cells(of: record)) }
                    guard page.count == UsageExport.pageSize, let last = page.last else { return nil }
                    return UsageCursor(after: last)
                }
                complete = true
            }
        default:
            throw WebFailure(.badRequest, "format must be csv, jsonl or xlsx, got \"\(format)\"")
        }
    }

    /// Exports are limited per caller and per source like the admin port's requests (a
    /// burst of 10, then 10 a minute): each reads up to the whole history.
    func admitExport(_ caller: AdminCaller, _ request: WebRequest) throws {
        let now = NIODeadline.now()
        // Per caller (and source), so that one script's exports never use up an admin's.
        let keys = ["admin-caller:\(caller.companyID):\(caller.actor)", "admin-addr:" + request.address]
        if let wait = self.relay.adminRateLimiter.withLockedValue({ $0.admit(keys, now: now) }) {
            throw WebFailure(
                .tooManyRequests, "too many exports in a short time; retry after \(RetryWait.seconds(wait)) s",
                headers: [("Retry-After", "\(RetryWait.seconds(wait))")])
        }
    }

    /// `2026-11-03`: an instant's day in `timeZone`, for file names.
    static func day(_ instant: Milliseconds, _ timeZone: ExportTimeZone) -> String {
        var formatter = TimestampFormatter(timeZone: timeZone)
        return String(formatter.format(instant).prefix(10))
    }
}

/// A JSON value of a summary row: text or a number.
enum AnyEncodableValue: Encodable, Sendable {
    case text(String)
    case number(Int64)

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .text(let text): try container.encode(text)
        case .number(let number): try container.encode(number)
        }
    }
}

extension Relay {
    /// Appends an audit entry off the event loop; a failure is logged (the export or change
    /// it records already happened).
    func audit(_ entry: AuditEntry) {
        let store = self.store
        self.backgroundPool.submit { _ in
            do { try store.appendAudit(entry) } catch { self.logger.error("cannot write the audit log", metadata: ["error": "\(error)"]) }
        }
    }
}
