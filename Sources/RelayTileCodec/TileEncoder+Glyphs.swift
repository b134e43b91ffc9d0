// The encoder's glyphs rectangles (PROTOCOL.md §7.4.7, §7.5): a run of changed tiles on a
// tile row, cut into bands by rows of background only and into glyphs by columns of
// background only; glyphs the viewer's table holds are drawn by slot, new ones defined.
// Text repeats a few shapes, so a page of new text costs a few bytes per character
// instead of its pixels.

/// A glyph of the planned rectangle: its left edge (from the rectangle's), width and hash.
struct PlannedGlyph {
    var x: Int
    var width: Int
    var hash: UInt64
}

/// A band of the planned rectangle: its rows (from the rectangle's top) and its glyphs.
struct PlannedBand {
    var top: Int
    var height: Int
    var glyphs: Range<Int>
}

/// The glyphs rectangle planned for one box, ready to be written.
struct GlyphPlan {
    var box: TileRect
    var background: UInt32
    /// Bytes the rectangle takes before deflating (an estimate where definitions repeat).
    var cost: Int
}

extension TileEncoder {
    /// Plans a glyphs rectangle over `box` (§7.5): nil when its pixels have more than 16
    /// colours or it would take `budget` bytes or more. Leaves the bands and glyphs in
    /// `plannedBands` and `plannedGlyphs` for ``writeGlyphs(_:new:statistics:)``.
    func planGlyphs(new: PixelView, box: TileRect, budget: Int, table: GlyphTable) -> GlyphPlan? {
        guard let (background, colours) = self.background(new: new, box: box) else { return nil }
        let bits = TileUpdateFormat.indexBits(paletteSize: max(colours, 2))
        self.plannedBands.removeAll(keepingCapacity: true)
        self.plannedGlyphs.removeAll(keepingCapacity: true)
        self.plannedDefinitions.removeAll(keepingCapacity: true)
        // Header, background, band count.
        var cost = TileUpdateFormat.rectHeaderLength + TileUpdateFormat.pixelLength + 2
        var row = 0
        while row < box.height {
            guard Self.hasInk(new, x: box.x, y: box.y + row, width: box.width, background: background) else {
                row += 1
                continue
            }
            let top = row
            while row < box.height, Self.hasInk(new, x: box.x, y: box.y + row, width: box.width, background: background) { row += 1 }
            let first = self.plannedGlyphs.count
            cost += 4
            var column = 0
            var left = 0
            while column < box.width {
                guard Self.columnHasInk(new, x: box.x + column, y: box.y + top, height: row - top, background: background) else {
                    column += 1
                    continue
                }
                let start = column
                while column < box.width, column - start < TileUpdateFormat.maximumGlyphSide,
                    Self.columnHasInk(new, x: box.x + column, y: box.y + top, height: row - top, background: background)
                {
                    column += 1
                }
                let (x, y, width, height) = (box.x + start, box.y + top, column - start, row - top)
                let hash = GlyphTable.hash(new, x: x, y: y, width: width, height: height)
                self.plannedGlyphs.append(PlannedGlyph(x: start, width: width, hash: hash))
                cost += TileUpdateFormat.countBytes(start - left) + 2
                left = start
                if table.find(hash, new, x: x, y: y, width: width, height: height) == nil, self.plannedDefinitions.insert(hash).inserted {
                    cost += 3 + colours * TileUpdateFormat.pixelLength + TileUpdateFormat.packedRowLength(width: width, bits: bits) * height
                }
                if cost >= budget { return nil }
            }
            self.plannedBands.append(PlannedBand(top: top, height: row - top, glyphs: first..<self.plannedGlyphs.count))
        }
        return GlyphPlan(box: box, background: background, cost: cost)
    }

