public import NIOCore

// Peer messages (PROTOCOL.md §5.2): between a paired host and viewer. The relay checks
// only their frame header and forwards the frame bytes untouched.

/// The host's screen geometry, host → viewer; sent once paired and whenever it changes.
public struct ScreenInit: Sendable, Hashable {
    public enum PixelFormat: UInt8, Sendable, Hashable {
        /// 32 bits per pixel, bytes B, G, R, unused — X11's usual 24-bit depth layout.
        case bgrx8888 = 1
    }

    /// The largest width or height a ScreenInit may announce.
    public static let maximumDimension: UInt16 = 16384

    public var width: UInt16
    public var height: UInt16
    public var pixelFormat: PixelFormat
    /// The desktop's name (the X display, or the replay folder), for the viewer's title.
    public var name: String

    public init(width: UInt16, height: UInt16, pixelFormat: PixelFormat = .bgrx8888, name: String) {
        self.width = width
        self.height = height
        self.pixelFormat = pixelFormat
        self.name = name
    }
}

/// One screen update in the tile-delta codec, host → viewer. Opaque to RelayWire's
/// framing; the screen codec defines the body (PROTOCOL.md §7).
public struct TileUpdate: Sendable, Hashable {
    public var body: ByteBuffer
    public init(body: ByteBuffer) { self.body = body }
}

/// The viewer is ready for the next screen update, viewer → host (PROTOCOL.md §5.2).
public struct UpdateRequest: Sendable, Hashable {
    public struct Flags: OptionSet, Sendable, Hashable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        /// Send the whole screen, not only what changed.
        public static let fullRefresh = Flags(rawValue: 1 << 0)
    }

    /// Echoed in the answering update, so the viewer can measure update latency.
    public var requestID: UInt32
    public var flags: Flags

    public init(requestID: UInt32, flags: Flags = []) {
        self.requestID = requestID
        self.flags = flags
    }
}

/// Pointer position and button state, viewer → host.
public struct Pointer: Sendable, Hashable {
    /// Buttons held, as in RFB: bit 0 left, 1 middle, 2 right, 3/4 wheel up/down.
    public struct Buttons: OptionSet, Sendable, Hashable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        public static let left = Buttons(rawValue: 1 << 0)
        public static let middle = Buttons(rawValue: 1 << 1)
        public static let right = Buttons(rawValue: 1 << 2)
        public static let wheelUp = Buttons(rawValue: 1 << 3)
        public static let wheelDown = Buttons(rawValue: 1 << 4)
    }

    public var x: UInt16
    public var y: UInt16
    public var buttons: Buttons

    public init(x: UInt16, y: UInt16, buttons: Buttons = []) {
        self.x = x
        self.y = y
        self.buttons = buttons
    }
}

/// A key pressed or released, viewer → host, as an X keysym.
public struct Key: Sendable, Hashable {
    public var keysym: UInt32
    public var isDown: Bool

    public init(keysym: UInt32, isDown: Bool) {
        self.keysym = keysym
        self.isDown = isDown
    }
}

/// Clipboard text, either direction.
public struct Clipboard: Sendable, Hashable {
    public var text: String
    public init(text: String) { self.text = text }
}

/// The customer's decision, host → viewer (PROTOCOL.md §5.2.7): sent once, before
/// ScreenInit, when the customer has accepted the engineer. Until it arrives the host
/// shares nothing; a refusal is `Bye(declined)` instead.
public struct AccessGranted: Sendable, Hashable {
    public struct Flags: OptionSet, Sendable, Hashable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        /// The host injects the viewer's pointer and keys and takes its clipboard; without
        /// it the session is view-only and the host ignores them.
        public static let inputAllowed = Flags(rawValue: 1 << 0)
    }

    /// Unknown bits are carried as they are and ignored, like capabilities (§3).
    public var flags: Flags

    public init(flags: Flags) { self.flags = flags }

    /// Whether the engineer may control the screen, not only see it.
    public var inputAllowed: Bool { self.flags.contains(.inputAllowed) }
}

// MARK: - Wire form

extension ScreenInit {
    init(payload buffer: inout ByteBuffer) throws(WireError) {
        self.width = try buffer.readWireInteger("ScreenInit.width")
        self.height = try buffer.readWireInteger("ScreenInit.height")
        guard (1...Self.maximumDimension).contains(self.width), (1...Self.maximumDimension).contains(self.height) else {
            throw WireError(.invalidField, "ScreenInit: \(self.width)×\(self.height) is outside 1…\(Self.maximumDimension) per side")
        }
        self.pixelFormat = try PixelFormat.read(from: &buffer, "ScreenInit.pixelFormat")
        self.name = try buffer.readWireString("ScreenInit.name")
    }

    func encode(into buffer: inout ByteBuffer) throws(WireError) {
        buffer.writeMultipleIntegers(self.width, self.height, self.pixelFormat.rawValue)
        try buffer.writeWireString(self.name, "ScreenInit.name")
    }
}

extension TileUpdate {
    init(payload buffer: inout ByteBuffer) {
        self.body = buffer.readSlice(length: buffer.readableBytes)!
    }

    func encode(into buffer: inout ByteBuffer) {
        buffer.writeImmutableBuffer(self.body)
    }
}

extension UpdateRequest {
    init(payload buffer: inout ByteBuffer) throws(WireError) {
        self.requestID = try buffer.readWireInteger("UpdateRequest.requestID")
        self.flags = Flags(rawValue: try buffer.readWireInteger("UpdateRequest.flags"))
    }

    func encode(into buffer: inout ByteBuffer) {
        buffer.writeMultipleIntegers(self.requestID, self.flags.rawValue)
    }
}

extension Pointer {
    init(payload buffer: inout ByteBuffer) throws(WireError) {
        self.x = try buffer.readWireInteger("Pointer.x")
        self.y = try buffer.readWireInteger("Pointer.y")
        self.buttons = Buttons(rawValue: try buffer.readWireInteger("Pointer.buttons"))
    }

    func encode(into buffer: inout ByteBuffer) {
        buffer.writeMultipleIntegers(self.x, self.y, self.buttons.rawValue)
    }
}

extension Key {
    init(payload buffer: inout ByteBuffer) throws(WireError) {
        self.keysym = try buffer.readWireInteger("Key.keysym")
        let down: UInt8 = try buffer.readWireInteger("Key.down")
        guard down <= 1 else {
            throw WireError(.invalidField, "Key.down: \(down) is not 0 (released) or 1 (pressed)")
        }
        self.isDown = down == 1
    }

    func encode(into buffer: inout ByteBuffer) {
        buffer.writeMultipleIntegers(self.keysym, self.isDown ? UInt8(1) : UInt8(0))
    }
}

extension Clipboard {
    init(payload buffer: inout ByteBuffer) throws(WireError) {
        self.text = try buffer.readWireRemainingString("Clipboard.text")
    }

    func encode(into buffer: inout ByteBuffer) {
        buffer.writeString(self.text)
    }
}

extension AccessGranted {
    init(payload buffer: inout ByteBuffer) throws(WireError) {
        self.flags = Flags(rawValue: try buffer.readWireInteger("AccessGranted.flags"))
    }

    func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(self.flags.rawValue)
    }
}
