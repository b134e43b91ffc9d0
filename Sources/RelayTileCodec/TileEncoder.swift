public import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// What the last update held, for tests, benchmarks and the viewer's statistics.
public struct TileUpdateStatistics: Sendable, Hashable {
    /// Copy rectangles (§7.4.1) and the 64×64 grid tiles they cover.
    public var copyRects = 0
    public var copiedTiles = 0
    /// Rectangles per tile encoding (§7.4.2–§7.4.6); a solid rectangle may cover several
    /// neighbouring tiles of one colour.
    public var solidRects = 0
    public var packedPaletteTiles = 0
    public var paletteRLETiles = 0
    public var rawTiles = 0
    public var rleTiles = 0
    /// Inflated bytes (part headers and rectangles) and TileUpdate body bytes on the wire.
    public var inflatedBytes = 0
    public var bodyBytes = 0
    public var parts = 0

    public init() {}
}

/// The host's half of the tile-delta codec (PROTOCOL.md §7): turns successive frames into
/// TileUpdate bodies that carry only what changed.
///
/// It keeps the last frame it encoded — exactly what the viewer's ``TileDecoder`` holds
/// after applying the result — and one deflate stream for the session direction. Not
/// thread-safe; one encoder per viewer connection.
public final class TileEncoder {
    private let deflater: DeflateStream
    private var previous: Framebuffer?
    private let rects = ByteScratch(capacity: 256 * 1024)
    /// End offset in `rects` of each rectangle, so parts can be cut between rectangles.
    private var rectEnds: [Int] = []
    private var dirty: [Bool] = []
    private var copied: [Bool] = []
    private var motion = MotionSearch()
    /// The vectors that found copies last time: a scroll or a drag usually goes on.
    private var recentVectors: [MotionVector] = []
    /// The previous frame with this update's copies applied: what the viewer holds when
    /// the tile rectangles arrive, and what they are encoded against (§7.5).
    private var afterCopies: [UInt8] = []
    private var copies: [(TileRect, MotionVector)] = []
    private let paletteColours = UnsafeMutablePointer<UInt32>.allocate(capacity: TileUpdateFormat.maximumPaletteSize)
    private let tileIndices = UnsafeMutablePointer<UInt8>.allocate(
        capacity: TileUpdateFormat.tileSize * TileUpdateFormat.tileSize
    )
    private let allocator: ByteBufferAllocator

    /// Tests and the benchmark turn copy detection off to measure what it saves.
    var findsCopies = true

    /// What the last call to ``encode(_:requestID:fullRefresh:)`` produced.
    public private(set) var lastUpdateStatistics = TileUpdateStatistics()

    /// - Parameter compressionLevel: zlib's level, 0…9. Level 1 is the default: on
    ///   desktop content it is several times faster than 6 and within a few per cent of
    ///   its size, because the tile encodings already removed most redundancy
    ///   (benchmarks/RESULTS.md, "codec").
    public init(compressionLevel: Int32 = 1, allocator: ByteBufferAllocator = ByteBufferAllocator()) {
        precondition((0...9).contains(compressionLevel), "zlib compression levels are 0…9")
        self.deflater = DeflateStream(level: compressionLevel)
        self.allocator = allocator
    }

    deinit {
        self.paletteColours.deallocate()
        self.tileIndices.deallocate()
    }

    /// Encodes what changed in `frame` since the last frame this encoder encoded —
    /// everything when `fullRefresh` is true or the size changed — as one TileUpdate body
    /// (PROTOCOL.md §7) answering `requestID`. Returns nil when nothing changed and
    /// `fullRefresh` is false.
    ///
    /// The body has no size limit; a host that sends through a relay with a payload limit
    /// uses ``encodeParts(_:requestID:fullRefresh:maximumBodyLength:)`` instead.
    public func encode(_ frame: Framebuffer, requestID: UInt32, fullRefresh: Bool) throws(ScreenCodecError) -> ByteBuffer? {
        try self.encodeParts(frame, requestID: requestID, fullRefresh: fullRefresh, maximumBodyLength: .max).first
    }

