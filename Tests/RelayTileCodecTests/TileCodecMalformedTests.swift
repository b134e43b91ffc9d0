import NIOCore
import RelayScreen
import RelayTestSupport
import Testing

@testable import RelayTileCodec

// Malformed TileUpdate bodies (PROTOCOL.md §7.7): each gives its typed error and leaves
// the viewer's framebuffer exactly as it was; random garbage never traps.

/// Builds bodies from hand-written inflated bytes on one deflate stream, as a host would.
final class HandmadeStream {
    let deflater = DeflateStream(level: 6)

    func body(requestID: UInt32 = 7, _ inflated: [UInt8]) throws -> ByteBuffer {
        var body = ByteBuffer()
        body.writeInteger(requestID)
        // Outside a closure: typed throws through Array.withUnsafeBytes crashes Swift 6.3.1's IRGen.
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, inflated.count), alignment: 1)
        defer { copy.deallocate() }
        copy.copyBytes(from: inflated)
        try self.deflater.compress(UnsafeRawBufferPointer(rebasing: copy[0..<inflated.count]), flush: true, into: &body)
        return body
    }
}

/// Part header (§7.2) and rectangle header (§7.3) bytes.
func partHeader(width: Int, height: Int, continues: Bool = false, rects: Int) -> [UInt8] {
    [
        UInt8(width >> 8), UInt8(width & 0xFF), UInt8(height >> 8), UInt8(height & 0xFF), continues ? 1 : 0,
        UInt8(rects >> 24), UInt8((rects >> 16) & 0xFF), UInt8((rects >> 8) & 0xFF), UInt8(rects & 0xFF),
    ]
}

func rectHeader(_ encoding: UInt8, x: Int, y: Int, width: Int, height: Int) -> [UInt8] {
    [
        encoding, UInt8(x >> 8), UInt8(x & 0xFF), UInt8(y >> 8), UInt8(y & 0xFF),
        UInt8(width >> 8), UInt8(width & 0xFF), UInt8(height >> 8), UInt8(height & 0xFF),
    ]
}

@Suite("Tile codec malformed updates")
struct TileCodecMalformedTests {
    static let width = 16
    static let height = 8

    /// A decoder holding a 16×8 image of distinct pixels (so any change shows), and the
    /// stream that drew it, for the next (malformed) body.
    static func prepared() throws -> (TileDecoder, HandmadeStream) {
        let decoder = TileDecoder()
        decoder.resize(width: Self.width, height: Self.height)
        let stream = HandmadeStream()
        var raw = partHeader(width: Self.width, height: Self.height, rects: 1)
        raw += rectHeader(0x05, x: 0, y: 0, width: Self.width, height: Self.height)
        for pixel in 0..<(Self.width * Self.height) { raw += [UInt8(pixel), UInt8(pixel * 3 & 0xFF), 0x80] }
        try decoder.apply(try stream.body(raw))
        return (decoder, stream)
    }

    /// Applies a body made of `inflated` after a valid one, expecting `kind` and an
    /// untouched framebuffer.
    func expectRejected(
        _ kind: ScreenCodecError.Kind,
        _ inflated: [UInt8],
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let (decoder, stream) = try Self.prepared()
        let before = decoder.framebuffer
        let body = try stream.body(inflated)
        let error = #expect(throws: ScreenCodecError.self, sourceLocation: sourceLocation) { try decoder.apply(body) }
        #expect(error?.kind == kind, "got \(error.map { String(describing: $0) } ?? "nothing")", sourceLocation: sourceLocation)
        #expect(decoder.framebuffer == before, "the framebuffer changed", sourceLocation: sourceLocation)
    }

    // A valid solid rectangle first, so that a rejected part cannot have half-applied.
    static let validSolid: [UInt8] = rectHeader(0x02, x: 0, y: 0, width: 16, height: 8) + [1, 2, 3]

    @Test("rectangles outside the screen, empty ones, and copies from outside")
    func outOfBounds() throws {
        try self.expectRejected(
            .rectOutOfBounds, partHeader(width: 16, height: 8, rects: 2) + Self.validSolid + rectHeader(0x02, x: 10, y: 0, width: 7, height: 1) + [0, 0, 0])
        try self.expectRejected(.rectOutOfBounds, partHeader(width: 16, height: 8, rects: 1) + rectHeader(0x02, x: 0, y: 8, width: 1, height: 1) + [0, 0, 0])
        try self.expectRejected(.rectOutOfBounds, partHeader(width: 16, height: 8, rects: 1) + rectHeader(0x02, x: 0, y: 0, width: 0, height: 1) + [0, 0, 0])
        try self.expectRejected(
            .rectOutOfBounds, partHeader(width: 16, height: 8, rects: 2) + Self.validSolid + rectHeader(0x01, x: 0, y: 0, width: 8, height: 8) + [0, 9, 0, 0])
        try self.expectRejected(
            .rectOutOfBounds,
            partHeader(width: 16, height: 8, rects: 1) + rectHeader(0x05, x: 0xFFFF, y: 0, width: 2, height: 1) + [UInt8](repeating: 0, count: 6))
    }

