import Foundation
import RelayStore
import RelayTestSupport
import Testing
import ZIPFoundation

#if canImport(FoundationXML)
import FoundationXML
#endif

/// The XLSX writer of the admin console's exports: the workbook is read back with
/// ZIPFoundation and Foundation's XMLParser, as a strict reader would.
@Suite struct XLSXWriterTests {
    static let parts: Set<String> = [
        "[Content_Types].xml", "_rels/.rels", "docProps/app.xml", "xl/workbook.xml", "xl/_rels/workbook.xml.rels", "xl/styles.xml",
        "xl/worksheets/sheet1.xml",
    ]

    static func withDirectory<T>(_ body: (URL) throws -> T) throws -> T {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("xlsx-writer-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(at: directory) }
        return try body(directory)
    }

    static func files(in directory: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
    }

    static func part(_ path: String, of url: URL) throws -> Data {
        let archive = try Archive(url: url, accessMode: .read)
        guard let entry = archive[path] else { throw TestFailure("the workbook has no \(path)") }
        var data = Data()
        _ = try archive.extract(entry) { data.append($0) }
        return data
    }

    static func storeError<T>(_ body: () throws -> T) -> StoreError? {
        do {
            _ = try body()
            return nil
        } catch {
            return error as? StoreError
        }
    }

    /// A workbook of `rows` under `columns`, read back as its sheet's XML.
    static func sheet(
        columns: [String], rows: [[XLSXCell]], sheetName: String = "Usage", utcOffsetSeconds: @escaping (Milliseconds) -> Int = { _ in 0 }
    ) throws -> (xml: String, sheet: SheetReader) {
        try Self.withDirectory { directory in
            var writer = try XLSXWriter(directory: directory, sheetName: sheetName, columns: columns, utcOffsetSeconds: utcOffsetSeconds)
            for row in rows { try writer.append(row) }
            let url = try writer.finish()
            let data = try Self.part("xl/worksheets/sheet1.xml", of: url)
            return (String(decoding: data, as: UTF8.self), try SheetReader.parse(data))
        }
    }

    @Test func workbookHasEveryPartDeflatedAndNothingElseIsLeft() throws {
        try Self.withDirectory { directory in
            var writer = try XLSXWriter(directory: directory, sheetName: "Usage & audit 사용", columns: ["session_id", "started_at"])
            try writer.append([.text("0123456789abcdef"), .dateTime(StoreFixture.milliseconds("2026-11-03T09:12:00Z"))])
            #expect(writer.rowCount == 1)
            #expect(try Self.files(in: directory).count == 1)  // the temporary sheet, nothing in memory but a chunk
            let url = try writer.finish()
            #expect(url.deletingLastPathComponent().standardizedFileURL.path == directory.standardizedFileURL.path)
            #expect(url.pathExtension == "xlsx")
            #expect(try Self.files(in: directory) == [url.lastPathComponent])
            let mode = try FileManager.default.attributesOfItem(atPath: url.path)[.posixPermissions] as? Int
            #expect(mode == 0o600)

            let archive = try Archive(url: url, accessMode: .read)
            #expect(Set(archive.map(\.path)) == Self.parts)
            #expect(archive.allSatisfy { $0.isCompressed })

            let types = String(decoding: try Self.part("[Content_Types].xml", of: url), as: UTF8.self)
            #expect(
                types.contains(#"PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml""#)
            )
            #expect(types.contains(#"PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml""#))
            #expect(!Set(archive.map(\.path)).contains("xl/sharedStrings.xml"))

            let styles = try XMLElements.parse(try Self.part("xl/styles.xml", of: url))
            #expect(styles.first { $0.name == "numFmt" }?.attributes == ["numFmtId": "164", "formatCode": "yyyy-mm-dd hh:mm:ss"])
            let cellFormats = styles.drop { $0.name != "cellXfs" }.dropFirst().prefix { $0.name == "xf" }
            #expect(cellFormats.count == 3)
            #expect(cellFormats.dropFirst(1).first?.attributes["numFmtId"] == "164")
            let boldFont = cellFormats.dropFirst(2).first?.attributes["fontId"]
            let fonts = styles.drop { $0.name != "fonts" }.dropFirst().prefix { $0.name != "fills" }
            let fontStarts = fonts.indices.filter { fonts[$0].name == "font" }
            #expect(boldFont == "1" && fontStarts.count == 2 && fonts[fontStarts[1] + 1].name == "b")

            let workbook = try XMLElements.parse(try Self.part("xl/workbook.xml", of: url))
            #expect(workbook.first { $0.name == "sheet" }?.attributes["name"] == "Usage & audit 사용")
            #expect(workbook.first { $0.name == "definedName" }?.attributes["name"] == "_xlnm._FilterDatabase")
            #expect(workbook.first { $0.name == "definedName" }?.text == "'Usage & audit 사용'!$A$1:$B$2")
            let relationships = try XMLElements.parse(try Self.part("xl/_rels/workbook.xml.rels", of: url))
            #expect(relationships.compactMap { $0.attributes["Target"] }.sorted() == ["styles.xml", "worksheets/sheet1.xml"])
        }
    }

    @Test func cellsReadBackWithTheirTypesAndText() throws {
        let formula = #"=HYPERLINK("http://203.0.113.9/x","click")"#
        let (xml, sheet) = try Self.sheet(
            columns: ["engineer", "host", "bytes", "ratio", "started_at", "gap", "note"],
            rows: [
                [
                    .text("김민준"), .text("회계팀 PC-03 👩‍💻"), .number(123_456_789), .decimal(0.25), .dateTime(StoreFixture.milliseconds("2026-11-03T09:12:00Z")),
                    .empty, .text(#"<&>"'"#),
                ],
                [.text(formula), .text("+cmd|' /C calc'!A0"), .number(-42), .decimal(-1.5e-7), .empty, .empty, .text("  line 1\r\nline 2\tend ")],
                [
                    .text("bell\u{07}null\u{00}"), .text("not a char \u{FFFF}\u{FFFE}"), .number(Int64.max), .decimal(.nan), .dateTime(0), .empty,
                    .text("_x0041_ and _X00e9_ and _x12_"),
                ],
            ]
        )
        // The header: bold inline strings.
        #expect(sheet.cells["A1"] == SheetReader.Cell(type: "inlineStr", style: "2", text: "engineer"))
        #expect(sheet.cells["G1"] == SheetReader.Cell(type: "inlineStr", style: "2", text: "note"))

        #expect(sheet.cells["A2"] == SheetReader.Cell(type: "inlineStr", text: "김민준"))
        #expect(sheet.cells["B2"] == SheetReader.Cell(type: "inlineStr", text: "회계팀 PC-03 👩‍💻"))
        #expect(sheet.cells["C2"] == SheetReader.Cell(text: "123456789"))
        #expect(sheet.cells["D2"] == SheetReader.Cell(text: "0.25"))
        #expect(sheet.cells["E2"]?.style == "1")
        let serial = try #require(Double(sheet.cells["E2"]?.text ?? ""))
        #expect(abs(serial - 46_329.383_333_333_33) < 1e-9)
        #expect(sheet.cells["F2"] == nil)  // empty: no cell
        #expect(sheet.cells["G2"] == SheetReader.Cell(type: "inlineStr", text: #"<&>"'"#))
        #expect(xml.contains("&lt;&amp;&gt;&quot;'"))

        // Formula-looking text stays an inline string; no cell anywhere has a formula.
        #expect(sheet.cells["A3"] == SheetReader.Cell(type: "inlineStr", text: formula))
        #expect(sheet.cells["B3"] == SheetReader.Cell(type: "inlineStr", text: "+cmd|' /C calc'!A0"))
        #expect(!sheet.elements.contains { $0.name == "f" })
        #expect(sheet.cells["C3"] == SheetReader.Cell(text: "-42"))
        #expect(sheet.cells["D3"] == SheetReader.Cell(text: "-1.5e-07"))
        // White space at either end is kept, and a carriage return survives as &#13;.
        #expect(sheet.cells["G3"] == SheetReader.Cell(type: "inlineStr", text: "  line 1\r\nline 2\tend ", preserve: true))
        #expect(sheet.cells["G2"]?.preserve == false)

        // Characters XML 1.0 forbids become U+FFFD; Excel's own escapes stay literal text.
        #expect(sheet.cells["A4"] == SheetReader.Cell(type: "inlineStr", text: "bell\u{FFFD}null\u{FFFD}"))
        #expect(sheet.cells["B4"] == SheetReader.Cell(type: "inlineStr", text: "not a char \u{FFFD}\u{FFFD}"))
        #expect(sheet.cells["C4"] == SheetReader.Cell(text: "9223372036854775807"))
        #expect(sheet.cells["D4"] == SheetReader.Cell(type: "e", text: "#NUM!"))
        #expect(sheet.cells["E4"] == SheetReader.Cell(style: "1", text: "25569.0"))
        #expect(xml.contains("_x005F_x0041_ and _x005F_X00e9_ and _x12_"))
    }

    @Test func datesAreSerialNumbersInTheWritersOffset() throws {
        let seoul = try #require(TimeZone(identifier: "Asia/Seoul"))
        let instant = StoreFixture.milliseconds("2026-11-03T09:12:00Z")
        let (_, sheet) = try Self.sheet(
            columns: ["at"], rows: [[.dateTime(instant)], [.dateTime(instant + 1_500)]],
            utcOffsetSeconds: { seoul.secondsFromGMT(for: Date(milliseconds: $0)) }
        )
        let serial = try #require(Double(sheet.cells["A2"]?.text ?? ""))
        #expect(abs(serial - (46_329.383_333_333_33 + 0.375)) < 1e-9)
        let later = try #require(Double(sheet.cells["A3"]?.text ?? ""))
        #expect(abs((later - serial) * 86_400 - 1.5) < 1e-4)

        // Before 1 March 1900 and after 9999, Excel has no date: the text instead.
        let (_, edges) = try Self.sheet(
            columns: ["at"],
            rows: [
                [.dateTime(StoreFixture.milliseconds("1899-12-31T23:00:00Z"))], [.dateTime(StoreFixture.milliseconds("1900-03-01T00:00:00Z"))],
                [.dateTime(StoreFixture.milliseconds("9999-12-31T14:59:59Z"))], [.dateTime(StoreFixture.milliseconds("9999-12-31T15:00:00Z"))],
            ],
            utcOffsetSeconds: { _ in 9 * 3_600 }
        )
        #expect(edges.cells["A2"] == SheetReader.Cell(type: "inlineStr", text: "1900-01-01 08:00:00"))
        #expect(edges.cells["A3"] == SheetReader.Cell(style: "1", text: "61.375"))
        #expect(edges.cells["A4"]?.style == "1")
        #expect(edges.cells["A5"] == SheetReader.Cell(type: "inlineStr", text: "10000-01-01 00:00:00"))
    }

    @Test func headerIsFrozenFilteredAndColumnsAreSized() throws {
        let (_, sheet) = try Self.sheet(
            columns: ["id", "host_name", "started_at"],
            rows: [[.text("a"), .text("회계팀 회계팀 회계팀 회계팀 회계팀"), .dateTime(0)], [.number(7)]]
        )
        #expect(sheet.attributes("dimension") == ["ref": "A1:C3"])
        #expect(sheet.attributes("autoFilter") == ["ref": "A1:C3"])
        let pane = try #require(sheet.attributes("pane"))
        #expect(pane["ySplit"] == "1" && pane["state"] == "frozen" && pane["topLeftCell"] == "A2")
        let widths = sheet.elements.filter { $0.name == "col" }.compactMap { $0.attributes["width"].flatMap(Double.init) }
        #expect(widths.count == 3)
        #expect(widths[0] == 8)  // the narrowest a column gets
        #expect(widths[1] >= 34)  // Hangul counts double
        #expect(widths[2] >= 19)  // yyyy-mm-dd hh:mm:ss
        #expect(
            sheet.elements.map(\.name).filter { ["dimension", "sheetViews", "cols", "sheetData", "autoFilter"].contains($0) } == [
                "dimension", "sheetViews", "cols", "sheetData", "autoFilter",
            ])
    }

    @Test func columnsBeyondZHaveTwoAndThreeLetters() throws {
        let columns = (1...16_384).map { "c\($0)" }
        let (_, sheet) = try Self.sheet(columns: columns, rows: [(1...28).map { .number(Int64($0)) }])
        for (reference, header) in [
            ("A1", "c1"), ("Z1", "c26"), ("AA1", "c27"), ("AZ1", "c52"), ("BA1", "c53"), ("ZZ1", "c702"), ("AAA1", "c703"), ("XFD1", "c16384"),
        ] {
            #expect(sheet.cells[reference]?.text == header, "\(reference)")
        }
        #expect(sheet.cells["AA2"]?.text == "27")
        #expect(sheet.cells["AB2"]?.text == "28")
        #expect(sheet.attributes("dimension") == ["ref": "A1:XFD2"])

        try Self.withDirectory { directory in
            #expect(storeErrorKind { try XLSXWriter(directory: directory, sheetName: "Usage", columns: columns + ["one more"]) } == .invalidInput)
            #expect(storeErrorKind { try XLSXWriter(directory: directory, sheetName: "Usage", columns: []) } == .invalidInput)
            let left = try Self.files(in: directory)
            #expect(left.isEmpty)
        }
    }

    @Test func rowsPastTheLimitAreRefusedWithWhatToDo() throws {
        try Self.withDirectory { directory in
            var writer = try XLSXWriter(directory: directory, sheetName: "Audit", columns: ["n"], maximumRows: 3)
            for n in 1...3 { try writer.append([.number(Int64(n))]) }
            let error = try #require(Self.storeError { try writer.append([.number(4)]) })
            #expect(error.kind == .invalidInput)
            #expect(error.message == "the export has more than 3 rows, more than one Excel sheet can hold; export CSV instead, or choose a shorter time range")
            #expect(writer.rowCount == 3)
            // The rows so far still make a workbook.
            let url = try writer.finish()
            let sheet = try SheetReader.parse(try Self.part("xl/worksheets/sheet1.xml", of: url))
            #expect(sheet.cells["A4"]?.text == "3")
            #expect(sheet.cells["A5"] == nil)
        }
        #expect(XLSXWriter.maximumRows == 1_048_575)
    }

    @Test func sheetNamesFollowExcelsRules() throws {
        try Self.withDirectory { directory in
            for name in ["", String(repeating: "x", count: 32), "a/b", "a:b", "a\\b", "what?", "a*", "[x]", "'quoted'", "History", "tab\there"] {
                let error = Self.storeError { try XLSXWriter(directory: directory, sheetName: name, columns: ["a"]) }
                #expect(error?.kind == .invalidInput, "\(name)")
                #expect(error?.message.contains("use 1 to 31 characters") == true)
            }
            #expect(try Self.files(in: directory).isEmpty)
            for name in [String(repeating: "사", count: 31), "It's usage", "Usage 2026-11"] {
                var writer = try XLSXWriter(directory: directory, sheetName: name, columns: ["a"])
                let url = try writer.finish()
                let workbook = try XMLElements.parse(try Self.part("xl/workbook.xml", of: url))
                #expect(workbook.first { $0.name == "sheet" }?.attributes["name"] == name)
                #expect(workbook.first { $0.name == "definedName" }?.text == "'\(name.replacingOccurrences(of: "'", with: "''"))'!$A$1:$A$1")
                try FileManager.default.removeItem(at: url)
            }
        }
    }

    @Test func misuseIsRefusedAndAnAbandonedWriterLeavesNoFile() throws {
        try Self.withDirectory { directory in
            var writer = try XLSXWriter(directory: directory, sheetName: "Usage", columns: ["a", "b"])
            #expect(storeErrorKind { try writer.append([.number(1), .number(2), .number(3)]) } == .invalidInput)
            try writer.append([.number(1)])
            let url = try writer.finish()
            #expect(storeErrorKind { try writer.append([.number(1)]) } == .invalidInput)
            #expect(storeErrorKind { try writer.finish() } == .invalidInput)
            try FileManager.default.removeItem(at: url)

            do {
                var abandoned = try XLSXWriter(directory: directory, sheetName: "Usage", columns: ["a"])
                try abandoned.append([.text("personal data")])
                #expect(try Self.files(in: directory).count == 1)
            }
            #expect(try Self.files(in: directory).isEmpty)
        }
    }

    @Test func aMissingFolderSaysWhichAndWhatToDo() {
        let missing = FileManager.default.temporaryDirectory.appendingPathComponent("xlsx-missing-\(UUID().uuidString)")
        let error = Self.storeError { try XLSXWriter(directory: missing, sheetName: "Usage", columns: ["a"]) }
        #expect(error?.kind == .unavailable)
        #expect(error?.message.contains(missing.path) == true)
        #expect(error?.message.contains("check that the folder exists") == true)
    }

    /// A real "no space left on device" from FileHandle (Linux's /dev/full) becomes the
    /// sentence that says where to free space.
    @Test(.enabled(if: FileManager.default.fileExists(atPath: "/dev/full")))
    func aFullDiskSaysWhereToFreeSpace() throws {
        let handle = try #require(FileHandle(forWritingAtPath: "/dev/full"))
        defer { try? handle.close() }
        var failure: (any Error)?
        do {
            try handle.write(contentsOf: [UInt8](repeating: 0x41, count: 70_000))
        } catch {
            failure = error
        }
        let directory = URL(fileURLWithPath: "/var/lib/relay/exports")
        let error = XLSXWriter.writeFailure(try #require(failure), writing: "the rows of the XLSX export", in: directory)
        #expect(error.kind == .unavailable)
        #expect(error.message.hasPrefix("the disk is full: cannot write the rows of the XLSX export in /var/lib/relay/exports; "))
        #expect(error.message.contains("free disk space in /var/lib/relay/exports"))
        let other = XLSXWriter.writeFailure(CocoaError(.fileWriteNoPermission), writing: "the XLSX workbook", in: directory)
        #expect(other.message.contains("check that the relay's user can write to /var/lib/relay/exports"))
    }

    /// 200,000 rows: only one chunk is ever in memory (the rows are in the temporary file
    /// as they are appended), and the workbook is deflated to a fraction of the sheet.
    @Test func manyRowsStreamThroughATemporaryFile() throws {
        try Self.withDirectory { directory in
            let rows = 200_000
            let start = StoreFixture.milliseconds("2026-11-01T00:00:00Z")
            var writer = try XLSXWriter(directory: directory, sheetName: "Usage", columns: ["session_id", "engineer", "started_at", "bytes", "ratio", "relay"])
            for n in 0..<rows {
                try writer.append([
                    .text(String(n, radix: 16)), .text(n % 3 == 0 ? "김민준" : "kim.minji"), .dateTime(start + Int64(n) * 60_000), .number(Int64(n) * 4_096),
                    .decimal(Double(n) / 7), .text("relay-seoul-1"),
                ])
            }
            let temporary = try Self.files(in: directory)
            #expect(temporary.count == 1 && temporary[0].hasSuffix(".sheet.xml"))
            let written = try FileManager.default.attributesOfItem(atPath: directory.appendingPathComponent(temporary[0]).path)[.size] as? Int ?? 0
            #expect(written > rows * 200)  // every row but the last chunk's is on disk already

            let url = try writer.finish()
            #expect(try Self.files(in: directory) == [url.lastPathComponent])
            let size = try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int ?? 0
            let archive = try Archive(url: url, accessMode: .read)
            let entry = try #require(archive["xl/worksheets/sheet1.xml"])
            #expect(entry.uncompressedSize > UInt64(written))
            #expect(size * 5 < written)
            #expect(size < rows * 40)

            let sheet = String(decoding: try Self.part("xl/worksheets/sheet1.xml", of: url), as: UTF8.self)
            #expect(sheet.contains(#"<dimension ref="A1:F200001"/>"#))
            #expect(sheet.contains(#"<row r="200001"><c r="A200001" t="inlineStr"><is><t>30d3f</t></is></c>"#))
            #expect(sheet.hasSuffix("</worksheet>"))
        }
    }
}

/// The elements of an XML part in document order, with their attributes and text.
enum XMLElements {
    struct Element {
        var name: String
        var attributes: [String: String]
        var text = ""
    }

    static func parse(_ data: Data) throws -> [Element] {
        let reader = SheetReader()
        let parser = XMLParser(data: data)
        parser.delegate = reader
        guard parser.parse() else { throw TestFailure("not well-formed XML: \(String(describing: parser.parserError))") }
        return reader.elements
    }
}

/// Reads a worksheet's cells by reference (`B7`), and every element, with XMLParser.
final class SheetReader: NSObject, XMLParserDelegate {
    struct Cell: Equatable {
        var type: String?
        var style: String?
        var text = ""
        /// `<t xml:space="preserve">`
        var preserve = false
    }

    private(set) var cells: [String: Cell] = [:]
    private(set) var elements: [XMLElements.Element] = []
    private var current: (reference: String, cell: Cell)?
    private var open: [Int] = []

    static func parse(_ data: Data) throws -> SheetReader {
        let reader = SheetReader()
        let parser = XMLParser(data: data)
        parser.delegate = reader
        guard parser.parse() else { throw TestFailure("not well-formed XML: \(String(describing: parser.parserError))") }
        return reader
    }

    func attributes(_ name: String) -> [String: String]? {
        self.elements.first { $0.name == name }?.attributes
    }

    func parser(
        _ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?, qualifiedName qName: String?,
        attributes attributeDict: [String: String] = [:]
    ) {
        self.open.append(self.elements.count)
        self.elements.append(XMLElements.Element(name: elementName, attributes: attributeDict))
        switch elementName {
        case "c": self.current = (attributeDict["r"] ?? "", Cell(type: attributeDict["t"], style: attributeDict["s"]))
        case "t": self.current?.cell.preserve = attributeDict["xml:space"] == "preserve"
        default: break
        }
    }

    func parser(_ parser: XMLParser, didEndElement elementName: String, namespaceURI: String?, qualifiedName qName: String?) {
        self.open.removeLast()
        if elementName == "c", let current = self.current {
            self.cells[current.reference] = current.cell
            self.current = nil
        }
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) {
        guard let index = self.open.last else { return }
        self.elements[index].text += string
        if ["t", "v"].contains(self.elements[index].name) { self.current?.cell.text += string }
    }
}