    /// Like ``encode(_:requestID:fullRefresh:)``, split into bodies of at most
    /// `maximumBodyLength` bytes each (PROTOCOL.md §7.6), to be sent as consecutive
    /// TileUpdate messages; every body but the last says that more follow. Returns an
    /// empty array when nothing changed and `fullRefresh` is false.
    ///
    /// `maximumBodyLength` is the relay's payload limit from HelloAck. Below 32 KiB one
    /// raw tile may not fit a body, so a smaller limit throws `bodyLimitTooSmall` (a
    /// relay must announce at least 64 KiB, RelayWire's `Frame.minimumPayloadLimit`,
    /// PROTOCOL.md §5.1.2 and §7.6).
    public func encodeParts(
        _ frame: Framebuffer,
        requestID: UInt32,
        fullRefresh: Bool,
        maximumBodyLength: Int
    ) throws(ScreenCodecError) -> [ByteBuffer] {
        guard frame.width <= Int(UInt16.max), frame.height <= Int(UInt16.max) else {
            throw ScreenCodecError(.frameTooLarge, "a \(frame.width)×\(frame.height) frame does not fit u16 sides (§7.2)")
        }
        // The limit comes from the relay's HelloAck: a bad value is an error to report,
        // never a trap (REVIEW.md D2).
        guard maximumBodyLength >= TileUpdateFormat.minimumBodyLength else {
            throw ScreenCodecError(
                .bodyLimitTooSmall,
                "a TileUpdate body limit of \(maximumBodyLength) bytes cannot carry one raw 64×64 tile, which needs \(TileUpdateFormat.minimumBodyLength) (§7.6); pass the payload limit of the relay's HelloAck, which is at least 64 KiB (§5.1.2)"
            )
        }
        var statistics = TileUpdateStatistics()
        self.buildRects(frame, everything: fullRefresh, statistics: &statistics)
        self.previous = frame
        guard !self.rectEnds.isEmpty else {
            self.lastUpdateStatistics = statistics
            return []
        }
        let bodies = try self.deflateParts(
            frame: frame, requestID: requestID, maximumBodyLength: maximumBodyLength, statistics: &statistics
        )
        self.lastUpdateStatistics = statistics
        return bodies
    }

    // MARK: - Rectangles

    /// Fills `rects` and `rectEnds` with the update's rectangles (§7.4): copies first,
    /// then the changed tiles that no copy covers, in raster order (§7.5).
    private func buildRects(_ frame: Framebuffer, everything: Bool, statistics: inout TileUpdateStatistics) {
        self.rects.count = 0
        self.rectEnds.removeAll(keepingCapacity: true)
        let tile = TileUpdateFormat.tileSize
        let columns = (frame.width + tile - 1) / tile
        let rows = (frame.height + tile - 1) / tile
        let tileCount = columns * rows
        if self.dirty.count != tileCount {
            self.dirty = Array(repeating: false, count: tileCount)
            self.copied = Array(repeating: false, count: tileCount)
        }
        let reference = (everything ? nil : self.previous).flatMap {
            $0.width == frame.width && $0.height == frame.height ? $0 : nil
        }

        frame.pixels.withUnsafeBytes { newBytes in
            let new = PixelView(base: newBytes.baseAddress!, width: frame.width, height: frame.height)
            for index in 0..<tileCount { self.copied[index] = false }
            if let reference {
                reference.pixels.withUnsafeBytes { oldBytes in
                    // Same storage: nothing can have changed (and memcmp would say so slowly).
                    if oldBytes.baseAddress == newBytes.baseAddress {
                        for index in 0..<tileCount { self.dirty[index] = false }
                        return
                    }
                    let old = PixelView(base: oldBytes.baseAddress!, width: frame.width, height: frame.height)
                    self.markChangedTiles(old: old, new: new, columns: columns)
                    self.copies.removeAll(keepingCapacity: true)
                    if self.findsCopies {
                        self.findCopies(old: old, new: new, columns: columns, rows: rows, statistics: &statistics)
                    }
                    if self.copies.isEmpty {
                        self.encodeChangedTiles(new: new, old: old, columns: columns, rows: rows, statistics: &statistics)
                        return
                    }
                    // Copies need not follow the tile grid, so tiles they cover only in
                    // part are compared again, against the frame the copies produce.
                    if self.afterCopies.count != oldBytes.count { self.afterCopies = [UInt8](repeating: 0, count: oldBytes.count) }
                    self.afterCopies.withUnsafeMutableBytes { after in
                        after.baseAddress!.copyMemory(from: oldBytes.baseAddress!, byteCount: oldBytes.count)
                        for (rect, vector) in self.copies {
                            for row in 0..<rect.height {
                                (after.baseAddress! + (rect.y + row) * new.stride + rect.x * 4).copyMemory(
                                    from: old.row(rect.y + row - vector.dy, x: rect.x - vector.dx), byteCount: rect.width * 4
                                )
                            }
                        }
                        let reference = PixelView(base: UnsafeRawPointer(after.baseAddress!), width: frame.width, height: frame.height)
                        self.markChangedTiles(old: reference, new: new, columns: columns)
                        for index in 0..<tileCount { self.copied[index] = false }
                        self.encodeChangedTiles(new: new, old: reference, columns: columns, rows: rows, statistics: &statistics)
                    }
                }
            } else {
                for index in 0..<tileCount { self.dirty[index] = true }
                self.encodeChangedTiles(new: new, old: nil, columns: columns, rows: rows, statistics: &statistics)
            }
        }
    }

