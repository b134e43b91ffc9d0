import CX11
import Foundation
import RelayTestSupport
import RelayTileCodec
import RelayWire
import Synchronization
import Testing

@testable import RelayScreen

/// The X11 source's damage path (X11Connection+Damage.swift) on a private Xvfb: only the
/// tiles an X client drew are reported and read, the frame kept in place still equals a
/// full read of the screen after every kind of drawing, and a host session streaming
/// through it leaves the viewer with the X screen byte for byte.
@Suite(.enabled(if: XvfbDisplay.isInstalled, "Xvfb is not installed (Debian: xvfb); scripts/test.sh installs it"))
struct X11DamageCaptureTests {
    /// 700×420: edge tiles of 60×36 pixels, so clipping at the frame's edges is exercised.
    static let width = 700
    static let height = 420

    @Test("only the tiles an X client drew are reported, and the kept frame equals a full read after each drawing", arguments: [true, false])
    func drawnTilesOnly(sharedMemory: Bool) throws {
        let display = try XvfbDisplay.start(width: Self.width, height: Self.height)
        defer { display.stop() }
        let painter = try Painter(display: display.name)
        defer { painter.close() }
        let window = painter.window(x: 100, y: 50, width: 300, height: 200, background: 0x20_40_60)
        let source = try X11ScreenSource(display: display.name, sharedMemory: sharedMemory, damage: true)
        defer { source.close() }
        #expect(source.tracksDamage)
        #expect(source.captureMethod.hasPrefix("X DAMAGE"))

        let first = try source.captureChanges()
        #expect(first.changes == nil, "the first capture reads everything")
        #expect(Self.same(first.frame, try source.capture()))
        #expect(try source.captureChanges().changes?.isEmpty == true, "nothing was drawn")

        // 10×10 at (130, 70): tile column 2, row 1, and nothing else.
        painter.fill(window, rgb: 0xFF_80_40, x: 30, y: 20, width: 10, height: 10)
        let small = try Self.captureDrawing(source)
        #expect(Self.marked(small.changes) == ["2,1"])
        #expect(small.frame.rgb(x: 135, y: 75) == 0xFF_80_40)
        #expect(Self.same(small.frame, try source.capture()))

        // Every other kind of drawing a desktop does; after each, the frame is exact.
        let steps: [(String, () -> Void)] = [
            ("text", { painter.text(window, "damage 0123456789", x: 10, y: 40) }),
            ("scroll (CopyArea)", { painter.copy(window, from: (0, 10), to: (0, 0), width: 300, height: 190) }),
            ("image", { painter.image(window, x: 200, y: 150, width: 90, height: 40, seed: 3) }),
            ("move", { painter.move(window, x: 333, y: 200) }),
            ("a new window", { _ = painter.window(x: 600, y: 380, width: 200, height: 100, background: 0x80_FF_80) }),
            ("unmap", { painter.unmap(window) }),
            ("root background", { painter.rootBackground(0x11_22_33) }),
            ("map again", { painter.map(window) }),
        ]
        for (name, draw) in steps {
            draw()
            let capture = try Self.captureDrawing(source)
            #expect(Self.same(capture.frame, try source.capture()), "after \(name) the kept frame differs from the screen")
            if name != "root background" {
                #expect(capture.changes.map { !$0.isEverything } == true, "\(name) marked the whole screen")
            }
        }
    }

    @Test("without DAMAGE every capture reads the whole screen and says it does not know what changed")
    func withoutDamage() throws {
        let display = try XvfbDisplay.start(width: Self.width, height: Self.height)
        defer { display.stop() }
        let painter = try Painter(display: display.name)
        defer { painter.close() }
        let window = painter.window(x: 10, y: 10, width: 100, height: 100, background: 0x33_66_99)
        let source = try X11ScreenSource(display: display.name, sharedMemory: true, damage: false)
        defer { source.close() }
        #expect(!source.tracksDamage)
        #expect(source.captureMethod == "whole-screen compares (DAMAGE turned off: RELAY_X11_DAMAGE=off)")
        #expect(try source.captureChanges().changes == nil)
        painter.fill(window, rgb: 0xFF_FF_FF, x: 0, y: 0, width: 5, height: 5)
        let next = try source.captureChanges()
        #expect(next.changes == nil)
        #expect(next.frame.rgb(x: 12, y: 12) == 0xFF_FF_FF)
    }

