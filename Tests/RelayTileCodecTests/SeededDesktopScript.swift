import RelayScreen
import RelayTestSupport

/// The seeded script of desktop activity the codec tests replay: typing, scrolling, window
/// drags, video and full refreshes, drawn at random from one generator. The round-trip
/// test and the encoder's pinned output both run it; the order of the generator's draws is
/// part of the pinned hashes (TileEncoderOutputTests), so change it only with them.
enum SeededDesktopScript {
    /// Changes `scene` by one random step; returns whether the step asks for a full refresh.
    static func step(_ scene: inout DesktopScene, _ random: inout SeededRandom) -> Bool {
        switch random.int(0..<10) {
        case 0, 1: scene.type(UInt8(random.int(33...126)), column: random.int(0..<30))
        case 2, 3: scene.scroll(by: random.int(-50...50))
        case 4, 5: scene.moveWindow(dx: random.int(-60...60), dy: random.int(-40...40))
        case 6:
            scene.video = random.oneIn(2) ? nil : (x: random.int(0..<300), y: random.int(0..<250), width: random.int(8...100), height: random.int(8...100))
            scene.nextVideoFrame()
        case 7: scene.nextVideoFrame()
        case 8: return true
        default: scene.scroll(by: TextDocument.lineHeight)
        }
        return false
    }
}
