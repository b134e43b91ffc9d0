import NIOCore
import RelayScreen
import RelayTestSupport
import Testing

@testable import RelayTileCodec

// The tile-delta codec end to end (PROTOCOL.md §7): an encoder and a decoder back to
// back over long seeded sequences, checking after every update that the viewer's
// framebuffer equals the host's frame byte for byte, and that each kind of change is
// sent with the encoding meant for it.

/// FNV-1a over the pixels: printed in failures so a mismatch names both images.
func pixelHash(_ framebuffer: Framebuffer?) -> UInt64 {
    guard let framebuffer else { return 0 }
    var hash: UInt64 = 0xCBF2_9CE4_8422_2325
    for byte in framebuffer.pixels {
        hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
    }
    return hash
}

/// An encoder and a decoder joined by TileUpdate bodies.
struct CodecPair {
    let encoder: TileEncoder
    let decoder = TileDecoder()
    var requestID: UInt32 = 0
    var totalBytes = 0

    /// - Parameter glyphs: whether the viewer announced the `glyphs` capability (§7.4.7).
    init(glyphs: Bool = false) {
        self.encoder = TileEncoder(glyphs: glyphs)
    }

    /// Encodes `frame`, applies the result, and checks the decoder's framebuffer equals
    /// `frame`. Returns the update's statistics, or nil when nothing was sent.
    @discardableResult
    mutating func send(
        _ frame: Framebuffer,
        fullRefresh: Bool = false,
        maximumBodyLength: Int? = nil,
        _ context: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> TileUpdateStatistics? {
        self.requestID &+= 1
        if self.decoder.framebuffer.map({ $0.width != frame.width || $0.height != frame.height }) ?? true {
            self.decoder.resize(width: frame.width, height: frame.height)  // the ScreenInit
        }
        let bodies: [ByteBuffer]
        if let maximumBodyLength {
            bodies = try self.encoder.encodeParts(frame, requestID: self.requestID, fullRefresh: fullRefresh, maximumBodyLength: maximumBodyLength)
        } else {
            bodies = try self.encoder.encode(frame, requestID: self.requestID, fullRefresh: fullRefresh).map { [$0] } ?? []
        }
        for (index, body) in bodies.enumerated() {
            if let maximumBodyLength {
                #expect(body.readableBytes <= maximumBodyLength, "\(context): part \(index) is \(body.readableBytes) bytes", sourceLocation: sourceLocation)
            }
            #expect(try self.decoder.apply(body) == self.requestID, "\(context): request id", sourceLocation: sourceLocation)
            #expect(
                self.decoder.expectsContinuation == (index < bodies.count - 1), "\(context): part \(index) of \(bodies.count)", sourceLocation: sourceLocation)
            self.totalBytes += body.readableBytes
        }
        #expect(
            self.decoder.framebuffer == frame,
            "\(context): decoder \(String(pixelHash(self.decoder.framebuffer), radix: 16)) != host \(String(pixelHash(frame), radix: 16))",
            sourceLocation: sourceLocation
        )
        return bodies.isEmpty ? nil : self.encoder.lastUpdateStatistics
    }
}

@Suite("Tile codec round trips")
struct TileCodecRoundTripTests {
    @Test("typing changes a tile or two, sent as small palette tiles without copies")
    func typing() throws {
        var scene = DesktopScene(width: 320, height: 240, seed: 11)
        var pair = CodecPair()
        let first = try #require(try pair.send(scene.render(), "initial"))
        #expect(first.copyRects == 0)
        var random = SeededRandom(seed: 12)
        for column in 0..<60 {
            scene.type(UInt8(random.int(33...126)), column: column % 28)
            let statistics = try #require(try pair.send(scene.render(), "keystroke \(column)"))
            #expect(statistics.copyRects == 0, "keystroke \(column)")
            #expect(statistics.rawTiles == 0 && statistics.rleTiles == 0, "keystroke \(column): text in one ink fits a palette")
            #expect(statistics.solidRects + statistics.packedPaletteTiles + statistics.paletteRLETiles <= 2, "keystroke \(column)")
            // Only the glyph's cell is sent, not its 64×64 tile.
            #expect(statistics.bodyBytes < 200, "keystroke \(column): \(statistics.bodyBytes) bytes")
        }
    }

