import NIOCore
import RelayTestSupport
import Testing

@testable import RelayTileCodec

// Review of the glyphs encoding (PROTOCOL.md §7.4.7, §7.5, §7.6): a finding kept as
// tests. §7.6 says every body MUST fit the payload limit, and the encoder cuts parts
// between rectangles; a glyphs rectangle replaces a whole run of tiles on a tile row,
// so it could be larger than a part may be, and was sent alone in a body over the limit
// (the relay answered frame too large and the session ended). The encoder now keeps a
// glyphs rectangle below the part budget.

@Suite("Glyphs encoding review")
struct GlyphReviewTests {
    /// The smallest payload limit a relay may announce (RelayWire's `Frame.minimumPayloadLimit`).
    static let relayMinimum = 64 * 1024

    /// Encodes `frame` in full with and without the glyph table in parts of at most
    /// `limit` bytes, checks both arrive exact, and returns the largest body of each.
    static func largestBodies(_ frame: Framebuffer, limit: Int) throws -> (tiles: Int, glyphs: Int, glyphRects: Int) {
        var largest: [Int] = []
        var glyphRects = 0
        for glyphs in [false, true] {
            let encoder = TileEncoder(glyphs: glyphs)
            let decoder = TileDecoder()
            decoder.resize(width: frame.width, height: frame.height)
            let bodies = try encoder.encodeParts(frame, requestID: 1, fullRefresh: true, maximumBodyLength: limit)
            for body in bodies { try decoder.apply(body) }
            // Exact either way: the bug is the size of a body, not its pixels.
            #expect(decoder.framebuffer == frame, "glyphs: \(glyphs)")
            largest.append(bodies.map(\.readableBytes).max() ?? 0)
            if glyphs { glyphRects = encoder.lastUpdateStatistics.glyphRects }
        }
        return (largest[0], largest[1], glyphRects)
    }

    @Test("§7.6: a 3840×2160 page of anti-aliased text in a font of 3,000 shapes fits 64 KiB bodies with glyphs too")
    func manyShapesOnA4KScreen() throws {
        // Text like CJK: more shapes than the table's slots, more than 16 shades each.
        let font = TextPages(characters: 3000, seed: 5, antialiased: true)
        var random = SeededRandom(seed: 6)
        let frame = font.page(width: 3840, height: 2160, lines: 150, random: &random)
        let largest = try Self.largestBodies(frame, limit: Self.relayMinimum)
        #expect(largest.tiles <= Self.relayMinimum, "tiles only: largest body \(largest.tiles) bytes")
        #expect(largest.glyphRects > 0)
        #expect(largest.glyphs <= Self.relayMinimum, "glyphs: largest body \(largest.glyphs) bytes, over the \(Self.relayMinimum)-byte limit")
    }

    @Test("§7.6: a 1920×64 strip of 256-colour content with background gaps fits 64 KiB bodies with glyphs too")
    func paletteStrip() throws {
        // 240 distinct 7×64 shapes of 200 colours between background columns (a dithered
        // image, pixel art): every tile is raw (12,297 bytes); the glyphs rectangle over
        // the run, 324 KB of raw definitions, is smaller than its 30 tiles (369 KB).
        var random = SeededRandom(seed: 42)
        let colours = (0..<200).map { _ in UInt32(random.int(1...0xFF_FFFF)) }
        var frame = Framebuffer(width: 1920, height: 64, fill: 0)
        for y in 0..<frame.height {
            for x in 0..<frame.width where x % 8 != 7 {
                frame.setRGB(colours[random.int(0...(colours.count - 1))], x: x, y: y)
            }
        }
        let largest = try Self.largestBodies(frame, limit: Self.relayMinimum)
        #expect(largest.tiles <= Self.relayMinimum, "tiles only: largest body \(largest.tiles) bytes")
        // The run's glyphs rectangle (324 KB) cannot fit one part: its tiles go instead.
        #expect(largest.glyphRects == 0)
        #expect(largest.glyphs <= Self.relayMinimum, "glyphs: largest body \(largest.glyphs) bytes, over the \(Self.relayMinimum)-byte limit")
    }
}
