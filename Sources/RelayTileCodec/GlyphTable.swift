// The host's copy of the viewer's glyph table (PROTOCOL.md §7.4.7): which glyph each
// slot holds, found by a hash of its pixels and confirmed pixel by pixel, and which slot
// a new glyph replaces (the least recently drawn).

/// The glyph table as the viewer holds it after every update this encoder wrote.
struct GlyphTable {
    /// Per slot: the glyph's sides, hash and pixels (`0x00RRGGBB`, raster order); an
    /// empty slot has width 0.
    private var widths = [Int](repeating: 0, count: TileUpdateFormat.glyphSlots)
    private var heights = [Int](repeating: 0, count: TileUpdateFormat.glyphSlots)
    private var hashes = [UInt64](repeating: 0, count: TileUpdateFormat.glyphSlots)
    private var pixels = [[UInt32]](repeating: [], count: TileUpdateFormat.glyphSlots)
    /// Per slot: when it was last drawn (or defined), for the choice of the slot to replace.
    private var lastDrawn = [UInt64](repeating: 0, count: TileUpdateFormat.glyphSlots)
    private var clock: UInt64 = 0
    /// The slot that holds the glyph with each hash (the last one defined, on a collision).
    private var slots: [UInt64: Int] = [:]
    /// Slots below this one have been filled at least once.
    private var filled = 0

    /// The hash of a glyph: its sides and pixels.
    static func hash(_ frame: PixelView, x: Int, y: Int, width: Int, height: Int) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325 ^ UInt64(width << 8 | height)
        for row in 0..<height {
            let line = frame.row(y &+ row, x: x)
            for column in 0..<width {
                let pixel = UInt32(littleEndian: line.loadUnaligned(fromByteOffset: column &* 4, as: UInt32.self)) & 0x00FF_FFFF
                hash = (hash ^ UInt64(pixel)) &* 0x0000_0100_0000_01b3
            }
        }
        return hash
    }

    /// The slot that holds exactly these pixels, or nil.
    func find(_ hash: UInt64, _ frame: PixelView, x: Int, y: Int, width: Int, height: Int) -> Int? {
        guard let slot = self.slots[hash], self.widths[slot] == width, self.heights[slot] == height else { return nil }
        return self.pixels[slot].withUnsafeBufferPointer { kept in
            for row in 0..<height {
                let line = frame.row(y &+ row, x: x)
                for column in 0..<width {
                    let pixel = UInt32(littleEndian: line.loadUnaligned(fromByteOffset: column &* 4, as: UInt32.self)) & 0x00FF_FFFF
                    if kept[row &* width &+ column] != pixel { return nil }
                }
            }
            return slot
        }
    }

    /// Notes that `slot` is drawn in the update being written.
    mutating func draw(_ slot: Int) {
        self.clock &+= 1
        self.lastDrawn[slot] = self.clock
    }

    /// Puts the glyph into the slot the viewer should replace (an empty one while there
    /// are, then the least recently drawn) and returns that slot.
    mutating func define(_ hash: UInt64, _ frame: PixelView, x: Int, y: Int, width: Int, height: Int) -> Int {
        let slot: Int
        if self.filled < TileUpdateFormat.glyphSlots {
            slot = self.filled
            self.filled += 1
        } else {
            var oldest = 0
            for candidate in 1..<TileUpdateFormat.glyphSlots where self.lastDrawn[candidate] < self.lastDrawn[oldest] {
                oldest = candidate
            }
            slot = oldest
            if self.slots[self.hashes[slot]] == slot { self.slots[self.hashes[slot]] = nil }
        }
        var kept = [UInt32]()
        kept.reserveCapacity(width * height)
        for row in 0..<height {
            let line = frame.row(y &+ row, x: x)
            for column in 0..<width {
                kept.append(UInt32(littleEndian: line.loadUnaligned(fromByteOffset: column &* 4, as: UInt32.self)) & 0x00FF_FFFF)
            }
        }
        self.widths[slot] = width
        self.heights[slot] = height
        self.hashes[slot] = hash
        self.pixels[slot] = kept
        self.slots[hash] = slot
        self.draw(slot)
        return slot
    }
}
