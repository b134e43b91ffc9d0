import RelayTileCodec
import RelayWire
import Testing

@testable import RelayScreen

@Suite struct SyntheticSceneTests {
    private static let width = 200
    private static let height = 150

    /// Rows `rows` of a framebuffer, as bytes.
    private static func rows(_ framebuffer: Framebuffer, _ rows: Range<Int>) -> ArraySlice<UInt8> {
        framebuffer.pixels[rows.lowerBound * framebuffer.bytesPerRow..<rows.upperBound * framebuffer.bytesPerRow]
    }

    private static func differingPixels(_ a: Framebuffer, _ b: Framebuffer) -> [(x: Int, y: Int)] {
        var result: [(Int, Int)] = []
        for y in 0..<a.height {
            for x in 0..<a.width where a.rgb(x: x, y: y) != b.rgb(x: x, y: y) { result.append((x, y)) }
        }
        return result
    }

    @Test(arguments: SyntheticScene.Kind.allCases)
    func framesAreAPureFunctionOfSceneAndIndex(_ kind: SyntheticScene.Kind) {
        let a = SyntheticScene(kind, width: Self.width, height: Self.height, seed: 7)
        let b = SyntheticScene(kind, width: Self.width, height: Self.height, seed: 7)
        for index in [0, 1, 5, 123] {
            let frame = a.frame(index: index)
            #expect(frame == b.frame(index: index))
            #expect(frame.width == Self.width && frame.height == Self.height)
            #expect(stride(from: 3, to: frame.pixels.count, by: 4).allSatisfy { frame.pixels[$0] == 0 })
        }
        #expect(a.frame(index: 3) != a.frame(index: 4), "consecutive frames of \(kind) must differ")
    }

    @Test func theDefaultSizeIs1280By720() {
        let frame = SyntheticScene(.movingWindow).frame(index: 0)
        #expect(frame.width == 1280 && frame.height == 720)
    }

    @Test func scrollingTextMovesUpByExactlyOneTextLinePerFrame() {
        let scene = SyntheticScene(.scrollingText, width: Self.width, height: Self.height)
        let layout = scene.layout
        let line = GlyphFont.cellHeight
        #expect(layout.textRows >= 3)
        let textBottom = layout.textTop + layout.textRows * line
        for index in [0, 1, 17, layout.pageLines - 1] {
            let now = scene.frame(index: index)
            let next = scene.frame(index: index + 1)
            // Every text row but the last moved up one line; the chrome stayed.
            #expect(Self.rows(next, layout.textTop..<textBottom - line) == Self.rows(now, layout.textTop + line..<textBottom))
            #expect(Self.rows(next, 0..<layout.textTop) == Self.rows(now, 0..<layout.textTop))
            #expect(Self.rows(next, textBottom..<Self.height) == Self.rows(now, textBottom..<Self.height))
            #expect(Self.rows(next, layout.textTop..<textBottom) != Self.rows(now, layout.textTop..<textBottom))
        }
    }

    @Test func scrollingTextLooksLikeTextNotNoise() {
        let frame = SyntheticScene(.scrollingText, width: 640, height: 360).frame(index: 3)
        var colours = Set<UInt32>()
        var ink = 0
        for y in 0..<frame.height {
            for x in 0..<frame.width {
                let rgb = frame.rgb(x: x, y: y)
                colours.insert(rgb)
                if rgb != SyntheticScene.terminalBackground { ink += 1 }
            }
        }
        // A handful of syntax colours on a dark background, mostly background.
        #expect(colours.count <= 12)
        #expect(ink > frame.width * frame.height / 50 && ink < frame.width * frame.height / 3)
    }

    @Test func movingWindowIsTheSameWindowFurtherAlong() {
        let scene = SyntheticScene(.movingWindow, width: 400, height: 300)
        let window = scene.layout.window
        for index in [0, 3, 9] {
            let from = scene.layout.windowPosition(index: index)
            let to = scene.layout.windowPosition(index: index + 1)
            #expect(from.x != to.x || from.y != to.y)
            let now = scene.frame(index: index)
            let next = scene.frame(index: index + 1)
            // The window's pixels are identical at its new place.
            for y in 0..<window.height {
                for x in stride(from: 0, to: window.width, by: 3) {
                    guard now.rgb(x: from.x + x, y: from.y + y) == next.rgb(x: to.x + x, y: to.y + y) else {
                        Issue.record("window pixel (\(x), \(y)) changed between frames \(index) and \(index + 1)")
                        return
                    }
                }
            }
            // The title bar sits where the window is.
            #expect(next.rgb(x: to.x + 40, y: to.y + 2) == 0x3C6EB4)
        }
        // Away from both positions the desktop is unchanged.
        #expect(scene.frame(index: 0).rgb(x: 399, y: 250) == scene.frame(index: 1).rgb(x: 399, y: 250))
    }

    @Test func movingWindowBouncesInsideTheDesktop() {
        let scene = SyntheticScene(.movingWindow, width: 400, height: 300)
        let window = scene.layout.window
        for index in 0..<500 {
            let position = scene.layout.windowPosition(index: index)
            #expect(position.x >= 0 && position.x + window.width <= 400)
            #expect(position.y >= 0 && position.y + window.height <= 300 - scene.layout.taskbarHeight)
        }
    }

