import CX11
import Glibc
import RelayTileCodec
import RelayWire
import Synchronization

/// One Xlib connection and what capture and injection keep on it. Not thread-safe:
/// `X11ScreenSource` holds it in a mutex.
final class X11Connection {
    let display: OpaquePointer
    let displayName: String
    private let screen: Int32
    let root: Window
    private let visual: UnsafeMutablePointer<Visual>
    private let depth: Int32

    /// The capture image and its size; recreated when the root window's size changes.
    var image: CaptureImage?
    private(set) var usesSharedMemory: Bool
    let hasXTest: Bool
    /// DAMAGE on the root window (X11Connection+Damage.swift); nil where the server has
    /// no DAMAGE or XFixes extension, or it was not asked for: then every capture reads
    /// the whole screen and the encoder compares it.
    var damage: DamageTracking?
    /// A DamageNotify that ``drawingReported()`` read before the capture that takes it.
    var damageReported = false

    // Input state (see X11Connection+Input.swift).
    var buttons: Pointer.Buttons = []
    /// Keycodes pressed through `inject(_: Key)` by keysym, so that a release lifts the
    /// same key its press went down on, even if the mapping changed in between.
    var pressedKeys: [UInt32: KeyCode] = [:]
    /// Keycodes with no symbols on the display's keyboard, for keysyms without a key.
    var spareKeycodes: [KeyCode] = []
    /// Keysyms mapped onto spare keycodes, most recently used last.
    var remappedKeys: [(keysym: UInt32, keycode: KeyCode)] = []

    init(display requested: String?, sharedMemory: Bool, damage: Bool) throws(ScreenSourceError) {
        X11Errors.install()
        let name = requested ?? ProcessInfoDisplay.current
        guard let name else {
            throw ScreenSourceError(
                .displayUnavailable,
                "no X display: DISPLAY is not set; run the host inside an X session or set --source x11:DISPLAY (e.g. x11::0)")
        }
        guard let display = XOpenDisplay(name) else {
            throw ScreenSourceError(
                .displayUnavailable,
                "cannot open X display \(name) — is an X server running, and may this user connect to it (xauth)? set --source x11:DISPLAY")
        }
        self.display = display
        self.displayName = String(cString: XDisplayString(display))
        self.screen = XDefaultScreen(display)
        self.root = XRootWindow(display, self.screen)
        self.visual = XDefaultVisual(display, self.screen)
        self.depth = XDefaultDepth(display, self.screen)

        let visual = self.visual.pointee
        guard self.depth == 24 || self.depth == 32,
            visual.red_mask == 0xFF_0000, visual.green_mask == 0x00_FF00, visual.blue_mask == 0x00_00FF
        else {
            let description =
                "depth \(self.depth), red/green/blue masks 0x\(String(visual.red_mask, radix: 16))/0x\(String(visual.green_mask, radix: 16))/0x\(String(visual.blue_mask, radix: 16))"
            XCloseDisplay(display)
            throw ScreenSourceError(
                .unsupportedVisual,
                "X display \(name) has a visual this host cannot capture (\(description)); run the X server at depth 24, e.g. Xvfb -screen 0 1920x1080x24")
        }
        self.usesSharedMemory = sharedMemory && XShmQueryExtension(display) != 0
        var event: Int32 = 0
        var error: Int32 = 0
        var major: Int32 = 0
        var minor: Int32 = 0
        self.hasXTest = XTestQueryExtension(display, &event, &error, &major, &minor) != 0
        self.spareKeycodes = self.findSpareKeycodes()
        if damage { self.damage = self.startDamageTracking() }
    }

    private var isClosed = false

    /// Gives the display back as the session found it: lifts every key and button the
    /// viewer still holds, restores the spare keycodes it remapped, frees the capture
    /// image and closes the connection. Idempotent; runs from `deinit` at the latest,
    /// but a host that stops on a signal calls it explicitly (REVIEW.md D4).
    func close() {
        guard !self.isClosed else { return }
        self.isClosed = true
        self.releaseHeldInput()
        self.restoreRemappedKeys()
        self.stopDamageTracking()
        self.image?.destroy(display: self.display)
        self.image = nil
        // The server must have applied the releases and the keymap before we go.
        XSync(self.display, 0)
        XCloseDisplay(self.display)
    }

    deinit {
        self.close()
    }

    // MARK: Capture