    @Test("scrolling sends the moved page as copies, at a fraction of the bytes without them")
    func scrolling() throws {
        var scene = DesktopScene(width: 384, height: 320, seed: 21)
        var pair = CodecPair()
        var withoutCopies = CodecPair()
        withoutCopies.encoder.findsCopies = false
        try pair.send(scene.render(), "initial")
        try withoutCopies.send(scene.render(), "initial, no copies")
        var random = SeededRandom(seed: 22)
        for step in 0..<40 {
            scene.scroll(by: random.pick([16, 32, 48, 5, 3, -16, 64]))
            guard let statistics = try pair.send(scene.render(), "scroll \(step)") else { continue }
            try withoutCopies.send(scene.render(), "scroll \(step), no copies")
            #expect(statistics.copyRects >= 1, "scroll \(step): \(statistics)")
            #expect(statistics.copiedTiles >= 2, "scroll \(step): \(statistics)")
        }
        #expect(pair.totalBytes * 3 < withoutCopies.totalBytes, "\(pair.totalBytes) bytes with copies, \(withoutCopies.totalBytes) without")
    }

    @Test("dragging a window sends its inside as copies along the drag vector")
    func windowDrag() throws {
        var scene = DesktopScene(width: 448, height: 320, seed: 31)
        var pair = CodecPair()
        try pair.send(scene.render(), "initial")
        var random = SeededRandom(seed: 32)
        var withCopies = 0
        var missed: [String] = []
        for step in 0..<30 {
            let (dx, dy) = (random.int(-40...40), random.int(-30...30))
            scene.moveWindow(dx: dx, dy: dy)
            guard let statistics = try pair.send(scene.render(), "drag \(step)") else { continue }
            if statistics.copiedTiles >= 4 { withCopies += 1 } else { missed.append("drag \(step) by (\(dx), \(dy))") }
        }
        #expect(withCopies >= 27, "only \(withCopies) of 30 drags found the moved window; missed \(missed)")
    }

    @Test("noise is sent raw, and a full refresh resends everything without copies")
    func noiseAndFullRefresh() throws {
        var scene = DesktopScene(width: 256, height: 192, seed: 41)
        scene.video = (x: 64, y: 64, width: 128, height: 64)
        var pair = CodecPair()
        try pair.send(scene.render(), "initial")
        for step in 0..<10 {
            scene.nextVideoFrame()
            let statistics = try #require(try pair.send(scene.render(), "video \(step)"))
            #expect(statistics.rawTiles == 2, "video \(step): the region covers two tiles: \(statistics)")
            #expect(statistics.copyRects == 0)
        }
        let frame = scene.render()
        #expect(try pair.send(frame, "unchanged") == nil, "nothing changed: no update")
        let refresh = try #require(try pair.send(frame, fullRefresh: true, "full refresh"))
        #expect(refresh.copyRects == 0)
        #expect(refresh.solidRects + refresh.packedPaletteTiles + refresh.paletteRLETiles + refresh.rawTiles + refresh.rleTiles >= 12 / 4)
    }

