// The encoder's glyphs rectangles (PROTOCOL.md §7.4.7, §7.5): a run of changed tiles on a
// tile row, cut into bands by rows of background only and into glyphs by columns of
// background only; glyphs the viewer's table holds are drawn by slot, new ones defined.
// Text repeats a few shapes, so a page of new text costs a few bytes per character
// instead of its pixels.

/// A glyph of the planned rectangle: its left edge (from the rectangle's), width, hash,
/// and the slot that held it when planned (-1: it is defined).
struct PlannedGlyph {
    var x: Int
    var width: Int
    var hash: UInt64
    var slot: Int
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
    /// Bytes the rectangle takes before deflating: exact, unless two different glyphs of
    /// the rectangle share a 64-bit hash (then one more definition is written).
    var cost: Int
}

extension TileEncoder {
    /// The most distinct glyphs one glyphs rectangle uses: half the table, so that a
    /// definition never replaces a slot the same rectangle still draws from (the slot
    /// replaced is the least recently drawn, and this rectangle's are the most recent).
    static let maximumGlyphsPerRect = TileUpdateFormat.glyphSlots / 2

    /// Plans a glyphs rectangle over `box` (§7.5): nil when its pixels have more than
    /// 256 colours (a photo, not text), it would use more than
    /// ``maximumGlyphsPerRect`` distinct glyphs, or it would take `budget` bytes or more.
    /// Leaves the bands and glyphs in `plannedBands` and `plannedGlyphs` for
    /// ``writeGlyphs(_:new:table:statistics:)``.
    func planGlyphs(new: PixelView, box: TileRect, budget: Int, table: GlyphTable) -> GlyphPlan? {
        guard let background = self.background(new: new, box: box) else { return nil }
        self.plannedBands.removeAll(keepingCapacity: true)
        self.plannedGlyphs.removeAll(keepingCapacity: true)
        self.plannedDefinitions.removeAll(keepingCapacity: true)
        self.plannedSlots.removeAll(keepingCapacity: true)
        // Header, background, band count.
        var cost = TileUpdateFormat.rectHeaderLength + TileUpdateFormat.pixelLength + 2
        var ink = [Bool](repeating: false, count: box.width)
        var row = 0
        while row < box.height {
            guard Self.hasInk(new, x: box.x, y: box.y + row, width: box.width, background: background) else {
                row += 1
                continue
            }
            let top = row
            // The band's rows, and its columns with ink in one pass along them.
            for index in ink.indices { ink[index] = false }
            repeat {
                for column in 0..<box.width where new.rgb(box.x &+ column, box.y &+ row) != background { ink[column] = true }
                row += 1
            } while row < box.height && Self.hasInk(new, x: box.x, y: box.y + row, width: box.width, background: background)
            let first = self.plannedGlyphs.count
            cost += 4
            var column = 0
            var left = 0
            while column < box.width {
                guard ink[column] else {
                    column += 1
                    continue
                }
                let start = column
                while column < box.width, column - start < TileUpdateFormat.maximumGlyphSide, ink[column] { column += 1 }
                let (x, y, width, height) = (box.x + start, box.y + top, column - start, row - top)
                let hash = GlyphTable.hash(new, x: x, y: y, width: width, height: height)
                let slot = table.find(hash, new, x: x, y: y, width: width, height: height) ?? -1
                self.plannedGlyphs.append(PlannedGlyph(x: start, width: width, hash: hash, slot: slot))
                cost += TileUpdateFormat.countBytes(start - left) + 2
                left = start
                if slot >= 0 {
                    self.plannedSlots.insert(slot)
                } else if !self.isPlannedAlready(hash, new, x: x, y: y, width: width, height: height) {
                    cost += self.definitionLength(new: new, x: x, y: y, width: width, height: height)
                }
                if cost >= budget || self.plannedSlots.count + self.plannedDefinitions.count > Self.maximumGlyphsPerRect { return nil }
            }
            self.plannedBands.append(PlannedBand(top: top, height: row - top, glyphs: first..<self.plannedGlyphs.count))
        }
        return GlyphPlan(box: box, background: background, cost: cost)
    }

    /// Whether the same glyph is already planned as a definition in this rectangle (then
    /// this one draws it by slot); else notes this one as a definition.
    private func isPlannedAlready(_ hash: UInt64, _ new: PixelView, x: Int, y: Int, width: Int, height: Int) -> Bool {
        if let earlier = self.plannedDefinitions[hash] {
            return earlier.width == width && earlier.height == height
                && GlyphTable.samePixels(new, (earlier.x, earlier.y), (x, y), width: width, height: height)
        }
        self.plannedDefinitions[hash] = TileRect(x: x, y: y, width: width, height: height)
        return false
    }

