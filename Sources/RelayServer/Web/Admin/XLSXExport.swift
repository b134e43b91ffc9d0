import Foundation
import NIOCore
import RelayStore

/// An export as an XLSX workbook (issue 14 item 2): the rows go into RelayStore's
/// ``XLSXWriter`` on the background pool (a sheet file written as it grows, then zipped),
/// and the finished workbook is streamed to the client in chunks and deleted.
///
/// The workbook is built in `exports/` of the relay's data folder (mode 0700, like the
/// database: it holds the same personal data), never in a shared temporary folder; what a
/// crash leaves there is deleted when the relay starts (``removeLeftovers(dataDirectory:)``).
struct XLSXExport: Sendable {
    static let contentType = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    static let chunkSize = 64 * 1024

    let relay: Relay
    let sheetName: String
    let columns: [String]
    let timeZone: ExportTimeZone

    /// Builds the workbook a page at a time with `page` (given the sheet and the cursor the
    /// previous page returned, nil for the first; it returns the next cursor, nil at the
    /// end), each page a job of its own on the background pool so that usage writes and
    /// the purge run in between; then streams the workbook to `writer` and returns its rows.
    func run<Cursor: Sendable>(
        writer: WebBodyWriter, page: @escaping @Sendable (inout XLSXWriter, Cursor?) throws -> Cursor?
    ) async throws -> Int {
        let folder = Self.folder(dataDirectory: self.relay.configuration.dataDirectory).appendingPathComponent(UUID().uuidString, isDirectory: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let (sheetName, columns, timeZone) = (self.sheetName, self.columns, self.timeZone)
        let pool = self.relay.backgroundPool
        let box = try await pool.runIfActive {
            do {
                try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            } catch {
                throw StoreError(
                    .unavailable,
                    "cannot make a folder for the export in \(folder.path): \(error.localizedDescription); check the data folder's free space and permissions")
            }
            return SheetBox(try XLSXWriter(directory: folder, sheetName: sheetName, columns: columns, utcOffsetSeconds: { timeZone.offset(at: $0) }))
        }
        var cursor: Cursor?
        repeat {
            let previous = cursor
            cursor = try await pool.runIfActive { try page(&box.sheet, previous) }
        } while cursor != nil
        let (file, rows) = try await pool.runIfActive { (try box.sheet.finish(), box.sheet.rowCount) }
        let handle = try FileHandle(forReadingFrom: file)
        defer { try? handle.close() }
        while true {
            let chunk = try await pool.runIfActive { try handle.read(upToCount: Self.chunkSize) ?? Data() }
            if chunk.isEmpty { break }
            try await writer.write(ByteBuffer(bytes: chunk))
        }
        return rows
    }

    /// The sheet between page jobs. Jobs of one export run one after another, never at
    /// once, so the sheet is never shared.
    private final class SheetBox: @unchecked Sendable {
        var sheet: XLSXWriter
        init(_ sheet: XLSXWriter) { self.sheet = sheet }
    }

    static func folder(dataDirectory: String) -> URL {
        URL(fileURLWithPath: dataDirectory, isDirectory: true).appendingPathComponent("exports", isDirectory: true)
    }

    /// Deletes workbooks a stopped relay left behind (the relay calls it at start).
    static func removeLeftovers(dataDirectory: String) {
        try? FileManager.default.removeItem(at: Self.folder(dataDirectory: dataDirectory))
    }

    /// One usage record as a row of ``UsageExportEncoder/columns``.
    static func cells(of record: UsageRecord) -> [XLSXCell] {
        func text(_ value: String?) -> XLSXCell { value.map(XLSXCell.text) ?? .empty }
        func number(_ value: Int64?) -> XLSXCell { value.map(XLSXCell.number) ?? .empty }
        let counters = record.counters
        var cells: [XLSXCell] = [.text(record.id), .text(record.companyID), .text(record.engineerLogin), text(record.hostID), .text(record.hostName)]
        cells += [.text(record.mode.rawValue), .dateTime(record.startedAt), record.endedAt.map(XLSXCell.dateTime) ?? .empty, number(record.durationSeconds)]
        cells += [.number(counters.bytesToViewer), .number(counters.bytesToHost), .number(counters.framesToViewer), .number(counters.framesToHost)]
        cells += [text(record.endReason?.rawValue), .text(record.viewerAddress), .text(record.hostAddress), .text(record.relayNode)]
        cells.append(.text(record.viewerClient.rawValue))
        return cells
    }
}
