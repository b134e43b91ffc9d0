import CSystemZlib
import NIOCore
import RelayTestSupport
import RelayTileCodec
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// The glyphs encoding (PROTOCOL.md §7.4.7) and the viewer's glyph table, tested from the
// document alone, as an independent implementer would: a reference viewer written here
// from §7.2–§7.4 checks TileDecoder on seeded random glyph updates; every rule of §7.4.7
// and its §7.7 rows gets a body that breaks it; TileEncoder is a black box whose bodies
// are inflated and walked here. Nothing in this file reads the codec's internals. Written
// against the text of commit 22b2fd0 (n = 0: raw definitions).

// MARK: - Wire bytes (§3 big-endian integers, §7.2–§7.4.7)

private func be16(_ value: Int) -> [UInt8] { [UInt8(truncatingIfNeeded: value >> 8), UInt8(truncatingIfNeeded: value)] }

private func be32(_ value: Int) -> [UInt8] { be16(value >> 16) + be16(value) }

/// A `cpixel` (§7.3): blue, green, red of a `0x00RRGGBB` colour.
private func cpixelBytes(_ rgb: UInt32) -> [UInt8] {
    [UInt8(rgb & 0xFF), UInt8((rgb >> 8) & 0xFF), UInt8((rgb >> 16) & 0xFF)]
}

/// A count (§7.4.7): zero or more `ff` bytes and a last byte below `ff`, summing to `value`.
private func countBytes(_ value: Int) -> [UInt8] {
    [UInt8](repeating: 0xFF, count: value / 255) + [UInt8(value % 255)]
}

private func partBytes(width: Int, height: Int, continues: Bool = false, rectCount: Int? = nil, _ rects: [[UInt8]]) -> [UInt8] {
    be16(width) + be16(height) + [continues ? 1 : 0] + be32(rectCount ?? rects.count) + rects.flatMap { $0 }
}

private func rectBytes(_ encoding: UInt8, x: Int, y: Int, width: Int, height: Int) -> [UInt8] {
    [encoding] + be16(x) + be16(y) + be16(width) + be16(height)
}

/// Bits per index of a packed palette (§7.4.3) or glyph definition (§7.4.7).
private func indexBits(colours: Int) -> Int { colours <= 2 ? 1 : colours <= 4 ? 2 : 4 }

/// Rows of indices packed most significant bits first, each row from a byte boundary;
/// `padding` fills the unused low bits of each row's last byte (which a viewer ignores).
private func packedRows(_ rows: [[Int]], bits: Int, padding: (Int, Int) -> Int = { _, _ in 0 }) -> [UInt8] {
    var bytes: [UInt8] = []
    for (rowNumber, row) in rows.enumerated() {
        var packed = [UInt8](repeating: 0, count: (row.count * bits + 7) / 8)
        for (column, index) in row.enumerated() {
            let offset = column * bits
            packed[offset / 8] |= UInt8(truncatingIfNeeded: index << (8 - bits - offset % 8))
        }
        let unused = packed.count * 8 - row.count * bits
        if unused > 0 { packed[packed.count - 1] |= UInt8(padding(rowNumber, unused) & ((1 << unused) - 1)) }
        bytes += packed
    }
    return bytes
}

/// A glyph definition (§7.4.7): width, height, n, the palette, packed rows. `colours`
/// overrides n (to write a wrong one); the rows are packed for the bits n calls for.
private func definitionBytes(width: Int, height: Int, palette: [UInt32], rows: [[Int]], colours: Int? = nil) -> [UInt8] {
    let n = colours ?? palette.count
    return [UInt8(width), UInt8(height), UInt8(n)] + palette.flatMap(cpixelBytes) + packedRows(rows, bits: indexBits(colours: n))
}

/// One glyph of a band that draws `slot` by number.
private func drawGlyph(advance: Int, slotField: Int) -> [UInt8] { countBytes(advance) + be16(slotField) }

/// One glyph of a band that defines `slot` (bit 15 set) and draws it.
private func defineGlyph(advance: Int, slot: Int, _ definition: [UInt8]) -> [UInt8] {
    countBytes(advance) + be16(0x8000 | slot) + definition
}

private struct Band {
    var top: Int
    var glyphs: [[UInt8]]
}

private func glyphsRect(x: Int, y: Int, width: Int, height: Int, background: UInt32, _ bands: [Band]) -> [UInt8] {
    var bytes = rectBytes(0x07, x: x, y: y, width: width, height: height) + cpixelBytes(background) + be16(bands.count)
    for band in bands { bytes += be16(band.top) + be16(band.glyphs.count) + band.glyphs.flatMap { $0 } }
    return bytes
}

/// Whether two byte arrays are equal, compared as memory: `==` on arrays of a whole
/// framebuffer goes element by element in a debug build.
private func sameBytes(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    guard !a.isEmpty else { return true }
    return a.withUnsafeBytes { a in b.withUnsafeBytes { b in memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0 } }
}

private func hex(_ rgb: UInt32) -> String { "0x" + String(rgb, radix: 16) }

// MARK: - zlib, one stream per session direction (§7.1)

/// The host's side: every body is a request id and the next zlib bytes of one stream,
/// ending in a sync flush.
private final class DocumentDeflater {
    private let stream: UnsafeMutablePointer<z_stream>

    init(level: Int32 = 6) {
        self.stream = .allocate(capacity: 1)
        self.stream.initialize(to: z_stream())
        let status = deflateInit2_(self.stream, level, Z_DEFLATED, 15, 8, Z_DEFAULT_STRATEGY, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        precondition(status == Z_OK, "deflateInit2_ returned \(status)")
    }

    deinit {
        deflateEnd(self.stream)
        self.stream.deinitialize(count: 1)
        self.stream.deallocate()
    }

    func body(requestID: UInt32 = 1, _ part: [UInt8]) -> ByteBuffer {
        var input = part
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        let stream = self.stream
        input.withUnsafeMutableBufferPointer { source in
            stream.pointee.next_in = source.baseAddress
            stream.pointee.avail_in = UInt32(source.count)
            var full = true
            while full {
                chunk.withUnsafeMutableBufferPointer { target in
                    stream.pointee.next_out = target.baseAddress
                    stream.pointee.avail_out = UInt32(target.count)
                    let status = CSystemZlib.deflate(stream, Z_SYNC_FLUSH)
                    precondition(status == Z_OK || status == Z_BUF_ERROR, "deflate returned \(status)")
                    output.append(contentsOf: UnsafeBufferPointer(rebasing: target[0..<(target.count - Int(stream.pointee.avail_out))]))
                    full = stream.pointee.avail_out == 0
                }
            }
        }
        var body = ByteBuffer()
        body.writeInteger(requestID)
        body.writeBytes(output)
        return body
    }
}

/// The viewer's side, written here so that the encoder's bodies can be walked without the
/// codec's own inflater.
private final class DocumentInflater {
    private let stream: UnsafeMutablePointer<z_stream>

    init() {
        self.stream = .allocate(capacity: 1)
        self.stream.initialize(to: z_stream())
        let status = inflateInit2_(self.stream, 15, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        precondition(status == Z_OK, "inflateInit2_ returned \(status)")
    }

    deinit {
        inflateEnd(self.stream)
        self.stream.deinitialize(count: 1)
        self.stream.deallocate()
    }

    /// The request id and the inflated part of one body, or why it is not a valid §7.1 body.
    func part(of body: ByteBuffer) -> Result<(requestID: UInt32, part: [UInt8]), ReferenceFailure> {
        var body = body
        guard let requestID = body.readInteger(as: UInt32.self) else {
            return .failure(ReferenceFailure(.truncated, "the body is shorter than a request id"))
        }
        var input = Array(body.readableBytesView)
        guard input.suffix(4) == [0, 0, 0xFF, 0xFF] else {
            return .failure(ReferenceFailure(.truncated, "the zlib bytes do not end in the sync flush"))
        }
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        var failure: Int32?
        let stream = self.stream
        input.withUnsafeMutableBufferPointer { source in
            stream.pointee.next_in = source.baseAddress
            stream.pointee.avail_in = UInt32(source.count)
            while true {
                var status: Int32 = Z_OK
                chunk.withUnsafeMutableBufferPointer { target in
                    stream.pointee.next_out = target.baseAddress
                    stream.pointee.avail_out = UInt32(target.count)
                    status = CSystemZlib.inflate(stream, Z_SYNC_FLUSH)
                    output.append(contentsOf: UnsafeBufferPointer(rebasing: target[0..<(target.count - Int(stream.pointee.avail_out))]))
                }
                let consumed = stream.pointee.avail_in == 0
                if status == Z_OK && consumed && stream.pointee.avail_out > 0 { return }
                if status == Z_BUF_ERROR && consumed { return }
                if status != Z_OK {
                    failure = status
                    return
                }
            }
        }
        if let failure { return .failure(ReferenceFailure(.corruptDeflate, "inflate returned \(failure)")) }
        return .success((requestID, output))
    }
}

// MARK: - The reference viewer (§7.2–§7.4, written from the document)

private struct ReferenceFailure: Error, CustomStringConvertible {
    let kind: ScreenCodecError.Kind
    let detail: String

    init(_ kind: ScreenCodecError.Kind, _ detail: String) {
        self.kind = kind
        self.detail = detail
    }

    var description: String { "\(self.kind): \(self.detail)" }
}

/// Reads an inflated part field by field (§3: in order, the first problem is reported).
private struct PartReader {
    let bytes: [UInt8]
    var offset = 0

    var isAtEnd: Bool { self.offset == self.bytes.count }

    mutating func u8(_ field: String) throws -> Int {
        guard self.offset < self.bytes.count else { throw ReferenceFailure(.truncated, "the part ends before \(field)") }
        self.offset += 1
        return Int(self.bytes[self.offset - 1])
    }