    @Test("after a capture that found nothing, the source says when an X client draws, and not before")
    func notifiesWhenDrawn() async throws {
        let display = try XvfbDisplay.start(width: Self.width, height: Self.height)
        defer { display.stop() }
        let painter = try Painter(display: display.name)
        defer { painter.close() }
        let window = painter.window(x: 40, y: 40, width: 200, height: 100, background: 0x20_40_60)
        let source = try X11ScreenSource(display: display.name, sharedMemory: true, damage: true)
        defer { source.close() }
        _ = try source.captureChanges()
        #expect(try source.captureChanges().changes?.isEmpty == true)

        let told = DrawnSignal()
        #expect(source.notifyWhenDrawn { told.fire() })
        try await Task.sleep(for: .milliseconds(200))
        #expect(told.count == 0, "told of drawing on a still screen")
        // Input injected meanwhile (requests and replies on the source's connection) does
        // not swallow the report.
        try source.inject(Pointer(x: 100, y: 30, buttons: []))
        // 10×10 at (70, 45): tile column 1, row 0.
        painter.fill(window, rgb: 0xFF_80_40, x: 30, y: 5, width: 10, height: 10)
        try await told.wait()
        #expect(told.count == 1)
        // The capture after it reads the drawing, whoever read the report first.
        let capture = try source.captureChanges()
        #expect(Self.marked(capture.changes) == ["1,0"])
        #expect(capture.frame.rgb(x: 75, y: 50) == 0xFF_80_40)

        // Asked again after the capture: told only of the next drawing.
        #expect(try source.captureChanges().changes?.isEmpty == true)
        #expect(source.notifyWhenDrawn { told.fire() })
        try await Task.sleep(for: .milliseconds(100))
        #expect(told.count == 1)
        painter.text(window, "drawn", x: 5, y: 80)
        try await told.wait(for: 2)
        source.close()
        #expect(!source.notifyWhenDrawn { told.fire() } || told.count == 2)
    }

