import CX11
import Foundation
import NIOPosix
import RelayClient
import RelayScreen
import RelayTestSupport
import RelayWire
import Testing

@testable import RelayServer

/// Ctrl-C on a real `relay-agent host` (issue 10, item 6; REVIEW.md D4): the engineer
/// holds a key, a remapped key and a mouse button on an Xvfb display, the agent gets
/// SIGINT, and afterwards the display has no key or button down and its keyboard mapping
/// is the one it had before; the engineer is told the session ended.
@Suite(.enabled(if: XvfbDisplay.toolsInstalled, "Xvfb is not installed (Debian: xvfb x11-utils); scripts/test.sh installs them"))
struct HostSignalTests {
    /// The `relay-agent` executable built beside this test bundle.
    static func agentExecutable() throws -> URL { try BuiltExecutable.url("relay-agent") }

    /// What the X server says about its keyboard and pointer.
    struct XState: Equatable {
        var keysDown: [Int]
        var mapping: [KeySym]
        var buttonsDown: UInt32

        static func read(_ displayName: String) throws -> XState {
            guard let display = XOpenDisplay(displayName) else { throw TestFailure("cannot open \(displayName)") }
            defer { XCloseDisplay(display) }
            var keys = [CChar](repeating: 0, count: 32)
            XQueryKeymap(display, &keys)
            let down = (0..<256).filter { UInt8(bitPattern: keys[$0 / 8]) & (1 << ($0 % 8)) != 0 }
            var minimum: Int32 = 0
            var maximum: Int32 = 0
            XDisplayKeycodes(display, &minimum, &maximum)
            var perKeycode: Int32 = 0
            let count = maximum - minimum + 1
            var mapping: [KeySym] = []
            if let symbols = XGetKeyboardMapping(display, KeyCode(minimum), count, &perKeycode) {
                mapping = (0..<Int(count * perKeycode)).map { symbols[$0] }
                XFree(symbols)
            }
            var root: Window = 0
            var child: Window = 0
            var rootX: Int32 = 0
            var rootY: Int32 = 0
            var windowX: Int32 = 0
            var windowY: Int32 = 0
            var mask: UInt32 = 0
            XQueryPointer(display, XDefaultRootWindow(display), &root, &child, &rootX, &rootY, &windowX, &windowY, &mask)
            // Button1Mask … Button5Mask are bits 8–12.
            return XState(keysDown: down, mapping: mapping, buttonsDown: mask & (0x1F << 8))
        }
    }

    @Test(
        "SIGINT and SIGTERM end the session with a Bye, release held keys and buttons and restore the keymap", .timeLimit(.minutes(2)),
        arguments: [SIGINT, SIGTERM])
    func signalRestoresTheDisplay(signal: Int32) async throws {
        let agent = try Self.agentExecutable()
        let display = try await NIOThreadPool.singleton.runIfActive { try XvfbDisplay.start(width: 320, height: 200) }
        defer { display.stop() }
        // Xvfb resets (forgetting held keys and keymap changes) when its last client
        // leaves: this connection stays open so that what the agent leaves behind is seen.
        guard let keeper = XOpenDisplay(display.name) else { throw TestFailure("cannot open \(display.name)") }
        defer { XCloseDisplay(keeper) }
        let before = try XState.read(display.name)
        #expect(before.keysDown.isEmpty && before.buttonsDown == 0)

        try await TestRelay.with { relay in
            let caFile = FileManager.default.temporaryDirectory.appendingPathComponent("relay-ca-\(UUID().uuidString).pem").path
            try relay.authority.certificatePEM.write(toFile: caFile, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(atPath: caFile) }

            try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { viewer in
                try await viewer.hello(role: .viewer)
                guard
                    case .codeIssued(let issued) = try await viewer.authenticate(viewer: ViewerAuth(token: relay.acme.engineerToken, request: .newSupportCode))
                else {
                    throw TestFailure("no code issued")
                }
                let host = Process()
                host.executableURL = agent
                host.arguments = [
                    "host", "--relay", "localhost:\(relay.port)", "--ca", caFile, "--code", "\(issued.code)", "--accept", "full",
                    "--source", "x11:\(display.name)", "--fps", "10",
                ]
                let output = Pipe()
                host.standardOutput = output
                host.standardError = output
                host.standardInput = FileHandle.nullDevice
                // The agent's keys go to a folder of the test's, not the user's.
                let config = FileManager.default.temporaryDirectory.appendingPathComponent("relay-config-\(UUID().uuidString)").path
                defer { try? FileManager.default.removeItem(atPath: config) }
                host.environment = ProcessInfo.processInfo.environment.merging(["XDG_CONFIG_HOME": config]) { $1 }
                let collected = CollectedOutput(output)
                try host.run()
                defer { if host.isRunning { host.terminate() } }
                let printed = { collected.text }

                let secure = try await ScreenEndToEndTests.secure(viewer, .viewer, try await viewer.waitForPairing())
                let sender = secure.sender
                var interrupted = false
                let outcome = try await ViewerScreenSession().run(on: secure) { event in
                    guard case .update = event, !interrupted else { return .continue }
                    interrupted = true
                    // A key the keyboard has ('a'), one it has not (Hangul 회, remapped onto
                    // a spare keycode), and the left button, all held.
                    try await sender.send(frames: [
                        try Frame(.key(Key(keysym: 0x61, isDown: true))),
                        try Frame(.key(Key(keysym: 0x0100_D68C, isDown: true))),
                        try Frame(.pointer(Pointer(x: 50, y: 50, buttons: .left))),
                    ])
                    let held = await eventually {
                        guard let state = try? XState.read(display.name) else { return false }
                        return state.keysDown.count >= 2 && state.buttonsDown != 0 && state.mapping != before.mapping
                    }
                    #expect(held, "the engineer's input never arrived: \(printed())")
                    kill(host.processIdentifier, signal)
                    return .continue
                }
                // The host said Bye: the relay ends the viewer's side with peer_left.
                guard case .bye(let bye) = outcome else { throw TestFailure("the viewer saw \(outcome); agent: \(printed())") }
                #expect(bye.reason == .peerLeft)
                #expect(await eventually(within: .seconds(15)) { !host.isRunning }, "the agent did not exit: \(printed())")
                #expect(host.terminationReason == .exit && host.terminationStatus == 0, "agent: \(printed())")
                #expect(printed().contains("Stopping (\(signal == SIGINT ? "SIGINT" : "SIGTERM"))"), "agent: \(printed())")
            }
        }
        let after = try XState.read(display.name)
        #expect(after.keysDown.isEmpty, "keys still down: \(after.keysDown)")
        #expect(after.buttonsDown == 0, "buttons still down: \(String(after.buttonsDown, radix: 2))")
        #expect(after.mapping == before.mapping, "the keyboard mapping was not restored")
    }
}