    mutating func u16(_ field: String) throws -> Int { try self.u8(field) << 8 | self.u8(field) }

    mutating func u32(_ field: String) throws -> Int { try self.u16(field) << 16 | self.u16(field) }

    mutating func cpixel(_ field: String) throws -> UInt32 {
        let blue = try self.u8(field)
        let green = try self.u8(field)
        let red = try self.u8(field)
        return UInt32(red << 16 | green << 8 | blue)
    }

    /// `count` cpixels in a row (raw data, §7.4.5 and raw glyphs).
    mutating func cpixels(_ count: Int, _ field: String) throws -> [UInt32] {
        guard self.bytes.count - self.offset >= count * 3 else { throw ReferenceFailure(.truncated, "the part ends in \(field)") }
        var values = [UInt32](repeating: 0, count: count)
        let start = self.offset
        self.bytes.withUnsafeBufferPointer { bytes in
            values.withUnsafeMutableBufferPointer { values in
                for index in 0..<count {
                    let at = start + index * 3
                    values[index] = UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at])
                }
            }
        }
        self.offset += count * 3
        return values
    }

    /// A count (§7.4.7): the sum of the bytes up to and including the first below `ff`.
    mutating func count(_ field: String) throws -> Int {
        var sum = 0
        while true {
            let byte = try self.u8(field)
            sum += byte
            if byte < 0xFF { return sum }
        }
    }

    /// A palette of `n` colours, n read first and checked against `allowed` (§7.4.3, §7.4.7).
    mutating func palette(allowed: ClosedRange<Int>) throws -> [UInt32] {
        let n = try self.u8("a palette size")
        guard allowed.contains(n) else { throw ReferenceFailure(.badPaletteSize, "a palette of \(n) colours, not \(allowed)") }
        return try (0..<n).map { _ in try self.cpixel("a palette colour") }
    }

    /// `height` rows of packed indices into `palette` (§7.4.3), as colours.
    mutating func packedPixels(width: Int, height: Int, palette: [UInt32]) throws -> [UInt32] {
        let bits = indexBits(colours: palette.count)
        let rowBytes = (width * bits + 7) / 8
        var pixels: [UInt32] = []
        pixels.reserveCapacity(width * height)
        for _ in 0..<height {
            let row = try (0..<rowBytes).map { _ in try self.u8("a row of packed indices") }
            for column in 0..<width {
                let offset = column * bits
                let index = (row[offset / 8] >> (8 - bits - offset % 8)) & ((1 << bits) - 1)
                guard index < palette.count else {
                    throw ReferenceFailure(.badPaletteIndex, "index \(index) in a palette of \(palette.count)")
                }
                pixels.append(palette[index])
            }
        }
        return pixels
    }
}

private struct ReferenceGlyph {
    let width: Int
    let height: Int
    /// Its pixels in the framebuffer's BGRX form, ready to copy.
    let bgrx: [UInt8]

    init(width: Int, height: Int, pixels: [UInt32]) {
        self.width = width
        self.height = height
        self.bgrx = ReferenceViewer.bgrx(pixels)
    }
}

private struct PartSummary {
    var continues: Bool
    var encodings: [UInt8]
    /// Glyph definitions with n = 0 (raw pixels) and with a palette.
    var rawDefinitions: Int
    var paletteDefinitions: Int
}

/// A viewer built from PROTOCOL.md §7.2–§7.4.7 only: a BGRX framebuffer and a glyph table
/// of 2,048 slots. A part is validated whole before anything is drawn (§7.7).
private struct ReferenceViewer {
    static let slots = 2048

    private(set) var width: Int
    private(set) var height: Int
    private(set) var pixels: [UInt8]
    private var table = [ReferenceGlyph?](repeating: nil, count: ReferenceViewer.slots)

    init(width: Int, height: Int) {
        self.width = width
        self.height = height
        self.pixels = [UInt8](repeating: 0, count: width * height * 4)
    }

    /// A ScreenInit: a new black framebuffer; the glyph table stays (§7.4.7).
    mutating func screenInit(width: Int, height: Int) {
        self = ReferenceViewer(width: width, height: height, table: self.table)
    }

    private init(width: Int, height: Int, table: [ReferenceGlyph?]) {
        self.init(width: width, height: height)
        self.table = table
    }

    func rgb(x: Int, y: Int) -> UInt32 {
        let at = (y * self.width + x) * 4
        return UInt32(self.pixels[at + 2]) << 16 | UInt32(self.pixels[at + 1]) << 8 | UInt32(self.pixels[at])
    }

    static func bgrx(_ values: [UInt32]) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: values.count * 4)
        bytes.withUnsafeMutableBufferPointer { bytes in
            for (index, value) in values.enumerated() {
                bytes[index * 4] = UInt8(truncatingIfNeeded: value)
                bytes[index * 4 + 1] = UInt8(truncatingIfNeeded: value >> 8)
                bytes[index * 4 + 2] = UInt8(truncatingIfNeeded: value >> 16)
            }
        }
        return bytes
    }

    /// Fills `width`×`height` pixels with one colour.
    private mutating func fill(_ rgb: UInt32, x: Int, y: Int, width: Int, height: Int) {
        let row = Self.bgrx([UInt32](repeating: rgb, count: width))
        for line in y..<(y + height) {
            let to = (line * self.width + x) * 4
            self.pixels.replaceSubrange(to..<(to + width * 4), with: row)
        }
    }

    /// Writes `width`×`height` BGRX pixels row by row.
    private mutating func draw(_ bgrx: [UInt8], x: Int, y: Int, width: Int, height: Int) {
        for row in 0..<height {
            let to = ((y + row) * self.width + x) * 4
            self.pixels.replaceSubrange(to..<(to + width * 4), with: bgrx[(row * width * 4)..<((row + 1) * width * 4)])
        }
    }

    private struct PlacedGlyph {
        var x: Int
        var y: Int
        var glyph: ReferenceGlyph
    }

    private enum Operation {
        case copy(x: Int, y: Int, width: Int, height: Int, sourceX: Int, sourceY: Int)
        case pixels(x: Int, y: Int, width: Int, height: Int, [UInt32])
        case glyphs(x: Int, y: Int, width: Int, height: Int, background: UInt32, [PlacedGlyph])
    }

    /// Applies one inflated part, or throws the first problem and changes nothing.
    @discardableResult
    mutating func apply(part: [UInt8]) throws -> PartSummary {
        var reader = PartReader(bytes: part)
        let partWidth = try reader.u16("the part's width")
        let partHeight = try reader.u16("the part's height")
        let flags = try reader.u8("the flags")
        let rectCount = try reader.u32("the rect count")
        guard partWidth == self.width, partHeight == self.height else {
            throw ReferenceFailure(.sizeMismatch, "a part for \(partWidth)×\(partHeight)")
        }
        var table = self.table
        var operations: [Operation] = []
        var encodings: [UInt8] = []
        var rawDefinitions = 0
        var paletteDefinitions = 0
        var listed = 0
        while listed < rectCount {
            let encoding = UInt8(try reader.u8("an encoding"))
            guard (0x01...0x07).contains(encoding) else { throw ReferenceFailure(.unknownEncoding, "encoding \(encoding)") }
            let x = try reader.u16("a rectangle's x")
            let y = try reader.u16("a rectangle's y")
            let width = try reader.u16("a rectangle's width")
            let height = try reader.u16("a rectangle's height")
            guard width >= 1, height >= 1, x + width <= self.width, y + height <= self.height else {
                throw ReferenceFailure(.rectOutOfBounds, "rectangle \(width)×\(height) at (\(x), \(y))")
            }
            encodings.append(encoding)
            let area = width * height
            switch encoding {
            case 0x01:
                let sourceX = try reader.u16("a copy's source x")
                let sourceY = try reader.u16("a copy's source y")
                guard sourceX + width <= self.width, sourceY + height <= self.height else {
                    throw ReferenceFailure(.rectOutOfBounds, "a copy from (\(sourceX), \(sourceY))")
                }
                operations.append(.copy(x: x, y: y, width: width, height: height, sourceX: sourceX, sourceY: sourceY))
            case 0x02:
                let colour = try reader.cpixel("a solid colour")
                operations.append(.pixels(x: x, y: y, width: width, height: height, [UInt32](repeating: colour, count: area)))
            case 0x03:
                let palette = try reader.palette(allowed: 2...16)
                operations.append(.pixels(x: x, y: y, width: width, height: height, try reader.packedPixels(width: width, height: height, palette: palette)))
            case 0x04:
                let palette = try reader.palette(allowed: 2...16)
                var values: [UInt32] = []
                while values.count < area {
                    let byte = try reader.u8("a palette run")
                    let index = byte & 0x7F
                    guard index < palette.count else { throw ReferenceFailure(.badPaletteIndex, "run of index \(index)") }
                    var run = 1
                    if byte & 0x80 != 0 { run += try reader.count("a run length") }
                    guard values.count + run <= area else { throw ReferenceFailure(.runOverflow, "a palette run of \(run)") }
                    values += [UInt32](repeating: palette[index], count: run)
                }
                operations.append(.pixels(x: x, y: y, width: width, height: height, values))
            case 0x05:
                let values = try reader.cpixels(area, "raw pixels")
                operations.append(.pixels(x: x, y: y, width: width, height: height, values))
            case 0x06:
                var values: [UInt32] = []
                while values.count < area {
                    let colour = try reader.cpixel("a run's colour")
                    let run = try reader.count("a run length") + 1
                    guard values.count + run <= area else { throw ReferenceFailure(.runOverflow, "a run of \(run)") }
                    values += [UInt32](repeating: colour, count: run)
                }
                operations.append(.pixels(x: x, y: y, width: width, height: height, values))
            default:
                let background = try reader.cpixel("the glyphs' background")
                let placed = try Self.glyphs(
                    &reader, table: &table, width: width, height: height, rawDefinitions: &rawDefinitions, paletteDefinitions: &paletteDefinitions
                ).map {
                    PlacedGlyph(x: x + $0.x, y: y + $0.y, glyph: $0.glyph)
                }
                operations.append(.glyphs(x: x, y: y, width: width, height: height, background: background, placed))
            }
            listed += 1
        }
        guard reader.isAtEnd else { throw ReferenceFailure(.trailingBytes, "\(part.count - reader.offset) bytes after the last rectangle") }

        // §7.3: copies first, all reading the framebuffer as it was before the part; then the
        // others in the order listed.
        let before = self.pixels
        for case .copy(let x, let y, let width, let height, let sourceX, let sourceY) in operations {
            for row in 0..<height {
                let from = ((sourceY + row) * self.width + sourceX) * 4
                let to = ((y + row) * self.width + x) * 4
                self.pixels.replaceSubrange(to..<(to + width * 4), with: before[from..<(from + width * 4)])
            }
        }
        for operation in operations {
            switch operation {
            case .copy: continue
            case .pixels(let x, let y, let width, let height, let values):
                self.draw(Self.bgrx(values), x: x, y: y, width: width, height: height)
            case .glyphs(let x, let y, let width, let height, let background, let placed):
                self.fill(background, x: x, y: y, width: width, height: height)
                for item in placed { self.draw(item.glyph.bgrx, x: item.x, y: item.y, width: item.glyph.width, height: item.glyph.height) }
            }
        }
        self.table = table
        return PartSummary(continues: flags & 0x01 != 0, encodings: encodings, rawDefinitions: rawDefinitions, paletteDefinitions: paletteDefinitions)
    }

    /// The bands of a glyphs rectangle (§7.4.7), after its background: where each glyph goes,
    /// relative to the rectangle. Definitions go into `table` as they are read.
    private static func glyphs(
        _ reader: inout PartReader,
        table: inout [ReferenceGlyph?],
        width: Int,
        height: Int,
        rawDefinitions: inout Int,
        paletteDefinitions: inout Int
    ) throws -> [(x: Int, y: Int, glyph: ReferenceGlyph)] {
        var placed: [(x: Int, y: Int, glyph: ReferenceGlyph)] = []
        let bandCount = try reader.u16("the band count")
        for _ in 0..<bandCount {
            let top = try reader.u16("a band's top")
            let glyphCount = try reader.u16("a band's glyph count")
            var left = 0
            for _ in 0..<glyphCount {
                left += try reader.count("an advance")
                let slotField = try reader.u16("a slot")
                let slot = slotField & 0x7FFF
                guard slot < Self.slots else { throw ReferenceFailure(.badGlyph, "slot \(slot)") }
                let glyph: ReferenceGlyph
                if slotField & 0x8000 != 0 {
                    let glyphWidth = try reader.u8("a definition's width")
                    let glyphHeight = try reader.u8("a definition's height")
                    guard (1...64).contains(glyphWidth), (1...64).contains(glyphHeight) else {
                        throw ReferenceFailure(.badGlyph, "a \(glyphWidth)×\(glyphHeight) glyph")
                    }
                    // n = 1…16: a palette and packed indices; n = 0: the pixels raw.
                    let palette = try reader.palette(allowed: 0...16)
                    let pixels =
                        palette.isEmpty
                        ? try reader.cpixels(glyphWidth * glyphHeight, "a raw glyph's pixels")
                        : try reader.packedPixels(width: glyphWidth, height: glyphHeight, palette: palette)
                    glyph = ReferenceGlyph(width: glyphWidth, height: glyphHeight, pixels: pixels)
                    if palette.isEmpty { rawDefinitions += 1 } else { paletteDefinitions += 1 }
                    table[slot] = glyph
                } else {
                    guard let held = table[slot] else { throw ReferenceFailure(.unknownGlyph, "slot \(slot) is empty") }
                    glyph = held
                }
                guard left + glyph.width <= width, top + glyph.height <= height else {
                    throw ReferenceFailure(.rectOutOfBounds, "a \(glyph.width)×\(glyph.height) glyph at (\(left), \(top)) of a \(width)×\(height) rectangle")
                }
                placed.append((left, top, glyph))
            }
        }
        return placed
    }
}

