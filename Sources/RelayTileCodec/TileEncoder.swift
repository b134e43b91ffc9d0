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
    /// Glyphs rectangles (§7.4.7), and their glyphs drawn from the table or defined.
    public var glyphRects = 0
    public var glyphsDrawn = 0
    public var glyphsDefined = 0
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
///
/// One update is built in five steps, each in its own file:
/// - change detection (here): which 64×64 tiles differ from the previous frame;
/// - copies (`CopyFinder.swift`): which changed tiles are moved content, sent as copy
///   rectangles (§7.4.1);
/// - tiles (`TileEncoder+Tiles.swift`): the rest, each with the smallest encoding its
///   content allows (§7.4.2–§7.4.6, §7.5);
/// - glyphs (`TileEncoder+Glyphs.swift`, `GlyphTable.swift`), for a viewer that keeps a
///   glyph table: each run of changed tiles on a tile row as one glyphs rectangle, when
///   that is smaller (§7.4.7);
/// - parts (`TileEncoder+Parts.swift`): the rectangles cut into bodies that fit the
///   relay's limit, each deflated on the session's stream (§7.1, §7.6).
public final class TileEncoder {
    let deflater: DeflateStream
    private var previous: Framebuffer?
    /// The update's rectangles (§7.3), inflated, back to back.
    let rects = ByteScratch(capacity: 256 * 1024)
    /// End offset in `rects` of each rectangle, so parts can be cut between rectangles.
    var rectEnds: [Int] = []
    /// Per tile of the grid, row-major: whether its pixels differ from the reference.
    var dirty: [Bool] = []
    private var copyFinder = CopyFinder()
    /// This update's copy rectangles, in the order they are written.
    private var copies: [TileCopy] = []
    /// The previous frame with this update's copies applied: what the viewer holds when
    /// the tile rectangles arrive, and what they are encoded against (§7.5). With
    /// ``ChangedTiles`` only their tiles are brought up to date: nothing else is read.
    private var afterCopies: [UInt8] = []
    /// Scratch for one tile's palette and its pixels' palette indices.
    let paletteColours = UnsafeMutablePointer<UInt32>.allocate(capacity: TileUpdateFormat.maximumPaletteSize)
    let tileIndices = UnsafeMutablePointer<UInt8>.allocate(
        capacity: TileUpdateFormat.tileSize * TileUpdateFormat.tileSize
    )
    let allocator: ByteBufferAllocator

    /// Tests and the benchmark turn copy detection off to measure what it saves.
    var findsCopies = true

    /// The viewer's glyph table as this encoder filled it (§7.4.7); nil when the viewer
    /// keeps none, and no glyphs rectangle is written.
    var glyphTable: GlyphTable?
    /// Scratch for the glyphs rectangle being planned (`TileEncoder+Glyphs.swift`).
    var plannedBands: [PlannedBand] = []
    var plannedGlyphs: [PlannedGlyph] = []
    /// The definitions planned so far, by hash, with where their first glyph is; and the
    /// table's slots the plan draws from.
    var plannedDefinitions: [UInt64: TileRect] = [:]
    var plannedSlots = Set<Int>()
    /// The most inflated bytes one part may take under this call's body limit (§7.6): a
    /// glyphs rectangle, which may replace a whole tile row, is kept below it.
    var partBudget = Int.max
    var histogram = GlyphHistogram()

    /// What the last call to ``encode(_:requestID:fullRefresh:)`` produced.
    public private(set) var lastUpdateStatistics = TileUpdateStatistics()

    /// - Parameters:
    ///   - compressionLevel: zlib's level, 0…9. Level 1 is the default: on desktop
    ///     content it is several times faster than 6 and within a few per cent of its
    ///     size, because the tile encodings already removed most redundancy
    ///     (benchmarks/RESULTS.md, "codec").
    ///   - glyphs: whether the viewer keeps a glyph table (it announced the `glyphs`
    ///     capability, PROTOCOL.md §3): text then travels as glyphs drawn from it (§7.4.7).
    public init(compressionLevel: Int32 = 1, glyphs: Bool = false, allocator: ByteBufferAllocator = ByteBufferAllocator()) {
        precondition((0...9).contains(compressionLevel), "zlib compression levels are 0…9")
        self.deflater = DeflateStream(level: compressionLevel)
        self.glyphTable = glyphs ? GlyphTable() : nil
        self.allocator = allocator
    }

