import NIOCore
import RelayScreen
import RelayTestSupport
import Testing

@testable import RelayTileCodec

// The glyphs encoding (PROTOCOL.md §7.4.7): pages of text travel as glyphs drawn from the
// viewer's table, the viewer's framebuffer still equals the host's frame byte for byte,
// and every malformed glyphs rectangle is refused with its kind.

/// A monospaced font of seeded random shapes, and pages of text set in it.
struct TextPages {
    static let cellWidth = 7
    static let cellHeight = 14
    let background: UInt32 = 0x10_1820
    let ink: UInt32 = 0xE0_E0E0
    /// Per character: `cellHeight` rows of `cellWidth − 1` bits (the last column and row
    /// of a cell stay background, as in a terminal font).
    private var shapes: [[UInt8]] = []
    /// Anti-aliased: per character, the colour of each of its pixels (one of 24 shades).
    private var shades: [[UInt32]] = []

    init(characters: Int, seed: UInt64, antialiased: Bool = false) {
        var random = SeededRandom(seed: seed)
        for _ in 0..<characters {
            var rows = [UInt8](repeating: 0, count: Self.cellHeight)
            for row in 2..<(Self.cellHeight - 2) { rows[row] = UInt8(random.int(1...63)) }
            self.shapes.append(rows)
            if antialiased {
                self.shades.append((0..<(Self.cellWidth * Self.cellHeight)).map { _ in UInt32(random.int(1...24)) * 0x09_0909 })
            }
        }
    }

    /// A `width`×`height` frame with `lines` lines of random words set from (left, top).
    func page(
        width: Int, height: Int, left: Int = 5, top: Int = 3, lines: Int, characters: Range<Int>? = nil, random: inout SeededRandom
    ) -> Framebuffer {
        let characters = characters ?? 0..<self.shapes.count
        var frame = Framebuffer(width: width, height: height, fill: self.background)
        let columns = (width - left) / Self.cellWidth
        for line in 0..<lines {
            var column = random.int(0...4)
            while column < columns - 1 {
                let word = random.int(2...8)
                for _ in 0..<min(word, columns - column) {
                    self.draw(random.int(characters), x: left + column * Self.cellWidth, y: top + line * Self.cellHeight, into: &frame)
                    column += 1
                }
                column += random.int(1...3)
            }
        }
        return frame
    }

    func draw(_ character: Int, x: Int, y: Int, into frame: inout Framebuffer) {
        for (row, bits) in self.shapes[character].enumerated() {
            for column in 0..<(Self.cellWidth - 1) where bits & (1 << column) != 0 {
                let colour = self.shades.isEmpty ? self.ink : self.shades[character][row * Self.cellWidth + column]
                frame.setRGB(colour, x: x + column, y: y + row)
            }
        }
    }
}

