public import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The viewer's half of the tile-delta codec (PROTOCOL.md §7): applies TileUpdate bodies
/// to a framebuffer that then equals the host's frame byte for byte.
///
/// Every body is inflated (within a limit), read into a list of rectangles and validated
/// completely before the framebuffer is touched, so a malformed update leaves it exactly
/// as it was. The zlib stream, though, has consumed the bad bytes: after any error the
/// session ends (§7.7). Not thread-safe; one decoder per session.
public final class TileDecoder {
    /// The framebuffer the updates apply to; nil until the first ``resize(width:height:)``.
    public private(set) var framebuffer: Framebuffer?
    /// True after a part that said more parts of the same update follow (§7.6): the
    /// framebuffer then shows a partly applied update, and the next body must answer the
    /// same request.
    public private(set) var expectsContinuation = false

    private let maximumInflatedBytes: Int
    private let inflater = InflateStream()
    private var inflated: [UInt8] = []
    private var rects: [DecodedRect] = []
    private var copySource: [UInt8] = []
    private var continuingRequestID: UInt32 = 0
    /// The glyph table (§7.4.7): empty slots at the start of the session, never reset.
    private var glyphTable = [Glyph?](repeating: nil, count: TileUpdateFormat.glyphSlots)
    /// While a part is read: the sides of the glyphs it defines, by slot, for the uses
    /// after them (the table itself changes only when the part is applied). A slot's
    /// entry counts only when its `pendingPart` is the part being read.
    private var pendingSides = [UInt32](repeating: 0, count: TileUpdateFormat.glyphSlots)
    private var pendingPart = [Int](repeating: -1, count: TileUpdateFormat.glyphSlots)
    private var partNumber = 0

    /// - Parameter maximumInflatedBytes: the most one body may inflate to, the fence
    ///   against deflate bombs. The default, 64 MiB, holds a raw 3840×2160 update
    ///   (25 MB) with room for its rectangle headers.
    public init(maximumInflatedBytes: Int = 64 << 20) {
        precondition(maximumInflatedBytes >= 4096, "an inflate limit below 4 KiB cannot hold a tile")
        self.maximumInflatedBytes = maximumInflatedBytes
    }

    /// Called on ScreenInit: a new framebuffer of that size (black). The zlib stream
    /// continues (§7.1); an update in parts is abandoned.
    public func resize(width: Int, height: Int) {
        self.framebuffer = Framebuffer(
            width: width, height: height, pixels: [UInt8](repeating: 0, count: width * height * Framebuffer.bytesPerPixel)
        )
        self.expectsContinuation = false
    }

    /// Applies one TileUpdate body; returns the requestID it answers. On any error the
    /// framebuffer is left exactly as it was.
    @discardableResult
    public func apply(_ body: ByteBuffer) throws(ScreenCodecError) -> UInt32 {
        guard let geometry = self.framebuffer.map({ (width: $0.width, height: $0.height) }) else {
            throw ScreenCodecError(.noScreen, "a TileUpdate arrived before any ScreenInit gave the screen a size (§7.7)")
        }
        guard let requestID = body.getInteger(at: body.readerIndex, as: UInt32.self) else {
            throw ScreenCodecError(.truncated, "a TileUpdate body needs 4 bytes of request id, got \(body.readableBytes)")
        }
        if self.expectsContinuation && requestID != self.continuingRequestID {
            throw ScreenCodecError(
                .unexpectedPart,
                "update \(self.continuingRequestID) announced another part, but a part of update \(requestID) arrived (§7.6)"
            )
        }
        let zlibBytes = body.getSlice(at: body.readerIndex + 4, length: body.readableBytes - 4)!
        guard zlibBytes.readableBytes >= 4,
            zlibBytes.getInteger(at: zlibBytes.readerIndex + zlibBytes.readableBytes - 4, as: UInt32.self) == 0x0000_ffff
        else {
            throw ScreenCodecError(
                .truncated,
                "the body's \(zlibBytes.readableBytes) zlib bytes do not end in the sync flush 00 00 ff ff (§7.1)"
            )
        }
        let inflatedCount = try self.inflate(zlibBytes)
        let continues = try self.parse(count: inflatedCount, width: geometry.width, height: geometry.height)

        // Everything is valid: only now change the framebuffer. Taking it out of the
        // property keeps its storage uniquely referenced, so writes do not copy 8 MB.
        var framebuffer = self.framebuffer.take()!
        self.applyRects(to: &framebuffer)
        self.framebuffer = framebuffer
        self.expectsContinuation = continues
        self.continuingRequestID = requestID
        return requestID
    }