    /// Writes the planned glyphs rectangle, defining into `table` the glyphs it does not
    /// hold (looked up again glyph by glyph: a definition may have replaced a slot the
    /// plan found).
    func writeGlyphs(_ plan: GlyphPlan, new: PixelView, table: inout GlyphTable, statistics: inout TileUpdateStatistics) {
        let box = plan.box
        self.rects.reserve(TileUpdateFormat.rectHeaderLength + TileUpdateFormat.pixelLength + 2 + 4 * self.plannedBands.count)
        self.rects.append(RectEncoding.glyphs.rawValue)
        self.rects.appendU16(box.x)
        self.rects.appendU16(box.y)
        self.rects.appendU16(box.width)
        self.rects.appendU16(box.height)
        self.rects.appendPixel(plan.background)
        self.rects.appendU16(self.plannedBands.count)
        for band in self.plannedBands {
            self.rects.reserve(4)
            self.rects.appendU16(band.top)
            self.rects.appendU16(band.glyphs.count)
            var left = 0
            for glyph in self.plannedGlyphs[band.glyphs] {
                let (x, y) = (box.x + glyph.x, box.y + band.top)
                self.rects.reserve(TileUpdateFormat.countBytes(glyph.x - left) + 2)
                self.rects.appendCount(glyph.x - left)
                left = glyph.x
                if let slot = table.find(glyph.hash, new, x: x, y: y, width: glyph.width, height: band.height) {
                    table.draw(slot)
                    self.rects.appendU16(slot)
                    statistics.glyphsDrawn += 1
                    continue
                }
                let slot = table.define(glyph.hash, new, x: x, y: y, width: glyph.width, height: band.height)
                self.rects.appendU16(slot | TileUpdateFormat.glyphDefinitionFlag)
                self.writeGlyphDefinition(new: new, x: x, y: y, width: glyph.width, height: band.height)
                statistics.glyphsDefined += 1
            }
        }
        self.rectEnds.append(self.rects.count)
        statistics.glyphRects += 1
    }

    /// A definition (§7.4.7): sides, the glyph's own palette (1…16 colours), packed indices.
    private func writeGlyphDefinition(new: PixelView, x: Int, y: Int, width: Int, height: Int) {
        let palette = self.paletteColours
        let indices = self.tileIndices
        var paletteSize = 0
        var pixel = 0
        for row in 0..<height {
            let line = new.row(y &+ row, x: x)
            for column in 0..<width {
                let colour = UInt32(littleEndian: line.loadUnaligned(fromByteOffset: column &* 4, as: UInt32.self)) & 0x00FF_FFFF
                var found = 0
                while found < paletteSize, palette[found] != colour { found += 1 }
                // The box has at most 16 colours, so a glyph inside it has too.
                if found == paletteSize {
                    palette[paletteSize] = colour
                    paletteSize += 1
                }
                indices[pixel] = UInt8(truncatingIfNeeded: found)
                pixel += 1
            }
        }
        let bits = TileUpdateFormat.indexBits(paletteSize: paletteSize)
        let rowLength = TileUpdateFormat.packedRowLength(width: width, bits: bits)
        self.rects.reserve(3 + paletteSize * TileUpdateFormat.pixelLength + rowLength * height)
        self.rects.append(UInt8(width))
        self.rects.append(UInt8(height))
        self.rects.append(UInt8(paletteSize))
        for entry in 0..<paletteSize { self.rects.appendPixel(palette[entry]) }
        self.writePacked(width: width, height: height, bits: bits, rowLength: rowLength)
    }

    /// The box's most common colour and its number of colours; nil above 16 colours.
    private func background(new: PixelView, box: TileRect) -> (UInt32, Int)? {
        let palette = self.paletteColours
        var counts = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        return withUnsafeMutableBytes(of: &counts) { raw -> (UInt32, Int)? in
            let count = raw.bindMemory(to: Int.self)
            var size = 0
            var last = -1
            for row in 0..<box.height {
                let line = new.row(box.y &+ row, x: box.x)
                for column in 0..<box.width {
                    let colour = UInt32(littleEndian: line.loadUnaligned(fromByteOffset: column &* 4, as: UInt32.self)) & 0x00FF_FFFF
                    if last < 0 || palette[last] != colour {
                        last = 0
                        while last < size, palette[last] != colour { last += 1 }
                        if last == size {
                            if size == TileUpdateFormat.maximumPaletteSize { return nil }
                            palette[size] = colour
                            size += 1
                        }
                    }
                    count[last] += 1
                }
            }
            var most = 0
            for entry in 1..<size where count[entry] > count[most] { most = entry }
            return (palette[most], size)
        }
    }

    /// Whether row `y` has a pixel other than `background` in `width` pixels from `x`.
    @inline(__always)
    private static func hasInk(_ frame: PixelView, x: Int, y: Int, width: Int, background: UInt32) -> Bool {
        let line = frame.row(y, x: x)
        for column in 0..<width
        where UInt32(littleEndian: line.loadUnaligned(fromByteOffset: column &* 4, as: UInt32.self)) & 0x00FF_FFFF != background {
            return true
        }
        return false
    }

    /// Whether column `x` has a pixel other than `background` in `height` rows from `y`.
    @inline(__always)
    private static func columnHasInk(_ frame: PixelView, x: Int, y: Int, height: Int, background: UInt32) -> Bool {
        for row in 0..<height {
            let pixel = UInt32(littleEndian: frame.row(y &+ row, x: x).loadUnaligned(as: UInt32.self)) & 0x00FF_FFFF
            if pixel != background { return true }
        }
        return false
    }
}