/// Where a framebuffer first differs from the reference viewer's, or nil when it does not.
private func firstDifference(_ framebuffer: Framebuffer?, _ model: ReferenceViewer) -> String? {
    guard let framebuffer else { return "the decoder has no framebuffer" }
    guard framebuffer.width == model.width, framebuffer.height == model.height else {
        return "the decoder's framebuffer is \(framebuffer.width)×\(framebuffer.height), the model's \(model.width)×\(model.height)"
    }
    if sameBytes(framebuffer.pixels, model.pixels) { return nil }
    for at in 0..<model.pixels.count where framebuffer.pixels[at] != model.pixels[at] {
        let pixel = at / 4
        let (x, y) = (pixel % model.width, pixel / model.width)
        return "pixel (\(x), \(y)) is \(hex(framebuffer.rgb(x: x, y: y))) (byte \(at % 4) differs), the document says \(hex(model.rgb(x: x, y: y)))"
    }
    return nil
}

// MARK: - Seeded randomness

/// The test support's SplitMix64 (the same numbers on every platform and toolchain), with
/// this file's own ways of drawing from it.
private struct DocumentRandom: RandomNumberGenerator {
    private var source: SeededRandom

    init(seed: UInt64) { self.source = SeededRandom(seed: seed) }

    mutating func next() -> UInt64 { self.source.next() }

    mutating func int(_ range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(self.next() % UInt64(range.upperBound - range.lowerBound + 1))
    }

    mutating func int(_ range: Range<Int>) -> Int { self.int(range.lowerBound...(range.upperBound - 1)) }

    mutating func oneIn(_ n: Int) -> Bool { self.int(0..<n) == 0 }

    mutating func colour() -> UInt32 { UInt32(truncatingIfNeeded: self.next()) & 0xFF_FFFF }

    /// A start and length inside `0..<total`, often touching either end.
    mutating func span(in total: Int, length: Int) -> Int {
        switch self.int(0..<4) {
        case 0: 0
        case 1: total - length
        default: self.int(0...(total - length))
        }
    }
}

// MARK: - Random valid glyph updates

/// What the random updates covered, so that a generator change cannot quietly stop
/// exercising a rule.
private struct GlyphCoverage {
    var zeroAdvances = 0
    var advancesAbove255 = 0
    var paletteSizes = Set<Int>()
    var redefinitionsInPart = 0
    var usesFromEarlierParts = 0
    var usesFromSamePart = 0
    var glyphsTouchingRightEdge = 0
    var glyphsTouchingBottomEdge = 0
    var glyphsOf64 = 0
    var emptyBands = 0
    var multiPartUpdates = 0
    var paddingGarbage = 0
}

/// A host that writes valid glyph updates by hand: random bands in random order, advances
/// of 0 and above 255, definitions raw (n = 0) and of n = 1…16 colours, redefinitions, uses of slots defined
/// in earlier parts, rectangles against the screen's edges, copies and solids between.
private struct GlyphUpdateGenerator {
    let width: Int
    let height: Int
    var random: DocumentRandom
    var coverage = GlyphCoverage()
    /// The size of the glyph each slot holds, as the viewer's table will.
    private var sizes = [(width: Int, height: Int)?](repeating: nil, count: ReferenceViewer.slots)
    private var defined: [Int] = []
    private var definedInPart: [Int] = []

    init(width: Int, height: Int, seed: UInt64) {
        self.width = width
        self.height = height
        self.random = DocumentRandom(seed: seed)
    }

    mutating func part(continues: Bool) -> [UInt8] {
        self.definedInPart = []
        let count = self.random.int(1...4)
        var rects: [[UInt8]] = []
        for _ in 0..<count {
            switch self.random.int(0..<20) {
            case 0, 1: rects.append(self.copyRect())
            case 2: rects.append(self.solidRect())
            default: rects.append(self.randomGlyphsRect())
            }
        }
        return partBytes(width: self.width, height: self.height, continues: continues, rects)
    }

    private mutating func copyRect() -> [UInt8] {
        let width = self.random.int(1...self.width)
        let height = self.random.int(1...self.height)
        return rectBytes(
            0x01, x: self.random.span(in: self.width, length: width), y: self.random.span(in: self.height, length: height), width: width, height: height)
            + be16(self.random.span(in: self.width, length: width)) + be16(self.random.span(in: self.height, length: height))
    }

    private mutating func solidRect() -> [UInt8] {
        let width = self.random.int(1...self.width)
        let height = self.random.int(1...self.height)
        return rectBytes(
            0x02, x: self.random.span(in: self.width, length: width), y: self.random.span(in: self.height, length: height), width: width, height: height)
            + cpixelBytes(self.random.colour())
    }

