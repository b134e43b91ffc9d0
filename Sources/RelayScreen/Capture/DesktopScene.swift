public import RelayTileCodec

// Desktop-like frames for the tile codec's tests and `relay-bench codec`: a wallpaper, a window with a title bar,
// a scrollable page of anti-aliased text, a caret that types, and a noisy "video"
// region. Everything is seeded, and frames are assembled from prerendered images with
// row copies (`Canvas`, shared with `SyntheticScene`), so long sequences stay fast in
// debug builds. The benchmark's recorded figures were measured on these exact pixels:
// DesktopSceneTests pins them.

/// A prerendered image of glyphs: 96 printable characters, 8×16 cells, 8 grey levels,
/// each glyph a seeded random 5×9 stroke pattern with a one-pixel soft edge.
public struct GlyphAtlas {
    public static let cellWidth = 8
    public static let cellHeight = 16
    /// levels[glyph][y * 8 + x] in 0…7.
    public let levels: [[UInt8]]

    public init(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        var glyphs: [[UInt8]] = []
        for code in 0..<96 {
            var cell = [UInt8](repeating: 0, count: Self.cellWidth * Self.cellHeight)
            if code != 0 {  // code 0 is the space
                for y in 3..<12 {
                    for x in 1..<6 where random.int(0..<3) == 0 { cell[y * Self.cellWidth + x] = 7 }
                }
                for y in 0..<Self.cellHeight {
                    for x in 0..<Self.cellWidth where cell[y * Self.cellWidth + x] == 0 {
                        let neighbours = [(x - 1, y), (x + 1, y), (x, y - 1), (x, y + 1)].filter { (nx, ny) in
                            nx >= 0 && ny >= 0 && nx < Self.cellWidth && ny < Self.cellHeight && cell[ny * Self.cellWidth + nx] == 7
                        }.count
                        if neighbours > 0 { cell[y * Self.cellWidth + x] = UInt8(min(3, neighbours + random.int(0...1))) }
                    }
                }
            }
            glyphs.append(cell)
        }
        self.levels = glyphs
    }

    /// Draws `text` with its first cell's top-left at (x, y), clipped to `canvas`.
    func draw(_ text: [UInt8], x: Int, y: Int, foreground: UInt32, background: UInt32, into canvas: inout Canvas) {
        for (offset, character) in text.enumerated() {
            canvas.drawCell(
                self.levels[Int(character &- 32) % 96], cellWidth: Self.cellWidth, x: x + offset * Self.cellWidth, y: y,
                foreground: foreground, background: background)
        }
    }
}

/// A tall page of text, prerendered: a window shows a viewport of it.
public struct TextDocument {
    public static let lineHeight = 16
    var image: Canvas
    public let atlas: GlyphAtlas
    public static let background: UInt32 = 0xFAFAF5

    public init(width: Int, lines: Int, seed: UInt64, atlas: GlyphAtlas) {
        self.atlas = atlas
        self.image = Canvas(width: width, height: lines * Self.lineHeight, fill: Self.background)
        var random = SplitMix64(seed: seed)
        let columns = width / GlyphAtlas.cellWidth - 2
        let inks: [UInt32] = [0x202020, 0x1040A0, 0xA02020]  // text, keywords, strings
        for line in 0..<lines {
            let length = random.oneIn(6) ? 0 : random.int(columns / 4...columns)
            var text: [UInt8] = []
            while text.count < length {
                let word = random.int(1...9)
                for _ in 0..<word { text.append(UInt8(random.int(33...126))) }
                text.append(32)
            }
            text = Array(text.prefix(length))
            atlas.draw(
                text, x: GlyphAtlas.cellWidth, y: line * Self.lineHeight,
                foreground: random.oneIn(5) ? random.pick(inks) : inks[0], background: Self.background, into: &self.image)
        }
    }
}

/// A desktop: wallpaper, one window showing a document viewport, optional video region.
public struct DesktopScene {
    public var width: Int
    public var height: Int
    var wallpaper: Canvas
    public var document: TextDocument
    /// The window's frame (title bar included) on the desktop.
    public var windowX: Int
    public var windowY: Int
    public var windowWidth: Int
    public var windowHeight: Int
    /// The document row at the top of the viewport.
    public var scroll = 0
    public var video: (x: Int, y: Int, width: Int, height: Int)? = nil
    var random: SplitMix64