    /// Whether this encoder writes glyphs rectangles (§7.4.7).
    public var usesGlyphs: Bool { self.glyphTable != nil }

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
        try self.encodeParts(frame, changes: nil, requestID: requestID, fullRefresh: fullRefresh, maximumBodyLength: maximumBodyLength)
    }

    /// Like ``encodeParts(_:requestID:fullRefresh:maximumBodyLength:)``, told by the
    /// screen source which tiles may differ from the frame of the previous call: only
    /// those are compared, searched for moved content and encoded, and only those of the
    /// kept frame are updated, so the work follows what was drawn, not the screen's size.
    /// `changes` must cover every pixel that differs from the previous call's frame; nil
    /// (or a set for another size) compares the whole frame.
    ///
    /// The encoder updates its own copy of the frame in place, so a source that keeps one
    /// framebuffer and redraws only the changed parts into it copies no whole frame either.
    public func encodeParts(
        _ frame: Framebuffer,
        changes: ChangedTiles?,
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
        self.partBudget = TileUpdateFormat.partBudget(maximumBodyLength: maximumBodyLength)
        // The hint applies to a delta against a kept frame of the same size.
        let candidates = changes.flatMap { changes in
            !fullRefresh && changes.width == frame.width && changes.height == frame.height
                && self.previous.map { $0.width == frame.width && $0.height == frame.height } == true ? changes : nil
        }
        self.buildRects(frame, everything: fullRefresh, candidates: candidates, statistics: &statistics)
        if let candidates {
            self.updatePrevious(from: frame, tiles: candidates)
        } else {
            self.previous = frame
        }
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

    // MARK: - Changed tiles

    /// Fills `rects` and `rectEnds` with the update's rectangles (§7.4): copies first,
    /// then the changed tiles that no copy covers, in raster order (§7.5).
    private func buildRects(_ frame: Framebuffer, everything: Bool, candidates: ChangedTiles?, statistics: inout TileUpdateStatistics) {
        self.rects.count = 0
        self.rectEnds.removeAll(keepingCapacity: true)
        let tile = TileUpdateFormat.tileSize
        let grid = TileGrid(columns: (frame.width + tile - 1) / tile, rows: (frame.height + tile - 1) / tile)
        if self.dirty.count != grid.count {
            self.dirty = Array(repeating: false, count: grid.count)
        }
        // Without a previous frame of the same size, every tile is sent in full.
        let reference = (everything ? nil : self.previous).flatMap {
            $0.width == frame.width && $0.height == frame.height ? $0 : nil
        }
        frame.pixels.withUnsafeBytes { newBytes in
            let new = PixelView(base: newBytes.baseAddress!, width: frame.width, height: frame.height)
            guard let reference else {
                for index in 0..<grid.count { self.dirty[index] = true }
                self.encodeChangedTiles(new: new, old: nil, grid: grid, statistics: &statistics)
                return
            }
            reference.pixels.withUnsafeBytes { oldBytes in
                let old = PixelView(base: oldBytes.baseAddress!, width: frame.width, height: frame.height)
                self.buildDelta(new: new, old: old, grid: grid, candidates: candidates, statistics: &statistics)
            }
        }
    }

    /// The rectangles that take the viewer from `old` to `new`: copies of moved content,
    /// then the changed tiles, each encoded against what the viewer holds after the copies.
    /// With `candidates`, tiles outside them are known to be unchanged and never read.
    private func buildDelta(new: PixelView, old: PixelView, grid: TileGrid, candidates: ChangedTiles?, statistics: inout TileUpdateStatistics) {
        // Same storage: nothing can have changed (and memcmp would say so slowly).
        if old.base == new.base || candidates?.isEmpty == true {
            for index in 0..<grid.count { self.dirty[index] = false }
            return
        }
        self.markChangedTiles(old: old, new: new, columns: grid.columns, candidates: candidates)
        self.copies.removeAll(keepingCapacity: true)
        if self.findsCopies {
            statistics.copiedTiles = self.copyFinder.find(old: old, new: new, dirty: self.dirty, grid: grid, into: &self.copies)
        }
        if self.copies.isEmpty {
            self.encodeChangedTiles(new: new, old: old, grid: grid, statistics: &statistics)
            return
        }
        for copy in self.copies {
            self.writeCopy(copy)
            statistics.copyRects += 1
        }
        // Copies need not follow the tile grid, so tiles they cover only in part are
        // compared again, against the frame the copies produce. A tile a copy covers
        // whole is unchanged against that frame, so this also leaves it out.
        let byteCount = old.height * old.stride
        if self.afterCopies.count != byteCount { self.afterCopies = [UInt8](repeating: 0, count: byteCount) }
        self.afterCopies.withUnsafeMutableBytes { after in
            if let candidates {
                // Only candidate tiles are compared and encoded below: only they need
                // the previous frame's pixels (copies may write elsewhere, unread).
                Self.copyTiles(candidates, from: old.base, to: after.baseAddress!, stride: old.stride)
            } else {
                after.baseAddress!.copyMemory(from: old.base, byteCount: byteCount)
            }
            for copy in self.copies {
                let rect = copy.rect
                for row in 0..<rect.height {
                    (after.baseAddress! + (rect.y + row) * new.stride + rect.x * 4).copyMemory(
                        from: old.row(rect.y + row - copy.vector.dy, x: rect.x - copy.vector.dx), byteCount: rect.width * 4
                    )
                }
            }
            let reference = PixelView(base: UnsafeRawPointer(after.baseAddress!), width: new.width, height: new.height)
            self.markChangedTiles(old: reference, new: new, columns: grid.columns, candidates: candidates)
            self.encodeChangedTiles(new: new, old: reference, grid: grid, statistics: &statistics)
        }
    }

    /// Marks the tiles whose pixels differ between the frames: whole rows by memcmp
    /// first (most rows are unchanged), then the 256-byte tile segments of the rows that
    /// differ. With `candidates`, only their tiles are compared.
    private func markChangedTiles(old: PixelView, new: PixelView, columns: Int, candidates: ChangedTiles?) {
        let tile = TileUpdateFormat.tileSize
        for index in self.dirty.indices { self.dirty[index] = false }
        if let candidates {
            self.dirty.withUnsafeMutableBufferPointer { dirty in
                for index in 0..<dirty.count where candidates.contains(index: index) {
                    let x = (index % columns) * tile
                    let top = (index / columns) * tile
                    let length = min(tile, new.width - x) * 4
                    for y in top..<min(top + tile, new.height) where memcmp(old.row(y, x: x), new.row(y, x: x), length) != 0 {
                        dirty[index] = true
                        break
                    }
                }
            }
            return
        }
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
}

extension TileEncoder {
    /// Brings the kept frame up to `frame` where `tiles` say it may differ, in place: the
    /// kept frame is this encoder's own storage (a shared one is copied once, on the first
    /// update), so an update costs what changed.
    fileprivate func updatePrevious(from frame: Framebuffer, tiles: ChangedTiles) {
        guard var kept = self.previous else {
            self.previous = frame
            return
        }
        // Moved out of the property, so that writing to it copies nothing when the
        // encoder holds the only reference.
        self.previous = nil
        kept.pixels.withUnsafeMutableBytes { target in
            frame.pixels.withUnsafeBytes { source in
                Self.copyTiles(tiles, from: source.baseAddress!, to: target.baseAddress!, stride: frame.bytesPerRow)
            }
        }
        self.previous = kept
    }

    /// Copies the marked tiles' pixels between two frames of the tiles' size, merged into
    /// runs along each tile row.
    static func copyTiles(_ tiles: ChangedTiles, from source: UnsafeRawPointer, to target: UnsafeMutableRawPointer, stride: Int) {
        for rect in tiles.rectangles(maximumCount: .max) {
            let length = rect.width * 4
            for y in rect.y..<(rect.y + rect.height) {
                let offset = y * stride + rect.x * 4
                (target + offset).copyMemory(from: source + offset, byteCount: length)
            }
        }
    }
}

/// The encoder's grid of 64×64 tiles over a frame (§7.5); edge tiles are smaller.
struct TileGrid {
    var columns: Int
    var rows: Int

    var count: Int { self.columns * self.rows }

    /// Tile `index` (row-major) in pixels, clipped to a `width`×`height` frame.
    @inline(__always)
    func rect(_ index: Int, width: Int, height: Int) -> TileRect {
        let tile = TileUpdateFormat.tileSize
        let x = (index % self.columns) * tile
        let y = (index / self.columns) * tile
        return TileRect(x: x, y: y, width: min(tile, width - x), height: min(tile, height - y))
    }
}