    private mutating func randomGlyphsRect() -> [UInt8] {
        let width: Int
        let height: Int
        switch self.random.int(0..<5) {
        case 0: (width, height) = (self.width, self.height)
        case 1: (width, height) = (self.random.int(1...24), self.random.int(1...24))
        case 2: (width, height) = (self.random.int(200...self.width), self.random.int(1...self.height))
        default: (width, height) = (self.random.int(1...self.width), self.random.int(1...self.height))
        }
        let x = self.random.span(in: self.width, length: width)
        let y = self.random.span(in: self.height, length: height)
        var bands: [Band] = []
        for _ in 0..<self.random.int(0...4) {
            // Bands in any order, overlapping or not (§7.4.7 "Bands may come in any order").
            let top = self.random.oneIn(4) ? 0 : self.random.int(0..<height)
            var band = Band(top: top, glyphs: [])
            var left = 0
            for _ in 0..<self.random.int(0...8) {
                let room = min(64, width - left)
                let roomBelow = min(64, height - top)
                guard room >= 1 else { break }
                let entry: [UInt8]
                let size: (width: Int, height: Int)
                let advance: Int
                if self.random.oneIn(2), let slot = self.definedSlot(width: room, height: roomBelow) {
                    size = self.sizes[slot]!
                    advance = self.advance(maximum: width - left - size.width, glyphWidth: size.width)
                    entry = drawGlyph(advance: advance, slotField: slot)
                    if self.definedInPart.contains(slot) { self.coverage.usesFromSamePart += 1 } else { self.coverage.usesFromEarlierParts += 1 }
                } else {
                    size = (self.glyphExtent(room), self.glyphExtent(roomBelow))
                    advance = self.advance(maximum: width - left - size.width, glyphWidth: size.width)
                    let slot = self.slotForDefinition()
                    if self.definedInPart.contains(slot) { self.coverage.redefinitionsInPart += 1 }
                    if self.sizes[slot] == nil { self.defined.append(slot) }
                    self.sizes[slot] = size
                    if !self.definedInPart.contains(slot) { self.definedInPart.append(slot) }
                    entry = defineGlyph(advance: advance, slot: slot, self.definition(width: size.width, height: size.height))
                }
                left += advance
                band.glyphs.append(entry)
                if x + left + size.width == self.width { self.coverage.glyphsTouchingRightEdge += 1 }
                if y + top + size.height == self.height { self.coverage.glyphsTouchingBottomEdge += 1 }
                if size.width == 64 || size.height == 64 { self.coverage.glyphsOf64 += 1 }
                if advance == 0 { self.coverage.zeroAdvances += 1 }
                if advance > 255 { self.coverage.advancesAbove255 += 1 }
            }
            if band.glyphs.isEmpty { self.coverage.emptyBands += 1 }
            bands.append(band)
        }
        return glyphsRect(x: x, y: y, width: width, height: height, background: self.random.colour(), bands)
    }

    /// A slot holding a glyph of at most `width`×`height`, from a few tries at random.
    private mutating func definedSlot(width: Int, height: Int) -> Int? {
        guard !self.defined.isEmpty else { return nil }
        for _ in 0..<8 {
            let slot = self.defined[self.random.int(0..<self.defined.count)]
            if let size = self.sizes[slot], size.width <= width, size.height <= height { return slot }
        }
        return nil
    }

    /// A glyph width or height up to `room` (at most 64): mostly text-sized, sometimes all of it.
    private mutating func glyphExtent(_ room: Int) -> Int {
        switch self.random.int(0..<5) {
        case 0: room
        case 1: self.random.int(1...room)
        default: self.random.int(1...min(12, room))
        }
    }

    private mutating func advance(maximum: Int, glyphWidth: Int) -> Int {
        switch self.random.int(0..<10) {
        case 0, 1: 0
        case 2: maximum
        case 3 where maximum > 255: self.random.int(256...maximum)
        default: self.random.int(0...min(maximum, glyphWidth + 3))
        }
    }

    private mutating func slotForDefinition() -> Int {
        switch self.random.int(0..<10) {
        case 0...3: self.random.int(0..<16)
        case 4: ReferenceViewer.slots - 1
        case 5...6 where !self.definedInPart.isEmpty: self.definedInPart.randomElement(using: &self.random)!
        default: self.random.int(0..<ReferenceViewer.slots)
        }
    }

    private mutating func definition(width: Int, height: Int) -> [UInt8] {
        let n = self.random.int(0...16)
        self.coverage.paletteSizes.insert(n)
        if n == 0 {
            return [UInt8(width), UInt8(height), 0] + (0..<(width * height)).flatMap { _ in cpixelBytes(self.random.colour()) }
        }
        let palette = (0..<n).map { _ in self.random.colour() }
        let rows = (0..<height).map { _ in (0..<width).map { _ in self.random.int(0..<n) } }
        // §7.4.3: the unused low bits of a row SHOULD be 0 and are ignored; some hosts may not
        // clear them.
        let garbage = self.random.oneIn(3)
        if garbage && (width * indexBits(colours: n)) % 8 != 0 { self.coverage.paddingGarbage += 1 }
        let seed = self.random.next()
        let indices = packedRows(rows, bits: indexBits(colours: n)) { row, unused in
            garbage ? Int(truncatingIfNeeded: (seed >> UInt64(row % 56)) & ((1 << UInt64(unused)) - 1)) : 0
        }
        return [UInt8(width), UInt8(height), UInt8(n)] + palette.flatMap(cpixelBytes) + indices
    }
}

// MARK: - A viewer under test beside the reference viewer

/// A TileDecoder with its body-building stream and the reference viewer, for bodies made
/// of hand-written parts.
private final class DecoderBench {
    let decoder = TileDecoder()
    let deflater = DocumentDeflater()
    var model: ReferenceViewer

    init(width: Int, height: Int) {
        self.decoder.resize(width: width, height: height)
        self.model = ReferenceViewer(width: width, height: height)
    }

    /// Applies a part that must be valid to both viewers, and compares them.
    func accept(_ part: [UInt8], requestID: UInt32 = 1, _ comment: Comment, sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            try self.model.apply(part: part)
        } catch {
            Issue.record("the reference viewer rejects a valid part: \(error) — \(comment)", sourceLocation: sourceLocation)
            return
        }
        do {
            try self.decoder.apply(self.deflater.body(requestID: requestID, part))
        } catch {
            Issue.record("TileDecoder rejects a valid part: \(error) — \(comment)", sourceLocation: sourceLocation)
            return
        }
        if let difference = firstDifference(self.decoder.framebuffer, self.model) {
            Issue.record("\(difference) — \(comment)", sourceLocation: sourceLocation)
        }
    }

    /// Applies a part that breaks a rule: TileDecoder must report `kind` and leave its
    /// framebuffer as it was, and the reference viewer must agree on the kind.
    func reject(_ kind: ScreenCodecError.Kind, _ part: [UInt8], _ comment: Comment, sourceLocation: SourceLocation = #_sourceLocation) {
        let before = self.decoder.framebuffer
        let body = self.deflater.body(part)
        let error = #expect(throws: ScreenCodecError.self, comment, sourceLocation: sourceLocation) { try self.decoder.apply(body) }
        #expect(error?.kind == kind, "TileDecoder says \(error.map { String(describing: $0) } ?? "nothing") — \(comment)", sourceLocation: sourceLocation)
        #expect(self.decoder.framebuffer == before, "a rejected part changed the framebuffer — \(comment)", sourceLocation: sourceLocation)
        var model = self.model
        do {
            try model.apply(part: part)
            Issue.record("the reference viewer accepts it — \(comment)", sourceLocation: sourceLocation)
        } catch let failure as ReferenceFailure {
            #expect(failure.kind == kind, "the reference viewer says \(failure) — \(comment)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("\(error)", sourceLocation: sourceLocation)
        }
    }
}

// MARK: - Encoder input: text in a little bitmap font, and noise

/// 64 shapes of 5×7 pixels from a seeded generator: not letters, but the same few shapes over
/// and over, as text is.
private struct BitmapFont {
    static let cellWidth = 6
    static let cellHeight = 9
    let shapes: [[Bool]]

    init(random: inout DocumentRandom) {
        var shapes: [[Bool]] = []
        while shapes.count < 64 {
            let shape = (0..<35).map { _ in random.int(0..<10) < 4 }
            if shape.filter({ $0 }).count >= 4 { shapes.append(shape) }
        }
        self.shapes = shapes
    }
}

private struct Canvas {
    let width: Int
    let height: Int
    var pixels: [UInt8]

    init(width: Int, height: Int, fill: UInt32) {
        self.width = width
        self.height = height
        self.pixels = []
        self.pixels.reserveCapacity(width * height * 4)
        for _ in 0..<(width * height) { self.pixels += cpixelBytes(fill) + [0] }
    }

    var framebuffer: Framebuffer { Framebuffer(width: self.width, height: self.height, pixels: self.pixels) }

    mutating func set(_ rgb: UInt32, x: Int, y: Int) {
        guard x >= 0, y >= 0, x < self.width, y < self.height else { return }
        let at = (y * self.width + x) * 4
        self.pixels[at] = UInt8(rgb & 0xFF)
        self.pixels[at + 1] = UInt8((rgb >> 8) & 0xFF)
        self.pixels[at + 2] = UInt8((rgb >> 16) & 0xFF)
    }

    mutating func fill(x: Int, y: Int, width: Int, height: Int, _ rgb: UInt32) {
        for row in y..<(y + height) { for column in x..<(x + width) { self.set(rgb, x: column, y: row) } }
    }

    /// One character cell: background, the shape's ink, and with `shades` a blended colour
    /// right of each ink pixel (not in the cell's last column, so that characters stay
    /// apart); `smooth` draws the ink itself in shades too, as anti-aliased text has: more
    /// than 16 colours in one character, the same for every copy of a shape.
    mutating func character(_ shape: [Bool], x: Int, y: Int, scale: Int, ink: UInt32, background: UInt32, shades: [UInt32], smooth: Bool) {
        self.fill(x: x, y: y, width: BitmapFont.cellWidth * scale, height: BitmapFont.cellHeight * scale, background)
        for row in 0..<7 {
            for column in 0..<5 where shape[row * 5 + column] {
                for dy in 0..<scale {
                    for dx in 0..<scale {
                        let colour = smooth ? shades[(row * 5 + column + 11) % shades.count] : ink
                        self.set(colour, x: x + column * scale + dx, y: y + (row + 1) * scale + dy)
                        if !shades.isEmpty, column < 4, !shape[row * 5 + column + 1] {
                            self.set(shades[(row * 5 + column) % shades.count], x: x + (column + 1) * scale + dx, y: y + (row + 1) * scale + dy)
                        }
                    }
                }
            }
        }
    }