    func capture() throws(ScreenSourceError) -> Framebuffer {
        // Two attempts: a resolution change between the size query and the copy makes the
        // copy fail (BadMatch); the second attempt sees the new size.
        var lastError: ScreenSourceError?
        for _ in 0..<2 {
            do {
                return try self.captureOnce()
            } catch {
                lastError = error
                self.image?.destroy(display: self.display)
                self.image = nil
            }
        }
        throw lastError!
    }

    private func captureOnce() throws(ScreenSourceError) -> Framebuffer {
        // XDisplayWidth/Height are fixed when the connection opens; the root window's
        // geometry follows xrandr, so ask for it (one round trip) every capture.
        let size = self.rootSize()
        if let image = self.sharedImage(for: size) {
            X11Errors.clear(self.display)
            let copied = XShmGetImage(self.display, self.root, image.ximage, 0, 0, ~UInt(0))
            guard copied != 0 else {
                throw ScreenSourceError(
                    .captureFailed,
                    "XShmGetImage failed on \(self.displayName)\(X11Errors.take(self.display).map { ": \($0)" } ?? ""); if this repeats, check that the X server is still running and the screen is depth 24"
                )
            }
            return try Self.framebuffer(from: image.ximage, displayName: self.displayName)
        }
        X11Errors.clear(self.display)
        guard let ximage = XGetImage(self.display, self.root, 0, 0, UInt32(size.width), UInt32(size.height), ~UInt(0), ZPixmap) else {
            throw ScreenSourceError(
                .captureFailed,
                "XGetImage failed on \(self.displayName)\(X11Errors.take(self.display).map { ": \($0)" } ?? ""); is the X server still running?")
        }
        defer { _ = ximage.pointee.f.destroy_image?(ximage) }
        return try Self.framebuffer(from: ximage, displayName: self.displayName)
    }

    /// The shared-memory image for a screen of `size`, made (again) when there is none of
    /// that size; nil when captures use XGetImage.
    func sharedImage(for size: (width: Int, height: Int)) -> CaptureImage? {
        if let image = self.image, image.width != size.width || image.height != size.height {
            image.destroy(display: self.display)
            self.image = nil
        }
        if self.usesSharedMemory, self.image == nil {
            self.image = self.makeSharedImage(width: size.width, height: size.height)
            if self.image == nil { self.usesSharedMemory = false }
        }
        return self.image
    }

    func rootSize() -> (width: Int, height: Int) {
        var rootReturn: Window = 0
        var x: Int32 = 0
        var y: Int32 = 0
        var width: UInt32 = 0
        var height: UInt32 = 0
        var border: UInt32 = 0
        var depth: UInt32 = 0
        if XGetGeometry(self.display, self.root, &rootReturn, &x, &y, &width, &height, &border, &depth) == 0 {
            return (Int(XDisplayWidth(self.display, self.screen)), Int(XDisplayHeight(self.display, self.screen)))
        }
        return (Int(width), Int(height))
    }

    /// A shared-memory image of the given size, or nil when the server cannot attach the
    /// segment (a remote display): the caller then falls back to XGetImage.
    private func makeSharedImage(width: Int, height: Int) -> CaptureImage? {
        let info = UnsafeMutablePointer<XShmSegmentInfo>.allocate(capacity: 1)
        info.initialize(to: XShmSegmentInfo())
        guard
            let ximage = XShmCreateImage(
                self.display, self.visual, UInt32(self.depth), ZPixmap, nil, info,
                UInt32(width), UInt32(height))
        else {
            info.deallocate()
            return nil
        }
        let image = CaptureImage(ximage: ximage, info: info, width: width, height: height)
        let bytes = Int(ximage.pointee.bytes_per_line) * height
        info.pointee.shmid = shmget(IPC_PRIVATE, bytes, IPC_CREAT | 0o600)
        guard info.pointee.shmid >= 0 else {
            image.destroy(display: self.display)
            return nil
        }
        let address = shmat(info.pointee.shmid, nil, 0)
        guard let address, Int(bitPattern: address) != -1 else {
            shmctl(info.pointee.shmid, IPC_RMID, nil)
            info.pointee.shmid = -1
            image.destroy(display: self.display)
            return nil
        }
        info.pointee.shmaddr = address.assumingMemoryBound(to: CChar.self)
        ximage.pointee.data = info.pointee.shmaddr
        info.pointee.readOnly = 0
        X11Errors.clear(self.display)
        let attached = XShmAttach(self.display, info) != 0
        XSync(self.display, 0)
        // Once the server has attached (or failed to), mark the segment for removal: it
        // disappears when both sides detach, so even a crash of this process leaks nothing.
        shmctl(info.pointee.shmid, IPC_RMID, nil)
        let error = X11Errors.take(self.display)
        guard attached, error == nil else {
            image.attached = false
            image.destroy(display: self.display)
            return nil
        }
        image.attached = true
        return image
    }

