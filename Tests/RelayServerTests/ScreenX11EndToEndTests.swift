import Foundation
import NIOPosix
import RelayClient
import RelayScreen
import RelayTestSupport
import RelayWire
import Synchronization
import Testing

@testable import RelayServer

/// A real X desktop through the relay: the host shares an Xvfb display (MIT-SHM capture),
/// the viewer clicks and types into a real X client (xev) on it. The test starts its own
/// Xvfb, so it never fights other X tests over the pointer and focus of a shared display.
@Suite(.enabled(if: XvfbDisplay.toolsInstalled, "Xvfb and xev are not installed (Debian: xvfb x11-utils); scripts/test.sh installs them"))
struct ScreenX11EndToEndTests {
    @Test("the viewer sees what an X client drew and its clicks and keys arrive in that client")
    func typingIntoAnXClient() async throws {
        let display = try await NIOThreadPool.singleton.runIfActive { try XvfbDisplay.start(width: 640, height: 400) }
        defer { display.stop() }
        // xev's window at a known place; it prints every key and button event it gets.
        let xev = try display.launch("/usr/bin/xev", "-geometry", "300x200+100+80", "-event", "keyboard", "-event", "button", "-event", "structure")
        defer { xev.process.terminate() }
        #expect(await eventually { xev.output().contains("MapNotify") }, "xev's window never appeared")

        let source = try ScreenSourceSpecification(parsing: "x11:\(display.name)").open(fps: 30, loop: false)
        let typed = "relay"
        try await TestRelay.with { relay in
            // The screen does not change when xev gets events, so no further update comes:
            // after the input, the viewer waits for xev to report it, then says Bye.
            let result = try await ScreenEndToEndTests.stream(source, through: relay, stopsWithBye: true) { event in
                if case .update(_, _, _, let framebuffer) = event {
                    #expect(framebuffer.width == 640 && framebuffer.height == 400)
                }
                return .continue
            } afterFirstUpdate: { sender in
                var frames = [
                    try Frame(.pointer(Pointer(x: 250, y: 180))),
                    try Frame(.pointer(Pointer(x: 250, y: 180, buttons: .left))),
                    try Frame(.pointer(Pointer(x: 250, y: 180))),
                ]
                for scalar in typed.unicodeScalars {
                    frames.append(try Frame(.key(Key(keysym: scalar.value, isDown: true))))
                    frames.append(try Frame(.key(Key(keysym: scalar.value, isDown: false))))
                }
                try await sender.send(frames: frames)
                _ = await eventually { xev.output().contains("keysym 0x79, y") }
                try await sender.send(.bye(Bye(reason: .normal, text: "the engineer closed the viewer")))
            }
            let output = xev.output()
            #expect(output.contains("ButtonPress event"), "the click never reached xev")
            for scalar in typed.unicodeScalars {
                #expect(output.contains(String(format: "keysym 0x%x, %@", scalar.value, String(scalar))), "\(scalar) never reached xev")
            }
            // What the viewer reconstructed is what the display shows (xev's window included).
            let direct = try source.capture()
            #expect(result.viewer.framebuffer == direct)
            #expect(direct.rgb(x: 250, y: 180) == 0xFF_FF_FF, "xev's white window is not where it was drawn")
        }
    }
}

extension XvfbDisplay {
    /// Xvfb and xev, which the end-to-end X tests run.
    static let toolsInstalled = XvfbDisplay.isInstalled && FileManager.default.isExecutableFile(atPath: "/usr/bin/xev")

    /// Starts an X client on this display, collecting what it prints.
    func launch(_ tool: String, _ arguments: String...) throws -> (process: Process, output: @Sendable () -> String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = ["-display", self.name] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        let collected = CollectedOutput(pipe)
        try process.run()
        return (process, { collected.text })
    }
}

/// What a child process prints, collected as it arrives (its pipe's handler runs on
/// another thread).
final class CollectedOutput: Sendable {
    private let data = Mutex(Data())

    init(_ pipe: Pipe) {
        pipe.fileHandleForReading.readabilityHandler = { [self] handle in self.append(handle.availableData) }
    }

    private func append(_ chunk: Data) { self.data.withLock { $0.append(chunk) } }

    /// Everything printed so far, as UTF-8.
    var text: String { String(decoding: self.data.withLock { $0 }, as: UTF8.self) }
}