    /// Marks the tiles whose pixels differ between the frames: whole rows by memcmp
    /// first (most rows are unchanged), then the 256-byte tile segments of the rows that
    /// differ.
    private func markChangedTiles(old: PixelView, new: PixelView, columns: Int) {
        let tile = TileUpdateFormat.tileSize
        for index in self.dirty.indices { self.dirty[index] = false }
        self.dirty.withUnsafeMutableBufferPointer { dirty in
            for y in 0..<new.height {
                let oldRow = old.row(y)
                let newRow = new.row(y)
                if memcmp(oldRow, newRow, new.stride) == 0 { continue }
                let rowBase = (y / tile) * columns
                for column in 0..<columns where !dirty[rowBase + column] {
                    let x = column * tile
                    let length = min(tile, new.width - x) * 4
                    if memcmp(oldRow + x * 4, newRow + x * 4, length) != 0 {
                        dirty[rowBase + column] = true
                    }
                }
            }
        }
    }

    /// Finds changed tiles that are moved content and writes copy rectangles for them
    /// (§7.4.1): vertical scrolls from row hashes, then, when those explain little,
    /// window moves from a 2-D probe search. Verified tile by tile.
    private func findCopies(old: PixelView, new: PixelView, columns: Int, rows: Int, statistics: inout TileUpdateStatistics) {
        let tile = TileUpdateFormat.tileSize
        var changed: [Int] = []
        for index in self.dirty.indices where self.dirty[index] { changed.append(index) }
        // A keystroke changes a tile or two: nothing moved, and searching costs more
        // than it could save.
        guard changed.count >= 2 else { return }

        func rect(_ index: Int) -> TileRect {
            let x = (index % columns) * tile
            let y = (index / columns) * tile
            return TileRect(x: x, y: y, width: min(tile, new.width - x), height: min(tile, new.height - y))
        }
        var vectorOfTile = [Int: MotionVector]()

        func assign(_ candidates: [MotionVector], to tiles: [Int]) -> [Int] {
            var unmatched: [Int] = []
            for index in tiles {
                let tileRect = rect(index)
                if let vector = candidates.first(where: { MotionSearch.tileMatches(tileRect, old: old, new: new, vector: $0) }) {
                    vectorOfTile[index] = vector
                } else {
                    unmatched.append(index)
                }
            }
            return unmatched
        }

        // Vertical candidates from the (up to) three tile columns with most changes.
        var perColumn = [Int](repeating: 0, count: columns)
        for index in changed { perColumn[index % columns] += 1 }
        let busiest = perColumn.indices.filter { perColumn[$0] > 0 }
            .sorted { perColumn[$0] != perColumn[$1] ? perColumn[$0] > perColumn[$1] : $0 < $1 }
            .prefix(3)
        let dirty = self.dirty
        var candidates = self.recentVectors
        for vector in self.motion.verticalCandidates(
            old: old,
            new: new,
            dirtyColumns: Array(busiest),
            dirtyRowsInColumn: { column in (0..<rows).filter { dirty[$0 * columns + column] } }
        ) where !candidates.contains(vector) {
            candidates.append(vector)
        }
        let unmatched = candidates.isEmpty ? changed : assign(candidates, to: changed)

        // A window drag leaves many tiles unexplained by any vertical offset.
        if unmatched.count >= 4 && unmatched.count * 2 > changed.count {
            let step = max(1, unmatched.count / 12)
            let probes = stride(from: 0, to: unmatched.count, by: step).prefix(12).map { rect(unmatched[$0]) }
            let windowVectors = self.motion.windowCandidates(old: old, new: new, probeTiles: probes)
                .filter { !candidates.contains($0) }
            if !windowVectors.isEmpty { _ = assign(windowVectors, to: unmatched) }
        }
        guard !vectorOfTile.isEmpty else {
            self.recentVectors = []
            return
        }

        // Merge copied tiles into rectangles: runs along each tile row, then runs of
        // equal runs down the rows. All copies read the pre-update framebuffer (§7.4.1),
        // so their order does not matter.
        struct CopyRun { var column: Int; var width: Int; var row: Int; var height: Int; var vector: MotionVector }
        var finished: [CopyRun] = []
        var open: [CopyRun] = []
        for row in 0..<rows {
            var runs: [CopyRun] = []
            var column = 0
            while column < columns {
                guard let vector = vectorOfTile[row * columns + column] else {
                    column += 1
                    continue
                }
                var end = column + 1
                while end < columns, vectorOfTile[row * columns + end] == vector { end += 1 }
                runs.append(CopyRun(column: column, width: end - column, row: row, height: 1, vector: vector))
                column = end
            }
            var stillOpen: [CopyRun] = []
            for run in runs {
                if let at = open.firstIndex(where: {
                    $0.column == run.column && $0.width == run.width && $0.vector == run.vector
                }) {
                    var grown = open.remove(at: at)
                    grown.height += 1
                    stillOpen.append(grown)
                } else {
                    stillOpen.append(run)
                }
            }
            finished += open
            open = stillOpen
        }
        finished += open
        finished.sort { ($0.row, $0.column) < ($1.row, $1.column) }

        var used: [MotionVector] = []
        for run in finished {
            let left = run.column * tile
            let top = run.row * tile
            let grown = Self.grow(
                TileRect(x: left, y: top, width: min(run.width * tile, new.width - left), height: min(run.height * tile, new.height - top)),
                vector: run.vector, old: old, new: new
            )
            self.copies.append((grown, run.vector))
            let (x, y, width, height) = (grown.x, grown.y, grown.width, grown.height)
            self.rects.reserve(TileUpdateFormat.rectHeaderLength + 4)
            self.writeRectHeader(.copy, x: x, y: y, width: width, height: height)
            self.rects.appendU16(x - run.vector.dx)
            self.rects.appendU16(y - run.vector.dy)
            self.rectEnds.append(self.rects.count)
            statistics.copyRects += 1
            if !used.contains(run.vector) { used.append(run.vector) }
        }
        for (index, _) in vectorOfTile { self.copied[index] = true }
        statistics.copiedTiles = vectorOfTile.count
        self.recentVectors = used
    }