    /// Writes the planned glyphs rectangle, defining into `table` the glyphs it does not
    /// hold. The slots the plan found are marked drawn first, so that no definition of
    /// this rectangle replaces them (``maximumGlyphsPerRect``).
    func writeGlyphs(_ plan: GlyphPlan, new: PixelView, table: inout GlyphTable, statistics: inout TileUpdateStatistics) {
        for glyph in self.plannedGlyphs where glyph.slot >= 0 { table.draw(glyph.slot) }
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
                // A glyph the plan did not find may have been defined earlier in this rectangle.
                let held = glyph.slot >= 0 ? glyph.slot : table.find(glyph.hash, new, x: x, y: y, width: glyph.width, height: band.height)
                if let slot = held {
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

    /// The bytes of a definition of the glyph at (`x`, `y`): with its palette when it
    /// has at most 16 colours, else raw.
    private func definitionLength(new: PixelView, x: Int, y: Int, width: Int, height: Int) -> Int {
        guard let paletteSize = self.glyphPalette(new: new, x: x, y: y, width: width, height: height) else {
            return 3 + width * height * TileUpdateFormat.pixelLength
        }
        let bits = TileUpdateFormat.indexBits(paletteSize: paletteSize)
        return 3 + paletteSize * TileUpdateFormat.pixelLength + TileUpdateFormat.packedRowLength(width: width, bits: bits) * height
    }

    /// Fills `paletteColours` with the glyph's colours and `tileIndices` with its pixels'
    /// indices; returns the number of colours, or nil above 16.
    private func glyphPalette(new: PixelView, x: Int, y: Int, width: Int, height: Int) -> Int? {
        let palette = self.paletteColours
        let indices = self.tileIndices
        var paletteSize = 0
        var pixel = 0
        for row in 0..<height {
            for column in 0..<width {
                let colour = new.rgb(x &+ column, y &+ row)
                var found = 0
                while found < paletteSize, palette[found] != colour { found += 1 }
                if found == paletteSize {
                    if paletteSize == TileUpdateFormat.maximumPaletteSize { return nil }
                    palette[paletteSize] = colour
                    paletteSize += 1
                }
                indices[pixel] = UInt8(truncatingIfNeeded: found)
                pixel += 1
            }
        }
        return paletteSize
    }

    /// A definition (§7.4.7): sides, then the glyph's own palette (1…16 colours) and
    /// packed indices, or n = 0 and its pixels raw (anti-aliased text has more colours).
    private func writeGlyphDefinition(new: PixelView, x: Int, y: Int, width: Int, height: Int) {
        guard let paletteSize = self.glyphPalette(new: new, x: x, y: y, width: width, height: height) else {
            self.rects.reserve(3 + width * height * TileUpdateFormat.pixelLength)
            self.rects.append(UInt8(width))
            self.rects.append(UInt8(height))
            self.rects.append(0)
            for row in 0..<height {
                for column in 0..<width { self.rects.appendPixel(new.rgb(x &+ column, y &+ row)) }
            }
            return
        }
        let palette = self.paletteColours
        let bits = TileUpdateFormat.indexBits(paletteSize: paletteSize)
        let rowLength = TileUpdateFormat.packedRowLength(width: width, bits: bits)
        self.rects.reserve(3 + paletteSize * TileUpdateFormat.pixelLength + rowLength * height)
        self.rects.append(UInt8(width))
        self.rects.append(UInt8(height))
        self.rects.append(UInt8(paletteSize))
        for entry in 0..<paletteSize { self.rects.appendPixel(palette[entry]) }
        self.writePacked(width: width, height: height, bits: bits, rowLength: rowLength)
    }

    /// The box's most common colour; nil when it has more than 256 colours. Counted in
    /// the encoder's ``GlyphHistogram``, moved out of the property while counting (no
    /// exclusive-access check per pixel) and left empty.
    private func background(new: PixelView, box: TileRect) -> UInt32? {
        var histogram = GlyphHistogram.moved
        swap(&histogram, &self.histogram)
        defer {
            histogram.clear()
            swap(&histogram, &self.histogram)
        }
        var lastColour: UInt32 = 0
        var lastSlot = -1
        for row in 0..<box.height {
            for column in 0..<box.width {
                let colour = new.rgb(box.x &+ column, box.y &+ row)
                if lastSlot < 0 || colour != lastColour {
                    guard let slot = histogram.slot(for: colour) else { return nil }
                    lastSlot = slot
                    lastColour = colour
                }
                histogram.counts[lastSlot] &+= 1
            }
        }
        return histogram.mostCommon()
    }

    /// Whether row `y` has a pixel other than `background` in `width` pixels from `x`.
    @inline(__always)
    private static func hasInk(_ frame: PixelView, x: Int, y: Int, width: Int, background: UInt32) -> Bool {
        for column in 0..<width where frame.rgb(x &+ column, y) != background { return true }
        return false
    }
}

/// Colour counts for ``TileEncoder/planGlyphs(new:box:budget:table:)``: at most 256
/// colours in an open-addressed table twice that size.
struct GlyphHistogram {
    static let capacity = 512
    static let maximumColours = 256
    /// A colour's entry; `0xFFFF_FFFF` (not a 24-bit colour) marks an empty one.
    var colours = [UInt32](repeating: 0xFFFF_FFFF, count: Self.capacity)
    var counts = [Int](repeating: 0, count: Self.capacity)
    var used: [Int] = []

    /// What stays in the encoder's property while its histogram is in use: no storage.
    static let moved = GlyphHistogram(colours: [], counts: [], used: [])

    /// The entry of `colour`, added if new; nil when that would be the 257th colour.
    mutating func slot(for colour: UInt32) -> Int? {
        var slot = Int((colour &* 0x9E37_79B1) >> 23) & (Self.capacity - 1)
        while self.colours[slot] != colour {
            if self.colours[slot] == 0xFFFF_FFFF {
                guard self.used.count < Self.maximumColours else { return nil }
                self.colours[slot] = colour
                self.used.append(slot)
                return slot
            }
            slot = (slot + 1) & (Self.capacity - 1)
        }
        return slot
    }

    func mostCommon() -> UInt32? {
        guard var best = self.used.first else { return nil }
        for slot in self.used where self.counts[slot] > self.counts[best] { best = slot }
        return self.colours[best]
    }

    mutating func clear() {
        for slot in self.used {
            self.colours[slot] = 0xFFFF_FFFF
            self.counts[slot] = 0
        }
        self.used.removeAll(keepingCapacity: true)
    }
}
