public import RelayTileCodec
public import RelayWire

/// Where a host's screen comes from: a real X display, a replay of PNG frames, or a
/// synthetic scene (`relay-agent host --source`). A source is used from one task at a
/// time; it is `Sendable` so that the task may move between threads.
public protocol ScreenSource: AnyObject, Sendable {
    /// What the viewer shows in its title: the X display (`:0`), the replay folder, or
    /// the scene's name.
    var name: String { get }

    /// The current screen. Called whenever the viewer is ready for an update
    /// (viewer-paced, PROTOCOL.md §7), so at most at the host's `--fps`. The size may
    /// change between calls (a resolution change); the host then sends a new ScreenInit.
    func capture() throws -> Framebuffer

    /// The current screen and which of its tiles may differ from the frame the previous
    /// call returned (nil: unknown, or the first call), for a host session's encoder
    /// (``TileEncoder/encodeParts(_:changes:requestID:fullRefresh:maximumBodyLength:)``).
    /// A source that learns what was drawn (X11 with DAMAGE) reads only that; the others
    /// return ``capture()`` and nil, and the encoder compares the whole frame. Calls to
    /// ``capture()`` in between do not count as previous calls.
    func captureChanges() throws -> ScreenCapture

    /// Asks to be told when something may have been drawn since the last
    /// ``captureChanges()``: `drawn` is called once, from any thread (at once if something
    /// already was); a later call replaces one not yet made. A host session whose capture
    /// found nothing changed waits for it instead of capturing again at every frame tick.
    /// Returns false when the source cannot tell (the default): the session then captures
    /// once per frame interval to find out.
    func notifyWhenDrawn(_ drawn: @escaping @Sendable () -> Void) -> Bool

    /// Injects the viewer's pointer state (absolute position, buttons held).
    func inject(_ pointer: Pointer) throws

    /// Injects a key press or release.
    func inject(_ key: Key) throws

    /// Undoes what the session did to the machine (X11: releases held keys and buttons,
    /// restores remapped keycodes) and frees the source. The host calls it when it stops,
    /// on a signal too; later captures and injections may throw. Idempotent.
    func close()
}

extension ScreenSource {
    /// Sources that change nothing outside themselves have nothing to undo.
    public func close() {}

    /// Sources that cannot tell when something is drawn are captured once per frame
    /// interval.
    public func notifyWhenDrawn(_ drawn: @escaping @Sendable () -> Void) -> Bool { false }

    /// Sources that do not know what changed: the whole frame, to be compared.
    public func captureChanges() throws -> ScreenCapture {
        ScreenCapture(frame: try self.capture(), changes: nil)
    }
}

/// A frame from ``ScreenSource/captureChanges()`` and what may have changed in it.
public struct ScreenCapture: Sendable {
    public var frame: Framebuffer
    /// The tiles that may differ from the previous capture's frame; nil when the source
    /// does not know (compare everything).
    public var changes: ChangedTiles?

    public init(frame: Framebuffer, changes: ChangedTiles?) {
        self.frame = frame
        self.changes = changes
    }
}
