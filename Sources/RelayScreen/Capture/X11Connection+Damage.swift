import CX11
import RelayTileCodec

// Capture of what changed only: the X server's DAMAGE extension accumulates the areas
// drawn on the root window (its children included) into a region; each capture takes that
// region (XDamageSubtract into an XFixes region, XFixesFetchRegion), marks the 64×64 tiles
// it touches (ChangedTiles), reads only those from the screen into the frame it keeps, and
// tells the encoder which tiles to look at. An idle screen costs no read at all: the
// server says when the region stops being empty (XDamageReportNonEmpty), and a capture
// without such an event since the last one reads nothing.

/// The DAMAGE objects on one connection and the screen as the last capture left it.
struct DamageTracking {
    let damage: Damage
    /// Receives the damaged area at each capture.
    let parts: XserverRegion
    /// DAMAGE's first event code on this connection.
    let eventBase: Int32
    /// The screen as of the last capture, updated in place; nil until the first capture,
    /// and after a capture failed half-way (the damage it took is lost, so the next
    /// capture reads the whole screen).
    var screen: Framebuffer?

    /// Most rectangles read per capture: each is one request and reply. Beyond it,
    /// neighbouring tiles are merged into larger reads (ChangedTiles.rectangles).
    static let maximumReads = 24
}

extension X11Connection {
    /// Asks the server for DAMAGE on the root window; nil when it has no DAMAGE (version
    /// 1.1 or later) or XFixes (2.0 or later) extension, or refuses the request.
    func startDamageTracking() -> DamageTracking? {
        var eventBase: Int32 = 0
        var errorBase: Int32 = 0
        var major: Int32 = 1
        var minor: Int32 = 1
        guard XDamageQueryExtension(self.display, &eventBase, &errorBase) != 0,
            XDamageQueryVersion(self.display, &major, &minor) != 0, (major, minor) >= (1, 1)
        else { return nil }
        var fixesEvent: Int32 = 0
        var fixesError: Int32 = 0
        var fixesMajor: Int32 = 2
        var fixesMinor: Int32 = 0
        guard XFixesQueryExtension(self.display, &fixesEvent, &fixesError) != 0,
            XFixesQueryVersion(self.display, &fixesMajor, &fixesMinor) != 0, fixesMajor >= 2
        else { return nil }
        X11Errors.clear(self.display)
        let parts = XFixesCreateRegion(self.display, nil, 0)
        let damage = XDamageCreate(self.display, self.root, Int32(XDamageReportNonEmpty))
        guard X11Errors.take(self.display) == nil else {
            if damage != 0 { XDamageDestroy(self.display, damage) }
            if parts != 0 { XFixesDestroyRegion(self.display, parts) }
            return nil
        }
        return DamageTracking(damage: damage, parts: parts, eventBase: eventBase)
    }

    func stopDamageTracking() {
        guard let tracking = self.damage else { return }
        self.damage = nil
        XDamageDestroy(self.display, tracking.damage)
        XFixesDestroyRegion(self.display, tracking.parts)
    }

    /// The screen and the tiles that changed since the last call: only those are read.
    /// Without DAMAGE, the whole screen and nil.
    func captureChanges() throws(ScreenSourceError) -> ScreenCapture {
        // Out of the property while it is updated, and the frame out of it, so that the
        // frame's storage has one owner here and is written in place.
        guard var tracking = self.damage.take() else {
            return ScreenCapture(frame: try self.capture(), changes: nil)
        }
        defer { self.damage = tracking }
        let size = self.rootSize()
        // Reported since the last capture: to this call, or to the drawing watch before it.
        let notified = self.takeDamageNotifications(eventBase: tracking.eventBase) || self.damageReported
        // Every path below takes the damage so far (or had none to take).
        self.damageReported = false
        guard var screen = tracking.screen.take(), screen.width == size.width, screen.height == size.height else {
            // The first capture, a new resolution, or one after a failure: everything,
            // with the damage so far taken first so that the next capture starts from here.
            XDamageSubtract(self.display, tracking.damage, 0, 0)
            let frame = try self.capture()
            tracking.screen = frame
            return ScreenCapture(frame: frame, changes: nil)
        }
        var changes = ChangedTiles(width: size.width, height: size.height)
        guard notified else {
            tracking.screen = screen
            return ScreenCapture(frame: screen, changes: changes)
        }
        // The damage is taken before the pixels are read: drawing that lands in between
        // is in this read and damages the region again, so the next capture reads it too.
        XDamageSubtract(self.display, tracking.damage, 0, tracking.parts)
        var count: Int32 = 0
        guard let rectangles = XFixesFetchRegion(self.display, tracking.parts, &count) else {
            // The server did not answer with the region (an empty one is still an
            // allocation): what changed is unknown, so everything is read.
            let frame = try self.capture()
            tracking.screen = frame
            return ScreenCapture(frame: frame, changes: nil)
        }
        for index in 0..<Int(count) {
            let rectangle = rectangles[index]
            changes.insert(x: Int(rectangle.x), y: Int(rectangle.y), width: Int(rectangle.width), height: Int(rectangle.height))
        }
        XFree(rectangles)
        for rectangle in changes.rectangles(maximumCount: DamageTracking.maximumReads) {
            try self.read(rectangle, into: &screen)
        }
        tracking.screen = screen
        return ScreenCapture(frame: screen, changes: changes)
    }

