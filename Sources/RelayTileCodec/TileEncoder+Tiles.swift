#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// The encoder's tile rectangles (PROTOCOL.md §7.4.2–§7.4.6, §7.5): each changed tile that
// no copy covers, cut to the part that changed, written with the smallest encoding its
// content allows; neighbouring solid tiles of one colour become one rectangle.

/// The solid rectangle written last, while the next tile may continue it: a solid tile
/// right of it with the same colour, top and height widens it instead of adding another
/// rectangle (§7.5).
struct SolidRun {
    /// Where its rectangle header starts in the encoder's `rects`.
    var offset: Int
    var x: Int
    /// One past its right edge.
    var end: Int
    var y: Int
    var height: Int
    var colour: UInt32

    /// True when a solid tile at (`x`, `y`), `height` rows high, of `colour` continues it.
    func isContinued(x: Int, y: Int, height: Int, colour: UInt32) -> Bool {
        self.end == x && self.y == y && self.height == height && self.colour == colour
    }
}

/// Changed tiles side by side on a tile row, as they were encoded: where their
/// rectangles start and the statistics before them, so that one glyphs rectangle over
/// their changed pixels can replace them (§7.5).
struct TileRun {
    var rectsStart: Int
    var endsStart: Int
    var statistics: TileUpdateStatistics
    /// The grid index of the run's last tile, and the bounding box of its tiles' changed parts.
    var last: Int
    var box: TileRect

    /// True when tile `index` is the next one on the same tile row.
    func isContinued(by index: Int, columns: Int) -> Bool {
        index == self.last + 1 && index % columns != 0
    }

    func adding(_ index: Int, _ rect: TileRect) -> TileRun {
        var run = self
        run.last = index
        let right = max(self.box.x + self.box.width, rect.x + rect.width)
        let bottom = max(self.box.y + self.box.height, rect.y + rect.height)
        run.box.x = min(self.box.x, rect.x)
        run.box.y = min(self.box.y, rect.y)
        run.box.width = right - run.box.x
        run.box.height = bottom - run.box.y
        return run
    }
}

extension TileEncoder {
    /// Encodes the changed tiles no copy covers, in raster order. With the frame the
    /// viewer holds at hand (`old`), only the part of a tile that changed is sent (a
    /// keystroke is a glyph, not a tile).
    func encodeChangedTiles(new: PixelView, old: PixelView?, grid: TileGrid, statistics: inout TileUpdateStatistics) {
        var lastSolid: SolidRun? = nil
        var run: TileRun? = nil
        for index in 0..<grid.count {
            guard self.dirty[index] else { continue }
            var rect = grid.rect(index, width: new.width, height: new.height)
            if let old { rect = Self.changedPart(of: rect, old: old, new: new) }
            if self.glyphTable != nil {
                if let current = run, !current.isContinued(by: index, columns: grid.columns) {
                    if self.replaceWithGlyphs(current, new: new, statistics: &statistics) { lastSolid = nil }
                    run = nil
                }
                run =
                    run.map { $0.adding(index, rect) }
                    ?? TileRun(rectsStart: self.rects.count, endsStart: self.rectEnds.count, statistics: statistics, last: index, box: rect)
            }
            let (x, y, width, height) = (rect.x, rect.y, rect.width, rect.height)
            guard let colour = self.encodeTile(new: new, x: x, y: y, width: width, height: height, statistics: &statistics) else {
                lastSolid = nil
                continue
            }
            if var solid = lastSolid, solid.isContinued(x: x, y: y, height: height, colour: colour) {
                // Undo the rectangle just written and widen the previous one.
                self.rects.count -= TileUpdateFormat.rectHeaderLength + TileUpdateFormat.pixelLength
                self.rectEnds.removeLast()
                statistics.solidRects -= 1
                solid.end = x + width
                self.rects.setU16(solid.end - solid.x, at: solid.offset + TileUpdateFormat.rectWidthOffset)
                lastSolid = solid
            } else {
                let offset = self.rects.count - TileUpdateFormat.rectHeaderLength - TileUpdateFormat.pixelLength
                lastSolid = SolidRun(offset: offset, x: x, end: x + width, y: y, height: height, colour: colour)
            }
        }
        if let run { self.replaceWithGlyphs(run, new: new, statistics: &statistics) }
    }

