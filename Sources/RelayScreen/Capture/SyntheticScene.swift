public import RelayTileCodec
public import RelayWire

/// A generated desktop for tests and demos: `frame(index:input:)` is a pure function of
/// the scene (kind, size, seed), the frame index and the input drawn over it, so a test
/// computes the frame a source showed.
///
/// - `scrolling-text`: a terminal whose page scrolls up by one whole text line per frame,
///   under a title bar and above a prompt line.
/// - `moving-window`: a window (title bar, text content) dragged across a gradient
///   desktop, a few pixels per frame, bouncing off the edges.
/// - `video`: a static desktop with a player window whose picture is new noise each frame.
///
/// Typed text (`SyntheticInput`) is drawn in the terminal's prompt or the desktop's
/// taskbar, and the pointer as a small square, so injected input visibly arrives.
public struct SyntheticScene: Sendable {
    /// The scenes `synthetic:NAME` offers.
    public enum Kind: String, CaseIterable, Sendable, Hashable {
        case scrollingText = "scrolling-text"
        case movingWindow = "moving-window"
        case video

        /// One line for `--source help`.
        public var summary: String {
            switch self {
            case .scrollingText: "a terminal scrolling by one text line per frame"
            case .movingWindow: "a window dragged across a desktop"
            case .video: "a static desktop with a noisy video region"
            }
        }
    }

    /// The smallest size a scene lays out in (a title bar, two text lines, a prompt).
    public static let minimumSize = (width: 96, height: 96)

    public let kind: Kind
    public let width: Int
    public let height: Int
    public let seed: UInt64

    /// What does not change from frame to frame: the terminal's chrome or the desktop.
    private let backdrop: Canvas
    /// The scrolling-text page (a cycle of text lines, one `GlyphFont.cellHeight` each),
    /// or the moving window's picture.
    private let layer: Canvas
    let layout: Layout

    /// A scene of `kind`; `seed` varies the text and the noise.
    public init(_ kind: Kind, width: Int = 1280, height: Int = 720, seed: UInt64 = 0x5EED) {
        precondition(
            width >= Self.minimumSize.width && height >= Self.minimumSize.height,
            "a synthetic scene is at least \(Self.minimumSize.width)×\(Self.minimumSize.height)")
        self.kind = kind
        self.width = width
        self.height = height
        self.seed = seed
        let layout = Layout(kind: kind, width: width, height: height)
        self.layout = layout
        switch kind {
        case .scrollingText:
            self.backdrop = Self.terminalChrome(layout, seed: seed)
            self.layer = Self.textPage(layout, seed: seed)
        case .movingWindow:
            self.backdrop = Self.desktop(layout, seed: seed)
            self.layer = Self.window(
                width: layout.window.width, height: layout.window.height,
                title: "Quarterly report - Editor", seed: seed)
        case .video:
            var desktop = Self.desktop(layout, seed: seed)
            desktop.blit(
                Self.window(
                    width: layout.window.width, height: layout.window.height,
                    title: "Training video - Player", seed: seed),
                x: layout.window.x, y: layout.window.y)
            self.backdrop = desktop
            self.layer = Canvas(width: 1, height: 1, fill: 0)
        }
    }

    /// Frame `index` (0, 1, …) with `input` drawn over it.
    public func frame(index: Int, input: SyntheticInput = SyntheticInput()) -> Framebuffer {
        precondition(index >= 0, "frame indexes start at 0")
        var canvas = self.backdrop
        switch self.kind {
        case .scrollingText:
            self.drawScrolledPage(into: &canvas, index: index)
        case .movingWindow:
            let position = self.layout.windowPosition(index: index)
            canvas.blit(self.layer, x: position.x, y: position.y)
        case .video:
            self.drawNoise(into: &canvas, index: index)
        }
        self.drawInput(input, into: &canvas)
        return canvas.framebuffer
    }

    // MARK: Layout