    public static let titleHeight = 20

    public init(width: Int, height: Int, seed: UInt64) {
        self.width = width
        self.height = height
        self.random = SplitMix64(seed: seed)
        let atlas = GlyphAtlas(seed: seed ^ 0xA5A5)
        // Wallpaper: bands of a soft gradient, so uncovered desktop is not one colour.
        var wallpaper = Canvas(width: width, height: height, fill: 0)
        for y in 0..<height {
            for x in 0..<width {
                let shade = UInt32((x / 24 + y / 24) % 6) * 6
                wallpaper.store(0x203050 &+ shade << 16 &+ shade << 8 &+ shade, x: x, y: y)
            }
        }
        self.wallpaper = wallpaper
        self.windowWidth = max(64, width * 3 / 4)
        self.windowHeight = max(64, height * 3 / 4)
        self.windowX = width / 10
        self.windowY = height / 10
        self.document = TextDocument(width: self.windowWidth - 12, lines: 4 * height / TextDocument.lineHeight + 40, seed: seed, atlas: atlas)
    }

    public var viewportHeight: Int { self.windowHeight - Self.titleHeight }
    public var maximumScroll: Int { self.document.image.height - self.viewportHeight }

    public mutating func scroll(by pixels: Int) {
        self.scroll = min(max(0, self.scroll + pixels), self.maximumScroll)
    }

    public mutating func moveWindow(dx: Int, dy: Int) {
        self.windowX = min(max(-self.windowWidth / 2, self.windowX + dx), self.width - 32)
        self.windowY = min(max(0, self.windowY + dy), self.height - 32)
    }

    /// Types one character at the end of the line in the middle of the viewport.
    public mutating func type(_ character: UInt8, column: Int) {
        let line = (self.scroll + self.viewportHeight / 2) / TextDocument.lineHeight
        self.document.atlas.draw(
            [character], x: GlyphAtlas.cellWidth * (1 + column), y: line * TextDocument.lineHeight,
            foreground: 0x202020, background: TextDocument.background, into: &self.document.image)
    }

    public func render() -> Framebuffer {
        var canvas = self.wallpaper
        // The window: title bar, scroll bar track and thumb, document viewport; the canvas
        // clips what lies off the screen.
        let top = self.windowY + Self.titleHeight
        canvas.fill(x: self.windowX, y: self.windowY, width: self.windowWidth, height: Self.titleHeight - 1, rgb: 0x3060C0)
        canvas.fill(x: self.windowX, y: top - 1, width: self.windowWidth, height: 1, rgb: 0x808080)
        let scrollbarX = self.windowX + self.windowWidth - 12
        let thumbTop = self.scroll * (self.viewportHeight - 24) / max(1, self.maximumScroll)
        canvas.fill(x: scrollbarX, y: top, width: 12, height: self.viewportHeight, rgb: 0xE0E0E0)
        canvas.fill(x: scrollbarX, y: top + thumbTop, width: 12, height: max(0, min(24, self.viewportHeight - thumbTop)), rgb: 0x909090)
        canvas.blit(self.document.image, sourceY: self.scroll, rows: self.viewportHeight, x: self.windowX, y: top)
        if let video = self.video {
            var random = self.random
            for y in video.y..<min(self.height, video.y + video.height) {
                for x in video.x..<min(self.width, video.x + video.width) {
                    canvas.store(UInt32(truncatingIfNeeded: random.next()) & 0xFFFFFF, x: x, y: y)
                }
            }
        }
        return canvas.framebuffer
    }

    /// Advances the noisy region's seed, so the next render shows a new video frame.
    /// (A fresh generator: a step of the same one would show the last frame shifted by one
    /// pixel, which deflate finds.)
    public mutating func nextVideoFrame() { self.random = SplitMix64(seed: self.random.next()) }
}

extension SplitMix64 {
    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &self) }
    mutating func int(_ range: Range<Int>) -> Int { Int.random(in: range, using: &self) }
    mutating func oneIn(_ n: Int) -> Bool { self.int(0..<n) == 0 }
    mutating func pick<C: Collection>(_ collection: C) -> C.Element { collection.randomElement(using: &self)! }
}