    @Test func videoChangesOnlyInsideThePicture() {
        let scene = SyntheticScene(.video, width: Self.width, height: Self.height)
        let picture = scene.layout.picture
        let changed = Self.differingPixels(scene.frame(index: 10), scene.frame(index: 11))
        #expect(!changed.isEmpty)
        #expect(changed.allSatisfy { (picture.x..<picture.x + picture.width).contains($0.x) && (picture.y..<picture.y + picture.height).contains($0.y) })
        // Noise: most of the picture changes.
        #expect(changed.count > picture.width * picture.height * 9 / 10)
        let otherSeed = SyntheticScene(.video, width: Self.width, height: Self.height, seed: 8)
        #expect(otherSeed.frame(index: 10) != scene.frame(index: 10))
    }

    @Test(arguments: SyntheticScene.Kind.allCases)
    func typedTextAndThePointerAreDrawn(_ kind: SyntheticScene.Kind) {
        let scene = SyntheticScene(kind, width: Self.width, height: Self.height)
        let plain = scene.frame(index: 2)
        var input = SyntheticInput()
        for scalar in "ls -l".unicodeScalars {
            input.record(Key(keysym: Keysym.forScalar(scalar)!, isDown: true))
            input.record(Key(keysym: Keysym.forScalar(scalar)!, isDown: false))
        }
        #expect(input.typedText == "ls -l")
        #expect(input.keyPresses == 5)
        let typed = scene.frame(index: 2, input: input)
        let changed = Self.differingPixels(plain, typed)
        // Typed text lands along the bottom (prompt or taskbar).
        #expect(!changed.isEmpty)
        #expect(changed.allSatisfy { $0.y >= Self.height - 28 })

        input.record(Pointer(x: 100, y: 60, buttons: []))
        #expect(scene.frame(index: 2, input: input).rgb(x: 100, y: 60) == 0xFFFFFF)
        input.record(Pointer(x: 100, y: 60, buttons: .left))
        let pressed = scene.frame(index: 2, input: input)
        #expect(pressed.rgb(x: 100, y: 60) == 0xFF0000)
        #expect(pressed.rgb(x: 97, y: 57) == 0x000000)
    }

    @Test func backspaceAndReturnEditTheTypedText() {
        var input = SyntheticInput()
        for keysym in [UInt32(0x61), 0x62, Keysym.backspace, 0x63, Keysym.returnKey, 0x0100_AC00] {
            input.record(Key(keysym: keysym, isDown: true))
        }
        #expect(input.typedText == "ac\n가")
        input.record(Key(keysym: Keysym.backspace, isDown: true))
        input.record(Key(keysym: Keysym.backspace, isDown: true))
        #expect(input.typedText == "ac")
    }

    @Test func typedTextIsBounded() {
        var input = SyntheticInput()
        for _ in 0..<(SyntheticInput.maximumTextLength + 10) { input.record(Key(keysym: 0x78, isDown: true)) }
        #expect(input.typedText.unicodeScalars.count == SyntheticInput.maximumTextLength)
    }
}

@Suite struct SyntheticScreenSourceTests {
    @Test func advancesOneFramePerTickOfTheFrameRateFromTheFirstCapture() throws {
        let clock = ManualClock()
        clock.set(.seconds(42))
        let scene = SyntheticScene(.scrollingText, width: 160, height: 120)
        let source = try SyntheticScreenSource(scene: scene, fps: 10, clock: clock.screenClock)
        #expect(source.name == "synthetic:scrolling-text")
        #expect(source.capture() == scene.frame(index: 0))
        clock.advance(by: .milliseconds(99))
        #expect(source.capture() == scene.frame(index: 0))
        clock.advance(by: .milliseconds(1))
        #expect(source.capture() == scene.frame(index: 1))
        clock.advance(by: .milliseconds(2_350))
        #expect(source.capture() == scene.frame(index: 24))
    }

    @Test func injectedInputIsRecordedAndDrawn() throws {
        let clock = ManualClock()
        let scene = SyntheticScene(.video, width: 160, height: 120)
        let source = try SyntheticScreenSource(scene: scene, fps: 30, clock: clock.screenClock)
        source.inject(Key(keysym: 0x68, isDown: true))
        source.inject(Key(keysym: 0x68, isDown: false))
        source.inject(Key(keysym: 0x69, isDown: true))
        source.inject(Pointer(x: 20, y: 30, buttons: .right))
        #expect(source.input.typedText == "hi")
        #expect(source.input.pointer == Pointer(x: 20, y: 30, buttons: .right))
        let frame = source.capture()
        #expect(frame == scene.frame(index: 0, input: source.input))
        #expect(frame != scene.frame(index: 0))
    }

    @Test func aBadFrameRateIsRejected() {
        let error = #expect(throws: ScreenSourceError.self) {
            try SyntheticScreenSource(scene: SyntheticScene(.video, width: 160, height: 120), fps: .nan)
        }
        #expect(error?.kind == .invalidFrameRate)
    }
}