    private func inflate(_ zlibBytes: ByteBuffer) throws(ScreenCodecError) -> Int {
        let result: Result<Int, ScreenCodecError> = zlibBytes.withUnsafeReadableBytes { raw in
            do throws(ScreenCodecError) {
                return .success(try self.inflater.inflate(raw, into: &self.inflated, limit: self.maximumInflatedBytes))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    // MARK: - Reading and validating (§7.2–§7.4)

    private struct DecodedRect {
        var encoding: RectEncoding
        var x: Int
        var y: Int
        var width: Int
        var height: Int
        /// Copy: the source's top-left corner.
        var sourceX = 0
        var sourceY = 0
        /// Offset in `inflated` of the palette (palette encodings) or the pixel data.
        var palette = 0
        var paletteSize = 0
        var data = 0
    }

    /// A glyph of the table (§7.4.7): its pixels as the framebuffer stores them.
    private struct Glyph {
        var width: Int
        var height: Int
        var pixels: [UInt32]
    }

    /// Reads the inflated part into `rects`, validating every field; returns the
    /// part's "continues" flag.
    private func parse(count: Int, width: Int, height: Int) throws(ScreenCodecError) -> Bool {
        self.rects.removeAll(keepingCapacity: true)
        self.partNumber &+= 1
        return try self.inflated.withUnsafeBufferPointer { (bytes) throws(ScreenCodecError) -> Bool in
            var reader = InflatedReader(base: bytes.baseAddress!, end: count)
            let partWidth = try reader.u16("part width")
            let partHeight = try reader.u16("part height")
            guard partWidth == width, partHeight == height else {
                throw ScreenCodecError(
                    .sizeMismatch,
                    "the update is for a \(partWidth)×\(partHeight) screen, the framebuffer is \(width)×\(height) (§7.2)"
                )
            }
            let flags = try reader.u8("part flags")
            let rectCount = try reader.u32("rectangle count")
            // Every rectangle takes at least 9 bytes: a count beyond that is a lie.
            guard rectCount <= (count - reader.offset) / TileUpdateFormat.rectHeaderLength else {
                throw ScreenCodecError(
                    .truncated,
                    "the part announces \(rectCount) rectangles, but only \(count - reader.offset) bytes follow"
                )
            }
            self.rects.reserveCapacity(rectCount)
            for number in 0..<rectCount {
                self.rects.append(try self.readRect(&reader, number: number, width: width, height: height))
            }
            guard reader.offset == count else {
                throw ScreenCodecError(.trailingBytes, "\(count - reader.offset) inflated bytes after the last rectangle")
            }
            return UInt8(flags) & TileUpdateFormat.continuesFlag != 0
        }
    }

    private func readRect(_ reader: inout InflatedReader, number: Int, width: Int, height: Int) throws(ScreenCodecError) -> DecodedRect {
        let encodingByte = try reader.u8("rectangle encoding")
        guard let encoding = RectEncoding(rawValue: UInt8(encodingByte)) else {
            throw ScreenCodecError(.unknownEncoding, "rectangle \(number): encoding 0x\(String(encodingByte, radix: 16)) is not defined (§7.4)")
        }
        var rect = DecodedRect(
            encoding: encoding,
            x: try reader.u16("x"), y: try reader.u16("y"), width: try reader.u16("width"), height: try reader.u16("height")
        )
        guard rect.width > 0, rect.height > 0, rect.x + rect.width <= width, rect.y + rect.height <= height else {
            throw ScreenCodecError(
                .rectOutOfBounds,
                "rectangle \(number): \(rect.width)×\(rect.height) at (\(rect.x), \(rect.y)) is empty or outside the \(width)×\(height) screen"
            )
        }
        let pixels = rect.width * rect.height
        switch encoding {
        case .copy:
            rect.sourceX = try reader.u16("copy source x")
            rect.sourceY = try reader.u16("copy source y")
            guard rect.sourceX + rect.width <= width, rect.sourceY + rect.height <= height else {
                throw ScreenCodecError(
                    .rectOutOfBounds,
                    "rectangle \(number): copy source \(rect.width)×\(rect.height) at (\(rect.sourceX), \(rect.sourceY)) is outside the \(width)×\(height) screen"
                )
            }
        case .solid:
            rect.data = reader.offset
            try reader.skip(TileUpdateFormat.pixelLength, "solid colour")
        case .packedPalette, .paletteRLE:
            rect.paletteSize = try reader.u8("palette size")
            guard (TileUpdateFormat.minimumPaletteSize...TileUpdateFormat.maximumPaletteSize).contains(rect.paletteSize) else {
                throw ScreenCodecError(.badPaletteSize, "rectangle \(number): a palette of \(rect.paletteSize) colours; 2…16 are allowed")
            }
            rect.palette = reader.offset
            try reader.skip(rect.paletteSize * TileUpdateFormat.pixelLength, "palette")
            rect.data = reader.offset
            if encoding == .packedPalette {
                try Self.validatePacked(&reader, rect: rect, number: number)
            } else {
                try Self.validatePaletteRuns(&reader, pixels: pixels, paletteSize: rect.paletteSize, number: number)
            }
        case .raw:
            rect.data = reader.offset
            try reader.skip(pixels * TileUpdateFormat.pixelLength, "raw pixels")
        case .rle:
            rect.data = reader.offset
            var covered = 0
            while covered < pixels {
                try reader.skip(TileUpdateFormat.pixelLength, "run colour")
                covered += try reader.runLength(remaining: pixels - covered, number: number)
            }
        case .glyphs:
            rect.data = reader.offset
            try reader.skip(TileUpdateFormat.pixelLength, "glyphs background")
            try self.readGlyphBands(&reader, rect: rect, number: number)
        }
        return rect
    }

    /// Reads and checks a glyphs rectangle's bands (§7.4.7); nothing is kept (drawing
    /// reads the checked bytes again, so a part of millions of 3-byte glyphs costs no
    /// memory per glyph). Definitions
    /// take effect for later uses in this part through `pendingSides`; the table itself
    /// is changed when the part is applied.
    private func readGlyphBands(_ reader: inout InflatedReader, rect: DecodedRect, number: Int) throws(ScreenCodecError) {
        let bands = try reader.u16("glyph band count")
        for _ in 0..<bands {
            let top = try reader.u16("glyph band top")
            let count = try reader.u16("glyph count")
            var left = 0
            for _ in 0..<count {
                left += try reader.count("glyph advance")
                let field = try reader.u16("glyph slot")
                let slot = field & ~TileUpdateFormat.glyphDefinitionFlag
                guard slot < TileUpdateFormat.glyphSlots else {
                    throw ScreenCodecError(
                        .badGlyph, "rectangle \(number): glyph slot \(slot); the table has \(TileUpdateFormat.glyphSlots) (§7.4.7)"
                    )
                }
                var glyph = (width: 0, height: 0)
                if field & TileUpdateFormat.glyphDefinitionFlag != 0 {
                    glyph.width = try reader.u8("glyph width")
                    glyph.height = try reader.u8("glyph height")
                    let sides = 1...TileUpdateFormat.maximumGlyphSide
                    guard sides.contains(glyph.width), sides.contains(glyph.height) else {
                        throw ScreenCodecError(
                            .badGlyph,
                            "rectangle \(number): a \(glyph.width)×\(glyph.height) glyph for slot \(slot); sides are 1…\(TileUpdateFormat.maximumGlyphSide) (§7.4.7)"
                        )
                    }
                    let paletteSize = try reader.u8("glyph palette size")
                    guard paletteSize <= TileUpdateFormat.maximumPaletteSize else {
                        throw ScreenCodecError(
                            .badPaletteSize, "rectangle \(number): a glyph palette of \(paletteSize) colours; 0 (raw) or 1…16 are allowed"
                        )
                    }
                    if paletteSize == 0 {
                        try reader.skip(glyph.width * glyph.height * TileUpdateFormat.pixelLength, "raw glyph pixels")
                    } else {
                        try reader.skip(paletteSize * TileUpdateFormat.pixelLength, "glyph palette")
                        let shape = DecodedRect(encoding: .glyphs, x: 0, y: 0, width: glyph.width, height: glyph.height, paletteSize: paletteSize)
                        try Self.validatePacked(&reader, rect: shape, number: number)
                    }
                    self.pendingSides[slot] = UInt32(glyph.width) << 16 | UInt32(glyph.height)
                    self.pendingPart[slot] = self.partNumber
                } else if self.pendingPart[slot] == self.partNumber {
                    glyph.width = Int(self.pendingSides[slot] >> 16)
                    glyph.height = Int(self.pendingSides[slot] & 0xFFFF)
                } else if let held = self.glyphTable[slot] {
                    glyph = (held.width, held.height)
                } else {
                    throw ScreenCodecError(.unknownGlyph, "rectangle \(number): glyph slot \(slot) holds no glyph (§7.4.7)")
                }
                guard left + glyph.width <= rect.width, top + glyph.height <= rect.height else {
                    throw ScreenCodecError(
                        .rectOutOfBounds,
                        "rectangle \(number): a \(glyph.width)×\(glyph.height) glyph at (\(left), \(top)) reaches outside its \(rect.width)×\(rect.height) rectangle"
                    )
                }
            }
        }
    }

    private static func validatePacked(_ reader: inout InflatedReader, rect: DecodedRect, number: Int) throws(ScreenCodecError) {
        let bits = TileUpdateFormat.indexBits(paletteSize: rect.paletteSize)
        let rowLength = TileUpdateFormat.packedRowLength(width: rect.width, bits: bits)
        let start = reader.offset
        try reader.skip(rowLength * rect.height, "packed indices")
        // With 2, 4 or 16 colours every index is valid; otherwise check each one.
        guard rect.paletteSize != 1 << bits else { return }
        let mask = UInt8((1 << bits) - 1)
        for row in 0..<rect.height {
            let line = reader.base + start + row * rowLength
            for column in 0..<rect.width {
                let bit = column * bits
                let index = Int((line[bit >> 3] >> UInt8(8 - bits - (bit & 7))) & mask)
                if index >= rect.paletteSize {
                    throw ScreenCodecError(
                        .badPaletteIndex,
                        "rectangle \(number): pixel (\(column), \(row)) has index \(index) in a palette of \(rect.paletteSize)"
                    )
                }
            }
        }
    }

    private static func validatePaletteRuns(_ reader: inout InflatedReader, pixels: Int, paletteSize: Int, number: Int) throws(ScreenCodecError) {
        var covered = 0
        while covered < pixels {
            let byte = try reader.u8("palette run")
            let index = Int(byte & 0x7F)
            guard index < paletteSize else {
                throw ScreenCodecError(
                    .badPaletteIndex, "rectangle \(number): a run of index \(index) in a palette of \(paletteSize)"
                )
            }
            covered += byte & 0x80 == 0 ? 1 : try reader.runLength(remaining: pixels - covered, number: number)
        }
    }

    // MARK: - Applying (§7.4, copies first)

    private func applyRects(to framebuffer: inout Framebuffer) {
        let stride = framebuffer.bytesPerRow
        let copyCount = self.rects.lazy.filter { $0.encoding == .copy }.count
        // All copies read the framebuffer as it was before the part (§7.4.1). With more
        // than one, a copy may overwrite another's source: read every source first.
        if copyCount > 1 {
            var needed = 0
            for rect in self.rects where rect.encoding == .copy { needed += rect.width * rect.height * 4 }
            if self.copySource.count < needed { self.copySource = [UInt8](repeating: 0, count: needed) }
        }
        self.inflated.withUnsafeBufferPointer { inflatedBuffer in
            let inflated = inflatedBuffer.baseAddress!
            self.copySource.withUnsafeMutableBytes { snapshot in
                framebuffer.pixels.withUnsafeMutableBytes { pixelBytes in
                    let pixels = pixelBytes.baseAddress!
                    if copyCount > 1 {
                        var offset = 0
                        for rect in self.rects where rect.encoding == .copy {
                            let length = rect.width * 4
                            for row in 0..<rect.height {
                                memcpy(snapshot.baseAddress! + offset, pixels + (rect.sourceY + row) * stride + rect.sourceX * 4, length)
                                offset += length
                            }
                        }
                        offset = 0
                        for rect in self.rects where rect.encoding == .copy {
                            let length = rect.width * 4
                            for row in 0..<rect.height {
                                memcpy(pixels + (rect.y + row) * stride + rect.x * 4, snapshot.baseAddress! + offset, length)
                                offset += length
                            }
                        }
                    } else if copyCount == 1, let rect = self.rects.first(where: { $0.encoding == .copy }) {
                        // One copy may overlap itself: walk rows away from the overlap.
                        let length = rect.width * 4
                        let rows = rect.y > rect.sourceY ? Array((0..<rect.height).reversed()) : Array(0..<rect.height)
                        for row in rows {
                            memmove(pixels + (rect.y + row) * stride + rect.x * 4, pixels + (rect.sourceY + row) * stride + rect.sourceX * 4, length)
                        }
                    }
                    for rect in self.rects where rect.encoding != .copy {
                        Self.draw(rect, inflated: inflated, pixels: pixels, stride: stride)
                        if rect.encoding == .glyphs { self.drawGlyphs(rect, inflated: inflated, pixels: pixels, stride: stride) }
                    }
                }
            }
        }
    }

    @inline(__always)
    private static func pixel(_ bytes: UnsafePointer<UInt8>) -> UInt32 {
        UInt32(bytes[0]) | UInt32(bytes[1]) << 8 | UInt32(bytes[2]) << 16
    }

    /// Runs `body` with the rect's palette (§7.4.3: 2 to 16 colours) in a buffer on the stack,
    /// so that drawing a palette tile allocates nothing.
    @inline(__always)
    private static func withPalette(of rect: DecodedRect, inflated: UnsafePointer<UInt8>, _ body: (UnsafeMutableBufferPointer<UInt32>) -> Void) {
        var palette = (
            UInt32(0), UInt32(0), UInt32(0), UInt32(0), UInt32(0), UInt32(0), UInt32(0), UInt32(0),
            UInt32(0), UInt32(0), UInt32(0), UInt32(0), UInt32(0), UInt32(0), UInt32(0), UInt32(0)
        )
        withUnsafeMutableBytes(of: &palette) { raw in
            let colours = raw.bindMemory(to: UInt32.self)
            for entry in 0..<rect.paletteSize { colours[entry] = Self.pixel(inflated + rect.palette + entry * 3) }
            body(colours)
        }
    }

    private static func draw(_ rect: DecodedRect, inflated: UnsafePointer<UInt8>, pixels: UnsafeMutableRawPointer, stride: Int) {
        @inline(__always) func store(_ value: UInt32, _ row: UnsafeMutableRawPointer, _ column: Int) {
            row.storeBytes(of: value.littleEndian, toByteOffset: column &* 4, as: UInt32.self)
        }
        let data = inflated + rect.data
        switch rect.encoding {
        case .copy:
            return
        case .solid, .glyphs:
            // A glyphs rectangle starts as its background (§7.4.7); `drawGlyphs` follows.
            let colour = Self.pixel(data)
            for row in 0..<rect.height {
                let line = pixels + (rect.y + row) * stride + rect.x * 4
                for column in 0..<rect.width { store(colour, line, column) }
            }
        case .raw:
            var source = data
            for row in 0..<rect.height {
                let line = pixels + (rect.y + row) * stride + rect.x * 4
                for column in 0..<rect.width {
                    store(Self.pixel(source), line, column)
                    source += 3
                }
            }
        case .packedPalette:
            Self.withPalette(of: rect, inflated: inflated) { colours in
                let bits = TileUpdateFormat.indexBits(paletteSize: rect.paletteSize)
                let rowLength = TileUpdateFormat.packedRowLength(width: rect.width, bits: bits)
                let mask = UInt8((1 << bits) - 1)
                for row in 0..<rect.height {
                    let line = pixels + (rect.y + row) * stride + rect.x * 4
                    let packed = data + row * rowLength
                    for column in 0..<rect.width {
                        let bit = column &* bits
                        let index = Int((packed[bit >> 3] >> UInt8(8 - bits - (bit & 7))) & mask)
                        store(colours[index], line, column)
                    }
                }
            }
        case .paletteRLE:
            Self.withPalette(of: rect, inflated: inflated) { colours in
                var cursor = data
                var painter = RunPainter(rect: rect, pixels: pixels, stride: stride)
                while !painter.isDone {
                    let byte = cursor.pointee
                    cursor += 1
                    var length = 1
                    if byte & 0x80 != 0 { length = Self.readRunLength(&cursor) }
                    painter.paint(colours[Int(byte & 0x7F)], count: length)
                }
            }
        case .rle:
            var cursor = data
            var painter = RunPainter(rect: rect, pixels: pixels, stride: stride)
            while !painter.isDone {
                let colour = Self.pixel(cursor)
                cursor += 3
                painter.paint(colour, count: Self.readRunLength(&cursor))
            }
        }
    }

    /// Defines and draws a glyphs rectangle's glyphs in order (§7.4.7), over the
    /// background `draw` filled in, reading its bytes again: validation checked them all.
    private func drawGlyphs(_ rect: DecodedRect, inflated: UnsafePointer<UInt8>, pixels: UnsafeMutableRawPointer, stride: Int) {
        var cursor = inflated + rect.data + TileUpdateFormat.pixelLength
        func u16() -> Int {
            defer { cursor += 2 }
            return Int(cursor[0]) << 8 | Int(cursor[1])
        }
        func count() -> Int {
            var value = 0
            while cursor.pointee == 255 {
                value += 255
                cursor += 1
            }
            defer { cursor += 1 }
            return value + Int(cursor.pointee)
        }
        for _ in 0..<u16() {
            let top = u16()
            var left = 0
            for _ in 0..<u16() {
                left += count()
                let field = u16()
                let slot = field & ~TileUpdateFormat.glyphDefinitionFlag
                if field & TileUpdateFormat.glyphDefinitionFlag != 0 {
                    let (glyph, length) = Self.glyph(definition: cursor)
                    self.glyphTable[slot] = glyph
                    cursor += length
                }
                // Validation saw this slot filled (here or earlier) with a glyph that fits.
                let glyph = self.glyphTable[slot]!
                glyph.pixels.withUnsafeBytes { source in
                    let length = glyph.width * 4
                    for row in 0..<glyph.height {
                        memcpy(pixels + (rect.y + top + row) * stride + (rect.x + left) * 4, source.baseAddress! + row * length, length)
                    }
                }
            }
        }
    }

    /// A glyph from its definition (§7.4.7: sides, then raw pixels or a palette and packed
    /// indices), and the definition's length in bytes.
    private static func glyph(definition: UnsafePointer<UInt8>) -> (Glyph, Int) {
        let (width, height, paletteSize) = (Int(definition[0]), Int(definition[1]), Int(definition[2]))
        let colours = definition + 3
        if paletteSize == 0 {
            let pixels = (0..<(width * height)).map { Self.pixel(colours + $0 * TileUpdateFormat.pixelLength).littleEndian }
            return (Glyph(width: width, height: height, pixels: pixels), 3 + width * height * TileUpdateFormat.pixelLength)
        }
        let bits = TileUpdateFormat.indexBits(paletteSize: paletteSize)
        let rowLength = TileUpdateFormat.packedRowLength(width: width, bits: bits)
        let mask = UInt8((1 << bits) - 1)
        let packed = colours + paletteSize * TileUpdateFormat.pixelLength
        var pixels = [UInt32](repeating: 0, count: width * height)
        for row in 0..<height {
            for column in 0..<width {
                let bit = column &* bits
                let index = Int((packed[row * rowLength + (bit >> 3)] >> UInt8(8 - bits - (bit & 7))) & mask)
                pixels[row * width + column] = Self.pixel(colours + index * TileUpdateFormat.pixelLength).littleEndian
            }
        }
        return (Glyph(width: width, height: height, pixels: pixels), 3 + paletteSize * TileUpdateFormat.pixelLength + rowLength * height)
    }

    /// Reads a run-length field that validation already checked (§7.4.4).
    @inline(__always)
    private static func readRunLength(_ cursor: inout UnsafePointer<UInt8>) -> Int {
        var length = 1
        while cursor.pointee == 255 {
            length += 255
            cursor += 1
        }
        length += Int(cursor.pointee)
        cursor += 1
        return length
    }

    /// Writes runs of pixels in raster order over a rectangle, across its rows.
    private struct RunPainter {
        let rect: DecodedRect
        let pixels: UnsafeMutableRawPointer
        let stride: Int
        var row = 0
        var column = 0

        init(rect: DecodedRect, pixels: UnsafeMutableRawPointer, stride: Int) {
            self.rect = rect
            self.pixels = pixels
            self.stride = stride
        }

        var isDone: Bool { self.row >= self.rect.height }

        mutating func paint(_ colour: UInt32, count: Int) {
            var left = count
            while left > 0 {
                let line = self.pixels + (self.rect.y + self.row) * self.stride + (self.rect.x + self.column) * 4
                let span = min(left, self.rect.width - self.column)
                for index in 0..<span {
                    line.storeBytes(of: colour.littleEndian, toByteOffset: index &* 4, as: UInt32.self)
                }
                left -= span
                self.column += span
                if self.column == self.rect.width {
                    self.column = 0
                    self.row += 1
                }
            }
        }
    }
}

/// Reads the inflated part with bounds checks that report `truncated`.
private struct InflatedReader {
    let base: UnsafePointer<UInt8>
    var offset = 0
    let end: Int

    init(base: UnsafePointer<UInt8>, end: Int) {
        self.base = base
        self.end = end
    }

    mutating func u8(_ field: StaticString) throws(ScreenCodecError) -> Int {
        try self.need(1, field)
        defer { self.offset += 1 }
        return Int(self.base[self.offset])
    }

    mutating func u16(_ field: StaticString) throws(ScreenCodecError) -> Int {
        try self.need(2, field)
        defer { self.offset += 2 }
        return Int(self.base[self.offset]) << 8 | Int(self.base[self.offset + 1])
    }

    mutating func u32(_ field: StaticString) throws(ScreenCodecError) -> Int {
        try self.need(4, field)
        defer { self.offset += 4 }
        return Int(self.base[self.offset]) << 24 | Int(self.base[self.offset + 1]) << 16
            | Int(self.base[self.offset + 2]) << 8 | Int(self.base[self.offset + 3])
    }

    mutating func skip(_ count: Int, _ field: StaticString) throws(ScreenCodecError) {
        try self.need(count, field)
        self.offset += count
    }

    /// A count field (§7.4.7): 255s and a last byte below 255, summed.
    mutating func count(_ field: StaticString) throws(ScreenCodecError) -> Int {
        var value = 0
        while true {
            let byte = try self.u8(field)
            value += byte
            if byte < 255 { return value }
        }
    }

    /// A run-length field (§7.4.4) for a run that may cover at most `remaining` pixels.
    mutating func runLength(remaining: Int, number: Int) throws(ScreenCodecError) -> Int {
        var length = 1
        while true {
            let byte = try self.u8("run length")
            length += byte
            if length > remaining {
                throw ScreenCodecError(
                    .runOverflow, "rectangle \(number): a run reaches past the rectangle's last pixel (\(remaining) left)"
                )
            }
            if byte < 255 { return length }
        }
    }

    private func need(_ count: Int, _ field: StaticString) throws(ScreenCodecError) {
        guard self.end - self.offset >= count else {
            throw ScreenCodecError(.truncated, "\(field): needs \(count) bytes, \(self.end - self.offset) left in the inflated update")
        }
    }
}
