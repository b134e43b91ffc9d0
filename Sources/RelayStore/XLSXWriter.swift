public import Foundation
internal import ZIPFoundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One cell of an ``XLSXWriter`` row.
public enum XLSXCell: Sendable, Hashable {
    /// Text, written as an inline string (`t="inlineStr"`): never a formula, so a cell
    /// reading `=HYPERLINK("http://…")` stays that text. Characters XML 1.0 cannot carry
    /// (control characters other than tab, line feed and carriage return; U+FFFE, U+FFFF)
    /// become U+FFFD. Text longer than Excel's 32,767 characters per cell is cut there.
    case text(String)
    /// A whole number. Excel keeps 15 significant digits: beyond ±2^53 it rounds.
    case number(Int64)
    /// A number with a fraction. NaN and infinities, which a sheet cannot hold, become the
    /// error value `#NUM!`.
    case decimal(Double)
    /// An instant (milliseconds since 1970 UTC), shown as `yyyy-mm-dd hh:mm:ss` in the
    /// writer's UTC offset. Excel's calendar runs from 1 March 1900 to 9999: an instant
    /// outside it is written as that text instead of a date.
    case dateTime(Milliseconds)
    /// No cell at all.
    case empty
}

/// Writes a workbook of one sheet (Office Open XML SpreadsheetML, `.xlsx`) for the admin
/// console's exports, with flat memory however many rows there are.
///
/// Rows go to a temporary sheet file in `directory` in chunks of about 64 KiB; ``finish()``
/// packs it with the workbook's other parts into a deflated ZIP (ZIPFoundation), reading
/// it back a chunk at a time, and deletes it. A writer dropped before ``finish()`` deletes
/// its temporary file too. The first row is the header: bold, frozen, with an auto filter
/// over every column; column widths follow the longest value seen.
///
/// Formula safety: every text is an inline string and no cell ever has a formula (`<f>`),
/// so text a person typed (`=HYPERLINK(…)`, `+cmd|…`, `@SUM(…)`) is shown as text and never
/// runs, unlike a CSV cell, which needs ``UsageExportEncoder/appendCSVCell(_:to:)``'s quote.
///
/// A value with one owner, used on one thread: don't copy it (copies share the temporary file).
public struct XLSXWriter {
    /// Rows a sheet can hold besides its header (Excel's limit is 1,048,576 rows).
    public static let maximumRows = 1_048_575
    /// Excel's limit of columns (A … XFD).
    static let maximumColumns = 16_384
    /// Excel's limit of characters in a cell (UTF-16 code units).
    static let maximumTextLength = 32_767
    /// Bytes collected before each write to the temporary sheet file.
    static let chunkSize = 64 * 1024

    private let directory: URL
    private let sheetName: String
    private let columnLetters: [[UInt8]]
    private let utcOffsetSeconds: (Milliseconds) -> Int
    private let rowLimit: Int
    private let sheet: TemporarySheetFile
    /// Display width (in characters) of the widest value of each column so far.
    private var widths: [Int]
    private var buffer: [UInt8] = []
    private var isClosed = false
    /// Rows appended so far, not counting the header.
    public private(set) var rowCount = 0

    /// Starts a workbook whose sheet is named `sheetName` (Excel's rules: 1 to 31
    /// characters, none of `: \ / ? * [ ]`, not beginning or ending with `'`, not
    /// "History") with one header cell per `columns` entry. `utcOffsetSeconds` gives the
    /// offset from UTC at an instant, in seconds, which ``XLSXCell/dateTime(_:)`` cells
    /// are shown in (UTC unless given). `directory` must exist; the temporary sheet file and
    /// the workbook are made there, readable by this user only.
    public init(
        directory: URL, sheetName: String, columns: [String], utcOffsetSeconds: @escaping (Milliseconds) -> Int = { _ in 0 }
    ) throws {
        try self.init(directory: directory, sheetName: sheetName, columns: columns, utcOffsetSeconds: utcOffsetSeconds, maximumRows: Self.maximumRows)
    }