    /// Moves rows `top+by..<height` up by `by` and fills the freed rows.
    mutating func scroll(top: Int, by: Int, fill: UInt32) {
        let rowBytes = self.width * 4
        self.pixels.replaceSubrange((top * rowBytes)..<((self.height - by) * rowBytes), with: self.pixels[((top + by) * rowBytes)...])
        self.fill(x: 0, y: self.height - by, width: self.width, height: by, fill)
    }

    mutating func noise(x: Int, y: Int, width: Int, height: Int, colours: [UInt32]?, random: inout DocumentRandom) {
        for row in y..<(y + height) {
            for column in x..<(x + width) {
                self.set(colours.map { $0[random.int(0..<$0.count)] } ?? random.colour(), x: column, y: row)
            }
        }
    }
}

/// A seeded screen of text being typed, scrolled, recoloured and overwritten, with windows
/// and patches of noise.
private struct TextScreen {
    static let inks: [UInt32] = [0x000000, 0xFFFFFF, 0x1F2937, 0x2563EB, 0xDC2626, 0x16A34A, 0x7C3AED, 0xF59E0B]
    var canvas: Canvas
    var random: DocumentRandom
    let font: BitmapFont
    var background: UInt32 = 0xFFFFFF
    var ink: UInt32 = 0x1F2937
    var cursor = (column: 0, row: 0)
    var columns: Int { self.canvas.width / BitmapFont.cellWidth }
    var rows: Int { self.canvas.height / BitmapFont.cellHeight }

    init(width: Int, height: Int, seed: UInt64) {
        self.random = DocumentRandom(seed: seed)
        self.font = BitmapFont(random: &self.random)
        self.canvas = Canvas(width: width, height: height, fill: 0xFFFFFF)
        for row in 0..<(self.rows - 2) { self.line(row: row, length: self.random.int(0...self.columns)) }
        self.cursor = (0, self.rows - 2)
    }

    private mutating func line(row: Int, length: Int) {
        for column in 0..<length { self.character(column: column, row: row, ink: self.ink, background: self.background) }
    }

    private mutating func character(column: Int, row: Int, ink: UInt32, background: UInt32, scale: Int = 1, shades: [UInt32] = [], smooth: Bool = false) {
        let shape = self.font.shapes[self.random.int(0..<self.font.shapes.count)]
        self.canvas.character(
            shape, x: column * BitmapFont.cellWidth, y: row * BitmapFont.cellHeight, scale: scale, ink: ink, background: background, shades: shades,
            smooth: smooth)
    }

    /// One step of activity; returns whether the viewer asks for a full refresh.
    mutating func step(noise: Bool) -> Bool {
        switch self.random.int(0..<14) {
        case 0, 1, 2:
            for _ in 0..<self.random.int(1...8) {
                self.character(column: self.cursor.column, row: self.cursor.row, ink: self.ink, background: self.background)
                self.cursor.column += 1
                if self.cursor.column == self.columns { self.newLine() }
            }
        case 3: self.newLine()
        case 4:
            // A word in another colour somewhere on the page.
            let ink = Self.inks[self.random.int(0..<Self.inks.count)]
            let row = self.random.int(0..<self.rows)
            let start = self.random.int(0..<self.columns)
            for column in start..<min(self.columns, start + self.random.int(1...10)) {
                self.character(column: column, row: row, ink: ink, background: self.background)
            }
        case 5:
            // A window of text on another background, sometimes large, sometimes shaded.
            var background = Self.inks[self.random.int(0..<Self.inks.count)]
            let ink = Self.inks[self.random.int(0..<Self.inks.count)]
            let scale = self.random.oneIn(3) ? 2 : 1
            let smooth = self.random.oneIn(3)
            let shades: [UInt32] = smooth ? (0..<24).map { UInt32(0x30 + $0 * 8) * 0x01_0101 } : self.random.oneIn(3) ? [0x9CA3AF] : []
            if smooth { background = 0xFFFFFF }
            let top = self.random.int(0..<(self.rows - 2 * scale))
            let left = self.random.int(0..<(self.columns - 4 * scale))
            for row in stride(from: top, to: min(self.rows - scale + 1, top + 6 * scale), by: scale) {
                for column in stride(from: left, to: min(self.columns - scale + 1, left + 24 * scale), by: scale) {
                    self.character(column: column, row: row, ink: ink, background: background, scale: scale, shades: shades, smooth: smooth)
                }
            }
        case 6:
            // Deleting: background over a few cells.
            let row = self.random.int(0..<self.rows)
            let start = self.random.int(0..<self.columns)
            let count = min(self.columns - start, self.random.int(1...12))
            self.canvas.fill(
                x: start * BitmapFont.cellWidth, y: row * BitmapFont.cellHeight, width: count * BitmapFont.cellWidth, height: BitmapFont.cellHeight,
                self.background)
        case 7 where noise:
            let width = self.random.int(1...min(160, self.canvas.width))
            let height = self.random.int(1...min(120, self.canvas.height))
            let colours: [UInt32]? = self.random.oneIn(2) ? nil : (0..<self.random.int(2...6)).map { _ in self.random.colour() }
            self.canvas.noise(
                x: self.random.span(in: self.canvas.width, length: width), y: self.random.span(in: self.canvas.height, length: height), width: width,
                height: height, colours: colours, random: &self.random)
        case 8 where noise && self.random.oneIn(4):
            self.canvas.noise(x: 0, y: 0, width: self.canvas.width, height: self.canvas.height, colours: nil, random: &self.random)
        case 9: return true
        case 10: break
        case 11:
            // A single changed pixel, at an edge now and then.
            let x = self.random.oneIn(2) ? self.canvas.width - 1 : self.random.int(0..<self.canvas.width)
            let y = self.random.oneIn(2) ? self.canvas.height - 1 : self.random.int(0..<self.canvas.height)
            self.canvas.set(self.random.colour(), x: x, y: y)
        default:
            // Another page: everything redrawn in new colours.
            self.background = Self.inks[self.random.int(0..<Self.inks.count)]
            repeat { self.ink = Self.inks[self.random.int(0..<Self.inks.count)] } while self.ink == self.background
            self.canvas.fill(x: 0, y: 0, width: self.canvas.width, height: self.canvas.height, self.background)
            for row in 0..<self.rows { self.line(row: row, length: self.random.int(0...self.columns)) }
        }
        return false
    }

    mutating func noiseEverywhere() {
        self.canvas.noise(x: 0, y: 0, width: self.canvas.width, height: self.canvas.height, colours: nil, random: &self.random)
    }

    private mutating func newLine() {
        self.cursor.column = 0
        if self.cursor.row + 1 < self.rows {
            self.cursor.row += 1
        } else {
            self.canvas.scroll(top: 0, by: BitmapFont.cellHeight, fill: self.background)
        }
    }
}

/// What an encoder run sent, as walked by the reference viewer.
private struct EncoderRun {
    var updates = 0
    var bodies = 0
    var multiPartUpdates = 0
    var rectangles: [UInt8: Int] = [:]
    var glyphsDefined = 0
    var glyphsDrawn = 0
    var rawDefinitions = 0
    var paletteDefinitions = 0
}

/// Encodes `steps` frames of a text screen with `TileEncoder(glyphs:)` and checks every
/// body: the reference viewer inflates and walks it (§7.1–§7.4), TileDecoder applies it,
/// and both must then hold the frame exactly.
private func runEncoder(
    glyphs: Bool,
    width: Int,
    height: Int,
    steps: Int,
    seed: UInt64,
    noise: Bool,
    maximumBodyLength: Int?,
    sourceLocation: SourceLocation = #_sourceLocation
) throws -> EncoderRun {
    var screen = TextScreen(width: width, height: height, seed: seed)
    let encoder = TileEncoder(glyphs: glyphs)
    let decoder = TileDecoder()
    decoder.resize(width: width, height: height)
    var model = ReferenceViewer(width: width, height: height)
    let inflater = DocumentInflater()
    var run = EncoderRun()
    for step in 0..<steps {
        // In parts, a screen of noise now and then: 3 bytes a pixel, many bodies.
        if maximumBodyLength != nil && step % 20 == 1 { screen.noiseEverywhere() }
        let fullRefresh = step == 0 || screen.step(noise: noise)
        let frame = screen.canvas.framebuffer
        let requestID = UInt32(step + 1)
        let bodies: [ByteBuffer]
        if let maximumBodyLength {
            bodies = try encoder.encodeParts(frame, requestID: requestID, fullRefresh: fullRefresh, maximumBodyLength: maximumBodyLength)
        } else {
            bodies = try encoder.encode(frame, requestID: requestID, fullRefresh: fullRefresh).map { [$0] } ?? []
        }
        let context = "seed \(seed), step \(step)"
        if bodies.isEmpty {
            #expect(!fullRefresh, "a full refresh sent nothing (\(context))", sourceLocation: sourceLocation)
            #expect(
                sameBytes(decoder.framebuffer?.pixels ?? [], frame.pixels), "nothing was sent but the frame changed (\(context))",
                sourceLocation: sourceLocation)
            continue
        }
        run.updates += 1
        run.bodies += bodies.count
        if bodies.count > 1 { run.multiPartUpdates += 1 }
        var glyphRects = 0
        for (index, body) in bodies.enumerated() {
            if let maximumBodyLength {
                #expect(body.readableBytes <= maximumBodyLength, "a body of \(body.readableBytes) bytes (\(context))", sourceLocation: sourceLocation)
            }
            let inflated: (requestID: UInt32, part: [UInt8])
            switch inflater.part(of: body) {
            case .success(let value): inflated = value
            case .failure(let failure):
                Issue.record("body \(index) is not a §7.1 body: \(failure) (\(context))", sourceLocation: sourceLocation)
                return run
            }
            #expect(inflated.requestID == requestID, "body \(index) answers request \(inflated.requestID) (\(context))", sourceLocation: sourceLocation)
            let summary: PartSummary
            do {
                summary = try model.apply(part: inflated.part)
            } catch {
                Issue.record("the reference viewer rejects body \(index): \(error) (\(context))", sourceLocation: sourceLocation)
                return run
            }
            #expect(
                summary.continues == (index < bodies.count - 1), "body \(index) of \(bodies.count): continues flag (\(context))", sourceLocation: sourceLocation
            )
            for encoding in summary.encodings { run.rectangles[encoding, default: 0] += 1 }
            run.rawDefinitions += summary.rawDefinitions
            run.paletteDefinitions += summary.paletteDefinitions
            glyphRects += summary.encodings.count { $0 == 0x07 }
            if !glyphs {
                #expect(!summary.encodings.contains(0x07), "TileEncoder(glyphs: false) sent a glyphs rectangle (\(context))", sourceLocation: sourceLocation)
            }
            do {
                try decoder.apply(body)
            } catch {
                Issue.record("TileDecoder rejects body \(index): \(error) (\(context))", sourceLocation: sourceLocation)
                return run
            }
            #expect(decoder.expectsContinuation == summary.continues, sourceLocation: sourceLocation)
            if let difference = firstDifference(decoder.framebuffer, model) {
                Issue.record("after body \(index): \(difference) (\(context))", sourceLocation: sourceLocation)
                return run
            }
        }
        if !sameBytes(model.pixels, frame.pixels) {
            Issue.record("the bodies do not rebuild the frame (\(context))", sourceLocation: sourceLocation)
            return run
        }
        #expect(sameBytes(decoder.framebuffer?.pixels ?? [], frame.pixels), "TileDecoder does not hold the frame (\(context))", sourceLocation: sourceLocation)
        let statistics = encoder.lastUpdateStatistics
        #expect(
            statistics.glyphRects == glyphRects, "statistics count \(statistics.glyphRects) glyph rectangles, the bodies \(glyphRects) (\(context))",
            sourceLocation: sourceLocation)
        run.glyphsDefined += statistics.glyphsDefined
        run.glyphsDrawn += statistics.glyphsDrawn
    }
    return run
}

