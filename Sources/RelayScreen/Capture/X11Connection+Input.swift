import CX11
import RelayWire

/// XTest input injection: the viewer's pointer and keys as if from this machine's own
/// mouse and keyboard.
extension X11Connection {
    private static let shiftLeft: UInt32 = 0xFFE1
    private static let shiftRight: UInt32 = 0xFFE2
    /// X core buttons for the RFB button bits (PROTOCOL.md §5.2.4).
    private static let heldButtons: [(Pointer.Buttons, UInt32)] = [(.left, 1), (.middle, 2), (.right, 3)]
    private static let wheelButtons: [(Pointer.Buttons, UInt32)] = [(.wheelUp, 4), (.wheelDown, 5)]

    func inject(_ pointer: Pointer) throws(ScreenSourceError) {
        try self.requireXTest()
        XTestFakeMotionEvent(self.display, -1, Int32(pointer.x), Int32(pointer.y), 0)
        for (bit, button) in Self.heldButtons where pointer.buttons.contains(bit) != self.buttons.contains(bit) {
            XTestFakeButtonEvent(self.display, button, pointer.buttons.contains(bit) ? 1 : 0, 0)
        }
        for (bit, button) in Self.wheelButtons where pointer.buttons.contains(bit) && !self.buttons.contains(bit) {
            XTestFakeButtonEvent(self.display, button, 1, 0)
            XTestFakeButtonEvent(self.display, button, 0, 0)
        }
        self.buttons = pointer.buttons
        XFlush(self.display)
    }

    func inject(_ key: Key) throws(ScreenSourceError) {
        try self.requireXTest()
        guard key.isDown else {
            // Release the key the press went down on; a release without a press (the
            // viewer gained focus with a key held) releases the keysym's own key, if any.
            let keycode = self.pressedKeys.removeValue(forKey: key.keysym) ?? XKeysymToKeycode(self.display, KeySym(key.keysym))
            if keycode != 0 {
                XTestFakeKeyEvent(self.display, UInt32(keycode), 0, 0)
                XFlush(self.display)
            }
            return
        }
        var keycode = XKeysymToKeycode(self.display, KeySym(key.keysym))
        var needsShift = false
        if keycode == 0 {
            keycode = try self.remap(key.keysym)
        } else {
            // 'A' shares its key with 'a' as the shifted symbol: add Shift unless the
            // viewer already holds it (viewers that send their own Shift state do).
            let symbols = self.symbols(of: keycode)
            needsShift =
                symbols.first != KeySym(key.keysym) && symbols.dropFirst().first == KeySym(key.keysym)
                && self.pressedKeys[Self.shiftLeft] == nil && self.pressedKeys[Self.shiftRight] == nil
        }
        let shiftKeycode = needsShift ? XKeysymToKeycode(self.display, KeySym(Self.shiftLeft)) : 0
        if shiftKeycode != 0 { XTestFakeKeyEvent(self.display, UInt32(shiftKeycode), 1, 0) }
        XTestFakeKeyEvent(self.display, UInt32(keycode), 1, 0)
        if shiftKeycode != 0 { XTestFakeKeyEvent(self.display, UInt32(shiftKeycode), 0, 0) }
        self.pressedKeys[key.keysym] = keycode
        XFlush(self.display)
    }

    private func requireXTest() throws(ScreenSourceError) {
        guard self.hasXTest else {
            throw ScreenSourceError(
                .injectionFailed,
                "X display \(self.displayName) has no XTest extension, so the viewer's input cannot be injected; enable XTEST in the X server (Xorg: Option \"XTEST\" is on by default; Xvfb: do not pass -extension XTEST)"
            )
        }
    }

    /// The keysyms on `keycode`, column 0 (plain) first.
    private func symbols(of keycode: KeyCode) -> [KeySym] {
        var perKeycode: Int32 = 0
        guard let symbols = XGetKeyboardMapping(self.display, keycode, 1, &perKeycode) else { return [] }
        defer { XFree(symbols) }
        return (0..<Int(perKeycode)).map { symbols[$0] }
    }

    /// Keycodes in the display's range that carry no keysym at all.
    func findSpareKeycodes() -> [KeyCode] {
        var minimum: Int32 = 0
        var maximum: Int32 = 0
        XDisplayKeycodes(self.display, &minimum, &maximum)
        guard minimum > 0, maximum >= minimum else { return [] }
        var perKeycode: Int32 = 0
        let count = maximum - minimum + 1
        guard let symbols = XGetKeyboardMapping(self.display, KeyCode(minimum), count, &perKeycode) else { return [] }
        defer { XFree(symbols) }
        var spare: [KeyCode] = []
        for index in 0..<Int(count) {
            let start = index * Int(perKeycode)
            if (start..<start + Int(perKeycode)).allSatisfy({ symbols[$0] == 0 }) {
                spare.append(KeyCode(Int(minimum) + index))
            }
        }
        // Use the highest first: low spare codes are the likelier to gain a real key later.
        return spare.reversed()
    }

    /// Maps `keysym` onto a spare keycode (both columns, so Shift does not matter) and
    /// returns it. A keysym mapped before keeps its keycode; when every spare keycode is
    /// taken, the least recently used one that is not held down is reused.
    private func remap(_ keysym: UInt32) throws(ScreenSourceError) -> KeyCode {
        if let index = self.remappedKeys.firstIndex(where: { $0.keysym == keysym }) {
            let entry = self.remappedKeys.remove(at: index)
            self.remappedKeys.append(entry)
            return entry.keycode
        }
        let keycode: KeyCode
        if let free = self.spareKeycodes.first(where: { code in !self.remappedKeys.contains { $0.keycode == code } }) {
            keycode = free
        } else if let index = self.remappedKeys.firstIndex(where: { entry in !self.pressedKeys.values.contains(entry.keycode) }) {
            keycode = self.remappedKeys.remove(at: index).keycode
        } else {
            throw ScreenSourceError(
                .injectionFailed,
                "no free keycode on \(self.displayName) to type keysym 0x\(String(keysym, radix: 16)); release some keys, or add it to the keyboard layout (xmodmap)"
            )
        }
        var symbols: [KeySym] = [KeySym(keysym), KeySym(keysym)]
        XChangeKeyboardMapping(self.display, Int32(keycode), 2, &symbols, 1)
        // The server must have the new mapping before the key event is generated from it.
        XSync(self.display, 0)
        self.remappedKeys.append((keysym, keycode))
        return keycode
    }

    /// Gives the spare keycodes back their empty mapping.
    func restoreRemappedKeys() {
        for entry in self.remappedKeys {
            var symbols: [KeySym] = [0, 0]
            XChangeKeyboardMapping(self.display, Int32(entry.keycode), 2, &symbols, 1)
        }
        self.remappedKeys.removeAll()
        XFlush(self.display)
    }

    /// Lifts what the viewer still holds, so a closed session leaves no stuck key or button.
    func releaseHeldInput() {
        guard self.hasXTest else { return }
        for keycode in self.pressedKeys.values {
            XTestFakeKeyEvent(self.display, UInt32(keycode), 0, 0)
        }
        self.pressedKeys.removeAll()
        for (bit, button) in Self.heldButtons where self.buttons.contains(bit) {
            XTestFakeButtonEvent(self.display, button, 0, 0)
        }
        self.buttons = []
        XFlush(self.display)
    }
}