    /// Writes a run of changed tiles as one glyphs rectangle over their changed pixels,
    /// in place of their tile rectangles, when that is smaller (§7.5). Returns whether
    /// it did.
    @discardableResult
    private func replaceWithGlyphs(_ run: TileRun, new: PixelView, statistics: inout TileUpdateStatistics) -> Bool {
        guard var table = self.glyphTable else { return false }
        // Smaller than the tiles, and small enough for one part (§7.6), with room for
        // one definition the plan may miss (two glyphs of one hash).
        let budget = min(self.rects.count - run.rectsStart, self.partBudget - TileUpdateFormat.maximumGlyphDefinitionLength)
        guard let plan = self.planGlyphs(new: new, box: run.box, budget: budget, table: table) else { return false }
        self.rects.count = run.rectsStart
        self.rectEnds.removeLast(self.rectEnds.count - run.endsStart)
        statistics = run.statistics
        // Moved out of the property while written, so that it is not copied.
        self.glyphTable = nil
        self.writeGlyphs(plan, new: new, table: &table, statistics: &statistics)
        self.glyphTable = table
        return true
    }

    /// Writes a copy rectangle (§7.4.1): its header, then the source's top-left corner.
    func writeCopy(_ copy: TileCopy) {
        let rect = copy.rect
        self.rects.reserve(TileUpdateFormat.rectHeaderLength + 4)
        self.writeRectHeader(.copy, x: rect.x, y: rect.y, width: rect.width, height: rect.height)
        self.rects.appendU16(rect.x - copy.vector.dx)
        self.rects.appendU16(rect.y - copy.vector.dy)
        self.rectEnds.append(self.rects.count)
    }

    /// The bounding box of the pixels that differ inside a changed tile: rows by
    /// memcmp, then columns on those rows.
    private static func changedPart(of tile: TileRect, old: PixelView, new: PixelView) -> TileRect {
        let length = tile.width &* 4
        var top = tile.y
        while top < tile.y + tile.height - 1, memcmp(old.row(top, x: tile.x), new.row(top, x: tile.x), length) == 0 { top += 1 }
        var bottom = tile.y + tile.height - 1
        while bottom > top, memcmp(old.row(bottom, x: tile.x), new.row(bottom, x: tile.x), length) == 0 { bottom -= 1 }
        var left = tile.x + tile.width
        var right = tile.x - 1
        for y in top...bottom {
            let oldRow = old.row(y)
            let newRow = new.row(y)
            var x = tile.x
            while x < left, oldRow.loadUnaligned(fromByteOffset: x &* 4, as: UInt32.self) == newRow.loadUnaligned(fromByteOffset: x &* 4, as: UInt32.self) {
                x += 1
            }
            left = min(left, x)
            x = tile.x + tile.width - 1
            while x > right, oldRow.loadUnaligned(fromByteOffset: x &* 4, as: UInt32.self) == newRow.loadUnaligned(fromByteOffset: x &* 4, as: UInt32.self) {
                x -= 1
            }
            right = max(right, x)
        }
        // A tile marked changed has at least one differing pixel, so left <= right.
        return TileRect(x: left, y: top, width: max(1, right - left + 1), height: bottom - top + 1)
    }

    @inline(__always)
    private func writeRectHeader(_ encoding: RectEncoding, x: Int, y: Int, width: Int, height: Int) {
        self.rects.append(encoding.rawValue)
        self.rects.appendU16(x)
        self.rects.appendU16(y)
        self.rects.appendU16(width)
        self.rects.appendU16(height)
    }

    @inline(__always)
    private static func rgb(_ row: UnsafeRawPointer, _ x: Int) -> UInt32 {
        UInt32(littleEndian: row.loadUnaligned(fromByteOffset: x &* 4, as: UInt32.self)) & 0x00FF_FFFF
    }