    /// Widens a verified copy past the tile grid, one pixel column or row at a time, up
    /// to a tile each way, while the moved content still matches: a scrolled page or a
    /// window rarely starts on a multiple of 64.
    private static func grow(_ start: TileRect, vector: MotionVector, old: PixelView, new: PixelView) -> TileRect {
        var rect = start
        let reach = TileUpdateFormat.tileSize - 1
        func columnMatches(_ x: Int) -> Bool {
            let sourceX = x - vector.dx
            guard x >= 0, x < new.width, sourceX >= 0, sourceX < old.width else { return false }
            for y in rect.y..<(rect.y + rect.height)
            where new.row(y).loadUnaligned(fromByteOffset: x &* 4, as: UInt32.self)
                != old.row(y - vector.dy).loadUnaligned(fromByteOffset: sourceX &* 4, as: UInt32.self)
            {
                return false
            }
            return true
        }
        func rowMatches(_ y: Int) -> Bool {
            let sourceY = y - vector.dy
            guard y >= 0, y < new.height, sourceY >= 0, sourceY < old.height else { return false }
            return memcmp(new.row(y, x: rect.x), old.row(sourceY, x: rect.x - vector.dx), rect.width &* 4) == 0
        }
        var steps = 0
        while steps < reach, columnMatches(rect.x - 1) {
            rect.x -= 1
            rect.width += 1
            steps += 1
        }
        steps = 0
        while steps < reach, columnMatches(rect.x + rect.width) {
            rect.width += 1
            steps += 1
        }
        steps = 0
        while steps < reach, rowMatches(rect.y - 1) {
            rect.y -= 1
            rect.height += 1
            steps += 1
        }
        steps = 0
        while steps < reach, rowMatches(rect.y + rect.height) {
            rect.height += 1
            steps += 1
        }
        return rect
    }

    // MARK: - Tiles