    /// Where things are, from the scene's size.
    struct Layout: Sendable {
        let width: Int
        let height: Int
        /// Scrolling text: the terminal's title bar, text rows and prompt line.
        let titleHeight = 24
        let textTop: Int
        let textRows: Int
        let promptTop: Int
        /// Page lines pre-rendered; the page repeats after this many lines.
        let pageLines: Int
        /// Desktops: the taskbar along the bottom.
        let taskbarHeight = 28
        /// The moving window's size, or the video player's frame.
        let window: (x: Int, y: Int, width: Int, height: Int)
        /// The video player's picture (inside `window`).
        let picture: (x: Int, y: Int, width: Int, height: Int)

        init(kind: Kind, width: Int, height: Int) {
            self.width = width
            self.height = height
            self.promptTop = height - GlyphFont.cellHeight - 4
            self.textTop = self.titleHeight
            self.textRows = max((self.promptTop - self.textTop) / GlyphFont.cellHeight, 1)
            self.pageLines = max(self.textRows * 2, 64)
            let desktopHeight = height - self.taskbarHeight
            switch kind {
            case .video:
                let w = width * 3 / 5
                let h = desktopHeight * 3 / 5
                self.window = ((width - w) / 2, (desktopHeight - h) / 2, w, h)
            default:
                self.window = (0, 0, width * 9 / 20, desktopHeight / 2)
            }
            self.picture = (
                self.window.x + 4, self.window.y + SyntheticScene.windowTitleHeight,
                self.window.width - 8, self.window.height - SyntheticScene.windowTitleHeight - 4
            )
        }

        /// The moving window's top-left corner in frame `index`: 8 px right and 5 px down
        /// per frame, bouncing between the desktop's edges.
        func windowPosition(index: Int) -> (x: Int, y: Int) {
            let rangeX = self.width - self.window.width
            let rangeY = self.height - self.taskbarHeight - self.window.height
            return (Self.bounce(index &* 8, within: rangeX), Self.bounce(index &* 5, within: rangeY))
        }

        private static func bounce(_ travelled: Int, within range: Int) -> Int {
            guard range > 0 else { return 0 }
            let phase = travelled % (2 * range)
            return phase <= range ? phase : 2 * range - phase
        }
    }

    // MARK: Terminal

    static let terminalBackground: UInt32 = 0x1E1E1E
    static let terminalText: UInt32 = 0xD4D4D4
    static let promptColour: UInt32 = 0x8AE234

    private static func terminalChrome(_ layout: Layout, seed: UInt64) -> Canvas {
        var canvas = Canvas(width: layout.width, height: layout.height, fill: terminalBackground)
        canvas.fill(x: 0, y: 0, width: layout.width, height: layout.titleHeight, rgb: 0x3A3A3A)
        canvas.drawText("support@endpoint: ~/src/relay".unicodeScalars, x: 8, y: 4, rgb: 0xEEEEEE)
        canvas.fill(x: 0, y: layout.promptTop - 2, width: layout.width, height: 1, rgb: 0x444444)
        canvas.drawText("$ ".unicodeScalars, x: 4, y: layout.promptTop, rgb: promptColour)
        return canvas
    }

    /// `pageLines` lines of generated source text, one cell-height row band each.
    private static func textPage(_ layout: Layout, seed: UInt64) -> Canvas {
        var page = Canvas(width: layout.width, height: layout.pageLines * GlyphFont.cellHeight, fill: terminalBackground)
        for line in 0..<layout.pageLines {
            var x = 4
            for (text, colour) in TextLines.line(line, seed: seed) {
                x = page.drawText(text.unicodeScalars, x: x, y: line * GlyphFont.cellHeight, rgb: colour, maximumX: layout.width - 4)
            }
        }
        return page
    }