    @Test("palette indices beyond the palette, in packed rows and in runs; palette sizes outside 2…16")
    func palettes() throws {
        // 3 colours, 2-bit indices: index 3 in the second pixel of row 1.
        var packed = partHeader(width: 16, height: 8, rects: 2) + Self.validSolid + rectHeader(0x03, x: 0, y: 0, width: 4, height: 2)
        packed += [3, 1, 1, 1, 2, 2, 2, 3, 3, 3] + [0b0001_1000, 0b0011_0000]
        try self.expectRejected(.badPaletteIndex, packed)
        var runs = partHeader(width: 16, height: 8, rects: 1) + rectHeader(0x04, x: 0, y: 0, width: 4, height: 2)
        runs += [2, 0, 0, 0, 9, 9, 9] + [0x81, 2, 0x05]
        try self.expectRejected(.badPaletteIndex, runs)
        for size: UInt8 in [0, 1, 17, 255] {
            try self.expectRejected(
                .badPaletteSize,
                partHeader(width: 16, height: 8, rects: 1) + rectHeader(0x03, x: 0, y: 0, width: 1, height: 1) + [size] + [UInt8](repeating: 0, count: 64))
        }
    }

    @Test("runs that reach past their rectangle")
    func runOverflow() throws {
        try self.expectRejected(
            .runOverflow, partHeader(width: 16, height: 8, rects: 1) + rectHeader(0x06, x: 0, y: 0, width: 4, height: 1) + [1, 2, 3, 2, 4, 5, 6, 1])
        try self.expectRejected(
            .runOverflow, partHeader(width: 16, height: 8, rects: 1) + rectHeader(0x04, x: 0, y: 0, width: 16, height: 8) + [2, 0, 0, 0, 1, 1, 1, 0x80, 255, 0])
    }

    @Test("size mismatch, unknown encodings, truncation and trailing bytes")
    func structure() throws {
        try self.expectRejected(.sizeMismatch, partHeader(width: 17, height: 8, rects: 1) + Self.validSolid)
        try self.expectRejected(.sizeMismatch, partHeader(width: 16, height: 9, rects: 0))
        for encoding: UInt8 in [0x00, 0x08, 0x80, 0xFF] {
            try self.expectRejected(
                .unknownEncoding,
                partHeader(width: 16, height: 8, rects: 2) + Self.validSolid + rectHeader(encoding, x: 0, y: 0, width: 1, height: 1) + [0, 0, 0])
        }
        try self.expectRejected(.truncated, [0, 16, 0])
        try self.expectRejected(.truncated, partHeader(width: 16, height: 8, rects: 2) + Self.validSolid)
        try self.expectRejected(
            .truncated, partHeader(width: 16, height: 8, rects: 1) + rectHeader(0x05, x: 0, y: 0, width: 4, height: 1) + [1, 2, 3, 4, 5, 6])
        try self.expectRejected(.truncated, partHeader(width: 16, height: 8, rects: 0x7FFF_FFFF) + Self.validSolid)
        try self.expectRejected(.trailingBytes, partHeader(width: 16, height: 8, rects: 1) + Self.validSolid + [0])
    }

    @Test("bodies too short for a request id, or whose zlib bytes stop before the sync flush")
    func truncatedBodies() throws {
        let (decoder, stream) = try Self.prepared()
        let before = decoder.framebuffer
        let whole = try stream.body(partHeader(width: 16, height: 8, rects: 1) + Self.validSolid)
        for length in [0, 3, 4, 5, whole.readableBytes - 1] {
            let cut = whole.getSlice(at: 0, length: length)!
            let error = #expect(throws: ScreenCodecError.self) { try decoder.apply(cut) }
            #expect(error?.kind == .truncated, "\(length) bytes: \(String(describing: error))")
            #expect(decoder.framebuffer == before)
        }
    }

