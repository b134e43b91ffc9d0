import CX11
import Foundation
import RelayTestSupport
import RelayWire
import Testing

@testable import RelayScreen

/// Whether an X server is reachable for these tests: scripts/test.sh starts Xvfb and sets
/// DISPLAY; without one the X tests are skipped with the reason below.
private let xDisplayIsSet: Bool = {
    guard let display = ProcessInfo.processInfo.environment["DISPLAY"], !display.isEmpty else { return false }
    return true
}()

// The tests move the one pointer and keyboard focus of the display: they run one at a time.
@Suite(.serialized, .enabled(if: xDisplayIsSet, "no X display: set DISPLAY or run scripts/test.sh, which starts Xvfb"))
struct X11ScreenSourceTests {
    @Test(arguments: [true, false])
    func capturesWhatAnXClientDrew(sharedMemory: Bool) throws {
        let window = try TestWindow(x: 100, y: 80, width: 200, height: 120, background: 0x204060)
        defer { window.close() }
        window.fill(rgb: 0xFF8040, x: 20, y: 10, width: 50, height: 40)

        let source = try X11ScreenSource(display: nil, sharedMemory: sharedMemory, damage: true)
        #expect(source.usesSharedMemory == sharedMemory)
        #expect(source.name == ProcessInfo.processInfo.environment["DISPLAY"])
        let frame = try source.capture()
        #expect(frame.width == window.screenWidth && frame.height == window.screenHeight)
        #expect(frame.rgb(x: 100 + 20, y: 80 + 10) == 0xFF8040)
        #expect(frame.rgb(x: 100 + 69, y: 80 + 49) == 0xFF8040)
        #expect(frame.rgb(x: 100 + 70, y: 80 + 50) == 0x204060)
        #expect(frame.rgb(x: 100 + 19, y: 80 + 9) == 0x204060)
        #expect(frame.rgb(x: 100 + 199, y: 80 + 119) == 0x204060)
        // The window's neighbourhood is not the window's colour.
        #expect(frame.rgb(x: 99, y: 79) != 0x204060)
        #expect(stride(from: 3, to: frame.pixels.count, by: 4).allSatisfy { frame.pixels[$0] == 0 })

        // A later capture sees a later drawing.
        window.fill(rgb: 0x10E010, x: 0, y: 0, width: 10, height: 10)
        let next = try source.capture()
        #expect(next.rgb(x: 105, y: 85) == 0x10E010)
        #expect(next.rgb(x: 120, y: 90) == 0xFF8040)
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/xrandr"), "xrandr is not installed (Debian: x11-xserver-utils)"))
    func aResolutionChangeGivesFramesOfTheNewSize() throws {
        let window = try TestWindow(x: 10, y: 10, width: 100, height: 60, background: 0x336699)
        defer { window.close() }
        let original = "\(window.screenWidth)x\(window.screenHeight)"
        let source = try X11ScreenSource()
        #expect(try source.capture().width == window.screenWidth)
        // Xvfb resizes its screen with `xrandr --fb` (and complains about its one output).
        try Self.run("/usr/bin/xrandr", "--fb", "640x480")
        defer { try? Self.run("/usr/bin/xrandr", "--fb", original) }
        let smaller = try source.capture()
        #expect(smaller.width == 640 && smaller.height == 480)
        #expect(smaller.rgb(x: 50, y: 50) == 0x336699)
        try Self.run("/usr/bin/xrandr", "--fb", original)
        let restored = try source.capture()
        #expect(restored.width == window.screenWidth && restored.height == window.screenHeight)
    }

    private static func run(_ tool: String, _ arguments: String...) throws {
        _ = try SpawnedProgram.run(path: tool, arguments: arguments, environment: ProcessInfo.processInfo.environment)
    }

    @Test func pointerMotionClicksAndWheelArriveAtTheWindow() throws {
        let window = try TestWindow(x: 300, y: 200, width: 320, height: 240, background: 0x808080)
        defer { window.close() }
        let source = try X11ScreenSource()
        try source.inject(Pointer(x: 350, y: 260, buttons: []))
        try source.inject(Pointer(x: 360, y: 270, buttons: .left))
        try source.inject(Pointer(x: 360, y: 270, buttons: []))
        try source.inject(Pointer(x: 370, y: 280, buttons: .wheelDown))
        try source.inject(Pointer(x: 370, y: 280, buttons: []))
        try source.inject(Pointer(x: 370, y: 280, buttons: .right))
        try source.inject(Pointer(x: 370, y: 280, buttons: [.right, .wheelUp]))
        try source.inject(Pointer(x: 370, y: 280, buttons: []))

        let buttons = window.events(count: 8, of: [ButtonPress, ButtonRelease]).map { event in
            (event.type == ButtonPress ? "press" : "release", event.xbutton.button, event.xbutton.x, event.xbutton.y)
        }
        let expected: [(String, UInt32, Int32, Int32)] = [
            ("press", 1, 60, 70), ("release", 1, 60, 70),
            ("press", 5, 70, 80), ("release", 5, 70, 80),
            ("press", 3, 70, 80), ("press", 4, 70, 80), ("release", 4, 70, 80), ("release", 3, 70, 80),
        ]
        #expect(buttons.count == expected.count)
        for (got, want) in zip(buttons, expected) {
            #expect(got == want)
        }
    }

    @Test func keysArriveIncludingShiftedAndUnmappedKeysyms() throws {
        let window = try TestWindow(x: 50, y: 50, width: 200, height: 100, background: 0xFFFFFF)
        defer { window.close() }
        window.focus()
        let source = try X11ScreenSource()
        // 'a'; 'A' (the shifted symbol of a's key); é and 가, which a US keyboard has no key
        // for and which must be mapped onto a spare keycode; Return.
        let keysyms: [UInt32] = [0x61, 0x41, 0xE9, 0x0100_AC00, 0x0100_AC00, Keysym.returnKey]
        for keysym in keysyms {
            try source.inject(Key(keysym: keysym, isDown: true))
            try source.inject(Key(keysym: keysym, isDown: false))
        }
        // The source pressed Shift itself for 'A'; the window sees it go down first.
        let expected: [UInt] = [0x61, 0xFFE1, 0x41, 0xE9, 0x0100_AC00, 0x0100_AC00, 0xFF0D]
        let received = window.events(count: expected.count, of: [KeyPress]).map { window.keysym(of: $0) }
        #expect(received == expected)
    }

    @Test func theViewersOwnShiftIsNotDoubled() throws {
        let window = try TestWindow(x: 50, y: 50, width: 200, height: 100, background: 0xFFFFFF)
        defer { window.close() }
        window.focus()
        let source = try X11ScreenSource()
        try source.inject(Key(keysym: 0xFFE1, isDown: true))
        try source.inject(Key(keysym: 0x42, isDown: true))
        try source.inject(Key(keysym: 0x42, isDown: false))
        try source.inject(Key(keysym: 0xFFE1, isDown: false))
        try source.inject(Key(keysym: 0x62, isDown: true))
        try source.inject(Key(keysym: 0x62, isDown: false))
        let received = window.events(count: 3, of: [KeyPress]).map { window.keysym(of: $0) }
        #expect(received == [0xFFE1, 0x42, 0x62])
    }

    @Test func remappedKeycodesAreRestoredWhenTheSourceCloses() throws {
        let keysym: UInt32 = 0x0100_AC01
        #expect(try Self.keycodeOnAFreshConnection(for: keysym) == 0)
        do {
            let source = try X11ScreenSource()
            try source.inject(Key(keysym: keysym, isDown: true))
            try source.inject(Key(keysym: keysym, isDown: false))
            #expect(try Self.keycodeOnAFreshConnection(for: keysym) != 0)
        }
        // The source is gone: its connection put the spare keycode back before closing.
        #expect(try Self.keycodeOnAFreshConnection(for: keysym) == 0)
    }

    /// Xlib caches the keyboard mapping per connection: a new connection sees the current one.
    private static func keycodeOnAFreshConnection(for keysym: UInt32) throws -> KeyCode {
        let display = try openTestDisplay()
        defer { XCloseDisplay(display) }
        return XKeysymToKeycode(display, KeySym(keysym))
    }
}

/// Runs its own Xvfb, so it needs the binary rather than DISPLAY.
@Suite(.enabled(if: XvfbDisplay.isInstalled, "Xvfb is not installed (Debian: xvfb)"))
struct X11VisualTests {
    @Test func aSixteenBitScreenIsRefusedWithWhatToDo() throws {
        let display = try XvfbDisplay.start(width: 320, height: 240, depth: 16)
        defer { display.stop() }
        let error = #expect(throws: ScreenSourceError.self) { try X11ScreenSource(display: display.name) }
        #expect(error?.kind == .unsupportedVisual)
        #expect(error?.message.contains("depth 16") == true)
        #expect(error?.message.contains("Xvfb -screen 0 1920x1080x24") == true)
    }
}

/// A top-level X window drawn and watched by the test, on its own connection.
final class TestWindow {
    let display: OpaquePointer
    let window: Window
    let screenWidth: Int
    let screenHeight: Int