    /// Text rows show page lines `index`, `index + 1`, … (wrapping round the page): each
    /// frame the text moves up by exactly one line.
    private func drawScrolledPage(into canvas: inout Canvas, index: Int) {
        let lines = self.layout.pageLines
        for row in 0..<self.layout.textRows {
            let line = (index % lines + row) % lines
            canvas.blit(
                self.layer, sourceY: line * GlyphFont.cellHeight, rows: GlyphFont.cellHeight,
                x: 0, y: self.layout.textTop + row * GlyphFont.cellHeight)
        }
    }

    // MARK: Desktop

    static let windowTitleHeight = 22

    private static func desktop(_ layout: Layout, seed: UInt64) -> Canvas {
        var canvas = Canvas(width: layout.width, height: layout.height, fill: 0)
        let desktopHeight = layout.height - layout.taskbarHeight
        canvas.verticalGradient(x: 0, y: 0, width: layout.width, height: desktopHeight, top: 0x2B5876, bottom: 0x4E4376)
        // Desktop icons down the left edge, each a tile with a label.
        let labels = ["Home", "Trash", "Reports", "Support"]
        for (number, label) in labels.enumerated() {
            let y = 12 + number * 72
            guard y + 60 < desktopHeight else { break }
            canvas.fill(x: 20, y: y, width: 40, height: 40, rgb: [0xE8C547, 0xB0B0B0, 0x5DA9E9, 0x6BCB77][number])
            canvas.fill(x: 26, y: y + 6, width: 28, height: 6, rgb: 0xFFFFFF)
            canvas.drawText(label.unicodeScalars, x: 12, y: y + 42, rgb: 0xFFFFFF, maximumX: 90)
        }
        canvas.fill(x: 0, y: desktopHeight, width: layout.width, height: layout.taskbarHeight, rgb: 0x202020)
        canvas.fill(x: 4, y: desktopHeight + 4, width: 60, height: layout.taskbarHeight - 8, rgb: 0x3C6EB4)
        canvas.drawText("Start".unicodeScalars, x: 12, y: desktopHeight + 4, rgb: 0xFFFFFF)
        canvas.fill(x: 72, y: desktopHeight + 4, width: min(400, layout.width - 160), height: layout.taskbarHeight - 8, rgb: 0xF0F0F0)
        canvas.drawText("09:41".unicodeScalars, x: layout.width - 48, y: desktopHeight + 4, rgb: 0xFFFFFF)
        return canvas
    }

    private static func window(width: Int, height: Int, title: String, seed: UInt64) -> Canvas {
        var canvas = Canvas(width: width, height: height, fill: 0xF5F5F5)
        canvas.fill(x: 0, y: 0, width: width, height: windowTitleHeight, rgb: 0x3C6EB4)
        canvas.drawText(title.unicodeScalars, x: 6, y: 3, rgb: 0xFFFFFF, maximumX: width - 60)
        for (number, colour) in [UInt32(0xE0443E), 0xDEA123, 0x1AAB29].enumerated() {
            canvas.fill(x: width - 20 - number * 18, y: 5, width: 12, height: 12, rgb: colour)
        }
        // A one-pixel frame round the window.
        canvas.fill(x: 0, y: 0, width: width, height: 1, rgb: 0x1F3F6F)
        canvas.fill(x: 0, y: height - 1, width: width, height: 1, rgb: 0x1F3F6F)
        canvas.fill(x: 0, y: 0, width: 1, height: height, rgb: 0x1F3F6F)
        canvas.fill(x: width - 1, y: 0, width: 1, height: height, rgb: 0x1F3F6F)
        var line = 0
        var y = windowTitleHeight + 6
        while y + GlyphFont.cellHeight < height - 2 {
            var x = 8
            for (text, _) in TextLines.line(line, seed: seed ^ 0xD0C) {
                x = canvas.drawText(text.unicodeScalars, x: x, y: y, rgb: 0x202020, maximumX: width - 8)
            }
            line += 1
            y += GlyphFont.cellHeight
        }
        return canvas
    }