// MARK: - Tests

@Suite("Glyphs encoding, from PROTOCOL.md §7.4.7 alone")
struct GlyphDocumentTests {
    static let width = 80
    static let height = 72

    /// A viewer holding distinct pixels everywhere (so any change shows), with slot 5 holding
    /// a 3×2 glyph of two colours and slot 2047 a 1×1 glyph.
    private static func bench() -> DecoderBench {
        let bench = DecoderBench(width: Self.width, height: Self.height)
        var raw = rectBytes(0x05, x: 0, y: 0, width: Self.width, height: Self.height)
        for pixel in 0..<(Self.width * Self.height) { raw += cpixelBytes(UInt32(pixel) &* 0x0A_0703 & 0xFF_FFFF) }
        let definitions = glyphsRect(
            x: 70, y: 66, width: 10, height: 6, background: 0x445566,
            [
                Band(
                    top: 1,
                    glyphs: [
                        defineGlyph(advance: 1, slot: 5, definitionBytes(width: 3, height: 2, palette: [0xFF0000, 0x00FF00], rows: [[0, 1, 0], [1, 0, 1]])),
                        defineGlyph(advance: 4, slot: 2047, definitionBytes(width: 1, height: 1, palette: [0x0000FF], rows: [[0]])),
                    ])
            ])
        bench.accept(partBytes(width: Self.width, height: Self.height, [raw, definitions]), "the bench's first update")
        return bench
    }

    /// A valid glyphs rectangle that changes pixels, listed before the broken one so that a
    /// half-applied part would show.
    private static let lead = glyphsRect(x: 2, y: 3, width: 12, height: 4, background: 0x123456, [Band(top: 1, glyphs: [drawGlyph(advance: 2, slotField: 5)])])

    private static func part(_ rects: [UInt8]...) -> [UInt8] { partBytes(width: Self.width, height: Self.height, rects) }

    private static let twoColourGlyph = definitionBytes(width: 2, height: 2, palette: [0x000000, 0xFFFFFF], rows: [[1, 0], [0, 1]])

    @Test("the document's glyphs vector (§7.8) as its description says, through the reference viewer and TileDecoder")
    func documentVector() {
        let bench = DecoderBench(width: 12, height: 4)
        let first: [UInt8] = [
            0x00, 0x0c, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x01, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0c,
            0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x02, 0x01, 0x80, 0x00, 0x02, 0x02,
            0x02, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0x80, 0x40, 0x04, 0x80, 0x01, 0x03, 0x02, 0x01, 0x00,
            0x00, 0xff, 0x00, 0x00,
        ]
        bench.accept(first, "update 1 of the glyphs vector")
        #expect(bench.model.rgb(x: 1, y: 1) == 0xFFFFFF && bench.model.rgb(x: 2, y: 2) == 0xFFFFFF)
        #expect(bench.model.rgb(x: 2, y: 1) == 0 && bench.model.rgb(x: 1, y: 2) == 0)
        #expect((5..<8).allSatisfy { x in (1..<3).allSatisfy { bench.model.rgb(x: x, y: $0) == 0xFF0000 } })
        #expect(bench.model.rgb(x: 8, y: 1) == 0 && bench.model.rgb(x: 4, y: 1) == 0)
        let second: [UInt8] = [
            0x00, 0x0c, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x01, 0x07, 0x00, 0x08, 0x00, 0x00, 0x00, 0x04,
            0x00, 0x04, 0x99, 0x66, 0x33, 0x00, 0x01, 0x00, 0x02, 0x00, 0x01, 0x01, 0x00, 0x00,
        ]
        bench.accept(second, requestID: 2, "update 2 of the glyphs vector")
        #expect(bench.model.rgb(x: 9, y: 2) == 0xFFFFFF && bench.model.rgb(x: 10, y: 3) == 0xFFFFFF)
        #expect(bench.model.rgb(x: 10, y: 2) == 0 && bench.model.rgb(x: 9, y: 3) == 0)
        #expect(bench.model.rgb(x: 8, y: 0) == 0x336699 && bench.model.rgb(x: 11, y: 3) == 0x336699)
        #expect(bench.model.rgb(x: 7, y: 1) == 0xFF0000, "left of the rectangle: unchanged")
    }

    @Test("the document's glyph-raw vector (§7.8): a definition with n = 0")
    func documentRawVector() {
        let bench = DecoderBench(width: 3, height: 2)
        bench.accept(
            [
                0x00, 0x03, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03,
                0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x01, 0x80, 0x07, 0x02, 0x02,
                0x00, 0xff, 0x00, 0x00, 0x00, 0xff, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff,
            ], "the glyph-raw vector")
        #expect(bench.model.rgb(x: 0, y: 0) == 0 && bench.model.rgb(x: 0, y: 1) == 0)
        #expect(bench.model.rgb(x: 1, y: 0) == 0x0000FF && bench.model.rgb(x: 2, y: 0) == 0x00FF00)
        #expect(bench.model.rgb(x: 1, y: 1) == 0xFF0000 && bench.model.rgb(x: 2, y: 1) == 0xFFFFFF)
    }

    @Test("seeded random valid glyph updates: TileDecoder equals the reference viewer after every body")
    func randomValidUpdates() {
        let seed: UInt64 = 0x0767_1F45
        let (width, height) = (300, 130)
        var generator = GlyphUpdateGenerator(width: width, height: height, seed: seed)
        let decoder = TileDecoder()
        decoder.resize(width: width, height: height)
        let deflater = DocumentDeflater(level: 1)
        var model = ReferenceViewer(width: width, height: height)
        var bodies = 0
        updates: for update in 0..<300 {
            let parts = generator.random.oneIn(4) ? generator.random.int(2...3) : 1
            if parts > 1 { generator.coverage.multiPartUpdates += 1 }
            for index in 0..<parts {
                let continues = index < parts - 1
                let part = generator.part(continues: continues)
                let context = "seed \(hex(UInt32(seed))), update \(update), part \(index + 1) of \(parts)"
                do {
                    try model.apply(part: part)
                } catch {
                    Issue.record("the generator wrote an invalid part: \(error) (\(context))")
                    break updates
                }
                do {
                    let body = deflater.body(requestID: UInt32(update + 1), part)
                    try decoder.apply(body)
                } catch {
                    Issue.record("TileDecoder rejects a valid part: \(error) (\(context))")
                    break updates
                }
                bodies += 1
                #expect(decoder.expectsContinuation == continues, "\(context)")
                if let difference = firstDifference(decoder.framebuffer, model) {
                    Issue.record("\(difference) (\(context))")
                    break updates
                }
            }
        }
        let coverage = generator.coverage
        #expect(bodies > 300)
        #expect(coverage.zeroAdvances > 0 && coverage.advancesAbove255 > 0)
        #expect(coverage.paletteSizes == Set(0...16))
        #expect(coverage.redefinitionsInPart > 0 && coverage.usesFromEarlierParts > 0 && coverage.usesFromSamePart > 0)
        #expect(coverage.glyphsTouchingRightEdge > 0 && coverage.glyphsTouchingBottomEdge > 0 && coverage.glyphsOf64 > 0)
        #expect(coverage.emptyBands > 0 && coverage.multiPartUpdates > 0 && coverage.paddingGarbage > 0)
    }