    @Test("corrupt zlib data: a reserved block type, and a fresh stream's bad header")
    func corruptDeflate() throws {
        let (decoder, _) = try Self.prepared()
        let before = decoder.framebuffer
        // After the first body the stream expects a block header; 0xFF is BTYPE 11 (reserved).
        let error = #expect(throws: ScreenCodecError.self) {
            try decoder.apply(ByteBuffer(bytes: [0, 0, 0, 9, 0xFF, 0, 0, 0xFF, 0xFF]))
        }
        #expect(error?.kind == .corruptDeflate, "\(String(describing: error))")
        #expect(decoder.framebuffer == before)

        let fresh = TileDecoder()
        fresh.resize(width: 4, height: 4)
        let headerError = #expect(throws: ScreenCodecError.self) {
            try fresh.apply(ByteBuffer(bytes: [0, 0, 0, 1, 0x12, 0x34, 0, 0, 0xFF, 0xFF]))
        }
        #expect(headerError?.kind == .corruptDeflate)
        #expect(fresh.framebuffer == Framebuffer(width: 4, height: 4))
    }

    @Test("an update before any ScreenInit")
    func noScreen() throws {
        let decoder = TileDecoder()
        let body = try HandmadeStream().body(partHeader(width: 16, height: 8, rects: 1) + Self.validSolid)
        let error = #expect(throws: ScreenCodecError.self) { try decoder.apply(body) }
        #expect(error?.kind == .noScreen)
        #expect(decoder.framebuffer == nil)
    }

    @Test("a deflate bomb stops at the inflate limit")
    func inflateLimit() throws {
        let decoder = TileDecoder(maximumInflatedBytes: 64 * 1024)
        decoder.resize(width: 256, height: 256)
        let before = decoder.framebuffer
        // A valid raw update of 196,617 bytes, which deflates to a few hundred.
        let inflated =
            partHeader(width: 256, height: 256, rects: 1) + rectHeader(0x05, x: 0, y: 0, width: 256, height: 256)
            + [UInt8](repeating: 0x42, count: 256 * 256 * 3)
        let body = try HandmadeStream().body(inflated)
        #expect(body.readableBytes < 1024)
        let error = #expect(throws: ScreenCodecError.self) { try decoder.apply(body) }
        #expect(error?.kind == .inflateLimitExceeded)
        #expect(decoder.framebuffer == before)
    }

    @Test("a part of another request while an update continues")
    func unexpectedPart() throws {
        let (decoder, stream) = try Self.prepared()
        try decoder.apply(try stream.body(requestID: 1, partHeader(width: 16, height: 8, continues: true, rects: 1) + Self.validSolid))
        #expect(decoder.expectsContinuation)
        let before = decoder.framebuffer
        let error = #expect(throws: ScreenCodecError.self) {
            try decoder.apply(try stream.body(requestID: 2, partHeader(width: 16, height: 8, rects: 0)))
        }
        #expect(error?.kind == .unexpectedPart)
        #expect(decoder.framebuffer == before)
        // A resize (a new ScreenInit) abandons the unfinished update.
        decoder.resize(width: 16, height: 8)
        #expect(!decoder.expectsContinuation)
    }

    @Test("seeded random bodies and mutated valid bodies never trap, and errors leave the framebuffer")
    func garbage() throws {
        let seed: UInt64 = 0x6A_4BA6E
        var random = SeededRandom(seed: seed)
        var scene = DesktopScene(width: 192, height: 128, seed: seed)
        for round in 0..<300 {
            let encoder = TileEncoder()
            let decoder = TileDecoder(maximumInflatedBytes: 1 << 20)
            decoder.resize(width: 192, height: 128)
            var body = try #require(try encoder.encode(scene.render(), requestID: 1, fullRefresh: true))
            try decoder.apply(body)
            scene.scroll(by: random.int(-30...30))
            scene.type(UInt8(random.int(33...126)), column: random.int(0..<12))
            body = try encoder.encode(scene.render(), requestID: 2, fullRefresh: random.oneIn(3)) ?? body
            var bytes = Array(body.readableBytesView)
            switch random.int(0..<4) {
            case 0: bytes = random.bytes(count: random.logUniformSize(maximum: 4096))
            case 1: for _ in 0..<random.int(1...8) { bytes[random.int(0..<bytes.count)] = random.bits() }
            case 2: bytes = Array(bytes.prefix(random.int(0..<bytes.count))) + [0, 0, 0xFF, 0xFF]
            default: bytes.insert(contentsOf: random.bytes(count: random.int(1...32)), at: random.int(4...bytes.count))
            }
            let before = decoder.framebuffer
            do {
                try decoder.apply(ByteBuffer(bytes: bytes))
            } catch {
                #expect(decoder.framebuffer == before, "seed \(seed) round \(round): \(error) changed the framebuffer")
            }
        }
    }
}