    /// The player's picture: new noise every frame, from the seed and the index.
    private func drawNoise(into canvas: inout Canvas, index: Int) {
        let picture = self.layout.picture
        guard picture.width > 0, picture.height > 0 else { return }
        var generator = SplitMix64(seed: self.seed ^ (UInt64(index) &* 0xA076_1D64_78BD_642F))
        let stride = canvas.width * 4
        canvas.pixels.withUnsafeMutableBytes { bytes in
            for row in 0..<picture.height {
                var offset = (picture.y + row) * stride + picture.x * 4
                var column = 0
                while column < picture.width {
                    let random = generator.next()
                    bytes.storeBytes(of: UInt32(truncatingIfNeeded: random & 0xFF_FFFF).littleEndian, toByteOffset: offset, as: UInt32.self)
                    if column + 1 < picture.width {
                        bytes.storeBytes(
                            of: UInt32(truncatingIfNeeded: (random >> 32) & 0xFF_FFFF).littleEndian,
                            toByteOffset: offset + 4, as: UInt32.self)
                    }
                    offset += 8
                    column += 2
                }
            }
        }
    }

    // MARK: Input

    /// The typed text's last line, in the terminal's prompt or the taskbar's text field,
    /// and the pointer as a 7×7 square (white, red while a button is held).
    private func drawInput(_ input: SyntheticInput, into canvas: inout Canvas) {
        let lastLine = input.typedText.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false).last ?? []
        switch self.kind {
        case .scrollingText:
            let x = 4 + 2 * GlyphFont.cellWidth
            let fits = max((self.width - x - 4) / GlyphFont.cellWidth, 0)
            canvas.drawText(lastLine.suffix(fits), x: x, y: self.layout.promptTop, rgb: Self.terminalText)
        case .movingWindow, .video:
            let fieldWidth = min(400, self.width - 160)
            let fits = max((fieldWidth - 8) / GlyphFont.cellWidth, 0)
            canvas.drawText(
                lastLine.suffix(fits), x: 76, y: self.height - self.layout.taskbarHeight + 4, rgb: 0x101010,
                maximumX: 72 + fieldWidth)
        }
        if let pointer = input.pointer {
            let x = Int(pointer.x)
            let y = Int(pointer.y)
            canvas.fill(x: x - 3, y: y - 3, width: 7, height: 7, rgb: 0x000000)
            canvas.fill(x: x - 2, y: y - 2, width: 5, height: 5, rgb: pointer.buttons.isEmpty ? 0xFFFFFF : 0xFF0000)
        }
    }
}

/// The input a synthetic source received, drawn into its frames.
public struct SyntheticInput: Sendable, Hashable {
    /// At most this many characters are kept, the oldest dropped first.
    public static let maximumTextLength = 4096

    /// Text typed so far: printable keysyms appended, Return as a newline, BackSpace
    /// removing the last character.
    public private(set) var typedText: String = ""
    /// The last pointer event.
    public private(set) var pointer: Pointer?
    /// Key presses recorded (releases are not counted).
    public private(set) var keyPresses = 0

    public init() {}

    /// Records a key event; only presses change the text.
    public mutating func record(_ key: Key) {
        guard key.isDown else { return }
        self.keyPresses += 1
        if key.keysym == Keysym.backspace {
            if !self.typedText.isEmpty { self.typedText.removeLast() }
        } else if let scalar = Keysym.scalar(for: key.keysym), scalar != "\t" {
            self.typedText.unicodeScalars.append(scalar)
            if self.typedText.unicodeScalars.count > Self.maximumTextLength {
                self.typedText.unicodeScalars.removeFirst(self.typedText.unicodeScalars.count - Self.maximumTextLength)
            }
        }
    }

    /// Records a pointer event.
    public mutating func record(_ pointer: Pointer) {
        self.pointer = pointer
    }
}
