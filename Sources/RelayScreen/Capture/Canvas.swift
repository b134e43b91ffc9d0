import RelayTileCodec

/// The one BGRX drawing surface of the generated screens (`SyntheticScene` for
/// `--source synthetic`, `DesktopScene` for the codec's tests and benchmark): rectangles,
/// gradients, glyph text in either font, and blits, all clipped to the surface. Pixels
/// are stored as a `Framebuffer`'s bytes, so a pixel read as a little-endian `UInt32` is
/// its `0x00RRGGBB` colour.
struct Canvas: Sendable {
    let width: Int
    let height: Int
    var pixels: [UInt8]

    init(width: Int, height: Int, fill rgb: UInt32) {
        self.width = width
        self.height = height
        self.pixels = Framebuffer(width: width, height: height, fill: rgb).pixels
    }

    var framebuffer: Framebuffer { Framebuffer(width: self.width, height: self.height, pixels: self.pixels) }

    /// Fills the rectangle, clipped to the canvas.
    mutating func fill(x: Int, y: Int, width: Int, height: Int, rgb: UInt32) {
        let left = max(x, 0)
        let right = min(x + width, self.width)
        let top = max(y, 0)
        let bottom = min(y + height, self.height)
        guard left < right, top < bottom else { return }
        let stride = self.width * 4
        self.pixels.withUnsafeMutableBytes { bytes in
            for row in top..<bottom {
                var offset = row * stride + left * 4
                for _ in left..<right {
                    bytes.storeBytes(of: rgb.littleEndian, toByteOffset: offset, as: UInt32.self)
                    offset += 4
                }
            }
        }
    }

    /// Sets one pixel, which must be on the canvas.
    mutating func store(_ rgb: UInt32, x: Int, y: Int) {
        let offset = (y * self.width + x) * 4
        self.pixels.withUnsafeMutableBytes { $0.storeBytes(of: rgb.littleEndian, toByteOffset: offset, as: UInt32.self) }
    }

    /// Fills each row of the rectangle with a colour blended from `top` to `bottom`.
    mutating func verticalGradient(x: Int, y: Int, width: Int, height: Int, top: UInt32, bottom: UInt32) {
        for row in 0..<height {
            self.fill(x: x, y: y + row, width: width, height: 1, rgb: Self.blend(bottom, top, weight: row, of: max(height - 1, 1)))
        }
    }

    /// Draws an anti-aliased glyph cell (`GlyphAtlas`): `levels[y * cellWidth + x]` in
    /// 0…7 blends `background` (0) into `foreground` (7). The whole cell is drawn, so the
    /// glyph replaces what was there, as a terminal's character cell does.
    mutating func drawCell(_ levels: [UInt8], cellWidth: Int, x: Int, y: Int, foreground: UInt32, background: UInt32) {
        let cellHeight = levels.count / cellWidth
        for gy in 0..<cellHeight where (0..<self.height).contains(y + gy) {
            for gx in 0..<cellWidth where (0..<self.width).contains(x + gx) {
                let level = Int(levels[gy * cellWidth + gx])
                self.store(Self.blend(foreground, background, weight: level, of: 7), x: x + gx, y: y + gy)
            }
        }
    }

    /// Copies `source` with its top-left corner at (x, y), clipped, one row at a time.
    mutating func blit(_ source: Canvas, x: Int, y: Int) {
        self.blit(source, sourceY: 0, rows: source.height, x: x, y: y)
    }

    /// Copies `rows` rows of `source` starting at `sourceY` to (x, y), clipped.
    mutating func blit(_ source: Canvas, sourceY: Int, rows: Int, x: Int, y: Int) {
        let left = max(x, 0)
        let right = min(x + source.width, self.width)
        guard left < right else { return }
        let rowBytes = (right - left) * 4
        let sourceColumn = left - x
        self.pixels.withUnsafeMutableBytes { target in
            source.pixels.withUnsafeBytes { from in
                for row in 0..<rows {
                    let targetRow = y + row
                    let sourceRow = sourceY + row
                    guard (0..<self.height).contains(targetRow), (0..<source.height).contains(sourceRow) else { continue }
                    let to = target.baseAddress! + targetRow * self.width * 4 + left * 4
                    let start = from.baseAddress! + sourceRow * source.width * 4 + sourceColumn * 4
                    to.copyMemory(from: start, byteCount: rowBytes)
                }
            }
        }
    }

    /// Draws `text` in the scenes' glyph font with the first cell's top-left corner at
    /// (x, y); stops at `maximumX`. Returns the x after the last cell drawn.
    @discardableResult
    mutating func drawText(_ text: some Sequence<Unicode.Scalar>, x: Int, y: Int, rgb: UInt32, maximumX: Int? = nil) -> Int {
        let limit = min(maximumX ?? self.width, self.width)
        var cellX = x
        for scalar in text {
            guard cellX + GlyphFont.cellWidth <= limit else { break }
            self.drawGlyph(GlyphFont.glyph(for: scalar), x: cellX, y: y, rgb: rgb)
            cellX += GlyphFont.cellWidth
        }
        return cellX
    }

    private mutating func drawGlyph(_ glyph: UInt64, x: Int, y: Int, rgb: UInt32) {
        guard glyph != 0 else { return }
        for row in 0..<GlyphFont.glyphHeight {
            for column in 0..<GlyphFont.glyphWidth where glyph & (1 << UInt64(row * GlyphFont.glyphWidth + column)) != 0 {
                let px = x + GlyphFont.glyphLeft + column
                let py = y + GlyphFont.glyphTop + row
                guard (0..<self.width).contains(px), (0..<self.height).contains(py) else { continue }
                let offset = (py * self.width + px) * 4
                self.pixels.withUnsafeMutableBytes { $0.storeBytes(of: rgb.littleEndian, toByteOffset: offset, as: UInt32.self) }
            }
        }
    }

