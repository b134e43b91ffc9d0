import CPNG
import Glibc
public import RelayTileCodec
import RelayWire

/// Reads and writes PNG files as BGRX framebuffers: replay frames, viewer snapshots and
/// recorded benchmark frames.
///
/// Reading accepts any PNG libpng decodes (grey, palette, 16-bit, with or without alpha);
/// colours are converted to 8-bit sRGB, alpha is dropped without compositing (the colour
/// channels are kept as stored) and the unused byte is 0. Writing produces an 8-bit RGB
/// PNG without alpha, so a framebuffer survives a write and a read byte for byte.
public enum PNGFile {
    /// PNG's eight signature bytes (PNG specification §5.2).
    static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    /// The width and height of the PNG at `path`, from its header, without decoding it.
    public static func size(of path: String) throws(PNGFileError) -> (width: Int, height: Int) {
        let image = try self.beginRead(path)
        defer { self.release(image) }
        return (Int(image.pointee.width), Int(image.pointee.height))
    }

    /// Decodes the PNG at `path`.
    public static func read(_ path: String) throws(PNGFileError) -> Framebuffer {
        let image = try self.beginRead(path)
        defer { self.release(image) }
        let width = Int(image.pointee.width)
        let height = Int(image.pointee.height)
        image.pointee.format = relay_png_format_bgra
        var pixels = [UInt8](repeating: 0, count: width * height * Framebuffer.bytesPerPixel)
        let finished = pixels.withUnsafeMutableBytes { bytes in
            png_image_finish_read(image, nil, bytes.baseAddress, Int32(width * Framebuffer.bytesPerPixel), nil)
        }
        guard finished != 0 else {
            throw PNGFileError(
                .unreadable, path: path,
                "cannot decode \(path): \(self.message(of: image.pointee)); the file is damaged or truncated — export or record it again")
        }
        // libpng wrote alpha where BGRX keeps an unused byte, which the protocol sends as 0.
        pixels.withUnsafeMutableBytes { bytes in
            var offset = 3
            while offset < bytes.count {
                bytes[offset] = 0
                offset += 4
            }
        }
        return Framebuffer(width: width, height: height, pixels: pixels)
    }

    /// Encodes `framebuffer` as an 8-bit RGB PNG at `path`, replacing any file there. The
    /// PNG is written beside the target and renamed into place, so a reader never sees a
    /// half-written file.
    public static func write(_ framebuffer: Framebuffer, to path: String) throws(PNGFileError) {
        let image = UnsafeMutablePointer<png_image>.allocate(capacity: 1)
        image.initialize(to: png_image())
        defer { self.release(image) }
        image.pointee.version = UInt32(PNG_IMAGE_VERSION)
        image.pointee.width = UInt32(framebuffer.width)
        image.pointee.height = UInt32(framebuffer.height)
        image.pointee.format = relay_png_format_bgr
        // libpng's BGRA would write the unused byte as alpha (0 = transparent): pack to BGR.
        let pixelCount = framebuffer.width * framebuffer.height
        var bgr = [UInt8](repeating: 0, count: pixelCount * 3)
        bgr.withUnsafeMutableBufferPointer { out in
            framebuffer.pixels.withUnsafeBufferPointer { source in
                var from = 0
                var to = 0
                for _ in 0..<pixelCount {
                    out[to] = source[from]
                    out[to + 1] = source[from + 1]
                    out[to + 2] = source[from + 2]
                    from += 4
                    to += 3
                }
            }
        }
        let temporary = path + ".partial-\(getpid())"
        let written = bgr.withUnsafeBytes { bytes in
            png_image_write_to_file(image, temporary, 0, bytes.baseAddress, Int32(framebuffer.width * 3), nil)
        }
        guard written != 0 else {
            let reason = self.message(of: image.pointee)
            unlink(temporary)
            throw PNGFileError(
                .writeFailed, path: path,
                "cannot write \(path): \(reason); check that the folder exists, is writable and has free space")
        }
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw PNGFileError(
                .writeFailed, path: path,
                "cannot write \(path): \(reason); check that the folder exists and is writable")
        }
    }

    /// Opens `path` and reads the PNG header, with errors that say which of the usual
    /// mistakes happened before libpng's own wording is needed.
    ///
    /// The png_image lives on the heap until `release`: libpng keeps its address (as the
    /// error pointer of its read struct), so it must not move between the calls.
    private static func beginRead(_ path: String) throws(PNGFileError) -> UnsafeMutablePointer<png_image> {
        var status = stat()
        guard stat(path, &status) == 0 else {
            let reason = String(cString: strerror(errno))
            throw PNGFileError(.fileNotFound, path: path, "cannot read \(path): \(reason); check the path")
        }
        guard (status.st_mode & S_IFMT) == S_IFREG else {
            throw PNGFileError(.fileNotFound, path: path, "\(path) is not a file; give the path of a .png file")
        }
        let header = try self.firstBytes(of: path, count: Self.signature.count)
        guard header == Self.signature else {
            throw PNGFileError(
                .notPNG, path: path,
                "\(path) is not a PNG file (it does not start with the PNG signature); convert it to PNG first, e.g. `convert \(path) frame.png`")
        }
        let image = UnsafeMutablePointer<png_image>.allocate(capacity: 1)
        image.initialize(to: png_image())
        image.pointee.version = UInt32(PNG_IMAGE_VERSION)
        guard png_image_begin_read_from_file(image, path) != 0 else {
            let reason = self.message(of: image.pointee)
            self.release(image)
            throw PNGFileError(
                .unreadable, path: path,
                "cannot read \(path): \(reason); the file is damaged or truncated — export or record it again")
        }
        let limit = UInt32(ScreenInit.maximumDimension)
        guard image.pointee.width <= limit, image.pointee.height <= limit else {
            let size = "\(image.pointee.width)×\(image.pointee.height)"
            self.release(image)
            throw PNGFileError(
                .tooLarge, path: path,
                "\(path) is \(size), larger than the \(limit)×\(limit) a screen may be; scale it down")
        }
        return image
    }

    /// Frees libpng's state (a no-op once png_image_finish_read has) and the struct.
    private static func release(_ image: UnsafeMutablePointer<png_image>) {
        png_image_free(image)
        image.deinitialize(count: 1)
        image.deallocate()
    }

    private static func firstBytes(of path: String, count: Int) throws(PNGFileError) -> [UInt8] {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            let reason = String(cString: strerror(errno))
            throw PNGFileError(.unreadable, path: path, "cannot open \(path): \(reason); check its permissions")
        }
        defer { close(descriptor) }
        var bytes = [UInt8](repeating: 0, count: count)
        let got = bytes.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, count) }
        return Array(bytes.prefix(max(got, 0)))
    }

    /// libpng's error text, kept in a fixed `char[64]` inside png_image.
    private static func message(of image: png_image) -> String {
        withUnsafeBytes(of: image.message) { raw in
            let bytes = raw.prefix { $0 != 0 }
            let text = String(decoding: bytes, as: UTF8.self)
            return text.isEmpty ? "libpng gave no reason" : text
        }
    }
}
