// The host's copy of the viewer's glyph table (PROTOCOL.md §7.4.7): which glyph each
// slot holds, found by a hash of its pixels and confirmed pixel by pixel, and which slot
// a new glyph replaces (the least recently drawn, from a list kept in drawing order).

/// The glyph table as the viewer holds it after every update this encoder wrote.
struct GlyphTable {
    /// Per slot: the glyph's sides, hash and pixels (`0x00RRGGBB`, raster order); an
    /// empty slot has width 0.
    private var widths = [Int](repeating: 0, count: TileUpdateFormat.glyphSlots)
    private var heights = [Int](repeating: 0, count: TileUpdateFormat.glyphSlots)
    private var hashes = [UInt64](repeating: 0, count: TileUpdateFormat.glyphSlots)
    private var pixels = [[UInt32]](repeating: [], count: TileUpdateFormat.glyphSlots)
    /// The filled slots in the order they were last drawn (or defined), as a doubly
    /// linked list: `older` and `newer` per slot (-1 at the ends), so that drawing and
    /// choosing the slot to replace cost the same whatever the table holds.
    private var older = [Int](repeating: -1, count: TileUpdateFormat.glyphSlots)
    private var newer = [Int](repeating: -1, count: TileUpdateFormat.glyphSlots)
    private var leastRecent = -1
    private var mostRecent = -1
    /// The slot that holds the glyph with each hash (the last one defined, on a collision).
    private var slots: [UInt64: Int] = [:]
    /// Slots below this one have been filled at least once.
    private var filled = 0

    /// The hash of a glyph: its sides and pixels.
    static func hash(_ frame: PixelView, x: Int, y: Int, width: Int, height: Int) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325 ^ UInt64(width << 8 | height)
        for row in 0..<height {
            for column in 0..<width {
                hash = (hash ^ UInt64(frame.rgb(x &+ column, y &+ row))) &* 0x0000_0100_0000_01b3
            }
        }
        return hash
    }

    /// Whether two places of `frame` hold the same `width`×`height` pixels.
    static func samePixels(_ frame: PixelView, _ first: (x: Int, y: Int), _ second: (x: Int, y: Int), width: Int, height: Int) -> Bool {
        for row in 0..<height {
            for column in 0..<width where frame.rgb(first.x &+ column, first.y &+ row) != frame.rgb(second.x &+ column, second.y &+ row) {
                return false
            }
        }
        return true
    }

    /// The slot that holds exactly these pixels, or nil.
    func find(_ hash: UInt64, _ frame: PixelView, x: Int, y: Int, width: Int, height: Int) -> Int? {
        guard let slot = self.slots[hash], self.widths[slot] == width, self.heights[slot] == height else { return nil }
        return self.pixels[slot].withUnsafeBufferPointer { kept in
            for row in 0..<height {
                for column in 0..<width where kept[row &* width &+ column] != frame.rgb(x &+ column, y &+ row) {
                    return nil
                }
            }
            return slot
        }
    }

    /// Notes that `slot` is drawn in the update being written: it becomes the most
    /// recently drawn.
    mutating func draw(_ slot: Int) {
        guard slot != self.mostRecent else { return }
        let (before, after) = (self.older[slot], self.newer[slot])
        if before >= 0 { self.newer[before] = after }
        if after >= 0 { self.older[after] = before }
        if self.leastRecent == slot { self.leastRecent = after }
        self.older[slot] = self.mostRecent
        self.newer[slot] = -1
        if self.mostRecent >= 0 { self.newer[self.mostRecent] = slot }
        self.mostRecent = slot
        if self.leastRecent < 0 { self.leastRecent = slot }
    }

    /// Puts the glyph into the slot the viewer should replace (an empty one while there
    /// are, then the least recently drawn) and returns that slot.
    mutating func define(_ hash: UInt64, _ frame: PixelView, x: Int, y: Int, width: Int, height: Int) -> Int {
        let slot: Int
        if self.filled < TileUpdateFormat.glyphSlots {
            slot = self.filled
            self.filled += 1
        } else {
            slot = self.leastRecent
            if self.slots[self.hashes[slot]] == slot { self.slots[self.hashes[slot]] = nil }
        }
        // The replaced glyph's storage is reused when it is uniquely held.
        var kept = [UInt32]()
        swap(&kept, &self.pixels[slot])
        kept.removeAll(keepingCapacity: true)
        kept.reserveCapacity(width * height)
        for row in 0..<height {
            for column in 0..<width { kept.append(frame.rgb(x &+ column, y &+ row)) }
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