    @Test("each tile is sent with the encoding its content calls for")
    func encodingChoice() throws {
        var pair = CodecPair()
        var frame = Framebuffer(width: 320, height: 64, fill: 0x336699)
        // Tile 1: a checkerboard of two colours — packed 1-bit indices.
        for y in 0..<64 { for x in 64..<128 where (x + y) % 2 == 0 { frame.setRGB(0xFFFFFF, x: x, y: y) } }
        // Tile 2: four horizontal bands of three colours — palette runs.
        for y in 0..<64 { for x in 128..<192 { frame.setRGB([0x101010, 0x808080, 0xF0F0F0, 0x101010][y / 16], x: x, y: y) } }
        // Tile 3: 64 colours in long runs — RLE.
        for y in 0..<64 { for x in 192..<256 { frame.setRGB(UInt32(y * 4 + x / 32) * 0x010203, x: x, y: y) } }
        // Tile 4: every pixel different — raw.
        for y in 0..<64 { for x in 256..<320 { frame.setRGB(UInt32(y * 64 + x) &* 2_654_435_761 & 0xFFFFFF, x: x, y: y) } }
        let statistics = try #require(try pair.send(frame, "five tiles"))
        #expect(statistics.solidRects == 1)
        #expect(statistics.packedPaletteTiles == 1)
        #expect(statistics.paletteRLETiles == 1)
        #expect(statistics.rleTiles == 1)
        #expect(statistics.rawTiles == 1)
        #expect(statistics.copyRects == 0)

        // Neighbouring solid tiles of one colour become one rectangle.
        let solid = try #require(try pair.send(Framebuffer(width: 320, height: 64, fill: 0x00FF00), "all green"))
        #expect(solid.solidRects == 1, "\(solid)")
    }

    @Test("odd sizes: edge tiles narrower and shorter than 64, down to one pixel")
    func oddSizes() throws {
        var random = SeededRandom(seed: 51)
        for (width, height) in [(1, 1), (100, 70), (65, 129), (7, 300), (300, 7)] {
            var pair = CodecPair()
            var frame = Framebuffer(width: width, height: height, fill: 0x102030)
            for step in 0..<6 {
                for _ in 0..<random.int(1...40) {
                    frame.setRGB(UInt32(random.int(0...3)) * 0x404040, x: random.int(0..<width), y: random.int(0..<height))
                }
                try pair.send(frame, "\(width)×\(height) step \(step)")
            }
        }
    }

    @Test("resolution changes: resize, then a full update of the new size on the same stream")
    func resolutionChange() throws {
        var pair = CodecPair()
        for (index, (width, height)) in [(320, 200), (200, 320), (320, 200), (333, 211)].enumerated() {
            var scene = DesktopScene(width: width, height: height, seed: UInt64(60 + index))
            let statistics = try #require(try pair.send(scene.render(), "size \(width)×\(height)"))
            #expect(statistics.copyRects == 0)
            scene.scroll(by: 32)
            try pair.send(scene.render(), "size \(width)×\(height) scrolled")
        }
    }

    @Test("a long seeded script of typing, scrolling, drags, video, refreshes and parts", arguments: [false, true])
    func longScript(glyphs: Bool) throws {
        let seed: UInt64 = 0x5EED_0070
        var random = SeededRandom(seed: seed)
        var scene = DesktopScene(width: 352, height: 288, seed: seed)
        var pair = CodecPair(glyphs: glyphs)
        try pair.send(scene.render(), "initial")
        for step in 0..<300 {
            let fullRefresh = SeededDesktopScript.step(&scene, &random)
            // Sometimes through a relay with the smallest body limit, to cut updates into parts.
            let limit = random.oneIn(4) ? TileUpdateFormat.minimumBodyLength : nil
            try pair.send(scene.render(), fullRefresh: fullRefresh, maximumBodyLength: limit, "seed \(seed) step \(step)")
        }
    }

    @Test("a full-screen update splits into parts that each fit the body limit")
    func parts() throws {
        var random = SeededRandom(seed: 81)
        var frame = Framebuffer(width: 256, height: 256, fill: 0)
        frame.pixels = random.bytes(count: frame.pixels.count).enumerated().map { $0.offset % 4 == 3 ? 0 : $0.element }
        var pair = CodecPair()
        let statistics = try #require(try pair.send(frame, maximumBodyLength: TileUpdateFormat.minimumBodyLength, "noise in parts"))
        #expect(statistics.parts >= 6, "\(statistics)")
        #expect(statistics.rawTiles == 16)
    }
}