    /// Converts a ZPixmap image in the checked visual (8-bit R, G, B in a 32-bit pixel) to
    /// BGRX with the unused byte 0.
    static func framebuffer(from image: UnsafeMutablePointer<XImage>, displayName: String) throws(ScreenSourceError) -> Framebuffer {
        let ximage = image.pointee
        let width = Int(ximage.width)
        let height = Int(ximage.height)
        guard ximage.bits_per_pixel == 32, let data = ximage.data else {
            throw ScreenSourceError(
                .unsupportedVisual,
                "X display \(displayName) returned \(ximage.bits_per_pixel) bits per pixel; run the X server at depth 24, e.g. Xvfb -screen 0 1920x1080x24")
        }
        let stride = Int(ximage.bytes_per_line)
        let mostSignificantFirst = ximage.byte_order == MSBFirst
        var pixels = [UInt8](repeating: 0, count: width * height * 4)
        pixels.withUnsafeMutableBufferPointer { target in
            data.withMemoryRebound(to: UInt8.self, capacity: stride * height) { source in
                relay_copy_bgrx(target.baseAddress, source, Int32(width), Int32(height), Int32(stride), mostSignificantFirst ? 1 : 0)
            }
        }
        return Framebuffer(width: width, height: height, pixels: pixels)
    }
}

/// An MIT-SHM XImage and its segment.
final class CaptureImage {
    let ximage: UnsafeMutablePointer<XImage>
    let info: UnsafeMutablePointer<XShmSegmentInfo>
    let width: Int
    let height: Int
    var attached = false
    private var destroyed = false

    init(ximage: UnsafeMutablePointer<XImage>, info: UnsafeMutablePointer<XShmSegmentInfo>, width: Int, height: Int) {
        self.ximage = ximage
        self.info = info
        self.width = width
        self.height = height
        info.pointee.shmid = -1
    }

    /// Detaches the server and this process from the segment and frees the image.
    func destroy(display: OpaquePointer) {
        guard !self.destroyed else { return }
        self.destroyed = true
        if self.attached {
            XShmDetach(display, self.info)
            XSync(display, 0)
        }
        if let address = self.info.pointee.shmaddr {
            shmdt(address)
        }
        // The image does not own the shared memory: clear the pointer before XDestroyImage
        // (a macro, so called through the image's function table) frees the struct.
        self.ximage.pointee.data = nil
        _ = self.ximage.pointee.f.destroy_image?(self.ximage)
        self.info.deallocate()
    }
}

/// Xlib's default error handler prints and exits the process; this one records the error
/// per connection so that a refused request (an SHM attach on a remote display, a copy
/// during a resolution change) becomes a fallback or a thrown error.
enum X11Errors {
    private static let installed: Void = {
        XInitThreads()
        XSetErrorHandler { display, event in
            guard let display, let event else { return 0 }
            var text = [CChar](repeating: 0, count: 256)
            XGetErrorText(display, Int32(event.pointee.error_code), &text, Int32(text.count))
            let reason = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let message = "\(reason) (request \(event.pointee.request_code).\(event.pointee.minor_code))"
            X11Errors.errors.withLock { $0[UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(display)))] = message }
            return 0
        }
    }()

    private static let errors = Mutex<[UInt: String]>([:])

    static func install() {
        _ = self.installed
    }

    static func clear(_ display: OpaquePointer) {
        _ = self.take(display)
    }

    /// The error recorded on `display` since the last call, after a round trip that makes
    /// sure the server has answered every request sent so far.
    static func take(_ display: OpaquePointer) -> String? {
        XSync(display, 0)
        return self.errors.withLock { $0.removeValue(forKey: UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(display)))) }
    }
}

/// `$DISPLAY`, read with getenv (no Foundation needed).
enum ProcessInfoDisplay {
    static var current: String? {
        guard let value = getenv("DISPLAY") else { return nil }
        let display = String(cString: value)
        return display.isEmpty ? nil : display
    }
}
