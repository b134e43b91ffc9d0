/// An error encoding or decoding a TileUpdate body in the tile-delta codec (PROTOCOL.md §7).
///
/// Like RelayWire's `WireError`: an extensible ``Kind`` and a message with the numbers involved.
/// A ``TileDecoder`` that throws one has left its framebuffer exactly as it was; the
/// viewer ends the session with `Bye(protocol_error)` (PROTOCOL.md §7.7).
public struct ScreenCodecError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What class of problem this is; stable, switchable, and listed in PROTOCOL.md §7.7.
    public struct Kind: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case truncated
            case trailingBytes
            case unknownEncoding
            case rectOutOfBounds
            case badPaletteIndex
            case badPaletteSize
            case runOverflow
            case corruptDeflate
            case inflateLimitExceeded
            case sizeMismatch
            case noScreen
            case unexpectedPart
            case badGlyph
            case unknownGlyph
            case frameTooLarge
            case compressorFailed
            case bodyLimitTooSmall
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The body, or its inflated data, ended before the update's last field; or the
        /// body's zlib bytes do not end in a sync flush.
        public static let truncated = Kind(.truncated)
        /// Inflated bytes remained after the last rectangle the update announced.
        public static let trailingBytes = Kind(.trailingBytes)
        /// A rectangle's encoding byte is not one of §7.4's.
        public static let unknownEncoding = Kind(.unknownEncoding)
        /// A rectangle (or a copy's source) is empty or reaches outside the framebuffer.
        public static let rectOutOfBounds = Kind(.rectOutOfBounds)
        /// A palette tile refers to a colour its palette does not have.
        public static let badPaletteIndex = Kind(.badPaletteIndex)
        /// A palette tile announces fewer than 2 or more than 16 colours.
        public static let badPaletteSize = Kind(.badPaletteSize)
        /// Run lengths in an RLE tile cover more (or fewer) pixels than its rectangle.
        public static let runOverflow = Kind(.runOverflow)
        /// The zlib bytes are not a valid continuation of the session's deflate stream.
        public static let corruptDeflate = Kind(.corruptDeflate)
        /// The body inflates to more than the decoder's limit (a decompression bomb).
        public static let inflateLimitExceeded = Kind(.inflateLimitExceeded)
        /// The update's geometry is not the framebuffer's (a missed ScreenInit).
        public static let sizeMismatch = Kind(.sizeMismatch)
        /// An update arrived before any ScreenInit gave the framebuffer a size.
        public static let noScreen = Kind(.noScreen)
        /// A part arrived for another request while an update was still continuing (§7.6).
        public static let unexpectedPart = Kind(.unexpectedPart)
        /// A glyph's slot is outside the table, or a definition's width or height is 0
        /// or above 64 (§7.4.7).
        public static let badGlyph = Kind(.badGlyph)
        /// A glyph draws a slot of the table that holds no glyph (§7.4.7).
        public static let unknownGlyph = Kind(.unknownGlyph)
        /// Encoder side: a frame wider or taller than a u16 can describe.
        public static let frameTooLarge = Kind(.frameTooLarge)
        /// Encoder side: zlib refused to deflate (out of memory).
        public static let compressorFailed = Kind(.compressorFailed)
        /// Encoder side: the body size limit is below the 32 KiB one raw tile needs (§7.6).
        public static let bodyLimitTooSmall = Kind(.bodyLimitTooSmall)

        public var description: String {
            switch self.base {
            case .truncated: "truncated"
            case .trailingBytes: "trailing bytes"
            case .unknownEncoding: "unknown encoding"
            case .rectOutOfBounds: "rect out of bounds"
            case .badPaletteIndex: "bad palette index"
            case .badPaletteSize: "bad palette size"
            case .runOverflow: "run overflow"
            case .corruptDeflate: "corrupt deflate"
            case .inflateLimitExceeded: "inflate limit exceeded"
            case .sizeMismatch: "size mismatch"
            case .noScreen: "no screen"
            case .unexpectedPart: "unexpected part"
            case .badGlyph: "bad glyph"
            case .unknownGlyph: "unknown glyph"
            case .frameTooLarge: "frame too large"
            case .compressorFailed: "compressor failed"
            case .bodyLimitTooSmall: "body limit too small"
            }
        }
    }

    public let kind: Kind
    /// A sentence for a person: what was wrong, with the numbers involved.
    public let message: String

    package init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { "\(self.kind): \(self.message)" }
}