    init(x: Int32, y: Int32, width: UInt32, height: UInt32, background: UInt) throws {
        let display = try openTestDisplay()
        self.display = display
        let screen = XDefaultScreen(display)
        self.screenWidth = Int(XDisplayWidth(display, screen))
        self.screenHeight = Int(XDisplayHeight(display, screen))
        let root = XRootWindow(display, screen)
        var attributes = XSetWindowAttributes()
        // No window manager may move it: the tests know where it is.
        attributes.override_redirect = 1
        attributes.background_pixel = background
        attributes.event_mask = KeyPressMask | ButtonPressMask | ButtonReleaseMask | ExposureMask | StructureNotifyMask
        self.window = XCreateWindow(
            display, root, x, y, width, height, 0, Int32(CopyFromParent), UInt32(InputOutput), nil,
            UInt(CWOverrideRedirect | CWBackPixel | CWEventMask), &attributes)
        XMapRaised(display, self.window)
        XSync(display, 0)
        _ = self.events(count: 1, of: [MapNotify])
    }

    func fill(rgb: UInt, x: Int32, y: Int32, width: UInt32, height: UInt32) {
        let gc = XCreateGC(self.display, self.window, 0, nil)
        XSetForeground(self.display, gc, rgb)
        XFillRectangle(self.display, self.window, gc, x, y, width, height)
        XFreeGC(self.display, gc)
        XSync(self.display, 0)
    }