    @Test("positive edges: slot 2047, 64×64 and 1×1 glyphs, n = 1, ignored padding bits, a glyph flush with the right and bottom edges")
    func validEdges() {
        let bench = Self.bench()
        bench.accept(Self.part(Self.lead), "drawing slot 5 from the first update")
        bench.accept(
            Self.part(glyphsRect(x: 0, y: 0, width: 4, height: 4, background: 0, [Band(top: 3, glyphs: [drawGlyph(advance: 3, slotField: 2047)])])),
            "slot 2047 by number, at the rectangle's last pixel")
        bench.accept(
            Self.part(
                glyphsRect(
                    x: 16, y: 8, width: 64, height: 64, background: 0x010101,
                    [
                        Band(
                            top: 0,
                            glyphs: [
                                defineGlyph(
                                    advance: 0, slot: 2047,
                                    definitionBytes(
                                        width: 64, height: 64, palette: (0..<16).map { UInt32($0) * 0x111111 },
                                        rows: (0..<64).map { row in (0..<64).map { ($0 + row) % 16 } }))
                            ])
                    ])),
            "a 64×64 glyph of 16 colours redefining slot 2047, flush with the screen's right and bottom edges")
        bench.accept(
            Self.part(
                glyphsRect(
                    x: 30, y: 0, width: 10, height: 10, background: 0xABCDEF,
                    [
                        Band(
                            top: 9,
                            glyphs: [defineGlyph(advance: 7, slot: 100, definitionBytes(width: 3, height: 1, palette: [0x00FF00], rows: [[0, 0, 0]]))])
                    ])),
            "n = 1: a palette of one colour, 1 bit per index (§7.4.7 allows 0…16)")
        // n = 3, 3 pixels of 2 bits: the last 2 bits of each row are padding, here 11.
        var definition = definitionBytes(width: 3, height: 2, palette: [0x111111, 0x222222, 0x333333], rows: [[0, 1, 2], [2, 1, 0]])
        definition[definition.count - 1] |= 0b11
        definition[definition.count - 2] |= 0b11
        bench.accept(
            Self.part(glyphsRect(x: 0, y: 60, width: 8, height: 8, background: 0, [Band(top: 2, glyphs: [defineGlyph(advance: 5, slot: 6, definition)])])),
            "padding bits set at the end of each row are ignored (§7.4.3)")
        bench.accept(
            Self.part(glyphsRect(x: 0, y: 0, width: 80, height: 72, background: 0x808080, [])),
            "no bands: the rectangle is its background")
    }

    @Test("drawing order: an advance of 0 and later glyphs overwrite earlier ones; a slot redefined in one part; bands out of order")
    func drawingOrder() {
        let bench = Self.bench()
        let red = definitionBytes(width: 3, height: 3, palette: [0xFF0000], rows: Array(repeating: [0, 0, 0], count: 3))
        let blue = definitionBytes(width: 2, height: 2, palette: [0x0000FF], rows: Array(repeating: [0, 0], count: 2))
        bench.accept(
            Self.part(
                glyphsRect(
                    x: 0, y: 0, width: 20, height: 10, background: 0x00FF00,
                    [
                        Band(
                            top: 4,
                            glyphs: [defineGlyph(advance: 0, slot: 9, red), defineGlyph(advance: 0, slot: 9, blue), drawGlyph(advance: 4, slotField: 9)]),
                        Band(top: 0, glyphs: [drawGlyph(advance: 1, slotField: 9)]),
                        Band(top: 1, glyphs: [drawGlyph(advance: 1, slotField: 5)]),
                    ])), "overlaps")
        // Band 1: red 3×3 at (0,4), blue 2×2 over its top-left, blue again at (4,4).
        #expect(bench.model.rgb(x: 0, y: 4) == 0x0000FF && bench.model.rgb(x: 2, y: 4) == 0xFF0000 && bench.model.rgb(x: 2, y: 6) == 0xFF0000)
        #expect(bench.model.rgb(x: 4, y: 4) == 0x0000FF && bench.model.rgb(x: 3, y: 4) == 0x00FF00)
        // Band 3 (top 1) overwrote band 2's (top 0) blue glyph where they overlap.
        #expect(bench.model.rgb(x: 1, y: 0) == 0x0000FF && bench.model.rgb(x: 1, y: 1) == 0xFF0000)
    }

    @Test("the table persists across parts of an update, updates and a ScreenInit")
    func tablePersists() {
        let bench = Self.bench()
        let first = partBytes(
            width: Self.width, height: Self.height, continues: true,
            [glyphsRect(x: 0, y: 0, width: 8, height: 8, background: 0, [Band(top: 0, glyphs: [defineGlyph(advance: 0, slot: 1000, Self.twoColourGlyph)])])])
        bench.accept(first, requestID: 4, "part 1 defines slot 1000")
        #expect(bench.decoder.expectsContinuation)
        bench.accept(
            Self.part(glyphsRect(x: 8, y: 8, width: 8, height: 8, background: 0, [Band(top: 6, glyphs: [drawGlyph(advance: 6, slotField: 1000)])])),
            requestID: 4, "part 2 draws it")
        bench.decoder.resize(width: 20, height: 10)
        bench.model.screenInit(width: 20, height: 10)
        #expect(firstDifference(bench.decoder.framebuffer, bench.model) == nil, "a ScreenInit gives a black framebuffer (§7.8)")
        bench.accept(
            partBytes(
                width: 20, height: 10,
                [
                    glyphsRect(
                        x: 18, y: 8, width: 2, height: 2, background: 0x777777,
                        [Band(top: 0, glyphs: [drawGlyph(advance: 0, slotField: 1000)])]),
                    glyphsRect(x: 0, y: 0, width: 4, height: 4, background: 0x777777, [Band(top: 0, glyphs: [drawGlyph(advance: 0, slotField: 5)])]),
                ]), requestID: 5, "slots 1000 and 5 after a ScreenInit (§7.4.7: nothing resets the table)")
    }

    @Test("slot numbers of 2,048 and more are a bad glyph, with and without the definition bit")
    func badSlots() {
        let bench = Self.bench()
        let definition = definitionBytes(width: 1, height: 1, palette: [0x010203], rows: [[0]])
        func glyph(_ entry: [UInt8]) -> [UInt8] {
            glyphsRect(x: 20, y: 20, width: 10, height: 10, background: 0, [Band(top: 0, glyphs: [entry])])
        }
        bench.reject(.badGlyph, Self.part(Self.lead, glyph(defineGlyph(advance: 0, slot: 2048, definition))), "definition of slot 2048 (88 00)")
        bench.reject(.badGlyph, Self.part(Self.lead, glyph(drawGlyph(advance: 0, slotField: 2048))), "drawing slot 2048 (08 00)")
        bench.reject(.badGlyph, Self.part(Self.lead, glyph(drawGlyph(advance: 0, slotField: 0x7FFF))), "drawing slot 32767 (7f ff)")
        bench.reject(.badGlyph, Self.part(Self.lead, glyph(defineGlyph(advance: 0, slot: 0x7FFF, definition))), "definition of slot 32767 (ff ff)")
        bench.reject(.badGlyph, Self.part(Self.lead, glyph(drawGlyph(advance: 0, slotField: 0x4005))), "slot 16389 (40 05): its low 11 bits name slot 5")
        bench.reject(
            .badGlyph, Self.part(Self.lead, glyph(defineGlyph(advance: 0, slot: 0x0805, definition))),
            "definition of slot 2053 (88 05): its low 11 bits name slot 5")
    }

    @Test("a definition's width or height of 0 or 65 is a bad glyph")
    func badSizes() {
        let bench = Self.bench()
        for (width, height) in [(0, 1), (1, 0), (65, 1), (1, 65), (0, 0), (65, 65)] {
            // Rows as for a 64-wide glyph, so that the bytes after the size are plenty.
            let definition = [UInt8(width), UInt8(height), 1, 9, 9, 9] + [UInt8](repeating: 0, count: 8 * 65)
            bench.reject(
                .badGlyph,
                Self.part(
                    Self.lead,
                    glyphsRect(x: 0, y: 0, width: 80, height: 72, background: 0, [Band(top: 0, glyphs: [defineGlyph(advance: 0, slot: 3, definition)])])),
                "a \(width)×\(height) definition in an 80×72 rectangle")
        }
    }

    @Test("a definition's palette of 17 or more colours is a bad palette size; an index ≥ n a bad palette index; n = 0 is raw")
    func badPalettes() {
        let bench = Self.bench()
        func defining(_ definition: [UInt8]) -> [UInt8] {
            Self.part(
                Self.lead,
                glyphsRect(x: 0, y: 0, width: 20, height: 20, background: 0, [Band(top: 0, glyphs: [defineGlyph(advance: 0, slot: 3, definition)])]))
        }
        for n in [17, 255] {
            let definition = [4, 4, UInt8(n)] + [UInt8](repeating: 0, count: 3 * n + 64)
            bench.reject(.badPaletteSize, defining(definition), "a definition with n = \(n)")
        }
        // n = 0: width × height cpixels, no palette, no indices.
        let raw: [UInt8] = [5, 3, 0] + (0..<15).flatMap { cpixelBytes(UInt32($0) * 0x10_0F01) }
        bench.accept(defining(raw), "a raw 5×3 definition (n = 0)")
        bench.reject(.truncated, defining(Array(raw.dropLast(1))), "a raw 5×3 definition one byte short")
        bench.reject(.trailingBytes, defining(raw + [0]), "a raw 5×3 definition and one byte more")
        // n = 1 (1 bit): index 1; n = 3 (2 bits): index 3; n = 5 and n = 15 (4 bits): index 15.
        for (n, index) in [(1, 1), (3, 3), (5, 15), (15, 15), (9, 9)] {
            let palette = (0..<n).map { UInt32($0) * 0x0F0F0F }
            var rows = Array(repeating: Array(repeating: 0, count: 5), count: 3)
            rows[2][4] = index
            bench.reject(
                .badPaletteIndex, defining(definitionBytes(width: 5, height: 3, palette: palette, rows: rows)),
                "index \(index) in the last pixel of a palette of \(n)")
        }
    }

