// The inflated layout of one TileUpdate part (PROTOCOL.md §7.2–§7.4), shared by the
// encoder and the decoder so that both read the same constants.

enum TileUpdateFormat {
    /// The grid the encoder detects changes on and encodes by (§7.5). The decoder accepts
    /// rectangles of any size; only the encoder keeps to the grid.
    static let tileSize = 64

    /// u16 width, u16 height, u8 flags, u32 rectangle count (§7.2).
    static let partHeaderLength = 9
    /// Where a part header's fields start, after the u16 width at 0 (§7.2).
    static let partHeightOffset = 2
    static let partFlagsOffset = 4
    static let partRectCountOffset = 5
    /// Flag bit 0 of a part header: more parts of the same update follow (§7.6).
    static let continuesFlag: UInt8 = 0x01

    /// u8 encoding, u16 x, y, width, height (§7.3).
    static let rectHeaderLength = 9
    /// Where a rectangle header's u16 width starts, after the u8 encoding and u16 x, y
    /// (§7.3): the encoder widens a solid rectangle it has written in place (§7.5).
    static let rectWidthOffset = 5
    /// Bytes per pixel value on the wire: blue, green, red (§7.3); the unused fourth byte
    /// of a BGRX pixel is not sent and is 0 in the decoder's framebuffer.
    static let pixelLength = 3

    static let minimumPaletteSize = 2
    static let maximumPaletteSize = 16

    /// The smallest TileUpdate body limit `encodeParts` works with: one raw 64×64 tile
    /// with its headers, deflated incompressibly, fits with room to spare.
    static let minimumBodyLength = 32 * 1024

    /// The viewer's glyph table (§7.4.7): slots, the largest glyph side, and the bit of
    /// a glyph's u16 slot field that says a definition follows.
    static let glyphSlots = 2048
    static let maximumGlyphSide = 64
    static let glyphDefinitionFlag = 0x8000

    /// Bits per packed palette index for a palette of `size` colours (§7.4.3).
    @inline(__always)
    static func indexBits(paletteSize size: Int) -> Int {
        size <= 2 ? 1 : (size <= 4 ? 2 : 4)
    }

    /// The most inflated bytes of rectangles one part may hold under a TileUpdate body
    /// limit (§7.6): deflate never expands by more than about 5 bytes per 16 KiB stored
    /// block plus the sync flush, so 1% headroom is ample.
    static func partBudget(maximumBodyLength: Int) -> Int {
        maximumBodyLength == .max ? .max : (maximumBodyLength - 4 - 64) / 100 * 99 - Self.partHeaderLength
    }

    /// The longest glyph definition (§7.4.7): sides, n = 0 and 64×64 raw pixels.
    static let maximumGlyphDefinitionLength = 3 + maximumGlyphSide * maximumGlyphSide * pixelLength

    /// Bytes of a count field of `value` ≥ 0 (§7.4.7): a run length without the added 1.
    @inline(__always)
    static func countBytes(_ value: Int) -> Int {
        value / 255 + 1
    }

    /// Bytes of one row of packed indices: rows start on a byte boundary (§7.4.3).
    @inline(__always)
    static func packedRowLength(width: Int, bits: Int) -> Int {
        (width * bits + 7) / 8
    }

    /// Bytes of a run-length field for a run of `length` ≥ 1 pixels (§7.4.4): 255s and
    /// a last byte below 255, summing to length − 1.
    @inline(__always)
    static func runLengthBytes(_ length: Int) -> Int {
        (length - 1) / 255 + 1
    }
}

/// The rectangle encodings of §7.4; the raw value is the byte on the wire.
enum RectEncoding: UInt8 {
    case copy = 0x01
    case solid = 0x02
    case packedPalette = 0x03
    case paletteRLE = 0x04
    case raw = 0x05
    case rle = 0x06
    case glyphs = 0x07
}