    /// Encodes the changed tiles no copy covers. With the previous frame at hand, only
    /// the part of a tile that changed is sent (a keystroke is a glyph, not a tile).
    private func encodeChangedTiles(new: PixelView, old: PixelView?, columns: Int, rows: Int, statistics: inout TileUpdateStatistics) {
        let tile = TileUpdateFormat.tileSize
        // A solid rectangle right of a solid one of the same colour, top and height
        // widens that one instead of adding another (§7.5).
        var lastSolid: (end: Int, y: Int, height: Int, colour: UInt32, offset: Int, x: Int)? = nil
        for row in 0..<rows {
            for column in 0..<columns {
                let index = row * columns + column
                guard self.dirty[index], !self.copied[index] else { continue }
                var rect = TileRect(x: column * tile, y: row * tile, width: min(tile, new.width - column * tile), height: min(tile, new.height - row * tile))
                if let old { rect = Self.changedPart(of: rect, old: old, new: new) }
                let (x, y, width, height) = (rect.x, rect.y, rect.width, rect.height)
                if let colour = self.encodeTile(new: new, x: x, y: y, width: width, height: height, statistics: &statistics) {
                    if let solid = lastSolid, solid.end == x, solid.y == y, solid.height == height, solid.colour == colour {
                        // Undo the rectangle just written and widen the previous one.
                        self.rects.count -= TileUpdateFormat.rectHeaderLength + TileUpdateFormat.pixelLength
                        self.rectEnds.removeLast()
                        statistics.solidRects -= 1
                        let newWidth = x + width - solid.x
                        self.rects.base[solid.offset + 5] = UInt8(truncatingIfNeeded: newWidth >> 8)
                        self.rects.base[solid.offset + 6] = UInt8(truncatingIfNeeded: newWidth)
                        lastSolid = (x + width, y, height, colour, solid.offset, solid.x)
                    } else {
                        let offset = self.rects.count - TileUpdateFormat.rectHeaderLength - TileUpdateFormat.pixelLength
                        lastSolid = (x + width, y, height, colour, offset, x)
                    }
                } else {
                    lastSolid = nil
                }
            }
        }
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
            while x < left, oldRow.loadUnaligned(fromByteOffset: x &* 4, as: UInt32.self) == newRow.loadUnaligned(fromByteOffset: x &* 4, as: UInt32.self) { x += 1 }
            left = min(left, x)
            x = tile.x + tile.width - 1
            while x > right, oldRow.loadUnaligned(fromByteOffset: x &* 4, as: UInt32.self) == newRow.loadUnaligned(fromByteOffset: x &* 4, as: UInt32.self) { x -= 1 }
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
    private func writePacked(width: Int, height: Int, bits: Int, rowLength: Int) {
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

    // MARK: - Parts and deflate

    /// Cuts the rectangles into parts whose bodies fit `maximumBodyLength` (§7.6) and
    /// deflates each, sync-flushed, after its u32 request id (§7.1).
    private func deflateParts(
        frame: Framebuffer,
        requestID: UInt32,
        maximumBodyLength: Int,
        statistics: inout TileUpdateStatistics
    ) throws(ScreenCodecError) -> [ByteBuffer] {
        // Inflated budget per part: deflate never expands by more than about 5 bytes per
        // 16 KiB stored block plus the sync flush, so 1% headroom is ample.
        let budget = maximumBodyLength == .max
            ? Int.max : (maximumBodyLength - 4 - 64) / 100 * 99 - TileUpdateFormat.partHeaderLength
        var bodies: [ByteBuffer] = []
        var first = 0
        var start = 0
        while first < self.rectEnds.count {
            var last = first
            while last + 1 < self.rectEnds.count, self.rectEnds[last + 1] - start <= budget { last += 1 }
            let end = self.rectEnds[last]
            let continues = last + 1 < self.rectEnds.count

            var header = (UInt64(0), UInt8(0))
            try withUnsafeMutableBytes(of: &header) { (raw) throws(ScreenCodecError) in
                raw[0] = UInt8(truncatingIfNeeded: frame.width >> 8)
                raw[1] = UInt8(truncatingIfNeeded: frame.width)
                raw[2] = UInt8(truncatingIfNeeded: frame.height >> 8)
                raw[3] = UInt8(truncatingIfNeeded: frame.height)
                raw[4] = continues ? TileUpdateFormat.continuesFlag : 0
                let count = UInt32(last - first + 1)
                raw[5] = UInt8(truncatingIfNeeded: count >> 24)
                raw[6] = UInt8(truncatingIfNeeded: count >> 16)
                raw[7] = UInt8(truncatingIfNeeded: count >> 8)
                raw[8] = UInt8(truncatingIfNeeded: count)
                var body = self.allocator.buffer(capacity: 4 + (end - start) / 2 + 64)
                body.writeInteger(requestID)
                try self.deflater.compress(
                    UnsafeRawBufferPointer(rebasing: raw[0..<TileUpdateFormat.partHeaderLength]), flush: false, into: &body
                )
                try self.deflater.compress(
                    UnsafeRawBufferPointer(start: self.rects.base + start, count: end - start), flush: true, into: &body
                )
                statistics.bodyBytes += body.readableBytes
                bodies.append(body)
            }
            statistics.inflatedBytes += TileUpdateFormat.partHeaderLength + end - start
            statistics.parts += 1
            first = last + 1
            start = end
        }
        return bodies
    }
}