    @Test("a glyph past its rectangle's right or bottom edge, through summed advances, is out of bounds")
    func glyphsOutOfBounds() {
        let bench = Self.bench()
        func rect(_ bands: [Band], width: Int = 10, height: Int = 4) -> [UInt8] {
            Self.part(Self.lead, glyphsRect(x: 30, y: 30, width: width, height: height, background: 0, bands))
        }
        bench.accept(
            rect([Band(top: 2, glyphs: [drawGlyph(advance: 4, slotField: 5), drawGlyph(advance: 3, slotField: 5)])]),
            "advances 4 + 3 put the 3-wide glyph flush with the right edge")
        bench.reject(
            .rectOutOfBounds, rect([Band(top: 2, glyphs: [drawGlyph(advance: 4, slotField: 5), drawGlyph(advance: 4, slotField: 5)])]),
            "advances 4 + 4: a 3-wide glyph from 8 to 11 in a 10-wide rectangle (the screen has room)")
        bench.accept(
            rect([Band(top: 0, glyphs: [drawGlyph(advance: 5, slotField: 5), defineGlyph(advance: 3, slot: 7, Self.twoColourGlyph)])]),
            "a definition at 5 + 3 = 8, 2 wide, flush with the right edge of a 10-wide rectangle")
        bench.reject(
            .rectOutOfBounds, rect([Band(top: 0, glyphs: [drawGlyph(advance: 5, slotField: 5), defineGlyph(advance: 4, slot: 7, Self.twoColourGlyph)])]),
            "a definition at 5 + 4 = 9, 2 wide, in a 10-wide rectangle")
        bench.reject(
            .rectOutOfBounds, rect([Band(top: 3, glyphs: [drawGlyph(advance: 0, slotField: 5)])]),
            "a 2-high glyph at band top 3 of a 4-high rectangle")
        bench.reject(
            .rectOutOfBounds,
            rect([
                Band(top: 0, glyphs: []),
                Band(top: 2, glyphs: [defineGlyph(advance: 0, slot: 7, definitionBytes(width: 1, height: 3, palette: [1], rows: [[0], [0], [0]]))]),
            ]),
            "a 3-high definition at band top 2 of a 4-high rectangle")
        bench.reject(
            .rectOutOfBounds, rect([Band(top: 0, glyphs: [drawGlyph(advance: 65538, slotField: 5)])]),
            "an advance of 65,538 (257 ff bytes and 03): 2 if cut to 16 bits")
        bench.reject(
            .rectOutOfBounds, rect([Band(top: 0, glyphs: [drawGlyph(advance: 0, slotField: 5), drawGlyph(advance: 65536, slotField: 5)])]),
            "advances 0 + 65,536: 0 if summed in 16 bits")
        bench.reject(
            .rectOutOfBounds, rect([Band(top: 0, glyphs: [drawGlyph(advance: 255 * 100_000, slotField: 5)])]),
            "an advance of 100,000 ff bytes and 00")
        bench.reject(
            .rectOutOfBounds, Self.part(Self.lead, glyphsRect(x: 75, y: 0, width: 6, height: 4, background: 0, [])),
            "a glyphs rectangle one pixel past the screen (§7.3)")
        bench.reject(
            .rectOutOfBounds, Self.part(Self.lead, glyphsRect(x: 0, y: 0, width: 0, height: 4, background: 0, [])), "an empty glyphs rectangle (§7.3)")
    }

    @Test("drawing an empty slot is an unknown glyph, also one defined only later in the part")
    func unknownGlyphs() {
        let bench = Self.bench()
        bench.reject(
            .unknownGlyph,
            Self.part(Self.lead, glyphsRect(x: 0, y: 0, width: 8, height: 8, background: 0, [Band(top: 0, glyphs: [drawGlyph(advance: 0, slotField: 6)])])),
            "slot 6 was never defined")
        bench.reject(
            .unknownGlyph,
            Self.part(
                Self.lead,
                glyphsRect(
                    x: 0, y: 0, width: 8, height: 8, background: 0,
                    [Band(top: 0, glyphs: [drawGlyph(advance: 0, slotField: 7), defineGlyph(advance: 2, slot: 7, Self.twoColourGlyph)])])),
            "slot 7 drawn before the definition that follows it in the same band")
        bench.reject(
            .unknownGlyph,
            Self.part(
                Self.lead, glyphsRect(x: 0, y: 0, width: 8, height: 8, background: 0, [Band(top: 0, glyphs: [drawGlyph(advance: 0, slotField: 7)])]),
                glyphsRect(x: 0, y: 0, width: 8, height: 8, background: 0, [Band(top: 0, glyphs: [defineGlyph(advance: 0, slot: 7, Self.twoColourGlyph)])])),
            "slot 7 drawn in a rectangle before the one that defines it")
        let fresh = DecoderBench(width: 4, height: 2)
        fresh.reject(
            .unknownGlyph,
            partBytes(
                width: 4, height: 2,
                [glyphsRect(x: 0, y: 0, width: 4, height: 2, background: 0x010203, [Band(top: 0, glyphs: [drawGlyph(advance: 0, slotField: 0)])])]),
            "slot 0 at the start of a session (vector unknown-glyph)")
    }

    @Test("a glyphs rectangle cut short: inside a definition, in an advance of ff bytes, in a band header")
    func truncatedGlyphs() {
        let bench = Self.bench()
        let definition = definitionBytes(width: 5, height: 3, palette: [1, 2, 3], rows: Array(repeating: [0, 1, 2, 1, 0], count: 3))
        let whole = glyphsRect(x: 0, y: 0, width: 20, height: 20, background: 9, [Band(top: 1, glyphs: [defineGlyph(advance: 3, slot: 12, definition)])])
        bench.accept(Self.part(Self.lead, whole), "the whole rectangle")
        // rect header 9, background 3, band count 2, top 2, glyph count 2, advance 1, slot 2,
        // then width, height, n, 9 palette bytes, 3 rows of 2 bytes.
        let definitionStart = 9 + 3 + 2 + 4 + 1 + 2
        #expect(whole.count == definitionStart + 18)
        let cuts: [(Int, String)] = [
            (9 + 2, "in the background"), (9 + 3 + 1, "in the band count"), (9 + 3 + 2 + 3, "in a band's glyph count"),
            (9 + 3 + 2 + 4, "before an advance"), (definitionStart - 1, "in the slot"), (definitionStart, "before the definition"),
            (definitionStart + 1, "after the width"), (definitionStart + 2, "after the height"), (definitionStart + 3, "after n"),
            (definitionStart + 7, "in the palette"), (definitionStart + 12, "before the rows"), (definitionStart + 15, "in the second row"),
            (definitionStart + 17, "in the last row"),
        ]
        for (cut, place) in cuts {
            bench.reject(.truncated, Self.part(Self.lead, Array(whole.prefix(cut))), "cut \(place), after \(cut) bytes of the rectangle")
        }
        var endless = glyphsRect(x: 0, y: 0, width: 20, height: 20, background: 9, [Band(top: 0, glyphs: [])])
        endless.removeLast(2)
        endless += be16(1) + [UInt8](repeating: 0xFF, count: 300)
        bench.reject(.truncated, Self.part(Self.lead, endless), "an advance whose ff bytes run to the end of the part")
        endless.removeLast(299)
        bench.reject(.truncated, Self.part(Self.lead, endless), "an advance of one ff byte at the end of the part")
        bench.reject(
            .truncated, partBytes(width: Self.width, height: Self.height, rectCount: 3, [Self.lead, whole]),
            "a rect count of 3 for 2 glyphs rectangles")
        bench.reject(.trailingBytes, Self.part(Self.lead, whole + [0]), "a byte after the last glyph")
    }

    @Test("TileEncoder(glyphs: true): text and noise frames come back exactly, and it does use glyphs")
    func encoderWithGlyphs() throws {
        let run = try runEncoder(glyphs: true, width: 320, height: 200, steps: 150, seed: 0x7E47, noise: true, maximumBodyLength: nil)
        #expect(run.updates > 100)
        #expect((run.rectangles[0x07] ?? 0) > 20, "glyph rectangles: \(run.rectangles)")
        #expect(run.glyphsDrawn > run.glyphsDefined, "text repeats its shapes: drawn \(run.glyphsDrawn), defined \(run.glyphsDefined)")
        #expect(run.glyphsDefined == run.rawDefinitions + run.paletteDefinitions, "statistics and bodies disagree on definitions")
        #expect(run.rawDefinitions > 0 && run.paletteDefinitions > 0, "raw \(run.rawDefinitions), with a palette \(run.paletteDefinitions)")
    }

    @Test("TileEncoder(glyphs: true) in parts of at most 32,768 bytes")
    func encoderWithGlyphsInParts() throws {
        let run = try runEncoder(glyphs: true, width: 512, height: 384, steps: 60, seed: 0x9A27, noise: true, maximumBodyLength: 32768)
        #expect(run.multiPartUpdates > 0, "no update needed more than one part")
        #expect((run.rectangles[0x07] ?? 0) > 0, "glyph rectangles: \(run.rectangles)")
    }

    @Test("TileEncoder(glyphs: false) never sends encoding 0x07, whole or in parts")
    func encoderWithoutGlyphs() throws {
        let whole = try runEncoder(glyphs: false, width: 320, height: 200, steps: 100, seed: 0x7E47, noise: true, maximumBodyLength: nil)
        let parts = try runEncoder(glyphs: false, width: 512, height: 384, steps: 40, seed: 0x9A27, noise: true, maximumBodyLength: 32768)
        #expect(whole.rectangles[0x07] == nil && parts.rectangles[0x07] == nil)
        #expect(whole.updates > 60 && parts.multiPartUpdates > 0)
    }
}