    @Test("a host session on the damage path leaves the viewer with the X screen byte for byte after a drawing workload")
    func sessionOverAWorkload() async throws {
        let display = try XvfbDisplay.start(width: Self.width, height: Self.height)
        defer { display.stop() }
        let painter = try Painter(display: display.name)
        defer { painter.close() }
        let source = try X11ScreenSource(display: display.name, sharedMemory: true, damage: true)
        defer { source.close() }
        #expect(source.tracksDamage)
        let windows = [
            painter.window(x: 20, y: 20, width: 320, height: 240, background: 0xF0_F0_E8),
            painter.window(x: 380, y: 60, width: 260, height: 200, background: 0x10_18_20),
            painter.window(x: 200, y: 250, width: 180, height: 120, background: 0x60_30_90),
        ]
        let (hostEnd, viewerEnd) = MemoryTransport.pair()
        let host = HostScreenSession(source: source, options: .init(framesPerSecond: 60))
        let viewer = ViewerScreenSession()
        let workloadDone = DoneFlag()
        let viewerSender = viewerEnd.sender
        let updates = try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { _ = try await host.run(on: hostEnd) }
            group.addTask {
                // Drawn while the host streams: text, scrolls, images, moves, a window
                // unmapped and mapped again, the root's background.
                var random = SplitMix64(seed: 42)
                for step in 0..<240 {
                    let window = windows[Int(random.next() % 3)]
                    switch random.next() % 7 {
                    case 0: painter.text(window, "line \(step) of the workload", x: 4, y: 14 + Int32(random.next() % 200))
                    case 1: painter.copy(window, from: (0, 16), to: (0, 0), width: 180, height: 100)
                    case 2: painter.image(window, x: Int32(random.next() % 150), y: Int32(random.next() % 100), width: 33, height: 17, seed: random.next())
                    case 3: painter.move(window, x: Int32(random.next() % 500), y: Int32(random.next() % 300))
                    case 4: painter.fill(window, rgb: UInt(random.next() & 0xFF_FF_FF), x: Int32(random.next() % 170), y: 3, width: 9, height: 77)
                    case 5 where step % 40 == 5:
                        painter.unmap(window)
                        try await Task.sleep(for: .milliseconds(20))
                        painter.map(window)
                    case 5: painter.rootBackground(UInt(random.next() & 0xFF_FF_FF))
                    default: painter.copy(window, from: (5, 0), to: (0, 0), width: 170, height: 120)
                    }
                    try await Task.sleep(for: .milliseconds(4))
                }
                workloadDone.set()
                // A viewer that never catches up ends the session: the test then fails
                // on the frames below, not by hanging.
                try await Task.sleep(for: .seconds(20))
                viewerSender.close()
            }
            defer { group.cancelAll() }
            var updates = 0
            _ = try await viewer.run(on: viewerEnd) { event in
                guard case .update(_, _, _, let framebuffer) = event else { return .continue }
                updates += 1
                // Once the workload is over, the next updates bring the screen as it stays.
                guard workloadDone.isSet else { return .continue }
                return Self.same(framebuffer, try source.capture()) ? .stop : .continue
            }
            return updates
        }
        let screen = try source.capture()
        #expect(viewer.framebuffer.map { Self.same($0, screen) } == true, "the viewer's screen differs from the X screen after the workload")
        #expect(updates > 10)
    }

    /// Captures until the source reports a change (DamageNotify may trail the drawing's
    /// reply by a moment), merging what each capture reported.
    static func captureDrawing(_ source: X11ScreenSource) throws -> ScreenCapture {
        var merged: ChangedTiles?
        for _ in 0..<200 {
            let capture = try source.captureChanges()
            guard let changes = capture.changes else { return capture }
            if var all = merged {
                for row in 0..<changes.rows {
                    for column in 0..<changes.columns where changes.contains(column: column, row: row) {
                        let tile = changes.rectangle(column: column, row: row)
                        all.insert(x: tile.x, y: tile.y, width: tile.width, height: tile.height)
                    }
                }
                merged = all
            } else {
                merged = changes
            }
            if !changes.isEmpty { return ScreenCapture(frame: capture.frame, changes: merged) }
            usleep(10_000)
        }
        throw TestWindowError(message: "no damage was reported within 2 s of a drawing")
    }

    /// Frames compared without printing megabytes when they differ: the size and the
    /// first differing pixel go to the test's log.
    static func same(_ a: Framebuffer, _ b: Framebuffer) -> Bool {
        guard a.width == b.width, a.height == b.height else {
            print("frames of \(a.width)×\(a.height) and \(b.width)×\(b.height)")
            return false
        }
        let equal = a.pixels.withUnsafeBytes { x in b.pixels.withUnsafeBytes { y in memcmp(x.baseAddress!, y.baseAddress!, x.count) == 0 } }
        guard !equal, let first = a.pixels.indices.first(where: { a.pixels[$0] != b.pixels[$0] }) else { return true }
        let pixel = first / 4
        print("first differing pixel at \(pixel % a.width),\(pixel / a.width)")
        return false
    }

    static func marked(_ tiles: ChangedTiles?) -> [String] {
        guard let tiles else { return ["everything"] }
        var names: [String] = []
        for row in 0..<tiles.rows {
            for column in 0..<tiles.columns where tiles.contains(column: column, row: row) { names.append("\(column),\(row)") }
        }
        return names
    }
}

/// Counts the source's reports of drawing, from its thread.
final class DrawnSignal: Sendable {
    private let fired = Atomic<Int>(0)
    func fire() { self.fired.add(1, ordering: .sequentiallyConsistent) }
    var count: Int { self.fired.load(ordering: .sequentiallyConsistent) }