    func focus() {
        XSetInputFocus(self.display, self.window, RevertToParent, 0)
        XSync(self.display, 0)
    }

    /// The next `count` events of the given types (others, such as MappingNotify, are
    /// handled or skipped), waiting up to five seconds.
    func events(count: Int, of types: Set<Int32>) -> [XEvent] {
        var found: [XEvent] = []
        let deadline = ContinuousClock.now + .seconds(5)
        while found.count < count, ContinuousClock.now < deadline {
            guard XPending(self.display) > 0 else {
                usleep(5_000)
                continue
            }
            var event = XEvent()
            XNextEvent(self.display, &event)
            if event.type == MappingNotify {
                XRefreshKeyboardMapping(&event.xmapping)
            } else if types.contains(event.type) {
                found.append(event)
            }
        }
        return found
    }

    /// The keysym a KeyPress types under its modifier state, as a client sees it.
    func keysym(of event: XEvent) -> UInt {
        var event = event
        var keysym: KeySym = 0
        var text = [CChar](repeating: 0, count: 16)
        _ = XLookupString(&event.xkey, &text, Int32(text.count), &keysym, nil)
        return keysym
    }

    func close() {
        XDestroyWindow(self.display, self.window)
        XCloseDisplay(self.display)
    }
}

/// Opens the display in DISPLAY, retrying for a moment: an X server started without
/// -noreset resets when its last client leaves and refuses connections meanwhile.
func openTestDisplay() throws -> OpaquePointer {
    for _ in 0..<40 {
        if let display = XOpenDisplay(nil) { return display }
        usleep(50_000)
    }
    throw TestWindowError(message: "cannot open the X display in DISPLAY (\(ProcessInfo.processInfo.environment["DISPLAY"] ?? "unset"))")
}

struct TestWindowError: Error, CustomStringConvertible {
    let message: String
    var description: String { self.message }
}
