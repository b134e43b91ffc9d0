import RelayScreen
import RelayTileCodec
import RelayWire
import Testing

@Suite struct PNGFileTests {
    /// A framebuffer where every pixel differs from its neighbours and every channel
    /// value occurs, so a swapped channel or a shifted row cannot pass.
    private static func pattern(width: Int, height: Int) -> Framebuffer {
        var framebuffer = Framebuffer(width: width, height: height)
        for y in 0..<height {
            for x in 0..<width {
                framebuffer.setRGB(UInt32(x &* 7 &+ y &* 13) & 0xFF | UInt32(x &* 3) & 0xFF << 8 | UInt32(y &* 11 &+ 5) & 0xFF << 16, x: x, y: y)
            }
        }
        return framebuffer
    }

    @Test func writeThenReadGivesTheSameBytes() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let original = Self.pattern(width: 67, height: 41)
        try PNGFile.write(original, to: folder.file("round-trip.png"))
        let read = try PNGFile.read(folder.file("round-trip.png"))
        #expect(read == original)
        let size = try PNGFile.size(of: folder.file("round-trip.png"))
        #expect(size.width == 67 && size.height == 41)
    }

    @Test func writingReplacesAnExistingFileAndLeavesNoPartialFile() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let path = folder.file("snapshot.png")
        try PNGFile.write(Framebuffer(width: 4, height: 4, fill: 0x112233), to: path)
        try PNGFile.write(Framebuffer(width: 8, height: 2, fill: 0x445566), to: path)
        #expect(try PNGFile.read(path) == Framebuffer(width: 8, height: 2, fill: 0x445566))
        let leftovers = try FileManagerListing.names(in: folder.path).filter { $0 != "snapshot.png" }
        #expect(leftovers.isEmpty)
    }

    @Test func readsAnRGBAPNGMadeByAnotherEncoderAndDropsAlpha() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        // 3×2 RGBA: opaque red, half-transparent green, fully transparent blue-ish; a row of greys.
        let rows: [[UInt8]] = [
            [0xFF, 0x00, 0x00, 0xFF, 0x00, 0xFF, 0x00, 0x80, 0x10, 0x20, 0x30, 0x00],
            [0x40, 0x40, 0x40, 0xFF, 0x80, 0x80, 0x80, 0xFF, 0xC0, 0xC0, 0xC0, 0xFF],
        ]
        try folder.write(HandMadePNG.encode(width: 3, height: 2, colourType: 6, rows: rows), to: "rgba.png")
        let framebuffer = try PNGFile.read(folder.file("rgba.png"))
        #expect(framebuffer.width == 3 && framebuffer.height == 2)
        #expect(framebuffer.rgb(x: 0, y: 0) == 0xFF0000)
        #expect(framebuffer.rgb(x: 1, y: 0) == 0x00FF00)
        #expect(framebuffer.rgb(x: 2, y: 0) == 0x102030)
        #expect(framebuffer.rgb(x: 0, y: 1) == 0x404040)
        #expect(framebuffer.rgb(x: 2, y: 1) == 0xC0C0C0)
        // The unused byte is 0 whatever the alpha was.
        #expect(stride(from: 3, to: framebuffer.pixels.count, by: 4).allSatisfy { framebuffer.pixels[$0] == 0 })
    }

    @Test func readsAGreyscalePNG() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        try folder.write(HandMadePNG.encode(width: 2, height: 2, colourType: 0, rows: [[0x00, 0xFF], [0x7F, 0x20]]), to: "grey.png")
        let framebuffer = try PNGFile.read(folder.file("grey.png"))
        #expect(framebuffer.rgb(x: 0, y: 0) == 0x000000)
        #expect(framebuffer.rgb(x: 1, y: 0) == 0xFFFFFF)
        #expect(framebuffer.rgb(x: 0, y: 1) == 0x7F7F7F)
        #expect(framebuffer.rgb(x: 1, y: 1) == 0x202020)
    }

    @Test func aMissingFileSaysSo() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let error = #expect(throws: PNGFileError.self) { try PNGFile.read(folder.file("absent.png")) }
        #expect(error?.kind == .fileNotFound)
        #expect(error?.message.contains("absent.png") == true)
        #expect(error?.message.contains("No such file") == true)
    }

    @Test func aFolderIsNotAFile() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let error = #expect(throws: PNGFileError.self) { try PNGFile.read(folder.path) }
        #expect(error?.kind == .fileNotFound)
        #expect(error?.message.contains("not a file") == true)
    }

    @Test func aFileThatIsNotAPNGSaysSo() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        try folder.write(Array("GIF89a this is not a PNG".utf8), to: "fake.png")
        let error = #expect(throws: PNGFileError.self) { try PNGFile.read(folder.file("fake.png")) }
        #expect(error?.kind == .notPNG)
        #expect(error?.message.contains("fake.png is not a PNG file") == true)
    }

    @Test func aTruncatedPNGIsUnreadable() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let whole = HandMadePNG.encode(width: 16, height: 16, colourType: 0, rows: Array(repeating: Array(repeating: 0x55, count: 16), count: 16))
        try folder.write(Array(whole.prefix(whole.count - 30)), to: "cut.png")
        let error = #expect(throws: PNGFileError.self) { try PNGFile.read(folder.file("cut.png")) }
        #expect(error?.kind == .unreadable)
        #expect(error?.message.contains("cut.png") == true)
    }

    @Test func writingIntoAMissingFolderSaysWhatToCheck() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let error = #expect(throws: PNGFileError.self) {
            try PNGFile.write(Framebuffer(width: 2, height: 2), to: folder.file("no-such-folder/out.png"))
        }
        #expect(error?.kind == .writeFailed)
        #expect(error?.message.contains("folder exists") == true)
    }
}

/// A PNG encoder independent of libpng: 8-bit samples, filter 0, stored (uncompressed)
/// deflate blocks, CRC-32 and Adler-32 computed here — the "another tool" the reader
/// must understand.
enum HandMadePNG {
    static func encode(width: Int, height: Int, colourType: UInt8, rows: [[UInt8]]) -> [UInt8] {
        var raw: [UInt8] = []
        for row in rows {
            raw.append(0)
            raw.append(contentsOf: row)
        }
        var zlib: [UInt8] = [0x78, 0x01]
        var offset = 0
        repeat {
            let length = min(65535, raw.count - offset)
            let last: UInt8 = offset + length == raw.count ? 1 : 0
            zlib.append(last)
            zlib.append(contentsOf: [UInt8(length & 0xFF), UInt8(length >> 8), UInt8(~length & 0xFF), UInt8((~length >> 8) & 0xFF)])
            zlib.append(contentsOf: raw[offset..<offset + length])
            offset += length
        } while offset < raw.count
        zlib.append(contentsOf: bigEndian(adler32(raw)))
        var png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        png += chunk("IHDR", bigEndian(UInt32(width)) + bigEndian(UInt32(height)) + [8, colourType, 0, 0, 0])
        png += chunk("IDAT", zlib)
        png += chunk("IEND", [])
        return png
    }

    private static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let typeBytes = Array(type.utf8)
        return bigEndian(UInt32(data.count)) + typeBytes + data + bigEndian(crc32(typeBytes + data))
    }

    private static func bigEndian(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)]
    }

    private static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return ~crc
    }

    private static func adler32(_ bytes: [UInt8]) -> UInt32 {
        var a: UInt32 = 1
        var b: UInt32 = 0
        for byte in bytes {
            a = (a + UInt32(byte)) % 65521
            b = (b + a) % 65521
        }
        return b << 16 | a
    }
}
