import RelayScreen
import RelayTileCodec
import RelayWire
import Testing

@Suite struct ReplayScreenSourceTests {
    /// Frames named out of plain-text order: natural order is frame1, frame2, frame10.
    private static let frames: [(name: String, rgb: UInt32)] = [("frame10.png", 0x0000AA), ("frame1.png", 0xAA0000), ("frame2.png", 0x00AA00)]

    private static func folderOfFrames() throws -> TemporaryFolder {
        let folder = try TemporaryFolder()
        for frame in Self.frames {
            try PNGFile.write(Framebuffer(width: 8, height: 6, fill: frame.rgb), to: folder.file(frame.name))
        }
        // Not frames: ignored.
        try folder.write(Array("recorded with record.sh".utf8), to: "README.txt")
        try folder.write(Array("hidden".utf8), to: ".frame0.png")
        return folder
    }

    @Test func playsFramesInNaturalNameOrderAtTheFrameRateThenHoldsTheLast() throws {
        let folder = try Self.folderOfFrames()
        defer { folder.remove() }
        let clock = ManualClock()
        clock.set(.seconds(100))  // the clock's origin is irrelevant: time counts from the first capture
        let source = try ReplayScreenSource(folder: folder.path, fps: 10, clock: clock.screenClock)
        #expect(source.frameFiles == ["frame1.png", "frame2.png", "frame10.png"].map { folder.file($0) })
        #expect(source.name == "replay:\(folder.path)")
        #expect(try source.capture().rgb(x: 0, y: 0) == 0xAA0000)
        clock.advance(by: .milliseconds(99))
        #expect(try source.capture().rgb(x: 0, y: 0) == 0xAA0000)
        clock.advance(by: .milliseconds(1))
        #expect(try source.capture().rgb(x: 0, y: 0) == 0x00AA00)
        clock.advance(by: .milliseconds(150))
        #expect(try source.capture().rgb(x: 7, y: 5) == 0x0000AA)
        clock.advance(by: .seconds(60))
        #expect(try source.capture() == Framebuffer(width: 8, height: 6, fill: 0x0000AA))
    }

    @Test func loopStartsOverAfterTheLastFrame() throws {
        let folder = try Self.folderOfFrames()
        defer { folder.remove() }
        let clock = ManualClock()
        let source = try ReplayScreenSource(folder: folder.path, fps: 4, loop: true, clock: clock.screenClock)
        var seen: [UInt32] = []
        for _ in 0..<7 {
            seen.append(try source.capture().rgb(x: 0, y: 0))
            clock.advance(by: .milliseconds(250))
        }
        #expect(seen == [0xAA0000, 0x00AA00, 0x0000AA, 0xAA0000, 0x00AA00, 0x0000AA, 0xAA0000])
    }

    @Test func skipsFramesWhenCapturedLessOftenThanTheFrameRate() throws {
        let folder = try Self.folderOfFrames()
        defer { folder.remove() }
        let clock = ManualClock()
        let source = try ReplayScreenSource(folder: folder.path, fps: 10, clock: clock.screenClock)
        _ = try source.capture()
        clock.advance(by: .milliseconds(200))
        #expect(try source.capture().rgb(x: 0, y: 0) == 0x0000AA)
    }

    @Test func framesAreReadableOneByOneForTools() throws {
        let folder = try Self.folderOfFrames()
        defer { folder.remove() }
        let source = try ReplayScreenSource(folder: folder.path, fps: 1)
        #expect(source.frameCount == 3)
        #expect(source.width == 8 && source.height == 6)
        #expect(try (0..<3).map { try source.frame(at: $0).rgb(x: 0, y: 0) } == [0xAA0000, 0x00AA00, 0x0000AA])
    }

    @Test func injectedInputIsIgnored() throws {
        let folder = try Self.folderOfFrames()
        defer { folder.remove() }
        let clock = ManualClock()
        let source = try ReplayScreenSource(folder: folder.path, fps: 10, clock: clock.screenClock)
        let before = try source.capture()
        source.inject(Pointer(x: 1, y: 1, buttons: .left))
        source.inject(Key(keysym: 0x61, isDown: true))
        #expect(try source.capture() == before)
    }

    @Test func anEmptyFolderSaysWhatToPutThere() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        try folder.write(Array("notes".utf8), to: "notes.txt")
        let error = #expect(throws: ScreenSourceError.self) { try ReplayScreenSource(folder: folder.path, fps: 10) }
        #expect(error?.kind == .emptyFolder)
        #expect(error?.message.contains("holds no .png files") == true)
    }

    @Test func aMissingFolderOrAFileSaysSo() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let missing = #expect(throws: ScreenSourceError.self) { try ReplayScreenSource(folder: folder.file("nope"), fps: 10) }
        #expect(missing?.message.contains("does not exist") == true)
        try PNGFile.write(Framebuffer(width: 2, height: 2), to: folder.file("one.png"))
        let file = #expect(throws: ScreenSourceError.self) { try ReplayScreenSource(folder: folder.file("one.png"), fps: 10) }
        #expect(file?.message.contains("is a file, not a folder") == true)
    }

    @Test func mixedSizesNameTheOddFile() throws {
        let folder = try Self.folderOfFrames()
        defer { folder.remove() }
        try PNGFile.write(Framebuffer(width: 9, height: 6), to: folder.file("frame3.png"))
        let error = #expect(throws: ScreenSourceError.self) { try ReplayScreenSource(folder: folder.path, fps: 10) }
        #expect(error?.kind == .sizeMismatch)
        #expect(error?.message.contains("\(folder.file("frame3.png")) is 9×6 but \(folder.file("frame1.png")) is 8×6") == true)
    }

    @Test func anUnreadableFrameIsNamed() throws {
        let folder = try Self.folderOfFrames()
        defer { folder.remove() }
        try folder.write(Array("not really a png".utf8), to: "frame5.png")
        let error = #expect(throws: ScreenSourceError.self) { try ReplayScreenSource(folder: folder.path, fps: 10) }
        #expect(error?.kind == .unreadableFrame)
        #expect(error?.message.contains("\(folder.file("frame5.png")) is not a PNG file") == true)
    }

    @Test func aFrameReplacedWithAnotherSizeAfterOpeningIsReported() throws {
        let folder = try Self.folderOfFrames()
        defer { folder.remove() }
        let clock = ManualClock()
        let source = try ReplayScreenSource(folder: folder.path, fps: 10, clock: clock.screenClock)
        _ = try source.capture()
        try PNGFile.write(Framebuffer(width: 3, height: 3), to: folder.file("frame2.png"))
        clock.advance(by: .milliseconds(100))
        let error = #expect(throws: ScreenSourceError.self) { try source.capture() }
        #expect(error?.kind == .sizeMismatch)
        #expect(error?.message.contains("frame2.png is now 3×3") == true)
    }

    @Test func aZeroFrameRateIsRejected() throws {
        let folder = try Self.folderOfFrames()
        defer { folder.remove() }
        let error = #expect(throws: ScreenSourceError.self) { try ReplayScreenSource(folder: folder.path, fps: -1) }
        #expect(error?.kind == .invalidFrameRate)
    }
}