    /// Whether drawing was reported since the last capture (for ``X11DrawingWatch``):
    /// reads what the server has sent without blocking, and keeps a DamageNotify it finds
    /// for the next capture. True without DAMAGE: then nothing can be told.
    func drawingReported() -> Bool {
        guard let tracking = self.damage else { return true }
        if self.takeDamageNotifications(eventBase: tracking.eventBase) { self.damageReported = true }
        return self.damageReported
    }

    /// Whether DamageNotify arrived since the last call. Reads every queued event: the
    /// connection selects no others, but the server sends MappingNotify to every client,
    /// and Xlib's keyboard mapping must follow them (keys are injected on this connection).
    private func takeDamageNotifications(eventBase: Int32) -> Bool {
        var notified = false
        var event = XEvent()
        while XPending(self.display) > 0 {
            XNextEvent(self.display, &event)
            if event.type == eventBase + Int32(XDamageNotify) {
                notified = true
            } else if event.type == MappingNotify {
                XRefreshKeyboardMapping(&event.xmapping)
            }
        }
        return notified
    }

    /// Reads one rectangle of the root window into `frame` (of the root's size): through
    /// the shared-memory image where there is one (the server writes the rectangle's rows
    /// packed at its start), else XGetImage.
    private func read(_ rectangle: ChangedTiles.Rectangle, into frame: inout Framebuffer) throws(ScreenSourceError) {
        let failed = { (request: String, display: OpaquePointer, name: String) -> ScreenSourceError in
            ScreenSourceError(
                .captureFailed,
                "\(request) of \(rectangle.width)×\(rectangle.height) at \(rectangle.x),\(rectangle.y) failed on \(name)\(X11Errors.take(display).map { ": \($0)" } ?? ""); if this repeats, check that the X server is still running and the screen is depth 24"
            )
        }
        let target = (rectangle.y * frame.width + rectangle.x) * 4
        let targetStride = frame.bytesPerRow
        if let image = self.sharedImage(for: (frame.width, frame.height)) {
            let ximage = image.ximage
            let whole = (ximage.pointee.width, ximage.pointee.height, ximage.pointee.bytes_per_line)
            // XShmGetImage reads the image's width and height; 32-bit pixels with the
            // server's 32-bit scanline pad make rows of exactly width × 4 bytes.
            ximage.pointee.width = Int32(rectangle.width)
            ximage.pointee.height = Int32(rectangle.height)
            ximage.pointee.bytes_per_line = Int32(rectangle.width * 4)
            defer { (ximage.pointee.width, ximage.pointee.height, ximage.pointee.bytes_per_line) = whole }
            guard XShmGetImage(self.display, self.root, ximage, Int32(rectangle.x), Int32(rectangle.y), ~UInt(0)) != 0,
                ximage.pointee.bits_per_pixel == 32, let data = ximage.pointee.data
            else { throw failed("XShmGetImage", self.display, self.displayName) }
            let mostSignificantFirst: Int32 = ximage.pointee.byte_order == MSBFirst ? 1 : 0
            frame.pixels.withUnsafeMutableBytes { pixels in
                data.withMemoryRebound(to: UInt8.self, capacity: rectangle.width * 4 * rectangle.height) { source in
                    relay_copy_bgrx_rows(
                        pixels.baseAddress!.assumingMemoryBound(to: UInt8.self) + target, targetStride, source,
                        Int32(rectangle.width), Int32(rectangle.height), rectangle.width * 4, mostSignificantFirst)
                }
            }
            return
        }
        guard
            let ximage = XGetImage(
                self.display, self.root, Int32(rectangle.x), Int32(rectangle.y), UInt32(rectangle.width), UInt32(rectangle.height), ~UInt(0),
                ZPixmap)
        else { throw failed("XGetImage", self.display, self.displayName) }
        defer { _ = ximage.pointee.f.destroy_image?(ximage) }
        guard ximage.pointee.bits_per_pixel == 32, let data = ximage.pointee.data else {
            throw ScreenSourceError(
                .unsupportedVisual,
                "X display \(self.displayName) returned \(ximage.pointee.bits_per_pixel) bits per pixel; run the X server at depth 24, e.g. Xvfb -screen 0 1920x1080x24"
            )
        }
        let sourceStride = Int(ximage.pointee.bytes_per_line)
        let mostSignificantFirst: Int32 = ximage.pointee.byte_order == MSBFirst ? 1 : 0
        frame.pixels.withUnsafeMutableBytes { pixels in
            data.withMemoryRebound(to: UInt8.self, capacity: sourceStride * rectangle.height) { source in
                relay_copy_bgrx_rows(
                    pixels.baseAddress!.assumingMemoryBound(to: UInt8.self) + target, targetStride, source,
                    Int32(rectangle.width), Int32(rectangle.height), sourceStride, mostSignificantFirst)
            }
        }
    }
}