    /// Encodes one tile with the smallest of the encodings its content allows (§7.5).
    /// Returns the colour when the tile was written as a solid rectangle.
    private func encodeTile(
        new: PixelView, x: Int, y: Int, width: Int, height: Int, statistics: inout TileUpdateStatistics
    ) -> UInt32? {
        // One pass: the palette (while it has at most 16 colours, with each pixel's
        // index), and the byte costs of both RLE encodings.
        let palette = self.paletteColours
        let indices = self.tileIndices
        var paletteSize = 0
        var paletteOverflow = false
        var runColour = Self.rgb(new.row(y, x: x), 0)
        var runIndex: UInt8 = 0
        var runLength = 0
        var paletteRLECost = 0
        var rleCost = 0
        var runs = 0
        palette[0] = runColour
        paletteSize = 1
        var pixel = 0
        for row in 0..<height {
            let line = new.row(y &+ row, x: x)
            for column in 0..<width {
                let colour = Self.rgb(line, column)
                if colour == runColour {
                    runLength &+= 1
                } else {
                    paletteRLECost &+= runLength == 1 ? 1 : 1 &+ TileUpdateFormat.runLengthBytes(runLength)
                    rleCost &+= 3 &+ TileUpdateFormat.runLengthBytes(runLength)
                    runs &+= 1
                    runColour = colour
                    runLength = 1
                    if !paletteOverflow {
                        var found = -1
                        for entry in 0..<paletteSize where palette[entry] == colour {
                            found = entry
                            break
                        }
                        if found < 0 {
                            if paletteSize == TileUpdateFormat.maximumPaletteSize {
                                paletteOverflow = true
                            } else {
                                palette[paletteSize] = colour
                                found = paletteSize
                                paletteSize &+= 1
                            }
                        }
                        runIndex = UInt8(truncatingIfNeeded: found)
                    }
                }
                if !paletteOverflow { indices[pixel] = runIndex }
                pixel &+= 1
            }
        }
        paletteRLECost &+= runLength == 1 ? 1 : 1 &+ TileUpdateFormat.runLengthBytes(runLength)
        rleCost &+= 3 &+ TileUpdateFormat.runLengthBytes(runLength)
        runs &+= 1
        let pixels = width * height

        if runs == 1 {
            self.rects.reserve(TileUpdateFormat.rectHeaderLength + 3)
            self.writeRectHeader(.solid, x: x, y: y, width: width, height: height)
            self.rects.appendPixel(runColour)
            self.rectEnds.append(self.rects.count)
            statistics.solidRects += 1
            return runColour
        }

        if !paletteOverflow {
            let bits = TileUpdateFormat.indexBits(paletteSize: paletteSize)
            let rowLength = TileUpdateFormat.packedRowLength(width: width, bits: bits)
            let packedCost = rowLength * height
            self.rects.reserve(TileUpdateFormat.rectHeaderLength + 1 + 3 * paletteSize + max(packedCost, paletteRLECost))
            self.writeRectHeader(paletteRLECost < packedCost ? .paletteRLE : .packedPalette, x: x, y: y, width: width, height: height)
            self.rects.append(UInt8(paletteSize))
            for entry in 0..<paletteSize { self.rects.appendPixel(palette[entry]) }
            if paletteRLECost < packedCost {
                self.writePaletteRuns(pixels: pixels)
                statistics.paletteRLETiles += 1
            } else {
                self.writePacked(width: width, height: height, bits: bits, rowLength: rowLength)
                statistics.packedPaletteTiles += 1
            }
            self.rectEnds.append(self.rects.count)
            return nil
        }

        if rleCost < pixels * 3 {
            self.rects.reserve(TileUpdateFormat.rectHeaderLength + rleCost)
            self.writeRectHeader(.rle, x: x, y: y, width: width, height: height)
            var colour = Self.rgb(new.row(y, x: x), 0)
            var length = 0
            for row in 0..<height {
                let line = new.row(y &+ row, x: x)
                for column in 0..<width {
                    let next = Self.rgb(line, column)
                    if next == colour {
                        length &+= 1
                    } else {
                        self.rects.appendPixel(colour)
                        self.rects.appendRunLength(length)
                        colour = next
                        length = 1
                    }
                }
            }
            self.rects.appendPixel(colour)
            self.rects.appendRunLength(length)
            statistics.rleTiles += 1
        } else {
            self.rects.reserve(TileUpdateFormat.rectHeaderLength + pixels * 3)
            self.writeRectHeader(.raw, x: x, y: y, width: width, height: height)
            var out = self.rects.base + self.rects.count
            for row in 0..<height {
                let line = new.row(y &+ row, x: x).assumingMemoryBound(to: UInt8.self)
                for column in 0..<width {
                    let source = line + column &* 4
                    out[0] = source[0]
                    out[1] = source[1]
                    out[2] = source[2]
                    out += 3
                }
            }
            self.rects.count += pixels * 3
            statistics.rawTiles += 1
        }
        self.rectEnds.append(self.rects.count)
        return nil
    }

    /// §7.4.4: an index byte per run, with bit 7 set and a run length after it when the
    /// run is longer than one pixel.
    private func writePaletteRuns(pixels: Int) {
        let indices = self.tileIndices
        var start = 0
        while start < pixels {
            let index = indices[start]
            var end = start + 1
            while end < pixels, indices[end] == index { end += 1 }
            let length = end - start
            if length == 1 {
                self.rects.append(index)
            } else {
                self.rects.append(index | 0x80)
                self.rects.appendRunLength(length)
            }
            start = end
        }
    }

    /// §7.4.3: indices packed most significant bits first, each row starting on a byte.
    func writePacked(width: Int, height: Int, bits: Int, rowLength: Int) {
        let indices = self.tileIndices
        var out = self.rects.base + self.rects.count
        let perByte = 8 / bits
        for row in 0..<height {
            let rowIndices = indices + row * width
            var column = 0
            for _ in 0..<rowLength {
                var byte: UInt8 = 0
                for slot in 0..<perByte {
                    byte <<= UInt8(bits)
                    if column + slot < width { byte |= rowIndices[column + slot] }
                }
                out.pointee = byte
                out += 1
                column += perByte
            }
        }
        self.rects.count += rowLength * height
    }
}