    /// ``init(directory:sheetName:columns:utcOffsetSeconds:)`` with a lower row limit, so
    /// tests reach it without a million rows.
    package init(
        directory: URL, sheetName: String, columns: [String], utcOffsetSeconds: @escaping (Milliseconds) -> Int = { _ in 0 }, maximumRows: Int
    ) throws {
        try Self.validate(sheetName: sheetName)
        guard !columns.isEmpty, columns.count <= Self.maximumColumns else {
            throw StoreError(
                .invalidInput,
                "an XLSX sheet needs 1 to \(Self.maximumColumns) columns, not \(columns.count); export CSV instead for a different number of columns"
            )
        }
        self.directory = directory
        self.sheetName = sheetName
        self.columnLetters = (0..<columns.count).map { Array(Self.columnName($0).utf8) }
        self.utcOffsetSeconds = utcOffsetSeconds
        self.rowLimit = min(maximumRows, Self.maximumRows)
        self.widths = Array(repeating: 0, count: columns.count)
        self.buffer.reserveCapacity(Self.chunkSize + 4096)
        self.sheet = try TemporarySheetFile(directory: directory)
        // The header row: bold (style 2); the filter button takes about three characters.
        let header = Array("1".utf8)
        self.buffer.append(contentsOf: #"<row r="1">"#.utf8)
        for (column, name) in columns.enumerated() {
            self.appendText(name, column: column, row: header, style: Style.header)
            self.widths[column] += 3
        }
        self.buffer.append(contentsOf: "</row>".utf8)
    }

    /// Appends one row: a cell per column in order, fewer if the last ones are empty.
    ///
    /// Throws a ``StoreError`` past ``maximumRows`` (Excel cannot open more), for more cells
    /// than columns, after ``finish()``, and when the temporary file cannot be written
    /// (the writer is then closed and its temporary file deleted).
    public mutating func append(_ row: [XLSXCell]) throws {
        try self.checkOpen()
        guard self.rowCount < self.rowLimit else {
            throw StoreError(
                .invalidInput,
                "the export has more than \(Self.formatted(self.rowLimit)) rows, more than one Excel sheet can hold; "
                    + "export CSV instead, or choose a shorter time range"
            )
        }
        guard row.count <= self.columnLetters.count else {
            throw StoreError(
                .invalidInput,
                "a row of the XLSX export has \(row.count) cells but the sheet has \(self.columnLetters.count) columns; "
                    + "give each row at most one cell per column"
            )
        }
        let rowNumber = Array(String(self.rowCount + 2).utf8)
        self.buffer.append(contentsOf: #"<row r=""#.utf8)
        self.buffer.append(contentsOf: rowNumber)
        self.buffer.append(contentsOf: #"">"#.utf8)
        for (column, cell) in row.enumerated() {
            self.appendCell(cell, column: column, row: rowNumber)
        }
        self.buffer.append(contentsOf: "</row>".utf8)
        self.rowCount += 1
        if self.buffer.count >= Self.chunkSize { try self.flush() }
    }

    /// Writes the workbook and returns the .xlsx file's URL (inside `directory`); the caller streams it and deletes it.
    ///
    /// The temporary sheet file is deleted whether this succeeds or not; on failure the
    /// half-written workbook is deleted too, and a ``StoreError`` says what to do. Either
    /// way the writer is closed.
    public mutating func finish() throws -> URL {
        try self.checkOpen()
        try self.flush()
        self.isClosed = true
        defer { self.sheet.remove() }
        let sheetSize: Int64
        do {
            sheetSize = try self.sheet.close()
        } catch {
            throw Self.writeFailure(error, writing: "the rows of the XLSX export", in: self.directory)
        }
        let url = self.directory.appendingPathComponent("export-\(self.sheet.identifier).xlsx")
        errno = 0
        do {
            try self.writeWorkbook(to: url, sheetSize: sheetSize)
            try Self.checkWorkbook(at: url)
        } catch {
            // errno still tells why stdio's fwrite failed; ZIPFoundation only says "unwritable".
            let cause = errno
            try? FileManager.default.removeItem(at: url)
            throw Self.writeFailure(error, errno: cause, writing: "the XLSX workbook", in: self.directory)
        }
        return url
    }

    // MARK: - Cells

    /// Cell format indexes (`cellXfs`) of xl/styles.xml.
    private enum Style {
        static let dateTime: [UInt8] = Array("1".utf8)
        static let header: [UInt8] = Array("2".utf8)
    }

    private mutating func appendCell(_ cell: XLSXCell, column: Int, row: [UInt8]) {
        switch cell {
        case .empty:
            return
        case .text(let text):
            self.appendText(text, column: column, row: row, style: nil)
        case .number(let number):
            let digits = String(number)
            self.appendNumber(digits, column: column, row: row, style: nil)
            self.widen(column, to: digits.utf8.count)
        case .decimal(let number):
            if number.isFinite {
                let digits = number.description
                self.appendNumber(digits, column: column, row: row, style: nil)
                self.widen(column, to: digits.utf8.count)
            } else {
                self.appendReference(column: column, row: row)
                self.buffer.append(contentsOf: #" t="e"><v>#NUM!</v></c>"#.utf8)
            }
        case .dateTime(let instant):
            let offset = Int64(self.utcOffsetSeconds(instant)) * 1000
            let (local, overflow) = instant.addingReportingOverflow(offset)
            let serial = Double(local) / Double(Civil.millisecondsPerDay) + Self.serialOf1970
            if !overflow, serial >= Self.firstSerial, serial < Self.endSerial {
                self.appendNumber(serial.description, column: column, row: row, style: Style.dateTime)
                self.widen(column, to: 19)
            } else {
                self.appendText(Self.dateText(overflow ? instant : local), column: column, row: row, style: nil)
            }
        }
    }

    /// `<c r="B7"` — explicit references, which strict readers (openpyxl, LibreOffice) need.
    private mutating func appendReference(column: Int, row: [UInt8]) {
        self.buffer.append(contentsOf: #"<c r=""#.utf8)
        self.buffer.append(contentsOf: self.columnLetters[column])
        self.buffer.append(contentsOf: row)
        self.buffer.append(UInt8(ascii: "\""))
    }

    private mutating func appendStyle(_ style: [UInt8]?) {
        guard let style else { return }
        self.buffer.append(contentsOf: #" s=""#.utf8)
        self.buffer.append(contentsOf: style)
        self.buffer.append(UInt8(ascii: "\""))
    }

    private mutating func appendNumber(_ digits: String, column: Int, row: [UInt8], style: [UInt8]?) {
        self.appendReference(column: column, row: row)
        self.appendStyle(style)
        self.buffer.append(contentsOf: "><v>".utf8)
        self.buffer.append(contentsOf: digits.utf8)
        self.buffer.append(contentsOf: "</v></c>".utf8)
    }

    private mutating func appendText(_ text: String, column: Int, row: [UInt8], style: [UInt8]?) {
        self.appendReference(column: column, row: row)
        self.appendStyle(style)
        // Without xml:space="preserve", Excel trims leading and trailing white space.
        let preserve = text.utf8.first.map(Self.isSpace) == true || text.utf8.last.map(Self.isSpace) == true
        self.buffer.append(contentsOf: #" t="inlineStr"><is><t"#.utf8)
        if preserve { self.buffer.append(contentsOf: #" xml:space="preserve""#.utf8) }
        self.buffer.append(UInt8(ascii: ">"))
        let width = Self.appendEscaped(text, to: &self.buffer)
        self.buffer.append(contentsOf: "</t></is></c>".utf8)
        self.widen(column, to: width)
    }

    private static func isSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D
    }

    private mutating func widen(_ column: Int, to width: Int) {
        if width > self.widths[column] { self.widths[column] = width }
    }

    /// Appends `text` as XML character data and returns its display width in characters
    /// (East Asian wide characters count two; the longest line counts).
    ///
    /// `& < > "` become entities; a carriage return becomes `&#13;`, which an XML parser
    /// would otherwise read as a line feed; `_xHHHH_`, which Excel reads as an escaped
    /// character (ECMA-376 ST_Xstring), gets its underscore escaped as `_x005F_` so it
    /// stays literal; characters XML 1.0 forbids become U+FFFD.
    static func appendEscaped(_ text: String, to output: inout [UInt8]) -> Int {
        var text = text
        return text.withUTF8 { bytes -> Int in
            let replacement: [UInt8] = [0xEF, 0xBF, 0xBD]
            var widest = 0
            var lineWidth = 0
            var length = 0  // UTF-16 code units, as Excel counts
            var index = 0
            while index < bytes.count {
                let byte = bytes[index]
                if byte < 0x80 {
                    guard length < Self.maximumTextLength else { break }
                    length += 1
                    lineWidth += 1
                    switch byte {
                    case UInt8(ascii: "&"): output.append(contentsOf: "&amp;".utf8)
                    case UInt8(ascii: "<"): output.append(contentsOf: "&lt;".utf8)
                    case UInt8(ascii: ">"): output.append(contentsOf: "&gt;".utf8)
                    case UInt8(ascii: "\""): output.append(contentsOf: "&quot;".utf8)
                    case 0x0D: output.append(contentsOf: "&#13;".utf8)
                    case 0x0A:
                        output.append(byte)
                        widest = max(widest, lineWidth - 1)
                        lineWidth = 0
                    case 0x09: output.append(byte)
                    case 0x00..<0x20: output.append(contentsOf: replacement)
                    case UInt8(ascii: "_") where Self.isExcelEscape(bytes, at: index): output.append(contentsOf: "_x005F_".utf8)
                    default: output.append(byte)
                    }
                    index += 1
                } else {
                    // A String's UTF-8 is valid: the lead byte gives the length.
                    let count = byte >= 0xF0 ? 4 : byte >= 0xE0 ? 3 : 2
                    let units = count == 4 ? 2 : 1
                    guard length + units <= Self.maximumTextLength, index + count <= bytes.count else { break }
                    length += units
                    var scalar = UInt32(byte) & (count == 4 ? 0x07 : count == 3 ? 0x0F : 0x1F)
                    for next in bytes[(index + 1)..<(index + count)] { scalar = scalar << 6 | UInt32(next & 0x3F) }
                    if scalar == 0xFFFE || scalar == 0xFFFF {
                        output.append(contentsOf: replacement)
                    } else {
                        output.append(contentsOf: bytes[index..<(index + count)])
                    }
                    lineWidth += Self.isWide(scalar) ? 2 : 1
                    index += count
                }
            }
            return max(widest, lineWidth)
        }
    }

    /// Whether `bytes[index...]` starts `_xHHHH_` (or `_XHHHH_`).
    private static func isExcelEscape(_ bytes: UnsafeBufferPointer<UInt8>, at index: Int) -> Bool {
        guard index + 6 < bytes.count, bytes[index + 1] | 0x20 == UInt8(ascii: "x"), bytes[index + 6] == UInt8(ascii: "_") else { return false }
        return bytes[(index + 2)..<(index + 6)].allSatisfy { byte in
            (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte | 0x20)
        }
    }

    /// East Asian wide and full-width characters, and the common emoji blocks: about two
    /// Latin characters wide in a spreadsheet's default font.
    private static func isWide(_ scalar: UInt32) -> Bool {
        switch scalar {
        case 0x1100...0x115F, 0x2E80...0x303E, 0x3041...0x33FF, 0x3400...0x4DBF, 0x4E00...0x9FFF, 0xA000...0xA4CF, 0xAC00...0xD7A3,
            0xF900...0xFAFF, 0xFE30...0xFE4F, 0xFF00...0xFF60, 0xFFE0...0xFFE6, 0x1F300...0x1F64F, 0x1F900...0x1F9FF, 0x20000...0x3FFFD:
            true
        default:
            false
        }
    }

    /// Excel's serial date of 1970-01-01 (days since its 1900 epoch, counting its 29 February 1900).
    static let serialOf1970 = 25_569.0
    /// 1900-03-01: earlier serials are off by Excel's 29 February 1900.
    static let firstSerial = 61.0
    /// 10000-01-01: Excel's last date is 9999-12-31.
    static let endSerial = 2_958_466.0

    /// `yyyy-mm-dd hh:mm:ss`, for the instants Excel has no serial date for.
    private static func dateText(_ local: Milliseconds) -> String {
        let civil = Civil(local)
        let seconds = Int(civil.millisecondOfDay / 1000)
        func digits(_ value: Int, _ width: Int) -> String {
            let text = String(value)
            return text.count >= width ? text : String(repeating: "0", count: width - text.count) + text
        }
        return digits(civil.year, 4) + "-" + digits(civil.month, 2) + "-" + digits(civil.day, 2) + " " + digits(seconds / 3600, 2) + ":"
            + digits(seconds / 60 % 60, 2) + ":" + digits(seconds % 60, 2)
    }

    /// The letters of a column, from 0: A … Z, AA … ZZ, AAA … XFD.
    static func columnName(_ index: Int) -> String {
        var letters: [UInt8] = []
        var rest = index + 1
        while rest > 0 {
            rest -= 1
            letters.append(UInt8(ascii: "A") + UInt8(rest % 26))
            rest /= 26
        }
        return String(decoding: letters.reversed(), as: UTF8.self)
    }

    /// Excel's rules for sheet names (a name it refuses makes it "repair" the file).
    static func validate(sheetName name: String) throws {
        let reason: String? =
            if name.isEmpty {
                "it is empty"
            } else if name.utf16.count > 31 {
                "it is longer than 31 characters"
            } else if let character = name.first(where: { ":\\/?*[]".contains($0) }) {
                "it contains \(character)"
            } else if name.hasPrefix("'") || name.hasSuffix("'") {
                "it begins or ends with an apostrophe"
            } else if name.lowercased() == "history" {
                "Excel reserves it"
            } else if name.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0xFFFE || $0.value == 0xFFFF }) {
                "it contains a control character"
            } else {
                nil
            }
        if let reason {
            throw StoreError(
                .invalidInput,
                "the sheet name \"\(name)\" is not one Excel accepts: \(reason); use 1 to 31 characters without : \\ / ? * [ ] and no ' at either end"
            )
        }
    }

    private static func formatted(_ count: Int) -> String {
        let digits = Array(String(count))
        var text = ""
        for (index, digit) in digits.enumerated() {
            if index > 0, (digits.count - index) % 3 == 0 { text.append(",") }
            text.append(digit)
        }
        return text
    }

    // MARK: - Files

    private func checkOpen() throws {
        guard !self.isClosed else {
            throw StoreError(.invalidInput, "this XLSX export has already finished or failed; start a new XLSXWriter for another workbook")
        }
    }

    private mutating func flush() throws {
        guard !self.buffer.isEmpty else { return }
        do {
            try self.sheet.write(self.buffer)
        } catch {
            self.isClosed = true
            self.sheet.remove()
            throw Self.writeFailure(error, writing: "the rows of the XLSX export", in: self.directory)
        }
        self.buffer.removeAll(keepingCapacity: true)
    }

    /// Packs the parts into a new ZIP at `url`, deflated; the sheet comes from the
    /// temporary file between its opening and closing XML, a chunk at a time.
    private func writeWorkbook(to url: URL, sheetSize: Int64) throws {
        let archive = try Archive(url: url, accessMode: .create)
        // ZIPFoundation creates it with the umask's mode; an export holds personal data.
        guard chmod(url.path, 0o600) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EPERM) }
        let parts: [(path: String, text: String)] = [
            ("[Content_Types].xml", Self.contentTypes),
            ("_rels/.rels", Self.packageRelationships),
            ("docProps/app.xml", Self.applicationProperties),
            ("xl/workbook.xml", self.workbook()),
            ("xl/_rels/workbook.xml.rels", Self.workbookRelationships),
            ("xl/styles.xml", Self.styles),
        ]
        for part in parts {
            let data = Data(part.text.utf8)
            try archive.addEntry(
                with: part.path, type: .file, uncompressedSize: Int64(data.count), compressionMethod: .deflate,
                provider: { position, size in data.subdata(in: Int(position)..<(Int(position) + size)) }
            )
        }
        let head = Data(self.sheetHead().utf8)
        let tail = Data(self.sheetTail().utf8)
        let reader = try FileHandle(forReadingFrom: self.sheet.url)
        defer { try? reader.close() }
        let total = Int64(head.count) + sheetSize + Int64(tail.count)
        var next: Int64 = 0
        try archive.addEntry(
            with: "xl/worksheets/sheet1.xml", type: .file, uncompressedSize: total, compressionMethod: .deflate, bufferSize: Self.chunkSize,
            provider: { position, size in
                // ZIPFoundation asks for the chunks in order, and for exactly `size` bytes each
                // (its deflate loop advances by the size asked, not by the size returned).
                guard position == next else { throw SheetReadError.outOfOrder }
                var chunk = Data(capacity: size)
                var at = position
                while chunk.count < size {
                    let want = size - chunk.count
                    if at < Int64(head.count) {
                        let end = min(Int64(head.count), at + Int64(want))
                        chunk.append(head.subdata(in: Int(at)..<Int(end)))
                    } else if at < Int64(head.count) + sheetSize {
                        let end = min(Int64(head.count) + sheetSize, at + Int64(want))
                        guard let bytes = try reader.read(upToCount: Int(end - at)), !bytes.isEmpty else { throw SheetReadError.shortFile }
                        chunk.append(bytes)
                    } else {
                        let start = at - Int64(head.count) - sheetSize
                        let end = min(Int64(tail.count), start + Int64(want))
                        guard start < end else { throw SheetReadError.shortFile }
                        chunk.append(tail.subdata(in: Int(start)..<Int(end)))
                    }
                    at = position + Int64(chunk.count)
                }
                next = at
                return chunk
            }
        )
    }

    private enum SheetReadError: Error {
        case outOfOrder
        case shortFile
    }

    /// ZIPFoundation ignores the result of its last `fflush` and of `fclose`: a disk that
    /// fills up at the very end would leave a workbook without its central directory.
    /// Reading the directory back catches that.
    private static func checkWorkbook(at url: URL) throws {
        let archive = try Archive(url: url, accessMode: .read)
        guard archive["xl/worksheets/sheet1.xml"] != nil else { throw Archive.ArchiveError.missingEndOfCentralDirectoryRecord }
    }

    /// The error a person sees when a file of the export cannot be written: a full disk
    /// says so and where to free space.
    package static func writeFailure(_ error: any Error, errno cause: Int32 = 0, writing what: String, in directory: URL) -> StoreError {
        if Self.isDiskFull(error) || cause == ENOSPC || cause == EDQUOT {
            return StoreError(
                .unavailable,
                "the disk is full: cannot write \(what) in \(directory.path); free disk space in \(directory.path) and export again "
                    + "(a sheet of a million rows needs up to a gigabyte while it is written), or choose a shorter time range"
            )
        }
        return StoreError(
            .unavailable,
            "cannot write \(what) in \(directory.path): \(Self.describe(error, errno: cause)); check that the relay's user can write to \(directory.path) "
                + "and that it has free disk space, then export again"
        )
    }

    private static func isDiskFull(_ error: any Error) -> Bool {
        if let error = error as? CocoaError, error.code == .fileWriteOutOfSpace { return true }
        if let error = error as? POSIXError, error.code == .ENOSPC || error.code == .EDQUOT { return true }
        let error = error as NSError
        if error.domain == NSPOSIXErrorDomain, error.code == Int(ENOSPC) || error.code == Int(EDQUOT) { return true }
        if let underlying = error.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return underlying.code == Int(ENOSPC) || underlying.code == Int(EDQUOT)
        }
        return false
    }

    private static func describe(_ error: any Error, errno cause: Int32) -> String {
        if let error = error as? StoreError { return error.message }
        if error is CocoaError || error is POSIXError { return (error as NSError).localizedDescription }
        // ZIPFoundation's errors name no cause ("unwritableFile"); stdio's errno does.
        if cause != 0 { return "\(error) (\(String(cString: strerror(cause))))" }
        return String(describing: error)
    }
}

/// The sheet's rows while they are written: a file in the export's directory, private to
/// this user, deleted by ``remove()`` or, if its writer is dropped, when it is released.
private final class TemporarySheetFile {
    let identifier: String
    let url: URL
    private var handle: FileHandle?
    private var size: Int64 = 0
    private var removed = false

    init(directory: URL) throws {
        self.identifier = UUID().uuidString.lowercased()
        self.url = directory.appendingPathComponent("export-\(self.identifier).sheet.xml")
        let descriptor = open(self.url.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            let cause = errno
            self.removed = true  // nothing to delete, and the name may be someone else's
            if cause == ENOSPC || cause == EDQUOT {
                throw XLSXWriter.writeFailure(POSIXError(.ENOSPC), writing: "the XLSX export", in: directory)
            }
            throw StoreError(
                .unavailable,
                "cannot create a temporary file in \(directory.path) for the XLSX export: \(String(cString: strerror(cause))); "
                    + "check that the folder exists and that the relay's user can write to it"
            )
        }
        self.handle = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
    }

    deinit { self.remove() }

    func write(_ bytes: [UInt8]) throws {
        guard let handle = self.handle else { throw POSIXError(.EBADF) }
        try handle.write(contentsOf: bytes)
        self.size += Int64(bytes.count)
    }

    /// Closes the file and returns its size.
    func close() throws -> Int64 {
        if let handle = self.handle {
            self.handle = nil
            try handle.close()
        }
        return self.size
    }

    func remove() {
        guard !self.removed else { return }
        self.removed = true
        if let handle = self.handle {
            self.handle = nil
            try? handle.close()
        }
        unlink(self.url.path)
    }
}

// MARK: - The workbook's parts

extension XLSXWriter {
    static let contentTypes = """
        <?xml version="1.0" encoding="UTF-8" standalone="yes"?>
        <Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">\
        <Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>\
        <Default Extension="xml" ContentType="application/xml"/>\
        <Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>\
        <Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>\
        <Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>\
        <Override PartName="/docProps/app.xml" ContentType="application/vnd.openxmlformats-officedocument.extended-properties+xml"/>\
        </Types>
        """

    static let packageRelationships = """
        <?xml version="1.0" encoding="UTF-8" standalone="yes"?>
        <Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">\
        <Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/>\
        <Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/extended-properties" Target="docProps/app.xml"/>\
        </Relationships>
        """

    static let applicationProperties = """
        <?xml version="1.0" encoding="UTF-8" standalone="yes"?>
        <Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/extended-properties" \
        xmlns:vt="http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes"><Application>SupportRelay</Application></Properties>
        """

    static let workbookRelationships = """
        <?xml version="1.0" encoding="UTF-8" standalone="yes"?>
        <Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">\
        <Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>\
        <Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/>\
        </Relationships>
        """

    /// Cell formats: 0 default, 1 date and time (number format 164), 2 bold (the header).
    static let styles = """
        <?xml version="1.0" encoding="UTF-8" standalone="yes"?>
        <styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">\
        <numFmts count="1"><numFmt numFmtId="164" formatCode="yyyy-mm-dd hh:mm:ss"/></numFmts>\
        <fonts count="2"><font><sz val="11"/><name val="Calibri"/><family val="2"/></font>\
        <font><b/><sz val="11"/><name val="Calibri"/><family val="2"/></font></fonts>\
        <fills count="2"><fill><patternFill patternType="none"/></fill><fill><patternFill patternType="gray125"/></fill></fills>\
        <borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>\
        <cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>\
        <cellXfs count="3"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>\
        <xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>\
        <xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/></cellXfs>\
        <cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>\
        </styleSheet>
        """

    /// The range of the header and every row: `A1:R1001`.
    private var usedRange: String {
        "A1:" + Self.columnName(self.columnLetters.count - 1) + String(self.rowCount + 1)
    }

    /// The workbook, with the auto filter's hidden defined name, which Excel expects
    /// beside the sheet's `<autoFilter>`.
    private func workbook() -> String {
        var name: [UInt8] = []
        _ = Self.appendEscaped(self.sheetName, to: &name)
        // In a formula a sheet name is quoted, with its apostrophes doubled.
        var filterRange: [UInt8] = []
        let absolute = "$A$1:$" + Self.columnName(self.columnLetters.count - 1) + "$" + String(self.rowCount + 1)
        _ = Self.appendEscaped("'" + self.sheetName.replacingOccurrences(of: "'", with: "''") + "'!" + absolute, to: &filterRange)
        return """
            <?xml version="1.0" encoding="UTF-8" standalone="yes"?>
            <workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" \
            xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">\
            <bookViews><workbookView activeTab="0"/></bookViews>\
            <sheets><sheet name="\(String(decoding: name, as: UTF8.self))" sheetId="1" r:id="rId1"/></sheets>\
            <definedNames><definedName name="_xlnm._FilterDatabase" localSheetId="0" hidden="1">\
            \(String(decoding: filterRange, as: UTF8.self))</definedName></definedNames>\
            </workbook>
            """
    }

    /// The sheet up to its first row: the used range, the frozen header, the column widths.
    private func sheetHead() -> String {
        var columns = ""
        for (index, width) in self.widths.enumerated() {
            let clamped = min(max(width + 1, 8), 60)
            columns += #"<col min="\#(index + 1)" max="\#(index + 1)" width="\#(clamped)" customWidth="1"/>"#
        }
        return """
            <?xml version="1.0" encoding="UTF-8" standalone="yes"?>
            <worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" \
            xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">\
            <dimension ref="\(self.usedRange)"/>\
            <sheetViews><sheetView tabSelected="1" workbookViewId="0">\
            <pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>\
            <selection pane="bottomLeft" activeCell="A2" sqref="A2"/></sheetView></sheetViews>\
            <sheetFormatPr defaultRowHeight="15"/><cols>\(columns)</cols><sheetData>
            """
    }

    /// The sheet after its last row: the auto filter over the header and every row.
    private func sheetTail() -> String {
        """
        </sheetData><autoFilter ref="\(self.usedRange)"/>\
        <pageMargins left="0.7" right="0.7" top="0.75" bottom="0.75" header="0.3" footer="0.3"/></worksheet>
        """
    }
}
