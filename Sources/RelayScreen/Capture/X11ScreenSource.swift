import Glibc
public import RelayTileCodec
public import RelayWire
import Synchronization

/// The host's real screen (`--source x11[:DISPLAY]`): the root window of an X display,
/// captured with MIT-SHM (`XShmGetImage` into a shared-memory image, about 1 ms per
/// 1080p frame) or, where shared memory cannot be used (a display on another machine),
/// with `XGetImage`; the viewer's input injected with XTest.
///
/// Where the X server has the DAMAGE extension (Xorg and Xvfb do), a host session's
/// captures (``captureChanges()``) read only the 64×64 tiles the server reports drawn
/// since the last one, into a frame the source keeps, and the encoder compares only
/// those: a clock's second hand costs a tile, an idle screen nothing. Without DAMAGE each
/// capture reads the whole screen and the encoder compares it with the last frame
/// (``captureMethod`` says which, for the host's log).
///
/// Frames are BGRX as the protocol sends them; the X screen must be TrueColor at depth 24
/// or 32 with 8-bit red, green and blue. A resolution change (xrandr) is picked up at the
/// next capture, which then returns a frame of the new size.
///
/// With DAMAGE, a host session that found nothing changed waits for the server to report
/// drawing (``notifyWhenDrawn(_:)``, a thread of the source's own, ``X11DrawingWatch``)
/// instead of capturing again at every frame tick.
///
/// Thread safety: Xlib connections must not be used from two threads at once, and the
/// host's session captures and injects from different tasks. The one X connection lives
/// inside a `Mutex`, and every Xlib call on it happens under that lock.
public final class X11ScreenSource: ScreenSource {
    /// The display's name as Xlib resolved it (`:0`, `otherhost:0`).
    public let name: String
    /// The connection (nil once closed), shared with the drawing watch's thread.
    private let box: X11ConnectionBox
    /// Started by the first ``notifyWhenDrawn(_:)``; `.some(nil)` when it could not be.
    private let watch = Mutex<X11DrawingWatch??>(nil)
    /// Whether DAMAGE was asked for (tests turn it off).
    private let usesDamageIfPresent: Bool

    /// Opens `display`, or the one in `$DISPLAY` when `nil`. `RELAY_X11_DAMAGE=off` in the
    /// environment turns DAMAGE off (whole-screen compares), for an X server whose damage
    /// reports miss drawing, and to measure the difference.
    public convenience init(display: String? = nil) throws(ScreenSourceError) {
        let setting = getenv("RELAY_X11_DAMAGE").map { String(cString: $0) }
        try self.init(display: display, sharedMemory: true, damage: setting != "off" && setting != "0")
    }

    /// `sharedMemory: false` captures with XGetImage even where MIT-SHM works, `damage:
    /// false` reads the whole screen even where DAMAGE works (tests).
    init(display: String?, sharedMemory: Bool, damage: Bool) throws(ScreenSourceError) {
        let connection = try X11Connection(display: display, sharedMemory: sharedMemory, damage: damage)
        self.name = connection.displayName
        self.box = X11ConnectionBox(connection)
        self.usesDamageIfPresent = damage
    }

    /// Whether captures use MIT-SHM (else `XGetImage` over the connection).
    public var usesSharedMemory: Bool {
        self.box.connection.withLock { $0?.usesSharedMemory ?? false }
    }

    /// Whether host captures read only what the X server reports drawn (DAMAGE).
    public var tracksDamage: Bool {
        self.box.connection.withLock { $0?.damage != nil }
    }

    /// How host captures find what changed, for the host's log ("Capturing :0 with …").
    public var captureMethod: String {
        if self.tracksDamage { return "X DAMAGE (only what the X server reports drawn is read and encoded)" }
        return self.usesDamageIfPresent
            ? "whole-screen compares (the X server has no DAMAGE extension)" : "whole-screen compares (DAMAGE turned off: RELAY_X11_DAMAGE=off)"
    }

    /// The whole screen, read now (and left out of ``captureChanges()``'s bookkeeping).
    public func capture() throws -> Framebuffer {
        try self.box.connection.withLock { connection throws(ScreenSourceError) -> Framebuffer in
            let connection = try Self.open(connection, self.name)
            defer { self.wakeWatchIfEventsQueued(connection) }
            return try connection.capture()
        }
    }

    /// The screen and the tiles that may have changed since the last call: with DAMAGE,
    /// only those tiles are read (none on an idle screen); without, the whole screen and nil.
    public func captureChanges() throws -> ScreenCapture {
        try self.box.connection.withLock { connection throws(ScreenSourceError) -> ScreenCapture in
            let connection = try Self.open(connection, self.name)
            defer { self.wakeWatchIfEventsQueued(connection) }
            return try connection.captureChanges()
        }
    }

    /// Calls `drawn` once, from the source's own thread, when the X server reports drawing
    /// since the last ``captureChanges()`` (at once if it already has): a host session
    /// that found nothing changed waits for it instead of capturing on every frame tick.
    /// False without DAMAGE, or when the thread cannot be started: then nothing is called.
    public func notifyWhenDrawn(_ drawn: @escaping @Sendable () -> Void) -> Bool {
        guard self.tracksDamage else { return false }
        let watch = self.watch.withLock { watch in
            if watch == nil { watch = .some(X11DrawingWatch.start(self.box)) }
            return watch!
        }
        guard let watch else { return false }
        watch.notify(drawn)
        return true
    }

    deinit {
        self.stopWatch()
    }

    /// Ends the drawing watch's thread: without the connection's lock, which it may wait for.
    private func stopWatch() {
        self.watch.withLock { $0 ?? nil }?.stop()
    }

    /// Releases held keys and buttons, restores remapped keycodes and closes the display
    /// connection; later captures and injections throw. Safe to call more than once.
    public func close() {
        self.stopWatch()
        self.box.connection.withLock { connection in
            connection?.close()
            connection = nil
        }
    }

    private static func open(_ connection: X11Connection?, _ name: String) throws(ScreenSourceError) -> X11Connection {
        guard let connection else {
            throw ScreenSourceError(.displayUnavailable, "the connection to X display \(name) was closed (the host is stopping)")
        }
        return connection
    }

    /// Moves the pointer to the event's position, then presses and releases the buttons
    /// that changed since the previous event. A wheel bit that turns on is one click of
    /// X button 4 (up) or 5 (down), as RFB viewers send it.
    public func inject(_ pointer: Pointer) throws {
        try self.box.connection.withLock { connection throws(ScreenSourceError) in
            let connection = try Self.open(connection, self.name)
            defer { self.wakeWatchIfEventsQueued(connection) }
            try connection.inject(pointer)
        }
    }

    /// Presses or releases the key that types `key.keysym` on the display's keyboard
    /// mapping, adding Shift where the keysym is the key's shifted symbol. A keysym the
    /// keyboard has no key for (`é` or Hangul on a US layout) is mapped onto a spare
    /// keycode first, as xdotool and x11vnc do; the mapping is undone when the source
    /// closes.
    public func inject(_ key: Key) throws {
        try self.box.connection.withLock { connection throws(ScreenSourceError) in
            let connection = try Self.open(connection, self.name)
            defer { self.wakeWatchIfEventsQueued(connection) }
            try connection.inject(key)
        }
    }

    /// A request's reply may bring a DamageNotify into Xlib's queue, where the watch's
    /// `poll` on the socket does not see it (X11DrawingWatch).
    private func wakeWatchIfEventsQueued(_ connection: X11Connection) {
        self.watch.withLock { $0 ?? nil }?.wakeIfEventsQueued(connection)
    }
}
