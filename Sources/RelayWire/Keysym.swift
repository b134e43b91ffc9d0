/// X11 keysyms for typed text (PROTOCOL.md §5.2.5): Latin-1 characters are their own
/// code point; other Unicode characters are 0x0100_0000 + code point, as in X11's
/// keysymdef.h; a few control characters map to their function keys.
public enum Keysym {
    public static let returnKey: UInt32 = 0xFF0D
    public static let tab: UInt32 = 0xFF09
    public static let backspace: UInt32 = 0xFF08
    public static let escape: UInt32 = 0xFF1B

    /// The keysym that types `scalar`, or nil for control characters without a key.
    public static func forScalar(_ scalar: Unicode.Scalar) -> UInt32? {
        switch scalar.value {
        case 0x0A, 0x0D: return returnKey
        case 0x09: return tab
        case 0x08: return backspace
        case 0x1B: return escape
        case 0x20...0x7E, 0xA0...0xFF: return scalar.value
        case 0x00...0x1F, 0x7F...0x9F: return nil
        default: return 0x0100_0000 + scalar.value
        }
    }

    /// The Unicode scalar a keysym types, if it types one.
    public static func scalar(for keysym: UInt32) -> Unicode.Scalar? {
        switch keysym {
        case returnKey: "\n"
        case tab: "\t"
        case 0x20...0x7E, 0xA0...0xFF: Unicode.Scalar(keysym)
        case 0x0100_0100...0x0110_FFFF: Unicode.Scalar(keysym - 0x0100_0000)
        default: nil
        }
    }
}
