import Foundation
import RelayScreen
import RelayTestSupport
import RelayWire
import Testing

/// The capture side of benchmarks/frames/record.sh, which starts Xvfb and real
/// applications and sets the variables below; this records what the X11 source sees, so
/// the benchmark frames are exactly the BGRX frames a host would send.
///
/// - `RELAY_RECORD_DIR`: the folder for 0001.png, 0002.png, …
/// - `RELAY_RECORD_FRAMES`: how many frames
/// - `RELAY_RECORD_STEP`: a shell command run after each frame (e.g. `xdotool key Down`)
/// - `RELAY_RECORD_SETTLE_MS`: how long the applications get to redraw after a step
private let recording: [String: String]? = {
    let environment = ProcessInfo.processInfo.environment
    return environment["RELAY_RECORD_DIR"] == nil ? nil : environment
}()

@Suite(.enabled(if: recording != nil, "records benchmark frames only when run by benchmarks/frames/record.sh"))
struct FrameRecording {
    @Test func recordFrames() throws {
        let environment = try #require(recording)
        let folder = try #require(environment["RELAY_RECORD_DIR"])
        let count = Int(environment["RELAY_RECORD_FRAMES"] ?? "") ?? 40
        let step = environment["RELAY_RECORD_STEP"] ?? ""
        let settle = Int(environment["RELAY_RECORD_SETTLE_MS"] ?? "") ?? 150
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)

        let source = try X11ScreenSource()
        for number in 1...count {
            let frame = try source.capture()
            try PNGFile.write(frame, to: folder + "/" + String(repeating: "0", count: max(0, 4 - String(number).count)) + "\(number).png")
            guard number < count, !step.isEmpty else { continue }
            let shell = try SpawnedProgram.run(path: "/bin/sh", arguments: ["-c", step], environment: ProcessInfo.processInfo.environment)
            #expect(shell.status == 0, "step `\(step)` failed: \(String(decoding: shell.errors, as: UTF8.self))")
            usleep(UInt32(settle) * 1000)
        }
        // What was written replays as one folder.
        let replay = try ReplayScreenSource(folder: folder, fps: 30)
        #expect(replay.frameCount == count)
    }
}