    /// Returns once `count` reports came (within 5 s).
    func wait(for count: Int = 1) async throws {
        for _ in 0..<500 {
            if self.count >= count { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw TestWindowError(message: "the source did not say within 5 s that something was drawn")
    }
}

/// Set once, read from other tasks.
final class DoneFlag: Sendable {
    private let done = Atomic<Bool>(false)
    func set() { self.done.store(true, ordering: .sequentiallyConsistent) }
    var isSet: Bool { self.done.load(ordering: .sequentiallyConsistent) }
}

/// An X client that draws on a display over its own connection, waiting for the server
/// to have done each drawing (XSync) before it returns.
final class Painter: @unchecked Sendable {
    let display: OpaquePointer
    let root: Window
    private let gc: GC
    private let font: Font

    init(display name: String) throws {
        guard let display = XOpenDisplay(name) else { throw TestWindowError(message: "cannot open X display \(name)") }
        self.display = display
        self.root = XRootWindow(display, XDefaultScreen(display))
        self.gc = XCreateGC(display, self.root, 0, nil)
        // "fixed" is built into every X server: no font package needed.
        self.font = XLoadFont(display, "fixed")
        XSetFont(display, self.gc, self.font)
    }

    func close() {
        XFreeGC(self.display, self.gc)
        XCloseDisplay(self.display)
    }

    /// A mapped top-level window the window manager (if any) leaves alone.
    func window(x: Int32, y: Int32, width: UInt32, height: UInt32, background: UInt) -> Window {
        var attributes = XSetWindowAttributes()
        attributes.override_redirect = 1
        attributes.background_pixel = background
        let window = XCreateWindow(
            self.display, self.root, x, y, width, height, 0, Int32(CopyFromParent), UInt32(InputOutput), nil,
            UInt(CWOverrideRedirect | CWBackPixel), &attributes)
        XMapRaised(self.display, window)
        XSync(self.display, 0)
        return window
    }

    func fill(_ window: Window, rgb: UInt, x: Int32, y: Int32, width: UInt32, height: UInt32) {
        XSetForeground(self.display, self.gc, rgb)
        XFillRectangle(self.display, window, self.gc, x, y, width, height)
        XSync(self.display, 0)
    }

    func text(_ window: Window, _ text: String, x: Int32, y: Int32) {
        XSetForeground(self.display, self.gc, 0xE0_E0_E0)
        XSetBackground(self.display, self.gc, 0x10_10_10)
        XDrawImageString(self.display, window, self.gc, x, y, text, Int32(text.utf8.count))
        XSync(self.display, 0)
    }

    func copy(_ window: Window, from source: (Int32, Int32), to target: (Int32, Int32), width: UInt32, height: UInt32) {
        XCopyArea(self.display, window, window, self.gc, source.0, source.1, width, height, target.0, target.1)
        XSync(self.display, 0)
    }

    /// A `width`×`height` image of seeded noise put with XPutImage.
    func image(_ window: Window, x: Int32, y: Int32, width: Int, height: Int, seed: UInt64) {
        var random = SplitMix64(seed: seed)
        let data = UnsafeMutablePointer<UInt32>.allocate(capacity: width * height)
        for index in 0..<(width * height) { data[index] = UInt32(truncatingIfNeeded: random.next()) & 0xFF_FF_FF }
        let screen = XDefaultScreen(self.display)
        let raw = UnsafeMutableRawPointer(data).assumingMemoryBound(to: CChar.self)
        guard
            let image = XCreateImage(
                self.display, XDefaultVisual(self.display, screen), UInt32(XDefaultDepth(self.display, screen)), ZPixmap, 0, raw,
                UInt32(width), UInt32(height), 32, Int32(width * 4))
        else {
            data.deallocate()
            return
        }
        XPutImage(self.display, window, self.gc, image, 0, 0, x, y, UInt32(width), UInt32(height))
        XSync(self.display, 0)
        image.pointee.data = nil
        _ = image.pointee.f.destroy_image?(image)
        data.deallocate()
    }

    func move(_ window: Window, x: Int32, y: Int32) {
        XMoveWindow(self.display, window, x, y)
        XSync(self.display, 0)
    }

    func unmap(_ window: Window) {
        XUnmapWindow(self.display, window)
        XSync(self.display, 0)
    }

    func map(_ window: Window) {
        XMapRaised(self.display, window)
        XSync(self.display, 0)
    }

    func rootBackground(_ rgb: UInt) {
        XSetWindowBackground(self.display, self.root, rgb)
        XClearWindow(self.display, self.root)
        XSync(self.display, 0)
    }
}