    /// `a` weighted `weight` and `b` weighted `total − weight`, per channel, rounded
    /// down: the one colour mix of the generated screens (glyph edges, gradients).
    static func blend(_ a: UInt32, _ b: UInt32, weight: Int, of total: Int) -> UInt32 {
        let w = UInt32(weight)
        let rest = UInt32(total - weight)
        let total = UInt32(total)
        var result: UInt32 = 0
        for shift: UInt32 in [0, 8, 16] {
            let mixed = (((a >> shift) & 0xFF) * w + ((b >> shift) & 0xFF) * rest) / total
            result |= mixed << shift
        }
        return result
    }
}

/// `SyntheticScene`'s text: glyph-like 5×9 patterns in 8×16 cells, like a console font,
/// one colour and no background (`DesktopScene` draws anti-aliased cells: `GlyphAtlas`).
/// The glyphs are made from strokes chosen by a hash of the character — they look like
/// text to a codec (thin strokes, few colours, repeated shapes) without being a real font.
enum GlyphFont {
    static let cellWidth = 8
    static let cellHeight = 16
    static let glyphWidth = 5
    static let glyphHeight = 9
    static let glyphLeft = 1
    static let glyphTop = 4

    /// The glyph's pixels, bit `row * 5 + column` set where ink is.
    static func glyph(for scalar: Unicode.Scalar) -> UInt64 {
        scalar.value < 128 ? self.ascii[Int(scalar.value)] : self.makeGlyph(for: scalar)
    }

    /// ASCII's glyphs, made once: scenes draw thousands of characters.
    private static let ascii: [UInt64] = (0..<128).map { GlyphFont.makeGlyph(for: Unicode.Scalar(UInt8($0))) }

    private static func makeGlyph(for scalar: Unicode.Scalar) -> UInt64 {
        switch scalar {
        case " ", "\t", "\n": 0
        case ".": bits([(2, 8)])
        case ",": bits([(2, 7), (2, 8), (1, 8)])
        case ":": bits([(2, 3), (2, 7)])
        case ";": bits([(2, 3), (2, 7), (1, 8)])
        case "-": row(5, from: 0, to: 4)
        case "_": row(8, from: 0, to: 4)
        case "=": row(4, from: 0, to: 4) | row(6, from: 0, to: 4)
        case "+": row(5, from: 0, to: 4) | column(2, from: 3, to: 7)
        case "(": column(1, from: 1, to: 7) | bits([(2, 0), (2, 8)])
        case ")": column(3, from: 1, to: 7) | bits([(2, 0), (2, 8)])
        case "{": column(2, from: 1, to: 7) | bits([(3, 0), (3, 8), (1, 4)])
        case "}": column(2, from: 1, to: 7) | bits([(1, 0), (1, 8), (3, 4)])
        case "\"": column(1, from: 0, to: 2) | column(3, from: 0, to: 2)
        case "'": column(2, from: 0, to: 2)
        case "/": bits((0..<9).map { (4 - $0 / 2, $0) })
        default: strokes(for: scalar)
        }
    }

    private static func strokes(for scalar: Unicode.Scalar) -> UInt64 {
        var hash = SplitMix64(seed: UInt64(scalar.value) &* 0x9E37_79B9)
        let choice = hash.next()
        let isLower = ("a"..."z").contains(scalar)
        let top = isLower ? 3 : 0
        let middle = (top + 8) / 2
        var glyph: UInt64 = 0
        if choice & 1 != 0 { glyph |= column(0, from: top, to: 8) }
        if choice & 2 != 0 { glyph |= column(4, from: top, to: 8) }
        if choice & 4 != 0 { glyph |= row(top, from: 0, to: 4) }
        if choice & 8 != 0 { glyph |= row(middle, from: 0, to: 4) }
        if choice & 16 != 0 { glyph |= row(8, from: 0, to: 4) }
        if choice & 32 != 0 { glyph |= column(2, from: top, to: 8) }
        if choice & 64 != 0 { glyph |= bits((top...8).map { (($0 - top) * 4 / max(8 - top, 1), $0) }) }
        if isLower, choice & 128 != 0 { glyph |= column(choice & 256 != 0 ? 0 : 4, from: 0, to: 3) }
        if glyph.nonzeroBitCount < 10 { glyph |= column(0, from: top, to: 8) | row(8, from: 0, to: 4) }
        // Round one corner now and then, as letters' bowls are.
        if choice & 512 != 0 { glyph &= ~bits([(0, top), (4, 8)]) }
        return glyph
    }

    private static func bits(_ points: [(column: Int, row: Int)]) -> UInt64 {
        points.reduce(0) { $0 | 1 << UInt64($1.row * glyphWidth + $1.column) }
    }

    private static func row(_ row: Int, from: Int, to: Int) -> UInt64 {
        bits((from...to).map { ($0, row) })
    }

    private static func column(_ column: Int, from: Int, to: Int) -> UInt64 {
        bits((from...to).map { (column, $0) })
    }
}

/// A small, fast, seedable generator (SplitMix64), so scenes are the same on every run
/// and every platform.
struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    init(seed: UInt64) { self.state = seed }

    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
