/// A screen image in the protocol's only pixel format, `bgrx8888` (PROTOCOL.md §5.2.1):
/// four bytes per pixel in memory order blue, green, red, unused, rows top to bottom with
/// no padding (`bytesPerRow == width * 4`).
///
/// The host captures into one, the tile encoder compares consecutive ones, and the
/// viewer's tile decoder reconstructs one that equals the host's byte for byte.
public struct Framebuffer: Sendable, Hashable {
    public let width: Int
    public let height: Int
    /// `height` rows of `bytesPerRow` bytes each.
    public var pixels: [UInt8]

    public static let bytesPerPixel = 4

    public var bytesPerRow: Int { self.width * Self.bytesPerPixel }

    /// A framebuffer of one colour, given as a `0x00RRGGBB` value.
    public init(width: Int, height: Int, fill rgb: UInt32 = 0) {
        precondition(width > 0 && height > 0, "a framebuffer has at least one pixel")
        self.width = width
        self.height = height
        let pixel: [UInt8] = [
            UInt8(truncatingIfNeeded: rgb), UInt8(truncatingIfNeeded: rgb >> 8),
            UInt8(truncatingIfNeeded: rgb >> 16), 0,
        ]
        var pixels = [UInt8]()
        pixels.reserveCapacity(width * height * Self.bytesPerPixel)
        for _ in 0..<(width * height) { pixels.append(contentsOf: pixel) }
        self.pixels = pixels
    }

    /// Wraps existing BGRX bytes; `pixels.count` must be `width * height * 4`.
    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(width > 0 && height > 0, "a framebuffer has at least one pixel")
        precondition(
            pixels.count == width * height * Self.bytesPerPixel,
            "\(pixels.count) bytes is not a \(width)×\(height) BGRX image")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// The pixel at (x, y) as `0x00RRGGBB`.
    public func rgb(x: Int, y: Int) -> UInt32 {
        let offset = y * self.bytesPerRow + x * Self.bytesPerPixel
        return UInt32(self.pixels[offset]) | UInt32(self.pixels[offset + 1]) << 8 | UInt32(self.pixels[offset + 2]) << 16
    }

    /// Sets the pixel at (x, y) from `0x00RRGGBB`; the unused byte is written as 0.
    public mutating func setRGB(_ rgb: UInt32, x: Int, y: Int) {
        let offset = y * self.bytesPerRow + x * Self.bytesPerPixel
        self.pixels[offset] = UInt8(truncatingIfNeeded: rgb)
        self.pixels[offset + 1] = UInt8(truncatingIfNeeded: rgb >> 8)
        self.pixels[offset + 2] = UInt8(truncatingIfNeeded: rgb >> 16)
        self.pixels[offset + 3] = 0
    }
}
