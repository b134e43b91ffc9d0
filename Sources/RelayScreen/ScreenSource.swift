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
}