@Suite("Glyphs encoding")
struct GlyphCodecTests {
    /// Sends `pages` pages of `font` to a viewer with the glyph table and to one
    /// without, checking both stay exact; returns each glyph update's statistics and the
    /// bytes both took.
    static func sendPages(
        _ font: TextPages, pages: Int, seed: UInt64, width: Int, height: Int, lines: Int
    ) throws -> (updates: [TileUpdateStatistics], withGlyphs: Int, without: Int) {
        var random = SeededRandom(seed: seed)
        var withGlyphs = CodecPair(glyphs: true)
        var without = CodecPair()
        var updates: [TileUpdateStatistics] = []
        for page in 0..<pages {
            let frame = font.page(width: width, height: height, lines: lines, random: &random)
            updates.append(try #require(try withGlyphs.send(frame, "page \(page)")))
            try without.send(frame, "page \(page) without glyphs")
        }
        return (updates, withGlyphs.totalBytes, without.totalBytes)
    }

    @Test("pages of new text arrive exact, as glyphs, in under half the bytes of palette tiles")
    func pagesOfText() throws {
        let sent = try Self.sendPages(TextPages(characters: 90, seed: 7), pages: 12, seed: 8, width: 640, height: 400, lines: 26)
        for (page, statistics) in sent.updates.enumerated() {
            #expect(statistics.glyphRects > 0, "page \(page): \(statistics)")
            // The table holds the font after the first page: later pages define little.
            #expect(page == 0 || statistics.glyphsDefined * 5 < statistics.glyphsDrawn, "page \(page): \(statistics)")
        }
        #expect(sent.withGlyphs * 2 < sent.without, "\(sent.withGlyphs) bytes with glyphs, \(sent.without) without")
    }

    @Test("anti-aliased text (glyphs of more than 16 colours) is defined raw, then drawn from the table, exact")
    func antialiasedText() throws {
        let font = TextPages(characters: 90, seed: 17, antialiased: true)
        let sent = try Self.sendPages(font, pages: 8, seed: 18, width: 640, height: 320, lines: 20)
        for (page, statistics) in sent.updates.enumerated() {
            #expect(statistics.glyphRects > 0 && statistics.glyphsDrawn > 0, "page \(page): \(statistics)")
        }
        #expect(sent.withGlyphs * 2 < sent.without, "\(sent.withGlyphs) bytes with glyphs, \(sent.without) without")
    }

    @Test("the host's table replaces the least recently drawn slot once all 2,048 are filled")
    func leastRecentlyDrawnIsReplaced() {
        // 2,052 one-pixel glyphs of distinct colours in a row.
        var frame = Framebuffer(width: 2052, height: 1)
        for x in 0..<2052 { frame.setRGB(UInt32(x + 1), x: x, y: 0) }
        frame.pixels.withUnsafeBytes { bytes in
            let view = PixelView(base: bytes.baseAddress!, width: frame.width, height: 1)
            var table = GlyphTable()
            func define(_ x: Int) -> Int { table.define(GlyphTable.hash(view, x: x, y: 0, width: 1, height: 1), view, x: x, y: 0, width: 1, height: 1) }
            for x in 0..<2048 { #expect(define(x) == x, "empty slots fill in order") }
            table.draw(0)
            #expect(define(2048) == 1, "slot 0 was drawn again, so slot 1 is the least recent")
            #expect(define(2049) == 2)
            table.draw(3)
            table.draw(4)
            #expect(define(2050) == 5)
            #expect(table.find(GlyphTable.hash(view, x: 1, y: 0, width: 1, height: 1), view, x: 1, y: 0, width: 1, height: 1) == nil)
            #expect(table.find(GlyphTable.hash(view, x: 2048, y: 0, width: 1, height: 1), view, x: 2048, y: 0, width: 1, height: 1) == 1)
            #expect(table.find(GlyphTable.hash(view, x: 3, y: 0, width: 1, height: 1), view, x: 3, y: 0, width: 1, height: 1) == 3)
        }
    }

    @Test("an encoder without the viewer's table never writes a glyphs rectangle")
    func noTableNoGlyphs() throws {
        let font = TextPages(characters: 40, seed: 9)
        var random = SeededRandom(seed: 10)
        var pair = CodecPair()
        for page in 0..<3 {
            let statistics = try #require(try pair.send(font.page(width: 320, height: 200, lines: 12, random: &random), "page \(page)"))
            #expect(statistics.glyphRects == 0 && statistics.glyphsDrawn == 0 && statistics.glyphsDefined == 0)
        }
        #expect(!pair.encoder.usesGlyphs && CodecPair(glyphs: true).encoder.usesGlyphs)
    }

    @Test("more shapes than the table's slots: the least recently drawn are replaced and redefined, and every frame stays exact")
    func moreShapesThanSlots() throws {
        // 3,000 shapes, each page 150 of them, the next 100 further on: the table's 2,048
        // slots fill and turn over, and shapes of earlier pages come back.
        let font = TextPages(characters: 3000, seed: 11)
        var random = SeededRandom(seed: 12)
        var pair = CodecPair(glyphs: true)
        var defined = 0
        for page in 0..<60 {
            let first = page * 100 % 2850
            let frame = font.page(width: 700, height: 300, lines: 20, characters: first..<(first + 150), random: &random)
            let statistics = try #require(try pair.send(frame, "page \(page)"))
            defined += statistics.glyphsDefined
        }
        #expect(defined > TileUpdateFormat.glyphSlots, "only \(defined) definitions: the table never turned over")
    }

    @Test("text through the smallest body limit, cut into parts, stays exact")
    func partsWithGlyphs() throws {
        let font = TextPages(characters: 90, seed: 13)
        var random = SeededRandom(seed: 14)
        var pair = CodecPair(glyphs: true)
        for page in 0..<4 {
            let frame = font.page(width: 1200, height: 900, lines: 60, random: &random)
            try pair.send(frame, maximumBodyLength: TileUpdateFormat.minimumBodyLength, "page \(page) in parts")
        }
    }

    @Test("colourful content next to text falls back to the tile encodings, still exact")
    func colourfulContent() throws {
        let font = TextPages(characters: 60, seed: 15)
        var random = SeededRandom(seed: 16)
        var pair = CodecPair(glyphs: true)
        for step in 0..<6 {
            var frame = font.page(width: 384, height: 256, lines: 16, random: &random)
            // A 96×64 patch of 24-bit noise on the left half.
            for y in 64..<128 {
                for x in 32..<128 {
                    let offset = (y * frame.width + x) * 4
                    frame.pixels[offset] = UInt8(random.int(0...255))
                    frame.pixels[offset + 1] = UInt8(random.int(0...255))
                    frame.pixels[offset + 2] = UInt8(random.int(0...255))
                }
            }
            let statistics = try #require(try pair.send(frame, "step \(step)"))
            #expect(statistics.rawTiles + statistics.rleTiles > 0, "step \(step): \(statistics)")
            #expect(statistics.glyphRects > 0, "step \(step): \(statistics)")
        }
    }

    // MARK: - Malformed glyphs rectangles (§7.7)

    /// A 16×8 decoder after a valid glyphs update that defined slot 5 (a 2×2 glyph).
    static func prepared() throws -> (TileDecoder, HandmadeStream, Framebuffer) {
        let decoder = TileDecoder()
        decoder.resize(width: 16, height: 8)
        let stream = HandmadeStream()
        var raw = partHeader(width: 16, height: 8, rects: 1)
        raw += rectHeader(0x07, x: 0, y: 0, width: 16, height: 8) + [0x11, 0x22, 0x33]
        // One band at row 1 with one glyph: advance 3, define slot 5 as 2×2, 2 colours, black and white, indices 10 / 01.
        raw += [0x00, 0x01, 0x00, 0x01, 0x00, 0x01, 0x03, 0x80, 0x05, 2, 2, 2, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0x80, 0x40]
        try decoder.apply(try stream.body(raw))
        return (decoder, stream, try #require(decoder.framebuffer))
    }

    @Test("a defined glyph is drawn where its band and advance say, over the background")
    func definitionDraws() throws {
        let (decoder, stream, frame) = try Self.prepared()
        func pixel(_ x: Int, _ y: Int, in frame: Framebuffer) -> UInt32 {
            let offset = (y * frame.width + x) * 4
            return UInt32(frame.pixels[offset]) | UInt32(frame.pixels[offset + 1]) << 8 | UInt32(frame.pixels[offset + 2]) << 16
        }
        #expect(pixel(0, 0, in: frame) == 0x33_2211)
        #expect(pixel(3, 1, in: frame) == 0xFF_FFFF && pixel(4, 1, in: frame) == 0x00_0000)
        #expect(pixel(3, 2, in: frame) == 0x00_0000 && pixel(4, 2, in: frame) == 0xFF_FFFF)
        #expect(pixel(5, 1, in: frame) == 0x33_2211)
        // A later update draws slot 5 by number only, twice in one band (advances 0 and 10).
        var raw = partHeader(width: 16, height: 8, rects: 1)
        raw += rectHeader(0x07, x: 2, y: 4, width: 14, height: 4) + [0, 0, 0xFF]
        raw += [0x00, 0x01, 0x00, 0x02, 0x00, 0x02, 0x00, 0x00, 0x05, 0x0A, 0x00, 0x05]
        try decoder.apply(try stream.body(raw))
        let after = try #require(decoder.framebuffer)
        #expect(pixel(2, 6, in: after) == 0xFF_FFFF && pixel(3, 6, in: after) == 0 && pixel(3, 7, in: after) == 0xFF_FFFF)
        #expect(pixel(12, 6, in: after) == 0xFF_FFFF && pixel(13, 7, in: after) == 0xFF_FFFF)
        #expect(pixel(15, 4, in: after) == 0xFF_0000 && pixel(3, 1, in: after) == 0xFF_FFFF)
    }

    /// Applies `rect` (one glyphs rectangle on the 16×8 screen) after `prepared()` and
    /// expects `kind`, with the framebuffer untouched.
    func expectRefused(_ rect: [UInt8], _ kind: ScreenCodecError.Kind, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let (decoder, stream, before) = try Self.prepared()
        let error = #expect(throws: ScreenCodecError.self, sourceLocation: sourceLocation) {
            try decoder.apply(try stream.body(partHeader(width: 16, height: 8, rects: 1) + rect))
        }
        #expect(error?.kind == kind, "\(String(describing: error))", sourceLocation: sourceLocation)
        #expect(decoder.framebuffer == before, "a refused part leaves the framebuffer as it was", sourceLocation: sourceLocation)
    }

    @Test("malformed glyphs rectangles are refused with their kind, leaving the framebuffer as it was")
    func malformed() throws {
        let header = rectHeader(0x07, x: 0, y: 0, width: 16, height: 8) + [1, 2, 3]
        // A slot never defined.
        try self.expectRefused(header + [0, 1, 0, 0, 0, 1, 0, 0x00, 0x06], .unknownGlyph)
        // Slot 2,048 (0x0800), drawn or defined.
        try self.expectRefused(header + [0, 1, 0, 0, 0, 1, 0, 0x08, 0x00], .badGlyph)
        try self.expectRefused(header + [0, 1, 0, 0, 0, 1, 0, 0x88, 0x00, 1, 1, 1, 0, 0, 0, 0], .badGlyph)
        // Definitions of 0 and 65 pixels wide.
        try self.expectRefused(header + [0, 1, 0, 0, 0, 1, 0, 0x80, 0x01, 0, 1, 1, 0, 0, 0], .badGlyph)
        try self.expectRefused(header + [0, 1, 0, 0, 0, 1, 0, 0x80, 0x01, 65, 1, 1, 0, 0, 0] + [UInt8](repeating: 0, count: 9), .badGlyph)
        // A palette of 17 colours; a raw definition (n = 0) one pixel short.
        try self.expectRefused(header + [0, 1, 0, 0, 0, 1, 0, 0x80, 0x01, 1, 1, 17] + [UInt8](repeating: 0, count: 52), .badPaletteSize)
        try self.expectRefused(header + [0, 1, 0, 0, 0, 1, 0, 0x80, 0x01, 2, 1, 0, 1, 2, 3], .truncated)
        // Index 2 of a 3-colour palette is fine, index 3 is not.
        try self.expectRefused(header + [0, 1, 0, 0, 0, 1, 0, 0x80, 0x01, 1, 1, 3] + [UInt8](repeating: 0, count: 9) + [0xC0], .badPaletteIndex)
        // Slot 5 (2×2) at column 15 of a 16-wide rectangle, or in a band at row 7.
        try self.expectRefused(header + [0, 1, 0, 0, 0, 1, 15, 0x00, 0x05], .rectOutOfBounds)
        try self.expectRefused(header + [0, 1, 0, 7, 0, 1, 0, 0x00, 0x05], .rectOutOfBounds)
        // Advances add up: 8 + 7 puts the second 2×2 glyph past the edge.
        try self.expectRefused(header + [0, 1, 0, 0, 0, 2, 8, 0x00, 0x05, 7, 0x00, 0x05], .rectOutOfBounds)
        // A band announcing two glyphs with one present, and a definition cut short.
        try self.expectRefused(header + [0, 1, 0, 0, 0, 2, 0, 0x00, 0x05], .truncated)
        try self.expectRefused(header + [0, 1, 0, 0, 0, 1, 0, 0x80, 0x01, 2, 2, 2, 0, 0, 0, 1, 1, 1, 0x80], .truncated)
    }

    @Test("a slot defined earlier in the same part can be drawn, and a later definition of it wins")
    func definitionsInOrder() throws {
        let (decoder, stream, _) = try Self.prepared()
        var raw = partHeader(width: 16, height: 8, rects: 2)
        // Rectangle 1 redefines slot 5 as a 1×1 red glyph; rectangle 2 draws slot 5 at (9, 6).
        raw += rectHeader(0x07, x: 0, y: 0, width: 4, height: 4) + [0, 0, 0] + [0, 1, 0, 0, 0, 1, 0, 0x80, 0x05, 1, 1, 1, 0, 0, 0xFF, 0]
        raw += rectHeader(0x07, x: 8, y: 5, width: 4, height: 3) + [0, 0, 0] + [0, 1, 0, 1, 0, 1, 1, 0x00, 0x05]
        try decoder.apply(try stream.body(raw))
        let frame = try #require(decoder.framebuffer)
        let offset = (6 * 16 + 9) * 4
        #expect(Array(frame.pixels[offset..<offset + 4]) == [0, 0, 0xFF, 0], "slot 5 is the 1×1 red glyph now")
        // A 2×2 use of slot 5 would no longer fit at the rectangle's last column; the 1×1 does.
        var next = partHeader(width: 16, height: 8, rects: 1)
        next += rectHeader(0x07, x: 0, y: 0, width: 2, height: 1) + [0, 0, 0] + [0, 1, 0, 0, 0, 1, 1, 0x00, 0x05]
        try decoder.apply(try stream.body(next))
    }
}
